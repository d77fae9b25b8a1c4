/*
 * Tests of the MongoDB metadata backend's store, assets and uploads,
 * against the fixture's server (see mongo_fixture.h): URI checks, the
 * migration and its indexes, asset and upload records, upload acceptance,
 * asset deletion, and behaviour while the server is down.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>

#include <audiopipe/context.h>
#include <audiopipe/job.h>
#include <audiopipe/meta.h>
#include <audiopipe/upload.h>
#include <audiopipe/worker.h>

#include "context/context_internal.h"
#include "meta/meta_internal.h"
#include "meta/mongo_internal.h"
#include "mongo_fixture.h"
#include "storage/object_store.h"

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

static void production_uris_open(void **state) {
  (void)state;
  /* Opening touches no network, so these hosts need not exist. */
  const char *uris[] = {
      "mongodb://audiopipe:secret@db1,db2,db3/audiopipe?replicaSet=rs0"
      "&w=majority&readConcernLevel=majority&retryWrites=true"
      "&serverSelectionTimeoutMS=5000&authSource=admin&tls=true",
      "mongodb://127.0.0.1:1/?journal=true&wtimeoutMS=5000&maxPoolSize=8"
      "&compressors=zlib&appName=ingest&readPreference=primary",
  };
  for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
    ap_meta_store_t *meta = NULL;
    ap_error_t error = {0};
    if (ap_meta_store_open(uris[i], NULL, &settings, &meta, &error) != AP_OK) {
      fail_msg("opening %s: %s", uris[i], error.message);
    }
    ap_meta_store_close(meta);
  }
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

/* ---- Helpers. ---- */

/* The first and the second owner of the isolation checks. */
#define OWNER "alice"
#define OTHER_OWNER "bob"

/* Inserts a pending upload of `owner` created at `created_at_ms` that
 * expires at `expires_at_ms`, and stores its id. */
static void insert_upload(ap_meta_store_t *meta, const char *owner,
                          int64_t created_at_ms, int64_t expires_at_ms,
                          char id[AP_ID_SIZE]) {
  char key[128];
  assert_int_equal(ap_id_generate(id, NULL), AP_OK);
  snprintf(key, sizeof key, "uploads/%s/%s", owner, id);
  ap_upload_record_t upload = {
      .id = id,
      .owner = (char *)owner,
      .object_key = key,
      .filename = "take.wav",
      .content_type = "audio/wav",
      .size_bytes = 10,
      .state = AP_UPLOAD_PENDING,
      .expires_at_ms = expires_at_ms,
      .created_at_ms = created_at_ms,
      .updated_at_ms = created_at_ms,
  };
  ap_error_t error = {0};
  ap_status_t status =
      meta->backend->upload_insert(meta->state, &upload, &error);
  if (status != AP_OK) {
    fail_msg("upload_insert: %s", error.message);
  }
}

/* Accepts the upload `upload_id` as a new asset `asset_id` of `owner`,
 * created at `created_at_ms`, with a processing job keyed by the upload
 * id, and returns the asset the store returned. */
static ap_asset_t *accept_upload(ap_meta_store_t *meta, const char *owner,
                                 const char *upload_id, const char *asset_id,
                                 int64_t created_at_ms, ap_status_t expected) {
  char key[128];
  snprintf(key, sizeof key, "uploads/%s/%s", owner, upload_id);
  ap_asset_t asset = {.id = (char *)asset_id,
                      .owner = (char *)owner,
                      .object_key = key,
                      .filename = "take.wav",
                      .content_type = "audio/wav",
                      .probe_json = "{\"codec\":\"pcm_s16le\"}",
                      .status = AP_ASSET_PROCESSING,
                      .size_bytes = 10,
                      .created_at_ms = created_at_ms,
                      .updated_at_ms = created_at_ms};
  ap_job_enqueue_options_t job;
  ap_job_enqueue_options_init(&job);
  job.kind = AP_JOB_KIND_PROCESS_ASSET;
  job.asset_id = asset_id;
  job.owner = owner;
  job.payload_json = "{}";
  job.idempotency_key = upload_id;
  ap_asset_t *stored = NULL;
  ap_error_t error = {0};
  ap_status_t status = meta->backend->upload_accept(
      meta->state, upload_id, &asset, &job, created_at_ms, &stored, &error);
  if (status != expected) {
    fail_msg("upload_accept %s: status %d, expected %d: %s", upload_id,
             (int)status, (int)expected, error.message);
  }
  return stored;
}

/* Creates an asset of `owner` at `created_at_ms` through an upload and
 * stores its id. */
static void create_asset(ap_meta_store_t *meta, const char *owner,
                         int64_t created_at_ms, char id[AP_ID_SIZE]) {
  char upload_id[AP_ID_SIZE];
  insert_upload(meta, owner, created_at_ms, created_at_ms + 60000, upload_id);
  assert_int_equal(ap_id_generate(id, NULL), AP_OK);
  ap_asset_t *asset =
      accept_upload(meta, owner, upload_id, id, created_at_ms, AP_OK);
  ap_asset_free(asset);
}

/* Counts the documents of `collection` matching `filter`. */
static int64_t count_documents(ap_meta_store_t *meta, const char *collection,
                               const bson_t *filter) {
  ap_mongo_store_t *store = meta->state;
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *handle = ap_mongo_collection(store, client, collection);
  bson_error_t driver_error;
  int64_t count = mongoc_collection_count_documents(handle, filter, NULL, NULL,
                                                    NULL, &driver_error);
  mongoc_collection_destroy(handle);
  ap_mongo_client_push(store, client);
  if (count < 0) {
    fail_msg("counting %s: %s", collection, driver_error.message);
  }
  return count;
}

static int64_t count_jobs_of(ap_meta_store_t *meta, const char *asset_id) {
  bson_t *filter = BCON_NEW("asset_id", BCON_UTF8(asset_id));
  int64_t count = count_documents(meta, AP_MONGO_JOBS, filter);
  bson_destroy(filter);
  return count;
}

/* ---- Migration and indexes. ---- */

