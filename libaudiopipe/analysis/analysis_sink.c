/*
 * The analysis sink: loudness through loudness_meter.c, true peak through
 * true_peak.c, and sample peak, RMS, clipping and silence measured on the
 * planar blocks directly.
 *
 * Inputs below 44.1 kHz are resampled to 48 kHz for the loudness meter
 * only. The K-weighting filter derived for the source rate with the
 * bilinear transform is warped near Nyquist, which lifts the high shelf
 * at low rates: an 8 kHz telephone recording read 0.2 LU louder than at
 * 48 kHz. BS.1770 defines the filter at 48 kHz, and ffmpeg's ebur128
 * filter always measures at 48 kHz. Levels, silence and true peak use
 * the source samples.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/channel_layout.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>

#include "analysis/analysis_internal.h"
#include "analysis/analysis_sink.h"
#include "analysis/loudness_meter.h"
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
#define SURROUND_WEIGHT 1.41

/* Rates below this are measured at MEASUREMENT_RATE (see above). */
#define MIN_DIRECT_RATE 44100
#define MEASUREMENT_RATE 48000

typedef struct analysis_sink {
  ap_sink_t base;
  ap_analysis_settings_t settings;
  ap_stream_format_t format;

  ap_loudness_meter_t *loudness;   /* NULL unless loudness */
  ap_true_peak_meter_t *true_peak; /* NULL unless true peak */
  int measurement_rate;            /* Hz, of the frames the meter reads */
  SwrContext *resampler;           /* NULL when measuring at the source rate */
  float **resampled;               /* channels planes of resampled_capacity */
  int resampled_capacity;          /* in frames */

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

/* BS.1770-4 weight of the channel with AV_CH_* bit `channel_bit`. */
static double channel_weight(uint64_t channel_bit) {
  if (channel_bit & LFE_MASK) {
    return 0.0;
  }
  if (channel_bit & SURROUND_MASK) {
    return SURROUND_WEIGHT;
  }
  return 1.0;
}

/* Fills one weight per channel from the channel mask, or from the
 * default layout for the channel count when the mask is missing or does
 * not match it. Channels of an unknown layout get weight 1.0. */
static void compute_weights(const analysis_sink_t *sink, double *weights) {
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
    weights[0] =
        sink->settings.mono_convention == AP_LOUDNESS_DUAL_MONO ? 2.0 : 1.0;
    return;
  }

  int channel = 0;
  for (int bit = 0; bit < 64 && channel < channels; bit++) {
    uint64_t channel_bit = UINT64_C(1) << bit;
    if (mask & channel_bit) {
      weights[channel++] = channel_weight(channel_bit);
    }
  }
  for (; channel < channels; channel++) {
    weights[channel] = 1.0;
  }
}

static ap_status_t reserve_resampled(analysis_sink_t *sink, int frames,
                                     ap_error_t *error) {
  if (frames <= sink->resampled_capacity) {
    return AP_OK;
  }
  for (int c = 0; c < sink->format.channels; c++) {
    float *plane = realloc(sink->resampled[c], sizeof(float) * (size_t)frames);
    if (!plane) {
      return AP_NO_MEMORY(error);
    }
    sink->resampled[c] = plane;
  }
  sink->resampled_capacity = frames;
  return AP_OK;
}

