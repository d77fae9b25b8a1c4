/*
 * Tests for the waveform builder, the .dat and JSON writers and the .dat
 * parser, on synthetic signals whose min and max are known by
 * construction.
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/waveform.h>

#include "waveform/waveform_sink.h"

/* A planar signal owned by the test. */
typedef struct signal {
  int channels;
  int frames;
  float *planes[8];
} signal_t;

static signal_t signal_new(int channels, int frames) {
  signal_t signal = {.channels = channels, .frames = frames};
  for (int c = 0; c < channels; c++) {
    signal.planes[c] = calloc((size_t)(frames > 0 ? frames : 1), sizeof(float));
    assert_non_null(signal.planes[c]);
  }
  return signal;
}

static void signal_free(signal_t *signal) {
  for (int c = 0; c < signal->channels; c++) {
    free(signal->planes[c]);
  }
}

/* Sets a sample from its 16-bit value, as the decoder delivers it. */
static void signal_set(signal_t *signal, int channel, int frame, int value) {
  signal->planes[channel][frame] = (float)value / 32768.0f;
}

/* A deterministic noise signal with full-scale values included. */
static signal_t signal_noise(int channels, int frames, uint32_t seed) {
  signal_t signal = signal_new(channels, frames);
  uint32_t state = seed;
  for (int c = 0; c < channels; c++) {
    for (int i = 0; i < frames; i++) {
      state = state * 1664525u + 1013904223u;
      int value = (int)(state >> 16) - 32768;
      signal_set(&signal, c, i, value);
    }
  }
  return signal;
}

static ap_waveform_spec_t spec_for(ap_waveform_format_t format, int bits,
                                   int samples_per_pixel, int split,
                                   ap_output_t *output) {
  ap_waveform_spec_t spec;
  ap_waveform_spec_init(&spec);
  spec.format = format;
  spec.bits = bits;
  spec.samples_per_pixel = samples_per_pixel;
  spec.split_channels = split;
  spec.output = output;
  return spec;
}

/*
 * Runs `signal` through a sink for `spec` in blocks of `block` frames and
 * returns the bytes written in a new buffer (free it), storing its size.
 */
static unsigned char *run_sink(const ap_waveform_spec_t *spec_template,
                               const signal_t *signal, int sample_rate,
                               int block, size_t *size) {
  ap_error_t error = {0};
  ap_output_t *output = NULL;
  assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);
  ap_waveform_spec_t spec = *spec_template;
  spec.output = output;

  ap_sink_t *sink = NULL;
  assert_int_equal(ap_waveform_sink_create(&spec, &sink, &error), AP_OK);
  ap_stream_format_t format = {.sample_rate = sample_rate,
                               .channels = signal->channels,
                               .channel_mask = 0,
                               .expected_frames = signal->frames};
  assert_int_equal(sink->ops->start(sink, &format, &error), AP_OK);

  for (int first = 0; first < signal->frames; first += block) {
    int count = signal->frames - first < block ? signal->frames - first : block;
    const float *planes[8];
    for (int c = 0; c < signal->channels; c++) {
      planes[c] = signal->planes[c] + first;
    }
    assert_int_equal(sink->ops->write(sink, planes, count, &error), AP_OK);
  }
  assert_int_equal(sink->ops->finish(sink, &error), AP_OK);
  sink->ops->destroy(sink);

  size_t length = 0;
  const void *data = ap_output_memory_data(output, &length);
  unsigned char *copy = malloc(length + 1);
  assert_non_null(copy);
  if (length > 0) {
    memcpy(copy, data, length);
  }
  copy[length] = '\0';
  *size = length;
  ap_output_close(output);
  return copy;
}

