/*
 * Schema migrations of the SQLite metadata store. The schema_version table
 * records one row per applied migration; the database's version is the
 * highest. Each migration runs in its own BEGIN IMMEDIATE transaction that
 * first re-reads the version, so two processes migrating at once apply
 * each step once, and a failed step leaves the previous version intact.
 *
 * Migrations are only appended. Changing a released one would leave
 * databases that already ran it different from new ones.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/error_internal.h"
#include "meta/sqlite_internal.h"

static const char *const migrations[] = {
    /* 1: assets, their objects, uploads and jobs. */
    "CREATE TABLE assets ("
    "  id TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  object_key TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  filename TEXT,"
    "  content_type TEXT,"
    "  size_bytes INTEGER NOT NULL,"
    "  probe_json TEXT,"
    "  analysis_json TEXT,"
    "  error_code INTEGER NOT NULL DEFAULT 0,"
    "  error_message TEXT,"
    "  job_id TEXT,"
    "  schema_version INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX assets_owner_created ON assets"
    "  (owner, created_at DESC, id DESC);"
    "CREATE TABLE asset_objects ("
    "  asset_id TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('rendition', 'waveform')),"
    "  name TEXT NOT NULL,"
    "  object_key TEXT NOT NULL,"
    "  content_type TEXT,"
    "  size_bytes INTEGER NOT NULL,"
    "  PRIMARY KEY (asset_id, kind, name));"
    "CREATE TABLE uploads ("
    "  id TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  object_key TEXT NOT NULL UNIQUE,"
    "  filename TEXT NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  size_bytes INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  rejection_code INTEGER NOT NULL DEFAULT 0,"
    "  asset_id TEXT,"
    "  expires_at INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX uploads_state_expires ON uploads (state, expires_at);"
    "CREATE TABLE jobs ("
    "  id TEXT PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  asset_id TEXT,"
    "  owner TEXT,"
    "  state INTEGER NOT NULL,"
    "  payload_json TEXT,"
    "  result_json TEXT,"
    "  idempotency_key TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  max_attempts INTEGER NOT NULL,"
    "  error_code INTEGER NOT NULL DEFAULT 0,"
    "  error_message TEXT,"
    "  progress REAL NOT NULL DEFAULT 0,"
    "  stage TEXT,"
    "  lease_owner TEXT,"
    "  lease_token TEXT,"
    "  lease_expires_at INTEGER NOT NULL DEFAULT 0,"
    "  due_at INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key);"
    "CREATE INDEX jobs_state_due ON jobs (state, due_at);"
    "CREATE INDEX jobs_asset ON jobs (asset_id);",

    /* 2: the lease reaper scans running jobs by lease expiry. */
    "CREATE INDEX jobs_state_lease ON jobs (state, lease_expires_at);",

    /* 3: fewer index pages written per queue cycle. An index entry exists
     * only for the rows a query looks for: most jobs have no idempotency
     * key, queue benchmarks and internal jobs have no asset, and only a
     * running job has a lease to reap. The literal 1 is AP_JOB_RUNNING,
     * and the reaper's query names the same literal so SQLite can use the
     * partial index. Unique keys stay unique, since NULL keys were never
     * equal to each other. */
    "DROP INDEX jobs_idempotency_key;"
    "CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key)"
    "  WHERE idempotency_key IS NOT NULL;"
    "DROP INDEX jobs_asset;"
    "CREATE INDEX jobs_asset ON jobs (asset_id) WHERE asset_id IS NOT NULL;"
    "DROP INDEX jobs_state_lease;"
    "CREATE INDEX jobs_state_lease ON jobs (lease_expires_at)"
    "  WHERE state = 1;",

    /* 4: upload methods. `method` is ap_upload_method_t (0 put, 1 post,
     * 2 multipart); a multipart upload keeps the object store's upload id
     * and its part size, so parts can be presigned, listed, assembled and
     * aborted later. */
    "ALTER TABLE uploads ADD COLUMN method INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE uploads ADD COLUMN storage_upload_id TEXT;"
    "ALTER TABLE uploads ADD COLUMN part_size INTEGER NOT NULL DEFAULT 0;",

    /* 5: one index fewer written per upload. The UNIQUE constraint on
     * object_key kept an index whose keys are random (they end in the
     * random upload id), so each insert dirtied another random 4 KiB page
     * for the WAL and the checkpoint to write. Every object key ends in
     * "/<id>" and ids are the primary key, so keys stay unique without
     * it, and no query looks uploads up by key. SQLite cannot drop a
     * column constraint, so the table is rebuilt with every row, in
     * rowid order. */
    "CREATE TABLE uploads_rebuilt ("
    "  id TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  object_key TEXT NOT NULL,"
    "  filename TEXT NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  size_bytes INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  rejection_code INTEGER NOT NULL DEFAULT 0,"
    "  asset_id TEXT,"
    "  expires_at INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  method INTEGER NOT NULL DEFAULT 0,"
    "  storage_upload_id TEXT,"
    "  part_size INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO uploads_rebuilt (rowid, id, owner, object_key, filename,"
    "  content_type, size_bytes, state, rejection_code, asset_id,"
    "  expires_at, created_at, updated_at, method, storage_upload_id,"
    "  part_size)"
    "  SELECT rowid, id, owner, object_key, filename, content_type,"
    "  size_bytes, state, rejection_code, asset_id, expires_at, created_at,"
    "  updated_at, method, storage_upload_id, part_size FROM uploads"
    "  ORDER BY rowid;"
    "DROP TABLE uploads;"
    "ALTER TABLE uploads_rebuilt RENAME TO uploads;"
    "CREATE INDEX uploads_state_expires ON uploads (state, expires_at);",
};