/* One index as listIndexes returns it: the keys as "field:1,field:-1". */
typedef struct index_description {
  char name[64];
  char keys[128];
  int unique;
  int64_t expire_after_seconds; /* -1 when absent */
  int partial;
} index_description_t;

static void describe_index(const bson_t *document, index_description_t *index) {
  memset(index, 0, sizeof *index);
  index->expire_after_seconds = -1;
  bson_iter_t iter;
  if (bson_iter_init_find(&iter, document, "name") &&
      BSON_ITER_HOLDS_UTF8(&iter)) {
    snprintf(index->name, sizeof index->name, "%s",
             bson_iter_utf8(&iter, NULL));
  }
  bson_iter_t keys;
  if (bson_iter_init_find(&iter, document, "key") &&
      bson_iter_recurse(&iter, &keys)) {
    while (bson_iter_next(&keys)) {
      size_t used = strlen(index->keys);
      snprintf(index->keys + used, sizeof index->keys - used, "%s%s:%lld",
               used ? "," : "", bson_iter_key(&keys),
               (long long)bson_iter_as_int64(&keys));
    }
  }
  if (bson_iter_init_find(&iter, document, "unique")) {
    index->unique = bson_iter_as_bool(&iter);
  }
  if (bson_iter_init_find(&iter, document, "expireAfterSeconds")) {
    index->expire_after_seconds = bson_iter_as_int64(&iter);
  }
  index->partial =
      bson_iter_init_find(&iter, document, "partialFilterExpression");
}

/* Finds the index `name` of `collection` and checks its keys and
 * uniqueness; returns it for further checks. */
static index_description_t expect_index(ap_meta_store_t *meta,
                                        const char *collection,
                                        const char *name, const char *keys,
                                        int unique) {
  ap_mongo_store_t *store = meta->state;
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *handle = ap_mongo_collection(store, client, collection);
  mongoc_cursor_t *cursor =
      mongoc_collection_find_indexes_with_opts(handle, NULL);
  const bson_t *document = NULL;
  index_description_t found;
  int seen = 0;
  while (!seen && mongoc_cursor_next(cursor, &document)) {
    describe_index(document, &found);
    seen = strcmp(found.name, name) == 0;
  }
  bson_error_t driver_error;
  int failed = mongoc_cursor_error(cursor, &driver_error);
  mongoc_cursor_destroy(cursor);
  mongoc_collection_destroy(handle);
  ap_mongo_client_push(store, client);
  if (failed) {
    fail_msg("listIndexes %s: %s", collection, driver_error.message);
  }
  if (!seen) {
    fail_msg("index %s of %s is missing", name, collection);
  }
  assert_string_equal(found.keys, keys);
  assert_int_equal(found.unique, unique);
  return found;
}

static void migrate_twice_keeps_indexes(void **state) {
  (void)state;
  store_fixture_t fixture;
  store_fixture_open(&fixture, "migrate");
  ap_meta_store_t *meta = fixture.meta;

  int version = -1;
  ap_error_t error = {0};
  assert_int_equal(
      meta->backend->migrate(meta->state, AP_SCHEMA_VERSION, &version, &error),
      AP_OK);
  assert_int_equal(version, AP_SCHEMA_VERSION);
  version = -1;
  assert_int_equal(meta->backend->schema_version(meta->state, &version, &error),
                   AP_OK);
  assert_int_equal(version, AP_SCHEMA_VERSION);

  /* A lower target never lowers the stored version. */
  assert_int_equal(meta->backend->migrate(meta->state, 1, &version, &error),
                   AP_OK);
  assert_int_equal(version, AP_SCHEMA_VERSION);
  assert_int_equal(meta->backend->migrate(meta->state, AP_SCHEMA_VERSION + 1,
                                          &version, &error),
                   AP_ERR_INVALID_ARGUMENT);

  bson_t *schema = BCON_NEW("id", BCON_UTF8("schema"));
  assert_int_equal(count_documents(meta, AP_MONGO_META, schema), 1);
  bson_destroy(schema);

  expect_index(meta, AP_MONGO_META, AP_MONGO_INDEX_ID, "id:1", 1);
  expect_index(meta, AP_MONGO_ASSETS, AP_MONGO_INDEX_ID, "id:1", 1);
  expect_index(meta, AP_MONGO_ASSETS, AP_MONGO_INDEX_ASSETS_OWNER,
               "owner:1,created_at:-1,id:-1", 0);
  expect_index(meta, AP_MONGO_UPLOADS, AP_MONGO_INDEX_ID, "id:1", 1);
  expect_index(meta, AP_MONGO_UPLOADS, AP_MONGO_INDEX_UPLOADS_EXPIRY,
               "state:1,expires_at:1", 0);
  index_description_t ttl =
      expect_index(meta, AP_MONGO_UPLOADS, AP_MONGO_INDEX_UPLOADS_TTL,
                   "expires_at_date:1", 0);
  assert_int_equal(ttl.expire_after_seconds, 7 * 24 * 3600);
  expect_index(meta, AP_MONGO_JOBS, AP_MONGO_INDEX_ID, "id:1", 1);
  expect_index(meta, AP_MONGO_JOBS, AP_MONGO_INDEX_JOBS_DUE,
               "state:1,due_at:1,created_at:1,id:1", 0);
  expect_index(meta, AP_MONGO_JOBS, AP_MONGO_INDEX_JOBS_LEASE,
               "state:1,lease_expires_at:1", 0);
  index_description_t idempotency =
      expect_index(meta, AP_MONGO_JOBS, AP_MONGO_INDEX_JOBS_IDEMPOTENCY,
                   "idempotency_key:1", 1);
  if (!mongo_fixture_skip("listIndexes leaves out partialFilterExpression")) {
    assert_true(idempotency.partial);
  }
  expect_index(meta, AP_MONGO_JOBS, AP_MONGO_INDEX_JOBS_ASSET, "asset_id:1", 0);
  store_fixture_close(&fixture);
}

/* ---- Assets. ---- */

