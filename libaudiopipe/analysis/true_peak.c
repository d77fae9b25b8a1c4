/* Polyphase FIR true-peak meter (see true_peak.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/true_peak.h"
#include "core/error_internal.h"

/* BS.1770-4 Annex 2: at least 4x oversampling of 48 kHz. */
#define OVERSAMPLED_RATE 192000
/* Rates that do not divide OVERSAMPLED_RATE get at least twice it. */
#define UNALIGNED_OVERSAMPLED_RATE 384000
/* NOTE: bounds the filter bank for very low rates (4 kHz and below), which
 * are then oversampled less than to 192 kHz. */
#define MAX_FACTOR 48

#define TAPS 32
#define KAISER_BETA 9.0

/* Source frames filtered per step; bounds the scratch buffers. */
#define STEP_FRAMES 4096
/* Outputs computed together: 8 vectors of 8 floats keep the multiply
 * and add units busy while fitting in the vector registers. */
#define LANES 64

struct ap_true_peak_meter {
  int channels;
  int factor;
  float *coefficients; /* (factor - 1) phases x TAPS */
  /* Per channel: the last TAPS - 1 source samples, then room for
   * STEP_FRAMES more. */
  float *buffers;
  float peak;
};

int ap_true_peak_oversampling(int sample_rate) {
  if (sample_rate <= 0 || sample_rate >= OVERSAMPLED_RATE) {
    return 1;
  }
  int factor =
      OVERSAMPLED_RATE % sample_rate == 0
          ? OVERSAMPLED_RATE / sample_rate
          : (UNALIGNED_OVERSAMPLED_RATE + sample_rate - 1) / sample_rate;
  return factor < MAX_FACTOR ? factor : MAX_FACTOR;
}

/* Zeroth-order modified Bessel function of the first kind, by its power
 * series; 30 terms reach double precision for the arguments used here. */
static double bessel_i0(double x) {
  double sum = 1.0;
  double term = 1.0;
  for (int k = 1; k <= 30; k++) {
    double factor = x / (2.0 * k);
    term *= factor * factor;
    sum += term;
  }
  return sum;
}

/* Fills the coefficients of phases 1..factor-1. Phase p evaluates the
 * signal p / factor of a sample after buffer[i + TAPS / 2 - 1], from
 * buffer[i] .. buffer[i + TAPS - 1]. Each phase is scaled to unity gain
 * at 0 Hz. */
static void design_filter(float *coefficients, int factor) {
  double half = TAPS / 2.0;
  for (int phase = 1; phase < factor; phase++) {
    float *row = coefficients + (size_t)(phase - 1) * TAPS;
    double values[TAPS];
    double sum = 0.0;
    for (int k = 0; k < TAPS; k++) {
      double t = (half - 1.0) + (double)phase / factor - k;
      double sinc = t == 0.0 ? 1.0 : sin(M_PI * t) / (M_PI * t);
      double ratio = t / half;
      double window = ratio * ratio >= 1.0
                          ? 0.0
                          : bessel_i0(KAISER_BETA * sqrt(1.0 - ratio * ratio)) /
                                bessel_i0(KAISER_BETA);
      values[k] = sinc * window;
      sum += values[k];
    }
    for (int k = 0; k < TAPS; k++) {
      row[k] = (float)(values[k] / sum);
    }
  }
}

ap_status_t ap_true_peak_meter_create(int channels, int sample_rate,
                                      ap_true_peak_meter_t **out,
                                      ap_error_t *error) {
  if (channels <= 0 || sample_rate <= 0 || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "true peak: %d channels at %d Hz is invalid: both "
                        "must be positive",
                        channels, sample_rate);
  }
  ap_true_peak_meter_t *meter = calloc(1, sizeof *meter);
  if (!meter) {
    return AP_NO_MEMORY(error);
  }
  meter->channels = channels;
  meter->factor = ap_true_peak_oversampling(sample_rate);

  if (meter->factor > 1) {
    meter->coefficients =
        malloc(sizeof(float) * (size_t)(meter->factor - 1) * TAPS);
    meter->buffers =
        calloc((size_t)channels * (TAPS - 1 + STEP_FRAMES), sizeof(float));
    if (!meter->coefficients || !meter->buffers) {
      ap_true_peak_meter_free(meter);
      return AP_NO_MEMORY(error);
    }
    design_filter(meter->coefficients, meter->factor);
  }

  *out = meter;
  return AP_OK;
}

static float sample_peak(const float *restrict samples, int count, float peak) {
  for (int i = 0; i < count; i++) {
    float magnitude = fabsf(samples[i]);
    peak = magnitude > peak ? magnitude : peak;
  }
  return peak;
}

