/*
 * The one-pass loudness meter against libebur128 computed in the test on
 * the same samples: integrated loudness, maximum momentary and short-term
 * loudness, and the loudness range, all within 0.05 LU.
 *
 * libebur128 runs without its histogram mode (exact gating) and returns
 * momentary and short-term loudness at every 100 ms boundary. The range
 * reference feeds those short-term values to loudness_range.c, because
 * libebur128's own range takes one value per second (see
 * loudness_range.h). The real files go through ap_process, so they also
 * cover the sink's channel weights and its resampling of rates below
 * 44.1 kHz to 48 kHz; the reference resamples those the same way.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ebur128.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>

#include <audiopipe/process.h>

#include "analysis/loudness_meter.h"
#include "analysis/loudness_range.h"
#include "probe/decoder.h"

#define CASES AP_TEST_DATA_DIR "/cases/"
#define TOLERANCE_LU 0.05
#define TWO_PI 6.283185307179586

/* The channels the analysis sink weights by 1.41. */
#define SURROUND_MASK                                                          \
  (AV_CH_BACK_LEFT | AV_CH_BACK_CENTER | AV_CH_BACK_RIGHT |                    \
   AV_CH_TOP_BACK_LEFT | AV_CH_TOP_BACK_CENTER | AV_CH_TOP_BACK_RIGHT |        \
   AV_CH_SIDE_LEFT | AV_CH_SIDE_RIGHT | AV_CH_SURROUND_DIRECT_LEFT |           \
   AV_CH_SURROUND_DIRECT_RIGHT)

typedef struct loudness_values {
  int integrated_defined;
  double integrated_lufs;
  double max_momentary_lufs;
  double max_short_term_lufs;
  int range_defined;
  double range_lu;
} loudness_values_t;

/* libebur128 fed in 100 ms pieces, sampling momentary and short-term
 * loudness at each boundary as the meter does. */
typedef struct reference_meter {
  ebur128_state *state;
  ap_loudness_range_t *range;
  int channels;
  size_t step_frames;
  size_t step_position;
  int64_t steps;
  double max_momentary;
  double max_short_term;
  float *interleaved;
} reference_meter_t;

static void reference_init(reference_meter_t *reference, int channels, int rate,
                           const int *channel_map) {
  memset(reference, 0, sizeof *reference);
  reference->state =
      ebur128_init((unsigned)channels, (unsigned long)rate,
                   EBUR128_MODE_I | EBUR128_MODE_S | EBUR128_MODE_M);
  assert_non_null(reference->state);
  for (int c = 0; c < channels; c++) {
    assert_int_equal(
        ebur128_set_channel(reference->state, (unsigned)c, channel_map[c]),
        EBUR128_SUCCESS);
  }
  reference->range = ap_loudness_range_create();
  assert_non_null(reference->range);
  reference->channels = channels;
  reference->step_frames = ((size_t)rate + 5) / 10;
  reference->max_momentary = -INFINITY;
  reference->max_short_term = -INFINITY;
  reference->interleaved =
      malloc(sizeof(float) * reference->step_frames * (size_t)channels);
  assert_non_null(reference->interleaved);
}

static void reference_write(reference_meter_t *reference,
                            const float *const *planes, size_t frames) {
  size_t offset = 0;
  while (offset < frames) {
    size_t count = reference->step_frames - reference->step_position;
    if (count > frames - offset) {
      count = frames - offset;
    }
    for (size_t i = 0; i < count; i++) {
      for (int c = 0; c < reference->channels; c++) {
        reference->interleaved[i * (size_t)reference->channels + (size_t)c] =
            planes[c][offset + i];
      }
    }
    assert_int_equal(ebur128_add_frames_float(reference->state,
                                              reference->interleaved, count),
                     EBUR128_SUCCESS);
    offset += count;
    reference->step_position += count;
    if (reference->step_position < reference->step_frames) {
      continue;
    }

    reference->step_position = 0;
    reference->steps++;
    double lufs;
    if (reference->steps >= 4 &&
        ebur128_loudness_momentary(reference->state, &lufs) ==
            EBUR128_SUCCESS &&
        lufs > reference->max_momentary) {
      reference->max_momentary = lufs;
    }
    if (reference->steps >= 30 &&
        ebur128_loudness_shortterm(reference->state, &lufs) ==
            EBUR128_SUCCESS) {
      if (lufs > reference->max_short_term) {
        reference->max_short_term = lufs;
      }
      ap_loudness_range_add(reference->range, lufs);
    }
  }
}