static void asset_round_trip(void **state) {
  (void)state;
  store_fixture_t fixture;
  store_fixture_open(&fixture, "assets");
  ap_meta_store_t *meta = fixture.meta;
  char id[AP_ID_SIZE];
  create_asset(meta, OWNER, 1700000000123, id);

  ap_asset_object_t opus = {.name = "opus_64k",
                            .object_key = "renditions/a/opus_64k.opus",
                            .content_type = "audio/ogg",
                            .size_bytes = 4096};
  ap_asset_object_t mp3 = {.name = "mp3_128k",
                           .object_key = "renditions/a/mp3_128k.mp3",
                           .content_type = "audio/mpeg",
                           .size_bytes = 8192};
  ap_asset_object_t dat = {.name = "dat_16bit_256spp",
                           .object_key = "waveforms/a/peaks.dat",
                           .size_bytes = 2048};
  ap_error_t error = {0};
  assert_int_equal(meta->backend->asset_put_object(meta->state, id, "rendition",
                                                   &opus, 1700000000200,
                                                   &error),
                   AP_OK);
  assert_int_equal(meta->backend->asset_put_object(meta->state, id, "rendition",
                                                   &mp3, 1700000000300, &error),
                   AP_OK);
  assert_int_equal(meta->backend->asset_put_object(meta->state, id, "waveform",
                                                   &dat, 1700000000400, &error),
                   AP_OK);
  /* Storing an object of the same name replaces it. */
  opus.size_bytes = 5000;
  assert_int_equal(meta->backend->asset_put_object(meta->state, id, "rendition",
                                                   &opus, 1700000000500,
                                                   &error),
                   AP_OK);
  assert_int_equal(meta->backend->asset_put_object(meta->state, id, "thumbnail",
                                                   &opus, 1700000000500,
                                                   &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(meta->backend->asset_set_analysis(
                       meta->state, id, "{\"integrated_lufs\":-23.0}",
                       1700000000600, &error),
                   AP_OK);
  assert_int_equal(meta->backend->asset_set_status(meta->state, id,
                                                   AP_ASSET_READY, 0, NULL,
                                                   1700000000700, &error),
                   AP_OK);

  ap_asset_t *asset = NULL;
  assert_int_equal(
      meta->backend->asset_get(meta->state, OWNER, id, &asset, &error), AP_OK);
  assert_string_equal(asset->id, id);
  assert_string_equal(asset->owner, OWNER);
  assert_string_equal(asset->filename, "take.wav");
  assert_string_equal(asset->content_type, "audio/wav");
  assert_string_equal(asset->probe_json, "{\"codec\":\"pcm_s16le\"}");
  assert_string_equal(asset->analysis_json, "{\"integrated_lufs\":-23.0}");
  assert_non_null(asset->job_id);
  assert_null(asset->error_message);
  assert_int_equal(asset->status, AP_ASSET_READY);
  assert_int_equal(asset->schema_version, AP_SCHEMA_VERSION);
  assert_int_equal(asset->size_bytes, 10);
  assert_int_equal(asset->created_at_ms, 1700000000123);
  assert_int_equal(asset->updated_at_ms, 1700000000700);
  assert_int_equal(asset->rendition_count, 2);
  assert_string_equal(asset->renditions[0].name, "mp3_128k");
  assert_string_equal(asset->renditions[0].content_type, "audio/mpeg");
  assert_int_equal(asset->renditions[0].size_bytes, 8192);
  assert_string_equal(asset->renditions[1].name, "opus_64k");
  assert_string_equal(asset->renditions[1].object_key,
                      "renditions/a/opus_64k.opus");
  if (!mongo_fixture_skip("an update through the positional $ operator "
                          "matches but changes nothing")) {
    assert_int_equal(asset->renditions[1].size_bytes, 5000);
  }
  assert_int_equal(asset->waveform_count, 1);
  assert_string_equal(asset->waveforms[0].name, "dat_16bit_256spp");
  assert_null(asset->waveforms[0].content_type);
  assert_int_equal(asset->waveforms[0].size_bytes, 2048);
  ap_asset_free(asset);

  /* A failure keeps its code and message; another status clears them. */
  assert_int_equal(meta->backend->asset_set_status(
                       meta->state, id, AP_ASSET_FAILED, AP_ERR_NOT_AUDIO,
                       "no audio stream", 1700000000800, &error),
                   AP_OK);
  assert_int_equal(
      meta->backend->asset_get(meta->state, NULL, id, &asset, &error), AP_OK);
  assert_int_equal(asset->status, AP_ASSET_FAILED);
  assert_int_equal(asset->error_code, AP_ERR_NOT_AUDIO);
  assert_string_equal(asset->error_message, "no audio stream");
  ap_asset_free(asset);
  store_fixture_close(&fixture);
}

static void other_owner_gets_not_found(void **state) {
  (void)state;
  store_fixture_t fixture;
  store_fixture_open(&fixture, "owners");
  ap_meta_store_t *meta = fixture.meta;
  char id[AP_ID_SIZE];
  create_asset(meta, OWNER, 1700000000000, id);

  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      meta->backend->asset_get(meta->state, OTHER_OWNER, id, &asset, &error),
      AP_ERR_NOT_FOUND);
  assert_null(asset);
  assert_non_null(strstr(error.message, id));
  assert_int_equal(
      meta->backend->asset_delete(meta->state, OTHER_OWNER, id, &error),
      AP_ERR_NOT_FOUND);
  ap_upload_record_t upload;
  memset(&upload, 0, sizeof upload);
  assert_int_equal(meta->backend->upload_get(meta->state, OTHER_OWNER,
                                             "missing-upload", &upload, &error),
                   AP_ERR_NOT_FOUND);
  assert_int_equal(meta->backend->asset_set_status(meta->state, "missing-id",
                                                   AP_ASSET_READY, 0, NULL, 1,
                                                   &error),
                   AP_ERR_NOT_FOUND);
  ap_asset_object_t object = {.name = "x", .object_key = "k", .size_bytes = 1};
  assert_int_equal(meta->backend->asset_put_object(meta->state, "missing-id",
                                                   "waveform", &object, 1,
                                                   &error),
                   AP_ERR_NOT_FOUND);

  /* The owner still sees the asset, and its job was not cancelled. */
  assert_int_equal(
      meta->backend->asset_get(meta->state, OWNER, id, &asset, &error), AP_OK);
  ap_job_t *job = NULL;
  assert_int_equal(
      meta->backend->job_get(meta->state, NULL, asset->job_id, &job, &error),
      AP_OK);
  assert_int_equal(job->state, AP_JOB_QUEUED);
  ap_job_free(job);
  ap_asset_free(asset);
  store_fixture_close(&fixture);
}

static void list_pages_in_order(void **state) {
  (void)state;
  store_fixture_t fixture;
  store_fixture_open(&fixture, "pages");
  ap_meta_store_t *meta = fixture.meta;

  /* 25 assets; the 11th and 12th share a timestamp, so only the id
   * orders them. Another owner's assets are interleaved. */
  enum { ASSET_COUNT = 25, PAGE_SIZE = 4 };
  char ids[ASSET_COUNT][AP_ID_SIZE];
  int64_t base = 1700000000000;
  for (int i = 0; i < ASSET_COUNT; i++) {
    int64_t created = base + (i > 10 ? i - 1 : i) * 1000;
    create_asset(meta, OWNER, created, ids[i]);
    if (i % 10 == 0) {
      char other[AP_ID_SIZE];
      create_asset(meta, OTHER_OWNER, created, other);
    }
  }

  char seen[ASSET_COUNT][AP_ID_SIZE];
  size_t total = 0;
  int64_t after_created = 0;
  char after_id[AP_ID_SIZE] = "";
  int pages = 0;
  for (;;) {
    ap_asset_t **page = NULL;
    size_t count = 0;
    ap_error_t error = {0};
    ap_status_t status = meta->backend->asset_list(
        meta->state, OWNER, after_created, after_id[0] ? after_id : NULL,
        PAGE_SIZE, &page, &count, &error);
    if (status != AP_OK) {
      fail_msg("asset_list: %s", error.message);
    }
    pages++;
    for (size_t i = 0; i < count; i++) {
      assert_string_equal(page[i]->owner, OWNER);
      assert_true(total < ASSET_COUNT);
      if (total > 0) {
        /* Strictly descending by (created_at, id). */
        int64_t previous = after_created;
        int later = page[i]->created_at_ms < previous ||
                    (page[i]->created_at_ms == previous &&
                     strcmp(page[i]->id, after_id) < 0);
        assert_true(later);
      }
      snprintf(seen[total++], AP_ID_SIZE, "%s", page[i]->id);
      after_created = page[i]->created_at_ms;
      snprintf(after_id, sizeof after_id, "%s", page[i]->id);
    }
    for (size_t i = 0; i < count; i++) {
      ap_asset_free(page[i]);
    }
    free(page);
    if (count < PAGE_SIZE) {
      break;
    }
  }
  assert_int_equal(total, ASSET_COUNT);
  assert_int_equal(pages, ASSET_COUNT / PAGE_SIZE + 1);
  for (int i = 0; i < ASSET_COUNT; i++) {
    int found = 0;
    for (size_t j = 0; j < total; j++) {
      found += strcmp(seen[j], ids[i]) == 0;
    }
    assert_int_equal(found, 1);
  }
  store_fixture_close(&fixture);
}

/* ---- Uploads. ---- */

static void upload_states_and_expiry(void **state) {
  (void)state;
  store_fixture_t fixture;
  store_fixture_open(&fixture, "uploads");
  ap_meta_store_t *meta = fixture.meta;
  int64_t now = 1700000100000;
  char expired_first[AP_ID_SIZE];
  char expired_second[AP_ID_SIZE];
  char fresh[AP_ID_SIZE];
  char rejected[AP_ID_SIZE];
  insert_upload(meta, OWNER, now - 5000, now - 1000, expired_second);
  insert_upload(meta, OWNER, now - 9000, now - 2000, expired_first);
  insert_upload(meta, OWNER, now - 1000, now + 60000, fresh);
  insert_upload(meta, OTHER_OWNER, now - 9000, now - 3000, rejected);

  ap_upload_record_t upload;
  ap_error_t error = {0};
  assert_int_equal(
      meta->backend->upload_get(meta->state, OWNER, fresh, &upload, &error),
      AP_OK);
  assert_string_equal(upload.id, fresh);
  assert_string_equal(upload.owner, OWNER);
  assert_string_equal(upload.filename, "take.wav");
  assert_string_equal(upload.content_type, "audio/wav");
  assert_int_equal(upload.state, AP_UPLOAD_PENDING);
  assert_int_equal(upload.size_bytes, 10);
  assert_int_equal(upload.expires_at_ms, now + 60000);
  assert_int_equal(upload.created_at_ms, now - 1000);
  assert_null(upload.asset_id);
  ap_upload_record_clear(&upload);

  /* A rejected upload leaves the pending state once. */
  assert_int_equal(meta->backend->upload_finish_pending(
                       meta->state, rejected, AP_UPLOAD_REJECTED,
                       AP_ERR_INFECTED, now, &error),
                   AP_OK);
  assert_int_equal(meta->backend->upload_finish_pending(meta->state, rejected,
                                                        AP_UPLOAD_EXPIRED, 0,
                                                        now, &error),
                   AP_ERR_UPLOAD_STATE);
  assert_non_null(strstr(error.message, rejected));
  assert_int_equal(
      meta->backend->upload_get(meta->state, NULL, rejected, &upload, &error),
      AP_OK);
  assert_int_equal(upload.state, AP_UPLOAD_REJECTED);
  assert_int_equal(upload.rejection_code, AP_ERR_INFECTED);
  assert_int_equal(upload.updated_at_ms, now);
  ap_upload_record_clear(&upload);

  /* Only pending uploads past expiry, the oldest expiry first. */
  ap_upload_record_t *records = NULL;
  size_t count = 0;
  assert_int_equal(meta->backend->upload_list_expired(meta->state, now, 10,
                                                      &records, &count, &error),
                   AP_OK);
  assert_int_equal(count, 2);
  assert_string_equal(records[0].id, expired_first);
  assert_string_equal(records[1].id, expired_second);
  for (size_t i = 0; i < count; i++) {
    ap_upload_record_clear(&records[i]);
  }
  free(records);
  assert_int_equal(meta->backend->upload_list_expired(meta->state, now, 1,
                                                      &records, &count, &error),
                   AP_OK);
  assert_int_equal(count, 1);
  assert_string_equal(records[0].id, expired_first);
  ap_upload_record_clear(&records[0]);
  free(records);

  /* The TTL date is set while pending and cleared afterwards. */
  bson_t *dated = BCON_NEW("id", BCON_UTF8(fresh), "expires_at_date", "{",
                           "$type", BCON_UTF8("date"), "}");
  assert_int_equal(count_documents(meta, AP_MONGO_UPLOADS, dated), 1);
  bson_destroy(dated);
  dated = BCON_NEW("id", BCON_UTF8(rejected), "expires_at_date", "{", "$type",
                   BCON_UTF8("date"), "}");
  assert_int_equal(count_documents(meta, AP_MONGO_UPLOADS, dated), 0);
  bson_destroy(dated);
  store_fixture_close(&fixture);
}

static void accept_creates_asset_once(void **state) {
  (void)state;
  store_fixture_t fixture;
  store_fixture_open(&fixture, "accept");
  ap_meta_store_t *meta = fixture.meta;
  int64_t now = 1700000200000;
  char upload_id[AP_ID_SIZE];
  char asset_id[AP_ID_SIZE];
  char second_id[AP_ID_SIZE];
  insert_upload(meta, OWNER, now, now + 60000, upload_id);
  assert_int_equal(ap_id_generate(asset_id, NULL), AP_OK);
  assert_int_equal(ap_id_generate(second_id, NULL), AP_OK);

  ap_asset_t *first =
      accept_upload(meta, OWNER, upload_id, asset_id, now, AP_OK);
  assert_string_equal(first->id, asset_id);
  assert_int_equal(first->status, AP_ASSET_PROCESSING);
  assert_non_null(first->job_id);
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      meta->backend->job_get(meta->state, OWNER, first->job_id, &job, &error),
      AP_OK);
  assert_int_equal(job->state, AP_JOB_QUEUED);
  assert_string_equal(job->asset_id, asset_id);
  assert_string_equal(job->kind, AP_JOB_KIND_PROCESS_ASSET);
  assert_string_equal(job->idempotency_key, upload_id);
  ap_job_free(job);

  ap_upload_record_t upload;
  assert_int_equal(
      meta->backend->upload_get(meta->state, OWNER, upload_id, &upload, &error),
      AP_OK);
  assert_int_equal(upload.state, AP_UPLOAD_COMPLETED);
  assert_string_equal(upload.asset_id, asset_id);
  ap_upload_record_clear(&upload);

  /* A second completion returns the first asset and adds nothing. */
  ap_asset_t *second =
      accept_upload(meta, OWNER, upload_id, second_id, now + 1, AP_OK);
  assert_string_equal(second->id, asset_id);
  assert_string_equal(second->job_id, first->job_id);
  assert_int_equal(count_jobs_of(meta, asset_id), 1);
  assert_int_equal(count_jobs_of(meta, second_id), 0);
  bson_t *filter = BCON_NEW("id", BCON_UTF8(second_id));
  assert_int_equal(count_documents(meta, AP_MONGO_ASSETS, filter), 0);
  bson_destroy(filter);
  ap_asset_free(second);
  ap_asset_free(first);

  /* A rejected upload cannot be completed; a missing one is not found. */
  char rejected[AP_ID_SIZE];
  insert_upload(meta, OWNER, now, now + 60000, rejected);
  assert_int_equal(meta->backend->upload_finish_pending(
                       meta->state, rejected, AP_UPLOAD_REJECTED,
                       AP_ERR_CONTENT_TYPE, now, &error),
                   AP_OK);
  assert_null(accept_upload(meta, OWNER, rejected, second_id, now,
                            AP_ERR_UPLOAD_STATE));
  assert_null(accept_upload(meta, OWNER, "missing-upload", second_id, now,
                            AP_ERR_NOT_FOUND));
  assert_int_equal(count_jobs_of(meta, second_id), 0);
  store_fixture_close(&fixture);
}

