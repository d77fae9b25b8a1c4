/*
 * Upload documents of the MongoDB metadata backend, and the transaction
 * that turns a validated upload into an asset and its processing job.
 *
 * A pending upload also carries expires_at_date, its expiry as a BSON
 * date, which the TTL index needs. Every state change away from pending
 * sets it to null, so the TTL index removes only uploads that stayed
 * pending long past their expiry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "meta/mongo_internal.h"

/* Size of the buffers that name an operation and an upload id. */
#define WHAT_SIZE 128

static ap_status_t upload_not_found(ap_error_t *error, const char *id) {
  return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_NOT_FOUND,
                      "upload %s not found", id);
}

/* Fills `record` from an uploads document. */
static ap_status_t read_upload(const bson_t *document,
                               ap_upload_record_t *record, ap_error_t *error) {
  memset(record, 0, sizeof *record);
  int failed = 0;
  failed |= ap_mongo_get_string(document, "id", &record->id);
  failed |= ap_mongo_get_string(document, "owner", &record->owner);
  failed |= ap_mongo_get_string(document, "object_key", &record->object_key);
  failed |= ap_mongo_get_string(document, "filename", &record->filename);
  failed |=
      ap_mongo_get_string(document, "content_type", &record->content_type);
  failed |= ap_mongo_get_string(document, "asset_id", &record->asset_id);
  failed |= ap_mongo_get_string(document, "storage_upload_id",
                                &record->storage_upload_id);
  if (failed) {
    ap_upload_record_clear(record);
    return AP_NO_MEMORY(error);
  }
  record->size_bytes = ap_mongo_get_int64(document, "size_bytes");
  record->state = (int)ap_mongo_get_int64(document, "state");
  record->rejection_code = (int)ap_mongo_get_int64(document, "rejection_code");
  record->expires_at_ms = ap_mongo_get_int64(document, "expires_at");
  record->created_at_ms = ap_mongo_get_int64(document, "created_at");
  record->updated_at_ms = ap_mongo_get_int64(document, "updated_at");
  record->method = (int)ap_mongo_get_int64(document, "method");
  record->part_size_bytes = ap_mongo_get_int64(document, "part_size");
  if (!record->id) {
    ap_upload_record_clear(record);
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INTERNAL,
                        "a document of the %s collection has no string id: "
                        "repair or delete it",
                        AP_MONGO_UPLOADS);
  }
  return AP_OK;
}

ap_status_t ap_mongo_upload_insert(void *state,
                                   const ap_upload_record_t *upload,
                                   ap_error_t *error) {
  ap_mongo_store_t *store = state;
  bson_t document = BSON_INITIALIZER;
  int failed = 0;
  failed |= ap_mongo_append_string(&document, "id", upload->id);
  failed |= ap_mongo_append_string(&document, "owner", upload->owner);
  failed |= ap_mongo_append_string(&document, "object_key", upload->object_key);
  failed |= ap_mongo_append_string(&document, "filename", upload->filename);
  failed |=
      ap_mongo_append_string(&document, "content_type", upload->content_type);
  failed |= ap_mongo_append_string(&document, "asset_id", upload->asset_id);
  failed |= !BSON_APPEND_INT64(&document, "size_bytes", upload->size_bytes);
  failed |= !BSON_APPEND_INT32(&document, "state", upload->state);
  failed |=
      !BSON_APPEND_INT32(&document, "rejection_code", upload->rejection_code);
  failed |= !BSON_APPEND_INT64(&document, "expires_at", upload->expires_at_ms);
  failed |= !BSON_APPEND_INT64(&document, "created_at", upload->created_at_ms);
  failed |= !BSON_APPEND_INT64(&document, "updated_at", upload->updated_at_ms);
  failed |= !BSON_APPEND_INT32(&document, "method", upload->method);
  failed |= ap_mongo_append_string(&document, "storage_upload_id",
                                   upload->storage_upload_id);
  failed |= !BSON_APPEND_INT64(&document, "part_size", upload->part_size_bytes);
  if (upload->state == AP_UPLOAD_PENDING) {
    failed |= !BSON_APPEND_DATE_TIME(&document, "expires_at_date",
                                     upload->expires_at_ms);
  } else {
    failed |= !BSON_APPEND_NULL(&document, "expires_at_date");
  }
  if (failed) {
    bson_destroy(&document);
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                        "recording upload %s: the document exceeds the BSON "
                        "size limit of 16 MiB",
                        upload->id ? upload->id : "(null)");
  }

  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *uploads =
      ap_mongo_collection(store, client, AP_MONGO_UPLOADS);
  bson_error_t driver_error;
  bool ok = mongoc_collection_insert_one(uploads, &document, NULL, NULL,
                                         &driver_error);
  mongoc_collection_destroy(uploads);
  ap_mongo_client_push(store, client);
  bson_destroy(&document);
  if (!ok) {
    char what[WHAT_SIZE];
    snprintf(what, sizeof what, "recording upload %s", upload->id);
    return ap_mongo_error(&driver_error, what, error);
  }
  return AP_OK;
}

