/*
 * The SQLite metadata backend: opening the database file, the connection
 * pool, and the helpers every SQLite file of the backend uses.
 *
 * Each connection runs in WAL mode, so readers never block the one writer
 * and the writer never blocks readers. Writers serialise on the database
 * lock: every write transaction starts with BEGIN IMMEDIATE and waits up
 * to metadata.busy_timeout for the lock, which also covers other processes
 * sharing the file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error_internal.h"
#include "meta/sqlite_internal.h"

#define SQLITE_SCHEME "sqlite://"

ap_status_t ap_sqlite_error(ap_error_t *error, sqlite3 *db, int rc,
                            const char *what) {
  const char *message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int primary = rc & 0xff;

  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNAVAILABLE,
                        "%s: the database is locked by another writer (%s); "
                        "retry, or raise metadata.busy_timeout",
                        what, message);
  }
  if (primary == SQLITE_CONSTRAINT) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_CONFLICT,
                        "%s: constraint violated: %s", what, message);
  }
  if (primary == SQLITE_NOMEM) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_NO_MEMORY,
                        "%s: SQLite is out of memory", what);
  }
  return ap_error_set(error, AP_DOMAIN_META, AP_ERR_IO, "%s failed: %s", what,
                      message);
}

ap_status_t ap_sqlite_exec(sqlite3 *db, const char *sql, ap_error_t *error) {
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    return ap_sqlite_error(error, db, rc, "SQL statement");
  }
  return AP_OK;
}

/* Returns the entry of holds_write for `db`. */
static int *write_flag(ap_sqlite_store_t *store, sqlite3 *db) {
  for (int i = 0; i < store->connection_count; i++) {
    if (store->connections[i] == db) {
      return &store->holds_write[i];
    }
  }
  return NULL;
}

/* Releases the write mutex if `db` holds it. */
static void release_writer(ap_sqlite_store_t *store, sqlite3 *db) {
  int *flag = write_flag(store, db);
  if (flag && *flag) {
    *flag = 0;
    pthread_mutex_unlock(&store->write_mutex);
  }
}

/* Runs `sql`, a statement without results, through the statement cache
 * of a borrowed connection, so BEGIN and COMMIT are not parsed again on
 * every transaction. */
static ap_status_t run_cached(sqlite3 *db, const char *sql, ap_error_t *error) {
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(db, sql, &statement, sql, error);
  if (status != AP_OK) {
    return status;
  }
  int rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, sql);
  }
  ap_sqlite_finish(statement);
  return status;
}

ap_status_t ap_sqlite_begin(ap_sqlite_store_t *store, sqlite3 *db,
                            ap_error_t *error) {
  int *flag = write_flag(store, db);
  if (!flag) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INTERNAL,
                        "BEGIN on a connection outside the pool");
  }
  pthread_mutex_lock(&store->write_mutex);
  *flag = 1;
  ap_status_t status = run_cached(db, "BEGIN IMMEDIATE", error);
  if (status != AP_OK) {
    release_writer(store, db);
  }
  return status;
}

ap_status_t ap_sqlite_commit(ap_sqlite_store_t *store, sqlite3 *db,
                             ap_error_t *error) {
  ap_status_t status = run_cached(db, "COMMIT", error);
  if (status != AP_OK) {
    ap_sqlite_rollback(store, db);
    return status;
  }
  release_writer(store, db);
  return AP_OK;
}

void ap_sqlite_rollback(ap_sqlite_store_t *store, sqlite3 *db) {
  if (!sqlite3_get_autocommit(db)) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  }
  release_writer(store, db);
}

/* The statement caches of the connections this thread has borrowed, so
 * ap_sqlite_prepare can find a connection's cache from its handle alone.
 * A thread rarely has more than one connection at a time; past
 * BORROWED_MAX, its statements are prepared uncached. */
#define BORROWED_MAX 4
static _Thread_local ap_sqlite_statement_cache_t *borrowed[BORROWED_MAX];

