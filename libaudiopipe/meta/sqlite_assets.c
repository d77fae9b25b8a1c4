/* Asset rows of the SQLite metadata backend. */
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "meta/sqlite_internal.h"

#define ASSET_COLUMNS                                                          \
  "id, owner, object_key, status, filename, content_type, size_bytes, "        \
  "probe_json, analysis_json, error_code, error_message, job_id, "             \
  "schema_version, created_at, updated_at"

/* Reads the row `statement` is on (columns ASSET_COLUMNS). */
static ap_status_t read_asset_row(sqlite3_stmt *statement, ap_asset_t **out,
                                  ap_error_t *error) {
  ap_asset_t *asset = ap_asset_alloc();
  if (!asset) {
    return AP_NO_MEMORY(error);
  }
  int failed = 0;
  failed |= ap_sqlite_column_copy(statement, 0, &asset->id);
  failed |= ap_sqlite_column_copy(statement, 1, &asset->owner);
  failed |= ap_sqlite_column_copy(statement, 2, &asset->object_key);
  asset->status = sqlite3_column_int(statement, 3);
  failed |= ap_sqlite_column_copy(statement, 4, &asset->filename);
  failed |= ap_sqlite_column_copy(statement, 5, &asset->content_type);
  asset->size_bytes = sqlite3_column_int64(statement, 6);
  failed |= ap_sqlite_column_copy(statement, 7, &asset->probe_json);
  failed |= ap_sqlite_column_copy(statement, 8, &asset->analysis_json);
  asset->error_code = sqlite3_column_int(statement, 9);
  failed |= ap_sqlite_column_copy(statement, 10, &asset->error_message);
  failed |= ap_sqlite_column_copy(statement, 11, &asset->job_id);
  asset->schema_version = sqlite3_column_int(statement, 12);
  asset->created_at_ms = sqlite3_column_int64(statement, 13);
  asset->updated_at_ms = sqlite3_column_int64(statement, 14);
  if (failed) {
    ap_asset_free(asset);
    return AP_NO_MEMORY(error);
  }
  *out = asset;
  return AP_OK;
}

/* Appends one object to `*array`; -1 when out of memory. */
static int append_object(ap_asset_object_t **array, size_t *count,
                         sqlite3_stmt *statement) {
  ap_asset_object_t *grown = realloc(*array, (*count + 1) * sizeof **array);
  if (!grown) {
    return -1;
  }
  *array = grown;
  ap_asset_object_t *object = &grown[*count];
  memset(object, 0, sizeof *object);
  (*count)++;
  int failed = 0;
  failed |= ap_sqlite_column_copy(statement, 1, &object->name);
  failed |= ap_sqlite_column_copy(statement, 2, &object->object_key);
  failed |= ap_sqlite_column_copy(statement, 3, &object->content_type);
  object->size_bytes = sqlite3_column_int64(statement, 4);
  return failed ? -1 : 0;
}

/* Loads the rendition and waveform rows of `asset`. */
static ap_status_t load_objects(sqlite3 *db, ap_asset_t *asset,
                                ap_error_t *error) {
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "SELECT kind, name, object_key, content_type, size_bytes FROM "
      "asset_objects WHERE asset_id = ? ORDER BY kind, name",
      &statement, "reading asset objects", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, asset->id);

  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    const char *kind = (const char *)sqlite3_column_text(statement, 0);
    int failed = 0;
    if (kind && strcmp(kind, "rendition") == 0) {
      failed =
          append_object(&asset->renditions, &asset->rendition_count, statement);
    } else {
      failed =
          append_object(&asset->waveforms, &asset->waveform_count, statement);
    }
    if (failed) {
      ap_sqlite_finish(statement);
      return AP_NO_MEMORY(error);
    }
  }
  if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "reading asset objects");
  }
  ap_sqlite_finish(statement);
  return status;
}

static ap_status_t asset_not_found(ap_error_t *error, const char *id) {
  return ap_error_set(error, AP_DOMAIN_META, AP_ERR_NOT_FOUND,
                      "asset %s not found", id);
}