static uint32_t read_u32(const unsigned char *bytes) {
  return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 |
         (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

static int read_i16(const unsigned char *bytes) {
  int value = bytes[0] | bytes[1] << 8;
  return value >= 32768 ? value - 65536 : value;
}

/* Builds a .dat file by hand: `fields` are the header's int32 values. */
static size_t make_dat(unsigned char *bytes, const uint32_t *fields,
                       int field_count, const int16_t *values, int value_count,
                       int value_size) {
  size_t used = 0;
  for (int i = 0; i < field_count; i++) {
    for (int b = 0; b < 4; b++) {
      bytes[used++] = (unsigned char)(fields[i] >> (8 * b));
    }
  }
  for (int i = 0; i < value_count; i++) {
    uint16_t bits = (uint16_t)values[i];
    bytes[used++] = (unsigned char)(bits & 0xFF);
    if (value_size == 2) {
      bytes[used++] = (unsigned char)(bits >> 8);
    }
  }
  return used;
}

static void spec_init_sets_defaults(void **state) {
  (void)state;
  ap_waveform_spec_t spec;
  memset(&spec, 0x5A, sizeof spec);
  ap_waveform_spec_init(&spec);
  assert_int_equal(spec.struct_size, sizeof spec);
  assert_int_equal(spec.format, AP_WAVEFORM_DAT);
  assert_int_equal(spec.bits, 16);
  assert_int_equal(spec.samples_per_pixel, 256);
  assert_int_equal(spec.pixels_per_second, 0);
  assert_int_equal(spec.split_channels, 0);
  assert_null(spec.output);
}

/* One invalid field per row, with the word its message must contain. */
typedef struct invalid_spec_case {
  const char *field;
  void (*spoil)(ap_waveform_spec_t *spec);
} invalid_spec_case_t;

static void spoil_struct_size(ap_waveform_spec_t *spec) {
  spec->struct_size = 4;
}
static void spoil_format(ap_waveform_spec_t *spec) {
  spec->format = (ap_waveform_format_t)7;
}
static void spoil_bits(ap_waveform_spec_t *spec) { spec->bits = 12; }
static void spoil_both_scales(ap_waveform_spec_t *spec) {
  spec->pixels_per_second = 100;
}
static void spoil_no_scale(ap_waveform_spec_t *spec) {
  spec->samples_per_pixel = 0;
}
static void spoil_samples_per_pixel_low(ap_waveform_spec_t *spec) {
  spec->samples_per_pixel = -5;
}
static void spoil_samples_per_pixel_high(ap_waveform_spec_t *spec) {
  spec->samples_per_pixel = (1 << 24) + 1;
}
static void spoil_pixels_per_second_low(ap_waveform_spec_t *spec) {
  spec->samples_per_pixel = 0;
  spec->pixels_per_second = -1;
}
static void spoil_pixels_per_second_high(ap_waveform_spec_t *spec) {
  spec->samples_per_pixel = 0;
  spec->pixels_per_second = 48001;
}
static void spoil_split(ap_waveform_spec_t *spec) { spec->split_channels = 2; }
static void spoil_output(ap_waveform_spec_t *spec) { spec->output = NULL; }

static void spec_validate_names_field(void **state) {
  (void)state;
  const invalid_spec_case_t cases[] = {
      {"struct_size", spoil_struct_size},
      {"format", spoil_format},
      {"bits", spoil_bits},
      {"pixels_per_second", spoil_both_scales},
      {"samples_per_pixel", spoil_no_scale},
      {"samples_per_pixel", spoil_samples_per_pixel_low},
      {"1 to 16777216", spoil_samples_per_pixel_high},
      {"pixels_per_second", spoil_pixels_per_second_low},
      {"1 to 48000", spoil_pixels_per_second_high},
      {"split_channels", spoil_split},
      {"output", spoil_output},
  };
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);

  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 256, 0, output);
  assert_int_equal(ap_waveform_spec_validate(&spec, &error), AP_OK);
  assert_int_equal(ap_waveform_spec_validate(NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    spec = spec_for(AP_WAVEFORM_DAT, 16, 256, 0, output);
    cases[i].spoil(&spec);
    ap_error_clear(&error);
    assert_int_equal(ap_waveform_spec_validate(&spec, &error),
                     AP_ERR_INVALID_ARGUMENT);
    assert_int_equal(error.code, AP_ERR_INVALID_ARGUMENT);
    if (!strstr(error.message, cases[i].field)) {
      fail_msg("case %zu: \"%s\" does not name %s", i, error.message,
               cases[i].field);
    }

    ap_sink_t *sink = NULL;
    assert_int_equal(ap_waveform_sink_create(&spec, &sink, &error),
                     AP_ERR_INVALID_ARGUMENT);
    assert_null(sink);
  }
  ap_output_close(output);
}

static void dat_header_layout(void **state) {
  (void)state;
  signal_t signal = signal_new(2, 10);
  for (int i = 0; i < 10; i++) {
    signal_set(&signal, 0, i, i * 100 - 300);
    signal_set(&signal, 1, i, -(i * 1000));
  }
  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 4, 1, NULL);
  size_t size = 0;
  unsigned char *bytes = run_sink(&spec, &signal, 22050, 4096, &size);

  /* 3 pixels (4 + 4 + 2 frames) x 2 channels x 2 values x 2 bytes. */
  assert_int_equal(size, 24 + 3 * 2 * 2 * 2);
  assert_int_equal(read_u32(bytes + 0), 2);     /* version */
  assert_int_equal(read_u32(bytes + 4), 0);     /* flags: 16-bit */
  assert_int_equal(read_u32(bytes + 8), 22050); /* sample rate */
  assert_int_equal(read_u32(bytes + 12), 4);    /* samples per pixel */
  assert_int_equal(read_u32(bytes + 16), 3);    /* length in pixels */
  assert_int_equal(read_u32(bytes + 20), 2);    /* channels */

  /* Pixel 0: left -300..0, right -3000..0; the last pixel is partial. */
  const int expected[] = {-300,  0,     -3000, 0,   100,   400,
                          -7000, -4000, 500,   600, -9000, -8000};
  for (int i = 0; i < 12; i++) {
    assert_int_equal(read_i16(bytes + 24 + 2 * i), expected[i]);
  }
  /* Little-endian: -300 is 0xFED4, low byte first. */
  assert_int_equal(bytes[24], 0xD4);
  assert_int_equal(bytes[25], 0xFE);
  free(bytes);
  signal_free(&signal);
}

