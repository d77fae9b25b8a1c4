/*
 * The layout of ap_process_result_t, shared by process.c, which fills it,
 * and process_result.c, which reads and serialises it.
 */
#ifndef AP_PROCESS_INTERNAL_H
#define AP_PROCESS_INTERNAL_H

#include <audiopipe/process.h>

/* Normalisation outcomes, also the JSON strings. */
#define AP_NORMALIZATION_OFF "not_requested"
#define AP_NORMALIZATION_TARGET "target"
#define AP_NORMALIZATION_CEILING "true_peak_ceiling"
#define AP_NORMALIZATION_UNDEFINED "undefined_loudness"

typedef struct ap_rendition_result {
  char *name; /* owned */
  int64_t bytes;
  double gain_db;
  const char *normalization;        /* AP_NORMALIZATION_* */
  const char *normalization_reason; /* loudness reason when undefined */
  double target_lufs;
  double true_peak_ceiling_dbtp;
} ap_rendition_result_t;

typedef struct ap_waveform_result {
  int64_t pixels;
  int samples_per_pixel;
} ap_waveform_result_t;

/* Wall time one sink spent in start, write and finish. */
typedef struct ap_stage_timing {
  char label[96];
  double seconds;
} ap_stage_timing_t;

struct ap_process_result {
  ap_media_info_t *media_info;
  ap_analysis_t *analysis; /* NULL when no analysis was requested */
  int64_t decoded_frames;
  int64_t corrupt_packets;
  int passes;
  int worker_threads;

  ap_rendition_result_t *renditions;
  size_t rendition_count;
  ap_waveform_result_t *waveforms;
  size_t waveform_count;

  double measure_seconds; /* the loudness pass before normalisation */
  double decode_seconds;  /* inside the decoder, both passes */
  double total_seconds;
  ap_stage_timing_t *stages;
  size_t stage_count;
};

/* Internal variations of ap_process, for benchmarks and tests. */
typedef struct ap_process_tuning {
  /* Runs true peak in its own sink, so on its own worker thread. Off by
   * default: with one Opus rendition on a 2-core machine it gave no
   * measurable gain (557 s MP3: 27.5 and 41.4 s without, 30.2 and 35.7 s
   * with, on a machine loaded by other jobs), because the encoder thread
   * is the critical path. */
  int split_true_peak;
} ap_process_tuning_t;

/* ap_process with `tuning` (NULL for the defaults). */
ap_status_t ap_process_tuned(ap_io_t *input,
                             const ap_process_options_t *options,
                             const ap_process_tuning_t *tuning,
                             ap_process_result_t **out, ap_error_t *error);

#endif
