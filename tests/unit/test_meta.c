/*
 * Tests for the SQLite metadata store: identifiers, migrations, asset
 * pages and their cursors, owner isolation and deletion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <audiopipe/job.h>
#include <audiopipe/meta.h>

#include "context/context_internal.h"
#include "meta/meta_internal.h"
#include "test_meta_fixture.h"

/* Inserts an asset of `owner` created at `created_at_ms` through an
 * upload row, the way ap_upload_complete does, and stores its id. */
static void insert_asset(ap_context_t *context, const char *owner,
                         int64_t created_at_ms, char id[AP_ID_SIZE]) {
  ap_meta_store_t *meta = ap_context_meta_store(context);
  char upload_id[AP_ID_SIZE];
  char key[128];
  assert_int_equal(ap_id_generate(upload_id, NULL), AP_OK);
  assert_int_equal(ap_id_generate(id, NULL), AP_OK);
  snprintf(key, sizeof key, "uploads/test/%s", upload_id);

  ap_upload_record_t upload = {
      .id = upload_id,
      .owner = (char *)owner,
      .object_key = key,
      .filename = "take.wav",
      .content_type = "audio/wav",
      .size_bytes = 10,
      .state = AP_UPLOAD_PENDING,
      .expires_at_ms = created_at_ms + 1000,
      .created_at_ms = created_at_ms,
      .updated_at_ms = created_at_ms,
  };
  assert_int_equal(meta->backend->upload_insert(meta->state, &upload, NULL),
                   AP_OK);

  ap_asset_t asset = {.id = id,
                      .owner = (char *)owner,
                      .object_key = key,
                      .filename = "take.wav",
                      .content_type = "audio/wav",
                      .probe_json = "{\"codec\":\"pcm_s16le\"}",
                      .size_bytes = 10,
                      .created_at_ms = created_at_ms,
                      .updated_at_ms = created_at_ms};
  ap_job_enqueue_options_t job;
  ap_job_enqueue_options_init(&job);
  job.kind = AP_JOB_KIND_PROCESS_ASSET;
  job.asset_id = id;
  job.owner = owner;
  job.idempotency_key = upload_id;
  ap_asset_t *stored = NULL;
  ap_error_t error = {0};
  assert_int_equal(meta->backend->upload_accept(meta->state, upload_id, &asset,
                                                &job, created_at_ms, &stored,
                                                &error),
                   AP_OK);
  ap_asset_free(stored);
}

static void id_format_is_crockford(void **state) {
  (void)state;
  char id[AP_ID_SIZE];
  char other[AP_ID_SIZE];
  assert_int_equal(ap_id_generate(id, NULL), AP_OK);
  assert_int_equal(ap_id_generate(other, NULL), AP_OK);
  assert_int_equal(strlen(id), AP_ID_LENGTH);
  assert_true(ap_id_is_valid(id));
  assert_string_not_equal(id, other);
  assert_false(ap_id_is_valid("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
  assert_false(ap_id_is_valid("0123456789ABCDEFGHJKMNPQRI"));
  assert_false(ap_id_is_valid("0123"));
}

static void migrations_are_idempotent(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  int version = 0;
  assert_int_equal(ap_context_schema_version(fixture.context, &version, NULL),
                   AP_OK);
  assert_int_equal(version, AP_SCHEMA_VERSION);
  assert_int_equal(ap_context_check_ready(fixture.context, NULL), AP_OK);
  ap_context_close(fixture.context);

  /* A second open and an explicit migrate change nothing. */
  assert_int_equal(meta_fixture_open(&fixture), 0);
  assert_int_equal(ap_context_migrate(fixture.context, &version, NULL), AP_OK);
  assert_int_equal(version, AP_SCHEMA_VERSION);

  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(fixture.database, &db), SQLITE_OK);
  sqlite3_stmt *statement = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM schema_version",
                                      -1, &statement, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(statement), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(statement, 0), AP_SCHEMA_VERSION);
  sqlite3_finalize(statement);
  sqlite3_close(db);
  meta_fixture_close(&fixture);
}