/* Reads the upload `id` (of `owner` unless NULL), inside `transaction`
 * unless it is NULL. */
static ap_status_t load_upload(mongoc_collection_t *uploads,
                               ap_mongo_transaction_t *transaction,
                               const char *owner, const char *id,
                               ap_upload_record_t *out, ap_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&filter, "id", id);
  if (owner) {
    BSON_APPEND_UTF8(&filter, "owner", owner);
  }
  bson_t find_options = BSON_INITIALIZER;
  if (transaction) {
    bson_concat(&find_options, &transaction->options);
  }
  BSON_APPEND_INT64(&find_options, "limit", 1);

  mongoc_cursor_t *cursor =
      mongoc_collection_find_with_opts(uploads, &filter, &find_options, NULL);
  const bson_t *document = NULL;
  int found = mongoc_cursor_next(cursor, &document);
  ap_status_t status = AP_OK;
  bson_error_t driver_error;
  if (mongoc_cursor_error(cursor, &driver_error)) {
    ap_mongo_transaction_note_cursor(transaction, cursor);
    char what[WHAT_SIZE];
    snprintf(what, sizeof what, "reading upload %s", id);
    status = ap_mongo_error(&driver_error, what, error);
  } else if (!found) {
    status = upload_not_found(error, id);
  } else {
    status = read_upload(document, out, error);
  }
  mongoc_cursor_destroy(cursor);
  bson_destroy(&find_options);
  bson_destroy(&filter);
  return status;
}

ap_status_t ap_mongo_upload_get(void *state, const char *owner, const char *id,
                                ap_upload_record_t *out, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *uploads =
      ap_mongo_collection(store, client, AP_MONGO_UPLOADS);
  ap_status_t status = load_upload(uploads, NULL, owner, id, out, error);
  mongoc_collection_destroy(uploads);
  ap_mongo_client_push(store, client);
  return status;
}

ap_status_t ap_mongo_upload_finish_pending(void *state, const char *id,
                                           int to_state, int rejection_code,
                                           int64_t now_ms, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  bson_t *filter =
      BCON_NEW("id", BCON_UTF8(id), "state", BCON_INT32(AP_UPLOAD_PENDING));
  bson_t *update =
      BCON_NEW("$set", "{", "state", BCON_INT32(to_state), "rejection_code",
               BCON_INT32(rejection_code), "updated_at", BCON_INT64(now_ms),
               "expires_at_date", BCON_NULL, "}");

  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *uploads =
      ap_mongo_collection(store, client, AP_MONGO_UPLOADS);
  bson_t reply;
  bson_error_t driver_error;
  bool ok = mongoc_collection_update_one(uploads, filter, update, NULL, &reply,
                                         &driver_error);
  int64_t matched = ap_mongo_get_int64(&reply, "matchedCount");
  bson_destroy(&reply);
  mongoc_collection_destroy(uploads);
  ap_mongo_client_push(store, client);
  bson_destroy(update);
  bson_destroy(filter);

  if (!ok) {
    char what[WHAT_SIZE];
    snprintf(what, sizeof what, "updating upload state %s", id);
    return ap_mongo_error(&driver_error, what, error);
  }
  if (matched == 0) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_STATE,
                        "upload %s is no longer pending", id);
  }
  return AP_OK;
}

/* ---- Acceptance. ---- */

typedef struct accept_request {
  const char *upload_id;
  const ap_asset_t *asset;
  const ap_job_enqueue_options_t *job;
  int64_t now_ms;
  ap_asset_t *stored; /* output, reset on every attempt */
} accept_request_t;

/* Marks the pending upload completed with its asset, in the caller's
 * transaction. */
