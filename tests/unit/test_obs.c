/* Tests for structured logging and the metrics registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <pthread.h>
#include <time.h>

#include <audiopipe/log.h>
#include <audiopipe/metrics.h>

#define CAPTURE_LINES 64

/* Lines the capturing sink received, newest last. */
typedef struct capture {
  char *lines[CAPTURE_LINES];
  size_t count;
} capture_t;

static void capture_sink(void *user_data, ap_log_level_t level,
                         const char *line, size_t length) {
  (void)level;
  capture_t *capture = user_data;
  assert_int_equal(strlen(line), length);
  if (capture->count < CAPTURE_LINES) {
    capture->lines[capture->count++] = strdup(line);
  }
}

static int capture_setup(void **state) {
  capture_t *capture = calloc(1, sizeof *capture);
  if (!capture) {
    return -1;
  }
  ap_log_set_sink(capture_sink, capture);
  ap_log_set_level(AP_LOG_DEBUG);
  ap_log_set_rate_limit(0, 1000);
  *state = capture;
  return 0;
}

static int capture_teardown(void **state) {
  capture_t *capture = *state;
  ap_log_flush_suppressed();
  ap_log_set_sink(NULL, NULL);
  ap_log_set_level(AP_LOG_INFO);
  ap_log_set_rate_limit(20, 1000);
  for (size_t i = 0; i < capture->count; i++) {
    free(capture->lines[i]);
  }
  free(capture);
  return 0;
}

/* Parses captured line `index` as a JSON object; fails the test if it is
 * not one. */
static json_object *parse_line(const capture_t *capture, size_t index) {
  assert_true(index < capture->count);
  json_object *object = json_tokener_parse(capture->lines[index]);
  assert_non_null(object);
  assert_true(json_object_is_type(object, json_type_object));
  return object;
}

static const char *string_field(json_object *object, const char *key) {
  json_object *value = NULL;
  if (!json_object_object_get_ex(object, key, &value)) {
    return NULL;
  }
  return json_object_get_string(value);
}

static void log_line_has_standard_keys(void **state) {
  capture_t *capture = *state;
  ap_log_field_t fields[] = {
      AP_LOG_INT("status", 201), AP_LOG_STRING("route", "/v1/uploads"),
      AP_LOG_DOUBLE("duration_s", 0.25), AP_LOG_BOOL("cached", 1)};
  ap_log_write(AP_LOG_INFO, "http_request", "req-1", "job-9", fields, 4,
               "served %d bytes", 42);
  assert_int_equal(capture->count, 1);

  json_object *line = parse_line(capture, 0);
  const char *ts = string_field(line, "ts");
  assert_non_null(ts);
  /* RFC 3339 UTC with milliseconds: 2026-12-04T16:07:48.123Z */
  assert_int_equal(strlen(ts), 24);
  assert_int_equal(ts[10], 'T');
  assert_int_equal(ts[19], '.');
  assert_int_equal(ts[23], 'Z');
  assert_string_equal(string_field(line, "level"), "info");
  assert_string_equal(string_field(line, "event"), "http_request");
  assert_string_equal(string_field(line, "request_id"), "req-1");
  assert_string_equal(string_field(line, "job_id"), "job-9");
  assert_string_equal(string_field(line, "msg"), "served 42 bytes");
  assert_string_equal(string_field(line, "route"), "/v1/uploads");
  json_object *status = NULL;
  assert_true(json_object_object_get_ex(line, "status", &status));
  assert_int_equal(json_object_get_int(status), 201);
  json_object *cached = NULL;
  assert_true(json_object_object_get_ex(line, "cached", &cached));
  assert_true(json_object_get_boolean(cached));

  /* The standard keys come first, in a fixed order. */
  assert_true(strncmp(capture->lines[0], "{\"ts\":", 6) == 0);
  assert_true(strstr(capture->lines[0], "\"level\"") <
              strstr(capture->lines[0], "\"event\""));
  json_object_put(line);
}

static void log_omits_unknown_ids(void **state) {
  capture_t *capture = *state;
  ap_log_write(AP_LOG_WARN, "server_started", NULL, NULL, NULL, 0, NULL);
  json_object *line = parse_line(capture, 0);
  assert_string_equal(string_field(line, "level"), "warn");
  assert_null(string_field(line, "request_id"));
  assert_null(string_field(line, "job_id"));
  assert_null(string_field(line, "msg"));
  json_object_put(line);
}

