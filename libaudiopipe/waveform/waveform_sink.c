/*
 * The waveform builder as a sink of decoded audio. It turns each float
 * sample back into the source's 16-bit integer, keeps the min and max of
 * every pixel's span (per channel, or of the mono mix), and writes the
 * file at the end of the stream.
 *
 * Memory: 4 bytes per pixel per output channel for the finished pixels
 * (pixels x channels x min/max x int16), up to twice that while the array
 * doubles, and a 64 KiB buffer while the file is written. Nothing else
 * grows with the stream's length.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "waveform/waveform_internal.h"
#include "waveform/waveform_sink.h"

/* The reservation made at start from the probe's frame estimate is capped
 * at this many bytes, so a header that lies about its length costs little
 * before any audio arrives. Beyond it the array grows with the audio. */
#define MAX_RESERVED_BYTES (16 * 1024 * 1024)

#define MIN_GROWTH_PIXELS 1024

typedef struct waveform_sink {
  ap_sink_t base; /* first, so an ap_sink_t pointer is the sink's */
  ap_waveform_spec_t spec;
  int started;
  int finished;

  int input_channels;
  int output_channels; /* input_channels, or 1 for the mono mix */
  int sample_rate;
  int samples_per_pixel;

  /* The open pixel: frames seen so far and its running min and max per
   * output channel, kept as samples and converted when the pixel closes. */
  int pixel_frames;
  float *pixel_min;
  float *pixel_max;

  /* Closed pixels: pixels x output_channels x (min, max). */
  int16_t *values;
  size_t capacity_pixels;
  uint32_t pixels;
} waveform_sink_t;

static waveform_sink_t *sink_of(ap_sink_t *sink) {
  return (waveform_sink_t *)sink;
}

/*
 * Converts a decoded sample to the 16-bit integer it came from: a 16-bit
 * source sample s is decoded as exactly s / 32768, so rounding x * 32768
 * (half away from zero, as round() does) restores s. Values beyond full
 * scale are clamped and NaN counts as silence.
 *
 * The conversion never decreases as the sample grows, so the min and max
 * of the converted values are the converted min and max of the samples.
 * The sink relies on that to convert two values per pixel, not every
 * sample.
 */
static int sample_to_int16(float sample) {
  if (isnan(sample)) {
    return 0;
  }

  /* Truncating scaled + 0.5 equals round(scaled): the product is exact,
   * the sum is exact unless |scaled| is below 2^-30 (a float has 24
   * significant bits, a double 53), and for such values both give 0. */
  double scaled = (double)sample * 32768.0;
  if (scaled >= 32767.0) {
    return 32767;
  }
  if (scaled <= -32768.0) {
    return -32768;
  }
  return scaled >= 0.0 ? (int)(scaled + 0.5) : -(int)(0.5 - scaled);
}

static void reset_pixel(waveform_sink_t *sink) {
  sink->pixel_frames = 0;
  for (int c = 0; c < sink->output_channels; c++) {
    sink->pixel_min[c] = INFINITY;
    sink->pixel_max[c] = -INFINITY;
  }
}

/* Grows the pixel array to hold at least `needed` pixels. */
static ap_status_t reserve_pixels(waveform_sink_t *sink, size_t needed,
                                  ap_error_t *error) {
  if (needed <= sink->capacity_pixels) {
    return AP_OK;
  }

  size_t capacity = sink->capacity_pixels;
  if (capacity < MIN_GROWTH_PIXELS) {
    capacity = MIN_GROWTH_PIXELS;
  }
  while (capacity < needed) {
    if (capacity > SIZE_MAX / 2) {
      capacity = needed;
      break;
    }
    capacity *= 2;
  }
  if (capacity > AP_WAVEFORM_MAX_PIXELS) {
    capacity = AP_WAVEFORM_MAX_PIXELS;
  }

  size_t pixel_size = (size_t)sink->output_channels * 2 * sizeof(int16_t);
  if (capacity > SIZE_MAX / pixel_size) {
    return AP_NO_MEMORY(error);
  }
  int16_t *grown = realloc(sink->values, capacity * pixel_size);
  if (!grown) {
    return AP_NO_MEMORY(error);
  }
  sink->values = grown;
  sink->capacity_pixels = capacity;
  return AP_OK;
}