typedef struct racing_accept {
  ap_meta_store_t *meta;
  const char *upload_id;
  char asset_id[AP_ID_SIZE];
  ap_asset_t *stored;
  ap_status_t status;
  ap_error_t error;
} racing_accept_t;

static void *accept_racing(void *argument) {
  racing_accept_t *race = argument;
  ap_asset_t asset = {.id = race->asset_id,
                      .owner = OWNER,
                      .object_key = "uploads/race",
                      .filename = "take.wav",
                      .content_type = "audio/wav",
                      .status = AP_ASSET_PROCESSING,
                      .size_bytes = 10,
                      .created_at_ms = 5,
                      .updated_at_ms = 5};
  ap_job_enqueue_options_t job;
  ap_job_enqueue_options_init(&job);
  job.kind = AP_JOB_KIND_PROCESS_ASSET;
  job.asset_id = race->asset_id;
  job.owner = OWNER;
  job.idempotency_key = race->upload_id;
  race->status = race->meta->backend->upload_accept(
      race->meta->state, race->upload_id, &asset, &job, 5, &race->stored,
      &race->error);
  return NULL;
}

static void racing_accepts_share_asset(void **state) {
  (void)state;
  if (mongo_fixture_skip("its transactions do not isolate concurrent "
                         "writers, so both completions create an asset")) {
    return;
  }
  store_fixture_t fixture;
  store_fixture_open(&fixture, "race");
  ap_meta_store_t *meta = fixture.meta;
  enum { ROUNDS = 5 };
  for (int round = 0; round < ROUNDS; round++) {
    char upload_id[AP_ID_SIZE];
    insert_upload(meta, OWNER, 1, 60000, upload_id);
    racing_accept_t races[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
      memset(&races[i], 0, sizeof races[i]);
      races[i].meta = meta;
      races[i].upload_id = upload_id;
      assert_int_equal(ap_id_generate(races[i].asset_id, NULL), AP_OK);
      assert_int_equal(
          pthread_create(&threads[i], NULL, accept_racing, &races[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
      assert_int_equal(pthread_join(threads[i], NULL), 0);
      if (races[i].status != AP_OK) {
        fail_msg("round %d, completion %d: %s", round, i,
                 races[i].error.message);
      }
    }
    assert_string_equal(races[0].stored->id, races[1].stored->id);
    bson_t *filter = BCON_NEW("idempotency_key", BCON_UTF8(upload_id));
    assert_int_equal(count_documents(meta, AP_MONGO_JOBS, filter), 1);
    bson_destroy(filter);
    for (int i = 0; i < 2; i++) {
      ap_asset_free(races[i].stored);
    }
  }
  store_fixture_close(&fixture);
}

static void delete_cancels_queued_job(void **state) {
  (void)state;
  store_fixture_t fixture;
  store_fixture_open(&fixture, "delete");
  ap_meta_store_t *meta = fixture.meta;
  char id[AP_ID_SIZE];
  create_asset(meta, OWNER, 1700000300000, id);
  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      meta->backend->asset_get(meta->state, OWNER, id, &asset, &error), AP_OK);
  char job_id[AP_ID_SIZE];
  snprintf(job_id, sizeof job_id, "%s", asset->job_id);
  ap_asset_free(asset);

  assert_int_equal(meta->backend->asset_delete(meta->state, OWNER, id, &error),
                   AP_OK);
  assert_int_equal(
      meta->backend->asset_get(meta->state, OWNER, id, &asset, &error),
      AP_ERR_NOT_FOUND);
  ap_job_t *job = NULL;
  assert_int_equal(
      meta->backend->job_get(meta->state, NULL, job_id, &job, &error), AP_OK);
  assert_int_equal(job->state, AP_JOB_CANCELLED);
  ap_job_free(job);
  assert_int_equal(meta->backend->asset_delete(meta->state, OWNER, id, &error),
                   AP_ERR_NOT_FOUND);
  store_fixture_close(&fixture);
}

/* ---- Checks the test server cannot pass. ---- */

static void duplicate_ids_conflict(void **state) {
  (void)state;
  if (mongo_fixture_skip("it does not enforce unique indexes, so a "
                         "duplicate upload id goes through")) {
    return;
  }
  store_fixture_t fixture;
  store_fixture_open(&fixture, "unique");
  ap_meta_store_t *meta = fixture.meta;
  char id[AP_ID_SIZE];
  insert_upload(meta, OWNER, 1, 60000, id);
  ap_upload_record_t upload = {.id = id,
                               .owner = OWNER,
                               .object_key = "uploads/duplicate",
                               .filename = "take.wav",
                               .content_type = "audio/wav",
                               .state = AP_UPLOAD_PENDING};
  ap_error_t error = {0};
  assert_int_equal(meta->backend->upload_insert(meta->state, &upload, &error),
                   AP_ERR_CONFLICT);
  assert_non_null(strstr(error.message, id));
  store_fixture_close(&fixture);
}

static void failed_accept_rolls_back(void **state) {
  (void)state;
  if (mongo_fixture_skip("it neither enforces unique indexes nor rolls "
                         "back an aborted transaction")) {
    return;
  }
  store_fixture_t fixture;
  store_fixture_open(&fixture, "rollback");
  ap_meta_store_t *meta = fixture.meta;
  char upload_id[AP_ID_SIZE];
  char asset_id[AP_ID_SIZE];
  insert_upload(meta, OWNER, 1, 60000, upload_id);
  assert_int_equal(ap_id_generate(asset_id, NULL), AP_OK);

  /* A job that already has the upload's idempotency key makes the job
   * insert fail after the asset insert. */
  ap_job_enqueue_options_t job;
  ap_job_enqueue_options_init(&job);
  job.kind = "test";
  job.idempotency_key = upload_id;
  ap_job_t *existing = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      meta->backend->job_enqueue(meta->state, &job, 1, &existing, &error),
      AP_OK);
  ap_job_free(existing);

  assert_null(
      accept_upload(meta, OWNER, upload_id, asset_id, 2, AP_ERR_CONFLICT));
  ap_asset_t *asset = NULL;
  assert_int_equal(
      meta->backend->asset_get(meta->state, NULL, asset_id, &asset, &error),
      AP_ERR_NOT_FOUND);
  ap_upload_record_t upload;
  assert_int_equal(
      meta->backend->upload_get(meta->state, NULL, upload_id, &upload, &error),
      AP_OK);
  assert_int_equal(upload.state, AP_UPLOAD_PENDING);
  ap_upload_record_clear(&upload);
  store_fixture_close(&fixture);
}

/* ---- An unreachable or restarted server. ---- */

#define STRINGIFY(x) #x
#define PORT_TEXT(x) STRINGIFY(x)
#define SPARE_HOST "127.0.0.1:" PORT_TEXT(AP_TEST_MONGO_SPARE_PORT)

/* Expects AP_ERR_UNAVAILABLE naming the spare port's host. */
static void expect_unavailable(ap_status_t status, const ap_error_t *error,
                               const char *operation) {
  if (status != AP_ERR_UNAVAILABLE) {
    fail_msg("%s: status %d, expected AP_ERR_UNAVAILABLE: %s", operation,
             (int)status, error->message);
  }
  if (!strstr(error->message, SPARE_HOST)) {
    fail_msg("%s: the message does not name %s: %s", operation, SPARE_HOST,
             error->message);
  }
}

/* A URI without serverSelectionTimeoutMS gets 5000 ms instead of the
 * driver's 30 s, and one that sets it keeps its own value. */
static void server_selection_timeout_defaults(void **state) {
  (void)state;
  static const struct {
    const char *uri;
    int32_t expected_ms;
  } cases[] = {
      {"mongodb://" SPARE_HOST "/timeouts", 5000},
      {"mongodb://" SPARE_HOST "/timeouts?serverSelectionTimeoutMS=750", 750},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ap_meta_store_t *meta = NULL;
    ap_error_t error = {0};
    assert_int_equal(
        ap_meta_store_open(cases[i].uri, NULL, &settings, &meta, &error),
        AP_OK);
    const ap_mongo_store_t *store = meta->state;
    assert_int_equal(mongoc_uri_get_option_as_int32(
                         store->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, -1),
                     cases[i].expected_ms);
    ap_meta_store_close(meta);
  }
}

static void closed_port_is_unavailable(void **state) {
  (void)state;
  /* Nothing listens on the spare port outside server_restart_recovers,
   * which starts its own server there only later. */
  const char *uri =
      "mongodb://" SPARE_HOST "/unreachable?serverSelectionTimeoutMS=500"
      "&connectTimeoutMS=500";
  ap_meta_store_t *meta = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_meta_store_open(uri, NULL, &settings, &meta, &error),
                   AP_OK);

  int64_t started = ap_time_now_ms();
  expect_unavailable(meta->backend->ping(meta->state, &error), &error, "ping");
  printf("ping of a closed port failed after %lld ms\n",
         (long long)(ap_time_now_ms() - started));

  ap_asset_t *asset = NULL;
  expect_unavailable(
      meta->backend->asset_get(meta->state, NULL, "asset-1", &asset, &error),
      &error, "asset_get");
  assert_non_null(strstr(error.message, "asset-1"));
  char upload_id[AP_ID_SIZE];
  assert_int_equal(ap_id_generate(upload_id, NULL), AP_OK);
  ap_upload_record_t upload = {.id = upload_id,
                               .owner = OWNER,
                               .object_key = "uploads/k",
                               .filename = "take.wav",
                               .content_type = "audio/wav",
                               .state = AP_UPLOAD_PENDING};
  expect_unavailable(meta->backend->upload_insert(meta->state, &upload, &error),
                     &error, "upload_insert");
  assert_non_null(strstr(error.message, upload_id));
  int version = 0;
  expect_unavailable(
      meta->backend->migrate(meta->state, AP_SCHEMA_VERSION, &version, &error),
      &error, "migrate");
  expect_unavailable(
      meta->backend->asset_delete(meta->state, OWNER, "asset-1", &error),
      &error, "asset_delete");
  ap_meta_store_close(meta);
}