/* Planar source rate to planar MEASUREMENT_RATE, same layout. */
static ap_status_t create_resampler(analysis_sink_t *sink, ap_error_t *error) {
  sink->resampled = calloc((size_t)sink->format.channels, sizeof(float *));
  if (!sink->resampled) {
    return AP_NO_MEMORY(error);
  }

  AVChannelLayout layout;
  av_channel_layout_default(&layout, sink->format.channels);
  int status = swr_alloc_set_opts2(
      &sink->resampler, &layout, AV_SAMPLE_FMT_FLTP, MEASUREMENT_RATE, &layout,
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

static ap_status_t start_loudness(analysis_sink_t *sink, ap_error_t *error) {
  sink->measurement_rate = sink->format.sample_rate;
  if (sink->format.sample_rate < MIN_DIRECT_RATE) {
    sink->measurement_rate = MEASUREMENT_RATE;
    ap_status_t status = create_resampler(sink, error);
    if (status != AP_OK) {
      return status;
    }
  }

  double *weights = calloc((size_t)sink->format.channels, sizeof(double));
  if (!weights) {
    return AP_NO_MEMORY(error);
  }
  compute_weights(sink, weights);
  ap_status_t status =
      ap_loudness_meter_create(sink->format.channels, sink->measurement_rate,
                               weights, &sink->loudness, error);
  free(weights);
  return status;
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
  if (has_flag(analyses, AP_ANALYZE_LOUDNESS)) {
    ap_status_t status = start_loudness(sink, error);
    if (status != AP_OK) {
      return status;
    }
  }
  if (has_flag(analyses, AP_ANALYZE_TRUE_PEAK)) {
    ap_status_t status = ap_true_peak_meter_create(
        format->channels, format->sample_rate, &sink->true_peak, error);
    if (status != AP_OK) {
      return status;
    }
  }

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

/* Converts `frames` source frames (0 with NULL planes to flush) to
 * MEASUREMENT_RATE and meters what the resampler returns. */
static ap_status_t measure_resampled(analysis_sink_t *sink,
                                     const float *const *planes, int frames,
                                     ap_error_t *error) {
  for (;;) {
    int capacity = swr_get_out_samples(sink->resampler, frames);
    if (capacity < 0) {
      capacity = 0;
    }
    ap_status_t status = reserve_resampled(sink, capacity + 1, error);
    if (status != AP_OK) {
      return status;
    }

    int converted =
        swr_convert(sink->resampler, (uint8_t **)sink->resampled,
                    sink->resampled_capacity, (const uint8_t **)planes, frames);
    if (converted < 0) {
      return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                          "analysis: resampling for the loudness measurement "
                          "failed (%d)",
                          converted);
    }
    ap_loudness_meter_write(sink->loudness,
                            (const float *const *)sink->resampled, converted);
    /* Input is consumed in one call; a flush repeats until it is empty. */
    if (planes || converted == 0) {
      return AP_OK;
    }
  }
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
  if (sink->resampler) {
    ap_status_t status = measure_resampled(sink, planes, frames, error);
    if (status != AP_OK) {
      return status;
    }
  } else if (sink->loudness) {
    ap_loudness_meter_write(sink->loudness, planes, frames);
  }
  if (sink->true_peak) {
    ap_true_peak_meter_write(sink->true_peak, planes, frames);
  }

  sink->frames += frames;
  return AP_OK;
}
static double linear_to_db(double linear) {
  return linear > 0.0 ? 20.0 * log10(linear) : -INFINITY;
}

static void finish_loudness(analysis_sink_t *sink, ap_analysis_t *measured) {
  ap_loudness_summary_t summary;
  ap_loudness_meter_summarize(sink->loudness, &summary);

  /* Under 400 ms of input not one gating block is complete; libebur128
   * would report -inf and ffmpeg -70 LUFS. */
  if (sink->frames * 10 < 4 * (int64_t)sink->format.sample_rate) {
    measured->integrated_undefined_reason = AP_REASON_TOO_SHORT;
  } else if (!summary.integrated_defined) {
    measured->integrated_undefined_reason = AP_REASON_BELOW_ABSOLUTE_GATE;
  } else {
    measured->integrated_defined = 1;
    measured->integrated_lufs = summary.integrated_lufs;
    measured->integrated_undefined_reason = NULL;
  }

  if (summary.sub_blocks < 30) {
    measured->range_undefined_reason = AP_REASON_TOO_SHORT;
  } else if (!summary.range_defined) {
    measured->range_undefined_reason = AP_REASON_BELOW_ABSOLUTE_GATE;
  } else {
    measured->range_defined = 1;
    measured->range_lu = summary.range_lu;
    measured->range_undefined_reason = NULL;
  }

  measured->momentary_defined = isfinite(summary.max_momentary_lufs);
  measured->max_momentary_lufs = summary.max_momentary_lufs;
  measured->short_term_defined = isfinite(summary.max_short_term_lufs);
  measured->max_short_term_lufs = summary.max_short_term_lufs;
}

static ap_status_t analysis_finish(ap_sink_t *base, ap_error_t *error) {
  analysis_sink_t *sink = (analysis_sink_t *)base;
  ap_analysis_t *measured = &sink->measured;
  unsigned analyses = sink->settings.analyses;

  if (sink->resampler) {
    ap_status_t status = measure_resampled(sink, NULL, 0, error);
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
    ap_true_peak_meter_finish(sink->true_peak);
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
  ap_loudness_meter_free(sink->loudness);
  swr_free(&sink->resampler);
  if (sink->resampled) {
    for (int c = 0; c < sink->format.channels; c++) {
      free(sink->resampled[c]);
    }
    free(sink->resampled);
  }
  ap_true_peak_meter_free(sink->true_peak);
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
