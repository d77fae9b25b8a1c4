/*
 * The analysis sink: feeds libebur128 with interleaved float frames and
 * measures levels and silence on the planar blocks directly.
 *
 * Momentary and short-term loudness are sampled every 100 ms of input (the
 * block is split at those boundaries), which gives the maxima and the
 * short-term values of the loudness range at ffmpeg's ebur128 rate.
 *
 * True peak comes from true_peak.c, not from libebur128.
 *
 * Inputs below 44.1 kHz are resampled to 48 kHz for libebur128 only.
 * libebur128 derives the K-weighting filter for the source rate with the
 * bilinear transform, whose frequency warping near Nyquist lifts the
 * high-shelf: an 8 kHz telephone recording read 0.2 LU louder than at
 * 48 kHz. BS.1770 defines the filter at 48 kHz, and ffmpeg's ebur128
 * filter always measures at 48 kHz. Levels and silence use the source
 * samples.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ebur128.h>
#include <libavutil/channel_layout.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>

#include "analysis/analysis_internal.h"
#include "analysis/analysis_sink.h"
#include "analysis/loudness_range.h"
#include "analysis/true_peak.h"
#include "core/error_internal.h"
#include "process/sink.h"

#include <audiopipe/process.h>

/* Full scale minus one 16-bit step: a sample at or above this magnitude
 * counts as clipped. */
#define CLIP_LEVEL (32767.0f / 32768.0f)

/* Channels that BS.1770-4 weights by 1.41 (+1.5 dB): everything behind
 * the listener, as ffmpeg's ebur128 filter groups them. */
#define SURROUND_MASK                                                          \
  (AV_CH_BACK_LEFT | AV_CH_BACK_CENTER | AV_CH_BACK_RIGHT |                    \
   AV_CH_TOP_BACK_LEFT | AV_CH_TOP_BACK_CENTER | AV_CH_TOP_BACK_RIGHT |        \
   AV_CH_SIDE_LEFT | AV_CH_SIDE_RIGHT | AV_CH_SURROUND_DIRECT_LEFT |           \
   AV_CH_SURROUND_DIRECT_RIGHT)
#define LFE_MASK (AV_CH_LOW_FREQUENCY | AV_CH_LOW_FREQUENCY_2)

/* Rates below this are measured at MEASUREMENT_RATE (see above). */
#define MIN_DIRECT_RATE 44100
#define MEASUREMENT_RATE 48000

typedef struct analysis_sink {
  ap_sink_t base;
  ap_analysis_settings_t settings;
  ap_stream_format_t format;

  ebur128_state *state;            /* NULL unless loudness */
  ap_true_peak_meter_t *true_peak; /* NULL unless true peak */
  int measurement_rate;            /* Hz, of the frames fed to libebur128 */
  SwrContext *resampler;           /* NULL when measuring at the source rate */
  float *interleaved;              /* frames for libebur128, interleaved */
  int interleaved_capacity;        /* in frames */
  ap_loudness_range_t *range;
  int64_t step_frames; /* frames in 100 ms at measurement_rate */
  int64_t frames_since_step;
  int64_t steps; /* 100 ms steps completed */
  double max_momentary;
  double max_short_term;

  int64_t frames;
  float sample_peak;
  double sum_squares;
  int64_t clipped;
  float silence_level;      /* linear threshold */
  int64_t first_loud_frame; /* -1 until a sample exceeds the threshold */
  int64_t last_loud_frame;

  ap_analysis_t measured; /* filled by finish */
} analysis_sink_t;

static int has_flag(unsigned flags, unsigned flag) {
  return (flags & flag) == flag;
}

/* Maps one channel with AV_CH_* bit `channel_bit` to a BS.1770 weight. */
static enum channel map_channel(uint64_t channel_bit) {
  if (channel_bit & LFE_MASK) {
    return EBUR128_UNUSED;
  }
  if (channel_bit & SURROUND_MASK) {
    return EBUR128_LEFT_SURROUND;
  }
  return EBUR128_CENTER;
}

