/*
 * Tests for the upload flow against a real SQLite file and the file object
 * store: request validation, every rejection at completion (each must
 * delete the object and leave no asset), success, idempotent completion,
 * atomic asset and job creation, and cleanup of expired uploads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <audiopipe/job.h>
#include <audiopipe/meta.h>
#include <audiopipe/storage.h>
#include <audiopipe/upload.h>

#include "context/context_internal.h"
#include "meta/meta_internal.h"
#include "storage/object_store.h"
#include "test_meta_fixture.h"
#include "upload/upload_internal.h"

#define CASES AP_TEST_DATA_DIR "/cases/"

static void open_fixture(meta_fixture_t *fixture) {
  assert_int_equal(meta_fixture_prepare(fixture), 0);
  assert_int_equal(meta_fixture_open(fixture), 0);
}

static int64_t file_size(const char *path) {
  FILE *file = fopen(path, "rb");
  assert_non_null(file);
  fseek(file, 0, SEEK_END);
  int64_t size = ftell(file);
  fclose(file);
  return size;
}

/* Creates an upload for `owner` declaring `size_bytes` of audio/wav. */
static ap_upload_ticket_t *create(ap_context_t *context, const char *owner,
                                  int64_t size_bytes) {
  ap_upload_request_t request;
  ap_upload_request_init(&request);
  request.owner = owner;
  request.filename = "take one.wav";
  request.size_bytes = size_bytes;
  request.content_type = "audio/wav";
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_create(context, &request, &ticket, &error), AP_OK);
  return ticket;
}

/* Stores the bytes of `path` under the ticket's key, as the client's PUT
 * would. */
static void put_file(ap_context_t *context, const ap_upload_ticket_t *ticket,
                     const char *path) {
  ap_io_t *input = NULL;
  assert_int_equal(ap_io_open_file(path, &input, NULL), AP_OK);
  ap_error_t error = {0};
  assert_int_equal(
      ap_object_store_put_from_io(ap_context_object_store(context),
                                  ap_upload_ticket_object_key(ticket),
                                  "audio/wav", input, &error),
      AP_OK);
  ap_io_close(input);
}

static int object_exists(ap_context_t *context, const char *key) {
  ap_object_info_t info;
  return ap_object_store_stat(ap_context_object_store(context), key, &info,
                              NULL) == AP_OK;
}

static size_t asset_count(ap_context_t *context, const char *owner) {
  ap_asset_list_t *list = NULL;
  assert_int_equal(ap_asset_list(context, owner, NULL, 100, &list, NULL),
                   AP_OK);
  size_t count = ap_asset_list_count(list);
  ap_asset_list_free(list);
  return count;
}

static int64_t queued_jobs(ap_context_t *context) {
  ap_job_stats_t stats;
  assert_int_equal(ap_job_stats(context, &stats, NULL), AP_OK);
  return stats.queued;
}

static void expect_request_error(ap_context_t *context,
                                 const ap_upload_request_t *request,
                                 ap_status_t code, const char *field) {
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_create(context, request, &ticket, &error), code);
  assert_null(ticket);
  assert_int_equal(strncmp(error.message, field, strlen(field)), 0);
}

