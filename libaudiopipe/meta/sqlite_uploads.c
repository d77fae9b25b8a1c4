/* Upload rows of the SQLite metadata backend, and the transaction that
 * turns a validated upload into an asset and its processing job. */
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "meta/sqlite_internal.h"

#define UPLOAD_COLUMNS                                                         \
  "id, owner, object_key, filename, content_type, size_bytes, state, "         \
  "rejection_code, asset_id, expires_at, created_at, updated_at, method, "     \
  "storage_upload_id, part_size"

void ap_upload_record_clear(ap_upload_record_t *record) {
  if (!record) {
    return;
  }
  free(record->id);
  free(record->owner);
  free(record->object_key);
  free(record->filename);
  free(record->content_type);
  free(record->asset_id);
  free(record->storage_upload_id);
  memset(record, 0, sizeof *record);
}

static ap_status_t read_upload_row(sqlite3_stmt *statement,
                                   ap_upload_record_t *record,
                                   ap_error_t *error) {
  memset(record, 0, sizeof *record);
  int failed = 0;
  failed |= ap_sqlite_column_copy(statement, 0, &record->id);
  failed |= ap_sqlite_column_copy(statement, 1, &record->owner);
  failed |= ap_sqlite_column_copy(statement, 2, &record->object_key);
  failed |= ap_sqlite_column_copy(statement, 3, &record->filename);
  failed |= ap_sqlite_column_copy(statement, 4, &record->content_type);
  record->size_bytes = sqlite3_column_int64(statement, 5);
  record->state = sqlite3_column_int(statement, 6);
  record->rejection_code = sqlite3_column_int(statement, 7);
  failed |= ap_sqlite_column_copy(statement, 8, &record->asset_id);
  record->expires_at_ms = sqlite3_column_int64(statement, 9);
  record->created_at_ms = sqlite3_column_int64(statement, 10);
  record->updated_at_ms = sqlite3_column_int64(statement, 11);
  record->method = sqlite3_column_int(statement, 12);
  failed |= ap_sqlite_column_copy(statement, 13, &record->storage_upload_id);
  record->part_size_bytes = sqlite3_column_int64(statement, 14);
  if (failed) {
    ap_upload_record_clear(record);
    return AP_NO_MEMORY(error);
  }
  return AP_OK;
}

/* Inserts the upload row `argument` points to; a group-commit write. */
static ap_status_t insert_upload(sqlite3 *db, void *argument,
                                 ap_error_t *error) {
  const ap_upload_record_t *upload = argument;
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "INSERT INTO uploads (" UPLOAD_COLUMNS
      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      &statement, "recording upload", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, upload->id);
  ap_sqlite_bind_text(statement, 2, upload->owner);
  ap_sqlite_bind_text(statement, 3, upload->object_key);
  ap_sqlite_bind_text(statement, 4, upload->filename);
  ap_sqlite_bind_text(statement, 5, upload->content_type);
  sqlite3_bind_int64(statement, 6, upload->size_bytes);
  sqlite3_bind_int(statement, 7, upload->state);
  sqlite3_bind_int(statement, 8, upload->rejection_code);
  ap_sqlite_bind_text(statement, 9, upload->asset_id);
  sqlite3_bind_int64(statement, 10, upload->expires_at_ms);
  sqlite3_bind_int64(statement, 11, upload->created_at_ms);
  sqlite3_bind_int64(statement, 12, upload->updated_at_ms);
  sqlite3_bind_int(statement, 13, upload->method);
  ap_sqlite_bind_text(statement, 14, upload->storage_upload_id);
  sqlite3_bind_int64(statement, 15, upload->part_size_bytes);
  int rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "recording upload");
  }
  ap_sqlite_finish(statement);
  return status;
}

ap_status_t ap_sqlite_upload_insert(void *state,
                                    const ap_upload_record_t *upload,
                                    ap_error_t *error) {
  /* Upload creation is the busiest write of the HTTP API, so concurrent
   * creations share one commit.
   * NOTE: each insert still dirties a random leaf of the id primary key,
   * since ids are 128 random bits. So a shared commit writes about one
   * WAL frame per row, and keying rows by time would need a longer id. */
  return ap_sqlite_write_grouped(state, insert_upload, (void *)upload, error);
}