static void log_redacts_denylisted_keys(void **state) {
  capture_t *capture = *state;
  ap_log_field_t fields[] = {
      AP_LOG_STRING("api_key", "key-live-123"),
      AP_LOG_STRING("X-Ap-Signature", "deadbeefcafe"),
      AP_LOG_STRING("original_filename", "holiday-voice-memo.m4a"),
      AP_LOG_STRING("Authorization", "Bearer key-live-123"),
      AP_LOG_STRING("signing_secret", "hunter2hunter2"),
      AP_LOG_STRING("route", "/v1/assets/{id}")};
  ap_log_write(AP_LOG_INFO, "probe", NULL, NULL, fields, 6, NULL);

  const char *text = capture->lines[0];
  assert_null(strstr(text, "key-live-123"));
  assert_null(strstr(text, "deadbeefcafe"));
  assert_null(strstr(text, "holiday-voice-memo"));
  assert_null(strstr(text, "hunter2"));
  json_object *line = parse_line(capture, 0);
  assert_string_equal(string_field(line, "api_key"), "[redacted]");
  assert_string_equal(string_field(line, "X-Ap-Signature"), "[redacted]");
  assert_string_equal(string_field(line, "original_filename"), "[redacted]");
  assert_string_equal(string_field(line, "route"), "/v1/assets/{id}");
  json_object_put(line);

  assert_true(ap_log_key_is_redacted("apiKey"));
  assert_true(ap_log_key_is_redacted("x-amz-signature"));
  assert_false(ap_log_key_is_redacted("object_key"));
}

static void log_escapes_hostile_values(void **state) {
  capture_t *capture = *state;
  const char hostile[] = "quote\" back\\slash\nnew\tline \x01 bad\xff\xfe end";
  ap_log_field_t fields[] = {AP_LOG_STRING("value", hostile)};
  ap_log_write(AP_LOG_ERROR, "escape_check", NULL, NULL, fields, 1, "%s",
               "msg\"with\nbreaks");

  assert_null(strchr(capture->lines[0], '\n'));
  json_object *line = parse_line(capture, 0);
  assert_string_equal(string_field(line, "value"),
                      "quote\" back\\slash\nnew\tline \x01 bad\xef\xbf\xbd"
                      "\xef\xbf\xbd end");
  assert_string_equal(string_field(line, "msg"), "msg\"with\nbreaks");
  json_object_put(line);
}

static void log_drops_reserved_field_keys(void **state) {
  capture_t *capture = *state;
  ap_log_field_t fields[] = {AP_LOG_STRING("level", "fake"),
                             AP_LOG_STRING("event", "fake")};
  ap_log_write(AP_LOG_INFO, "real_event", NULL, NULL, fields, 2, NULL);
  json_object *line = parse_line(capture, 0);
  assert_string_equal(string_field(line, "level"), "info");
  assert_string_equal(string_field(line, "event"), "real_event");
  assert_null(strstr(capture->lines[0], "fake"));
  json_object_put(line);
}

static void log_filters_by_level(void **state) {
  capture_t *capture = *state;
  ap_log_set_level(AP_LOG_WARN);
  ap_log_write(AP_LOG_INFO, "quiet", NULL, NULL, NULL, 0, NULL);
  ap_log_write(AP_LOG_DEBUG, "quieter", NULL, NULL, NULL, 0, NULL);
  ap_log_write(AP_LOG_ERROR, "loud", NULL, NULL, NULL, 0, NULL);
  assert_int_equal(capture->count, 1);
  assert_false(ap_log_enabled(AP_LOG_INFO));
  assert_true(ap_log_enabled(AP_LOG_WARN));

  ap_log_level_t level = AP_LOG_DEBUG;
  assert_int_equal(ap_log_level_parse("warning", &level), 0);
  assert_int_equal(level, AP_LOG_WARN);
  assert_int_equal(ap_log_level_parse("loud", &level), -1);
}

static void log_rate_limit_counts_repeats(void **state) {
  capture_t *capture = *state;
  ap_log_set_rate_limit(3, 3600000);
  for (int i = 0; i < 10; i++) {
    ap_log_write(AP_LOG_WARN, "disk_slow", NULL, NULL, NULL, 0, "repeat %d", i);
  }
  ap_log_write(AP_LOG_WARN, "other_event", NULL, NULL, NULL, 0, NULL);
  assert_int_equal(capture->count, 4);

  ap_log_flush_suppressed();
  assert_int_equal(capture->count, 5);
  json_object *line = parse_line(capture, 4);
  assert_string_equal(string_field(line, "event"), "log_suppressed");
  assert_string_equal(string_field(line, "suppressed_event"), "disk_slow");
  json_object *count = NULL;
  assert_true(json_object_object_get_ex(line, "count", &count));
  assert_int_equal(json_object_get_int(count), 7);
  json_object_put(line);
}