static void create_validates_fields(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  ap_context_t *context = fixture.context;
  ap_upload_request_t good;
  ap_upload_request_init(&good);
  good.owner = "alice";
  good.filename = "Take 1 — café.wav";
  good.size_bytes = 1000;
  good.content_type = "audio/WAV";

  ap_upload_request_t request = good;
  request.owner = "";
  expect_request_error(context, &request, AP_ERR_INVALID_ARGUMENT, "owner");

  const char *bad_names[] = {"",
                             "a/b.wav",
                             "a\\b.wav",
                             "tab\there.wav",
                             "bad\xff.wav",
                             "over\xc0\xaflong.wav",
                             "c1\xc2\x85.wav"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    request = good;
    request.filename = bad_names[i];
    expect_request_error(context, &request, AP_ERR_INVALID_FILENAME,
                         "filename");
  }
  char long_name[300];
  memset(long_name, 'a', 256);
  long_name[256] = '\0';
  request = good;
  request.filename = long_name;
  expect_request_error(context, &request, AP_ERR_INVALID_FILENAME, "filename");
  long_name[255] = '\0';
  assert_true(ap_upload_filename_is_valid(long_name, 255));

  request = good;
  request.size_bytes = 0;
  expect_request_error(context, &request, AP_ERR_INVALID_ARGUMENT,
                       "size_bytes");
  request.size_bytes = 3LL * 1024 * 1024 * 1024;
  expect_request_error(context, &request, AP_ERR_UPLOAD_TOO_LARGE,
                       "size_bytes");

  const char *bad_types[] = {"video/mp4", "audio/wav; codecs=1", "", NULL};
  for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
    request = good;
    request.content_type = bad_types[i];
    expect_request_error(context, &request, AP_ERR_CONTENT_TYPE,
                         "content_type");
  }

  ap_upload_ticket_t *ticket = NULL;
  assert_int_equal(ap_upload_create(context, &good, &ticket, NULL), AP_OK);
  assert_true(ap_id_is_valid(ap_upload_ticket_id(ticket)));
  /* The key never contains the client's file name. */
  assert_null(strstr(ap_upload_ticket_object_key(ticket), "Take"));
  assert_int_equal(strncmp(ap_upload_ticket_object_key(ticket), "uploads/", 8),
                   0);
  assert_string_equal(ap_upload_ticket_method(ticket), "PUT");
  assert_int_equal(
      strncmp(ap_upload_ticket_url(ticket), "http://127.0.0.1:8080/", 22), 0);
  int content_type_seen = 0;
  for (size_t i = 0; i < ap_upload_ticket_header_count(ticket); i++) {
    if (strcasecmp(ap_upload_ticket_header_name(ticket, i), "Content-Type") ==
        0) {
      assert_string_equal(ap_upload_ticket_header_value(ticket, i),
                          "audio/wav");
      content_type_seen = 1;
    }
  }
  assert_true(content_type_seen);
  int64_t now = ap_time_now_ms();
  assert_true(ap_upload_ticket_expires_at_ms(ticket) > now + 14 * 60000);
  assert_true(ap_upload_ticket_expires_at_ms(ticket) <= now + 16 * 60000);
  char *json = NULL;
  assert_int_equal(ap_upload_ticket_to_json(ticket, &json, NULL), AP_OK);
  assert_non_null(strstr(json, "\"upload_id\""));
  ap_free(json);
  ap_upload_ticket_free(ticket);
  meta_fixture_close(&fixture);
}

/* Creates an upload, stores `path` and expects completion to fail with
 * `code`, delete the object and create no asset. */
static void expect_rejection(const char *path, int64_t declared_size,
                             ap_status_t code, const char *max_bytes) {
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  if (max_bytes) {
    assert_int_equal(
        ap_config_set(fixture.config, "uploads.max_bytes", max_bytes, NULL),
        AP_OK);
  }
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_context_t *context = fixture.context;
  ap_upload_ticket_t *ticket = create(context, "alice", declared_size);
  put_file(context, ticket, path);
  const char *key = ap_upload_ticket_object_key(ticket);
  assert_true(object_exists(context, key));

  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), &asset,
                                      &error),
                   code);
  assert_null(asset);
  assert_false(object_exists(context, key));
  assert_int_equal(asset_count(context, "alice"), 0);
  assert_int_equal(queued_jobs(context), 0);
  ap_upload_state_t upload_state = AP_UPLOAD_PENDING;
  int rejection = 0;
  assert_int_equal(ap_upload_get_state(context, "alice",
                                       ap_upload_ticket_id(ticket),
                                       &upload_state, &rejection, NULL),
                   AP_OK);
  assert_int_equal(upload_state, AP_UPLOAD_REJECTED);
  assert_int_equal(rejection, code);

  /* A rejected upload cannot be completed later. */
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), NULL,
                                      &error),
                   AP_ERR_UPLOAD_STATE);
  ap_upload_ticket_free(ticket);
  meta_fixture_close(&fixture);
}

static void empty_object_is_rejected(void **state) {
  (void)state;
  expect_rejection(CASES "case-14.mp3", 1, AP_ERR_EMPTY_INPUT, NULL);
}

static void multipart_body_is_rejected(void **state) {
  (void)state;
  expect_rejection(CASES "case-22.wav", file_size(CASES "case-22.wav"),
                   AP_ERR_MULTIPART_BODY, NULL);
}

static void text_file_is_rejected(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/upload-notes.txt", tmp ? tmp : "/tmp");
  FILE *file = fopen(path, "w");
  assert_non_null(file);
  for (int i = 0; i < 50; i++) {
    fputs("Meeting notes: the recording is attached separately.\n", file);
  }
  fclose(file);
  expect_rejection(path, file_size(path), AP_ERR_NOT_AUDIO, NULL);
  remove(path);
}

