/*
 * Processing: one decode pass over an input that feeds every requested
 * analysis, waveform and rendition. The decoder runs on the calling
 * thread. Renditions and analysis run on worker threads when
 * `max_threads` allows, each reading the same decoded blocks through a
 * bounded queue. Memory therefore does not grow with the input's length,
 * and a slow encoder slows the decoder down rather than buffering.
 *
 * When a rendition requests loudness normalisation, a first pass measures
 * the analysis (always with loudness and true peak), the decoder seeks
 * back to the start, and a second pass produces the waveforms and the
 * renditions. That needs a seekable input.
 *
 * ap_process is reentrant: any number of threads may process different
 * inputs at once.
 */
#ifndef AUDIOPIPE_PROCESS_H
#define AUDIOPIPE_PROCESS_H

#include <audiopipe/analysis.h>
#include <audiopipe/common.h>
#include <audiopipe/error.h>
#include <audiopipe/io.h>
#include <audiopipe/limits.h>
#include <audiopipe/probe.h>
#include <audiopipe/rendition.h>
#include <audiopipe/waveform.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Analyses to run; combine with bitwise or. */
#define AP_ANALYZE_LOUDNESS 0x01u  /* integrated loudness, LRA, momentary */
#define AP_ANALYZE_TRUE_PEAK 0x02u /* 4x oversampled true peak */
#define AP_ANALYZE_LEVELS 0x04u    /* sample peak, RMS, clipping */
#define AP_ANALYZE_SILENCE 0x08u   /* leading and trailing silence */
#define AP_ANALYZE_ALL 0x0Fu

typedef struct ap_process_options {
  size_t struct_size; /* sizeof(ap_process_options_t) */
  ap_limits_t limits;
  unsigned analyses; /* AP_ANALYZE_* flags */
  ap_mono_convention_t mono_convention;
  double silence_threshold_dbfs;       /* default −60 dBFS */
  const ap_waveform_spec_t *waveforms; /* array of waveform_count */
  size_t waveform_count;
  const ap_rendition_spec_t *renditions; /* array of rendition_count */
  size_t rendition_count;
  /* Threads in all, counting the calling thread, which decodes. 1 runs
   * every sink on the calling thread. n > 1 allows n - 1 worker threads
   * for the analysis and the encoders, and sinks share a worker when
   * there are fewer workers than sinks. 0 picks one worker per rendition
   * plus one for the analysis, capped at the number of online cores; when
   * the renditions leave no core for the analysis, it runs on the
   * calling thread. Waveforms always run on the calling thread. At most
   * 256. */
  int max_threads;
  /* Called on the calling thread only, at most about 20 times a second,
   * with stage "measure" during the first pass of normalisation and
   * "decode" otherwise. The last call has fraction 1.0. A non-zero return
   * cancels the operation (AP_ERR_CANCELLED), and no output is finished. */
  ap_progress_fn progress;
  void *progress_user_data;
} ap_process_options_t;

/* Fills defaults: all analyses, single-channel mono convention, −60 dBFS
 * silence threshold, default limits, automatic thread count (0), no
 * waveforms or renditions, no progress callback. */
AP_EXPORT void ap_process_options_init(ap_process_options_t *options);

typedef struct ap_process_result ap_process_result_t;

/*
 * Probes and decodes `input` once, running the analyses and producing the
 * waveforms and renditions of `options`. On success every output has been
 * finished with ap_output_finish. On failure no output is finished, so the
 * caller's ap_output_close discards what was written and nothing partial
 * is left behind. The outputs stay owned by the caller either way.
 * On success stores a new result in `*out` (free with
 * ap_process_result_free). Fails with any error of ap_probe, and with
 * AP_ERR_CORRUPT_INPUT, AP_ERR_DECODE_TIME_LIMIT, AP_ERR_SAMPLE_BUDGET,
 * AP_ERR_ENCODE, AP_ERR_CANCELLED or AP_ERR_IO; with AP_ERR_INVALID_ARGUMENT
 * naming the field of an invalid option or spec ("rendition 1: ..."); and
 * with AP_ERR_UNSUPPORTED when a rendition requests normalisation of a
 * forward-only input. A failure of one sink stops the whole operation and
 * its message starts with the sink ("rendition opus_64k: ...").
 */
