/*
 * The db job queue on the MongoDB backend: jobs as documents of the jobs
 * collection, with the semantics of job_sqlite.c. Every state change is
 * one server command whose filter contains the whole condition it depends
 * on: the state, and for a worker's reports the claim token. So two
 * callers racing for the same job never both win, and a report from a
 * worker that lost its lease changes nothing and fails with
 * AP_ERR_LEASE_LOST.
 *
 * Writes use the collection's default write concern, which the driver takes
 * from the URI. With w=majority, as production URIs set it, a transition
 * the caller saw succeed survives a failover.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "meta/mongo_internal.h"

/* Maximum number of kinds one claim may filter on, as in job_sqlite.c. */
#define MAX_CLAIM_KINDS 16

/* Message stored on a job whose worker stopped renewing its lease. */
#define WORKER_LOST_MESSAGE "worker lost"

/* Expired leases the reaper reads per round trip. */
#define REAP_BATCH_SIZE 100

/* Size of the buffers that hold an operation's name and a job id for
 * error messages. */
#define WHAT_SIZE 160

static ap_status_t job_not_found(ap_error_t *error, const char *id) {
  return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_NOT_FOUND,
                      "job %s not found", id);
}

static ap_status_t document_too_large(ap_error_t *error, const char *what) {
  return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                      "%s: the document exceeds the BSON size limit of "
                      "16 MiB: shorten payload_json, result_json or the "
                      "error message",
                      what);
}

/* Appends `value`, or null when it is NULL. Returns 0, or -1 when the
 * document would exceed the BSON size limit. */
static int append_text(bson_t *document, const char *key, const char *value) {
  if (!value) {
    return bson_append_null(document, key, -1) ? 0 : -1;
  }
  return bson_append_utf8(document, key, -1, value, -1) ? 0 : -1;
}

/* Reads the number `key` of a command reply (matchedCount, for one). */
static int64_t reply_count(const bson_t *reply, const char *key) {
  bson_iter_t iter;
  if (bson_iter_init_find(&iter, reply, key) && BSON_ITER_HOLDS_NUMBER(&iter)) {
    return bson_iter_as_int64(&iter);
  }
  return 0;
}

ap_status_t ap_mongo_job_from_document(const bson_t *document, ap_job_t **out,
                                       ap_error_t *error) {
  ap_job_t *job = ap_job_alloc();
  if (!job) {
    return AP_NO_MEMORY(error);
  }

  /* The claim token is left out on purpose: only the snapshot that
   * ap_job_claim returns carries it, and the claim sets it itself. */
  int failed = 0;
  failed |= ap_mongo_get_string(document, "id", &job->id);
  failed |= ap_mongo_get_string(document, "kind", &job->kind);
  failed |= ap_mongo_get_string(document, "asset_id", &job->asset_id);
  failed |= ap_mongo_get_string(document, "owner", &job->owner);
  failed |= ap_mongo_get_string(document, "payload_json", &job->payload_json);
  failed |= ap_mongo_get_string(document, "result_json", &job->result_json);
  failed |=
      ap_mongo_get_string(document, "idempotency_key", &job->idempotency_key);
  failed |= ap_mongo_get_string(document, "error_message", &job->error_message);
  failed |= ap_mongo_get_string(document, "stage", &job->stage);
  failed |= ap_mongo_get_string(document, "lease_owner", &job->lease_owner);
  if (failed) {
    ap_job_free(job);
    return AP_NO_MEMORY(error);
  }

  job->state = (int)ap_mongo_get_int64(document, "state");
  job->attempts = (int)ap_mongo_get_int64(document, "attempts");
  job->max_attempts = (int)ap_mongo_get_int64(document, "max_attempts");
  job->error_code = (int)ap_mongo_get_int64(document, "error_code");
  job->progress = ap_mongo_get_double(document, "progress");
  job->lease_expires_at_ms = ap_mongo_get_int64(document, "lease_expires_at");
  job->due_at_ms = ap_mongo_get_int64(document, "due_at");
  job->created_at_ms = ap_mongo_get_int64(document, "created_at");
  job->updated_at_ms = ap_mongo_get_int64(document, "updated_at");
  if (!job->id) {
    ap_job_free(job);
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INTERNAL,
                        "a document of the %s collection has no string id: "
                        "repair or delete it",
                        AP_MONGO_JOBS);
  }
  *out = job;
  return AP_OK;
}

