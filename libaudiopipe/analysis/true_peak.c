/* True peak by upsampling to 192 kHz (see true_peak.h). */
#include <math.h>
#include <stdlib.h>

#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>

#include "analysis/true_peak.h"
#include "core/error_internal.h"

/* BS.1770-4 Annex 2: at least 4x oversampling of 48 kHz. */
#define OVERSAMPLED_RATE 192000

struct ap_true_peak_meter {
  int channels;
  SwrContext *resampler; /* NULL at OVERSAMPLED_RATE or above */
  float **planes;        /* channels buffers of `capacity` frames */
  int capacity;
  float peak;
};

static ap_status_t reserve(ap_true_peak_meter_t *meter, int frames,
                           ap_error_t *error) {
  if (frames <= meter->capacity) {
    return AP_OK;
  }
  for (int c = 0; c < meter->channels; c++) {
    float *plane = realloc(meter->planes[c], sizeof(float) * (size_t)frames);
    if (!plane) {
      return AP_NO_MEMORY(error);
    }
    meter->planes[c] = plane;
  }
  meter->capacity = frames;
  return AP_OK;
}

ap_status_t ap_true_peak_meter_create(int channels, int sample_rate,
                                      ap_true_peak_meter_t **out,
                                      ap_error_t *error) {
  ap_true_peak_meter_t *meter = calloc(1, sizeof *meter);
  if (!meter) {
    return AP_NO_MEMORY(error);
  }
  meter->channels = channels;
  meter->planes = calloc((size_t)channels, sizeof(float *));
  if (!meter->planes) {
    ap_true_peak_meter_free(meter);
    return AP_NO_MEMORY(error);
  }

  if (sample_rate < OVERSAMPLED_RATE) {
    AVChannelLayout layout;
    av_channel_layout_default(&layout, channels);
    int status = swr_alloc_set_opts2(
        &meter->resampler, &layout, AV_SAMPLE_FMT_FLTP, OVERSAMPLED_RATE,
        &layout, AV_SAMPLE_FMT_FLTP, sample_rate, 0, NULL);
    av_channel_layout_uninit(&layout);
    if (status >= 0) {
      status = swr_init(meter->resampler);
    }
    if (status < 0) {
      char reason[AV_ERROR_MAX_STRING_SIZE];
      av_strerror(status, reason, sizeof reason);
      ap_true_peak_meter_free(meter);
      return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                          "true peak: cannot upsample %d Hz to %d Hz: %s",
                          sample_rate, OVERSAMPLED_RATE, reason);
    }
  }

  *out = meter;
  return AP_OK;
}

static void scan(ap_true_peak_meter_t *meter, const float *const *planes,
                 int frames) {
  float peak = meter->peak;
  for (int c = 0; c < meter->channels; c++) {
    const float *samples = planes[c];
    for (int i = 0; i < frames; i++) {
      float magnitude = fabsf(samples[i]);
      if (magnitude > peak) {
        peak = magnitude;
      }
    }
  }
  meter->peak = peak;
}

/* Converts `frames` frames (NULL planes to flush) and scans the output. */
static ap_status_t convert(ap_true_peak_meter_t *meter,
                           const float *const *planes, int frames,
                           ap_error_t *error) {
  for (;;) {
    int capacity = swr_get_out_samples(meter->resampler, frames);
    ap_status_t status = reserve(meter, capacity > 0 ? capacity + 1 : 1, error);
    if (status != AP_OK) {
      return status;
    }

    int converted =
        swr_convert(meter->resampler, (uint8_t **)meter->planes,
                    meter->capacity, (const uint8_t **)planes, frames);
    if (converted < 0) {
      return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                          "true peak: upsampling failed (%d)", converted);
    }
    scan(meter, (const float *const *)meter->planes, converted);
    /* Input is consumed in one call; a flush repeats until it is empty. */
    if (planes || converted == 0) {
      return AP_OK;
    }
  }
}

ap_status_t ap_true_peak_meter_write(ap_true_peak_meter_t *meter,
                                     const float *const *planes, int frames,
                                     ap_error_t *error) {
  /* The source samples count too: an interpolator may read a little
   * under a sample peak. */
  scan(meter, planes, frames);
  if (!meter->resampler || frames == 0) {
    return AP_OK;
  }
  return convert(meter, planes, frames, error);
}

ap_status_t ap_true_peak_meter_finish(ap_true_peak_meter_t *meter,
                                      ap_error_t *error) {
  if (!meter->resampler) {
    return AP_OK;
  }
  return convert(meter, NULL, 0, error);
}

double ap_true_peak_meter_peak(const ap_true_peak_meter_t *meter) {
  return meter->peak;
}

void ap_true_peak_meter_free(ap_true_peak_meter_t *meter) {
  if (!meter) {
    return;
  }
  swr_free(&meter->resampler);
  if (meter->planes) {
    for (int c = 0; c < meter->channels; c++) {
      free(meter->planes[c]);
    }
    free(meter->planes);
  }
  free(meter);
}
