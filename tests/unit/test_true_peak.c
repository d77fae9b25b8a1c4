/*
 * The polyphase true-peak meter: exact values on sines whose peaks fall
 * between samples, the oversampling factor per rate and independence from
 * the block size. On the real files it must agree within 0.05 dB with
 * upsampling to 192 kHz through libswresample, which is what ffmpeg's
 * ebur128 filter does, computed in the test.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>

#include <audiopipe/io.h>

#include "analysis/true_peak.h"
#include "probe/decoder.h"

#define CASES AP_TEST_DATA_DIR "/cases/"
#define FREEDESKTOP_DIR "/usr/share/sounds/freedesktop/stereo"
#define TOLERANCE_DB 0.05
#define TWO_PI 6.283185307179586

static double to_db(double linear) { return 20.0 * log10(linear); }

/* The true peak of `frames` samples of one channel written in blocks of
 * `block` frames. */
static double measure_mono(const float *samples, int frames, int rate,
                           int block) {
  ap_true_peak_meter_t *meter = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_true_peak_meter_create(1, rate, &meter, &error), AP_OK);
  for (int offset = 0; offset < frames; offset += block) {
    const float *planes[1] = {samples + offset};
    int count = frames - offset < block ? frames - offset : block;
    ap_true_peak_meter_write(meter, planes, count);
  }
  ap_true_peak_meter_finish(meter);
  double peak = ap_true_peak_meter_peak(meter);
  ap_true_peak_meter_free(meter);
  return peak;
}

/* A sine with 10 ms raised-cosine fades at both ends: an abrupt start
 * or end would ring in any band-limited interpolation, above the
 * amplitude. */
static float *make_sine(int frames, int rate, double frequency, double phase,
                        double amplitude) {
  float *samples = malloc(sizeof(float) * (size_t)frames);
  assert_non_null(samples);
  int fade = rate / 100;
  for (int i = 0; i < frames; i++) {
    double gain = 1.0;
    int edge = i < frames - 1 - i ? i : frames - 1 - i;
    if (edge < fade) {
      gain = 0.5 - 0.5 * cos(M_PI * edge / fade);
    }
    samples[i] =
        (float)(gain * amplitude * sin(TWO_PI * frequency * i / rate + phase));
  }
  return samples;
}

static void quarter_rate_sine_reads_its_amplitude(void **state) {
  (void)state;
  /* A sine at a quarter of the rate, 45 degrees off: every sample is at
   * 0.707 of the amplitude, so the sample peak is 3 dB under it. */
  const int rates[] = {44100, 48000, 96000};
  for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
    int frames = rates[i];
    float *samples =
        make_sine(frames, rates[i], rates[i] / 4.0, M_PI / 4.0, 0.5);
    double peak = to_db(measure_mono(samples, frames, rates[i], 4096));
    print_message("%d Hz: %.4f dBTP\n", rates[i], peak);
    assert_float_equal(peak, to_db(0.5), TOLERANCE_DB);
    free(samples);
  }
}

static void sine_reads_its_amplitude(void **state) {
  (void)state;
  const int rates[] = {22050, 32000, 44100, 48000, 88200, 96000};
  for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
    int frames = rates[i] * 2;
    float *samples = make_sine(frames, rates[i], 997.0, 0.3, 0.891);
    double peak = to_db(measure_mono(samples, frames, rates[i], 4096));
    assert_float_equal(peak, to_db(0.891), 0.01);
    free(samples);
  }
}

static void factor_follows_the_rate(void **state) {
  (void)state;
  assert_int_equal(ap_true_peak_oversampling(48000), 4);
  assert_int_equal(ap_true_peak_oversampling(96000), 2);
  assert_int_equal(ap_true_peak_oversampling(8000), 24);
  assert_int_equal(ap_true_peak_oversampling(44100), 9);
  assert_int_equal(ap_true_peak_oversampling(88200), 5);
  assert_int_equal(ap_true_peak_oversampling(22050), 18);
  assert_int_equal(ap_true_peak_oversampling(192000), 1);
  assert_int_equal(ap_true_peak_oversampling(384000), 1);
}

static void block_size_does_not_matter(void **state) {
  (void)state;
  int frames = 48000;
  float *samples = make_sine(frames, 44100, 15000.0, 1.0, 0.9);
  double whole = measure_mono(samples, frames, 44100, frames);
  assert_true(whole == measure_mono(samples, frames, 44100, 4096));
  assert_true(whole == measure_mono(samples, frames, 44100, 1000));
  assert_true(whole == measure_mono(samples, frames, 44100, 1));
  free(samples);
}

static void silence_has_no_peak(void **state) {
  (void)state;
  float *samples = calloc(4800, sizeof(float));
  assert_non_null(samples);
  assert_true(measure_mono(samples, 4800, 48000, 4096) == 0.0);
  free(samples);
}