/* A queued asynchronous insert and where its outcome goes. */
typedef struct {
  ap_sqlite_write_request_t request;
  ap_meta_done_t done;
  void *argument;
} async_insert_t;

static void finish_async_insert(ap_sqlite_write_request_t *request) {
  async_insert_t *insert = (async_insert_t *)request;
  ap_meta_done_t done = insert->done;
  void *argument = insert->argument;
  ap_status_t status = request->status;
  ap_error_t error = request->error;
  free(insert);
  done(argument, status, status == AP_OK ? NULL : &error);
}

ap_status_t ap_sqlite_upload_insert_async(void *state,
                                          const ap_upload_record_t *upload,
                                          ap_meta_done_t done, void *argument,
                                          ap_error_t *error) {
  async_insert_t *insert = calloc(1, sizeof *insert);
  if (!insert) {
    return AP_NO_MEMORY(error);
  }
  insert->request.write = insert_upload;
  insert->request.argument = (void *)upload;
  insert->request.finish = finish_async_insert;
  insert->done = done;
  insert->argument = argument;
  ap_status_t status =
      ap_sqlite_write_grouped_async(state, &insert->request, error);
  if (status != AP_OK) {
    free(insert);
  }
  return status;
}

/* Reads one upload in the caller's connection. */
static ap_status_t load_upload(sqlite3 *db, const char *owner, const char *id,
                               ap_upload_record_t *out, ap_error_t *error) {
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(db,
                                         "SELECT " UPLOAD_COLUMNS
                                         " FROM uploads WHERE id = ?1 AND "
                                         "(?2 IS NULL OR owner = ?2)",
                                         &statement, "reading upload", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, id);
  ap_sqlite_bind_text(statement, 2, owner);
  int rc = sqlite3_step(statement);
  if (rc == SQLITE_ROW) {
    status = read_upload_row(statement, out, error);
  } else if (rc == SQLITE_DONE) {
    status = ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_NOT_FOUND,
                          "upload %s not found", id);
  } else {
    status = ap_sqlite_error(error, db, rc, "reading upload");
  }
  ap_sqlite_finish(statement);
  return status;
}

ap_status_t ap_sqlite_upload_get(void *state, const char *owner, const char *id,
                                 ap_upload_record_t *out, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = load_upload(db, owner, id, out, error);
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_upload_finish_pending(void *state, const char *id,
                                            int to_state, int rejection_code,
                                            int64_t now_ms, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "UPDATE uploads SET state = ?2, rejection_code = ?3, updated_at = ?4 "
      "WHERE id = ?1 AND state = ?5",
      &statement, "updating upload state", error);
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, id);
    sqlite3_bind_int(statement, 2, to_state);
    sqlite3_bind_int(statement, 3, rejection_code);
    sqlite3_bind_int64(statement, 4, now_ms);
    sqlite3_bind_int(statement, 5, AP_UPLOAD_PENDING);
    int rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE) {
      status = ap_sqlite_error(error, db, rc, "updating upload state");
    } else if (sqlite3_changes(db) == 0) {
      status = ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_STATE,
                            "upload %s is no longer pending", id);
    }
    ap_sqlite_finish(statement);
  }
  ap_sqlite_release(store, db);
  return status;
}

/* Marks the upload completed with its asset, in the caller's transaction. */
static ap_status_t mark_completed(sqlite3 *db, const char *upload_id,
                                  const char *asset_id, int64_t now_ms,
                                  ap_error_t *error) {
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "UPDATE uploads SET state = ?2, asset_id = ?3, updated_at = ?4 "
      "WHERE id = ?1",
      &statement, "completing upload", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, upload_id);
  sqlite3_bind_int(statement, 2, AP_UPLOAD_COMPLETED);
  ap_sqlite_bind_text(statement, 3, asset_id);
  sqlite3_bind_int64(statement, 4, now_ms);
  int rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "completing upload");
  }
  ap_sqlite_finish(statement);
  return status;
}