static void too_many_channels_is_rejected(void **state) {
  (void)state;
  expect_rejection(CASES "case-16.wav", file_size(CASES "case-16.wav"),
                   AP_ERR_CHANNELS_UNSUPPORTED, NULL);
}

static void size_mismatch_is_rejected(void **state) {
  (void)state;
  expect_rejection(CASES "case-03.mp3", file_size(CASES "case-03.mp3") + 1,
                   AP_ERR_SIZE_MISMATCH, NULL);
}

static void oversized_object_is_rejected(void **state) {
  (void)state;
  /* A presigned PUT cannot cap the size, so 1.7 MB may land under a 1 MiB
   * limit; completion must catch it. */
  expect_rejection(CASES "case-05.mp3", 1000, AP_ERR_UPLOAD_TOO_LARGE, "1M");
}

static void missing_object_stays_pending(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  ap_context_t *context = fixture.context;
  ap_upload_ticket_t *ticket = create(context, "alice", 100);
  ap_error_t error = {0};
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), NULL,
                                      &error),
                   AP_ERR_OBJECT_MISSING);
  assert_int_equal(asset_count(context, "alice"), 0);
  ap_upload_state_t upload_state = AP_UPLOAD_REJECTED;
  assert_int_equal(ap_upload_get_state(context, "alice",
                                       ap_upload_ticket_id(ticket),
                                       &upload_state, NULL, NULL),
                   AP_OK);
  assert_int_equal(upload_state, AP_UPLOAD_PENDING);
  ap_upload_ticket_free(ticket);
  meta_fixture_close(&fixture);
}

/* Moves an upload's expiry into the past, directly in the database. */
static void expire_upload(const meta_fixture_t *fixture, const char *id) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(fixture->database, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char sql[200];
  snprintf(sql, sizeof sql,
           "UPDATE uploads SET expires_at = 1000 WHERE id = '%s'", id);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_close(db);
}

static void expired_upload_is_rejected(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  ap_context_t *context = fixture.context;
  ap_upload_ticket_t *ticket =
      create(context, "alice", file_size(CASES "case-03.mp3"));
  put_file(context, ticket, CASES "case-03.mp3");
  expire_upload(&fixture, ap_upload_ticket_id(ticket));

  ap_error_t error = {0};
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), NULL,
                                      &error),
                   AP_ERR_EXPIRED);
  assert_false(object_exists(context, ap_upload_ticket_object_key(ticket)));
  assert_int_equal(asset_count(context, "alice"), 0);
  ap_upload_state_t upload_state = AP_UPLOAD_PENDING;
  assert_int_equal(ap_upload_get_state(context, "alice",
                                       ap_upload_ticket_id(ticket),
                                       &upload_state, NULL, NULL),
                   AP_OK);
  assert_int_equal(upload_state, AP_UPLOAD_EXPIRED);
  ap_upload_ticket_free(ticket);
  meta_fixture_close(&fixture);
}

static void valid_upload_creates_asset_and_job(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  ap_context_t *context = fixture.context;
  int64_t size = file_size(CASES "case-03.mp3");
  ap_upload_ticket_t *ticket = create(context, "alice", size);
  put_file(context, ticket, CASES "case-03.mp3");

  ap_error_t error = {0};
  ap_asset_t *asset = NULL;
  assert_int_equal(ap_upload_complete(context, "mallory",
                                      ap_upload_ticket_id(ticket), &asset,
                                      &error),
                   AP_ERR_NOT_FOUND);
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), &asset,
                                      &error),
                   AP_OK);
  assert_non_null(asset);
  assert_int_equal(ap_asset_status(asset), AP_ASSET_PENDING);
  assert_string_equal(ap_asset_owner(asset), "alice");
  assert_string_equal(ap_asset_filename(asset), "take one.wav");
  assert_int_equal(ap_asset_size_bytes(asset), size);
  assert_string_equal(ap_asset_object_key(asset),
                      ap_upload_ticket_object_key(ticket));
  assert_non_null(ap_asset_probe_json(asset));
  assert_non_null(strstr(ap_asset_probe_json(asset), "mp3"));
  assert_int_equal(ap_asset_schema_version(asset), AP_SCHEMA_VERSION);
  assert_true(object_exists(context, ap_asset_object_key(asset)));
  assert_int_equal(asset_count(context, "alice"), 1);
  assert_int_equal(queued_jobs(context), 1);

  ap_job_t *job = NULL;
  assert_int_equal(
      ap_job_get(context, "alice", ap_asset_job_id(asset), &job, NULL), AP_OK);
  assert_string_equal(ap_job_kind(job), AP_JOB_KIND_PROCESS_ASSET);
  assert_string_equal(ap_job_asset_id(job), ap_asset_id(asset));
  assert_string_equal(ap_job_idempotency_key(job), ap_upload_ticket_id(ticket));
  ap_job_free(job);

  /* Completing again returns the same asset and adds no job. */
  ap_asset_t *again = NULL;
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), &again,
                                      NULL),
                   AP_OK);
  assert_string_equal(ap_asset_id(again), ap_asset_id(asset));
  assert_int_equal(asset_count(context, "alice"), 1);
  assert_int_equal(queued_jobs(context), 1);
  ap_asset_free(again);
  ap_asset_free(asset);
  ap_upload_ticket_free(ticket);
  meta_fixture_close(&fixture);
}