AP_EXPORT ap_status_t ap_process(ap_io_t *input,
                                 const ap_process_options_t *options,
                                 ap_process_result_t **out, ap_error_t *error);

AP_EXPORT void ap_process_result_free(ap_process_result_t *result);

/* The probe data, with the duration replaced by the decoded sample count
 * (method AP_DURATION_DECODE). Owned by the result. */
AP_EXPORT const ap_media_info_t *
ap_process_result_media_info(const ap_process_result_t *result);

/* The analysis, or NULL when no analysis was requested. Owned by the
 * result. */
AP_EXPORT const ap_analysis_t *
ap_process_result_analysis(const ap_process_result_t *result);

/* Decoded frames at the source sample rate after delay and padding. */
AP_EXPORT int64_t
ap_process_result_decoded_frames(const ap_process_result_t *result);

/* Per-rendition facts, in the order of the options' renditions. */
AP_EXPORT size_t
ap_process_result_rendition_count(const ap_process_result_t *result);
AP_EXPORT const char *
ap_process_result_rendition_name(const ap_process_result_t *result,
                                 size_t index);
AP_EXPORT int64_t ap_process_result_rendition_bytes(
    const ap_process_result_t *result, size_t index);
/* Gain applied by loudness normalisation in dB (0 when not normalised):
 * target_lufs minus the integrated loudness, lowered so that the true
 * peak plus the gain stays at or below true_peak_ceiling_dbtp. */
AP_EXPORT double
ap_process_result_rendition_gain_db(const ap_process_result_t *result,
                                    size_t index);
/* How the gain was chosen, as a static string: "not_requested",
 * "target", "true_peak_ceiling" (lowered to keep the peak under the
 * ceiling) or "undefined_loudness" (the input is too short or silent,
 * so no gain was applied). NULL for an index out of range. */
AP_EXPORT const char *
ap_process_result_rendition_normalization(const ap_process_result_t *result,
                                          size_t index);

/* Per-waveform facts, in the order of the options' waveforms. */
AP_EXPORT size_t
ap_process_result_waveform_count(const ap_process_result_t *result);
AP_EXPORT int64_t ap_process_result_waveform_pixels(
    const ap_process_result_t *result, size_t index);
AP_EXPORT int
ap_process_result_waveform_samples_per_pixel(const ap_process_result_t *result,
                                             size_t index);

/* Seconds spent in each stage (wall clock), for metrics: inside the
 * decoder over both passes, and for the whole call. The JSON form also
 * has the first pass and the busy time of every sink. */
AP_EXPORT double
ap_process_result_decode_seconds(const ap_process_result_t *result);
AP_EXPORT double
ap_process_result_total_seconds(const ap_process_result_t *result);

/*
 * Serialises the whole result as a JSON object into a new string in
 * `*json`; free it with ap_free. Keys: "media" (as ap_media_info_to_json),
 * "decoded_frames", "corrupt_packets", "passes", "worker_threads",
 * "analysis" (null when none was requested), "renditions" (name, bytes,
 * gain_db, normalization {status, target_lufs, true_peak_ceiling_dbtp,
 * reason}), "waveforms" (pixels, samples_per_pixel) and "timings".
 * Analysis values that are undefined are null, never -70 or -inf, with a
 * sibling "<key>_undefined_reason": "too_short", "below_absolute_gate",
 * or "digital_silence" for the peaks and RMS of an all-zero input.
 */
AP_EXPORT ap_status_t ap_process_result_to_json(
    const ap_process_result_t *result, char **json, ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