static ap_status_t mark_completed(ap_mongo_transaction_t *transaction,
                                  const accept_request_t *request,
                                  ap_error_t *error) {
  bson_t *filter = BCON_NEW("id", BCON_UTF8(request->upload_id), "state",
                            BCON_INT32(AP_UPLOAD_PENDING));
  bson_t *update =
      BCON_NEW("$set", "{", "state", BCON_INT32(AP_UPLOAD_COMPLETED),
               "asset_id", BCON_UTF8(request->asset->id), "updated_at",
               BCON_INT64(request->now_ms), "expires_at_date", BCON_NULL, "}");
  mongoc_collection_t *uploads = ap_mongo_collection(
      transaction->store, transaction->client, AP_MONGO_UPLOADS);
  bson_t *reply = ap_mongo_transaction_reply(transaction);
  bson_error_t driver_error;
  bool ok = mongoc_collection_update_one(
      uploads, filter, update, &transaction->options, reply, &driver_error);
  int64_t matched = ap_mongo_get_int64(reply, "matchedCount");
  mongoc_collection_destroy(uploads);
  bson_destroy(update);
  bson_destroy(filter);
  if (!ok) {
    char what[WHAT_SIZE];
    snprintf(what, sizeof what, "completing upload %s", request->upload_id);
    return ap_mongo_error(&driver_error, what, error);
  }
  if (matched == 0) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_CONFLICT,
                        "upload %s changed while it was completed: retry",
                        request->upload_id);
  }
  return AP_OK;
}

/* Inserts `document` into `collection` in the caller's transaction. */
static ap_status_t insert_document(ap_mongo_transaction_t *transaction,
                                   const char *collection_name,
                                   const bson_t *document, const char *what,
                                   ap_error_t *error) {
  mongoc_collection_t *collection = ap_mongo_collection(
      transaction->store, transaction->client, collection_name);
  bson_error_t driver_error;
  bool ok = mongoc_collection_insert_one(
      collection, document, &transaction->options,
      ap_mongo_transaction_reply(transaction), &driver_error);
  mongoc_collection_destroy(collection);
  if (!ok) {
    return ap_mongo_error(&driver_error, what, error);
  }
  return AP_OK;
}

/*
 * Marks the upload completed, then inserts the asset and its job, in the
 * caller's transaction. The upload is written first on purpose. When two
 * completions of one upload race, the second one's write to the same
 * document fails with a transient write conflict. The driver then runs
 * its transaction again, which finds the upload completed and returns the
 * first one's asset. Inserting first would instead fail the second with a
 * duplicate idempotency key.
 */
static ap_status_t create_asset_and_job(ap_mongo_transaction_t *transaction,
                                        accept_request_t *request,
                                        ap_error_t *error) {
  /* The asset names its job, so the job's id is chosen first. */
  char job_id[AP_ID_SIZE];
  ap_status_t status = ap_id_generate(job_id, error);
  if (status != AP_OK) {
    return status;
  }
  ap_asset_t row = *request->asset;
  row.job_id = job_id;
  bson_t asset_document = BSON_INITIALIZER;
  status = ap_mongo_asset_insert_document(&row, &asset_document, error);
  bson_t job_document = BSON_INITIALIZER;
  if (status == AP_OK) {
    status = ap_mongo_job_insert_document(request->job, job_id, request->now_ms,
                                          &job_document, error);
  }
  if (status != AP_OK) {
    ap_error_prefix(error, "upload %s", request->upload_id);
  }

  char what[WHAT_SIZE];
  if (status == AP_OK) {
    status = mark_completed(transaction, request, error);
  }
  if (status == AP_OK) {
    snprintf(what, sizeof what, "upload %s: creating asset %s",
             request->upload_id, request->asset->id);
    status = insert_document(transaction, AP_MONGO_ASSETS, &asset_document,
                             what, error);
  }
  if (status == AP_OK) {
    snprintf(what, sizeof what, "upload %s: creating the processing job %s",
             request->upload_id, job_id);
    status =
        insert_document(transaction, AP_MONGO_JOBS, &job_document, what, error);
  }
  bson_destroy(&job_document);
  bson_destroy(&asset_document);
  return status;
}