ap_status_t ap_sqlite_load_asset(sqlite3 *db, const char *owner, const char *id,
                                 ap_asset_t **out, ap_error_t *error) {
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(db,
                                         "SELECT " ASSET_COLUMNS
                                         " FROM assets WHERE id = ?1 AND "
                                         "(?2 IS NULL OR owner = ?2)",
                                         &statement, "reading asset", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, id);
  ap_sqlite_bind_text(statement, 2, owner);

  ap_asset_t *asset = NULL;
  int rc = sqlite3_step(statement);
  if (rc == SQLITE_ROW) {
    status = read_asset_row(statement, &asset, error);
  } else if (rc == SQLITE_DONE) {
    status = asset_not_found(error, id);
  } else {
    status = ap_sqlite_error(error, db, rc, "reading asset");
  }
  ap_sqlite_finish(statement);

  if (status == AP_OK) {
    status = load_objects(db, asset, error);
  }
  if (status != AP_OK) {
    ap_asset_free(asset);
    return status;
  }
  *out = asset;
  return AP_OK;
}

ap_status_t ap_sqlite_asset_get(void *state, const char *owner, const char *id,
                                ap_asset_t **out, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_load_asset(db, owner, id, out, error);
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_asset_list(void *state, const char *owner,
                                 int64_t after_created_at_ms,
                                 const char *after_id, int limit,
                                 ap_asset_t ***out, size_t *count,
                                 ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  ap_asset_t **assets = calloc((size_t)limit, sizeof *assets);
  if (!assets) {
    return AP_NO_MEMORY(error);
  }
  size_t found = 0;

  /* The row-value comparison walks assets_owner_created in order. */
  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "SELECT " ASSET_COLUMNS " FROM assets WHERE owner = ?1 AND "
      "(?3 IS NULL OR (created_at, id) < (?2, ?3)) "
      "ORDER BY created_at DESC, id DESC LIMIT ?4",
      &statement, "listing assets", error);
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, owner);
    sqlite3_bind_int64(statement, 2, after_created_at_ms);
    ap_sqlite_bind_text(statement, 3, after_id);
    sqlite3_bind_int(statement, 4, limit);
    int rc;
    while (status == AP_OK && (rc = sqlite3_step(statement)) == SQLITE_ROW) {
      status = read_asset_row(statement, &assets[found], error);
      if (status == AP_OK) {
        found++;
      }
    }
    if (status == AP_OK && rc != SQLITE_DONE) {
      status = ap_sqlite_error(error, db, rc, "listing assets");
    }
    ap_sqlite_finish(statement);
  }
  for (size_t i = 0; status == AP_OK && i < found; i++) {
    status = load_objects(db, assets[i], error);
  }
  ap_sqlite_release(store, db);

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

/* Runs a one-row UPDATE or DELETE with bound text parameters and reports
 * AP_ERR_NOT_FOUND when it changed nothing. */
static ap_status_t change_asset(sqlite3 *db, sqlite3_stmt *statement,
                                const char *id, const char *what,
                                ap_error_t *error) {
  int rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) {
    return ap_sqlite_error(error, db, rc, what);
  }
  if (sqlite3_changes(db) == 0) {
    return asset_not_found(error, id);
  }
  return AP_OK;
}