static void dat_8bit_truncates_toward_zero(void **state) {
  (void)state;
  /* One sample per pixel, so each pixel's min and max is that value. */
  const int inputs[] = {32767, -32768, -32767, 255,  -255,
                        256,   -256,   511,    -511, 0};
  const int expected[] = {127, -128, -127, 0, 0, 1, -1, 1, -1, 0};
  signal_t signal = signal_new(1, 10);
  for (int i = 0; i < 10; i++) {
    signal_set(&signal, 0, i, inputs[i]);
  }
  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 8, 1, 0, NULL);
  size_t size = 0;
  unsigned char *bytes = run_sink(&spec, &signal, 8000, 3, &size);

  assert_int_equal(size, 24 + 10 * 2);
  assert_int_equal(read_u32(bytes + 4), 1); /* flags: 8-bit */
  assert_int_equal(read_u32(bytes + 20), 1);
  for (int i = 0; i < 10; i++) {
    assert_int_equal((int8_t)bytes[24 + 2 * i], expected[i]);
    assert_int_equal((int8_t)bytes[24 + 2 * i + 1], expected[i]);
  }
  free(bytes);
  signal_free(&signal);
}

static void json_key_order_and_integers(void **state) {
  (void)state;
  signal_t signal = signal_new(2, 5);
  const int left[] = {-32768, 32767, 10, -10, 7};
  const int right[] = {1, 2, 3, 4, -6};
  for (int i = 0; i < 5; i++) {
    signal_set(&signal, 0, i, left[i]);
    signal_set(&signal, 1, i, right[i]);
  }
  size_t size = 0;

  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_JSON, 16, 2, 1, NULL);
  char *json = (char *)run_sink(&spec, &signal, 44100, 4096, &size);
  assert_string_equal(json,
                      "{\"version\":2,\"channels\":2,\"sample_rate\":44100,"
                      "\"samples_per_pixel\":2,\"bits\":16,\"length\":3,"
                      "\"data\":[-32768,32767,1,2,-10,10,3,4,7,7,-6,-6]}");
  free(json);

  /* Mono: the mean truncates toward zero, so (7 + -6) / 2 is 0 and
   * (-32768 + 1) / 2 is -16383, not -16384. */
  spec = spec_for(AP_WAVEFORM_JSON, 16, 2, 0, NULL);
  json = (char *)run_sink(&spec, &signal, 44100, 4096, &size);
  assert_string_equal(json,
                      "{\"version\":2,\"channels\":1,\"sample_rate\":44100,"
                      "\"samples_per_pixel\":2,\"bits\":16,\"length\":3,"
                      "\"data\":[-16383,16384,-3,6,0,0]}");
  free(json);

  spec = spec_for(AP_WAVEFORM_JSON, 8, 2, 0, NULL);
  json = (char *)run_sink(&spec, &signal, 44100, 4096, &size);
  assert_string_equal(json,
                      "{\"version\":2,\"channels\":1,\"sample_rate\":44100,"
                      "\"samples_per_pixel\":2,\"bits\":8,\"length\":3,"
                      "\"data\":[-63,64,0,0,0,0]}");
  free(json);
  signal_free(&signal);
}

static void partial_last_pixel_kept(void **state) {
  (void)state;
  signal_t signal = signal_new(1, 1001);
  for (int i = 0; i < 1001; i++) {
    signal_set(&signal, 0, i, i < 1000 ? 5 : -9);
  }
  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 100, 0, NULL);
  size_t size = 0;
  unsigned char *bytes = run_sink(&spec, &signal, 48000, 4096, &size);

  ap_waveform_t *waveform = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_waveform_parse_dat(bytes, size, &waveform, &error),
                   AP_OK);
  assert_int_equal(ap_waveform_length(waveform), 11);
  assert_int_equal(ap_waveform_min(waveform, 9, 0), 5);
  assert_int_equal(ap_waveform_max(waveform, 9, 0), 5);
  assert_int_equal(ap_waveform_min(waveform, 10, 0), -9);
  assert_int_equal(ap_waveform_max(waveform, 10, 0), -9);
  ap_waveform_free(waveform);
  free(bytes);
  signal_free(&signal);
}

