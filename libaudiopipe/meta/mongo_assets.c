/*
 * Asset documents of the MongoDB metadata backend. An asset's renditions
 * and waveforms are arrays inside its document, so one read returns the
 * whole record and a deletion removes everything at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "meta/mongo_internal.h"

/* Size of the buffers that name an operation and an asset id. */
#define WHAT_SIZE 128

/* Attempts of asset_put_object's replace-or-append before it reports a
 * conflict; each lost race means another writer stored the same object. */
#define PUT_OBJECT_ATTEMPTS 4

static ap_status_t asset_not_found(ap_error_t *error, const char *id) {
  return ap_error_set(error, AP_DOMAIN_META, AP_ERR_NOT_FOUND,
                      "asset %s not found", id);
}

static int compare_objects(const void *left, const void *right) {
  const ap_asset_object_t *a = left;
  const ap_asset_object_t *b = right;
  return strcmp(a->name ? a->name : "", b->name ? b->name : "");
}

/* Reads the array `key` of `document` into `*array`, sorted by name as the
 * SQLite backend returns them. -1 when out of memory. */
static int read_objects(const bson_t *document, const char *key,
                        ap_asset_object_t **array, size_t *count) {
  bson_iter_t iter;
  bson_iter_t child;
  if (!bson_iter_init_find(&iter, document, key) ||
      !BSON_ITER_HOLDS_ARRAY(&iter) || !bson_iter_recurse(&iter, &child)) {
    return 0;
  }
  while (bson_iter_next(&child)) {
    if (!BSON_ITER_HOLDS_DOCUMENT(&child)) {
      continue;
    }
    uint32_t length = 0;
    const uint8_t *data = NULL;
    bson_iter_document(&child, &length, &data);
    bson_t entry;
    if (!bson_init_static(&entry, data, length)) {
      continue;
    }
    ap_asset_object_t *grown = realloc(*array, (*count + 1) * sizeof **array);
    if (!grown) {
      return -1;
    }
    *array = grown;
    ap_asset_object_t *object = &grown[*count];
    memset(object, 0, sizeof *object);
    (*count)++;
    int failed = 0;
    failed |= ap_mongo_get_string(&entry, "name", &object->name);
    failed |= ap_mongo_get_string(&entry, "object_key", &object->object_key);
    failed |=
        ap_mongo_get_string(&entry, "content_type", &object->content_type);
    object->size_bytes = ap_mongo_get_int64(&entry, "size_bytes");
    if (failed) {
      return -1;
    }
  }
  if (*count > 1) {
    qsort(*array, *count, sizeof **array, compare_objects);
  }
  return 0;
}

/* Fills a new asset from an assets document. */
static ap_status_t read_asset(const bson_t *document, ap_asset_t **out,
                              ap_error_t *error) {
  ap_asset_t *asset = ap_asset_alloc();
  if (!asset) {
    return AP_NO_MEMORY(error);
  }
  int failed = 0;
  failed |= ap_mongo_get_string(document, "id", &asset->id);
  failed |= ap_mongo_get_string(document, "owner", &asset->owner);
  failed |= ap_mongo_get_string(document, "object_key", &asset->object_key);
  failed |= ap_mongo_get_string(document, "filename", &asset->filename);
  failed |= ap_mongo_get_string(document, "content_type", &asset->content_type);
  failed |= ap_mongo_get_string(document, "job_id", &asset->job_id);
  failed |= ap_mongo_get_string(document, "probe_json", &asset->probe_json);
  failed |=
      ap_mongo_get_string(document, "analysis_json", &asset->analysis_json);
  failed |=
      ap_mongo_get_string(document, "error_message", &asset->error_message);
  failed |= read_objects(document, "renditions", &asset->renditions,
                         &asset->rendition_count);
  failed |= read_objects(document, "waveforms", &asset->waveforms,
                         &asset->waveform_count);
  if (failed) {
    ap_asset_free(asset);
    return AP_NO_MEMORY(error);
  }

  asset->status = (int)ap_mongo_get_int64(document, "status");
  asset->error_code = (int)ap_mongo_get_int64(document, "error_code");
  asset->schema_version = (int)ap_mongo_get_int64(document, "schema_version");
  asset->size_bytes = ap_mongo_get_int64(document, "size_bytes");
  asset->created_at_ms = ap_mongo_get_int64(document, "created_at");
  asset->updated_at_ms = ap_mongo_get_int64(document, "updated_at");
  if (!asset->id) {
    ap_asset_free(asset);
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INTERNAL,
                        "a document of the %s collection has no string id: "
                        "repair or delete it",
                        AP_MONGO_ASSETS);
  }
  *out = asset;
  return AP_OK;
}