static ap_sqlite_statement_cache_t *borrowed_cache(sqlite3 *db) {
  for (int i = 0; i < BORROWED_MAX; i++) {
    if (borrowed[i] && borrowed[i]->db == db) {
      return borrowed[i];
    }
  }
  return NULL;
}

static void push_borrowed(ap_sqlite_statement_cache_t *cache) {
  for (int i = 0; i < BORROWED_MAX; i++) {
    if (!borrowed[i]) {
      borrowed[i] = cache;
      return;
    }
  }
}

/* Forgets `db`'s cache for this thread and makes every statement in it
 * idle, so a statement a caller failed to finish cannot leak into the
 * next borrower's transaction. */
static void pop_borrowed(sqlite3 *db) {
  for (int i = 0; i < BORROWED_MAX; i++) {
    ap_sqlite_statement_cache_t *cache = borrowed[i];
    if (cache && cache->db == db) {
      for (int j = 0; j < cache->count; j++) {
        if (cache->entries[j].in_use) {
          sqlite3_reset(cache->entries[j].statement);
          sqlite3_clear_bindings(cache->entries[j].statement);
          cache->entries[j].in_use = 0;
        }
      }
      borrowed[i] = NULL;
    }
  }
}

/* Finalizes every statement of `cache`; the connection is closing. */
static void clear_cache(ap_sqlite_statement_cache_t *cache) {
  for (int i = 0; i < cache->count; i++) {
    sqlite3_finalize(cache->entries[i].statement);
    free(cache->entries[i].sql);
  }
  cache->count = 0;
}

/* Takes an idle cached statement for `sql`, or adds one while there is
 * room. Returns NULL (and leaves *rc SQLITE_OK) when the caller should
 * prepare the statement uncached. */
static sqlite3_stmt *take_cached(ap_sqlite_statement_cache_t *cache,
                                 const char *sql, int *rc) {
  *rc = SQLITE_OK;
  for (int i = 0; i < cache->count; i++) {
    ap_sqlite_cached_statement_t *entry = &cache->entries[i];
    if (!entry->in_use && strcmp(entry->sql, sql) == 0) {
      entry->in_use = 1;
      return entry->statement;
    }
  }
  if (cache->count == AP_SQLITE_CACHE_SIZE) {
    return NULL;
  }
  char *copy = strdup(sql);
  if (!copy) {
    return NULL;
  }
  sqlite3_stmt *statement = NULL;
  *rc = sqlite3_prepare_v3(cache->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                           &statement, NULL);
  if (*rc != SQLITE_OK) {
    free(copy);
    return NULL;
  }
  ap_sqlite_cached_statement_t *entry = &cache->entries[cache->count++];
  entry->sql = copy;
  entry->statement = statement;
  entry->in_use = 1;
  return statement;
}

ap_status_t ap_sqlite_prepare(sqlite3 *db, const char *sql,
                              sqlite3_stmt **statement, const char *what,
                              ap_error_t *error) {
  *statement = NULL;
  int rc = SQLITE_OK;
  ap_sqlite_statement_cache_t *cache = borrowed_cache(db);
  if (cache) {
    *statement = take_cached(cache, sql, &rc);
  }
  if (!*statement && rc == SQLITE_OK) {
    rc = sqlite3_prepare_v3(db, sql, -1, 0, statement, NULL);
  }
  if (rc != SQLITE_OK) {
    sqlite3_finalize(*statement);
    *statement = NULL;
    return ap_sqlite_error(error, db, rc, what);
  }
  return AP_OK;
}

void ap_sqlite_finish(sqlite3_stmt *statement) {
  if (!statement) {
    return;
  }
  ap_sqlite_statement_cache_t *cache =
      borrowed_cache(sqlite3_db_handle(statement));
  if (cache) {
    for (int i = 0; i < cache->count; i++) {
      if (cache->entries[i].statement == statement) {
        /* sqlite3_reset repeats the last step's error, which the caller
         * has already reported. */
        sqlite3_reset(statement);
        sqlite3_clear_bindings(statement);
        cache->entries[i].in_use = 0;
        return;
      }
    }
  }
  sqlite3_finalize(statement);
}