/* Runs the test server script with `action` on the spare port. */
static void run_spare_server(const char *action) {
  char command[1024];
  snprintf(command, sizeof command, "'%s' %s '%s' %d >/dev/null",
           AP_TEST_MONGO_SCRIPT, action, AP_TEST_MONGO_DIR,
           AP_TEST_MONGO_SPARE_PORT);
  if (system(command) != 0) {
    fail_msg("%s failed", command);
  }
}

static void server_restart_recovers(void **state) {
  (void)state;
  run_spare_server("start");
  const char *uri = "mongodb://" SPARE_HOST
                    "/restart?replicaSet=rs0&serverSelectionTimeoutMS=2000";
  ap_meta_store_t *meta = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_meta_store_open(uri, NULL, &settings, &meta, &error),
                   AP_OK);
  int version = 0;
  assert_int_equal(
      meta->backend->migrate(meta->state, AP_SCHEMA_VERSION, &version, &error),
      AP_OK);
  char before[AP_ID_SIZE];
  insert_upload(meta, OWNER, 1, 60000, before);

  run_spare_server("stop");
  ap_upload_record_t upload;
  memset(&upload, 0, sizeof upload);
  expect_unavailable(
      meta->backend->upload_get(meta->state, OWNER, before, &upload, &error),
      &error, "upload_get while stopped");

  /* The test server keeps nothing across a restart, so the upload from
   * before is gone: the call succeeds as a lookup that finds nothing. */
  run_spare_server("start");
  ap_status_t status =
      meta->backend->upload_get(meta->state, OWNER, before, &upload, &error);
  if (status != AP_ERR_NOT_FOUND) {
    fail_msg("upload_get after the restart: status %d: %s", (int)status,
             error.message);
  }
  assert_int_equal(
      meta->backend->migrate(meta->state, AP_SCHEMA_VERSION, &version, &error),
      AP_OK);
  char after[AP_ID_SIZE];
  insert_upload(meta, OWNER, 2, 60000, after);
  assert_int_equal(
      meta->backend->upload_get(meta->state, OWNER, after, &upload, &error),
      AP_OK);
  assert_string_equal(upload.id, after);
  ap_upload_record_clear(&upload);
  ap_meta_store_close(meta);
  run_spare_server("stop");
}