/* Creates the asset and its job for a pending upload, in the caller's
 * transaction. */
static ap_status_t create_asset_and_job(sqlite3 *db, const char *upload_id,
                                        const ap_asset_t *asset,
                                        const ap_job_enqueue_options_t *job,
                                        int64_t now_ms, ap_error_t *error) {
  /* The asset row names its job, so the job's id is chosen first. Both
   * rows and the upload's new state commit together or not at all. */
  char job_id[AP_ID_SIZE];
  ap_status_t status = ap_id_generate(job_id, error);
  if (status != AP_OK) {
    return status;
  }
  ap_asset_t row = *asset;
  row.job_id = job_id;
  status = ap_sqlite_insert_asset(db, &row, error);
  if (status != AP_OK) {
    ap_error_prefix(error, "upload %s", upload_id);
    return status;
  }

  status = ap_sqlite_insert_job(db, job, now_ms, job_id, error);
  if (status != AP_OK) {
    ap_error_prefix(error, "upload %s: creating the processing job", upload_id);
    return status;
  }
  return mark_completed(db, upload_id, asset->id, now_ms, error);
}

ap_status_t ap_sqlite_upload_accept(void *state, const char *upload_id,
                                    const ap_asset_t *asset,
                                    const ap_job_enqueue_options_t *job,
                                    int64_t now_ms, ap_asset_t **out,
                                    ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_begin(store, db, error);

  /* Re-read the upload under the write lock: a concurrent completion of
   * the same upload may have committed since the caller last looked. */
  ap_upload_record_t upload;
  memset(&upload, 0, sizeof upload);
  if (status == AP_OK) {
    status = load_upload(db, NULL, upload_id, &upload, error);
  }
  const char *asset_id = asset->id;
  if (status == AP_OK) {
    if (upload.state == AP_UPLOAD_COMPLETED && upload.asset_id) {
      asset_id = upload.asset_id;
    } else if (upload.state != AP_UPLOAD_PENDING) {
      status = ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_STATE,
                            "upload %s is %s and cannot be completed",
                            upload_id, ap_upload_state_name(upload.state));
    } else {
      status = create_asset_and_job(db, upload_id, asset, job, now_ms, error);
    }
  }

  ap_asset_t *stored = NULL;
  if (status == AP_OK) {
    status = ap_sqlite_load_asset(db, NULL, asset_id, &stored, error);
  }
  if (status == AP_OK) {
    status = ap_sqlite_commit(store, db, error);
  } else {
    ap_sqlite_rollback(store, db);
  }
  ap_sqlite_release(store, db);
  ap_upload_record_clear(&upload);

  if (status != AP_OK) {
    ap_asset_free(stored);
    return status;
  }
  *out = stored;
  return AP_OK;
}

ap_status_t ap_sqlite_upload_list_expired(void *state, int64_t now_ms,
                                          int limit, ap_upload_record_t **out,
                                          size_t *count, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  ap_upload_record_t *records = calloc((size_t)limit, sizeof *records);
  if (!records) {
    return AP_NO_MEMORY(error);
  }
  size_t found = 0;

  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "SELECT " UPLOAD_COLUMNS " FROM uploads WHERE state = ?1 AND "
      "expires_at < ?2 ORDER BY expires_at LIMIT ?3",
      &statement, "listing expired uploads", error);
  if (status == AP_OK) {
    sqlite3_bind_int(statement, 1, AP_UPLOAD_PENDING);
    sqlite3_bind_int64(statement, 2, now_ms);
    sqlite3_bind_int(statement, 3, limit);
    int rc;
    while (status == AP_OK && (rc = sqlite3_step(statement)) == SQLITE_ROW) {
      status = read_upload_row(statement, &records[found], error);
      if (status == AP_OK) {
        found++;
      }
    }
    if (status == AP_OK && rc != SQLITE_DONE) {
      status = ap_sqlite_error(error, db, rc, "listing expired uploads");
    }
    ap_sqlite_finish(statement);
  }
  ap_sqlite_release(store, db);

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