static void reference_finish(reference_meter_t *reference,
                             loudness_values_t *values) {
  double lufs = -INFINITY;
  int status = ebur128_loudness_global(reference->state, &lufs);
  values->integrated_defined = status == EBUR128_SUCCESS && isfinite(lufs);
  values->integrated_lufs = lufs;
  values->max_momentary_lufs = reference->max_momentary;
  values->max_short_term_lufs = reference->max_short_term;
  values->range_lu = 0.0;
  values->range_defined =
      reference->steps >= 30 &&
      ap_loudness_range_compute(reference->range, &values->range_lu);

  ebur128_destroy(&reference->state);
  ap_loudness_range_free(reference->range);
  free(reference->interleaved);
}

/* Asserts that a measured loudness equals the reference within
 * TOLERANCE_LU, -inf counting as equal to -inf. */
static void assert_lufs_close(double measured, double reference) {
  if (isinf(reference)) {
    assert_true(isinf(measured));
    assert_true(measured < 0);
    return;
  }
  assert_float_equal(measured, reference, TOLERANCE_LU);
}

static void assert_values_close(const char *name,
                                const loudness_values_t *measured,
                                const loudness_values_t *reference) {
  print_message("%s: I %.3f (libebur128 %.3f), M %.3f (%.3f), S %.3f "
                "(%.3f), LRA %.3f (%.3f)\n",
                name, measured->integrated_lufs, reference->integrated_lufs,
                measured->max_momentary_lufs, reference->max_momentary_lufs,
                measured->max_short_term_lufs, reference->max_short_term_lufs,
                measured->range_lu, reference->range_lu);
  assert_int_equal(measured->integrated_defined, reference->integrated_defined);
  if (reference->integrated_defined) {
    assert_float_equal(measured->integrated_lufs, reference->integrated_lufs,
                       TOLERANCE_LU);
  }
  assert_lufs_close(measured->max_momentary_lufs,
                    reference->max_momentary_lufs);
  assert_lufs_close(measured->max_short_term_lufs,
                    reference->max_short_term_lufs);
  assert_int_equal(measured->range_defined, reference->range_defined);
  if (reference->range_defined) {
    assert_float_equal(measured->range_lu, reference->range_lu, TOLERANCE_LU);
  }
}

/* A planar test signal. */
typedef struct signal {
  int rate;
  int channels;
  size_t frames;
  float **planes;
} signal_t;

static signal_t *signal_create(int rate, int channels, double seconds) {
  signal_t *signal = calloc(1, sizeof *signal);
  assert_non_null(signal);
  signal->rate = rate;
  signal->channels = channels;
  signal->frames = (size_t)(seconds * rate);
  signal->planes = calloc((size_t)channels, sizeof(float *));
  assert_non_null(signal->planes);
  for (int c = 0; c < channels; c++) {
    signal->planes[c] = calloc(signal->frames + 1, sizeof(float));
    assert_non_null(signal->planes[c]);
  }
  return signal;
}

static void signal_free(signal_t *signal) {
  for (int c = 0; c < signal->channels; c++) {
    free(signal->planes[c]);
  }
  free(signal->planes);
  free(signal);
}

/* Writes a sine of `frequency` Hz at `dbfs` peak level into channel
 * `channel` from `start` to `end` seconds. */
static void add_sine(signal_t *signal, int channel, double start, double end,
                     double frequency, double dbfs) {
  double amplitude = pow(10.0, dbfs / 20.0);
  size_t first = (size_t)(start * signal->rate);
  size_t last = (size_t)(end * signal->rate);
  if (last > signal->frames) {
    last = signal->frames;
  }
  for (size_t i = first; i < last; i++) {
    signal->planes[channel][i] +=
        (float)(amplitude * sin(TWO_PI * frequency * (double)i / signal->rate));
  }
}

/* Measures `signal` with the meter, in blocks of 4096 frames like the
 * decoder's, and with libebur128, and compares the two. */