static void zero_frames_valid_header(void **state) {
  (void)state;
  signal_t signal = signal_new(2, 0);
  size_t size = 0;

  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 256, 1, NULL);
  unsigned char *bytes = run_sink(&spec, &signal, 44100, 4096, &size);
  assert_int_equal(size, 24);
  assert_int_equal(read_u32(bytes + 0), 2);
  assert_int_equal(read_u32(bytes + 8), 44100);
  assert_int_equal(read_u32(bytes + 12), 256);
  assert_int_equal(read_u32(bytes + 16), 0);
  assert_int_equal(read_u32(bytes + 20), 2);

  ap_waveform_t *waveform = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_waveform_parse_dat(bytes, size, &waveform, &error),
                   AP_OK);
  assert_int_equal(ap_waveform_length(waveform), 0);
  assert_int_equal(ap_waveform_channels(waveform), 2);
  ap_waveform_free(waveform);
  free(bytes);

  spec = spec_for(AP_WAVEFORM_JSON, 8, 256, 0, NULL);
  char *json = (char *)run_sink(&spec, &signal, 44100, 4096, &size);
  assert_string_equal(json,
                      "{\"version\":2,\"channels\":1,\"sample_rate\":44100,"
                      "\"samples_per_pixel\":256,\"bits\":8,\"length\":0,"
                      "\"data\":[]}");
  free(json);
  signal_free(&signal);
}

static void block_boundaries_do_not_matter(void **state) {
  (void)state;
  signal_t signal = signal_noise(3, 20011, 7);
  const int blocks[] = {1, 7, 4096, 20011};
  const int scales[] = {1, 441, 4096, 5000};
  for (int split = 0; split <= 1; split++) {
    for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
      ap_waveform_spec_t spec =
          spec_for(AP_WAVEFORM_DAT, 16, scales[s], split, NULL);
      size_t reference_size = 0;
      unsigned char *reference =
          run_sink(&spec, &signal, 44100, blocks[0], &reference_size);
      for (size_t b = 1; b < sizeof blocks / sizeof blocks[0]; b++) {
        size_t size = 0;
        unsigned char *bytes =
            run_sink(&spec, &signal, 44100, blocks[b], &size);
        assert_int_equal(size, reference_size);
        assert_memory_equal(bytes, reference, size);
        free(bytes);
      }
      free(reference);
    }
  }
  signal_free(&signal);
}

static void samples_become_int16(void **state) {
  (void)state;
  /* Beyond full scale clamps, NaN is silence, and values between two
   * integers round to the nearer one. */
  const float inputs[] = {1.5f,
                          -1.5f,
                          1.05f,
                          -1.05f,
                          NAN,
                          100.4f / 32768.0f,
                          -100.6f / 32768.0f,
                          32767.0f / 32768.0f};
  const int expected[] = {32767, -32768, 32767, -32768, 0, 100, -101, 32767};
  enum { COUNT = sizeof expected / sizeof expected[0] };
  signal_t signal = signal_new(1, COUNT);
  for (int i = 0; i < COUNT; i++) {
    signal.planes[0][i] = inputs[i];
  }

  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 1, 0, NULL);
  size_t size = 0;
  unsigned char *bytes = run_sink(&spec, &signal, 8000, 4096, &size);
  assert_int_equal(size, 24 + COUNT * 4);
  for (int i = 0; i < COUNT; i++) {
    assert_int_equal(read_i16(bytes + 24 + 4 * i), expected[i]);
    assert_int_equal(read_i16(bytes + 26 + 4 * i), expected[i]);
  }
  free(bytes);
  signal_free(&signal);
}

/* The conversion rule written plainly: round half away from zero, then
 * clamp, with NaN as 0. */
static int reference_int16(float sample) {
  if (isnan(sample)) {
    return 0;
  }
  double scaled = round((double)sample * 32768.0);
  if (scaled > 32767.0) {
    return 32767;
  }
  if (scaled < -32768.0) {
    return -32768;
  }
  return (int)scaled;
}

