/*
 * Tests for the analysis sink on synthetic signals fed to it directly:
 * levels, clipping, silence, channel weighting, the mono convention,
 * undefined loudness, and the loudness range against ffmpeg's ebur128 on
 * the same samples written to a WAV file.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libavutil/channel_layout.h>
#include <sndfile.h>

#include <audiopipe/process.h>

#include "analysis/analysis_internal.h"
#include "analysis/analysis_sink.h"
#include "test_loudness_reference.h"

#define TWO_PI 6.283185307179586

/* A planar signal owned by the test. */
typedef struct signal {
  int sample_rate;
  int channels;
  uint64_t channel_mask;
  int64_t frames;
  float **planes;
} signal_t;

static signal_t *signal_create(int sample_rate, int channels, int64_t frames) {
  signal_t *signal = calloc(1, sizeof *signal);
  assert_non_null(signal);
  signal->sample_rate = sample_rate;
  signal->channels = channels;
  signal->frames = frames;
  signal->planes = calloc((size_t)channels, sizeof(float *));
  assert_non_null(signal->planes);
  for (int c = 0; c < channels; c++) {
    signal->planes[c] =
        calloc((size_t)frames > 0 ? (size_t)frames : 1, sizeof(float));
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

/* Writes a sine of `amplitude` (linear) and `frequency` Hz on `channel`
 * from frame `first` for `count` frames. */
static void signal_sine(signal_t *signal, int channel, int64_t first,
                        int64_t count, double amplitude, double frequency) {
  for (int64_t i = 0; i < count; i++) {
    double phase = TWO_PI * frequency * (double)i / signal->sample_rate;
    signal->planes[channel][first + i] = (float)(amplitude * sin(phase));
  }
}

static ap_analysis_settings_t default_settings(void) {
  ap_analysis_settings_t settings = {
      .analyses = AP_ANALYZE_ALL,
      .mono_convention = AP_LOUDNESS_MONO_SINGLE,
      .silence_threshold_dbfs = -60.0,
  };
  return settings;
}

/* Runs `signal` through an analysis sink in blocks of `block_frames`. */
static ap_analysis_t *analyse_blocks(const signal_t *signal,
                                     const ap_analysis_settings_t *settings,
                                     int block_frames) {
  ap_error_t error = {0};
  ap_sink_t *sink = NULL;
  assert_int_equal(ap_analysis_sink_create(settings, &sink, &error), AP_OK);
  assert_true(sink->wants_thread);

  ap_stream_format_t format = {
      .sample_rate = signal->sample_rate,
      .channels = signal->channels,
      .channel_mask = signal->channel_mask,
      .expected_frames = signal->frames,
  };
  assert_int_equal(sink->ops->start(sink, &format, &error), AP_OK);

  const float *planes[16];
  for (int64_t offset = 0; offset < signal->frames; offset += block_frames) {
    int64_t frames = signal->frames - offset;
    if (frames > block_frames) {
      frames = block_frames;
    }
    for (int c = 0; c < signal->channels; c++) {
      planes[c] = signal->planes[c] + offset;
    }
    assert_int_equal(sink->ops->write(sink, planes, (int)frames, &error),
                     AP_OK);
  }
  assert_int_equal(sink->ops->finish(sink, &error), AP_OK);

  ap_analysis_t *analysis = ap_analysis_create(
      settings->mono_convention, settings->silence_threshold_dbfs);
  assert_non_null(analysis);
  ap_analysis_sink_collect(sink, analysis);
  sink->ops->destroy(sink);
  return analysis;
}

static ap_analysis_t *analyse(const signal_t *signal,
                              const ap_analysis_settings_t *settings) {
  return analyse_blocks(signal, settings, AP_SINK_MAX_BLOCK_FRAMES);
}

static void sine_levels_match_amplitude(void **state) {
  (void)state;
  signal_t *signal = signal_create(48000, 2, 96000);
  signal_sine(signal, 0, 0, 96000, 0.5, 1000.0);
  signal_sine(signal, 1, 0, 96000, 0.5, 1000.0);

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *analysis = analyse(signal, &settings);

  /* 20 log10(0.5) = -6.02 dBFS; RMS of a sine is amplitude / sqrt(2). */
  assert_float_equal(ap_analysis_sample_peak_dbfs(analysis), -6.0206, 0.01);
  assert_float_equal(ap_analysis_rms_dbfs(analysis), -9.0309, 0.01);
  assert_int_equal(ap_analysis_clipped_samples(analysis), 0);
  assert_true(ap_analysis_true_peak_dbtp(analysis) >= -6.03);
  assert_true(ap_analysis_true_peak_dbtp(analysis) <= -5.9);

  ap_analysis_free(analysis);
  signal_free(signal);
}

static void clipped_square_is_counted(void **state) {
  (void)state;
  /* 1000 frames of a square at full scale (clipped), then 1000 frames at
   * half scale, on one channel. */
  signal_t *signal = signal_create(44100, 1, 2000);
  for (int i = 0; i < 1000; i++) {
    signal->planes[0][i] = (i / 50) % 2 ? -1.0f : 1.0f;
  }
  for (int i = 1000; i < 2000; i++) {
    signal->planes[0][i] = (i / 50) % 2 ? -0.5f : 0.5f;
  }

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *analysis = analyse(signal, &settings);

  assert_int_equal(ap_analysis_clipped_samples(analysis), 1000);
  assert_float_equal(ap_analysis_sample_peak_dbfs(analysis), 0.0, 1e-6);
  /* Mean square (1000 x 1 + 1000 x 0.25) / 2000 = 0.625. */
  assert_float_equal(ap_analysis_rms_dbfs(analysis), 10.0 * log10(0.625),
                     0.001);

  ap_analysis_free(analysis);
  signal_free(signal);
}

static void one_step_below_full_scale_clips(void **state) {
  (void)state;
  signal_t *signal = signal_create(44100, 1, 4);
  signal->planes[0][0] = 32767.0f / 32768.0f;
  signal->planes[0][1] = -1.0f;
  signal->planes[0][2] = 32766.0f / 32768.0f;
  signal->planes[0][3] = 1.5f;

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *analysis = analyse(signal, &settings);

  assert_int_equal(ap_analysis_clipped_samples(analysis), 3);

  ap_analysis_free(analysis);
  signal_free(signal);
}

static void silence_around_tone_is_measured(void **state) {
  (void)state;
  /* 0.5 s of silence, 1 s of a -20 dBFS tone, 0.25 s of silence. The
   * cosine starts at its peak, so the first loud sample is frame 24000. */
  signal_t *signal = signal_create(48000, 2, 84000);
  for (int i = 0; i < 48000; i++) {
    signal->planes[1][24000 + i] =
        (float)(0.1 * cos(TWO_PI * 1000.0 * i / 48000.0));
  }

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *analysis = analyse(signal, &settings);

  assert_float_equal(ap_analysis_leading_silence(analysis), 0.5, 1e-9);
  /* The last sample of the tone, cos(2 pi 47999 / 48), is loud. */
  assert_float_equal(ap_analysis_trailing_silence(analysis), 0.25, 1e-9);
  assert_float_equal(ap_analysis_silence_threshold_dbfs(analysis), -60.0, 0);

  ap_analysis_free(analysis);
  signal_free(signal);
}

static void silence_threshold_is_respected(void **state) {
  (void)state;
  /* A -50 dBFS tone is silence at a -40 dBFS threshold. */
  signal_t *signal = signal_create(48000, 1, 48000);
  signal_sine(signal, 0, 0, 48000, pow(10.0, -50.0 / 20.0), 440.0);

  ap_analysis_settings_t settings = default_settings();
  settings.silence_threshold_dbfs = -40.0;
  ap_analysis_t *analysis = analyse(signal, &settings);

  assert_float_equal(ap_analysis_leading_silence(analysis), 1.0, 1e-9);
  assert_float_equal(ap_analysis_trailing_silence(analysis), 1.0, 1e-9);

  ap_analysis_free(analysis);
  signal_free(signal);
}

/* Integrated loudness of a 1 kHz tone on one channel of a 5.1 layout. */
static double loudness_on_channel(uint64_t channel_mask, int channel,
                                  int *defined, const char **reason) {
  signal_t *signal = signal_create(48000, 6, 5 * 48000);
  signal->channel_mask = channel_mask;
  signal_sine(signal, channel, 0, signal->frames, 0.1, 1000.0);

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *analysis = analyse(signal, &settings);
  double lufs = NAN;
  *defined = ap_analysis_integrated_lufs(analysis, &lufs);
  *reason = ap_analysis_loudness_undefined_reason(analysis);
  ap_analysis_free(analysis);
  signal_free(signal);
  return lufs;
}

static void surround_channels_weigh_more(void **state) {
  (void)state;
  int defined;
  const char *reason;

  /* 5.1(side): FL FR FC LFE SL SR. */
  double front =
      loudness_on_channel(AV_CH_LAYOUT_5POINT1, 0, &defined, &reason);
  assert_true(defined);
  double center =
      loudness_on_channel(AV_CH_LAYOUT_5POINT1, 2, &defined, &reason);
  assert_true(defined);
  double side = loudness_on_channel(AV_CH_LAYOUT_5POINT1, 4, &defined, &reason);
  assert_true(defined);
  /* 5.1 with back channels: FL FR FC LFE BL BR. */
  double back =
      loudness_on_channel(AV_CH_LAYOUT_5POINT1_BACK, 5, &defined, &reason);
  assert_true(defined);

  /* Surround weight 1.41 is +1.49 dB; front channels weigh 1.0. */
  assert_float_equal(center - front, 0.0, 0.01);
  assert_float_equal(side - front, 10.0 * log10(1.41), 0.01);
  assert_float_equal(back - front, 10.0 * log10(1.41), 0.01);
}

static void lfe_channel_is_excluded(void **state) {
  (void)state;
  int defined;
  const char *reason;
  loudness_on_channel(AV_CH_LAYOUT_5POINT1, 3, &defined, &reason);
  assert_false(defined);
  assert_string_equal(reason, "below_absolute_gate");
}

static void unknown_mask_uses_default_layout(void **state) {
  (void)state;
  int defined;
  const char *reason;
  /* Six channels without a mask are taken as 5.1: channel 3 is LFE. */
  loudness_on_channel(0, 3, &defined, &reason);
  assert_false(defined);
  double side = loudness_on_channel(0, 4, &defined, &reason);
  assert_true(defined);
  double front = loudness_on_channel(0, 0, &defined, &reason);
  assert_float_equal(side - front, 10.0 * log10(1.41), 0.01);
}

static void mono_convention_changes_loudness(void **state) {
  (void)state;
  /* 1 kHz sine at -23 dBFS peak: BS.1770 single channel reads -26.0 LUFS
   * (the sine's mean square is -3 dB, K-weighting adds about +0.7 dB and
   * the -0.691 offset takes it back), dual mono +3 dB more. */
  signal_t *signal = signal_create(48000, 1, 10 * 48000);
  signal_sine(signal, 0, 0, signal->frames, pow(10.0, -23.0 / 20.0), 1000.0);

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *single = analyse(signal, &settings);
  settings.mono_convention = AP_LOUDNESS_DUAL_MONO;
  ap_analysis_t *dual = analyse(signal, &settings);

  double lufs = 0.0;
  assert_true(ap_analysis_integrated_lufs(single, &lufs));
  assert_float_equal(lufs, -26.0, 0.1);
  assert_int_equal(ap_analysis_mono_convention(single),
                   AP_LOUDNESS_MONO_SINGLE);
  assert_true(ap_analysis_integrated_lufs(dual, &lufs));
  assert_float_equal(lufs, -23.0, 0.1);
  assert_int_equal(ap_analysis_mono_convention(dual), AP_LOUDNESS_DUAL_MONO);
  /* Peaks do not depend on the convention. */
  assert_float_equal(ap_analysis_sample_peak_dbfs(single), -23.0, 0.01);
  assert_float_equal(ap_analysis_sample_peak_dbfs(dual), -23.0, 0.01);

  ap_analysis_free(single);
  ap_analysis_free(dual);
  signal_free(signal);
}

static void clip_under_gating_block_is_too_short(void **state) {
  (void)state;
  /* 0.3 s: shorter than one 400 ms gating block. */
  signal_t *signal = signal_create(44100, 2, 13230);
  signal_sine(signal, 0, 0, signal->frames, 0.5, 440.0);
  signal_sine(signal, 1, 0, signal->frames, 0.5, 440.0);

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *analysis = analyse(signal, &settings);

  double lufs = 12345.0;
  assert_false(ap_analysis_integrated_lufs(analysis, &lufs));
  assert_float_equal(lufs, 12345.0, 0.0);
  assert_string_equal(ap_analysis_loudness_undefined_reason(analysis),
                      "too_short");
  assert_false(ap_analysis_loudness_range(analysis, NULL));
  assert_false(ap_analysis_max_momentary_lufs(analysis, NULL));
  assert_false(ap_analysis_max_short_term_lufs(analysis, NULL));
  assert_float_equal(ap_analysis_sample_peak_dbfs(analysis), -6.02, 0.01);
  assert_true(isfinite(ap_analysis_true_peak_dbtp(analysis)));

  ap_analysis_free(analysis);
  signal_free(signal);
}

static void digital_silence_is_below_gate(void **state) {
  (void)state;
  signal_t *signal = signal_create(48000, 2, 5 * 48000);

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *analysis = analyse(signal, &settings);

  assert_false(ap_analysis_integrated_lufs(analysis, NULL));
  assert_string_equal(ap_analysis_loudness_undefined_reason(analysis),
                      "below_absolute_gate");
  assert_false(ap_analysis_loudness_range(analysis, NULL));
  assert_true(isinf(ap_analysis_true_peak_dbtp(analysis)));
  assert_true(ap_analysis_true_peak_dbtp(analysis) < 0);
  assert_true(isinf(ap_analysis_sample_peak_dbfs(analysis)));
  assert_true(isinf(ap_analysis_rms_dbfs(analysis)));
  assert_float_equal(ap_analysis_leading_silence(analysis), 5.0, 1e-9);

  ap_analysis_free(analysis);
  signal_free(signal);
}

static void block_size_does_not_change_results(void **state) {
  (void)state;
  signal_t *signal = signal_create(44100, 2, 7 * 44100 + 123);
  for (int64_t i = 0; i < signal->frames; i++) {
    double envelope = 0.05 + 0.4 * fabs(sin(TWO_PI * 0.3 * i / 44100.0));
    signal->planes[0][i] = (float)(envelope * sin(TWO_PI * 440.0 * i / 44100));
    signal->planes[1][i] = (float)(envelope * sin(TWO_PI * 660.0 * i / 44100));
  }

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *large = analyse_blocks(signal, &settings, 4096);
  ap_analysis_t *small = analyse_blocks(signal, &settings, 37);

  double large_value, small_value;
  assert_true(ap_analysis_integrated_lufs(large, &large_value));
  assert_true(ap_analysis_integrated_lufs(small, &small_value));
  assert_float_equal(large_value, small_value, 1e-9);
  assert_true(ap_analysis_loudness_range(large, &large_value));
  assert_true(ap_analysis_loudness_range(small, &small_value));
  assert_float_equal(large_value, small_value, 1e-9);
  assert_true(ap_analysis_max_short_term_lufs(large, &large_value));
  assert_true(ap_analysis_max_short_term_lufs(small, &small_value));
  assert_float_equal(large_value, small_value, 1e-9);
  assert_float_equal(ap_analysis_true_peak_dbtp(large),
                     ap_analysis_true_peak_dbtp(small), 1e-9);

  ap_analysis_free(large);
  ap_analysis_free(small);
  signal_free(signal);
}

static void split_true_peak_merges_equal(void **state) {
  (void)state;
  signal_t *signal = signal_create(48000, 2, 4 * 48000);
  signal_sine(signal, 0, 0, signal->frames, 0.7, 11025.0);
  signal_sine(signal, 1, 0, signal->frames, 0.2, 300.0);

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *whole = analyse(signal, &settings);

  settings.analyses = AP_ANALYZE_ALL & ~AP_ANALYZE_TRUE_PEAK;
  ap_analysis_t *without_peak = analyse(signal, &settings);
  settings.analyses = AP_ANALYZE_TRUE_PEAK;
  ap_analysis_t *peak_only = analyse(signal, &settings);
  ap_analysis_t *merged = ap_analysis_create(AP_LOUDNESS_MONO_SINGLE, -60.0);
  assert_non_null(merged);
  *merged = *without_peak;
  merged->true_peak_dbtp = peak_only->true_peak_dbtp;
  merged->analyses |= peak_only->analyses;

  double a, b;
  assert_true(ap_analysis_integrated_lufs(whole, &a));
  assert_true(ap_analysis_integrated_lufs(merged, &b));
  assert_float_equal(a, b, 1e-9);
  assert_float_equal(ap_analysis_true_peak_dbtp(whole),
                     ap_analysis_true_peak_dbtp(merged), 1e-9);
  assert_int_equal(merged->analyses, AP_ANALYZE_ALL);
  /* An analysis without true peak leaves it at -inf. */
  assert_true(isinf(ap_analysis_true_peak_dbtp(without_peak)));

  ap_analysis_free(whole);
  ap_analysis_free(without_peak);
  ap_analysis_free(peak_only);
  ap_analysis_free(merged);
  signal_free(signal);
}

static void invalid_settings_are_rejected(void **state) {
  (void)state;
  ap_error_t error = {0};
  ap_sink_t *sink = NULL;
  ap_analysis_settings_t settings = default_settings();

  settings.analyses = 0x100;
  assert_int_equal(ap_analysis_sink_create(&settings, &sink, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "analyses"));

  settings = default_settings();
  settings.mono_convention = (ap_mono_convention_t)7;
  assert_int_equal(ap_analysis_sink_create(&settings, &sink, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "mono_convention"));

  settings = default_settings();
  settings.silence_threshold_dbfs = 3.0;
  assert_int_equal(ap_analysis_sink_create(&settings, &sink, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "silence_threshold_dbfs"));
  assert_null(sink);
}

/* Writes `signal` as a 32-bit float WAV so ffmpeg reads the same samples. */
static void write_float_wav(const signal_t *signal, const char *path) {
  SF_INFO info = {
      .samplerate = signal->sample_rate,
      .channels = signal->channels,
      .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT,
  };
  SNDFILE *file = sf_open(path, SFM_WRITE, &info);
  assert_non_null(file);
  float *frame = calloc((size_t)signal->channels, sizeof(float));
  assert_non_null(frame);
  for (int64_t i = 0; i < signal->frames; i++) {
    for (int c = 0; c < signal->channels; c++) {
      frame[c] = signal->planes[c][i];
    }
    assert_int_equal(sf_writef_float(file, frame, 1), 1);
  }
  free(frame);
  assert_int_equal(sf_close(file), 0);
}

static void loudness_range_matches_ffmpeg(void **state) {
  (void)state;
  /* 8 s at one level, 8 s 12 dB lower, 8 s 6 dB lower: a range that the
   * 100 ms and the 1 s short-term rates read differently. */
  int rate = 48000;
  signal_t *signal = signal_create(rate, 2, 24 * rate);
  double levels[3] = {0.3, 0.3 * pow(10.0, -12.0 / 20.0),
                      0.3 * pow(10.0, -6.0 / 20.0)};
  for (int64_t i = 0; i < signal->frames; i++) {
    double amplitude = levels[i / (8 * rate)];
    float value = (float)(amplitude * sin(TWO_PI * 997.0 * i / rate));
    signal->planes[0][i] = value;
    signal->planes[1][i] = value;
  }

  const char *directory = getenv("TMPDIR");
  char template_path[512];
  snprintf(template_path, sizeof template_path, "%s/ap_range_XXXXXX.wav",
           directory ? directory : "/tmp");
  int fd = mkstemps(template_path, 4);
  assert_true(fd >= 0);
  close(fd);
  write_float_wav(signal, template_path);

  loudness_reference_t reference;
  assert_int_equal(loudness_reference_measure(template_path, 0, &reference), 0);
  unlink(template_path);

  ap_analysis_settings_t settings = default_settings();
  ap_analysis_t *analysis = analyse(signal, &settings);

  double lu = 0.0;
  assert_true(ap_analysis_loudness_range(analysis, &lu));
  assert_float_equal(lu, reference.range_lu, 0.1);
  double lufs = 0.0;
  assert_true(ap_analysis_integrated_lufs(analysis, &lufs));
  assert_float_equal(lufs, reference.integrated_lufs, 0.1);

  ap_analysis_free(analysis);
  signal_free(signal);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sine_levels_match_amplitude),
      cmocka_unit_test(clipped_square_is_counted),
      cmocka_unit_test(one_step_below_full_scale_clips),
      cmocka_unit_test(silence_around_tone_is_measured),
      cmocka_unit_test(silence_threshold_is_respected),
      cmocka_unit_test(surround_channels_weigh_more),
      cmocka_unit_test(lfe_channel_is_excluded),
      cmocka_unit_test(unknown_mask_uses_default_layout),
      cmocka_unit_test(mono_convention_changes_loudness),
      cmocka_unit_test(clip_under_gating_block_is_too_short),
      cmocka_unit_test(digital_silence_is_below_gate),
      cmocka_unit_test(block_size_does_not_change_results),
      cmocka_unit_test(split_true_peak_merges_equal),
      cmocka_unit_test(invalid_settings_are_rejected),
      cmocka_unit_test(loudness_range_matches_ffmpeg),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