/* Builds {id: id} or {id: id, owner: owner}. */
static void build_id_filter(bson_t *filter, const char *owner, const char *id) {
  BSON_APPEND_UTF8(filter, "id", id);
  if (owner) {
    BSON_APPEND_UTF8(filter, "owner", owner);
  }
}

ap_status_t ap_mongo_asset_load(mongoc_collection_t *assets,
                                ap_mongo_transaction_t *transaction,
                                const char *owner, const char *id,
                                ap_asset_t **out, ap_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  build_id_filter(&filter, owner, id);
  bson_t find_options = BSON_INITIALIZER;
  if (transaction) {
    bson_concat(&find_options, &transaction->options);
  }
  BSON_APPEND_INT64(&find_options, "limit", 1);

  mongoc_cursor_t *cursor =
      mongoc_collection_find_with_opts(assets, &filter, &find_options, NULL);
  const bson_t *document = NULL;
  ap_status_t status = AP_OK;
  int found = mongoc_cursor_next(cursor, &document);
  bson_error_t driver_error;
  if (mongoc_cursor_error(cursor, &driver_error)) {
    ap_mongo_transaction_note_cursor(transaction, cursor);
    char what[WHAT_SIZE];
    snprintf(what, sizeof what, "reading asset %s", id);
    status = ap_mongo_error(&driver_error, what, error);
  } else if (!found) {
    status = asset_not_found(error, id);
  } else {
    status = read_asset(document, out, error);
  }
  mongoc_cursor_destroy(cursor);
  bson_destroy(&find_options);
  bson_destroy(&filter);
  return status;
}

ap_status_t ap_mongo_asset_get(void *state, const char *owner, const char *id,
                               ap_asset_t **out, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *assets =
      ap_mongo_collection(store, client, AP_MONGO_ASSETS);
  ap_status_t status = ap_mongo_asset_load(assets, NULL, owner, id, out, error);
  mongoc_collection_destroy(assets);
  ap_mongo_client_push(store, client);
  return status;
}

/* Builds the filter of one page: the owner's assets strictly after the
 * position in (created_at, id) descending order. */
static void build_page_filter(bson_t *filter, const char *owner,
                              int64_t after_created_at_ms,
                              const char *after_id) {
  BSON_APPEND_UTF8(filter, "owner", owner);
  if (!after_id) {
    return;
  }
  bson_t alternatives;
  bson_t earlier;
  bson_t same_time;
  bson_t condition;
  BSON_APPEND_ARRAY_BEGIN(filter, "$or", &alternatives);

  BSON_APPEND_DOCUMENT_BEGIN(&alternatives, "0", &earlier);
  BSON_APPEND_DOCUMENT_BEGIN(&earlier, "created_at", &condition);
  BSON_APPEND_INT64(&condition, "$lt", after_created_at_ms);
  bson_append_document_end(&earlier, &condition);
  bson_append_document_end(&alternatives, &earlier);

  BSON_APPEND_DOCUMENT_BEGIN(&alternatives, "1", &same_time);
  BSON_APPEND_INT64(&same_time, "created_at", after_created_at_ms);
  BSON_APPEND_DOCUMENT_BEGIN(&same_time, "id", &condition);
  BSON_APPEND_UTF8(&condition, "$lt", after_id);
  bson_append_document_end(&same_time, &condition);
  bson_append_document_end(&alternatives, &same_time);

  bson_append_array_end(filter, &alternatives);
}

ap_status_t ap_mongo_asset_list(void *state, const char *owner,
                                int64_t after_created_at_ms,
                                const char *after_id, int limit,
                                ap_asset_t ***out, size_t *count,
                                ap_error_t *error) {
  ap_mongo_store_t *store = state;
  if (limit < 1) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "listing assets: limit %d must be at least 1", limit);
  }
  ap_asset_t **assets = calloc((size_t)limit, sizeof *assets);
  if (!assets) {
    return AP_NO_MEMORY(error);
  }

  bson_t filter = BSON_INITIALIZER;
  build_page_filter(&filter, owner, after_created_at_ms, after_id);
  bson_t *options = BCON_NEW("sort", "{", "created_at", BCON_INT32(-1), "id",
                             BCON_INT32(-1), "}", "limit", BCON_INT64(limit),
                             "hint", BCON_UTF8(AP_MONGO_INDEX_ASSETS_OWNER));

  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *collection =
      ap_mongo_collection(store, client, AP_MONGO_ASSETS);
  mongoc_cursor_t *cursor =
      mongoc_collection_find_with_opts(collection, &filter, options, NULL);
  const bson_t *document = NULL;
  size_t found = 0;
  ap_status_t status = AP_OK;
  while (status == AP_OK && found < (size_t)limit &&
         mongoc_cursor_next(cursor, &document)) {
    status = read_asset(document, &assets[found], error);
    if (status == AP_OK) {
      found++;
    }
  }
  bson_error_t driver_error;
  if (status == AP_OK && mongoc_cursor_error(cursor, &driver_error)) {
    status = ap_mongo_error(&driver_error, "listing assets", error);
    ap_error_prefix(error, "owner %s", owner);
  }
  mongoc_cursor_destroy(cursor);
  mongoc_collection_destroy(collection);
  ap_mongo_client_push(store, client);
  bson_destroy(options);
  bson_destroy(&filter);

  if (status != AP_OK) {
    for (size_t i = 0; i < found; i++) {
      ap_asset_free(assets[i]);
    }
    free(assets);
    return status;
  }
  *out = assets;
  *count = found;
  return AP_OK;
}