static void compare_signal(const char *name, const signal_t *signal,
                           const double *weights, const int *channel_map) {
  ap_loudness_meter_t *meter = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_loudness_meter_create(signal->channels, signal->rate,
                                            weights, &meter, &error),
                   AP_OK);
  reference_meter_t reference;
  reference_init(&reference, signal->channels, signal->rate, channel_map);

  const float *planes[8];
  for (size_t offset = 0; offset < signal->frames; offset += 4096) {
    size_t count =
        signal->frames - offset < 4096 ? signal->frames - offset : 4096;
    for (int c = 0; c < signal->channels; c++) {
      planes[c] = signal->planes[c] + offset;
    }
    ap_loudness_meter_write(meter, planes, (int)count);
    reference_write(&reference, planes, count);
  }

  ap_loudness_summary_t summary;
  ap_loudness_meter_summarize(meter, &summary);
  loudness_values_t measured = {
      .integrated_defined = summary.integrated_defined,
      .integrated_lufs = summary.integrated_lufs,
      .max_momentary_lufs = summary.max_momentary_lufs,
      .max_short_term_lufs = summary.max_short_term_lufs,
      .range_defined = summary.range_defined,
      .range_lu = summary.range_lu,
  };
  loudness_values_t expected;
  reference_finish(&reference, &expected);
  assert_values_close(name, &measured, &expected);
  ap_loudness_meter_free(meter);
}

static const double stereo_weights[] = {1.0, 1.0};
static const int stereo_map[] = {EBUR128_LEFT, EBUR128_RIGHT};

/* Music-like level changes: 40 s of a two-tone signal stepping between
 * -10 and -30 dBFS, so the range is several LU. */
static void fill_level_steps(signal_t *signal) {
  const double levels[] = {-20.0, -12.0, -30.0, -18.0,
                           -10.0, -25.0, -16.0, -22.0};
  for (int c = 0; c < signal->channels; c++) {
    for (size_t step = 0; step < sizeof levels / sizeof levels[0]; step++) {
      double start = 5.0 * (double)step;
      add_sine(signal, c, start, start + 5.0, 440.0 * (c + 1), levels[step]);
      add_sine(signal, c, start, start + 5.0, 6000.0, levels[step] - 6.0);
    }
  }
}

static void sines_match_at_common_rates(void **state) {
  (void)state;
  const int rates[] = {44100, 48000, 88200, 96000, 192000};
  for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
    signal_t *signal = signal_create(rates[i], 2, 40.0);
    fill_level_steps(signal);
    char name[64];
    snprintf(name, sizeof name, "stereo steps at %d Hz", rates[i]);
    compare_signal(name, signal, stereo_weights, stereo_map);
    signal_free(signal);
  }
}

static void mono_and_dual_mono_match(void **state) {
  (void)state;
  signal_t *signal = signal_create(48000, 1, 12.0);
  add_sine(signal, 0, 0.0, 12.0, 997.0, -23.0);

  const double single_weight[] = {1.0};
  const int single_map[] = {EBUR128_CENTER};
  compare_signal("mono sine", signal, single_weight, single_map);

  const double dual_weight[] = {2.0};
  const int dual_map[] = {EBUR128_DUAL_MONO};
  compare_signal("dual mono sine", signal, dual_weight, dual_map);
  signal_free(signal);
}

static void surround_weights_match(void **state) {
  (void)state;
  /* 5.1 in FFmpeg's order: L R C LFE Ls Rs. */
  signal_t *signal = signal_create(48000, 6, 10.0);
  for (int c = 0; c < 6; c++) {
    add_sine(signal, c, 0.0, 10.0, 100.0 * (c + 1), -20.0 - 2.0 * c);
  }
  const double weights[] = {1.0, 1.0, 1.0, 0.0, 1.41, 1.41};
  const int map[] = {EBUR128_LEFT,          EBUR128_RIGHT,
                     EBUR128_CENTER,        EBUR128_UNUSED,
                     EBUR128_LEFT_SURROUND, EBUR128_RIGHT_SURROUND};
  compare_signal("5.1 sines", signal, weights, map);
  signal_free(signal);
}

static void silence_has_no_loudness(void **state) {
  (void)state;
  signal_t *signal = signal_create(48000, 2, 5.0);
  compare_signal("digital silence", signal, stereo_weights, stereo_map);

  ap_loudness_meter_t *meter = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_loudness_meter_create(2, 48000, stereo_weights, &meter, &error),
      AP_OK);
  const float *planes[2] = {signal->planes[0], signal->planes[1]};
  ap_loudness_meter_write(meter, planes, (int)signal->frames);
  ap_loudness_summary_t summary;
  ap_loudness_meter_summarize(meter, &summary);
  assert_false(summary.integrated_defined);
  assert_false(summary.range_defined);
  assert_true(isinf(summary.max_momentary_lufs));
  ap_loudness_meter_free(meter);
  signal_free(signal);
}