ap_status_t
ap_mongo_job_insert_document(const ap_job_enqueue_options_t *options,
                             const char *id, int64_t now_ms, bson_t *document,
                             ap_error_t *error) {
  if (!options->kind || !id) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "building a job document: kind and id must not be "
                        "NULL");
  }
  int max_attempts = options->max_attempts > 0 ? options->max_attempts
                                               : AP_JOB_DEFAULT_MAX_ATTEMPTS;

  /* Every field is present from the start (null when unset), except the
   * idempotency key: the unique index on it is partial on the field
   * existing, so jobs without a key must not store one, not even null. */
  int failed = 0;
  failed |= append_text(document, "id", id);
  failed |= append_text(document, "kind", options->kind);
  failed |= append_text(document, "asset_id", options->asset_id);
  failed |= append_text(document, "owner", options->owner);
  failed |= append_text(document, "payload_json", options->payload_json);
  failed |= append_text(document, "result_json", NULL);
  if (options->idempotency_key) {
    failed |=
        append_text(document, "idempotency_key", options->idempotency_key);
  }
  failed |= append_text(document, "error_message", NULL);
  failed |= append_text(document, "stage", NULL);
  failed |= append_text(document, "lease_owner", NULL);
  failed |= append_text(document, "claim_token", NULL);
  failed |= !BSON_APPEND_INT32(document, "state", AP_JOB_QUEUED);
  failed |= !BSON_APPEND_INT32(document, "attempts", 0);
  failed |= !BSON_APPEND_INT32(document, "max_attempts", max_attempts);
  failed |= !BSON_APPEND_INT32(document, "error_code", 0);
  failed |= !BSON_APPEND_DOUBLE(document, "progress", 0.0);
  failed |= !BSON_APPEND_INT64(document, "lease_expires_at", 0);
  failed |= !BSON_APPEND_INT64(document, "due_at", now_ms + options->delay_ms);
  failed |= !BSON_APPEND_INT64(document, "created_at", now_ms);
  failed |= !BSON_APPEND_INT64(document, "updated_at", now_ms);
  if (failed) {
    char what[WHAT_SIZE];
    snprintf(what, sizeof what, "enqueueing job %s", id);
    return document_too_large(error, what);
  }
  return AP_OK;
}

/*
 * Starts a find on the primary, whatever readPreference the URI sets: the
 * reads of this file check the outcome of a write just made (an upsert, a
 * guarded update that matched nothing), which a lagging secondary may not
 * have applied yet.
 */
static mongoc_cursor_t *find_on_primary(mongoc_collection_t *jobs,
                                        const bson_t *filter,
                                        const bson_t *options) {
  mongoc_read_prefs_t *primary = mongoc_read_prefs_new(MONGOC_READ_PRIMARY);
  mongoc_cursor_t *cursor =
      mongoc_collection_find_with_opts(jobs, filter, options, primary);
  mongoc_read_prefs_destroy(primary); /* the cursor keeps a copy */
  return cursor;
}

/*
 * Reads the first job matching `filter` into `*out`, which stays NULL when
 * none matches (still AP_OK). `what` names the operation for errors.
 */
static ap_status_t find_job(mongoc_collection_t *jobs, const bson_t *filter,
                            const char *what, ap_job_t **out,
                            ap_error_t *error) {
  *out = NULL;
  bson_t options = BSON_INITIALIZER;
  BSON_APPEND_INT64(&options, "limit", 1);
  mongoc_cursor_t *cursor = find_on_primary(jobs, filter, &options);
  bson_destroy(&options);
  if (!cursor) {
    return AP_NO_MEMORY(error);
  }

  ap_status_t status = AP_OK;
  const bson_t *document = NULL;
  bson_error_t driver_error;
  if (mongoc_cursor_next(cursor, &document)) {
    status = ap_mongo_job_from_document(document, out, error);
  } else if (mongoc_cursor_error(cursor, &driver_error)) {
    status = ap_mongo_error(&driver_error, what, error);
  }
  mongoc_cursor_destroy(cursor);
  return status;
}

/* Reads job `id`, of `owner` unless it is NULL; AP_ERR_NOT_FOUND when there
 * is none. */
static ap_status_t load_job(mongoc_collection_t *jobs, const char *owner,
                            const char *id, ap_job_t **out, ap_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&filter, "id", id);
  if (owner) {
    BSON_APPEND_UTF8(&filter, "owner", owner);
  }
  char what[WHAT_SIZE];
  snprintf(what, sizeof what, "reading job %s", id);
  ap_status_t status = find_job(jobs, &filter, what, out, error);
  bson_destroy(&filter);
  if (status == AP_OK && !*out) {
    return job_not_found(error, id);
  }
  return status;
}

/* Tells whether a write failed on a unique index (server code 11000). */
static int is_duplicate_key(const bson_error_t *driver_error) {
  return (driver_error->domain == MONGOC_ERROR_SERVER ||
          driver_error->domain == MONGOC_ERROR_COLLECTION ||
          driver_error->domain == MONGOC_ERROR_WRITE_CONCERN) &&
         driver_error->code == 11000;
}

/*
 * Inserts the job unless one with the same idempotency key exists, and
 * reads back whichever job holds the key. The upsert is atomic on one
 * server; when two callers race on a deployment that enforces the unique
 * index, the loser gets a duplicate-key error and reads the winner's job.
 */
static ap_status_t enqueue_with_key(mongoc_collection_t *jobs, const char *key,
                                    const bson_t *document, const char *id,
                                    ap_job_t **out, ap_error_t *error) {
  char what[WHAT_SIZE];
  snprintf(what, sizeof what, "enqueueing job %s", id);
  bson_t filter = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&filter, "idempotency_key", key);
  bson_t update = BSON_INITIALIZER;
  BSON_APPEND_DOCUMENT(&update, "$setOnInsert", document);
  bson_t options = BSON_INITIALIZER;
  BSON_APPEND_BOOL(&options, "upsert", true);
  bson_t reply;
  bson_error_t driver_error;
  ap_status_t status = AP_OK;
  if (!mongoc_collection_update_one(jobs, &filter, &update, &options, &reply,
                                    &driver_error) &&
      !is_duplicate_key(&driver_error)) {
    status = ap_mongo_error(&driver_error, what, error);
  }
  bson_destroy(&reply);
  bson_destroy(&options);
  bson_destroy(&update);

  if (status == AP_OK) {
    snprintf(what, sizeof what, "reading the job with idempotency key %s", key);
    status = find_job(jobs, &filter, what, out, error);
  }
  if (status == AP_OK && !*out) {
    /* Only a deletion between the upsert and the read gets here. */
    status = ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_CONFLICT,
                          "the job with idempotency key %s was deleted while "
                          "it was enqueued: enqueue it again",
                          key);
  }
  bson_destroy(&filter);
  return status;
}