static void log_reports_count_on_next_window(void **state) {
  capture_t *capture = *state;
  /* A 500 ms window: the three writes must land in one window even on a
   * loaded machine under sanitizers, where a 1 ms window once split them. */
  ap_log_set_rate_limit(1, 500);
  ap_log_write(AP_LOG_WARN, "tick", NULL, NULL, NULL, 0, NULL);
  ap_log_write(AP_LOG_WARN, "tick", NULL, NULL, NULL, 0, NULL);
  ap_log_write(AP_LOG_WARN, "tick", NULL, NULL, NULL, 0, NULL);
  struct timespec pause = {0, 600 * 1000 * 1000};
  nanosleep(&pause, NULL);
  ap_log_write(AP_LOG_WARN, "tick", NULL, NULL, NULL, 0, NULL);

  /* The first window admitted only the first line, so the next window's
   * first line carries the two that were dropped. */
  assert_true(capture->count >= 2);
  json_object *line = parse_line(capture, capture->count - 1);
  json_object *suppressed = NULL;
  assert_true(json_object_object_get_ex(line, "suppressed", &suppressed));
  assert_int_equal(json_object_get_int(suppressed), 2);
  json_object_put(line);
}

static void log_rate_limit_spares_info_lines(void **state) {
  capture_t *capture = *state;
  ap_log_set_rate_limit(3, 3600000);
  for (int i = 0; i < 50; i++) {
    ap_log_write(AP_LOG_INFO, "http_request", NULL, NULL, NULL, 0, NULL);
  }
  assert_int_equal(capture->count, 50);
}

static void log_truncates_long_lines(void **state) {
  capture_t *capture = *state;
  size_t size = 40000;
  char *huge = malloc(size + 1);
  assert_non_null(huge);
  /* Multi-byte characters, so a cut could land inside one. */
  for (size_t i = 0; i + 2 <= size; i += 2) {
    huge[i] = (char)0xC3;
    huge[i + 1] = (char)0xA9;
  }
  huge[size] = '\0';
  ap_log_field_t fields[] = {AP_LOG_STRING("payload", huge),
                             AP_LOG_INT("after", 1)};
  ap_log_write(AP_LOG_INFO, "big", NULL, NULL, fields, 2, NULL);
  free(huge);

  assert_true(strlen(capture->lines[0]) <= 16384);
  json_object *line = parse_line(capture, 0);
  json_object *truncated = NULL;
  assert_true(json_object_object_get_ex(line, "truncated", &truncated));
  assert_true(json_object_get_boolean(truncated));
  json_object_put(line);
}

static void log_configure_rejects_bad_level(void **state) {
  (void)state;
  ap_config_t *config = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_config_new(&config, &error), AP_OK);
  assert_int_equal(ap_config_set(config, "log.level", "chatty", &error), AP_OK);
  assert_int_equal(ap_log_configure(config, &error), AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "log.level"));

  assert_int_equal(ap_config_set(config, "log.level", "error", &error), AP_OK);
  assert_int_equal(ap_log_configure(config, &error), AP_OK);
  assert_int_equal(ap_log_get_level(), AP_LOG_ERROR);
  ap_config_free(config);
}

/* Renders `registry` into a string the test must free. */
static char *render(ap_metrics_t *registry) {
  char *text = NULL;
  size_t length = 0;
  ap_error_t error = {0};
  assert_int_equal(ap_metrics_render(registry, &text, &length, &error), AP_OK);
  assert_int_equal(strlen(text), length);
  return text;
}