static void quiet_passages_are_gated(void **state) {
  (void)state;
  /* 10 s at -20 dBFS, 10 s at -45 dBFS (under the relative gate), 10 s
   * at -85 dBFS (under the absolute gate), 10 s of silence; then a
   * signal entirely under the absolute gate. */
  signal_t *signal = signal_create(44100, 2, 40.0);
  for (int c = 0; c < 2; c++) {
    add_sine(signal, c, 0.0, 10.0, 1000.0, -20.0);
    add_sine(signal, c, 10.0, 20.0, 1000.0, -45.0);
    add_sine(signal, c, 20.0, 30.0, 1000.0, -85.0);
  }
  compare_signal("gated quiet passages", signal, stereo_weights, stereo_map);
  signal_free(signal);

  signal_t *quiet = signal_create(44100, 2, 5.0);
  for (int c = 0; c < 2; c++) {
    add_sine(quiet, c, 0.0, 5.0, 1000.0, -80.0);
  }
  compare_signal("under the absolute gate", quiet, stereo_weights, stereo_map);
  signal_free(quiet);
}

static void short_input_matches(void **state) {
  (void)state;
  /* 2 s: momentary maximum and integrated loudness, no short-term. */
  signal_t *signal = signal_create(48000, 2, 2.0);
  fill_level_steps(signal);
  compare_signal("2 s", signal, stereo_weights, stereo_map);
  signal_free(signal);
}

static void non_finite_samples_are_skipped(void **state) {
  (void)state;
  /* A float file can hold inf and NaN: the blocks they reach carry no
   * loudness, and the blocks before them still count. */
  signal_t *signal = signal_create(48000, 2, 10.0);
  add_sine(signal, 0, 0.0, 10.0, 1000.0, -20.0);
  add_sine(signal, 1, 0.0, 10.0, 1000.0, -20.0);
  signal->planes[0][48000 * 6] = INFINITY;
  signal->planes[1][48000 * 7] = NAN;

  ap_loudness_meter_t *meter = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_loudness_meter_create(2, 48000, stereo_weights, &meter, &error),
      AP_OK);
  const float *planes[2] = {signal->planes[0], signal->planes[1]};
  ap_loudness_meter_write(meter, planes, (int)signal->frames);
  ap_loudness_summary_t summary;
  ap_loudness_meter_summarize(meter, &summary);
  assert_true(summary.integrated_defined);
  /* Two channels of a -20 dBFS 1 kHz sine read -20.0 LUFS. */
  assert_float_equal(summary.integrated_lufs, -20.0, 0.1);
  assert_true(isfinite(summary.max_momentary_lufs));
  assert_true(isfinite(summary.max_short_term_lufs));
  ap_loudness_meter_free(meter);
  signal_free(signal);
}

/* Maps one channel of a decoded file to libebur128's channel kinds the
 * way the analysis sink weights it. */
static void map_file_channels(int channels, uint64_t mask,
                              ap_mono_convention_t convention, int *map) {
  if (channels == 1) {
    map[0] = convention == AP_LOUDNESS_DUAL_MONO ? EBUR128_DUAL_MONO
                                                 : EBUR128_CENTER;
    return;
  }
  if (mask == 0 || __builtin_popcountll(mask) != channels) {
    AVChannelLayout layout;
    av_channel_layout_default(&layout, channels);
    mask = layout.order == AV_CHANNEL_ORDER_NATIVE ? layout.u.mask : 0;
    av_channel_layout_uninit(&layout);
  }
  int channel = 0;
  for (int bit = 0; bit < 64 && channel < channels; bit++) {
    uint64_t channel_bit = UINT64_C(1) << bit;
    if (!(mask & channel_bit)) {
      continue;
    }
    if (channel_bit & (AV_CH_LOW_FREQUENCY | AV_CH_LOW_FREQUENCY_2)) {
      map[channel++] = EBUR128_UNUSED;
    } else if (channel_bit & SURROUND_MASK) {
      map[channel++] = EBUR128_LEFT_SURROUND;
    } else {
      map[channel++] = EBUR128_CENTER;
    }
  }
  for (; channel < channels; channel++) {
    map[channel] = EBUR128_CENTER;
  }
}

/* Decodes `path` and measures it with libebur128, resampling rates below
 * 44.1 kHz to 48 kHz planar float with libswresample's defaults as the
 * analysis sink does. */