int ap_sqlite_bind_text(sqlite3_stmt *statement, int index, const char *text) {
  if (!text) {
    return sqlite3_bind_null(statement, index);
  }
  return sqlite3_bind_text(statement, index, text, -1, SQLITE_TRANSIENT);
}

int ap_sqlite_column_copy(sqlite3_stmt *statement, int column, char **out) {
  const unsigned char *text = sqlite3_column_text(statement, column);
  if (!text) {
    *out = NULL;
    return sqlite3_errcode(sqlite3_db_handle(statement)) == SQLITE_NOMEM ? -1
                                                                         : 0;
  }
  return ap_meta_strdup((const char *)text, out);
}

sqlite3 *ap_sqlite_acquire(ap_sqlite_store_t *store) {
  pthread_mutex_lock(&store->mutex);
  for (;;) {
    for (int i = 0; i < store->pool_size; i++) {
      if (!store->in_use[i]) {
        store->in_use[i] = 1;
        pthread_mutex_unlock(&store->mutex);
        push_borrowed(&store->caches[i]);
        return store->connections[i];
      }
    }
    pthread_cond_wait(&store->available, &store->mutex);
  }
}

sqlite3 *ap_sqlite_acquire_group_writer(ap_sqlite_store_t *store) {
  int index = store->pool_size;
  pthread_mutex_lock(&store->mutex);
  store->in_use[index] = 1;
  pthread_mutex_unlock(&store->mutex);
  push_borrowed(&store->caches[index]);
  return store->connections[index];
}

void ap_sqlite_release(ap_sqlite_store_t *store, sqlite3 *db) {
  pop_borrowed(db);
  ap_sqlite_rollback(store, db);
  pthread_mutex_lock(&store->mutex);
  for (int i = 0; i < store->connection_count; i++) {
    if (store->connections[i] == db) {
      store->in_use[i] = 0;
    }
  }
  pthread_cond_signal(&store->available);
  pthread_mutex_unlock(&store->mutex);
}

/* Creates the parent directories of `path`, like mkdir -p on dirname. */
static ap_status_t make_parent_directories(const char *path,
                                           ap_error_t *error) {
  char *copy = strdup(path);
  if (!copy) {
    return AP_NO_MEMORY(error);
  }
  for (char *slash = strchr(copy + 1, '/'); slash;
       slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    if (mkdir(copy, 0750) != 0 && errno != EEXIST) {
      ap_status_t status =
          ap_error_set(error, AP_DOMAIN_META, AP_ERR_IO,
                       "metadata.uri: cannot create directory %s: %s", copy,
                       strerror(errno));
      free(copy);
      return status;
    }
    *slash = '/';
  }
  free(copy);
  return AP_OK;
}

/* Opens one connection and applies the per-connection settings. */
static ap_status_t open_connection(const char *path, int64_t busy_timeout_ms,
                                   const char *synchronous, sqlite3 **out,
                                   ap_error_t *error) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(
      path, &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    ap_status_t status =
        ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNAVAILABLE,
                     "metadata.uri: cannot open SQLite database %s: %s", path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return status;
  }
  sqlite3_busy_timeout(db, (int)busy_timeout_ms);

  /* wal_autocheckpoint = 0: the checkpoint thread does that work. */
  char sql[256];
  snprintf(sql, sizeof sql,
           "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; "
           "PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
           synchronous);
  ap_status_t status = ap_sqlite_exec(db, sql, error);
  if (status != AP_OK) {
    ap_error_prefix(error, "metadata.uri %s", path);
    sqlite3_close(db);
    return status;
  }
  *out = db;
  return AP_OK;
}