static ap_status_t enqueue_without_key(mongoc_collection_t *jobs,
                                       const bson_t *document, const char *id,
                                       ap_job_t **out, ap_error_t *error) {
  char what[WHAT_SIZE];
  snprintf(what, sizeof what, "enqueueing job %s", id);
  bson_error_t driver_error;
  if (!mongoc_collection_insert_one(jobs, document, NULL, NULL,
                                    &driver_error)) {
    return ap_mongo_error(&driver_error, what, error);
  }
  return ap_mongo_job_from_document(document, out, error);
}

ap_status_t ap_mongo_job_enqueue(void *state,
                                 const ap_job_enqueue_options_t *options,
                                 int64_t now_ms, ap_job_t **out,
                                 ap_error_t *error) {
  ap_mongo_store_t *store = state;
  char id[AP_ID_SIZE];
  ap_status_t status = ap_id_generate(id, error);
  if (status != AP_OK) {
    return status;
  }
  bson_t document = BSON_INITIALIZER;
  status = ap_mongo_job_insert_document(options, id, now_ms, &document, error);
  if (status != AP_OK) {
    bson_destroy(&document);
    return status;
  }

  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *jobs = ap_mongo_collection(store, client, AP_MONGO_JOBS);
  ap_job_t *job = NULL;
  if (options->idempotency_key) {
    status = enqueue_with_key(jobs, options->idempotency_key, &document, id,
                              &job, error);
  } else {
    status = enqueue_without_key(jobs, &document, id, &job, error);
  }
  mongoc_collection_destroy(jobs);
  ap_mongo_client_push(store, client);
  bson_destroy(&document);

  if (status != AP_OK) {
    return status;
  }
  *out = job;
  return AP_OK;
}

/* Writes 32 random hexadecimal digits and a NUL into `token`, as
 * job_sqlite.c does. */
static ap_status_t make_token(char token[AP_JOB_TOKEN_SIZE],
                              ap_error_t *error) {
  unsigned char bytes[16];
  ap_status_t status = ap_random_bytes(bytes, sizeof bytes, error);
  if (status != AP_OK) {
    return status;
  }
  for (size_t i = 0; i < sizeof bytes; i++) {
    snprintf(token + 2 * i, 3, "%02x", bytes[i]);
  }
  return AP_OK;
}

/* An expired lease as the reaper read it. */
typedef struct expired_lease {
  char *id;
  char *token;
  int attempts;
  int max_attempts;
  int64_t lease_expires_at_ms;
} expired_lease_t;

static void expired_leases_clear(expired_lease_t *leases, size_t count) {
  for (size_t i = 0; i < count; i++) {
    free(leases[i].id);
    free(leases[i].token);
  }
}

/* Reads up to REAP_BATCH_SIZE running jobs whose lease expired before
 * `now_ms`. */
static ap_status_t find_expired_leases(mongoc_collection_t *jobs,
                                       int64_t now_ms, expired_lease_t *leases,
                                       size_t *count, ap_error_t *error) {
  *count = 0;
  bson_t filter = BSON_INITIALIZER;
  bson_t condition;
  BSON_APPEND_INT32(&filter, "state", AP_JOB_RUNNING);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "lease_expires_at", &condition);
  BSON_APPEND_INT64(&condition, "$lt", now_ms);
  bson_append_document_end(&filter, &condition);
  bson_t options = BSON_INITIALIZER;
  BSON_APPEND_INT64(&options, "limit", REAP_BATCH_SIZE);
  BSON_APPEND_UTF8(&options, "hint", AP_MONGO_INDEX_JOBS_LEASE);
  mongoc_cursor_t *cursor = find_on_primary(jobs, &filter, &options);
  bson_destroy(&options);
  bson_destroy(&filter);
  if (!cursor) {
    return AP_NO_MEMORY(error);
  }

  ap_status_t status = AP_OK;
  const bson_t *document = NULL;
  while (status == AP_OK && *count < REAP_BATCH_SIZE &&
         mongoc_cursor_next(cursor, &document)) {
    expired_lease_t *lease = &leases[*count];
    memset(lease, 0, sizeof *lease);
    if (ap_mongo_get_string(document, "id", &lease->id) != 0 ||
        ap_mongo_get_string(document, "claim_token", &lease->token) != 0) {
      expired_leases_clear(lease, 1);
      status = AP_NO_MEMORY(error);
      break;
    }
    lease->attempts = (int)ap_mongo_get_int64(document, "attempts");
    lease->max_attempts = (int)ap_mongo_get_int64(document, "max_attempts");
    lease->lease_expires_at_ms =
        ap_mongo_get_int64(document, "lease_expires_at");
    (*count)++;
  }
  bson_error_t driver_error;
  if (status == AP_OK && mongoc_cursor_error(cursor, &driver_error)) {
    status = ap_mongo_error(&driver_error, "finding expired job leases", error);
  }
  mongoc_cursor_destroy(cursor);
  if (status != AP_OK) {
    expired_leases_clear(leases, *count);
    *count = 0;
  }
  return status;
}

