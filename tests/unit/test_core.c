/* Tests for errors, configuration and limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/audiopipe.h>

#include "core/error_internal.h"

static void error_code_names_are_stable(void **state) {
  (void)state;
  assert_string_equal(ap_error_code_name(AP_ERR_NOT_AUDIO), "not_audio");
  assert_string_equal(ap_error_code_name(AP_ERR_EMPTY_INPUT), "empty_input");
  assert_string_equal(ap_error_code_name(AP_ERR_CHANNELS_UNSUPPORTED),
                      "unsupported_channel_count");
  assert_string_equal(ap_error_code_name(99999), "unknown");
  assert_int_equal(AP_ERR_MULTIPART_BODY, 102);
}

static void error_set_formats_message(void **state) {
  (void)state;
  ap_error_t error = {0};
  ap_status_t status = ap_error_set(&error, AP_DOMAIN_MEDIA, AP_ERR_NOT_AUDIO,
                                    "file %s is %d bytes", "x.mp3", 12);
  assert_int_equal(status, AP_ERR_NOT_AUDIO);
  assert_int_equal(error.code, AP_ERR_NOT_AUDIO);
  assert_int_equal(error.domain, AP_DOMAIN_MEDIA);
  assert_string_equal(error.message, "file x.mp3 is 12 bytes");

  ap_error_prefix(&error, "rendition %s", "opus");
  assert_string_equal(error.message, "rendition opus: file x.mp3 is 12 bytes");
}

static int hook_calls;
static void count_hook(void *user_data, const ap_error_t *error) {
  (void)error;
  *(int *)user_data += 1;
}

static void error_hook_skips_validation(void **state) {
  (void)state;
  hook_calls = 0;
  ap_set_error_hook(count_hook, &hook_calls);
  ap_error_set(NULL, AP_DOMAIN_MEDIA, AP_ERR_NOT_AUDIO, "user input");
  assert_int_equal(hook_calls, 0);
  ap_error_set(NULL, AP_DOMAIN_IO, AP_ERR_IO, "disk failed");
  assert_int_equal(hook_calls, 1);
  ap_set_error_hook(NULL, NULL);
  ap_error_set(NULL, AP_DOMAIN_IO, AP_ERR_IO, "disk failed");
  assert_int_equal(hook_calls, 1);
}

static void config_rejects_unknown_key(void **state) {
  (void)state;
  ap_config_t *config = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_config_new(&config, &error), AP_OK);
  assert_int_equal(ap_config_set(config, "limits.max_chanels", "2", &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "limits.max_chanels"));
  ap_config_free(config);
}

static void config_parses_typed_values(void **state) {
  (void)state;
  ap_config_t *config = NULL;
  ap_error_t error = {0};
  int64_t value = 0;
  assert_int_equal(ap_config_new(&config, &error), AP_OK);

  assert_int_equal(ap_config_set(config, "limits.max_input_bytes", "64M",
                                 &error),
                   AP_OK);
  assert_int_equal(ap_config_get_int64(config, "limits.max_input_bytes",
                                       &value, &error),
                   AP_OK);
  assert_int_equal(value, 64LL * 1024 * 1024);

  assert_int_equal(ap_config_set(config, "limits.max_duration", "90s", &error),
                   AP_OK);
  assert_int_equal(
      ap_config_get_int64(config, "limits.max_duration", &value, &error),
      AP_OK);
  assert_int_equal(value, 90000);

  assert_int_equal(ap_config_set(config, "limits.max_duration", "5ms", &error),
                   AP_OK);
  assert_int_equal(
      ap_config_get_int64(config, "limits.max_duration", &value, &error),
      AP_OK);
  assert_int_equal(value, 5);

  assert_int_equal(ap_config_set(config, "limits.max_channels", "two", &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "\"two\""));
  assert_int_equal(ap_config_set(config, "limits.max_input_bytes", "12Q",
                                 &error),
                   AP_ERR_INVALID_CONFIG);
  ap_config_free(config);
}

static void config_reads_environment(void **state) {
  (void)state;
  ap_config_t *config = NULL;
  ap_error_t error = {0};
  setenv("AUDIOPIPE_LIMITS_MAX_CHANNELS", "8", 1);
  setenv("AUDIOPIPE_LIBRARY", "/nonexistent/libaudiopipe.so", 1);
  assert_int_equal(ap_config_from_env(&config, &error), AP_OK);
  assert_string_equal(ap_config_get(config, "limits.max_channels"), "8");
  ap_config_free(config);

  setenv("AUDIOPIPE_LIMITS_MAX_CHANNELS", "-x", 1);
  assert_int_equal(ap_config_from_env(&config, &error), AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "AUDIOPIPE_LIMITS_MAX_CHANNELS"));
  unsetenv("AUDIOPIPE_LIMITS_MAX_CHANNELS");
  unsetenv("AUDIOPIPE_LIBRARY");
}

static void limits_from_config_checks_range(void **state) {
  (void)state;
  ap_config_t *config = NULL;
  ap_error_t error = {0};
  ap_limits_t limits;
  assert_int_equal(ap_config_new(&config, &error), AP_OK);

  assert_int_equal(ap_limits_from_config(config, &limits, &error), AP_OK);
  assert_int_equal(limits.max_channels, AP_DEFAULT_MAX_CHANNELS);
  assert_true(limits.max_duration_seconds == AP_DEFAULT_MAX_DURATION_SECONDS);
  assert_int_equal(limits.max_decoded_samples, AP_DEFAULT_MAX_DECODED_SAMPLES);

  assert_int_equal(ap_config_set(config, "limits.max_channels", "300", &error),
                   AP_OK);
  assert_int_equal(ap_limits_from_config(config, &limits, &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "limits.max_channels"));
  ap_config_free(config);
}

static void version_matches_header(void **state) {
  (void)state;
  assert_string_equal(ap_version_string(), AP_VERSION_STRING);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(error_code_names_are_stable),
      cmocka_unit_test(error_set_formats_message),
      cmocka_unit_test(error_hook_skips_validation),
      cmocka_unit_test(config_rejects_unknown_key),
      cmocka_unit_test(config_parses_typed_values),
      cmocka_unit_test(config_reads_environment),
      cmocka_unit_test(limits_from_config_checks_range),
      cmocka_unit_test(version_matches_header),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