/* Sets every channel's weight from the channel mask, or from the default
 * layout for the channel count when the mask is missing or does not
 * match it. Channels of an unknown layout get weight 1.0. */
static void set_channel_map(analysis_sink_t *sink) {
  int channels = sink->format.channels;
  uint64_t mask = sink->format.channel_mask;

  if (mask == 0 || __builtin_popcountll(mask) != channels) {
    AVChannelLayout layout;
    av_channel_layout_default(&layout, channels);
    mask = layout.order == AV_CHANNEL_ORDER_NATIVE ? layout.u.mask : 0;
    av_channel_layout_uninit(&layout);
  }

  if (channels == 1) {
    /* Mono is measured as one channel of weight 1.0 unless the caller
     * asked for dual mono, which counts it twice (+3 dB). */
    ebur128_set_channel(sink->state, 0,
                        sink->settings.mono_convention == AP_LOUDNESS_DUAL_MONO
                            ? EBUR128_DUAL_MONO
                            : EBUR128_CENTER);
    return;
  }

  int channel = 0;
  for (int bit = 0; bit < 64 && channel < channels; bit++) {
    uint64_t channel_bit = UINT64_C(1) << bit;
    if (mask & channel_bit) {
      ebur128_set_channel(sink->state, (unsigned)channel++,
                          map_channel(channel_bit));
    }
  }
  for (; channel < channels; channel++) {
    ebur128_set_channel(sink->state, (unsigned)channel, EBUR128_CENTER);
  }
}

static ap_status_t reserve_interleaved(analysis_sink_t *sink, int frames,
                                       ap_error_t *error) {
  if (frames <= sink->interleaved_capacity) {
    return AP_OK;
  }
  float *buffer = realloc(sink->interleaved, sizeof(float) * (size_t)frames *
                                                 (size_t)sink->format.channels);
  if (!buffer) {
    return AP_NO_MEMORY(error);
  }
  sink->interleaved = buffer;
  sink->interleaved_capacity = frames;
  return AP_OK;
}

/* Planar source rate to interleaved MEASUREMENT_RATE, same layout. */
static ap_status_t create_resampler(analysis_sink_t *sink, ap_error_t *error) {
  AVChannelLayout layout;
  av_channel_layout_default(&layout, sink->format.channels);
  int status = swr_alloc_set_opts2(
      &sink->resampler, &layout, AV_SAMPLE_FMT_FLT, MEASUREMENT_RATE, &layout,
      AV_SAMPLE_FMT_FLTP, sink->format.sample_rate, 0, NULL);
  av_channel_layout_uninit(&layout);
  if (status >= 0) {
    status = swr_init(sink->resampler);
  }
  if (status < 0) {
    char reason[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(status, reason, sizeof reason);
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                        "analysis: cannot resample %d Hz to %d Hz for the "
                        "loudness measurement: %s",
                        sink->format.sample_rate, MEASUREMENT_RATE, reason);
  }
  return AP_OK;
}