/*
 * Re-queues (or kills, when it used its last attempt) one job whose lease
 * expired. The filter repeats what the reaper read: the same claim token
 * (so the same attempt and attempt count) still running with the lease
 * expired. When another reaper or the lease holder changed the job first,
 * nothing matches and `*moved` is 0, so each expired lease is counted by
 * exactly one reaper.
 */
static ap_status_t requeue_expired(ap_mongo_store_t *store,
                                   mongoc_collection_t *jobs,
                                   const expired_lease_t *lease, int64_t now_ms,
                                   int *moved, ap_error_t *error) {
  *moved = 0;
  int exhausted = lease->attempts >= lease->max_attempts;
  int64_t delay =
      ap_job_backoff_ms(lease->attempts, store->settings.retry_base_ms,
                        store->settings.retry_max_ms, ap_random_unit());

  bson_t filter = BSON_INITIALIZER;
  bson_t condition;
  BSON_APPEND_UTF8(&filter, "id", lease->id);
  BSON_APPEND_INT32(&filter, "state", AP_JOB_RUNNING);
  append_text(&filter, "claim_token", lease->token);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "lease_expires_at", &condition);
  BSON_APPEND_INT64(&condition, "$lt", now_ms);
  bson_append_document_end(&filter, &condition);

  bson_t update = BSON_INITIALIZER;
  bson_t fields;
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
  BSON_APPEND_INT32(&fields, "state", exhausted ? AP_JOB_DEAD : AP_JOB_QUEUED);
  BSON_APPEND_INT64(&fields, "due_at", exhausted ? now_ms : now_ms + delay);
  BSON_APPEND_INT32(&fields, "error_code", AP_ERR_TIMED_OUT);
  BSON_APPEND_UTF8(&fields, "error_message", WORKER_LOST_MESSAGE);
  BSON_APPEND_NULL(&fields, "lease_owner");
  BSON_APPEND_NULL(&fields, "claim_token");
  BSON_APPEND_INT64(&fields, "lease_expires_at", 0);
  BSON_APPEND_INT64(&fields, "updated_at", now_ms);
  bson_append_document_end(&update, &fields);

  bson_t reply;
  bson_error_t driver_error;
  ap_status_t status = AP_OK;
  if (mongoc_collection_update_one(jobs, &filter, &update, NULL, &reply,
                                   &driver_error)) {
    *moved = reply_count(&reply, "matchedCount") > 0;
  } else {
    char what[WHAT_SIZE];
    snprintf(what, sizeof what, "re-queueing job %s after its lease expired",
             lease->id);
    status = ap_mongo_error(&driver_error, what, error);
  }
  bson_destroy(&reply);
  bson_destroy(&update);
  bson_destroy(&filter);
  return status;
}

/*
 * Re-queues or kills the running jobs whose lease expired before `now_ms`
 * and counts them. The attempt was counted when it was claimed, so a job
 * whose last attempt was lost becomes dead.
 */
static ap_status_t reap_expired(ap_mongo_store_t *store,
                                mongoc_collection_t *jobs, int64_t now_ms,
                                int64_t *count, ap_error_t *error) {
  *count = 0;
  expired_lease_t *leases = calloc(REAP_BATCH_SIZE, sizeof *leases);
  if (!leases) {
    return AP_NO_MEMORY(error);
  }

  /* A short batch means every expired lease was seen. Each lease of a
   * full batch leaves the set once moved (by this reaper or another), so
   * the loop ends. */
  ap_status_t status = AP_OK;
  size_t found = REAP_BATCH_SIZE;
  while (status == AP_OK && found == REAP_BATCH_SIZE) {
    status = find_expired_leases(jobs, now_ms, leases, &found, error);
    for (size_t i = 0; status == AP_OK && i < found; i++) {
      int moved = 0;
      status = requeue_expired(store, jobs, &leases[i], now_ms, &moved, error);
      *count += moved;
    }
    expired_leases_clear(leases, found);
  }
  free(leases);
  return status;
}

/* Builds the claim's filter: queued, due, and of one of `kinds`. */
static void build_claim_filter(bson_t *filter, const char *const *kinds,
                               size_t kind_count, int64_t now_ms) {
  bson_t condition;
  BSON_APPEND_INT32(filter, "state", AP_JOB_QUEUED);
  BSON_APPEND_DOCUMENT_BEGIN(filter, "due_at", &condition);
  BSON_APPEND_INT64(&condition, "$lte", now_ms);
  bson_append_document_end(filter, &condition);
  if (kind_count == 0) {
    return;
  }
  bson_t kind_condition;
  bson_t list;
  BSON_APPEND_DOCUMENT_BEGIN(filter, "kind", &kind_condition);
  BSON_APPEND_ARRAY_BEGIN(&kind_condition, "$in", &list);
  for (size_t i = 0; i < kind_count; i++) {
    char index_text[16];
    const char *key = NULL;
    bson_uint32_to_string((uint32_t)i, &key, index_text, sizeof index_text);
    bson_append_utf8(&list, key, -1, kinds[i], -1);
  }
  bson_append_array_end(&kind_condition, &list);
  bson_append_document_end(filter, &kind_condition);
}

/*
 * Leases the oldest due job with one findAndModify, so exactly one caller
 * wins each job. Leaves `*out` NULL when no job is due.
 */
