/*
 * The SQLite metadata backend: a pool of connections to one database file
 * in WAL mode, shared by the asset, upload and job files of the backend.
 */
#ifndef AP_META_SQLITE_INTERNAL_H
#define AP_META_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "meta/meta_internal.h"

/* Prepared statements kept for the life of one pooled connection, so a hot
 * statement is compiled once rather than on every call. Only the thread
 * that borrowed the connection touches its cache. */
#define AP_SQLITE_CACHE_SIZE 48
typedef struct ap_sqlite_cached_statement {
  char *sql; /* owned copy of the statement's text, the lookup key */
  sqlite3_stmt *statement;
  int in_use; /* 1 between ap_sqlite_prepare and ap_sqlite_finish */
} ap_sqlite_cached_statement_t;

typedef struct ap_sqlite_statement_cache {
  sqlite3 *db;
  int count;
  ap_sqlite_cached_statement_t entries[AP_SQLITE_CACHE_SIZE];
} ap_sqlite_statement_cache_t;

/* One write of a group commit: runs its statements on `db` inside the
 * batch's transaction and returns AP_OK or fills `error`. */
typedef ap_status_t (*ap_sqlite_write_function_t)(sqlite3 *db, void *argument,
                                                  ap_error_t *error);

/*
 * A queued group-commit write (sqlite_group.c). A synchronous request
 * lives on the stack of the thread that waits for `done`. An asynchronous
 * one has `finish`, which the commit thread calls once, outside
 * group_mutex, after the request's batch has committed or failed. It
 * reads `status` and `error` and may free the memory holding the request.
 */
typedef struct ap_sqlite_write_request {
  ap_sqlite_write_function_t write;
  void *argument;
  ap_status_t status;
  ap_error_t error;
  void (*finish)(struct ap_sqlite_write_request *request); /* or NULL */
  int done;            /* synchronous only: under the store's group_mutex */
  pthread_cond_t wake; /* synchronous only: signalled under group_mutex */
  struct ap_sqlite_write_request *next;
} ap_sqlite_write_request_t;

typedef struct ap_sqlite_store {
  char *path;
  /* pool_size connections that ap_sqlite_acquire lends, then one more
   * that only the running group-commit batch uses. A connection that
   * alone commits the batches keeps its page cache, because SQLite drops
   * a connection's cache whenever another connection wrote since its last
   * transaction. */
  sqlite3 **connections;
  ap_sqlite_statement_cache_t *caches; /* one per connection */
  int *in_use;
  int pool_size;
  int connection_count; /* connections opened: pool_size + 1 once open */
  pthread_mutex_t mutex;
  pthread_cond_t available;
  /* Serialises this process's writers before they reach SQLite's lock, so
   * threads queue on a mutex instead of polling in SQLite's busy handler.
   * Other processes still meet the database lock and busy_timeout. */
  pthread_mutex_t write_mutex;
  /* Per connection: 1 while it holds write_mutex. Only the thread that
   * borrowed the connection reads or writes its entry. */
  int *holds_write;
  ap_meta_settings_t settings;
  /* Background checkpoints: the pool's connections never checkpoint
   * themselves (wal_autocheckpoint=0), because a checkpoint syncs the
   * database file and would stall the commit that triggered it. Their WAL
   * hook wakes this thread instead, which checkpoints on its own
   * connection in PASSIVE mode while writers go on. */
  sqlite3 *checkpoint_connection;
  pthread_t checkpoint_thread;
  int checkpoint_thread_started;
  pthread_mutex_t checkpoint_mutex;
  pthread_cond_t checkpoint_wake;
  int checkpoint_pending; /* under checkpoint_mutex */
  int checkpoint_stop;    /* under checkpoint_mutex */
  /* Group commit (sqlite_group.c): the queue of write requests waiting
   * for the next batch, and the thread that commits every batch. */
  pthread_mutex_t group_mutex;
  pthread_cond_t group_wake; /* the commit thread waits on it */
  struct ap_sqlite_write_request *group_head; /* under group_mutex */
  struct ap_sqlite_write_request *group_tail; /* under group_mutex */
  int group_stop;                             /* under group_mutex */
  pthread_t group_thread;
  int group_thread_started;
} ap_sqlite_store_t;

/* Opens the SQLite store of `uri` (sqlite://PATH) for ap_meta_store_open. */
ap_status_t ap_sqlite_store_open(const char *uri, const ap_config_t *config,
                                 const ap_meta_settings_t *settings,
                                 ap_meta_store_t **out, ap_error_t *error);

/* Borrows a connection, waiting while every connection is in use. */
sqlite3 *ap_sqlite_acquire(ap_sqlite_store_t *store);

/* Borrows the connection reserved for group-commit batches; the caller
 * must be the one batch running (sqlite_group.c) and hands it back with
 * ap_sqlite_release. */
sqlite3 *ap_sqlite_acquire_group_writer(ap_sqlite_store_t *store);