static void old_schema_is_upgraded(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(
      ap_config_set(fixture.config, "metadata.auto_migrate", "false", NULL),
      AP_OK);
  assert_int_equal(meta_fixture_open(&fixture), 0);

  /* Build a version 1 database holding one asset. */
  ap_meta_store_t *meta = ap_context_meta_store(fixture.context);
  int version = 0;
  assert_int_equal(meta->backend->migrate(meta->state, 1, &version, NULL),
                   AP_OK);
  assert_int_equal(version, 1);
  /* Written with SQL of that version, because the backend's upload rows
   * have the columns of the current schema. */
  char id[AP_ID_SIZE];
  assert_int_equal(ap_id_generate(id, NULL), AP_OK);
  char insert[512];
  snprintf(insert, sizeof insert,
           "INSERT INTO assets (id, owner, object_key, status, filename, "
           "content_type, size_bytes, schema_version, created_at, "
           "updated_at) VALUES ('%s', 'alice', 'uploads/test/%s', 0, "
           "'take.wav', 'audio/wav', 10, 1, 1000, 1000)",
           id, id);
  sqlite3 *old_db = NULL;
  assert_int_equal(sqlite3_open(fixture.database, &old_db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(old_db, insert, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(old_db);
  ap_error_t error = {0};
  assert_int_equal(ap_context_check_ready(fixture.context, &error),
                   AP_ERR_CONFLICT);
  assert_non_null(strstr(error.message, "audiopipe migrate"));

  assert_int_equal(ap_context_migrate(fixture.context, &version, NULL), AP_OK);
  assert_int_equal(version, AP_SCHEMA_VERSION);
  assert_int_equal(ap_context_check_ready(fixture.context, NULL), AP_OK);
  ap_asset_t *asset = NULL;
  assert_int_equal(ap_asset_get(fixture.context, "alice", id, &asset, NULL),
                   AP_OK);
  assert_string_equal(ap_asset_filename(asset), "take.wav");
  ap_asset_free(asset);

  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(fixture.database, &db), SQLITE_OK);
  sqlite3_stmt *statement = NULL;
  assert_int_equal(
      sqlite3_prepare_v2(db,
                         "SELECT COUNT(*) FROM sqlite_master WHERE type = "
                         "'index' AND name = 'jobs_state_lease'",
                         -1, &statement, NULL),
      SQLITE_OK);
  assert_int_equal(sqlite3_step(statement), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(statement, 0), 1);
  sqlite3_finalize(statement);
  sqlite3_close(db);
  meta_fixture_close(&fixture);
}

/* Returns the result of a one-value query as text, or "" for NULL. */
static void query_text(sqlite3 *db, const char *sql, char *out, size_t size) {
  sqlite3_stmt *statement = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &statement, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(statement), SQLITE_ROW);
  const unsigned char *text = sqlite3_column_text(statement, 0);
  snprintf(out, size, "%s", text ? (const char *)text : "");
  sqlite3_finalize(statement);
}

/* Every column of every upload row, in rowid order, as one string. */
#define UPLOAD_ROWS_SQL                                                        \
  "SELECT group_concat(row, '|') FROM (SELECT quote(rowid) || ',' || "         \
  "quote(id) || ',' || quote(owner) || ',' || quote(object_key) || ',' || "    \
  "quote(filename) || ',' || quote(content_type) || ',' || "                   \
  "quote(size_bytes) || ',' || quote(state) || ',' || "                        \
  "quote(rejection_code) || ',' || quote(asset_id) || ',' || "                 \
  "quote(expires_at) || ',' || quote(created_at) || ',' || "                   \
  "quote(updated_at) || ',' || quote(method) || ',' || "                       \
  "quote(storage_upload_id) || ',' || quote(part_size) AS row FROM uploads "   \
  "ORDER BY rowid)"

/* Migration 5 rebuilds uploads without the object_key index and keeps
 * every row, column and rowid of a version 4 database. */
static void upload_rebuild_keeps_rows(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(
      ap_config_set(fixture.config, "metadata.auto_migrate", "false", NULL),
      AP_OK);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_meta_store_t *meta = ap_context_meta_store(fixture.context);
  int version = 0;
  assert_int_equal(meta->backend->migrate(meta->state, 4, &version, NULL),
                   AP_OK);
  assert_int_equal(version, 4);

  /* Version 4 rows of every shape: pending, completed with an asset,
   * rejected, and a multipart upload with its store id. */
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(fixture.database, &db), SQLITE_OK);
  const char *rows =
      "INSERT INTO uploads (id, owner, object_key, filename, content_type, "
      "size_bytes, state, rejection_code, asset_id, expires_at, created_at, "
      "updated_at, method, storage_upload_id, part_size) VALUES "
      "('0AAAAAAAAAAAAAAAAAAAAAAAAA', 'alice', 'uploads/a/0AAA', 'take.wav', "
      "'audio/wav', 10, 0, 0, NULL, 5000, 1000, 1000, 0, NULL, 0), "
      "('0BBBBBBBBBBBBBBBBBBBBBBBBB', 'bob', 'uploads/b/0BBB', "
      "'t\xc3\xa4ke.flac', 'audio/flac', 20, 1, 0, "
      "'0CCCCCCCCCCCCCCCCCCCCCCCCC', 6000, 2000, 2500, 1, NULL, 0), "
      "('0DDDDDDDDDDDDDDDDDDDDDDDDD', 'alice', 'uploads/a/0DDD', 'x.mp3', "
      "'audio/mpeg', 30, 2, 17, NULL, 7000, 3000, 3500, 2, 'store-upload-1', "
      "5242880)";
  assert_int_equal(sqlite3_exec(db, rows, NULL, NULL, NULL), SQLITE_OK);
  char before[4096];
  query_text(db, UPLOAD_ROWS_SQL, before, sizeof before);
  char indexes[512];
  query_text(db,
             "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
             "tbl_name = 'uploads' AND name LIKE 'sqlite_autoindex%'",
             indexes, sizeof indexes);
  assert_string_equal(indexes, "2");
  sqlite3_close(db);

  assert_int_equal(meta->backend->migrate(meta->state, 5, &version, NULL),
                   AP_OK);
  assert_int_equal(version, 5);

  assert_int_equal(sqlite3_open(fixture.database, &db), SQLITE_OK);
  char after[4096];
  query_text(db, UPLOAD_ROWS_SQL, after, sizeof after);
  assert_true(strlen(before) > 0);
  assert_string_equal(after, before);

  /* Only the primary key's automatic index is left, next to
   * uploads_state_expires. */
  query_text(db,
             "SELECT group_concat(name, ',') FROM (SELECT name FROM "
             "sqlite_master WHERE type = 'index' AND tbl_name = 'uploads' "
             "ORDER BY name)",
             indexes, sizeof indexes);
  assert_string_equal(indexes, "sqlite_autoindex_uploads_1,"
                               "uploads_state_expires");
  assert_int_equal(
      sqlite3_exec(db,
                   "INSERT INTO uploads (id, owner, object_key, filename, "
                   "content_type, size_bytes, state, expires_at, created_at, "
                   "updated_at) VALUES ('0AAAAAAAAAAAAAAAAAAAAAAAAA', 'eve', "
                   "'uploads/e/x', 'x.wav', 'audio/wav', 1, 0, 1, 1, 1)",
                   NULL, NULL, NULL),
      SQLITE_CONSTRAINT);
  sqlite3_close(db);

  /* The backend reads the rebuilt rows. */
  ap_upload_record_t record;
  assert_int_equal(meta->backend->upload_get(meta->state, "alice",
                                             "0DDDDDDDDDDDDDDDDDDDDDDDDD",
                                             &record, NULL),
                   AP_OK);
  assert_string_equal(record.object_key, "uploads/a/0DDD");
  assert_int_equal(record.rejection_code, 17);
  assert_string_equal(record.storage_upload_id, "store-upload-1");
  assert_int_equal(record.part_size_bytes, 5242880);
  ap_upload_record_clear(&record);
  meta_fixture_close(&fixture);
}