static void failed_job_insert_leaves_no_asset(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  ap_context_t *context = fixture.context;
  int64_t size = file_size(CASES "case-03.mp3");
  ap_upload_ticket_t *ticket = create(context, "alice", size);
  put_file(context, ticket, CASES "case-03.mp3");

  /* A job already holding the upload's idempotency key makes the job
   * insert inside the completion transaction violate the unique index
   * after the asset row was written. */
  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "blocker";
  options.idempotency_key = ap_upload_ticket_id(ticket);
  assert_int_equal(ap_job_enqueue(context, &options, NULL, NULL), AP_OK);

  ap_error_t error = {0};
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), NULL,
                                      &error),
                   AP_ERR_CONFLICT);
  assert_int_equal(asset_count(context, "alice"), 0);
  assert_int_equal(queued_jobs(context), 1);
  ap_upload_state_t upload_state = AP_UPLOAD_REJECTED;
  assert_int_equal(ap_upload_get_state(context, "alice",
                                       ap_upload_ticket_id(ticket),
                                       &upload_state, NULL, NULL),
                   AP_OK);
  assert_int_equal(upload_state, AP_UPLOAD_PENDING);
  ap_upload_ticket_free(ticket);
  meta_fixture_close(&fixture);
}

static void cleanup_expires_old_uploads(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  ap_context_t *context = fixture.context;
  ap_upload_ticket_t *old_ticket = create(context, "alice", 100);
  ap_upload_ticket_t *fresh_ticket = create(context, "alice", 100);
  put_file(context, old_ticket, CASES "case-03.mp3");
  put_file(context, fresh_ticket, CASES "case-03.mp3");
  expire_upload(&fixture, ap_upload_ticket_id(old_ticket));

  int64_t count = 0;
  assert_int_equal(ap_upload_cleanup_expired(context, 0, &count, NULL), AP_OK);
  assert_int_equal(count, 1);
  assert_false(object_exists(context, ap_upload_ticket_object_key(old_ticket)));
  assert_true(
      object_exists(context, ap_upload_ticket_object_key(fresh_ticket)));
  ap_upload_state_t upload_state = AP_UPLOAD_PENDING;
  assert_int_equal(ap_upload_get_state(context, "alice",
                                       ap_upload_ticket_id(old_ticket),
                                       &upload_state, NULL, NULL),
                   AP_OK);
  assert_int_equal(upload_state, AP_UPLOAD_EXPIRED);
  assert_int_equal(ap_upload_cleanup_expired(context, 0, &count, NULL), AP_OK);
  assert_int_equal(count, 0);
  ap_upload_ticket_free(old_ticket);
  ap_upload_ticket_free(fresh_ticket);
  meta_fixture_close(&fixture);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(create_validates_fields),
      cmocka_unit_test(empty_object_is_rejected),
      cmocka_unit_test(multipart_body_is_rejected),
      cmocka_unit_test(text_file_is_rejected),
      cmocka_unit_test(too_many_channels_is_rejected),
      cmocka_unit_test(size_mismatch_is_rejected),
      cmocka_unit_test(oversized_object_is_rejected),
      cmocka_unit_test(missing_object_stays_pending),
      cmocka_unit_test(expired_upload_is_rejected),
      cmocka_unit_test(valid_upload_creates_asset_and_job),
      cmocka_unit_test(failed_job_insert_leaves_no_asset),
      cmocka_unit_test(cleanup_expires_old_uploads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