static ap_status_t lease_next(mongoc_collection_t *jobs, const char *worker_id,
                              int64_t lease_ms, const char *const *kinds,
                              size_t kind_count, int64_t now_ms,
                              const char *token, ap_job_t **out,
                              ap_error_t *error) {
  *out = NULL;
  bson_t filter = BSON_INITIALIZER;
  build_claim_filter(&filter, kinds, kind_count, now_ms);

  /* The state_due index has exactly this order after the state, so the
   * server walks it to the first due job instead of sorting. */
  bson_t sort = BSON_INITIALIZER;
  BSON_APPEND_INT32(&sort, "due_at", 1);
  BSON_APPEND_INT32(&sort, "created_at", 1);
  BSON_APPEND_INT32(&sort, "id", 1);

  bson_t update = BSON_INITIALIZER;
  bson_t fields;
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
  BSON_APPEND_INT32(&fields, "state", AP_JOB_RUNNING);
  BSON_APPEND_UTF8(&fields, "lease_owner", worker_id);
  BSON_APPEND_UTF8(&fields, "claim_token", token);
  BSON_APPEND_INT64(&fields, "lease_expires_at", now_ms + lease_ms);
  BSON_APPEND_INT64(&fields, "updated_at", now_ms);
  bson_append_document_end(&update, &fields);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &fields);
  BSON_APPEND_INT32(&fields, "attempts", 1);
  bson_append_document_end(&update, &fields);

  /* The driver's options have no setter for hint, so it is appended to
   * the command as an extra field. */
  bson_t extra = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&extra, "hint", AP_MONGO_INDEX_JOBS_DUE);

  mongoc_find_and_modify_opts_t *options = mongoc_find_and_modify_opts_new();
  ap_status_t status = AP_OK;
  if (!options || !mongoc_find_and_modify_opts_set_sort(options, &sort) ||
      !mongoc_find_and_modify_opts_set_update(options, &update) ||
      !mongoc_find_and_modify_opts_set_flags(
          options, MONGOC_FIND_AND_MODIFY_RETURN_NEW) ||
      !mongoc_find_and_modify_opts_append(options, &extra)) {
    status = AP_NO_MEMORY(error);
  }

  bson_t reply = BSON_INITIALIZER;
  bson_error_t driver_error;
  if (status == AP_OK) {
    bson_destroy(&reply);
    if (!mongoc_collection_find_and_modify_with_opts(jobs, &filter, options,
                                                     &reply, &driver_error)) {
      status = ap_mongo_error(&driver_error, "claiming a job", error);
    }
  }
  bson_iter_t iter;
  if (status == AP_OK && bson_iter_init_find(&iter, &reply, "value") &&
      BSON_ITER_HOLDS_DOCUMENT(&iter)) {
    uint32_t length = 0;
    const uint8_t *data = NULL;
    bson_iter_document(&iter, &length, &data);
    bson_t value;
    if (bson_init_static(&value, data, length)) {
      status = ap_mongo_job_from_document(&value, out, error);
    } else {
      status = ap_error_set(error, AP_DOMAIN_META, AP_ERR_IO,
                            "claiming a job: the server returned a malformed "
                            "document");
    }
  }

  bson_destroy(&reply);
  mongoc_find_and_modify_opts_destroy(options);
  bson_destroy(&extra);
  bson_destroy(&update);
  bson_destroy(&sort);
  bson_destroy(&filter);
  return status;
}

ap_status_t ap_mongo_job_claim(void *state, const char *worker_id,
                               int64_t lease_ms, const char *const *kinds,
                               size_t kind_count, int64_t now_ms,
                               ap_job_t **out, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  if (kind_count > MAX_CLAIM_KINDS) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "kind_count = %zu: a claim filters on at most %d "
                        "kinds",
                        kind_count, MAX_CLAIM_KINDS);
  }
  char token[AP_JOB_TOKEN_SIZE];
  ap_status_t status = make_token(token, error);
  if (status != AP_OK) {
    return status;
  }

  /* Expired leases are re-queued first, as ap_job_claim promises. Without
   * a transaction the two steps are separate commands, which changes
   * nothing for the caller: each one is atomic, and a lease that expires
   * between them is re-queued by the next claim or reap. */
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *jobs = ap_mongo_collection(store, client, AP_MONGO_JOBS);
  int64_t reaped = 0;
  status = reap_expired(store, jobs, now_ms, &reaped, error);
  ap_job_t *job = NULL;
  if (status == AP_OK) {
    status = lease_next(jobs, worker_id, lease_ms, kinds, kind_count, now_ms,
                        token, &job, error);
  }
  mongoc_collection_destroy(jobs);
  ap_mongo_client_push(store, client);

  if (status == AP_OK && job && ap_meta_strdup(token, &job->claim_token)) {
    status = AP_NO_MEMORY(error);
  }
  if (status != AP_OK) {
    ap_job_free(job);
    return status;
  }
  *out = job;
  return AP_OK;
}

/*
 * Explains why a guarded update of job `id` matched nothing: the job is
 * gone (AP_ERR_NOT_FOUND) or the caller's token is no longer the lease's
 * (AP_ERR_LEASE_LOST), with the message job_sqlite.c gives.
 */
static ap_status_t explain_lease_miss(mongoc_collection_t *jobs, const char *id,
                                      ap_error_t *error) {
  ap_job_t *job = NULL;
  ap_status_t status = load_job(jobs, NULL, id, &job, error);
  if (status != AP_OK) {
    return status;
  }
  status = ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_LEASE_LOST,
                        "job %s: this worker no longer holds the lease (the "
                        "job is %s, attempt %d): stop and discard the work",
                        id, ap_job_state_name(job->state), job->attempts);
  ap_job_free(job);
  return status;
}

