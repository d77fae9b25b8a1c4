/*
 * The MongoDB metadata backend (mongo-c-driver 1.23): one client pool for
 * the whole store, sized by the URI's maxPoolSize, shared by the asset,
 * upload and job files of the backend. Selected by metadata.uri =
 * mongodb://... or mongodb+srv://...; every URI option (replicaSet,
 * retryWrites, w, readPreference, readConcernLevel, tls*, authSource,
 * SCRAM credentials, timeouts) is the driver's and is passed through.
 *
 * Documents. Every record keeps the library's own string id in `id`
 * (unique index) and lets the server choose `_id`, because some servers
 * and proxies rewrite a non-ObjectId `_id`. Times are Unix milliseconds as
 * int64; read every integer with bson_iter_as_int64 since a server may
 * return an int64 as int32 or double. JSON blobs (probe, analysis,
 * payload, result) are stored as strings, exactly as the SQLite backend
 * keeps them, so both backends return byte-identical records.
 *
 *   assets:  id, owner, object_key, filename, content_type, job_id,
 *            probe_json, analysis_json, error_message, status, error_code,
 *            schema_version, size_bytes, created_at, updated_at,
 *            renditions: [{name, object_key, content_type, size_bytes}],
 *            waveforms:  [{name, object_key, size_bytes}]
 *   uploads: id, owner, object_key, filename, content_type, asset_id,
 *            size_bytes, state, rejection_code, expires_at, created_at,
 *            updated_at, method, storage_upload_id, part_size,
 *            expires_at_date (a BSON date: the TTL index needs one; set
 *            only while the upload is pending, null afterwards)
 *   jobs:    id, kind, asset_id, owner, payload_json, result_json,
 *            idempotency_key (absent when none), error_message, stage,
 *            lease_owner, claim_token, state, attempts, max_attempts,
 *            error_code, progress, lease_expires_at, due_at, created_at,
 *            updated_at
 *   meta:    id = "schema", version: the applied schema version,
 *            created_at, updated_at
 *
 * Indexes (created idempotently by the migrate operation, each named):
 *   meta    {id: 1} unique
 *   assets  {id: 1} unique; {owner: 1, created_at: -1, id: -1}
 *   uploads {id: 1} unique; {state: 1, expires_at: 1};
 *           {expires_at_date: 1} TTL expireAfterSeconds = a grace period
 *           well past the cleanup of expired uploads, as a backstop
 *   jobs    {id: 1} unique; {state: 1, due_at: 1, created_at: 1, id: 1}
 *           (claims, in their sort order);
 *           {state: 1, lease_expires_at: 1} (reaper);
 *           {idempotency_key: 1} unique, partial on idempotency_key
 *           existing; {asset_id: 1}
 * Hot queries pass `hint` with the index name.
 */
#ifndef AP_META_MONGO_INTERNAL_H
#define AP_META_MONGO_INTERNAL_H

#include <mongoc/mongoc.h>

#include "meta/meta_internal.h"

/* Collection names inside the URI's database (default "audiopipe"). */
#define AP_MONGO_ASSETS "assets"
#define AP_MONGO_UPLOADS "uploads"
#define AP_MONGO_JOBS "jobs"
#define AP_MONGO_META "meta"

/* Index names, for creation and for `hint`. */
#define AP_MONGO_INDEX_ID "id_unique"
#define AP_MONGO_INDEX_ASSETS_OWNER "owner_created"
#define AP_MONGO_INDEX_UPLOADS_EXPIRY "state_expires"
#define AP_MONGO_INDEX_UPLOADS_TTL "expires_ttl"
#define AP_MONGO_INDEX_JOBS_DUE "state_due"
#define AP_MONGO_INDEX_JOBS_LEASE "state_lease"
#define AP_MONGO_INDEX_JOBS_IDEMPOTENCY "idempotency_unique"
#define AP_MONGO_INDEX_JOBS_ASSET "asset"

typedef struct ap_mongo_store {
  mongoc_uri_t *uri;
  mongoc_client_pool_t *pool; /* thread-safe; clients are per call */
  char *database;             /* owned */
  ap_meta_settings_t settings;
  char *hosts; /* owned: "host:port,..." or the SRV name, for messages */
} ap_mongo_store_t;

/*
 * Opens the store for `uri` (mongodb:// or mongodb+srv://). Parses and
 * checks the URI (an error names the option at fault), creates the pool
 * and checks nothing on the network: the first operation or ping reports
 * an unreachable server as AP_ERR_UNAVAILABLE. `*out` receives a store
 * whose backend is the MongoDB one.
 */