/* ---- Deletion. ---- */

typedef struct delete_request {
  const char *owner;
  const char *id;
  int64_t now_ms;
} delete_request_t;

/* Deletes the asset, then cancels its unfinished jobs, in the caller's
 * transaction. Deleting first leaves the jobs untouched when the asset is
 * missing or another owner's. */
static ap_status_t delete_in_transaction(ap_mongo_transaction_t *transaction,
                                         void *argument, ap_error_t *error) {
  const delete_request_t *request = argument;
  char what[WHAT_SIZE];
  bson_error_t driver_error;

  bson_t filter = BSON_INITIALIZER;
  build_id_filter(&filter, request->owner, request->id);
  mongoc_collection_t *assets = ap_mongo_collection(
      transaction->store, transaction->client, AP_MONGO_ASSETS);
  bson_t *reply = ap_mongo_transaction_reply(transaction);
  bool ok = mongoc_collection_delete_one(assets, &filter, &transaction->options,
                                         reply, &driver_error);
  int64_t deleted = ap_mongo_get_int64(reply, "deletedCount");
  mongoc_collection_destroy(assets);
  bson_destroy(&filter);
  if (!ok) {
    snprintf(what, sizeof what, "deleting asset %s", request->id);
    return ap_mongo_error(&driver_error, what, error);
  }
  if (deleted == 0) {
    return asset_not_found(error, request->id);
  }

  bson_t *job_filter =
      BCON_NEW("asset_id", BCON_UTF8(request->id), "state", "{", "$in", "[",
               BCON_INT32(AP_JOB_QUEUED), BCON_INT32(AP_JOB_RUNNING), "]", "}");
  bson_t *update = BCON_NEW("$set", "{", "state", BCON_INT32(AP_JOB_CANCELLED),
                            "claim_token", BCON_NULL, "lease_owner", BCON_NULL,
                            "lease_expires_at", BCON_INT64(0), "updated_at",
                            BCON_INT64(request->now_ms), "}");
  mongoc_collection_t *jobs = ap_mongo_collection(
      transaction->store, transaction->client, AP_MONGO_JOBS);
  ok = mongoc_collection_update_many(
      jobs, job_filter, update, &transaction->options,
      ap_mongo_transaction_reply(transaction), &driver_error);
  mongoc_collection_destroy(jobs);
  bson_destroy(update);
  bson_destroy(job_filter);
  if (!ok) {
    snprintf(what, sizeof what, "cancelling the jobs of asset %s", request->id);
    return ap_mongo_error(&driver_error, what, error);
  }
  return AP_OK;
}

ap_status_t ap_mongo_asset_delete(void *state, const char *owner,
                                  const char *id, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  delete_request_t request = {
      .owner = owner, .id = id, .now_ms = ap_time_now_ms()};
  char what[WHAT_SIZE];
  snprintf(what, sizeof what, "deleting asset %s", id);
  mongoc_client_t *client = ap_mongo_client_pop(store);
  ap_status_t status = ap_mongo_run_transaction(
      store, client, what, delete_in_transaction, &request, error);
  ap_mongo_client_push(store, client);
  return status;
}

/* ---- Updates. ---- */

/* Runs update_one of `update` on the asset `id` and reports
 * AP_ERR_NOT_FOUND when no asset matched. */