/* Appends the guard of a lease holder's report: this job, this claim
 * token, still running. */
static void append_lease_guard(bson_t *filter, const char *id,
                               const char *token) {
  BSON_APPEND_UTF8(filter, "id", id);
  BSON_APPEND_UTF8(filter, "claim_token", token);
  BSON_APPEND_INT32(filter, "state", AP_JOB_RUNNING);
}

/*
 * Applies `update` to job `id` when `filter` matches; when it does not,
 * explains why with explain_lease_miss. `what` names the operation.
 */
static ap_status_t update_guarded(mongoc_collection_t *jobs,
                                  const bson_t *filter, const bson_t *update,
                                  const char *id, const char *what,
                                  ap_error_t *error) {
  bson_t reply;
  bson_error_t driver_error;
  ap_status_t status = AP_OK;
  int64_t matched = 0;
  if (mongoc_collection_update_one(jobs, filter, update, NULL, &reply,
                                   &driver_error)) {
    matched = reply_count(&reply, "matchedCount");
  } else {
    char message[WHAT_SIZE];
    snprintf(message, sizeof message, "%s %s", what, id);
    status = ap_mongo_error(&driver_error, message, error);
  }
  bson_destroy(&reply);
  if (status == AP_OK && matched == 0) {
    status = explain_lease_miss(jobs, id, error);
  }
  return status;
}

/* Pops a client, runs update_guarded on the jobs collection and pushes the
 * client back. */
static ap_status_t run_guarded(ap_mongo_store_t *store, const bson_t *filter,
                               const bson_t *update, const char *id,
                               const char *what, ap_error_t *error) {
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *jobs = ap_mongo_collection(store, client, AP_MONGO_JOBS);
  ap_status_t status = update_guarded(jobs, filter, update, id, what, error);
  mongoc_collection_destroy(jobs);
  ap_mongo_client_push(store, client);
  return status;
}

ap_status_t ap_mongo_job_heartbeat(void *state, const char *id,
                                   const char *token, int64_t lease_ms,
                                   int64_t now_ms, ap_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  append_lease_guard(&filter, id, token);
  bson_t update = BSON_INITIALIZER;
  bson_t fields;
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
  BSON_APPEND_INT64(&fields, "lease_expires_at", now_ms + lease_ms);
  BSON_APPEND_INT64(&fields, "updated_at", now_ms);
  bson_append_document_end(&update, &fields);

  ap_status_t status = run_guarded(state, &filter, &update, id,
                                   "renewing the lease of job", error);
  bson_destroy(&update);
  bson_destroy(&filter);
  return status;
}

ap_status_t ap_mongo_job_progress(void *state, const char *id,
                                  const char *token, double fraction,
                                  const char *stage, int64_t now_ms,
                                  ap_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  append_lease_guard(&filter, id, token);
  bson_t update = BSON_INITIALIZER;
  bson_t fields;
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
  BSON_APPEND_DOUBLE(&fields, "progress", fraction);
  append_text(&fields, "stage", stage);
  BSON_APPEND_INT64(&fields, "updated_at", now_ms);
  bson_append_document_end(&update, &fields);

  ap_status_t status = run_guarded(state, &filter, &update, id,
                                   "recording the progress of job", error);
  bson_destroy(&update);
  bson_destroy(&filter);
  return status;
}

ap_status_t ap_mongo_job_complete(void *state, const char *id,
                                  const char *token, const char *result_json,
                                  int64_t now_ms, ap_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  append_lease_guard(&filter, id, token);
  bson_t update = BSON_INITIALIZER;
  bson_t fields;
  int failed = 0;
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
  BSON_APPEND_INT32(&fields, "state", AP_JOB_SUCCEEDED);
  failed |= append_text(&fields, "result_json", result_json);
  BSON_APPEND_DOUBLE(&fields, "progress", 1.0);
  BSON_APPEND_INT32(&fields, "error_code", 0);
  BSON_APPEND_NULL(&fields, "error_message");
  BSON_APPEND_NULL(&fields, "claim_token");
  BSON_APPEND_INT64(&fields, "lease_expires_at", 0);
  BSON_APPEND_INT64(&fields, "updated_at", now_ms);
  failed |= !bson_append_document_end(&update, &fields);

  ap_status_t status;
  if (failed) {
    char what[WHAT_SIZE];
    snprintf(what, sizeof what, "completing job %s", id);
    status = document_too_large(error, what);
  } else {
    status = run_guarded(state, &filter, &update, id, "completing job", error);
  }
  bson_destroy(&update);
  bson_destroy(&filter);
  return status;
}