static ap_status_t analysis_start(ap_sink_t *base,
                                  const ap_stream_format_t *format,
                                  ap_error_t *error) {
  analysis_sink_t *sink = (analysis_sink_t *)base;
  if (format->sample_rate <= 0 || format->channels <= 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "analysis: invalid stream format (%d Hz, %d channels)",
                        format->sample_rate, format->channels);
  }
  sink->format = *format;

  unsigned analyses = sink->settings.analyses;
  int mode = 0;
  if (has_flag(analyses, AP_ANALYZE_LOUDNESS)) {
    /* EBUR128_MODE_HISTOGRAM keeps memory flat over hours of input and
     * gives the same integrated loudness to 0.01 LU. */
    mode |= EBUR128_MODE_I | EBUR128_MODE_S | EBUR128_MODE_M |
            EBUR128_MODE_HISTOGRAM;
  }
  if (has_flag(analyses, AP_ANALYZE_TRUE_PEAK)) {
    ap_status_t status = ap_true_peak_meter_create(
        format->channels, format->sample_rate, &sink->true_peak, error);
    if (status != AP_OK) {
      return status;
    }
  }

  sink->measurement_rate = format->sample_rate;
  if (mode != 0) {
    ap_status_t status = AP_OK;
    if (format->sample_rate < MIN_DIRECT_RATE) {
      sink->measurement_rate = MEASUREMENT_RATE;
      status = create_resampler(sink, error);
    }
    if (status != AP_OK) {
      return status;
    }

    sink->state = ebur128_init((unsigned)format->channels,
                               (unsigned long)sink->measurement_rate, mode);
    if (!sink->state) {
      return AP_NO_MEMORY(error);
    }
    set_channel_map(sink);

    status = reserve_interleaved(sink, AP_SINK_MAX_BLOCK_FRAMES, error);
    if (status != AP_OK) {
      return status;
    }
  }

  if (has_flag(analyses, AP_ANALYZE_LOUDNESS)) {
    sink->range = ap_loudness_range_create();
    if (!sink->range) {
      return AP_NO_MEMORY(error);
    }
  }

  sink->step_frames =
      sink->measurement_rate / 10 > 0 ? sink->measurement_rate / 10 : 1;
  sink->max_momentary = -INFINITY;
  sink->max_short_term = -INFINITY;
  sink->silence_level =
      (float)pow(10.0, sink->settings.silence_threshold_dbfs / 20.0);
  sink->first_loud_frame = -1;
  sink->last_loud_frame = -1;
  return AP_OK;
}

static void measure_levels(analysis_sink_t *sink, const float *const *planes,
                           int frames) {
  float peak = sink->sample_peak;
  double sum_squares = 0.0;
  int64_t clipped = 0;

  for (int channel = 0; channel < sink->format.channels; channel++) {
    const float *samples = planes[channel];
    for (int i = 0; i < frames; i++) {
      float magnitude = fabsf(samples[i]);
      if (magnitude > peak) {
        peak = magnitude;
      }
      sum_squares += (double)samples[i] * samples[i];
      clipped += magnitude >= CLIP_LEVEL;
    }
  }

  sink->sample_peak = peak;
  sink->sum_squares += sum_squares;
  sink->clipped += clipped;
}

static void measure_silence(analysis_sink_t *sink, const float *const *planes,
                            int frames) {
  float level = sink->silence_level;

  for (int channel = 0; channel < sink->format.channels; channel++) {
    const float *samples = planes[channel];

    int first = -1;
    for (int i = 0; i < frames; i++) {
      if (fabsf(samples[i]) > level) {
        first = i;
        break;
      }
    }
    if (first < 0) {
      continue;
    }

    int last = first;
    for (int i = frames - 1; i > first; i--) {
      if (fabsf(samples[i]) > level) {
        last = i;
        break;
      }
    }

    int64_t first_frame = sink->frames + first;
    int64_t last_frame = sink->frames + last;
    if (sink->first_loud_frame < 0 || first_frame < sink->first_loud_frame) {
      sink->first_loud_frame = first_frame;
    }
    if (last_frame > sink->last_loud_frame) {
      sink->last_loud_frame = last_frame;
    }
  }
}

/* Samples momentary and short-term loudness at a 100 ms boundary, once a
 * whole 400 ms or 3 s window has been fed. */
static void sample_loudness(analysis_sink_t *sink) {
  double lufs;
  sink->steps++;

  if (sink->steps >= 4 &&
      ebur128_loudness_momentary(sink->state, &lufs) == EBUR128_SUCCESS &&
      lufs > sink->max_momentary) {
    sink->max_momentary = lufs;
  }

  if (sink->steps >= 30 &&
      ebur128_loudness_shortterm(sink->state, &lufs) == EBUR128_SUCCESS) {
    if (lufs > sink->max_short_term) {
      sink->max_short_term = lufs;
    }
    ap_loudness_range_add(sink->range, lufs);
  }
}