static void pages_cover_equal_timestamps(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);

  /* Seven assets, five of them created in the same millisecond. */
  enum { TOTAL = 7 };
  char ids[TOTAL][AP_ID_SIZE];
  const int64_t times[TOTAL] = {5000, 5000, 5000, 5000, 5000, 4000, 6000};
  for (int i = 0; i < TOTAL; i++) {
    insert_asset(fixture.context, "alice", times[i], ids[i]);
  }
  char bob_id[AP_ID_SIZE];
  insert_asset(fixture.context, "bob", 5000, bob_id);

  char seen[TOTAL][AP_ID_SIZE];
  size_t seen_count = 0;
  char *cursor = NULL;
  int pages = 0;
  int64_t previous_time = INT64_MAX;
  char previous_id[AP_ID_SIZE] = "~";
  do {
    ap_asset_list_t *list = NULL;
    ap_error_t error = {0};
    assert_int_equal(
        ap_asset_list(fixture.context, "alice", cursor, 3, &list, &error),
        AP_OK);
    pages++;
    for (size_t i = 0; i < ap_asset_list_count(list); i++) {
      const ap_asset_t *asset = ap_asset_list_at(list, i);
      assert_string_equal(ap_asset_owner(asset), "alice");
      /* Newest first, ties broken by descending id. */
      int64_t time = ap_asset_created_at_ms(asset);
      assert_true(time < previous_time ||
                  (time == previous_time &&
                   strcmp(ap_asset_id(asset), previous_id) < 0));
      previous_time = time;
      snprintf(previous_id, sizeof previous_id, "%s", ap_asset_id(asset));
      assert_true(seen_count < TOTAL);
      snprintf(seen[seen_count++], AP_ID_SIZE, "%s", ap_asset_id(asset));
    }
    free(cursor);
    const char *next = ap_asset_list_next_cursor(list);
    cursor = next ? strdup(next) : NULL;
    ap_asset_list_free(list);
  } while (cursor);

  assert_int_equal(pages, 3);
  assert_int_equal(seen_count, TOTAL);
  for (int i = 0; i < TOTAL; i++) {
    int found = 0;
    for (size_t j = 0; j < seen_count; j++) {
      found += strcmp(ids[i], seen[j]) == 0;
    }
    assert_int_equal(found, 1);
  }
  meta_fixture_close(&fixture);
}

