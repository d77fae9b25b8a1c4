/*
 * Loudness and peaks of real files through ap_process, against ffmpeg's
 * ebur128 filter run on the same file. Covers every case that decodes,
 * the mono conventions on a -23 dBFS sine, a clip shorter than one gating
 * block, and the freedesktop sound theme's Vorbis recordings.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/process.h>

#include "test_loudness_reference.h"

#define CASES AP_TEST_DATA_DIR "/cases/"
#define FREEDESKTOP_DIR "/usr/share/sounds/freedesktop/stereo"

/* Agreement with ffmpeg: 0.1 LU and 0.1 dB. */
#define LOUDNESS_TOLERANCE 0.1
#define PEAK_TOLERANCE 0.1

/* Processes `path` with every analysis; returns NULL and prints the
 * error when it fails. */
static ap_process_result_t *try_process_file(const char *path,
                                             ap_mono_convention_t convention) {
  ap_io_t *input = NULL;
  ap_error_t error = {0};
  ap_process_result_t *result = NULL;
  ap_status_t status = ap_io_open_file(path, &input, &error);
  if (status == AP_OK) {
    ap_process_options_t options;
    ap_process_options_init(&options);
    options.mono_convention = convention;
    status = ap_process(input, &options, &result, &error);
  }
  if (status != AP_OK) {
    print_message("%s: %s\n", path, error.message);
  }
  ap_io_close(input);
  return result;
}

static ap_process_result_t *process_file(const char *path,
                                         ap_mono_convention_t convention) {
  ap_process_result_t *result = try_process_file(path, convention);
  assert_non_null(result);
  return result;
}

/* Compares our analysis of `path` with ffmpeg's. */
static void check_against_ffmpeg(const char *path, int expect_defined) {
  loudness_reference_t reference;
  assert_int_equal(loudness_reference_measure(path, 0, &reference), 0);

  ap_process_result_t *result = process_file(path, AP_LOUDNESS_MONO_SINGLE);
  const ap_analysis_t *analysis = ap_process_result_analysis(result);
  assert_non_null(analysis);

  double lufs = 0.0;
  int defined = ap_analysis_integrated_lufs(analysis, &lufs);
  double true_peak = ap_analysis_true_peak_dbtp(analysis);
  double sample_peak = ap_analysis_sample_peak_dbfs(analysis);
  print_message("%s: I %.2f (ffmpeg %.1f), TP %.2f (%.1f), SP %.2f (%.1f)\n",
                strrchr(path, '/') + 1, defined ? lufs : NAN,
                reference.integrated_lufs, true_peak, reference.true_peak_dbtp,
                sample_peak, reference.sample_peak_dbfs);

  assert_int_equal(defined, expect_defined);
  if (expect_defined) {
    assert_float_equal(lufs, reference.integrated_lufs, LOUDNESS_TOLERANCE);
  }
  assert_float_equal(true_peak, reference.true_peak_dbtp, PEAK_TOLERANCE);
  assert_float_equal(sample_peak, reference.sample_peak_dbfs, PEAK_TOLERANCE);
  ap_process_result_free(result);
}

static void decodable_cases_match_ffmpeg(void **state) {
  (void)state;
  /* Every case that decodes; case-18 (0.31 s) has its own test. */
  const char *cases[] = {
      "case-01.webm", "case-03.mp3", "case-04.m4a", "case-05.mp3",
      "case-08.wav",  "case-09.wav", "case-10.wav", "case-11.wav",
      "case-13.wav",  "case-15.mp3", "case-19.wav", "case-21.wav",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char path[512];
    snprintf(path, sizeof path, CASES "%s", cases[i]);
    check_against_ffmpeg(path, 1);
  }
}

static void mono_sine_follows_convention(void **state) {
  (void)state;
  const char *path = CASES "case-19.wav";

  ap_process_result_t *single = process_file(path, AP_LOUDNESS_MONO_SINGLE);
  double lufs = 0.0;
  assert_true(
      ap_analysis_integrated_lufs(ap_process_result_analysis(single), &lufs));
  assert_float_equal(lufs, -26.0, 0.1);
  ap_process_result_free(single);

  ap_process_result_t *dual = process_file(path, AP_LOUDNESS_DUAL_MONO);
  const ap_analysis_t *analysis = ap_process_result_analysis(dual);
  assert_true(ap_analysis_integrated_lufs(analysis, &lufs));
  assert_float_equal(lufs, -23.0, 0.1);
  assert_int_equal(ap_analysis_mono_convention(analysis),
                   AP_LOUDNESS_DUAL_MONO);

  loudness_reference_t reference;
  assert_int_equal(loudness_reference_measure(path, 1, &reference), 0);
  assert_float_equal(lufs, reference.integrated_lufs, LOUDNESS_TOLERANCE);
  ap_process_result_free(dual);
}

static void short_clip_has_no_loudness(void **state) {
  (void)state;
  const char *path = CASES "case-18.wav";
  check_against_ffmpeg(path, 0);

  ap_process_result_t *result = process_file(path, AP_LOUDNESS_MONO_SINGLE);
  const ap_analysis_t *analysis = ap_process_result_analysis(result);
  double lufs = 0.0;
  assert_false(ap_analysis_integrated_lufs(analysis, &lufs));
  assert_string_equal(ap_analysis_loudness_undefined_reason(analysis),
                      "too_short");
  assert_true(isfinite(ap_analysis_sample_peak_dbfs(analysis)));
  assert_true(isfinite(ap_analysis_true_peak_dbtp(analysis)));
  ap_process_result_free(result);
}

static void freedesktop_sounds_match_ffmpeg(void **state) {
  (void)state;
  DIR *directory = opendir(FREEDESKTOP_DIR);
  if (!directory) {
    skip();
  }

  int checked = 0;
  int failed = 0;
  struct dirent *entry;
  while ((entry = readdir(directory)) != NULL) {
    size_t length = strlen(entry->d_name);
    if (length < 4 || strcmp(entry->d_name + length - 4, ".oga") != 0) {
      continue;
    }
    char path[1024];
    snprintf(path, sizeof path, FREEDESKTOP_DIR "/%s", entry->d_name);

    ap_process_result_t *result =
        try_process_file(path, AP_LOUDNESS_MONO_SINGLE);
    if (!result) {
      failed++;
      continue;
    }
    const ap_media_info_t *info = ap_process_result_media_info(result);
    double seconds = (double)ap_process_result_decoded_frames(result) /
                     ap_media_info_sample_rate(info);
    ap_process_result_free(result);
    /* Clips under one 400 ms gating block have no integrated loudness;
     * short_clip_has_no_loudness covers them. */
    if (seconds < 0.4) {
      continue;
    }
    check_against_ffmpeg(path, 1);
    checked++;
  }
  closedir(directory);
  assert_int_equal(failed, 0);
  assert_true(checked >= 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decodable_cases_match_ffmpeg),
      cmocka_unit_test(mono_sine_follows_convention),
      cmocka_unit_test(short_clip_has_no_loudness),
      cmocka_unit_test(freedesktop_sounds_match_ffmpeg),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