ap_status_t ap_mongo_store_open(const char *uri, const ap_config_t *config,
                                const ap_meta_settings_t *settings,
                                ap_meta_store_t **out, ap_error_t *error);

/* Pops a client from the pool (blocks while all maxPoolSize are out) and
 * pushes it back. */
mongoc_client_t *ap_mongo_client_pop(ap_mongo_store_t *store);
void ap_mongo_client_push(ap_mongo_store_t *store, mongoc_client_t *client);

/* A collection handle of `client`; free with mongoc_collection_destroy. */
mongoc_collection_t *ap_mongo_collection(ap_mongo_store_t *store,
                                         mongoc_client_t *client,
                                         const char *name);

/*
 * Turns a driver error into an ap_error_t: server selection and socket
 * errors become AP_ERR_UNAVAILABLE (retry later), duplicate keys (11000)
 * AP_ERR_CONFLICT, authentication failures AP_ERR_PERMISSION, anything
 * else AP_ERR_IO; the message starts with `what` (the operation, e.g.
 * "claim job") and carries the driver's text. Returns the status.
 */
ap_status_t ap_mongo_error(const bson_error_t *driver_error, const char *what,
                           ap_error_t *error);

/* Reads field `key` of `document` as a copied string (NULL when absent or
 * null) or as int64 / double (0 when absent). -1 when out of memory. */
int ap_mongo_get_string(const bson_t *document, const char *key, char **out);
int64_t ap_mongo_get_int64(const bson_t *document, const char *key);
double ap_mongo_get_double(const bson_t *document, const char *key);

/* Reads field `key` of `document` as an embedded document, viewed in place
 * (valid while `document` is): 0, or -1 when absent or not a document. */
int ap_mongo_get_document(const bson_t *document, const char *key, bson_t *out);

/* Appends `value` as a string, or null when `value` is NULL; -1 when the
 * document is full. */
int ap_mongo_append_string(bson_t *document, const char *key,
                           const char *value);

/* Records the hosts ap_mongo_error names in this thread's next unavailable
 * error; ap_mongo_client_pop calls it. */
void ap_mongo_note_hosts(const char *hosts);

/*
 * One multi-document transaction. Every operation inside it passes
 * `options` (which carries the session) and, for writes, the reply from
 * ap_mongo_transaction_reply, so a failure's error labels reach the
 * driver, which retries the transaction on TransientTransactionError.
 */
typedef struct ap_mongo_transaction {
  ap_mongo_store_t *store;
  mongoc_client_session_t *session;
  mongoc_client_t *client;
  bson_t options; /* {sessionId}: the options of every operation */
  bson_t reply;   /* the last write's reply */
} ap_mongo_transaction_t;

/* Empties and returns the transaction's reply document, for the next
 * write's `reply` argument. */
bson_t *ap_mongo_transaction_reply(ap_mongo_transaction_t *transaction);

/* The body of a transaction. It may run more than once, so it must reset
 * its outputs first. A status other than AP_OK aborts the transaction. */
typedef ap_status_t (*ap_mongo_transaction_function_t)(
    ap_mongo_transaction_t *transaction, void *argument, ap_error_t *error);

/*
 * Runs `function` in a transaction on `client` with
 * mongoc_client_session_with_transaction (read and write concerns from the
 * URI), retrying transient failures for up to 120 s as the driver does,
 * and commits it. Returns the function's own status and error when it
 * failed, or the commit's error named by `what`.
 */
ap_status_t ap_mongo_run_transaction(ap_mongo_store_t *store,
                                     mongoc_client_t *client, const char *what,
                                     ap_mongo_transaction_function_t function,
                                     void *argument, ap_error_t *error);

/* Reads the asset `id` (of `owner` unless NULL) from `assets`, inside
 * `transaction` unless it is NULL. AP_ERR_NOT_FOUND when missing. */
ap_status_t ap_mongo_asset_load(mongoc_collection_t *assets,
                                ap_mongo_transaction_t *transaction,
                                const char *owner, const char *id,
                                ap_asset_t **out, ap_error_t *error);

/* Copies the error document of `cursor`, whose read failed inside
 * `transaction` (ignored when NULL), into the transaction's reply, so the
 * driver sees its error labels and retries a transient failure. */
void ap_mongo_transaction_note_cursor(ap_mongo_transaction_t *transaction,
                                      mongoc_cursor_t *cursor);

/* Builds into `document` (initialised by the caller) the document of a
 * new asset, at schema version AP_SCHEMA_VERSION. */
ap_status_t ap_mongo_asset_insert_document(const ap_asset_t *asset,
                                           bson_t *document, ap_error_t *error);