ap_status_t ap_sqlite_asset_delete(void *state, const char *owner,
                                   const char *id, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_begin(store, db, error);
  sqlite3_stmt *statement = NULL;

  if (status == AP_OK) {
    status = ap_sqlite_prepare(
        db,
        "UPDATE jobs SET state = ?3, lease_token = NULL, updated_at = ?2 "
        "WHERE asset_id = ?1 AND state IN (?4, ?5)",
        &statement, "cancelling the asset's jobs", error);
  }
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, id);
    sqlite3_bind_int64(statement, 2, ap_time_now_ms());
    sqlite3_bind_int(statement, 3, AP_JOB_CANCELLED);
    sqlite3_bind_int(statement, 4, AP_JOB_QUEUED);
    sqlite3_bind_int(statement, 5, AP_JOB_RUNNING);
    int rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE) {
      status = ap_sqlite_error(error, db, rc, "cancelling the asset's jobs");
    }
    ap_sqlite_finish(statement);
  }

  if (status == AP_OK) {
    status = ap_sqlite_prepare(
        db, "DELETE FROM assets WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)",
        &statement, "deleting asset", error);
  }
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, id);
    ap_sqlite_bind_text(statement, 2, owner);
    status = change_asset(db, statement, id, "deleting asset", error);
    ap_sqlite_finish(statement);
  }

  if (status == AP_OK) {
    status = ap_sqlite_commit(store, db, error);
  }
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_asset_set_status(void *state, const char *id,
                                       int status_value, int error_code,
                                       const char *error_message,
                                       int64_t now_ms, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "UPDATE assets SET status = ?2, error_code = ?3, error_message = ?4, "
      "updated_at = ?5 WHERE id = ?1",
      &statement, "updating asset status", error);
  if (status == AP_OK) {
    int failed = status_value == AP_ASSET_FAILED;
    ap_sqlite_bind_text(statement, 1, id);
    sqlite3_bind_int(statement, 2, status_value);
    sqlite3_bind_int(statement, 3, failed ? error_code : 0);
    ap_sqlite_bind_text(statement, 4, failed ? error_message : NULL);
    sqlite3_bind_int64(statement, 5, now_ms);
    status = change_asset(db, statement, id, "updating asset status", error);
    ap_sqlite_finish(statement);
  }
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_asset_set_analysis(void *state, const char *id,
                                         const char *analysis_json,
                                         int64_t now_ms, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db, "UPDATE assets SET analysis_json = ?2, updated_at = ?3 WHERE id = ?1",
      &statement, "storing asset analysis", error);
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, id);
    ap_sqlite_bind_text(statement, 2, analysis_json);
    sqlite3_bind_int64(statement, 3, now_ms);
    status = change_asset(db, statement, id, "storing asset analysis", error);
    ap_sqlite_finish(statement);
  }
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_asset_put_object(void *state, const char *asset_id,
                                       const char *kind,
                                       const ap_asset_object_t *object,
                                       int64_t now_ms, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_begin(store, db, error);
  sqlite3_stmt *statement = NULL;

  /* Touching the asset first turns a deleted asset into NOT_FOUND rather
   * than a foreign key failure. */
  if (status == AP_OK) {
    status =
        ap_sqlite_prepare(db, "UPDATE assets SET updated_at = ?2 WHERE id = ?1",
                          &statement, "recording asset object", error);
  }
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, asset_id);
    sqlite3_bind_int64(statement, 2, now_ms);
    status =
        change_asset(db, statement, asset_id, "recording asset object", error);
    ap_sqlite_finish(statement);
  }

  if (status == AP_OK) {
    status = ap_sqlite_prepare(
        db,
        "INSERT OR REPLACE INTO asset_objects (asset_id, kind, name, "
        "object_key, content_type, size_bytes) VALUES (?, ?, ?, ?, ?, ?)",
        &statement, "recording asset object", error);
  }
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, asset_id);
    ap_sqlite_bind_text(statement, 2, kind);
    ap_sqlite_bind_text(statement, 3, object->name);
    ap_sqlite_bind_text(statement, 4, object->object_key);
    ap_sqlite_bind_text(statement, 5, object->content_type);
    sqlite3_bind_int64(statement, 6, object->size_bytes);
    int rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE) {
      status = ap_sqlite_error(error, db, rc, "recording asset object");
    }
    ap_sqlite_finish(statement);
  }

  if (status == AP_OK) {
    status = ap_sqlite_commit(store, db, error);
  }
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_insert_asset(sqlite3 *db, const ap_asset_t *asset,
                                   ap_error_t *error) {
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "INSERT INTO assets (" ASSET_COLUMNS
      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      &statement, "creating asset", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, asset->id);
  ap_sqlite_bind_text(statement, 2, asset->owner);
  ap_sqlite_bind_text(statement, 3, asset->object_key);
  sqlite3_bind_int(statement, 4, asset->status);
  ap_sqlite_bind_text(statement, 5, asset->filename);
  ap_sqlite_bind_text(statement, 6, asset->content_type);
  sqlite3_bind_int64(statement, 7, asset->size_bytes);
  ap_sqlite_bind_text(statement, 8, asset->probe_json);
  ap_sqlite_bind_text(statement, 9, asset->analysis_json);
  sqlite3_bind_int(statement, 10, asset->error_code);
  ap_sqlite_bind_text(statement, 11, asset->error_message);
  ap_sqlite_bind_text(statement, 12, asset->job_id);
  sqlite3_bind_int(statement, 13, AP_SCHEMA_VERSION);
  sqlite3_bind_int64(statement, 14, asset->created_at_ms);
  sqlite3_bind_int64(statement, 15, asset->updated_at_ms);
  int rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "creating asset");
  }
  ap_sqlite_finish(statement);
  return status;
}