static void tampered_cursor_is_rejected(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  char id[AP_ID_SIZE];
  for (int i = 0; i < 3; i++) {
    insert_asset(fixture.context, "alice", 1000 + i, id);
  }
  ap_asset_list_t *list = NULL;
  assert_int_equal(
      ap_asset_list(fixture.context, "alice", NULL, 1, &list, NULL), AP_OK);
  char cursor[128];
  snprintf(cursor, sizeof cursor, "%s", ap_asset_list_next_cursor(list));
  ap_asset_list_free(list);

  /* Moving the position in time breaks the MAC. */
  char tampered[128];
  snprintf(tampered, sizeof tampered, "%s", cursor);
  tampered[15] = tampered[15] == '0' ? '1' : '0';
  ap_error_t error = {0};
  assert_int_equal(
      ap_asset_list(fixture.context, "alice", tampered, 1, &list, &error),
      AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "cursor"));

  /* The cursor is bound to its owner. */
  assert_int_equal(
      ap_asset_list(fixture.context, "bob", cursor, 1, &list, &error),
      AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      ap_asset_list(fixture.context, "alice", "garbage", 1, &list, &error),
      AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      ap_asset_list(fixture.context, "alice", NULL, 0, &list, &error),
      AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      ap_asset_list(fixture.context, "alice", NULL, 101, &list, &error),
      AP_ERR_INVALID_ARGUMENT);

  assert_int_equal(
      ap_asset_list(fixture.context, "alice", cursor, 10, &list, NULL), AP_OK);
  assert_int_equal(ap_asset_list_count(list), 2);
  assert_null(ap_asset_list_next_cursor(list));
  ap_asset_list_free(list);
  meta_fixture_close(&fixture);
}