/* Returns a connection to the pool; rolls back a transaction left open. */
void ap_sqlite_release(ap_sqlite_store_t *store, sqlite3 *db);

/*
 * Fills `error` for SQLite result `rc` during `what` and returns the code:
 * SQLITE_BUSY and SQLITE_LOCKED become AP_ERR_UNAVAILABLE (retry), a
 * constraint violation AP_ERR_CONFLICT, out of memory AP_ERR_NO_MEMORY and
 * anything else AP_ERR_IO.
 */
ap_status_t ap_sqlite_error(ap_error_t *error, sqlite3 *db, int rc,
                            const char *what);

/* Runs statements without results. */
ap_status_t ap_sqlite_exec(sqlite3 *db, const char *sql, ap_error_t *error);

/*
 * Starts a write transaction with BEGIN IMMEDIATE, so the write lock is
 * taken (waiting up to busy_timeout) before anything is read. The
 * connection holds the store's write mutex until ap_sqlite_commit,
 * ap_sqlite_rollback or ap_sqlite_release.
 */
ap_status_t ap_sqlite_begin(ap_sqlite_store_t *store, sqlite3 *db,
                            ap_error_t *error);
ap_status_t ap_sqlite_commit(ap_sqlite_store_t *store, sqlite3 *db,
                             ap_error_t *error);
void ap_sqlite_rollback(ap_sqlite_store_t *store, sqlite3 *db);

/*
 * Runs `write` in a transaction shared with the writes other threads
 * request meanwhile, inside its own SAVEPOINT, and returns its own status
 * and error once the transaction has committed. A write that fails is
 * rolled back alone. A write that succeeded can still fail when the
 * COMMIT fails, or with AP_ERR_UNAVAILABLE when another write's failure
 * made SQLite roll back the whole transaction. Blocks the caller while
 * the store's commit thread runs the batch. Called on the commit thread
 * itself (from an asynchronous write's finish), it runs the write there
 * in a transaction of its own. Thread-safe.
 */
ap_status_t ap_sqlite_write_grouped(ap_sqlite_store_t *store,
                                    ap_sqlite_write_function_t write,
                                    void *argument, ap_error_t *error);

/*
 * Queues `request` (write, argument and finish set, finish not NULL) for
 * the next batch and returns at once; the commit thread then calls
 * request->finish with the outcome, as for ap_sqlite_write_grouped. Fails
 * with AP_ERR_UNAVAILABLE, and never calls finish, once the store is
 * closing. Thread-safe.
 */
ap_status_t ap_sqlite_write_grouped_async(ap_sqlite_store_t *store,
                                          ap_sqlite_write_request_t *request,
                                          ap_error_t *error);

/* Starts the commit thread; called once by the store's open. */
ap_status_t ap_sqlite_group_start(ap_sqlite_store_t *store, ap_error_t *error);

/* Commits every queued request, finishing each, then joins the commit
 * thread. Later writes fail. Safe to call when it never started. */
void ap_sqlite_group_stop(ap_sqlite_store_t *store);

/*
 * Prepares `sql`; AP_OK or an error naming `what`. On a connection the
 * calling thread borrowed with ap_sqlite_acquire, the statement comes from
 * the connection's cache (prepared once with SQLITE_PREPARE_PERSISTENT);
 * otherwise, or when the same text is already in use or the cache is
 * full, it is prepared afresh. Either way the caller hands it back with
 * ap_sqlite_finish, never sqlite3_finalize.
 */
ap_status_t ap_sqlite_prepare(sqlite3 *db, const char *sql,
                              sqlite3_stmt **statement, const char *what,
                              ap_error_t *error);

/* Resets a cached statement and clears its bindings for the next caller,
 * or finalizes one that is not cached. NULL is ignored. */
void ap_sqlite_finish(sqlite3_stmt *statement);

/* Binds text, or NULL when `text` is NULL. */
int ap_sqlite_bind_text(sqlite3_stmt *statement, int index, const char *text);

/* Copies a text column (NULL stays NULL); -1 when out of memory. */
int ap_sqlite_column_copy(sqlite3_stmt *statement, int column, char **out);

/* Job rows: the column list and a reader for it. */
#define AP_SQLITE_JOB_COLUMNS                                                  \
  "id, kind, asset_id, owner, state, payload_json, result_json, "              \
  "idempotency_key, attempts, max_attempts, error_code, error_message, "       \
  "progress, stage, lease_owner, lease_expires_at, due_at, created_at, "       \
  "updated_at"
ap_status_t ap_sqlite_read_job(sqlite3_stmt *statement, ap_job_t **out,
                               ap_error_t *error);

/* Inserts a job row in the caller's transaction. `id` (AP_ID_SIZE bytes)
 * is the job's id, or "" to have a new one generated and stored there. A
 * duplicate idempotency key is AP_ERR_CONFLICT. */
ap_status_t ap_sqlite_insert_job(sqlite3 *db,
                                 const ap_job_enqueue_options_t *options,
                                 int64_t now_ms, char *id, ap_error_t *error);