static void float_samples_round_half_away(void **state) {
  (void)state;
  /* Samples that are not multiples of 1 / 32768 (24-bit and float
   * sources), halves, tiny values and values beyond full scale. */
  enum { FRAMES = 60000 };
  signal_t signal = signal_new(2, FRAMES);
  uint32_t seed = 99;
  for (int c = 0; c < 2; c++) {
    for (int i = 0; i < FRAMES; i++) {
      seed = seed * 1664525u + 1013904223u;
      double unit = (double)seed / 4294967296.0 * 2.2 - 1.1;
      float sample = (float)unit;
      if (i % 5 == 1) {
        sample = (float)((int)(unit * 32768.0) + 0.5) / 32768.0f;
      } else if (i % 5 == 2) {
        sample = (float)(unit * 1e-9);
      }
      signal.planes[c][i] = sample;
    }
  }

  for (int split = 0; split <= 1; split++) {
    ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 1, split, NULL);
    size_t size = 0;
    unsigned char *bytes = run_sink(&spec, &signal, 48000, 4096, &size);
    int channels = split ? 2 : 1;
    assert_int_equal(size, 24 + (size_t)FRAMES * (size_t)channels * 4);
    for (int i = 0; i < FRAMES; i++) {
      for (int c = 0; c < channels; c++) {
        int expected = split ? reference_int16(signal.planes[c][i])
                             : (reference_int16(signal.planes[0][i]) +
                                reference_int16(signal.planes[1][i])) /
                                   2;
        const unsigned char *pair = bytes + 24 + (i * channels + c) * 4;
        if (read_i16(pair) != expected || read_i16(pair + 2) != expected) {
          fail_msg("split %d frame %d channel %d: %d/%d, expected %d", split, i,
                   c, read_i16(pair), read_i16(pair + 2), expected);
        }
      }
    }
    free(bytes);
  }
  signal_free(&signal);
}

/* Starts a sink on `format` and returns start's status. */
static ap_status_t start_with(const ap_waveform_spec_t *spec_template,
                              ap_stream_format_t format, int *samples_per_pixel,
                              ap_error_t *error) {
  ap_output_t *output = NULL;
  assert_int_equal(ap_output_open_memory(&output, error), AP_OK);
  ap_waveform_spec_t spec = *spec_template;
  spec.output = output;
  ap_sink_t *sink = NULL;
  assert_int_equal(ap_waveform_sink_create(&spec, &sink, error), AP_OK);
  ap_status_t status = sink->ops->start(sink, &format, error);
  *samples_per_pixel = ap_waveform_sink_samples_per_pixel(sink);
  sink->ops->destroy(sink);
  ap_output_close(output);
  return status;
}

static void pixels_per_second_floors(void **state) {
  (void)state;
  ap_error_t error = {0};
  int samples_per_pixel = 0;
  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 0, 0, NULL);
  ap_stream_format_t format = {
      .sample_rate = 44100, .channels = 1, .expected_frames = -1};

  spec.pixels_per_second = 100;
  assert_int_equal(start_with(&spec, format, &samples_per_pixel, &error),
                   AP_OK);
  assert_int_equal(samples_per_pixel, 441);

  format.sample_rate = 48000;
  spec.pixels_per_second = 7;
  assert_int_equal(start_with(&spec, format, &samples_per_pixel, &error),
                   AP_OK);
  assert_int_equal(samples_per_pixel, 6857);

  format.sample_rate = 8000;
  spec.pixels_per_second = 8001;
  assert_int_equal(start_with(&spec, format, &samples_per_pixel, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "pixels_per_second 8001"));
}

static void start_rejects_hostile_format(void **state) {
  (void)state;
  ap_error_t error = {0};
  int samples_per_pixel = 0;
  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 1, 1, NULL);

  ap_stream_format_t format = {.sample_rate = 0, .channels = 1};
  assert_int_equal(start_with(&spec, format, &samples_per_pixel, &error),
                   AP_ERR_SAMPLE_RATE_UNSUPPORTED);
  format.sample_rate = -44100;
  assert_int_equal(start_with(&spec, format, &samples_per_pixel, &error),
                   AP_ERR_SAMPLE_RATE_UNSUPPORTED);
  format = (ap_stream_format_t){.sample_rate = 44100, .channels = 0};
  assert_int_equal(start_with(&spec, format, &samples_per_pixel, &error),
                   AP_ERR_CHANNELS_UNSUPPORTED);
  format.channels = 256;
  assert_int_equal(start_with(&spec, format, &samples_per_pixel, &error),
                   AP_ERR_CHANNELS_UNSUPPORTED);

  /* A header claiming 2^63 frames at the highest rate with one sample per
   * pixel must not make the sink reserve memory for them. */
  format = (ap_stream_format_t){
      .sample_rate = INT_MAX, .channels = 255, .expected_frames = INT64_MAX};
  assert_int_equal(start_with(&spec, format, &samples_per_pixel, &error),
                   AP_OK);
  spec.samples_per_pixel = 0;
  spec.pixels_per_second = 48000;
  assert_int_equal(start_with(&spec, format, &samples_per_pixel, &error),
                   AP_OK);
  assert_int_equal(samples_per_pixel, INT_MAX / 48000);
}