static void other_owner_gets_not_found(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  char id[AP_ID_SIZE];
  insert_asset(fixture.context, "alice", 1000, id);

  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_asset_get(fixture.context, "mallory", id, &asset, &error),
                   AP_ERR_NOT_FOUND);
  assert_null(asset);
  assert_int_equal(ap_asset_delete(fixture.context, "mallory", id, &error),
                   AP_ERR_NOT_FOUND);

  assert_int_equal(ap_asset_get(fixture.context, "alice", id, &asset, NULL),
                   AP_OK);
  char job_id[AP_ID_SIZE];
  snprintf(job_id, sizeof job_id, "%s", ap_asset_job_id(asset));
  ap_asset_free(asset);
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_get(fixture.context, "mallory", job_id, &job, &error),
                   AP_ERR_NOT_FOUND);
  assert_int_equal(ap_job_cancel(fixture.context, "mallory", job_id, &error),
                   AP_ERR_NOT_FOUND);
  meta_fixture_close(&fixture);
}

static void delete_cancels_jobs(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  char id[AP_ID_SIZE];
  insert_asset(fixture.context, "alice", 1000, id);
  ap_asset_t *asset = NULL;
  assert_int_equal(ap_asset_get(fixture.context, "alice", id, &asset, NULL),
                   AP_OK);
  char job_id[AP_ID_SIZE];
  snprintf(job_id, sizeof job_id, "%s", ap_asset_job_id(asset));
  ap_asset_free(asset);

  assert_int_equal(ap_asset_put_rendition(fixture.context, id, "mp3_128k",
                                          "renditions/x/mp3_128k.mp3",
                                          "audio/mpeg", 1234, NULL),
                   AP_OK);
  assert_int_equal(ap_asset_get(fixture.context, "alice", id, &asset, NULL),
                   AP_OK);
  assert_int_equal(ap_asset_rendition_count(asset), 1);
  assert_int_equal(ap_asset_rendition_size_bytes(asset, 0), 1234);
  char *json = NULL;
  assert_int_equal(ap_asset_to_json(asset, &json, NULL), AP_OK);
  assert_non_null(strstr(json, "\"mp3_128k\""));
  ap_free(json);
  ap_asset_free(asset);

  assert_int_equal(ap_asset_delete(fixture.context, "alice", id, NULL), AP_OK);
  assert_int_equal(ap_asset_get(fixture.context, "alice", id, &asset, NULL),
                   AP_ERR_NOT_FOUND);
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_get(fixture.context, "alice", job_id, &job, NULL),
                   AP_OK);
  assert_int_equal(ap_job_state(job), AP_JOB_CANCELLED);
  ap_job_free(job);
  meta_fixture_close(&fixture);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(id_format_is_crockford),
      cmocka_unit_test(migrations_are_idempotent),
      cmocka_unit_test(old_schema_is_upgraded),
      cmocka_unit_test(upload_rebuild_keeps_rows),
      cmocka_unit_test(pages_cover_equal_timestamps),
      cmocka_unit_test(tampered_cursor_is_rejected),
      cmocka_unit_test(other_owner_gets_not_found),
      cmocka_unit_test(delete_cancels_jobs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