ap_status_t ap_mongo_job_fail(void *state, const char *id, const char *token,
                              int error_code, const char *message,
                              int retryable, int64_t now_ms,
                              ap_error_t *error) {
  ap_mongo_store_t *store = state;
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *jobs = ap_mongo_collection(store, client, AP_MONGO_JOBS);

  /* The next state depends on the attempt count. The update's filter
   * repeats the count read here next to the claim token, so the decision
   * applies only to the attempt it was made for. */
  ap_job_t *job = NULL;
  ap_status_t status = load_job(jobs, NULL, id, &job, error);
  bson_t filter = BSON_INITIALIZER;
  bson_t update = BSON_INITIALIZER;
  if (status == AP_OK) {
    int retry = retryable && ap_error_is_retryable(error_code);
    int next_state = AP_JOB_FAILED;
    int64_t due_at = job->due_at_ms;
    if (retry && job->attempts < job->max_attempts) {
      next_state = AP_JOB_QUEUED;
      due_at = now_ms + ap_job_backoff_ms(
                            job->attempts, store->settings.retry_base_ms,
                            store->settings.retry_max_ms, ap_random_unit());
    } else if (retry) {
      next_state = AP_JOB_DEAD;
    }

    append_lease_guard(&filter, id, token);
    BSON_APPEND_INT32(&filter, "attempts", job->attempts);
    bson_t fields;
    int failed = 0;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
    BSON_APPEND_INT32(&fields, "state", next_state);
    BSON_APPEND_INT64(&fields, "due_at", due_at);
    BSON_APPEND_INT32(&fields, "error_code", error_code);
    failed |= append_text(&fields, "error_message", message);
    BSON_APPEND_NULL(&fields, "lease_owner");
    BSON_APPEND_NULL(&fields, "claim_token");
    BSON_APPEND_INT64(&fields, "lease_expires_at", 0);
    BSON_APPEND_INT64(&fields, "updated_at", now_ms);
    failed |= !bson_append_document_end(&update, &fields);
    if (failed) {
      char what[WHAT_SIZE];
      snprintf(what, sizeof what, "failing job %s", id);
      status = document_too_large(error, what);
    }
  }
  if (status == AP_OK) {
    status = update_guarded(jobs, &filter, &update, id, "failing job", error);
  }
  bson_destroy(&update);
  bson_destroy(&filter);
  mongoc_collection_destroy(jobs);
  ap_mongo_client_push(store, client);
  ap_job_free(job);
  return status;
}

ap_status_t ap_mongo_job_cancel(void *state, const char *owner, const char *id,
                                int64_t now_ms, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  bson_t filter = BSON_INITIALIZER;
  bson_t condition;
  bson_t list;
  BSON_APPEND_UTF8(&filter, "id", id);
  if (owner) {
    BSON_APPEND_UTF8(&filter, "owner", owner);
  }
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "state", &condition);
  BSON_APPEND_ARRAY_BEGIN(&condition, "$in", &list);
  BSON_APPEND_INT32(&list, "0", AP_JOB_QUEUED);
  BSON_APPEND_INT32(&list, "1", AP_JOB_RUNNING);
  bson_append_array_end(&condition, &list);
  bson_append_document_end(&filter, &condition);

  bson_t update = BSON_INITIALIZER;
  bson_t fields;
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &fields);
  BSON_APPEND_INT32(&fields, "state", AP_JOB_CANCELLED);
  BSON_APPEND_NULL(&fields, "claim_token");
  BSON_APPEND_NULL(&fields, "lease_owner");
  BSON_APPEND_INT64(&fields, "lease_expires_at", 0);
  BSON_APPEND_INT64(&fields, "updated_at", now_ms);
  bson_append_document_end(&update, &fields);

  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *jobs = ap_mongo_collection(store, client, AP_MONGO_JOBS);
  bson_t reply;
  bson_error_t driver_error;
  ap_status_t status = AP_OK;
  int64_t matched = 0;
  if (mongoc_collection_update_one(jobs, &filter, &update, NULL, &reply,
                                   &driver_error)) {
    matched = reply_count(&reply, "matchedCount");
  } else {
    char what[WHAT_SIZE];
    snprintf(what, sizeof what, "cancelling job %s", id);
    status = ap_mongo_error(&driver_error, what, error);
  }
  bson_destroy(&reply);

  /* Nothing matched: the job is missing, another owner's, or finished. A
   * finished job never changes state again, so this read is conclusive. */
  ap_job_t *job = NULL;
  if (status == AP_OK && matched == 0) {
    status = load_job(jobs, owner, id, &job, error);
  }
  if (status == AP_OK && job && ap_job_state_is_terminal(job->state)) {
    status = ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_JOB_STATE,
                          "job %s is already %s and cannot be cancelled", id,
                          ap_job_state_name(job->state));
  } else if (status == AP_OK && job) {
    status = ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_CONFLICT,
                          "job %s changed while it was cancelled: cancel it "
                          "again",
                          id);
  }
  mongoc_collection_destroy(jobs);
  ap_mongo_client_push(store, client);
  ap_job_free(job);
  bson_destroy(&update);
  bson_destroy(&filter);
  return status;
}

ap_status_t ap_mongo_job_reap(void *state, int64_t now_ms, int64_t *count,
                              ap_error_t *error) {
  ap_mongo_store_t *store = state;
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *jobs = ap_mongo_collection(store, client, AP_MONGO_JOBS);
  ap_status_t status = reap_expired(store, jobs, now_ms, count, error);
  mongoc_collection_destroy(jobs);
  ap_mongo_client_push(store, client);
  return status;
}

ap_status_t ap_mongo_job_get(void *state, const char *owner, const char *id,
                             ap_job_t **out, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *jobs = ap_mongo_collection(store, client, AP_MONGO_JOBS);
  ap_status_t status = load_job(jobs, owner, id, out, error);
  mongoc_collection_destroy(jobs);
  ap_mongo_client_push(store, client);
  return status;
}