/* Appends the open pixel to the array and starts the next one. */
static ap_status_t close_pixel(waveform_sink_t *sink, ap_error_t *error) {
  /* NOTE: no test reaches this limit, which takes 17 GB of pixels per
   * channel; the overflow guards in reserve_pixels are tested only with
   * small arrays. */
  if (sink->pixels == AP_WAVEFORM_MAX_PIXELS) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_UNSUPPORTED,
                        "the waveform needs more than %lu pixels at %d "
                        "samples per pixel, more than a .dat file can hold: "
                        "use more samples per pixel",
                        (unsigned long)AP_WAVEFORM_MAX_PIXELS,
                        sink->samples_per_pixel);
  }
  ap_status_t status = reserve_pixels(sink, (size_t)sink->pixels + 1, error);
  if (status != AP_OK) {
    return status;
  }

  int16_t *pair =
      sink->values + (size_t)sink->pixels * (size_t)sink->output_channels * 2;
  for (int c = 0; c < sink->output_channels; c++) {
    pair[2 * c] = (int16_t)sample_to_int16(sink->pixel_min[c]);
    pair[2 * c + 1] = (int16_t)sample_to_int16(sink->pixel_max[c]);
  }
  sink->pixels++;
  reset_pixel(sink);
  return AP_OK;
}

/* Resolves the pixel scale for the stream's rate and reserves memory. */
static ap_status_t waveform_start(ap_sink_t *base,
                                  const ap_stream_format_t *format,
                                  ap_error_t *error) {
  waveform_sink_t *sink = sink_of(base);
  if (!format) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "waveform sink: the stream format is required");
  }
  if (sink->started) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                        "waveform sink: start was called twice");
  }
  if (format->sample_rate <= 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_SAMPLE_RATE_UNSUPPORTED,
                        "waveform: sample rate %d Hz is invalid: it must be "
                        "positive",
                        format->sample_rate);
  }
  if (format->channels < 1 || format->channels > AP_WAVEFORM_MAX_CHANNELS) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CHANNELS_UNSUPPORTED,
                        "waveform: %d channels is unsupported: use 1 to %d",
                        format->channels, AP_WAVEFORM_MAX_CHANNELS);
  }

  int samples_per_pixel = sink->spec.samples_per_pixel;
  if (sink->spec.pixels_per_second > 0) {
    samples_per_pixel = format->sample_rate / sink->spec.pixels_per_second;
    if (samples_per_pixel < 1) {
      return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                          "waveform pixels_per_second %d is above the sample "
                          "rate of %d Hz: use at most %d",
                          sink->spec.pixels_per_second, format->sample_rate,
                          format->sample_rate);
    }
  }

  sink->input_channels = format->channels;
  sink->output_channels = sink->spec.split_channels ? format->channels : 1;
  sink->sample_rate = format->sample_rate;
  sink->samples_per_pixel = samples_per_pixel;
  sink->pixel_min = calloc((size_t)sink->output_channels, sizeof(float));
  sink->pixel_max = calloc((size_t)sink->output_channels, sizeof(float));
  if (!sink->pixel_min || !sink->pixel_max) {
    return AP_NO_MEMORY(error);
  }
  reset_pixel(sink);

  /* The estimate comes from headers, which may lie, hence the cap. */
  if (format->expected_frames > 0) {
    /* Whole pixels plus one partial pixel, computed so that no step can
     * overflow even for an estimate of INT64_MAX frames. */
    int64_t pixel_size = (int64_t)sink->output_channels * 2 * 2;
    int64_t reserve_limit = MAX_RESERVED_BYTES / pixel_size;
    int64_t expected_pixels = format->expected_frames / samples_per_pixel;
    if (expected_pixels >= reserve_limit) {
      expected_pixels = reserve_limit;
    } else {
      expected_pixels++;
    }
    ap_status_t status = reserve_pixels(sink, (size_t)expected_pixels, error);
    if (status != AP_OK) {
      return status;
    }
  }

  sink->started = 1;
  return AP_OK;
}

/* Folds frames [first, first + count) into the open pixel. */
static void accumulate(waveform_sink_t *sink, const float *const *planes,
                       int first, int count) {
  /* One track per channel, or a mono source: compare the samples
   * themselves. NaN becomes 0 here so that it counts as silence. */
  if (sink->spec.split_channels || sink->input_channels == 1) {
    for (int c = 0; c < sink->output_channels; c++) {
      const float *plane = planes[c] + first;
      float low = sink->pixel_min[c];
      float high = sink->pixel_max[c];
      for (int i = 0; i < count; i++) {
        float sample = isnan(plane[i]) ? 0.0f : plane[i];
        low = sample < low ? sample : low;
        high = sample > high ? sample : high;
      }
      sink->pixel_min[c] = low;
      sink->pixel_max[c] = high;
    }
    return;
  }

  /* Mono mix: the integer mean of the channels' 16-bit values, truncated
   * toward zero as audiowaveform computes it. The mean is kept as the
   * sample it stands for, mean / 32768, which is exact in a float and
   * converts back to the same integer. */
  int low = INT_MAX;
  int high = INT_MIN;
  for (int i = 0; i < count; i++) {
    int32_t sum = 0;
    for (int c = 0; c < sink->input_channels; c++) {
      sum += sample_to_int16(planes[c][first + i]);
    }
    int value = (int)(sum / sink->input_channels);
    low = value < low ? value : low;
    high = value > high ? value : high;
  }
  if (count > 0) {
    float low_sample = (float)low / 32768.0f;
    float high_sample = (float)high / 32768.0f;
    if (low_sample < sink->pixel_min[0]) {
      sink->pixel_min[0] = low_sample;
    }
    if (high_sample > sink->pixel_max[0]) {
      sink->pixel_max[0] = high_sample;
    }
  }
}