static ap_status_t update_asset(ap_mongo_store_t *store, const char *id,
                                const bson_t *filter, const bson_t *update,
                                const char *what, int64_t *matched,
                                ap_error_t *error) {
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *assets =
      ap_mongo_collection(store, client, AP_MONGO_ASSETS);
  bson_t reply;
  bson_error_t driver_error;
  bool ok = mongoc_collection_update_one(assets, filter, update, NULL, &reply,
                                         &driver_error);
  int64_t count = ap_mongo_get_int64(&reply, "matchedCount");
  bson_destroy(&reply);
  mongoc_collection_destroy(assets);
  ap_mongo_client_push(store, client);

  if (!ok) {
    char message[WHAT_SIZE];
    snprintf(message, sizeof message, "%s %s", what, id);
    return ap_mongo_error(&driver_error, message, error);
  }
  if (matched) {
    *matched = count;
    return AP_OK;
  }
  if (count == 0) {
    return asset_not_found(error, id);
  }
  return AP_OK;
}

ap_status_t ap_mongo_asset_set_status(void *state, const char *id,
                                      int status_value, int error_code,
                                      const char *error_message, int64_t now_ms,
                                      ap_error_t *error) {
  int failed = status_value == AP_ASSET_FAILED;
  bson_t *filter = BCON_NEW("id", BCON_UTF8(id));
  bson_t update = BSON_INITIALIZER;
  bson_t fields;
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
  BSON_APPEND_INT32(&fields, "status", status_value);
  BSON_APPEND_INT32(&fields, "error_code", failed ? error_code : 0);
  int too_large = ap_mongo_append_string(&fields, "error_message",
                                         failed ? error_message : NULL);
  BSON_APPEND_INT64(&fields, "updated_at", now_ms);
  bson_append_document_end(&update, &fields);

  ap_status_t status;
  if (too_large) {
    status = ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                          "updating asset status %s: the error message "
                          "exceeds the BSON size limit of 16 MiB",
                          id);
  } else {
    status = update_asset(state, id, filter, &update, "updating asset status",
                          NULL, error);
  }
  bson_destroy(&update);
  bson_destroy(filter);
  return status;
}

ap_status_t ap_mongo_asset_set_analysis(void *state, const char *id,
                                        const char *analysis_json,
                                        int64_t now_ms, ap_error_t *error) {
  bson_t *filter = BCON_NEW("id", BCON_UTF8(id));
  bson_t update = BSON_INITIALIZER;
  bson_t fields;
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
  int too_large =
      ap_mongo_append_string(&fields, "analysis_json", analysis_json);
  BSON_APPEND_INT64(&fields, "updated_at", now_ms);
  bson_append_document_end(&update, &fields);

  ap_status_t status;
  if (too_large) {
    status = ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                          "storing asset analysis %s: the analysis exceeds "
                          "the BSON size limit of 16 MiB",
                          id);
  } else {
    status = update_asset(state, id, filter, &update, "storing asset analysis",
                          NULL, error);
  }
  bson_destroy(&update);
  bson_destroy(filter);
  return status;
}

/* Appends `object` as an array entry document. */
static void append_object(bson_t *parent, const char *key,
                          const ap_asset_object_t *object) {
  bson_t entry;
  BSON_APPEND_DOCUMENT_BEGIN(parent, key, &entry);
  ap_mongo_append_string(&entry, "name", object->name);
  ap_mongo_append_string(&entry, "object_key", object->object_key);
  if (object->content_type) {
    BSON_APPEND_UTF8(&entry, "content_type", object->content_type);
  }
  BSON_APPEND_INT64(&entry, "size_bytes", object->size_bytes);
  bson_append_document_end(parent, &entry);
}

/*
 * Stores `object` in the asset's array, replacing the entry of the same
 * name, as SQLite's INSERT OR REPLACE does. Each step is one conditional
 * update: replace the entry in place where the name exists, else append
 * where it still does not. When neither matched, another writer changed
 * the array in between (or the asset is gone), so the steps run again.
 */