static void sink_reports_pixels(void **state) {
  (void)state;
  ap_error_t error = {0};
  ap_output_t *output = NULL;
  assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);
  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 300, 0, output);
  ap_sink_t *sink = NULL;
  assert_int_equal(ap_waveform_sink_create(&spec, &sink, &error), AP_OK);
  assert_string_equal(sink->ops->name, "waveform");

  ap_stream_format_t format = {
      .sample_rate = 48000, .channels = 2, .expected_frames = -1};
  assert_int_equal(sink->ops->start(sink, &format, &error), AP_OK);
  signal_t signal = signal_noise(2, 1000, 3);
  const float *planes[2] = {signal.planes[0], signal.planes[1]};
  assert_int_equal(sink->ops->write(sink, planes, 1000, &error), AP_OK);
  assert_int_equal(sink->ops->finish(sink, &error), AP_OK);
  assert_int_equal(ap_waveform_sink_pixels(sink), 4);
  assert_int_equal(ap_waveform_sink_samples_per_pixel(sink), 300);

  /* The sink leaves the output open for the pipeline to finish. */
  assert_int_equal(ap_output_write(output, "x", 1, &error), AP_OK);
  assert_int_equal(ap_output_finish(output, &error), AP_OK);

  /* Calls out of order are reported, not crashed on. */
  assert_int_equal(sink->ops->finish(sink, &error), AP_ERR_INTERNAL);
  assert_int_equal(sink->ops->write(sink, planes, 1, &error), AP_ERR_INTERNAL);
  sink->ops->destroy(sink);
  ap_output_close(output);
  signal_free(&signal);
}

/* Records the write calls a callback output receives. */
typedef struct write_log {
  int writes;
  size_t largest;
  size_t total;
  int fail;
} write_log_t;

static int log_write(void *user_data, const void *data, size_t size,
                     ap_error_t *error) {
  (void)data;
  (void)error;
  write_log_t *log = user_data;
  if (log->fail) {
    return -1;
  }
  log->writes++;
  log->total += size;
  if (size > log->largest) {
    log->largest = size;
  }
  return 0;
}

/* Runs a sink to a callback output; returns finish's status. */
static ap_status_t run_to_log(ap_waveform_format_t format_kind,
                              const signal_t *signal, write_log_t *log,
                              ap_error_t *error) {
  ap_output_callbacks_t callbacks = {.struct_size = sizeof callbacks,
                                     .write = log_write};
  ap_output_t *output = NULL;
  assert_int_equal(ap_output_open_callbacks(&callbacks, log, &output, error),
                   AP_OK);
  ap_waveform_spec_t spec = spec_for(format_kind, 16, 1, 1, output);
  ap_sink_t *sink = NULL;
  assert_int_equal(ap_waveform_sink_create(&spec, &sink, error), AP_OK);
  ap_stream_format_t format = {.sample_rate = 48000,
                               .channels = signal->channels,
                               .expected_frames = signal->frames};
  assert_int_equal(sink->ops->start(sink, &format, error), AP_OK);
  for (int first = 0; first < signal->frames; first += 4096) {
    int count = signal->frames - first < 4096 ? signal->frames - first : 4096;
    const float *planes[8];
    for (int c = 0; c < signal->channels; c++) {
      planes[c] = signal->planes[c] + first;
    }
    assert_int_equal(sink->ops->write(sink, planes, count, error), AP_OK);
  }
  ap_status_t status = sink->ops->finish(sink, error);
  sink->ops->destroy(sink);
  ap_output_close(output);
  return status;
}

static void json_streams_in_chunks(void **state) {
  (void)state;
  /* 200000 pixels x 2 channels of up to 7 characters each is about 5 MB
   * of JSON, which must reach the output in bounded pieces. */
  signal_t signal = signal_noise(2, 200000, 11);
  write_log_t log = {0};
  ap_error_t error = {0};
  assert_int_equal(run_to_log(AP_WAVEFORM_JSON, &signal, &log, &error), AP_OK);
  assert_true(log.writes > 10);
  assert_true(log.largest <= 64 * 1024);
  assert_true(log.total > 200000 * 4 * 2);

  write_log_t dat_log = {0};
  assert_int_equal(run_to_log(AP_WAVEFORM_DAT, &signal, &dat_log, &error),
                   AP_OK);
  assert_int_equal(dat_log.total, 24 + 200000 * 2 * 2 * 2);
  assert_true(dat_log.largest <= 64 * 1024);
  signal_free(&signal);
}

static void output_failure_is_returned(void **state) {
  (void)state;
  signal_t signal = signal_noise(1, 100, 5);
  write_log_t log = {.fail = 1};
  ap_error_t error = {0};
  assert_int_equal(run_to_log(AP_WAVEFORM_DAT, &signal, &log, &error),
                   AP_ERR_IO);
  assert_int_equal(error.code, AP_ERR_IO);
  signal_free(&signal);
}