/* WAL size, in pages (16 MiB at 4 KiB pages), from which a commit wakes
 * the checkpoint thread. Four times SQLite's wal_autocheckpoint default,
 * so the queue's fsyncs at checkpoints are four times rarer. */
#define CHECKPOINT_PAGES 4000

/* Maximum time between two checkpoints, in ms, so an idle store still
 * moves its last WAL frames into the database file. */
#define CHECKPOINT_INTERVAL_MS 1000

/* The WAL hook of every pool connection, run after each commit. */
static int on_wal_commit(void *user_data, sqlite3 *db, const char *name,
                         int pages) {
  (void)db;
  (void)name;
  ap_sqlite_store_t *store = user_data;
  if (pages >= CHECKPOINT_PAGES) {
    pthread_mutex_lock(&store->checkpoint_mutex);
    store->checkpoint_pending = 1;
    pthread_cond_signal(&store->checkpoint_wake);
    pthread_mutex_unlock(&store->checkpoint_mutex);
  }
  return SQLITE_OK;
}

static void *checkpoint_loop(void *argument) {
  ap_sqlite_store_t *store = argument;
  pthread_mutex_lock(&store->checkpoint_mutex);
  while (!store->checkpoint_stop) {
    if (!store->checkpoint_pending) {
      struct timespec deadline;
      clock_gettime(CLOCK_REALTIME, &deadline);
      deadline.tv_sec += CHECKPOINT_INTERVAL_MS / 1000;
      pthread_cond_timedwait(&store->checkpoint_wake, &store->checkpoint_mutex,
                             &deadline);
    }
    store->checkpoint_pending = 0;
    if (store->checkpoint_stop) {
      break;
    }
    pthread_mutex_unlock(&store->checkpoint_mutex);
    /* PASSIVE copies the frames no reader still needs without waiting for
     * readers or writers (sqlite3_wal_checkpoint_v2 documentation), so a
     * busy result only means that the next round copies the rest. */
    sqlite3_wal_checkpoint_v2(store->checkpoint_connection, NULL,
                              SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    pthread_mutex_lock(&store->checkpoint_mutex);
  }
  pthread_mutex_unlock(&store->checkpoint_mutex);
  return NULL;
}

/* Opens the checkpoint connection, hooks the pool and starts the thread. */
static ap_status_t start_checkpoints(ap_sqlite_store_t *store,
                                     int64_t busy_timeout_ms,
                                     const char *synchronous,
                                     ap_error_t *error) {
  ap_status_t status =
      open_connection(store->path, busy_timeout_ms, synchronous,
                      &store->checkpoint_connection, error);
  if (status != AP_OK) {
    return status;
  }
  for (int i = 0; i < store->connection_count; i++) {
    sqlite3_wal_hook(store->connections[i], on_wal_commit, store);
  }
  if (pthread_create(&store->checkpoint_thread, NULL, checkpoint_loop, store) !=
      0) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INTERNAL,
                        "metadata.uri %s: cannot start the checkpoint thread",
                        store->path);
  }
  store->checkpoint_thread_started = 1;
  return AP_OK;
}