/* Feeds `frames` interleaved frames at measurement_rate to libebur128,
 * sampling momentary and short-term loudness at each 100 ms boundary. */
static ap_status_t feed_interleaved(analysis_sink_t *sink,
                                    const float *interleaved, int frames,
                                    ap_error_t *error) {
  int channels = sink->format.channels;
  int loudness = has_flag(sink->settings.analyses, AP_ANALYZE_LOUDNESS);
  int offset = 0;
  while (offset < frames) {
    int count = frames - offset;
    if (loudness && count > sink->step_frames - sink->frames_since_step) {
      count = (int)(sink->step_frames - sink->frames_since_step);
    }

    int status = ebur128_add_frames_float(
        sink->state, interleaved + (size_t)offset * channels, (size_t)count);
    if (status != EBUR128_SUCCESS) {
      return status == EBUR128_ERROR_NOMEM
                 ? AP_NO_MEMORY(error)
                 : ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                                "analysis: libebur128 rejected %d frames "
                                "(status %d)",
                                count, status);
    }
    offset += count;

    if (loudness) {
      sink->frames_since_step += count;
      if (sink->frames_since_step == sink->step_frames) {
        sink->frames_since_step = 0;
        sample_loudness(sink);
      }
    }
  }
  return AP_OK;
}

/* Converts `frames` source frames (0 with NULL planes to flush) and
 * feeds what the resampler returns. */
static ap_status_t feed_resampled(analysis_sink_t *sink,
                                  const float *const *planes, int frames,
                                  ap_error_t *error) {
  for (;;) {
    int capacity = swr_get_out_samples(sink->resampler, frames);
    if (capacity < 0) {
      capacity = 0;
    }
    ap_status_t status = reserve_interleaved(sink, capacity + 1, error);
    if (status != AP_OK) {
      return status;
    }

    uint8_t *output[1] = {(uint8_t *)sink->interleaved};
    int converted =
        swr_convert(sink->resampler, output, sink->interleaved_capacity,
                    (const uint8_t **)planes, frames);
    if (converted < 0) {
      return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                          "analysis: resampling for the loudness measurement "
                          "failed (%d)",
                          converted);
    }
    status = feed_interleaved(sink, sink->interleaved, converted, error);
    if (status != AP_OK) {
      return status;
    }
    /* Input is consumed in one call; a flush repeats until it is empty. */
    if (planes || converted == 0) {
      return AP_OK;
    }
  }
}

static ap_status_t feed_ebur128(analysis_sink_t *sink,
                                const float *const *planes, int frames,
                                ap_error_t *error) {
  if (sink->resampler) {
    return feed_resampled(sink, planes, frames, error);
  }

  int channels = sink->format.channels;
  float *interleaved = sink->interleaved;
  for (int channel = 0; channel < channels; channel++) {
    const float *samples = planes[channel];
    for (int i = 0; i < frames; i++) {
      interleaved[(size_t)i * channels + channel] = samples[i];
    }
  }
  return feed_interleaved(sink, interleaved, frames, error);
}

static ap_status_t analysis_write(ap_sink_t *base, const float *const *planes,
                                  int frames, ap_error_t *error) {
  analysis_sink_t *sink = (analysis_sink_t *)base;
  if (frames < 0 || frames > AP_SINK_MAX_BLOCK_FRAMES) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                        "analysis: block of %d frames is outside 0..%d", frames,
                        AP_SINK_MAX_BLOCK_FRAMES);
  }

  unsigned analyses = sink->settings.analyses;
  if (has_flag(analyses, AP_ANALYZE_LEVELS)) {
    measure_levels(sink, planes, frames);
  }
  if (has_flag(analyses, AP_ANALYZE_SILENCE)) {
    measure_silence(sink, planes, frames);
  }
  if (sink->state) {
    ap_status_t status = feed_ebur128(sink, planes, frames, error);
    if (status != AP_OK) {
      return status;
    }
  }
  if (sink->true_peak) {
    ap_status_t status =
        ap_true_peak_meter_write(sink->true_peak, planes, frames, error);
    if (status != AP_OK) {
      return status;
    }
  }

  sink->frames += frames;
  return AP_OK;
}