/* The largest magnitude of one phase over `count` outputs: output i is
 * the dot product of the TAPS coefficients with buffer[i..i+TAPS-1].
 * The outputs are computed LANES at a time so the inner loop runs along
 * the outputs and vectorises without reassociating any sum. On x86-64 an
 * AVX2 version is chosen at load time where the CPU has it. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define AP_TRUE_PEAK_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AP_TRUE_PEAK_SANITIZED 1
#endif
/* target_clones makes an ifunc, whose resolver runs during relocation,
 * before a sanitizer's runtime is ready: instrumented, it crashes at load
 * (seen with ThreadSanitizer), so sanitizer builds keep one version. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(AP_TRUE_PEAK_SANITIZED)
__attribute__((target_clones("avx2", "default")))
#endif
static float
phase_peak(const float *restrict coefficients, const float *restrict buffer,
           int count) {
  float maxima[LANES] = {0};
  int start = 0;
  for (; start + LANES <= count; start += LANES) {
    float sums[LANES] = {0};
    for (int k = 0; k < TAPS; k++) {
      float coefficient = coefficients[k];
      const float *window = buffer + start + k;
      for (int j = 0; j < LANES; j++) {
        sums[j] += coefficient * window[j];
      }
    }
    for (int j = 0; j < LANES; j++) {
      float magnitude = fabsf(sums[j]);
      maxima[j] = magnitude > maxima[j] ? magnitude : maxima[j];
    }
  }

  float peak = 0.0f;
  for (int j = 0; j < LANES; j++) {
    peak = maxima[j] > peak ? maxima[j] : peak;
  }
  for (; start < count; start++) {
    float sum = 0.0f;
    for (int k = 0; k < TAPS; k++) {
      sum += coefficients[k] * buffer[start + k];
    }
    float magnitude = fabsf(sum);
    peak = magnitude > peak ? magnitude : peak;
  }
  return peak;
}

/* Appends `count` samples (zeros when `samples` is NULL) to a channel's
 * buffer, measures the phases between them and keeps the last TAPS - 1
 * samples for the next call. */
static float oversample_channel(const ap_true_peak_meter_t *meter,
                                float *buffer, const float *samples, int count,
                                float peak) {
  if (samples) {
    memcpy(buffer + TAPS - 1, samples, sizeof(float) * (size_t)count);
  } else {
    memset(buffer + TAPS - 1, 0, sizeof(float) * (size_t)count);
  }

  for (int phase = 1; phase < meter->factor; phase++) {
    float phase_max = phase_peak(
        meter->coefficients + (size_t)(phase - 1) * TAPS, buffer, count);
    peak = phase_max > peak ? phase_max : peak;
  }

  memmove(buffer, buffer + count, sizeof(float) * (TAPS - 1));
  return peak;
}

static void oversample(ap_true_peak_meter_t *meter, const float *const *planes,
                       int frames) {
  float peak = meter->peak;
  for (int offset = 0; offset < frames; offset += STEP_FRAMES) {
    int count = frames - offset < STEP_FRAMES ? frames - offset : STEP_FRAMES;
    for (int c = 0; c < meter->channels; c++) {
      float *buffer = meter->buffers + (size_t)c * (TAPS - 1 + STEP_FRAMES);
      peak = oversample_channel(
          meter, buffer, planes ? planes[c] + offset : NULL, count, peak);
    }
  }
  meter->peak = peak;
}

void ap_true_peak_meter_write(ap_true_peak_meter_t *meter,
                              const float *const *planes, int frames) {
  /* The source samples count too: an interpolator may read a little
   * under a sample peak. */
  float peak = meter->peak;
  for (int c = 0; c < meter->channels; c++) {
    peak = sample_peak(planes[c], frames, peak);
  }
  meter->peak = peak;

  if (meter->factor > 1 && frames > 0) {
    oversample(meter, planes, frames);
  }
}

void ap_true_peak_meter_finish(ap_true_peak_meter_t *meter) {
  /* The phases between the last sample and the silence after it need
   * half a filter length of zeros. */
  if (meter->factor > 1) {
    oversample(meter, NULL, TAPS / 2);
  }
}

double ap_true_peak_meter_peak(const ap_true_peak_meter_t *meter) {
  return meter->peak;
}

void ap_true_peak_meter_free(ap_true_peak_meter_t *meter) {
  if (!meter) {
    return;
  }
  free(meter->coefficients);
  free(meter->buffers);
  free(meter);
}