static void stop_checkpoints(ap_sqlite_store_t *store) {
  if (store->checkpoint_thread_started) {
    pthread_mutex_lock(&store->checkpoint_mutex);
    store->checkpoint_stop = 1;
    pthread_cond_signal(&store->checkpoint_wake);
    pthread_mutex_unlock(&store->checkpoint_mutex);
    pthread_join(store->checkpoint_thread, NULL);
    store->checkpoint_thread_started = 0;
  }
  if (store->checkpoint_connection) {
    /* A last checkpoint, so a closed database leaves a short WAL. */
    sqlite3_wal_checkpoint_v2(store->checkpoint_connection, NULL,
                              SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    sqlite3_close(store->checkpoint_connection);
    store->checkpoint_connection = NULL;
  }
}

static void sqlite_close(void *state) {
  ap_sqlite_store_t *store = state;
  if (!store) {
    return;
  }
  ap_sqlite_group_stop(store);
  stop_checkpoints(store);
  for (int i = 0; i < store->connection_count; i++) {
    clear_cache(&store->caches[i]);
    sqlite3_close(store->connections[i]);
  }
  free(store->connections);
  free(store->caches);
  free(store->in_use);
  free(store->holds_write);
  pthread_mutex_destroy(&store->mutex);
  pthread_mutex_destroy(&store->write_mutex);
  pthread_cond_destroy(&store->available);
  pthread_mutex_destroy(&store->checkpoint_mutex);
  pthread_cond_destroy(&store->checkpoint_wake);
  pthread_mutex_destroy(&store->group_mutex);
  pthread_cond_destroy(&store->group_wake);
  free(store->path);
  free(store);
}

static void sqlite_drain(void *state) { ap_sqlite_group_stop(state); }

static ap_status_t sqlite_ping(void *state, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  ap_error_t cause;
  ap_error_clear(&cause);
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_exec(db, "SELECT 1", &cause);
  ap_sqlite_release(store, db);
  if (status != AP_OK) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNAVAILABLE,
                        "metadata store %s did not answer: %s", store->path,
                        cause.message);
  }
  return AP_OK;
}

static const ap_meta_backend_t sqlite_backend = {
    .name = "sqlite",
    .close = sqlite_close,
    .drain = sqlite_drain,
    .ping = sqlite_ping,
    .migrate = ap_sqlite_migrate,
    .schema_version = ap_sqlite_schema_version,
    .asset_get = ap_sqlite_asset_get,
    .asset_list = ap_sqlite_asset_list,
    .asset_delete = ap_sqlite_asset_delete,
    .asset_set_status = ap_sqlite_asset_set_status,
    .asset_set_analysis = ap_sqlite_asset_set_analysis,
    .asset_put_object = ap_sqlite_asset_put_object,
    .upload_insert = ap_sqlite_upload_insert,
    .upload_insert_async = ap_sqlite_upload_insert_async,
    .upload_get = ap_sqlite_upload_get,
    .upload_finish_pending = ap_sqlite_upload_finish_pending,
    .upload_accept = ap_sqlite_upload_accept,
    .upload_list_expired = ap_sqlite_upload_list_expired,
    .job_enqueue = ap_sqlite_job_enqueue,
    .job_claim = ap_sqlite_job_claim,
    .job_heartbeat = ap_sqlite_job_heartbeat,
    .job_progress = ap_sqlite_job_progress,
    .job_complete = ap_sqlite_job_complete,
    .job_fail = ap_sqlite_job_fail,
    .job_cancel = ap_sqlite_job_cancel,
    .job_reap = ap_sqlite_job_reap,
    .job_get = ap_sqlite_job_get,
    .job_stats = ap_sqlite_job_stats,
};

/* Reads and checks the metadata.* keys the SQLite backend uses. */
static ap_status_t read_sqlite_settings(const ap_config_t *config,
                                        const char **synchronous,
                                        int64_t *pool_size,
                                        int64_t *busy_timeout_ms,
                                        ap_error_t *error) {
  *synchronous = ap_config_get(config, "metadata.sqlite_synchronous");
  if (!*synchronous) {
    *synchronous = "NORMAL";
  }
  if (strcasecmp(*synchronous, "FULL") != 0 &&
      strcasecmp(*synchronous, "NORMAL") != 0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "metadata.sqlite_synchronous = %s is invalid: use "
                        "FULL or NORMAL",
                        *synchronous);
  }

  ap_status_t status =
      ap_config_get_int64(config, "metadata.pool_size", pool_size, error);
  if (status != AP_OK) {
    return status;
  }
  if (*pool_size < 1 || *pool_size > 64) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "metadata.pool_size = %lld is out of range: use 1 "
                        "to 64",
                        (long long)*pool_size);
  }

  status = ap_config_get_int64(config, "metadata.busy_timeout", busy_timeout_ms,
                               error);
  if (status != AP_OK) {
    return status;
  }
  if (*busy_timeout_ms < 0 || *busy_timeout_ms > INT32_MAX) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "metadata.busy_timeout = %lld ms is out of range",
                        (long long)*busy_timeout_ms);
  }
  return AP_OK;
}