/* Reads one job by id in the caller's connection. */
ap_status_t ap_sqlite_load_job(sqlite3 *db, const char *owner, const char *id,
                               ap_job_t **out, ap_error_t *error);

/* Reads one asset by id in the caller's connection. */
ap_status_t ap_sqlite_load_asset(sqlite3 *db, const char *owner, const char *id,
                                 ap_asset_t **out, ap_error_t *error);

/* Inserts `asset` in the caller's transaction. */
ap_status_t ap_sqlite_insert_asset(sqlite3 *db, const ap_asset_t *asset,
                                   ap_error_t *error);

/* Backend operations, grouped by file. */
ap_status_t ap_sqlite_asset_get(void *state, const char *owner, const char *id,
                                ap_asset_t **out, ap_error_t *error);
ap_status_t ap_sqlite_asset_list(void *state, const char *owner,
                                 int64_t after_created_at_ms,
                                 const char *after_id, int limit,
                                 ap_asset_t ***out, size_t *count,
                                 ap_error_t *error);
ap_status_t ap_sqlite_asset_delete(void *state, const char *owner,
                                   const char *id, ap_error_t *error);
ap_status_t ap_sqlite_asset_set_status(void *state, const char *id, int status,
                                       int error_code,
                                       const char *error_message,
                                       int64_t now_ms, ap_error_t *error);
ap_status_t ap_sqlite_asset_set_analysis(void *state, const char *id,
                                         const char *analysis_json,
                                         int64_t now_ms, ap_error_t *error);
ap_status_t ap_sqlite_asset_put_object(void *state, const char *asset_id,
                                       const char *kind,
                                       const ap_asset_object_t *object,
                                       int64_t now_ms, ap_error_t *error);

ap_status_t ap_sqlite_upload_insert(void *state,
                                    const ap_upload_record_t *upload,
                                    ap_error_t *error);
ap_status_t ap_sqlite_upload_insert_async(void *state,
                                          const ap_upload_record_t *upload,
                                          ap_meta_done_t done, void *argument,
                                          ap_error_t *error);
ap_status_t ap_sqlite_upload_get(void *state, const char *owner, const char *id,
                                 ap_upload_record_t *out, ap_error_t *error);
ap_status_t ap_sqlite_upload_finish_pending(void *state, const char *id,
                                            int to_state, int rejection_code,
                                            int64_t now_ms, ap_error_t *error);
ap_status_t ap_sqlite_upload_accept(void *state, const char *upload_id,
                                    const ap_asset_t *asset,
                                    const ap_job_enqueue_options_t *job,
                                    int64_t now_ms, ap_asset_t **out,
                                    ap_error_t *error);
ap_status_t ap_sqlite_upload_list_expired(void *state, int64_t now_ms,
                                          int limit, ap_upload_record_t **out,
                                          size_t *count, ap_error_t *error);

ap_status_t ap_sqlite_job_enqueue(void *state,
                                  const ap_job_enqueue_options_t *options,
                                  int64_t now_ms, ap_job_t **out,
                                  ap_error_t *error);
ap_status_t ap_sqlite_job_claim(void *state, const char *worker_id,
                                int64_t lease_ms, const char *const *kinds,
                                size_t kind_count, int64_t now_ms,
                                ap_job_t **out, ap_error_t *error);
ap_status_t ap_sqlite_job_heartbeat(void *state, const char *id,
                                    const char *token, int64_t lease_ms,
                                    int64_t now_ms, ap_error_t *error);
ap_status_t ap_sqlite_job_progress(void *state, const char *id,
                                   const char *token, double fraction,
                                   const char *stage, int64_t now_ms,
                                   ap_error_t *error);
ap_status_t ap_sqlite_job_complete(void *state, const char *id,
                                   const char *token, const char *result_json,
                                   int64_t now_ms, ap_error_t *error);
ap_status_t ap_sqlite_job_fail(void *state, const char *id, const char *token,
                               int error_code, const char *message,
                               int retryable, int64_t now_ms,
                               ap_error_t *error);
ap_status_t ap_sqlite_job_cancel(void *state, const char *owner, const char *id,
                                 int64_t now_ms, ap_error_t *error);
ap_status_t ap_sqlite_job_reap(void *state, int64_t now_ms, int64_t *count,
                               ap_error_t *error);
ap_status_t ap_sqlite_job_get(void *state, const char *owner, const char *id,
                              ap_job_t **out, ap_error_t *error);
ap_status_t ap_sqlite_job_stats(void *state, int64_t now_ms,
                                ap_job_stats_t *stats, ap_error_t *error);

/* Migrations, in sqlite_schema.c. */
ap_status_t ap_sqlite_migrate(void *state, int target_version, int *version,
                              ap_error_t *error);
ap_status_t ap_sqlite_schema_version(void *state, int *version,
                                     ap_error_t *error);

#endif
