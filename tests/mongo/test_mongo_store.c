/*
 * Tests of the MongoDB metadata backend's store, assets and uploads,
 * against the fixture's server (see mongo_fixture.h): URI checks, the
 * migration and its indexes, asset and upload records, upload acceptance,
 * asset deletion, and behaviour while the server is down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/context.h>

#include "meta/meta_internal.h"
#include "meta/mongo_internal.h"
#include "mongo_fixture.h"

static const ap_meta_settings_t settings = {.retry_base_ms = 100,
                                            .retry_max_ms = 1000};

/* One store on a database of its own. */
typedef struct store_fixture {
  char *uri;
  ap_meta_store_t *meta;
} store_fixture_t;

static void store_fixture_open(store_fixture_t *fixture, const char *prefix) {
  fixture->uri = mongo_fixture_uri(prefix);
  assert_non_null(fixture->uri);
  ap_error_t error = {0};
  ap_status_t status =
      ap_meta_store_open(fixture->uri, NULL, &settings, &fixture->meta, &error);
  if (status != AP_OK) {
    fail_msg("opening %s: %s", fixture->uri, error.message);
  }
  int version = 0;
  status = fixture->meta->backend->migrate(fixture->meta->state,
                                           AP_SCHEMA_VERSION, &version, &error);
  if (status != AP_OK) {
    fail_msg("migrating %s: %s", fixture->uri, error.message);
  }
}

static void store_fixture_close(store_fixture_t *fixture) {
  ap_meta_store_close(fixture->meta);
  mongo_fixture_drop(fixture->uri);
  free(fixture->uri);
}

/* Opens `uri`, expects `code`, and expects `expected` in the message. */
static void expect_open_error(const char *uri, ap_status_t code,
                              const char *expected) {
  ap_meta_store_t *meta = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_meta_store_open(uri, NULL, &settings, &meta, &error),
                   code);
  assert_null(meta);
  if (!strstr(error.message, expected)) {
    fail_msg("opening %s: expected \"%s\" in \"%s\"", uri, expected,
             error.message);
  }
}

static void bad_uris_name_the_fault(void **state) {
  (void)state;
  expect_open_error("mongodb://", AP_ERR_INVALID_CONFIG, "Invalid host");
  expect_open_error("mongodb://127.0.0.1:99999/", AP_ERR_INVALID_CONFIG,
                    "Port could not be parsed");
  expect_open_error("mongodb://127.0.0.1/?maxPoolSize=many",
                    AP_ERR_INVALID_CONFIG, "maxpoolsize");
  expect_open_error("mongodb://127.0.0.1/?retryWrite=true",
                    AP_ERR_INVALID_CONFIG, "retryWrite");
  expect_open_error("mongodb://127.0.0.1/bad.name", AP_ERR_INVALID_CONFIG,
                    "database name");
  expect_open_error("mongodb+srv://a.example,b.example/", AP_ERR_INVALID_CONFIG,
                    "service name");
  expect_open_error("postgresql://127.0.0.1/audiopipe", AP_ERR_UNSUPPORTED,
                    "mongodb://");
  expect_open_error("", AP_ERR_INVALID_CONFIG, "sqlite://");
}

static void bad_uri_hides_the_password(void **state) {
  (void)state;
  ap_meta_store_t *meta = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_meta_store_open("mongodb://user:s3cret@127.0.0.1/"
                                      "?maxPoolSize=many",
                                      NULL, &settings, &meta, &error),
                   AP_ERR_INVALID_CONFIG);
  assert_null(strstr(error.message, "s3cret"));
  assert_non_null(strstr(error.message, "user:***@127.0.0.1"));
}

static void default_database_is_audiopipe(void **state) {
  (void)state;
  ap_meta_store_t *meta = NULL;
  assert_int_equal(ap_meta_store_open("mongodb://127.0.0.1:1/", NULL, &settings,
                                      &meta, NULL),
                   AP_OK);
  ap_mongo_store_t *store = meta->state;
  assert_string_equal(store->database, "audiopipe");
  assert_string_equal(meta->backend->name, "mongodb");
  ap_meta_store_close(meta);
}

static void ping_answers(void **state) {
  (void)state;
  store_fixture_t fixture;
  store_fixture_open(&fixture, "ping");
  ap_error_t error = {0};
  assert_int_equal(fixture.meta->backend->ping(fixture.meta->state, &error),
                   AP_OK);
  store_fixture_close(&fixture);
}

int main(void) {
  mongoc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bad_uris_name_the_fault),
      cmocka_unit_test(bad_uri_hides_the_password),
      cmocka_unit_test(default_database_is_audiopipe),
      cmocka_unit_test(ping_answers),
  };
  int failures = cmocka_run_group_tests(tests, NULL, NULL);
  mongoc_cleanup();
  return failures;
}