static ap_status_t open_sqlite(const char *path, const ap_config_t *config,
                               const ap_meta_settings_t *settings,
                               ap_sqlite_store_t **out, ap_error_t *error) {
  const char *synchronous = NULL;
  int64_t pool_size = 0;
  int64_t busy_timeout_ms = 0;
  ap_status_t status = read_sqlite_settings(config, &synchronous, &pool_size,
                                            &busy_timeout_ms, error);
  if (status != AP_OK) {
    return status;
  }
  status = make_parent_directories(path, error);
  if (status != AP_OK) {
    return status;
  }

  ap_sqlite_store_t *store = calloc(1, sizeof *store);
  if (!store) {
    return AP_NO_MEMORY(error);
  }
  pthread_mutex_init(&store->mutex, NULL);
  pthread_cond_init(&store->available, NULL);
  pthread_mutex_init(&store->write_mutex, NULL);
  pthread_mutex_init(&store->checkpoint_mutex, NULL);
  pthread_cond_init(&store->checkpoint_wake, NULL);
  pthread_mutex_init(&store->group_mutex, NULL);
  pthread_cond_init(&store->group_wake, NULL);
  store->settings = *settings;
  store->path = strdup(path);
  /* The borrowable connections, then the group-commit writer. */
  size_t count = (size_t)pool_size + 1;
  store->pool_size = (int)pool_size;
  store->connections = calloc(count, sizeof *store->connections);
  store->in_use = calloc(count, sizeof *store->in_use);
  store->holds_write = calloc(count, sizeof *store->holds_write);
  store->caches = calloc(count, sizeof *store->caches);
  if (!store->path || !store->connections || !store->in_use ||
      !store->holds_write || !store->caches) {
    sqlite_close(store);
    return AP_NO_MEMORY(error);
  }

  for (int i = 0; i < (int)count; i++) {
    status = open_connection(path, busy_timeout_ms, synchronous,
                             &store->connections[i], error);
    if (status != AP_OK) {
      sqlite_close(store);
      return status;
    }
    store->caches[i].db = store->connections[i];
    store->connection_count = i + 1;
  }
  status = start_checkpoints(store, busy_timeout_ms, synchronous, error);
  if (status == AP_OK) {
    status = ap_sqlite_group_start(store, error);
  }
  if (status != AP_OK) {
    sqlite_close(store);
    return status;
  }
  *out = store;
  return AP_OK;
}

ap_status_t ap_sqlite_store_open(const char *uri, const ap_config_t *config,
                                 const ap_meta_settings_t *settings,
                                 ap_meta_store_t **out, ap_error_t *error) {
  size_t scheme_length = strlen(SQLITE_SCHEME);
  if (strncmp(uri, SQLITE_SCHEME, scheme_length) != 0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "metadata.uri = %s is not a sqlite:// URI", uri);
  }
  const char *path = uri + scheme_length;
  if (*path == '\0' || strcmp(path, ":memory:") == 0 ||
      strncmp(path, "file:", 5) == 0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "metadata.uri = %s: give the path of a database "
                        "file, such as sqlite://./audiopipe-data/meta.db",
                        uri);
  }

  ap_meta_store_t *store = calloc(1, sizeof *store);
  if (!store) {
    return AP_NO_MEMORY(error);
  }
  ap_sqlite_store_t *state = NULL;
  ap_status_t status = open_sqlite(path, config, settings, &state, error);
  if (status != AP_OK) {
    free(store);
    return status;
  }
  store->backend = &sqlite_backend;
  store->state = state;
  *out = store;
  return AP_OK;
}