static void standalone_server_is_rejected(void **state) {
  (void)state;
  assert_int_equal(setenv("AP_MONGO_TEST_SET_NAME", "", 1), 0);
  run_spare_server("start");
  assert_int_equal(unsetenv("AP_MONGO_TEST_SET_NAME"), 0);

  const char *uri = "mongodb://" SPARE_HOST "/standalone"
                    "?serverSelectionTimeoutMS=2000";
  ap_meta_store_t *meta = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_meta_store_open(uri, NULL, &settings, &meta, &error),
                   AP_OK);
  assert_int_equal(meta->backend->ping(meta->state, &error), AP_OK);
  int version = 0;
  assert_int_equal(
      meta->backend->migrate(meta->state, AP_SCHEMA_VERSION, &version, &error),
      AP_ERR_UNSUPPORTED);
  assert_non_null(strstr(error.message, "standalone"));
  assert_non_null(strstr(error.message, SPARE_HOST));
  assert_non_null(strstr(error.message, "--replSet"));
  assert_non_null(strstr(error.message, "rs.initiate()"));
  ap_meta_store_close(meta);
  run_spare_server("stop");
}

/* ---- The whole flow on MongoDB. ---- */

/* How long the flow test waits for its job: far above the seconds the
 * case takes, so only a hang fails it. */