_Static_assert(AP_JOB_RUNNING == 1,
               "migration 3's jobs_state_lease index names AP_JOB_RUNNING "
               "as the literal 1");

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

_Static_assert(MIGRATION_COUNT == AP_SCHEMA_VERSION,
               "AP_SCHEMA_VERSION must equal the number of migrations");

static ap_status_t read_version(sqlite3 *db, int *version, ap_error_t *error) {
  sqlite3_stmt *statement = NULL;
  ap_status_t status =
      ap_sqlite_prepare(db,
                        "SELECT COALESCE(MAX(version), 0) FROM "
                        "schema_version",
                        &statement, "reading schema_version", error);
  if (status != AP_OK) {
    return status;
  }
  int rc = sqlite3_step(statement);
  if (rc != SQLITE_ROW) {
    status = ap_sqlite_error(error, db, rc, "reading schema_version");
  } else {
    *version = sqlite3_column_int(statement, 0);
  }
  ap_sqlite_finish(statement);
  return status;
}

/* Applies migration number `number` (1-based) unless it is applied. */
static ap_status_t apply_migration(ap_sqlite_store_t *store, sqlite3 *db,
                                   int number, ap_error_t *error) {
  ap_status_t status = ap_sqlite_begin(store, db, error);
  if (status != AP_OK) {
    return status;
  }

  int version = 0;
  status = read_version(db, &version, error);
  if (status == AP_OK && version < number) {
    status = ap_sqlite_exec(db, migrations[number - 1], error);
    if (status == AP_OK) {
      char sql[160];
      snprintf(sql, sizeof sql,
               "INSERT INTO schema_version (version, applied_at) "
               "VALUES (%d, %lld)",
               number, (long long)ap_time_now_ms());
      status = ap_sqlite_exec(db, sql, error);
    }
    if (status != AP_OK) {
      ap_error_prefix(error, "schema migration %d", number);
    }
  }

  if (status != AP_OK) {
    ap_sqlite_rollback(store, db);
    return status;
  }
  return ap_sqlite_commit(store, db, error);
}

ap_status_t ap_sqlite_migrate(void *state, int target_version, int *version,
                              ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  if (target_version < 0 || target_version > MIGRATION_COUNT) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "schema version %d does not exist: use 0 to %d",
                        target_version, MIGRATION_COUNT);
  }
  sqlite3 *db = ap_sqlite_acquire(store);

  ap_status_t status = ap_sqlite_exec(
      db,
      "CREATE TABLE IF NOT EXISTS schema_version ("
      "  version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
      error);
  int current = 0;
  if (status == AP_OK) {
    status = read_version(db, &current, error);
  }
  if (status == AP_OK && current > MIGRATION_COUNT) {
    status = ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNSUPPORTED,
                          "the metadata database %s has schema version %d, "
                          "newer than this build's %d: upgrade libaudiopipe",
                          store->path, current, MIGRATION_COUNT);
  }
  for (int number = current + 1; status == AP_OK && number <= target_version;
       number++) {
    status = apply_migration(store, db, number, error);
  }
  if (status == AP_OK) {
    status = read_version(db, &current, error);
  }

  ap_sqlite_release(store, db);
  if (status == AP_OK && version) {
    *version = current;
  }
  return status;
}

ap_status_t ap_sqlite_schema_version(void *state, int *version,
                                     ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
      "name = 'schema_version'",
      &statement, "reading sqlite_master", error);
  int exists = 0;
  if (status == AP_OK) {
    int rc = sqlite3_step(statement);
    if (rc == SQLITE_ROW) {
      exists = sqlite3_column_int(statement, 0);
    } else {
      status = ap_sqlite_error(error, db, rc, "reading sqlite_master");
    }
    ap_sqlite_finish(statement);
  }
  *version = 0;
  if (status == AP_OK && exists) {
    status = read_version(db, version, error);
  }
  ap_sqlite_release(store, db);
  return status;
}