/* The asset (mongo_assets.c) and upload (mongo_uploads.c) operations of
 * the backend, with the semantics of ap_meta_backend_t; `state` is the
 * ap_mongo_store_t. */
ap_status_t ap_mongo_asset_get(void *state, const char *owner, const char *id,
                               ap_asset_t **out, ap_error_t *error);
ap_status_t ap_mongo_asset_list(void *state, const char *owner,
                                int64_t after_created_at_ms,
                                const char *after_id, int limit,
                                ap_asset_t ***out, size_t *count,
                                ap_error_t *error);
ap_status_t ap_mongo_asset_delete(void *state, const char *owner,
                                  const char *id, ap_error_t *error);
ap_status_t ap_mongo_asset_set_status(void *state, const char *id, int status,
                                      int error_code, const char *error_message,
                                      int64_t now_ms, ap_error_t *error);
ap_status_t ap_mongo_asset_set_analysis(void *state, const char *id,
                                        const char *analysis_json,
                                        int64_t now_ms, ap_error_t *error);
ap_status_t ap_mongo_asset_put_object(void *state, const char *asset_id,
                                      const char *kind,
                                      const ap_asset_object_t *object,
                                      int64_t now_ms, ap_error_t *error);

ap_status_t ap_mongo_upload_insert(void *state,
                                   const ap_upload_record_t *upload,
                                   ap_error_t *error);
ap_status_t ap_mongo_upload_get(void *state, const char *owner, const char *id,
                                ap_upload_record_t *out, ap_error_t *error);
ap_status_t ap_mongo_upload_finish_pending(void *state, const char *id,
                                           int to_state, int rejection_code,
                                           int64_t now_ms, ap_error_t *error);
ap_status_t ap_mongo_upload_accept(void *state, const char *upload_id,
                                   const ap_asset_t *asset,
                                   const ap_job_enqueue_options_t *job,
                                   int64_t now_ms, ap_asset_t **out,
                                   ap_error_t *error);
ap_status_t ap_mongo_upload_list_expired(void *state, int64_t now_ms, int limit,
                                         ap_upload_record_t **out,
                                         size_t *count, ap_error_t *error);

/*
 * The job operations of the backend (mongo_jobs.c), with the semantics of
 * ap_meta_backend_t in meta_internal.h and of <audiopipe/job.h>; `state`
 * is the ap_mongo_store_t. ap_mongo_job_from_document fills a job from a
 * jobs document (for upload acceptance and asset deletion, which touch
 * jobs from the other files), and ap_mongo_job_insert_document builds the
 * document of a new queued job.
 */
ap_status_t ap_mongo_job_enqueue(void *state,
                                 const ap_job_enqueue_options_t *options,
                                 int64_t now_ms, ap_job_t **out,
                                 ap_error_t *error);
ap_status_t ap_mongo_job_claim(void *state, const char *worker_id,
                               int64_t lease_ms, const char *const *kinds,
                               size_t kind_count, int64_t now_ms,
                               ap_job_t **out, ap_error_t *error);
ap_status_t ap_mongo_job_heartbeat(void *state, const char *id,
                                   const char *token, int64_t lease_ms,
                                   int64_t now_ms, ap_error_t *error);
ap_status_t ap_mongo_job_progress(void *state, const char *id,
                                  const char *token, double fraction,
                                  const char *stage, int64_t now_ms,
                                  ap_error_t *error);
ap_status_t ap_mongo_job_complete(void *state, const char *id,
                                  const char *token, const char *result_json,
                                  int64_t now_ms, ap_error_t *error);
ap_status_t ap_mongo_job_fail(void *state, const char *id, const char *token,
                              int error_code, const char *message,
                              int retryable, int64_t now_ms, ap_error_t *error);
ap_status_t ap_mongo_job_cancel(void *state, const char *owner, const char *id,
                                int64_t now_ms, ap_error_t *error);
ap_status_t ap_mongo_job_reap(void *state, int64_t now_ms, int64_t *count,
                              ap_error_t *error);
ap_status_t ap_mongo_job_get(void *state, const char *owner, const char *id,
                             ap_job_t **out, ap_error_t *error);
ap_status_t ap_mongo_job_stats(void *state, int64_t now_ms,
                               ap_job_stats_t *stats, ap_error_t *error);

ap_status_t ap_mongo_job_from_document(const bson_t *document, ap_job_t **out,
                                       ap_error_t *error);
/* Builds into `document` (initialised by the caller) the queued job for
 * `options` with id `id`, due at now_ms + delay. */
ap_status_t
ap_mongo_job_insert_document(const ap_job_enqueue_options_t *options,
                             const char *id, int64_t now_ms, bson_t *document,
                             ap_error_t *error);

#endif