ap_status_t ap_mongo_asset_put_object(void *state, const char *asset_id,
                                      const char *kind,
                                      const ap_asset_object_t *object,
                                      int64_t now_ms, ap_error_t *error) {
  const char *array = NULL;
  if (kind && strcmp(kind, "rendition") == 0) {
    array = "renditions";
  } else if (kind && strcmp(kind, "waveform") == 0) {
    array = "waveforms";
  } else {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "recording asset object %s: kind %s is invalid: use "
                        "rendition or waveform",
                        asset_id, kind ? kind : "(null)");
  }
  if (!object->name || !object->object_key) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "recording asset object %s: name and object_key "
                        "must not be NULL",
                        asset_id);
  }
  char name_path[32];
  char position_path[32];
  snprintf(name_path, sizeof name_path, "%s.name", array);
  snprintf(position_path, sizeof position_path, "%s.$", array);

  ap_status_t status = AP_OK;
  for (int attempt = 0; attempt < PUT_OBJECT_ATTEMPTS; attempt++) {
    int64_t matched = 0;
    bson_t *filter =
        BCON_NEW("id", BCON_UTF8(asset_id), name_path, BCON_UTF8(object->name));
    bson_t update = BSON_INITIALIZER;
    bson_t fields;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
    append_object(&fields, position_path, object);
    BSON_APPEND_INT64(&fields, "updated_at", now_ms);
    bson_append_document_end(&update, &fields);
    status = update_asset(state, asset_id, filter, &update,
                          "recording asset object", &matched, error);
    bson_destroy(&update);
    bson_destroy(filter);
    if (status != AP_OK || matched > 0) {
      return status;
    }

    filter = BCON_NEW("id", BCON_UTF8(asset_id), name_path, "{", "$ne",
                      BCON_UTF8(object->name), "}");
    bson_init(&update);
    bson_t entries;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$push", &entries);
    append_object(&entries, array, object);
    bson_append_document_end(&update, &entries);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
    BSON_APPEND_INT64(&fields, "updated_at", now_ms);
    bson_append_document_end(&update, &fields);
    status = update_asset(state, asset_id, filter, &update,
                          "recording asset object", &matched, error);
    bson_destroy(&update);
    bson_destroy(filter);
    if (status != AP_OK || matched > 0) {
      return status;
    }

    /* Neither matched: find out whether the asset exists at all. */
    ap_asset_t *asset = NULL;
    status = ap_mongo_asset_get(state, NULL, asset_id, &asset, error);
    ap_asset_free(asset);
    if (status != AP_OK) {
      return status;
    }
  }
  return ap_error_set(error, AP_DOMAIN_META, AP_ERR_CONFLICT,
                      "recording asset object %s of asset %s: other writers "
                      "changed the asset %d times in a row: retry",
                      object->name, asset_id, PUT_OBJECT_ATTEMPTS);
}

/* ---- New assets. ---- */

ap_status_t ap_mongo_asset_insert_document(const ap_asset_t *asset,
                                           bson_t *document,
                                           ap_error_t *error) {
  int failed = 0;
  failed |= ap_mongo_append_string(document, "id", asset->id);
  failed |= ap_mongo_append_string(document, "owner", asset->owner);
  failed |= ap_mongo_append_string(document, "object_key", asset->object_key);
  failed |= ap_mongo_append_string(document, "filename", asset->filename);
  failed |=
      ap_mongo_append_string(document, "content_type", asset->content_type);
  failed |= ap_mongo_append_string(document, "job_id", asset->job_id);
  failed |= ap_mongo_append_string(document, "probe_json", asset->probe_json);
  failed |=
      ap_mongo_append_string(document, "analysis_json", asset->analysis_json);
  failed |=
      ap_mongo_append_string(document, "error_message", asset->error_message);
  failed |= !BSON_APPEND_INT32(document, "status", asset->status);
  failed |= !BSON_APPEND_INT32(document, "error_code", asset->error_code);
  failed |= !BSON_APPEND_INT32(document, "schema_version", AP_SCHEMA_VERSION);
  failed |= !BSON_APPEND_INT64(document, "size_bytes", asset->size_bytes);
  failed |= !BSON_APPEND_INT64(document, "created_at", asset->created_at_ms);
  failed |= !BSON_APPEND_INT64(document, "updated_at", asset->updated_at_ms);

  bson_t renditions;
  bson_t waveforms;
  char key[16];
  const char *array_key = NULL;
  failed |= !BSON_APPEND_ARRAY_BEGIN(document, "renditions", &renditions);
  for (size_t i = 0; !failed && i < asset->rendition_count; i++) {
    bson_uint32_to_string((uint32_t)i, &array_key, key, sizeof key);
    append_object(&renditions, array_key, &asset->renditions[i]);
  }
  failed |= !bson_append_array_end(document, &renditions);
  failed |= !BSON_APPEND_ARRAY_BEGIN(document, "waveforms", &waveforms);
  for (size_t i = 0; !failed && i < asset->waveform_count; i++) {
    bson_uint32_to_string((uint32_t)i, &array_key, key, sizeof key);
    append_object(&waveforms, array_key, &asset->waveforms[i]);
  }
  failed |= !bson_append_array_end(document, &waveforms);

  if (failed) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "creating asset %s: the document exceeds the BSON "
                        "size limit of 16 MiB: shorten probe_json or "
                        "analysis_json",
                        asset->id ? asset->id : "(null)");
  }
  return AP_OK;
}