static double linear_to_db(double linear) {
  return linear > 0.0 ? 20.0 * log10(linear) : -INFINITY;
}

static void finish_loudness(analysis_sink_t *sink, ap_analysis_t *measured) {
  double lufs = -HUGE_VAL;
  int status = ebur128_loudness_global(sink->state, &lufs);

  /* Under 400 ms of input not one gating block is complete; libebur128
   * would report -inf and ffmpeg -70 LUFS. */
  if (sink->frames * 10 < 4 * (int64_t)sink->format.sample_rate) {
    measured->integrated_undefined_reason = AP_REASON_TOO_SHORT;
  } else if (status != EBUR128_SUCCESS || !isfinite(lufs)) {
    measured->integrated_undefined_reason = AP_REASON_BELOW_ABSOLUTE_GATE;
  } else {
    measured->integrated_defined = 1;
    measured->integrated_lufs = lufs;
    measured->integrated_undefined_reason = NULL;
  }

  double lu;
  if (sink->steps < 30) {
    measured->range_undefined_reason = AP_REASON_TOO_SHORT;
  } else if (!ap_loudness_range_compute(sink->range, &lu)) {
    measured->range_undefined_reason = AP_REASON_BELOW_ABSOLUTE_GATE;
  } else {
    measured->range_defined = 1;
    measured->range_lu = lu;
    measured->range_undefined_reason = NULL;
  }

  measured->momentary_defined = isfinite(sink->max_momentary);
  measured->max_momentary_lufs = sink->max_momentary;
  measured->short_term_defined = isfinite(sink->max_short_term);
  measured->max_short_term_lufs = sink->max_short_term;
}

static ap_status_t analysis_finish(ap_sink_t *base, ap_error_t *error) {
  analysis_sink_t *sink = (analysis_sink_t *)base;
  ap_analysis_t *measured = &sink->measured;
  unsigned analyses = sink->settings.analyses;

  if (sink->resampler && sink->state) {
    ap_status_t status = feed_resampled(sink, NULL, 0, error);
    if (status != AP_OK) {
      return status;
    }
  }

  measured->analyses = analyses;
  measured->sample_rate = sink->format.sample_rate;
  measured->channels = sink->format.channels;
  measured->frames = sink->frames;

  if (has_flag(analyses, AP_ANALYZE_LOUDNESS)) {
    finish_loudness(sink, measured);
  }

  if (sink->true_peak) {
    ap_status_t status = ap_true_peak_meter_finish(sink->true_peak, error);
    if (status != AP_OK) {
      return status;
    }
    measured->true_peak_dbtp =
        linear_to_db(ap_true_peak_meter_peak(sink->true_peak));
  }

  if (has_flag(analyses, AP_ANALYZE_LEVELS)) {
    double samples = (double)sink->frames * sink->format.channels;
    measured->sample_peak_dbfs = linear_to_db(sink->sample_peak);
    /* Plain RMS relative to full scale: a full-scale sine reads -3.01 dBFS
     * (no AES17 +3 dB offset). */
    measured->rms_dbfs = samples > 0
                             ? linear_to_db(sqrt(sink->sum_squares / samples))
                             : -INFINITY;
    measured->clipped_samples = sink->clipped;
  }

  if (has_flag(analyses, AP_ANALYZE_SILENCE)) {
    double rate = sink->format.sample_rate;
    if (sink->first_loud_frame < 0) {
      measured->leading_silence = (double)sink->frames / rate;
      measured->trailing_silence = (double)sink->frames / rate;
    } else {
      measured->leading_silence = (double)sink->first_loud_frame / rate;
      measured->trailing_silence =
          (double)(sink->frames - 1 - sink->last_loud_frame) / rate;
    }
  }
  return AP_OK;
}