static void reference_for_file(const char *path, loudness_values_t *values) {
  ap_io_t *input = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(path, &input, &error), AP_OK);
  ap_decoder_t *decoder = NULL;
  assert_int_equal(ap_decoder_open(input, NULL, &decoder, &error), AP_OK);
  const ap_stream_format_t *format = ap_decoder_format(decoder);
  int channels = format->channels;
  assert_true(channels <= 8);

  int map[8];
  map_file_channels(channels, format->channel_mask, AP_LOUDNESS_MONO_SINGLE,
                    map);
  int rate = format->sample_rate < 44100 ? 48000 : format->sample_rate;
  SwrContext *resampler = NULL;
  float *resampled[8] = {0};
  int capacity = 0;
  if (rate != format->sample_rate) {
    AVChannelLayout layout;
    av_channel_layout_default(&layout, channels);
    assert_true(swr_alloc_set_opts2(&resampler, &layout, AV_SAMPLE_FMT_FLTP,
                                    rate, &layout, AV_SAMPLE_FMT_FLTP,
                                    format->sample_rate, 0, NULL) >= 0);
    av_channel_layout_uninit(&layout);
    assert_true(swr_init(resampler) >= 0);
    capacity = swr_get_out_samples(resampler, 4096) + 64;
    for (int c = 0; c < channels; c++) {
      resampled[c] = malloc(sizeof(float) * (size_t)capacity);
      assert_non_null(resampled[c]);
    }
  }

  reference_meter_t reference;
  reference_init(&reference, channels, rate, map);
  for (;;) {
    const float *const *planes = NULL;
    int frames = 0;
    assert_int_equal(ap_decoder_read(decoder, &planes, &frames, &error), AP_OK);
    if (!resampler) {
      if (frames == 0) {
        break;
      }
      reference_write(&reference, planes, (size_t)frames);
      continue;
    }
    int converted =
        swr_convert(resampler, (uint8_t **)resampled, capacity,
                    frames > 0 ? (const uint8_t **)planes : NULL, frames);
    assert_true(converted >= 0);
    reference_write(&reference, (const float *const *)resampled,
                    (size_t)converted);
    if (frames == 0 && converted == 0) {
      break;
    }
  }
  reference_finish(&reference, values);

  for (int c = 0; c < channels; c++) {
    free(resampled[c]);
  }
  swr_free(&resampler);
  ap_decoder_close(decoder);
  ap_io_close(input);
}

static void cases_match_libebur128(void **state) {
  (void)state;
  /* Every case with a defined loudness. */
  const char *cases[] = {
      "case-01.webm", "case-03.mp3", "case-04.m4a", "case-05.mp3",
      "case-08.wav",  "case-09.wav", "case-10.wav", "case-11.wav",
      "case-13.wav",  "case-15.mp3", "case-19.wav", "case-21.wav",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char path[512];
    snprintf(path, sizeof path, CASES "%s", cases[i]);

    loudness_values_t expected;
    reference_for_file(path, &expected);

    ap_io_t *input = NULL;
    ap_error_t error = {0};
    assert_int_equal(ap_io_open_file(path, &input, &error), AP_OK);
    ap_process_options_t options;
    ap_process_options_init(&options);
    options.analyses = AP_ANALYZE_LOUDNESS;
    ap_process_result_t *result = NULL;
    assert_int_equal(ap_process(input, &options, &result, &error), AP_OK);
    const ap_analysis_t *analysis = ap_process_result_analysis(result);

    loudness_values_t measured = {0};
    measured.integrated_defined =
        ap_analysis_integrated_lufs(analysis, &measured.integrated_lufs);
    measured.max_momentary_lufs = -INFINITY;
    measured.max_short_term_lufs = -INFINITY;
    ap_analysis_max_momentary_lufs(analysis, &measured.max_momentary_lufs);
    ap_analysis_max_short_term_lufs(analysis, &measured.max_short_term_lufs);
    measured.range_defined =
        ap_analysis_loudness_range(analysis, &measured.range_lu);

    assert_true(expected.integrated_defined);
    assert_values_close(cases[i], &measured, &expected);
    ap_process_result_free(result);
    ap_io_close(input);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sines_match_at_common_rates),
      cmocka_unit_test(mono_and_dual_mono_match),
      cmocka_unit_test(surround_weights_match),
      cmocka_unit_test(silence_has_no_loudness),
      cmocka_unit_test(quiet_passages_are_gated),
      cmocka_unit_test(short_input_matches),
      cmocka_unit_test(non_finite_samples_are_skipped),
      cmocka_unit_test(cases_match_libebur128),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