#define JOB_WAIT_MS 120000

typedef struct worker_run {
  ap_context_t *context;
  ap_worker_options_t options;
  ap_status_t status;
} worker_run_t;

static void *run_worker(void *argument) {
  worker_run_t *run = argument;
  run->status = ap_worker_run(run->context, &run->options, NULL);
  return NULL;
}

/* Opens a context on a new database of the server under test, with
 * objects in a file store under `directory`. */
static ap_context_t *open_context(const char *database_uri,
                                  const char *directory) {
  ap_config_t *config = NULL;
  assert_int_equal(ap_config_new(&config, NULL), AP_OK);
  char objects[600];
  snprintf(objects, sizeof objects, "file://%s/objects", directory);
  int failed = 0;
  failed |= ap_config_set(config, "metadata.uri", database_uri, NULL);
  failed |= ap_config_set(config, "objects.uri", objects, NULL);
  failed |= ap_config_set(config, "signing.secret",
                          "test-secret-0123456789abcdef0123456789abcdef", NULL);
  failed |=
      ap_config_set(config, "public.base_url", "http://127.0.0.1:8080", NULL);
  assert_int_equal(failed, 0);
  ap_context_t *context = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_context_open(config, &context, &error);
  ap_config_free(config);
  if (status != AP_OK) {
    fail_msg("ap_context_open on %s: %s", database_uri, error.message);
  }
  return context;
}

