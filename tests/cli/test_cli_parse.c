/* Tests for the audiopipe tool's strict number, option and output-spec
 * parsers and its mapping of library errors to exit codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"

static void parse_int_accepts_whole_numbers(void **state) {
  (void)state;
  int64_t value = 0;
  assert_int_equal(cli_parse_int("--threads", "12", 0, 256, &value), 0);
  assert_int_equal(value, 12);
  assert_int_equal(cli_parse_int("--threads", "-5", -10, 10, &value), 0);
  assert_int_equal(value, -5);
  assert_int_equal(cli_parse_int("--threads", "0", 0, 256, &value), 0);
  assert_int_equal(value, 0);
}

static void parse_int_rejects_partial_numbers(void **state) {
  (void)state;
  static const char *const invalid[] = {
      "",
      " 1",
      "1 ",
      "12x",
      "x",
      "0x10",
      "1e3",
      "1.5",
      "+",
      "-",
      "99999999999999999999999",
  };
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    int64_t value = 42;
    assert_int_equal(
        cli_parse_int("--threads", invalid[i], INT64_MIN, INT64_MAX, &value),
        -1);
    assert_int_equal(value, 42);
  }
}

static void parse_int_enforces_range(void **state) {
  (void)state;
  int64_t value = 0;
  assert_int_equal(cli_parse_int("--threads", "257", 0, 256, &value), -1);
  assert_int_equal(cli_parse_int("--threads", "-1", 0, 256, &value), -1);
  assert_int_equal(cli_parse_int("--threads", "256", 0, 256, &value), 0);
  assert_int_equal(value, 256);
}

static void parse_double_is_strict(void **state) {
  (void)state;
  double value = 0.0;
  assert_int_equal(cli_parse_double("--normalize", "-16.5", -70, 0, &value), 0);
  assert_true(value == -16.5);
  assert_int_equal(cli_parse_double("--normalize", "-16dB", -70, 0, &value),
                   -1);
  assert_int_equal(cli_parse_double("--normalize", "nan", -70, 0, &value), -1);
  assert_int_equal(cli_parse_double("--normalize", "-inf", -70, 0, &value), -1);
  assert_int_equal(cli_parse_double("--normalize", "", -70, 0, &value), -1);
  assert_int_equal(cli_parse_double("--normalize", "5", -70, 0, &value), -1);
}

static void parse_bitrate_reads_suffixes(void **state) {
  (void)state;
  int64_t value = 0;
  assert_int_equal(cli_parse_bitrate("--rendition", "64k", &value), 0);
  assert_int_equal(value, 64000);
  assert_int_equal(cli_parse_bitrate("--rendition", "128000", &value), 0);
  assert_int_equal(value, 128000);
  assert_int_equal(cli_parse_bitrate("--rendition", "1.5M", &value), 0);
  assert_int_equal(value, 1500000);
  assert_int_equal(cli_parse_bitrate("--rendition", "96K", &value), 0);
  assert_int_equal(value, 96000);
}

static void parse_bitrate_rejects_invalid(void **state) {
  (void)state;
  static const char *const invalid[] = {"",  "k",   "64q", "-64k", "64 k",
                                        "0", "999", "20M", "64kk"};
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    int64_t value = 7;
    assert_int_equal(cli_parse_bitrate("--rendition", invalid[i], &value), -1);
    assert_int_equal(value, 7);
  }
}

static void option_value_reads_both_forms(void **state) {
  (void)state;
  char *argv[] = {"process",     "--threads",  "4",
                  "--threads=8", "--threadsx", "--threads"};
  int argc = 6;
  const char *value = NULL;

  int index = 1;
  assert_int_equal(cli_option_value(argc, argv, &index, "--threads", &value),
                   1);
  assert_string_equal(value, "4");
  assert_int_equal(index, 2);

  index = 3;
  assert_int_equal(cli_option_value(argc, argv, &index, "--threads", &value),
                   1);
  assert_string_equal(value, "8");
  assert_int_equal(index, 3);

  index = 4;
  assert_int_equal(cli_option_value(argc, argv, &index, "--threads", &value),
                   0);

  index = 5;
  assert_int_equal(cli_option_value(argc, argv, &index, "--threads", &value),
                   -1);
}

static void waveform_request_reads_modifiers(void **state) {
  (void)state;
  char text[] = "json,bits=8,split:100pps:C:/peaks.json";
  cli_waveform_request_t request;
  assert_int_equal(cli_parse_waveform_request(text, &request), 0);
  assert_int_equal(request.spec.format, AP_WAVEFORM_JSON);
  assert_int_equal(request.spec.bits, 8);
  assert_int_equal(request.spec.split_channels, 1);
  assert_int_equal(request.spec.pixels_per_second, 100);
  assert_int_equal(request.spec.samples_per_pixel, 0);
  assert_string_equal(request.path, "C:/peaks.json");
}

static void waveform_request_defaults(void **state) {
  (void)state;
  char text[] = "dat::peaks.dat";
  cli_waveform_request_t request;
  assert_int_equal(cli_parse_waveform_request(text, &request), 0);
  assert_int_equal(request.spec.format, AP_WAVEFORM_DAT);
  assert_int_equal(request.spec.bits, 16);
  assert_int_equal(request.spec.samples_per_pixel, 256);
  assert_int_equal(request.spec.split_channels, 0);

  char explicit_scale[] = "dat:441spp:peaks.dat";
  assert_int_equal(cli_parse_waveform_request(explicit_scale, &request), 0);
  assert_int_equal(request.spec.samples_per_pixel, 441);
}

static void waveform_request_rejects_invalid(void **state) {
  (void)state;
  static const char *const invalid[] = {
      "dat:256",        "dat:256:",       "png:256:x",      "dat,bits=12:256:x",
      "dat,stereo:1:x", "dat:0:x",        "dat:0pps:x",     "dat:100fps:x",
      "dat:-5:x",       "dat:16777217:x", "dat:48001pps:x",
  };
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "%s", invalid[i]);
    cli_waveform_request_t request;
    assert_int_equal(cli_parse_waveform_request(text, &request), -1);
  }
}

static void rendition_request_reads_modifiers(void **state) {
  (void)state;
  char text[] =
      "mp3,rate=44100,channels=1,normalize=-16,ceiling=-2,name=low:96k:o.mp3";
  cli_rendition_request_t request;
  assert_int_equal(cli_parse_rendition_request(text, &request), 0);
  assert_int_equal(request.spec.codec, AP_RENDITION_MP3);
  assert_int_equal(request.spec.bitrate, 96000);
  assert_int_equal(request.spec.sample_rate, 44100);
  assert_int_equal(request.spec.channels, 1);
  assert_int_equal(request.spec.normalize, 1);
  assert_true(request.spec.target_lufs == -16.0);
  assert_true(request.spec.true_peak_ceiling_dbtp == -2.0);
  assert_int_equal(request.has_normalize, 1);
  assert_int_equal(request.has_ceiling, 1);
  assert_string_equal(request.spec.name, "low");
  assert_string_equal(request.path, "o.mp3");
}

static void rendition_request_lossless_defaults(void **state) {
  (void)state;
  char text[] = "flac,bits=24::out.flac";
  cli_rendition_request_t request;
  assert_int_equal(cli_parse_rendition_request(text, &request), 0);
  assert_int_equal(request.spec.codec, AP_RENDITION_FLAC);
  assert_int_equal(request.spec.bits_per_sample, 24);
  assert_int_equal(request.spec.bitrate, 0);
  assert_int_equal(request.spec.normalize, 0);
  assert_int_equal(request.has_normalize, 0);
  assert_null(request.spec.name);
}

static void rendition_request_rejects_invalid(void **state) {
  (void)state;
  static const char *const invalid[] = {
      "opus:64k",
      "vorbis:64k:x",
      "flac:128k:x",
      "wav:1k:x",
      "opus:64q:x",
      "mp3,channels=6:128k:x",
      "mp3,rate=abc:128k:x",
      "wav,bits=20::x",
      "opus,name=:64k:x",
      "opus,normalize=5:64k:x",
      "opus,speed=2:64k:x",
  };
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "%s", invalid[i]);
    cli_rendition_request_t request;
    assert_int_equal(cli_parse_rendition_request(text, &request), -1);
  }
}

static void exit_codes_follow_error_kind(void **state) {
  (void)state;
  ap_error_t error = {0};

  error.code = AP_ERR_NOT_AUDIO;
  assert_int_equal(cli_exit_code_for(&error, 0), CLI_EXIT_INPUT);
  error.code = AP_ERR_EMPTY_INPUT;
  assert_int_equal(cli_exit_code_for(&error, 0), CLI_EXIT_INPUT);
  error.code = AP_ERR_DURATION_LIMIT;
  assert_int_equal(cli_exit_code_for(&error, 0), CLI_EXIT_INPUT);
  error.code = AP_ERR_ENCODE;
  assert_int_equal(cli_exit_code_for(&error, 0), CLI_EXIT_OUTPUT);
  error.code = AP_ERR_IO;
  assert_int_equal(cli_exit_code_for(&error, 0), CLI_EXIT_INPUT);
  assert_int_equal(cli_exit_code_for(&error, 1), CLI_EXIT_OUTPUT);
  error.code = AP_ERR_INVALID_ARGUMENT;
  assert_int_equal(cli_exit_code_for(&error, 0), CLI_EXIT_USAGE);
  error.code = AP_ERR_NO_MEMORY;
  assert_int_equal(cli_exit_code_for(&error, 0), CLI_EXIT_INTERNAL);
  error.code = AP_ERR_INTERNAL;
  assert_int_equal(cli_exit_code_for(&error, 0), CLI_EXIT_INTERNAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_int_accepts_whole_numbers),
      cmocka_unit_test(parse_int_rejects_partial_numbers),
      cmocka_unit_test(parse_int_enforces_range),
      cmocka_unit_test(parse_double_is_strict),
      cmocka_unit_test(parse_bitrate_reads_suffixes),
      cmocka_unit_test(parse_bitrate_rejects_invalid),
      cmocka_unit_test(option_value_reads_both_forms),
      cmocka_unit_test(waveform_request_reads_modifiers),
      cmocka_unit_test(waveform_request_defaults),
      cmocka_unit_test(waveform_request_rejects_invalid),
      cmocka_unit_test(rendition_request_reads_modifiers),
      cmocka_unit_test(rendition_request_lossless_defaults),
      cmocka_unit_test(rendition_request_rejects_invalid),
      cmocka_unit_test(exit_codes_follow_error_kind),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