static void parse_reads_version_1(void **state) {
  (void)state;
  unsigned char bytes[64];
  const uint32_t fields[] = {1, 0, 8000, 80, 2};
  const int16_t values[] = {-5, 6, -32768, 32767};
  size_t size = make_dat(bytes, fields, 5, values, 4, 2);
  assert_int_equal(size, 28);

  ap_waveform_t *waveform = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_waveform_parse_dat(bytes, size, &waveform, &error),
                   AP_OK);
  assert_int_equal(ap_waveform_version(waveform), 1);
  assert_int_equal(ap_waveform_channels(waveform), 1);
  assert_int_equal(ap_waveform_sample_rate(waveform), 8000);
  assert_int_equal(ap_waveform_samples_per_pixel(waveform), 80);
  assert_int_equal(ap_waveform_bits(waveform), 16);
  assert_int_equal(ap_waveform_length(waveform), 2);
  assert_int_equal(ap_waveform_min(waveform, 0, 0), -5);
  assert_int_equal(ap_waveform_max(waveform, 0, 0), 6);
  assert_int_equal(ap_waveform_min(waveform, 1, 0), -32768);
  assert_int_equal(ap_waveform_max(waveform, 1, 0), 32767);
  /* Out of range reads return 0. */
  assert_int_equal(ap_waveform_min(waveform, 2, 0), 0);
  assert_int_equal(ap_waveform_min(waveform, -1, 0), 0);
  assert_int_equal(ap_waveform_max(waveform, 0, 1), 0);
  ap_waveform_free(waveform);

  /* The JSON form of a version 1 file is version 2 with one channel. */
  ap_output_t *output = NULL;
  assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);
  assert_int_equal(ap_waveform_dat_to_json(bytes, size, output, &error), AP_OK);
  size_t json_size = 0;
  const char *json = ap_output_memory_data(output, &json_size);
  const char expected[] = "{\"version\":2,\"channels\":1,\"sample_rate\":8000,"
                          "\"samples_per_pixel\":80,\"bits\":16,\"length\":2,"
                          "\"data\":[-5,6,-32768,32767]}";
  assert_int_equal(json_size, strlen(expected));
  assert_memory_equal(json, expected, json_size);
  ap_output_close(output);
}

static void parse_reads_version_2_8bit(void **state) {
  (void)state;
  unsigned char bytes[64];
  const uint32_t fields[] = {2, 1, 44100, 512, 2, 2};
  const int16_t values[] = {-128, 127, -1, 1, 0, 0, -3, 3};
  size_t size = make_dat(bytes, fields, 6, values, 8, 1);

  ap_waveform_t *waveform = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_waveform_parse_dat(bytes, size, &waveform, &error),
                   AP_OK);
  assert_int_equal(ap_waveform_version(waveform), 2);
  assert_int_equal(ap_waveform_channels(waveform), 2);
  assert_int_equal(ap_waveform_bits(waveform), 8);
  assert_int_equal(ap_waveform_min(waveform, 0, 0), -128);
  assert_int_equal(ap_waveform_max(waveform, 0, 0), 127);
  assert_int_equal(ap_waveform_min(waveform, 0, 1), -1);
  assert_int_equal(ap_waveform_max(waveform, 0, 1), 1);
  assert_int_equal(ap_waveform_min(waveform, 1, 1), -3);
  assert_int_equal(ap_waveform_max(waveform, 1, 1), 3);
  ap_waveform_free(waveform);
}

/* A rejected input: its bytes and the error it must raise. */
typedef struct rejected_dat {
  const char *name;
  uint32_t fields[6];
  int field_count;
  int value_count; /* 16-bit zero values after the header */
  size_t cut;      /* bytes removed from the end */
  ap_error_code_t code;
  const char *message_part;
} rejected_dat_t;