static ap_status_t waveform_write(ap_sink_t *base, const float *const *planes,
                                  int frames, ap_error_t *error) {
  waveform_sink_t *sink = sink_of(base);
  if (!sink->started || sink->finished) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                        "waveform sink: write called %s",
                        sink->started ? "after finish" : "before start");
  }
  if (frames < 0 || (frames > 0 && !planes)) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "waveform sink: invalid block of %d frames", frames);
  }

  /* A block may end inside a pixel and the next block continue it. */
  int done = 0;
  while (done < frames) {
    int room = sink->samples_per_pixel - sink->pixel_frames;
    int count = frames - done < room ? frames - done : room;
    accumulate(sink, planes, done, count);
    sink->pixel_frames += count;
    done += count;

    if (sink->pixel_frames == sink->samples_per_pixel) {
      ap_status_t status = close_pixel(sink, error);
      if (status != AP_OK) {
        return status;
      }
    }
  }
  return AP_OK;
}

/* Keeps a last partial pixel, scales the values when the spec requests 8
 * bits, and writes the file to the spec's output. */
static ap_status_t waveform_finish(ap_sink_t *base, ap_error_t *error) {
  waveform_sink_t *sink = sink_of(base);
  if (!sink->started || sink->finished) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                        "waveform sink: finish called %s",
                        sink->started ? "twice" : "before start");
  }
  if (sink->pixel_frames > 0) {
    ap_status_t status = close_pixel(sink, error);
    if (status != AP_OK) {
      return status;
    }
  }
  sink->finished = 1;

  size_t count = (size_t)sink->pixels * (size_t)sink->output_channels * 2;
  if (sink->spec.bits == 8) {
    for (size_t i = 0; i < count; i++) {
      sink->values[i] = (int16_t)(sink->values[i] / 256);
    }
  }

  ap_waveform_t waveform = {
      .version = 2,
      .channels = sink->output_channels,
      .sample_rate = sink->sample_rate,
      .samples_per_pixel = sink->samples_per_pixel,
      .bits = sink->spec.bits,
      .length = sink->pixels,
      .values = sink->values,
  };
  return ap_waveform_write(&waveform, sink->spec.format, sink->spec.output,
                           error);
}

static void waveform_destroy(ap_sink_t *base) {
  waveform_sink_t *sink = sink_of(base);
  if (!sink) {
    return;
  }
  free(sink->pixel_min);
  free(sink->pixel_max);
  free(sink->values);
  free(sink);
}

static const ap_sink_ops_t waveform_sink_ops = {
    .name = "waveform",
    .start = waveform_start,
    .write = waveform_write,
    .finish = waveform_finish,
    .destroy = waveform_destroy,
};

ap_status_t ap_waveform_sink_create(const ap_waveform_spec_t *spec,
                                    ap_sink_t **out, ap_error_t *error) {
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "ap_waveform_sink_create: out is required");
  }
  *out = NULL;
  ap_status_t status = ap_waveform_spec_validate(spec, error);
  if (status != AP_OK) {
    return status;
  }

  waveform_sink_t *sink = calloc(1, sizeof *sink);
  if (!sink) {
    return AP_NO_MEMORY(error);
  }
  sink->base.ops = &waveform_sink_ops;
  sink->base.wants_thread = 0;
  memcpy(&sink->spec, spec, sizeof sink->spec);
  sink->spec.struct_size = sizeof sink->spec;
  *out = &sink->base;
  return AP_OK;
}

int64_t ap_waveform_sink_pixels(const ap_sink_t *base) {
  const waveform_sink_t *sink = (const waveform_sink_t *)base;
  return sink ? (int64_t)sink->pixels : 0;
}

int ap_waveform_sink_samples_per_pixel(const ap_sink_t *base) {
  const waveform_sink_t *sink = (const waveform_sink_t *)base;
  return sink ? sink->samples_per_pixel : 0;
}