/* Builds the statistics pipeline: the jobs of the four reported states,
 * counted by state, with the earliest due_at at or before `now_ms`. */
static void build_stats_pipeline(bson_t *pipeline, int64_t now_ms) {
  bson_t stages;
  bson_t stage;
  bson_t body;
  bson_t condition;
  bson_t list;
  BSON_APPEND_ARRAY_BEGIN(pipeline, "pipeline", &stages);

  BSON_APPEND_DOCUMENT_BEGIN(&stages, "0", &stage);
  BSON_APPEND_DOCUMENT_BEGIN(&stage, "$match", &body);
  BSON_APPEND_DOCUMENT_BEGIN(&body, "state", &condition);
  BSON_APPEND_ARRAY_BEGIN(&condition, "$in", &list);
  BSON_APPEND_INT32(&list, "0", AP_JOB_QUEUED);
  BSON_APPEND_INT32(&list, "1", AP_JOB_RUNNING);
  BSON_APPEND_INT32(&list, "2", AP_JOB_DEAD);
  BSON_APPEND_INT32(&list, "3", AP_JOB_FAILED);
  bson_append_array_end(&condition, &list);
  bson_append_document_end(&body, &condition);
  bson_append_document_end(&stage, &body);
  bson_append_document_end(&stages, &stage);

  /* {$group: {_id: "$state", count: {$sum: 1}, oldest_due_at: {$min:
   * {$cond: [{$lte: ["$due_at", now]}, "$due_at", null]}}}}: $min skips
   * the nulls of jobs not yet due. */
  bson_t accumulator;
  bson_t expression;
  bson_t arguments;
  bson_t comparison;
  bson_t operands;
  BSON_APPEND_DOCUMENT_BEGIN(&stages, "1", &stage);
  BSON_APPEND_DOCUMENT_BEGIN(&stage, "$group", &body);
  BSON_APPEND_UTF8(&body, "_id", "$state");
  BSON_APPEND_DOCUMENT_BEGIN(&body, "count", &accumulator);
  BSON_APPEND_INT32(&accumulator, "$sum", 1);
  bson_append_document_end(&body, &accumulator);
  BSON_APPEND_DOCUMENT_BEGIN(&body, "oldest_due_at", &accumulator);
  BSON_APPEND_DOCUMENT_BEGIN(&accumulator, "$min", &expression);
  BSON_APPEND_ARRAY_BEGIN(&expression, "$cond", &arguments);
  BSON_APPEND_DOCUMENT_BEGIN(&arguments, "0", &comparison);
  BSON_APPEND_ARRAY_BEGIN(&comparison, "$lte", &operands);
  BSON_APPEND_UTF8(&operands, "0", "$due_at");
  BSON_APPEND_INT64(&operands, "1", now_ms);
  bson_append_array_end(&comparison, &operands);
  bson_append_document_end(&arguments, &comparison);
  BSON_APPEND_UTF8(&arguments, "1", "$due_at");
  BSON_APPEND_NULL(&arguments, "2");
  bson_append_array_end(&expression, &arguments);
  bson_append_document_end(&accumulator, &expression);
  bson_append_document_end(&body, &accumulator);
  bson_append_document_end(&stage, &body);
  bson_append_document_end(&stages, &stage);

  bson_append_array_end(pipeline, &stages);
}

/* Adds one group of the statistics pipeline to `stats`. */
static void add_stats_group(const bson_t *group, int64_t now_ms,
                            ap_job_stats_t *stats) {
  int64_t job_state = ap_mongo_get_int64(group, "_id");
  int64_t count = ap_mongo_get_int64(group, "count");
  if (job_state == AP_JOB_QUEUED) {
    stats->queued = count;
    bson_iter_t iter;
    if (bson_iter_init_find(&iter, group, "oldest_due_at") &&
        BSON_ITER_HOLDS_NUMBER(&iter)) {
      stats->oldest_queued_age_ms = now_ms - bson_iter_as_int64(&iter);
    }
  } else if (job_state == AP_JOB_RUNNING) {
    stats->running = count;
  } else if (job_state == AP_JOB_DEAD) {
    stats->dead = count;
  } else if (job_state == AP_JOB_FAILED) {
    stats->failed = count;
  }
}

ap_status_t ap_mongo_job_stats(void *state, int64_t now_ms,
                               ap_job_stats_t *stats, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  bson_t pipeline = BSON_INITIALIZER;
  build_stats_pipeline(&pipeline, now_ms);

  mongoc_client_t *client = ap_mongo_client_pop(store);
  mongoc_collection_t *jobs = ap_mongo_collection(store, client, AP_MONGO_JOBS);
  mongoc_cursor_t *cursor = mongoc_collection_aggregate(jobs, MONGOC_QUERY_NONE,
                                                        &pipeline, NULL, NULL);
  ap_status_t status = AP_OK;
  if (!cursor) {
    status = AP_NO_MEMORY(error);
  } else {
    const bson_t *group = NULL;
    while (mongoc_cursor_next(cursor, &group)) {
      add_stats_group(group, now_ms, stats);
    }
    bson_error_t driver_error;
    if (mongoc_cursor_error(cursor, &driver_error)) {
      status = ap_mongo_error(&driver_error, "reading queue statistics", error);
    }
    mongoc_cursor_destroy(cursor);
  }
  mongoc_collection_destroy(jobs);
  ap_mongo_client_push(store, client);
  bson_destroy(&pipeline);
  return status;
}