static void analysis_destroy(ap_sink_t *base) {
  analysis_sink_t *sink = (analysis_sink_t *)base;
  if (!sink) {
    return;
  }
  if (sink->state) {
    ebur128_destroy(&sink->state);
  }
  swr_free(&sink->resampler);
  ap_true_peak_meter_free(sink->true_peak);
  ap_loudness_range_free(sink->range);
  free(sink->interleaved);
  free(sink);
}

static const ap_sink_ops_t analysis_ops = {
    .name = "analysis",
    .start = analysis_start,
    .write = analysis_write,
    .finish = analysis_finish,
    .destroy = analysis_destroy,
};

ap_status_t ap_analysis_sink_create(const ap_analysis_settings_t *settings,
                                    ap_sink_t **out, ap_error_t *error) {
  if (!settings || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_analysis_sink_create: settings and out are "
                        "required");
  }
  if (settings->analyses & ~AP_ANALYZE_ALL) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "analyses 0x%x has unknown bits: combine "
                        "AP_ANALYZE_* flags only",
                        settings->analyses);
  }
  if (settings->mono_convention != AP_LOUDNESS_MONO_SINGLE &&
      settings->mono_convention != AP_LOUDNESS_DUAL_MONO) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "mono_convention %d is invalid: use "
                        "AP_LOUDNESS_MONO_SINGLE or AP_LOUDNESS_DUAL_MONO",
                        (int)settings->mono_convention);
  }
  if (!isfinite(settings->silence_threshold_dbfs) ||
      settings->silence_threshold_dbfs > 0.0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "silence_threshold_dbfs %g is invalid: use a finite "
                        "level at or below 0 dBFS, such as -60",
                        settings->silence_threshold_dbfs);
  }

  analysis_sink_t *sink = calloc(1, sizeof *sink);
  if (!sink) {
    return AP_NO_MEMORY(error);
  }
  sink->base.ops = &analysis_ops;
  sink->base.wants_thread = 1;
  sink->settings = *settings;
  *out = &sink->base;
  return AP_OK;
}

void ap_analysis_sink_collect(const ap_sink_t *base, ap_analysis_t *analysis) {
  const analysis_sink_t *sink = (const analysis_sink_t *)base;
  const ap_analysis_t *measured = &sink->measured;
  unsigned analyses = sink->settings.analyses;

  analysis->analyses |= analyses;
  analysis->sample_rate = measured->sample_rate;
  analysis->channels = measured->channels;
  analysis->frames = measured->frames;

  if (has_flag(analyses, AP_ANALYZE_LOUDNESS)) {
    analysis->integrated_defined = measured->integrated_defined;
    analysis->integrated_lufs = measured->integrated_lufs;
    analysis->integrated_undefined_reason =
        measured->integrated_undefined_reason;
    analysis->range_defined = measured->range_defined;
    analysis->range_lu = measured->range_lu;
    analysis->range_undefined_reason = measured->range_undefined_reason;
    analysis->momentary_defined = measured->momentary_defined;
    analysis->max_momentary_lufs = measured->max_momentary_lufs;
    analysis->short_term_defined = measured->short_term_defined;
    analysis->max_short_term_lufs = measured->max_short_term_lufs;
  }
  if (has_flag(analyses, AP_ANALYZE_TRUE_PEAK)) {
    analysis->true_peak_dbtp = measured->true_peak_dbtp;
  }
  if (has_flag(analyses, AP_ANALYZE_LEVELS)) {
    analysis->sample_peak_dbfs = measured->sample_peak_dbfs;
    analysis->rms_dbfs = measured->rms_dbfs;
    analysis->clipped_samples = measured->clipped_samples;
  }
  if (has_flag(analyses, AP_ANALYZE_SILENCE)) {
    analysis->leading_silence = measured->leading_silence;
    analysis->trailing_silence = measured->trailing_silence;
  }
}