static void metrics_render_counter_with_labels(void **state) {
  (void)state;
  ap_metrics_t *registry = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_metrics_new(&registry, &error), AP_OK);

  ap_metric_t *requests = NULL;
  const char *labels[] = {"route", "status"};
  assert_int_equal(ap_metrics_counter(registry, "http_requests_total",
                                      "HTTP requests.\nBy route.", labels, 2,
                                      &requests, &error),
                   AP_OK);
  const char *values[] = {"/v1/jobs/{id}", "200"};
  ap_metrics_add(ap_metrics_series(requests, values), 1);
  ap_metrics_add(ap_metrics_series(requests, values), 2);
  ap_metrics_add(ap_metrics_series(requests, values), -5);
  const char *odd[] = {"say \"hi\"\\\n", "500"};
  ap_metrics_add(ap_metrics_series(requests, odd), 0.5);

  char *text = render(registry);
  assert_string_equal(
      text, "# HELP http_requests_total HTTP requests.\\nBy route.\n"
            "# TYPE http_requests_total counter\n"
            "http_requests_total{route=\"/v1/jobs/{id}\",status=\"200\"} 3\n"
            "http_requests_total{route=\"say \\\"hi\\\"\\\\\\n\","
            "status=\"500\"} 0.5\n");
  free(text);
  ap_metrics_free(registry);
}

static void metrics_render_histogram_buckets(void **state) {
  (void)state;
  ap_metrics_t *registry = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_metrics_new(&registry, &error), AP_OK);

  ap_metric_t *latency = NULL;
  const double bounds[] = {0.25, 1};
  assert_int_equal(ap_metrics_histogram(registry, "latency_seconds", "Latency.",
                                        NULL, 0, bounds, 2, &latency, &error),
                   AP_OK);
  ap_metric_series_t *series = ap_metrics_series(latency, NULL);
  ap_metrics_observe(series, 0.125);
  ap_metrics_observe(series, 0.25);
  ap_metrics_observe(series, 0.5);
  ap_metrics_observe(series, 7);
  assert_true(ap_metrics_value(series) == 4);

  char *text = render(registry);
  assert_string_equal(text, "# HELP latency_seconds Latency.\n"
                            "# TYPE latency_seconds histogram\n"
                            "latency_seconds_bucket{le=\"0.25\"} 2\n"
                            "latency_seconds_bucket{le=\"1\"} 3\n"
                            "latency_seconds_bucket{le=\"+Inf\"} 4\n"
                            "latency_seconds_sum 7.875\n"
                            "latency_seconds_count 4\n");
  free(text);
  ap_metrics_free(registry);
}

static void metrics_gauge_set_and_add(void **state) {
  (void)state;
  ap_metrics_t *registry = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_metrics_new(&registry, &error), AP_OK);
  ap_metric_t *streams = NULL;
  assert_int_equal(ap_metrics_gauge(registry, "open_streams", "Streams.", NULL,
                                    0, &streams, &error),
                   AP_OK);
  ap_metric_series_t *series = ap_metrics_series(streams, NULL);
  ap_metrics_set(series, 10);
  ap_metrics_add(series, -3);
  assert_true(ap_metrics_value(series) == 7);
  ap_metrics_observe(series, 100);
  assert_true(ap_metrics_value(series) == 7);
  ap_metrics_free(registry);
}

static void metrics_registration_rules(void **state) {
  (void)state;
  ap_metrics_t *registry = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_metrics_new(&registry, &error), AP_OK);

  ap_metric_t *first = NULL;
  ap_metric_t *again = NULL;
  const char *labels[] = {"kind"};
  assert_int_equal(ap_metrics_counter(registry, "jobs_total", "Jobs.", labels,
                                      1, &first, &error),
                   AP_OK);
  assert_int_equal(ap_metrics_counter(registry, "jobs_total", "Jobs.", labels,
                                      1, &again, &error),
                   AP_OK);
  assert_ptr_equal(first, again);
  assert_int_equal(ap_metrics_gauge(registry, "jobs_total", "Jobs.", labels, 1,
                                    &again, &error),
                   AP_ERR_CONFLICT);

  ap_metric_t *bad = NULL;
  assert_int_equal(
      ap_metrics_counter(registry, "9lives", "x", NULL, 0, &bad, &error),
      AP_ERR_INVALID_ARGUMENT);
  const char *reserved[] = {"__name"};
  assert_int_equal(
      ap_metrics_counter(registry, "ok_total", "x", reserved, 1, &bad, &error),
      AP_ERR_INVALID_ARGUMENT);
  const char *le[] = {"le"};
  assert_int_equal(ap_metrics_histogram(registry, "h_seconds", "x", le, 1, NULL,
                                        0, &bad, &error),
                   AP_ERR_INVALID_ARGUMENT);
  const double unordered[] = {1, 0.5};
  assert_int_equal(ap_metrics_histogram(registry, "h_seconds", "x", NULL, 0,
                                        unordered, 2, &bad, &error),
                   AP_ERR_INVALID_ARGUMENT);
  ap_metrics_free(registry);
}