static ap_status_t accept_in_transaction(ap_mongo_transaction_t *transaction,
                                         void *argument, ap_error_t *error) {
  accept_request_t *request = argument;
  ap_asset_free(request->stored);
  request->stored = NULL;

  /* Read the upload inside the transaction: a concurrent completion of
   * the same upload either committed before (and is seen here) or
   * conflicts with this transaction's writes. */
  ap_upload_record_t upload;
  memset(&upload, 0, sizeof upload);
  mongoc_collection_t *uploads = ap_mongo_collection(
      transaction->store, transaction->client, AP_MONGO_UPLOADS);
  ap_status_t status = load_upload(uploads, transaction, NULL,
                                   request->upload_id, &upload, error);
  mongoc_collection_destroy(uploads);

  const char *asset_id = request->asset->id;
  if (status == AP_OK) {
    if (upload.state == AP_UPLOAD_COMPLETED && upload.asset_id) {
      asset_id = upload.asset_id;
    } else if (upload.state != AP_UPLOAD_PENDING) {
      status =
          ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_STATE,
                       "upload %s is %s and cannot be completed",
                       request->upload_id, ap_upload_state_name(upload.state));
    } else {
      status = create_asset_and_job(transaction, request, error);
    }
  }

  if (status == AP_OK) {
    mongoc_collection_t *assets = ap_mongo_collection(
        transaction->store, transaction->client, AP_MONGO_ASSETS);
    status = ap_mongo_asset_load(assets, transaction, NULL, asset_id,
                                 &request->stored, error);
    mongoc_collection_destroy(assets);
  }
  ap_upload_record_clear(&upload);
  return status;
}

ap_status_t ap_mongo_upload_accept(void *state, const char *upload_id,
                                   const ap_asset_t *asset,
                                   const ap_job_enqueue_options_t *job,
                                   int64_t now_ms, ap_asset_t **out,
                                   ap_error_t *error) {
  ap_mongo_store_t *store = state;
  accept_request_t request = {.upload_id = upload_id,
                              .asset = asset,
                              .job = job,
                              .now_ms = now_ms,
                              .stored = NULL};
  char what[WHAT_SIZE];
  snprintf(what, sizeof what, "completing upload %s", upload_id);

  mongoc_client_t *client = ap_mongo_client_pop(store);
  ap_status_t status = ap_mongo_run_transaction(
      store, client, what, accept_in_transaction, &request, error);
  ap_mongo_client_push(store, client);
  if (status != AP_OK) {
    ap_asset_free(request.stored);
    return status;
  }
  *out = request.stored;
  return AP_OK;
}

/* ---- Expiry. ---- */

ap_status_t ap_mongo_upload_list_expired(void *state, int64_t now_ms, int limit,
                                         ap_upload_record_t **out,
                                         size_t *count, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  if (limit < 1) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "listing expired uploads: limit %d must be at least "
                        "1",
                        limit);
  }
  ap_upload_record_t *records = calloc((size_t)limit, sizeof *records);
  if (!records) {
    return AP_NO_MEMORY(error);
  }

  bson_t *filter = BCON_NEW("state", BCON_INT32(AP_UPLOAD_PENDING),
                            "expires_at", "{", "$lt", BCON_INT64(now_ms), "}");
  bson_t *options = BCON_NEW("sort", "{", "expires_at", BCON_INT32(1), "}",
                             "limit", BCON_INT64(limit), "hint",
                             BCON_UTF8(AP_MONGO_INDEX_UPLOADS_EXPIRY));
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *uploads =
      ap_mongo_collection(store, client, AP_MONGO_UPLOADS);
  mongoc_cursor_t *cursor =
      mongoc_collection_find_with_opts(uploads, filter, options, NULL);
  const bson_t *document = NULL;
  size_t found = 0;
  ap_status_t status = AP_OK;
  while (status == AP_OK && found < (size_t)limit &&
         mongoc_cursor_next(cursor, &document)) {
    status = read_upload(document, &records[found], error);
    if (status == AP_OK) {
      found++;
    }
  }
  bson_error_t driver_error;
  if (status == AP_OK && mongoc_cursor_error(cursor, &driver_error)) {
    status = ap_mongo_error(&driver_error, "listing expired uploads", error);
  }
  mongoc_cursor_destroy(cursor);
  mongoc_collection_destroy(uploads);
  ap_mongo_client_push(store, client);
  bson_destroy(options);
  bson_destroy(filter);

  if (status != AP_OK) {
    for (size_t i = 0; i < found; i++) {
      ap_upload_record_clear(&records[i]);
    }
    free(records);
    return status;
  }
  *out = records;
  *count = found;
  return AP_OK;
}
