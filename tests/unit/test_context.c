/*
 * Tests for the context: configuration checks at open, readiness, and a
 * connection pool smaller than the number of threads using it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include <audiopipe/job.h>
#include <audiopipe/meta.h>

#include "test_meta_fixture.h"

/* Sets `key` to `value` and expects ap_context_open to fail with `code`
 * and a message containing `expected`. */
static void expect_open_error(const char *key, const char *value,
                              ap_status_t code, const char *expected) {
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(ap_config_set(fixture.config, key, value, NULL), AP_OK);
  ap_context_t *context = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_context_open(fixture.config, &context, &error), code);
  assert_null(context);
  assert_non_null(strstr(error.message, expected));
  meta_fixture_close(&fixture);
}

static void short_secret_is_rejected(void **state) {
  (void)state;
  expect_open_error("signing.secret", "tinysecret", AP_ERR_INVALID_CONFIG,
                    "AUDIOPIPE_SIGNING_SECRET");

  /* The message never repeats the secret itself. */
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(
      ap_config_set(fixture.config, "signing.secret", "tinysecret", NULL),
      AP_OK);
  ap_context_t *context = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_context_open(fixture.config, &context, &error),
                   AP_ERR_INVALID_CONFIG);
  assert_null(strstr(error.message, "tinysecret"));
  meta_fixture_close(&fixture);
}

static void missing_secret_is_rejected(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  ap_config_t *config = NULL;
  assert_int_equal(ap_config_new(&config, NULL), AP_OK);
  assert_int_equal(ap_config_set(config, "metadata.uri",
                                 ap_config_get(fixture.config, "metadata.uri"),
                                 NULL),
                   AP_OK);
  ap_context_t *context = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_context_open(config, &context, &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "AUDIOPIPE_SIGNING_SECRET"));
  assert_non_null(strstr(error.message, "not set"));
  ap_config_free(config);
  meta_fixture_close(&fixture);
}

static void unknown_backends_are_rejected(void **state) {
  (void)state;
  expect_open_error("metadata.uri", "postgresql://127.0.0.1/audiopipe",
                    AP_ERR_UNSUPPORTED, "sqlite://");
  expect_open_error("metadata.uri", "sqlite://:memory:", AP_ERR_INVALID_CONFIG,
                    "metadata.uri");
  expect_open_error("metadata.uri", "meta.db", AP_ERR_INVALID_CONFIG,
                    "not a URI");
  expect_open_error("queue.uri", "redis://127.0.0.1:6379", AP_ERR_UNSUPPORTED,
                    "queue.uri");
  expect_open_error("metadata.sqlite_synchronous", "OFF", AP_ERR_INVALID_CONFIG,
                    "FULL or NORMAL");
  expect_open_error("metadata.pool_size", "0", AP_ERR_INVALID_CONFIG,
                    "metadata.pool_size");
}

static void open_context_is_ready(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  assert_int_equal(ap_context_check_ready(fixture.context, NULL), AP_OK);
  assert_string_equal(ap_context_public_base_url(fixture.context),
                      "http://127.0.0.1:8080");
  assert_int_equal(ap_context_limits(fixture.context)->max_channels,
                   AP_DEFAULT_MAX_CHANNELS);
  meta_fixture_close(&fixture);
}

enum { POOL_THREADS = 8, CALLS_PER_THREAD = 50 };

typedef struct pool_worker {
  ap_context_t *context;
  int failures;
} pool_worker_t;

/* Enqueues and reads jobs, so every call borrows a pooled connection. */
static void *use_pool(void *argument) {
  pool_worker_t *worker = argument;
  for (int i = 0; i < CALLS_PER_THREAD; i++) {
    ap_job_enqueue_options_t options;
    ap_job_enqueue_options_init(&options);
    options.kind = "pool_test";
    ap_job_t *job = NULL;
    if (ap_job_enqueue(worker->context, &options, &job, NULL) != AP_OK) {
      worker->failures++;
      continue;
    }
    ap_job_t *copy = NULL;
    if (ap_job_get(worker->context, NULL, ap_job_id(job), &copy, NULL) !=
        AP_OK) {
      worker->failures++;
    }
    ap_job_free(copy);
    ap_job_free(job);
  }
  return NULL;
}

static void small_pool_serves_many_threads(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(
      ap_config_set(fixture.config, "metadata.pool_size", "2", NULL), AP_OK);
  assert_int_equal(ap_config_set(fixture.config, "metadata.sqlite_synchronous",
                                 "NORMAL", NULL),
                   AP_OK);
  assert_int_equal(meta_fixture_open(&fixture), 0);

  pool_worker_t workers[POOL_THREADS];
  pthread_t threads[POOL_THREADS];
  for (int i = 0; i < POOL_THREADS; i++) {
    workers[i].context = fixture.context;
    workers[i].failures = 0;
    assert_int_equal(pthread_create(&threads[i], NULL, use_pool, &workers[i]),
                     0);
  }
  for (int i = 0; i < POOL_THREADS; i++) {
    assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(workers[i].failures, 0);
  }
  ap_job_stats_t stats;
  assert_int_equal(ap_job_stats(fixture.context, &stats, NULL), AP_OK);
  assert_int_equal(stats.queued, POOL_THREADS * CALLS_PER_THREAD);
  meta_fixture_close(&fixture);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(short_secret_is_rejected),
      cmocka_unit_test(missing_secret_is_rejected),
      cmocka_unit_test(unknown_backends_are_rejected),
      cmocka_unit_test(open_context_is_ready),
      cmocka_unit_test(small_pool_serves_many_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