static void parse_rejects_bad_files(void **state) {
  (void)state;
  const rejected_dat_t cases[] = {
      {"short version", {2}, 1, 0, 2, AP_ERR_CORRUPT_INPUT, "truncated"},
      {"short header v2",
       {2, 0, 44100, 256, 0, 1},
       6,
       0,
       1,
       AP_ERR_CORRUPT_INPUT,
       "24 bytes"},
      {"short header v1",
       {1, 0, 44100, 256, 0},
       5,
       0,
       3,
       AP_ERR_CORRUPT_INPUT,
       "20 bytes"},
      {"truncated data",
       {2, 0, 44100, 256, 3, 1},
       6,
       6,
       1,
       AP_ERR_CORRUPT_INPUT,
       "truncated"},
      {"oversized length",
       {2, 0, 44100, 256, 0xFFFFFFFFu, 255},
       6,
       4,
       0,
       AP_ERR_CORRUPT_INPUT,
       "4294967295 pixels"},
      {"trailing bytes",
       {2, 0, 44100, 256, 1, 1},
       6,
       3,
       0,
       AP_ERR_CORRUPT_INPUT,
       "inconsistent"},
      {"version 3",
       {3, 0, 44100, 256, 0, 1},
       6,
       0,
       0,
       AP_ERR_UNSUPPORTED,
       "version 3"},
      {"version 0",
       {0, 0, 44100, 256, 0, 1},
       6,
       0,
       0,
       AP_ERR_UNSUPPORTED,
       "version 0"},
      {"zero channels",
       {2, 0, 44100, 256, 0, 0},
       6,
       0,
       0,
       AP_ERR_CORRUPT_INPUT,
       "channel count 0"},
      {"256 channels",
       {2, 0, 44100, 256, 0, 256},
       6,
       0,
       0,
       AP_ERR_CORRUPT_INPUT,
       "channel count 256"},
      {"zero rate",
       {2, 0, 0, 256, 0, 1},
       6,
       0,
       0,
       AP_ERR_CORRUPT_INPUT,
       "sample rate 0"},
      {"negative scale",
       {2, 0, 44100, 0xFFFFFFFFu, 0, 1},
       6,
       0,
       0,
       AP_ERR_CORRUPT_INPUT,
       "samples per pixel -1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    unsigned char bytes[64];
    int16_t zeros[8] = {0};
    size_t size = make_dat(bytes, cases[i].fields, cases[i].field_count, zeros,
                           cases[i].value_count, 2);
    size -= cases[i].cut;

    ap_waveform_t *waveform = (ap_waveform_t *)bytes;
    ap_error_t error = {0};
    ap_status_t status = ap_waveform_parse_dat(bytes, size, &waveform, &error);
    if (status != (ap_status_t)cases[i].code) {
      fail_msg("%s: status %d, expected %d (%s)", cases[i].name, status,
               cases[i].code, error.message);
    }
    assert_null(waveform);
    if (!strstr(error.message, cases[i].message_part)) {
      fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].name, error.message,
               cases[i].message_part);
    }

    ap_output_t *output = NULL;
    assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);
    assert_int_equal(ap_waveform_dat_to_json(bytes, size, output, &error),
                     (ap_status_t)cases[i].code);
    ap_output_close(output);
  }

  ap_waveform_t *waveform = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_waveform_parse_dat("", 0, &waveform, &error),
                   AP_ERR_EMPTY_INPUT);
  assert_int_equal(ap_waveform_parse_dat(NULL, 8, &waveform, &error),
                   AP_ERR_INVALID_ARGUMENT);
}

static void dat_to_json_matches_sink(void **state) {
  (void)state;
  signal_t signal = signal_noise(2, 30000, 19);
  for (int bits = 8; bits <= 16; bits += 8) {
    for (int split = 0; split <= 1; split++) {
      size_t dat_size = 0;
      size_t json_size = 0;
      ap_waveform_spec_t spec =
          spec_for(AP_WAVEFORM_DAT, bits, 333, split, NULL);
      unsigned char *dat = run_sink(&spec, &signal, 32000, 4096, &dat_size);
      spec.format = AP_WAVEFORM_JSON;
      unsigned char *json = run_sink(&spec, &signal, 32000, 4096, &json_size);

      ap_error_t error = {0};
      ap_output_t *output = NULL;
      assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);
      assert_int_equal(ap_waveform_dat_to_json(dat, dat_size, output, &error),
                       AP_OK);
      size_t converted_size = 0;
      const void *converted = ap_output_memory_data(output, &converted_size);
      assert_int_equal(converted_size, json_size);
      assert_memory_equal(converted, json, json_size);
      ap_output_close(output);
      free(dat);
      free(json);
    }
  }
  signal_free(&signal);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spec_init_sets_defaults),
      cmocka_unit_test(spec_validate_names_field),
      cmocka_unit_test(dat_header_layout),
      cmocka_unit_test(dat_8bit_truncates_toward_zero),
      cmocka_unit_test(json_key_order_and_integers),
      cmocka_unit_test(partial_last_pixel_kept),
      cmocka_unit_test(zero_frames_valid_header),
      cmocka_unit_test(block_boundaries_do_not_matter),
      cmocka_unit_test(samples_become_int16),
      cmocka_unit_test(float_samples_round_half_away),
      cmocka_unit_test(pixels_per_second_floors),
      cmocka_unit_test(start_rejects_hostile_format),
      cmocka_unit_test(sink_reports_pixels),
      cmocka_unit_test(json_streams_in_chunks),
      cmocka_unit_test(output_failure_is_returned),
      cmocka_unit_test(parse_reads_version_1),
      cmocka_unit_test(parse_reads_version_2_8bit),
      cmocka_unit_test(parse_rejects_bad_files),
      cmocka_unit_test(dat_to_json_matches_sink),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