/* Decodes `path` and returns its true peak in dBTP from the meter and,
 * in `*reference`, from libswresample's upsampling to 192 kHz. */
static double measure_file(const char *path, double *reference) {
  ap_io_t *input = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(path, &input, &error), AP_OK);
  ap_decoder_t *decoder = NULL;
  assert_int_equal(ap_decoder_open(input, NULL, &decoder, &error), AP_OK);
  const ap_stream_format_t *format = ap_decoder_format(decoder);
  int channels = format->channels;
  assert_true(channels <= 8);

  ap_true_peak_meter_t *meter = NULL;
  assert_int_equal(
      ap_true_peak_meter_create(channels, format->sample_rate, &meter, &error),
      AP_OK);

  SwrContext *resampler = NULL;
  AVChannelLayout layout;
  av_channel_layout_default(&layout, channels);
  assert_true(swr_alloc_set_opts2(&resampler, &layout, AV_SAMPLE_FMT_FLTP,
                                  192000, &layout, AV_SAMPLE_FMT_FLTP,
                                  format->sample_rate, 0, NULL) >= 0);
  av_channel_layout_uninit(&layout);
  assert_true(swr_init(resampler) >= 0);
  int capacity = swr_get_out_samples(resampler, 4096) * 2 + 256;
  float *upsampled[8];
  for (int c = 0; c < channels; c++) {
    upsampled[c] = malloc(sizeof(float) * (size_t)capacity);
    assert_non_null(upsampled[c]);
  }

  float swr_peak = 0.0f;
  for (;;) {
    const float *const *planes = NULL;
    int frames = 0;
    assert_int_equal(ap_decoder_read(decoder, &planes, &frames, &error), AP_OK);
    if (frames > 0) {
      ap_true_peak_meter_write(meter, planes, frames);
      for (int c = 0; c < channels; c++) {
        for (int i = 0; i < frames; i++) {
          swr_peak = fmaxf(swr_peak, fabsf(planes[c][i]));
        }
      }
    }
    int converted =
        swr_convert(resampler, (uint8_t **)upsampled, capacity,
                    frames > 0 ? (const uint8_t **)planes : NULL, frames);
    assert_true(converted >= 0);
    for (int c = 0; c < channels; c++) {
      for (int i = 0; i < converted; i++) {
        swr_peak = fmaxf(swr_peak, fabsf(upsampled[c][i]));
      }
    }
    if (frames == 0 && converted == 0) {
      break;
    }
  }
  ap_true_peak_meter_finish(meter);
  double peak = to_db(ap_true_peak_meter_peak(meter));
  *reference = to_db(swr_peak);

  for (int c = 0; c < channels; c++) {
    free(upsampled[c]);
  }
  swr_free(&resampler);
  ap_true_peak_meter_free(meter);
  ap_decoder_close(decoder);
  ap_io_close(input);
  return peak;
}

static void check_file(const char *path) {
  double reference;
  double peak = measure_file(path, &reference);
  print_message("%s: %.3f dBTP (libswresample %.3f)\n", strrchr(path, '/') + 1,
                peak, reference);
  assert_float_equal(peak, reference, TOLERANCE_DB);
}

static void cases_match_libswresample(void **state) {
  (void)state;
  const char *cases[] = {
      "case-01.webm", "case-03.mp3", "case-04.m4a", "case-05.mp3",
      "case-08.wav",  "case-09.wav", "case-10.wav", "case-11.wav",
      "case-13.wav",  "case-15.mp3", "case-18.wav", "case-19.wav",
      "case-21.wav",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char path[512];
    snprintf(path, sizeof path, CASES "%s", cases[i]);
    check_file(path);
  }
}

static void freedesktop_sounds_match_libswresample(void **state) {
  (void)state;
  DIR *directory = opendir(FREEDESKTOP_DIR);
  if (!directory) {
    skip();
  }
  int checked = 0;
  struct dirent *entry;
  while ((entry = readdir(directory)) != NULL) {
    size_t length = strlen(entry->d_name);
    if (length < 4 || strcmp(entry->d_name + length - 4, ".oga") != 0) {
      continue;
    }
    char path[1024];
    snprintf(path, sizeof path, FREEDESKTOP_DIR "/%s", entry->d_name);
    check_file(path);
    checked++;
  }
  closedir(directory);
  assert_true(checked >= 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(quarter_rate_sine_reads_its_amplitude),
      cmocka_unit_test(sine_reads_its_amplitude),
      cmocka_unit_test(factor_follows_the_rate),
      cmocka_unit_test(block_size_does_not_matter),
      cmocka_unit_test(silence_has_no_peak),
      cmocka_unit_test(cases_match_libswresample),
      cmocka_unit_test(freedesktop_sounds_match_libswresample),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