static void upload_flow_processes_case(void **state) {
  (void)state;
  char directory[512];
  const char *tmp = getenv("TMPDIR");
  snprintf(directory, sizeof directory, "%s/apmongoXXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(directory));
  char *uri = mongo_fixture_uri("flow");
  assert_non_null(uri);
  ap_context_t *context = open_context(uri, directory);

  /* Upload case-03.mp3 as a client would, then complete the upload. */
  const char *path = AP_TEST_DATA_DIR "/cases/case-03.mp3";
  ap_io_t *input = NULL;
  assert_int_equal(ap_io_open_file(path, &input, NULL), AP_OK);
  ap_upload_request_t request;
  ap_upload_request_init(&request);
  request.owner = OWNER;
  request.filename = "case-03.mp3";
  request.size_bytes = ap_io_size(input);
  request.content_type = "audio/mpeg";
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_create(context, &request, &ticket, &error), AP_OK);
  assert_int_equal(
      ap_object_store_put_from_io(ap_context_object_store(context),
                                  ap_upload_ticket_object_key(ticket),
                                  "audio/mpeg", input, &error),
      AP_OK);
  ap_io_close(input);
  ap_asset_t *asset = NULL;
  ap_status_t status = ap_upload_complete(
      context, OWNER, ap_upload_ticket_id(ticket), &asset, &error);
  if (status != AP_OK) {
    fail_msg("ap_upload_complete: %s", error.message);
  }
  ap_upload_ticket_free(ticket);

  /* Run a worker until the asset's job ends. */
  worker_run_t run = {.context = context};
  ap_worker_t *handle = NULL;
  assert_int_equal(ap_worker_new(&handle, NULL), AP_OK);
  ap_worker_options_init(&run.options);
  run.options.poll_interval_ms = 20;
  run.options.profile = "waveform=json:8:pps20,rendition=mp3:128k";
  run.options.handle = handle;
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, run_worker, &run), 0);
  ap_job_t *job = NULL;
  for (int waited = 0; waited < JOB_WAIT_MS; waited += 20) {
    assert_int_equal(
        ap_job_get(context, NULL, ap_asset_job_id(asset), &job, &error), AP_OK);
    if (ap_job_state_is_terminal(ap_job_state(job))) {
      break;
    }
    ap_job_free(job);
    job = NULL;
    usleep(20000);
  }
  ap_worker_request_stop(handle);
  assert_int_equal(pthread_join(thread, NULL), 0);
  assert_int_equal(run.status, AP_OK);
  ap_worker_free(handle);
  if (!job) {
    fail_msg("job %s did not end within %d ms", ap_asset_job_id(asset),
             JOB_WAIT_MS);
  }
  assert_int_equal(ap_job_state(job), AP_JOB_SUCCEEDED);
  assert_int_equal(ap_job_attempts(job), 1);
  ap_job_free(job);

  /* case-03.mp3 is 5.000 s of CBR MP3, 44.1 kHz mono, 128 kb/s. */
  ap_asset_t *done = NULL;
  assert_int_equal(
      ap_asset_get(context, OWNER, ap_asset_id(asset), &done, &error), AP_OK);
  assert_int_equal(ap_asset_status(done), AP_ASSET_READY);
  const char *probe = ap_asset_probe_json(done);
  assert_non_null(probe);
  assert_non_null(strstr(probe, "mp3"));
  assert_non_null(strstr(probe, "44100"));
  const char *analysis = ap_asset_analysis_json(done);
  assert_non_null(analysis);
  assert_non_null(strstr(analysis, "integrated_lufs"));
  assert_non_null(strstr(analysis, "\"duration\":5"));
  assert_int_equal(ap_asset_rendition_count(done), 1);
  assert_string_equal(ap_asset_rendition_name(done, 0), "mp3_128k");
  assert_int_equal(ap_asset_waveform_count(done), 1);
  assert_string_equal(ap_asset_waveform_name(done, 0), "json_8bit_20pps");
  ap_asset_free(done);
  ap_asset_free(asset);

  ap_context_close(context);
  mongo_fixture_drop(uri);
  free(uri);
  char command[600];
  snprintf(command, sizeof command, "rm -rf '%s'", directory);
  assert_int_equal(system(command), 0);
}

int main(void) {
  mongoc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bad_uris_name_the_fault),
      cmocka_unit_test(bad_uri_hides_the_password),
      cmocka_unit_test(default_database_is_audiopipe),
      cmocka_unit_test(production_uris_open),
      cmocka_unit_test(ping_answers),
      cmocka_unit_test(server_selection_timeout_defaults),
      cmocka_unit_test(migrate_twice_keeps_indexes),
      cmocka_unit_test(asset_round_trip),
      cmocka_unit_test(other_owner_gets_not_found),
      cmocka_unit_test(list_pages_in_order),
      cmocka_unit_test(upload_states_and_expiry),
      cmocka_unit_test(accept_creates_asset_once),
      cmocka_unit_test(racing_accepts_share_asset),
      cmocka_unit_test(delete_cancels_queued_job),
      cmocka_unit_test(duplicate_ids_conflict),
      cmocka_unit_test(failed_accept_rolls_back),
      cmocka_unit_test(closed_port_is_unavailable),
      cmocka_unit_test(server_restart_recovers),
      cmocka_unit_test(standalone_server_is_rejected),
      cmocka_unit_test(upload_flow_processes_case),
  };
  int failures = cmocka_run_group_tests(tests, NULL, NULL);
  mongoc_cleanup();
  return failures;
}