static void metrics_series_cap_reports_drops(void **state) {
  (void)state;
  ap_metrics_t *registry = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_metrics_new(&registry, &error), AP_OK);
  ap_metric_t *family = NULL;
  const char *labels[] = {"id"};
  assert_int_equal(ap_metrics_counter(registry, "per_id_total", "x", labels, 1,
                                      &family, &error),
                   AP_OK);
  char id[32];
  const char *values[] = {id};
  for (int i = 0; i < AP_METRICS_MAX_SERIES; i++) {
    snprintf(id, sizeof id, "%d", i);
    assert_non_null(ap_metrics_series(family, values));
  }
  snprintf(id, sizeof id, "one-too-many");
  assert_null(ap_metrics_series(family, values));
  ap_metrics_add(NULL, 1);

  char *text = render(registry);
  assert_non_null(strstr(
      text, "audiopipe_metrics_series_dropped_total{metric=\"per_id_total\"} "
            "1\n"));
  free(text);
  ap_metrics_free(registry);
}

typedef struct adder_arguments {
  ap_metric_t *family;
  int iterations;
} adder_arguments_t;

static void *add_many(void *argument) {
  adder_arguments_t *arguments = argument;
  const char *values[] = {"shared"};
  for (int i = 0; i < arguments->iterations; i++) {
    ap_metrics_add(ap_metrics_series(arguments->family, values), 1);
  }
  return NULL;
}

static void metrics_counter_is_thread_safe(void **state) {
  (void)state;
  ap_metrics_t *registry = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_metrics_new(&registry, &error), AP_OK);
  ap_metric_t *family = NULL;
  const char *labels[] = {"name"};
  assert_int_equal(ap_metrics_counter(registry, "adds_total", "x", labels, 1,
                                      &family, &error),
                   AP_OK);

  enum { THREADS = 4, ITERATIONS = 50000 };
  pthread_t threads[THREADS];
  adder_arguments_t arguments = {family, ITERATIONS};
  for (int i = 0; i < THREADS; i++) {
    assert_int_equal(pthread_create(&threads[i], NULL, add_many, &arguments),
                     0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
  }
  const char *values[] = {"shared"};
  assert_true(ap_metrics_value(ap_metrics_series(family, values)) ==
              (double)THREADS * ITERATIONS);
  ap_metrics_free(registry);
}

static void metrics_default_registry_is_shared(void **state) {
  (void)state;
  assert_non_null(ap_metrics_default());
  assert_ptr_equal(ap_metrics_default(), ap_metrics_default());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(log_line_has_standard_keys, capture_setup,
                                      capture_teardown),
      cmocka_unit_test_setup_teardown(log_omits_unknown_ids, capture_setup,
                                      capture_teardown),
      cmocka_unit_test_setup_teardown(log_redacts_denylisted_keys,
                                      capture_setup, capture_teardown),
      cmocka_unit_test_setup_teardown(log_escapes_hostile_values, capture_setup,
                                      capture_teardown),
      cmocka_unit_test_setup_teardown(log_drops_reserved_field_keys,
                                      capture_setup, capture_teardown),
      cmocka_unit_test_setup_teardown(log_filters_by_level, capture_setup,
                                      capture_teardown),
      cmocka_unit_test_setup_teardown(log_rate_limit_counts_repeats,
                                      capture_setup, capture_teardown),
      cmocka_unit_test_setup_teardown(log_rate_limit_spares_info_lines,
                                      capture_setup, capture_teardown),
      cmocka_unit_test_setup_teardown(log_reports_count_on_next_window,
                                      capture_setup, capture_teardown),
      cmocka_unit_test_setup_teardown(log_truncates_long_lines, capture_setup,
                                      capture_teardown),
      cmocka_unit_test(log_configure_rejects_bad_level),
      cmocka_unit_test(metrics_render_counter_with_labels),
      cmocka_unit_test(metrics_render_histogram_buckets),
      cmocka_unit_test(metrics_gauge_set_and_add),
      cmocka_unit_test(metrics_registration_rules),
      cmocka_unit_test(metrics_series_cap_reports_drops),
      cmocka_unit_test(metrics_counter_is_thread_safe),
      cmocka_unit_test(metrics_default_registry_is_shared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
