/*
 * The db job queue: jobs as rows of the SQLite metadata store. Every state
 * change is one UPDATE guarded by the state (and, for a worker's reports,
 * the claim token) it expects, so a report from a worker that lost its
 * lease changes nothing and fails with AP_ERR_LEASE_LOST.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "meta/sqlite_internal.h"

/* Most kinds one claim may filter on. */
#define MAX_CLAIM_KINDS 16

/* Message stored on a job whose worker stopped renewing its lease. */
#define WORKER_LOST_MESSAGE "worker lost"

ap_status_t ap_sqlite_read_job(sqlite3_stmt *statement, ap_job_t **out,
                               ap_error_t *error) {
  ap_job_t *job = ap_job_alloc();
  if (!job) {
    return AP_NO_MEMORY(error);
  }
  int failed = 0;
  failed |= ap_sqlite_column_copy(statement, 0, &job->id);
  failed |= ap_sqlite_column_copy(statement, 1, &job->kind);
  failed |= ap_sqlite_column_copy(statement, 2, &job->asset_id);
  failed |= ap_sqlite_column_copy(statement, 3, &job->owner);
  job->state = sqlite3_column_int(statement, 4);
  failed |= ap_sqlite_column_copy(statement, 5, &job->payload_json);
  failed |= ap_sqlite_column_copy(statement, 6, &job->result_json);
  failed |= ap_sqlite_column_copy(statement, 7, &job->idempotency_key);
  job->attempts = sqlite3_column_int(statement, 8);
  job->max_attempts = sqlite3_column_int(statement, 9);
  job->error_code = sqlite3_column_int(statement, 10);
  failed |= ap_sqlite_column_copy(statement, 11, &job->error_message);
  job->progress = sqlite3_column_double(statement, 12);
  failed |= ap_sqlite_column_copy(statement, 13, &job->stage);
  failed |= ap_sqlite_column_copy(statement, 14, &job->lease_owner);
  job->lease_expires_at_ms = sqlite3_column_int64(statement, 15);
  job->due_at_ms = sqlite3_column_int64(statement, 16);
  job->created_at_ms = sqlite3_column_int64(statement, 17);
  job->updated_at_ms = sqlite3_column_int64(statement, 18);
  if (failed) {
    ap_job_free(job);
    return AP_NO_MEMORY(error);
  }
  *out = job;
  return AP_OK;
}

static ap_status_t job_not_found(ap_error_t *error, const char *id) {
  return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_NOT_FOUND,
                      "job %s not found", id);
}

ap_status_t ap_sqlite_load_job(sqlite3 *db, const char *owner, const char *id,
                               ap_job_t **out, ap_error_t *error) {
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(db,
                                         "SELECT " AP_SQLITE_JOB_COLUMNS
                                         " FROM jobs WHERE id = ?1 AND "
                                         "(?2 IS NULL OR owner = ?2)",
                                         &statement, "reading job", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, id);
  ap_sqlite_bind_text(statement, 2, owner);
  int rc = sqlite3_step(statement);
  if (rc == SQLITE_ROW) {
    status = ap_sqlite_read_job(statement, out, error);
  } else if (rc == SQLITE_DONE) {
    status = job_not_found(error, id);
  } else {
    status = ap_sqlite_error(error, db, rc, "reading job");
  }
  ap_sqlite_finish(statement);
  return status;
}

ap_status_t ap_sqlite_insert_job(sqlite3 *db,
                                 const ap_job_enqueue_options_t *options,
                                 int64_t now_ms, char *id, ap_error_t *error) {
  ap_status_t status = AP_OK;
  if (id[0] == '\0') {
    status = ap_id_generate(id, error);
  }
  if (status != AP_OK) {
    return status;
  }
  sqlite3_stmt *statement = NULL;
  status = ap_sqlite_prepare(
      db,
      "INSERT INTO jobs (id, kind, asset_id, owner, state, payload_json, "
      "idempotency_key, max_attempts, due_at, created_at, updated_at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
      &statement, "enqueueing job", error);
  if (status != AP_OK) {
    return status;
  }
  int max_attempts = options->max_attempts > 0 ? options->max_attempts
                                               : AP_JOB_DEFAULT_MAX_ATTEMPTS;
  ap_sqlite_bind_text(statement, 1, id);
  ap_sqlite_bind_text(statement, 2, options->kind);
  ap_sqlite_bind_text(statement, 3, options->asset_id);
  ap_sqlite_bind_text(statement, 4, options->owner);
  sqlite3_bind_int(statement, 5, AP_JOB_QUEUED);
  ap_sqlite_bind_text(statement, 6, options->payload_json);
  ap_sqlite_bind_text(statement, 7, options->idempotency_key);
  sqlite3_bind_int(statement, 8, max_attempts);
  sqlite3_bind_int64(statement, 9, now_ms + options->delay_ms);
  sqlite3_bind_int64(statement, 10, now_ms);
  int rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "enqueueing job");
  }
  ap_sqlite_finish(statement);
  return status;
}

/* Finds the job with `key`; `*id` is left empty when there is none. */
static ap_status_t find_by_idempotency_key(sqlite3 *db, const char *key,
                                           char *id, ap_error_t *error) {
  id[0] = '\0';
  sqlite3_stmt *statement = NULL;
  ap_status_t status =
      ap_sqlite_prepare(db, "SELECT id FROM jobs WHERE idempotency_key = ?",
                        &statement, "reading job by idempotency key", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, key);
  int rc = sqlite3_step(statement);
  if (rc == SQLITE_ROW) {
    snprintf(id, AP_ID_SIZE, "%s",
             (const char *)sqlite3_column_text(statement, 0));
  } else if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "reading job by idempotency key");
  }
  ap_sqlite_finish(statement);
  return status;
}

ap_status_t ap_sqlite_job_enqueue(void *state,
                                  const ap_job_enqueue_options_t *options,
                                  int64_t now_ms, ap_job_t **out,
                                  ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_begin(store, db, error);

  char id[AP_ID_SIZE] = "";
  if (status == AP_OK && options->idempotency_key) {
    status = find_by_idempotency_key(db, options->idempotency_key, id, error);
  }
  if (status == AP_OK && id[0] == '\0') {
    status = ap_sqlite_insert_job(db, options, now_ms, id, error);
  }
  ap_job_t *job = NULL;
  if (status == AP_OK) {
    status = ap_sqlite_load_job(db, NULL, id, &job, error);
  }
  if (status == AP_OK) {
    status = ap_sqlite_commit(store, db, error);
  }
  ap_sqlite_release(store, db);

  if (status != AP_OK) {
    ap_job_free(job);
    return status;
  }
  *out = job;
  return AP_OK;
}

/*
 * Re-queues or kills the running jobs whose lease expired before `now_ms`,
 * in the caller's transaction. The attempt was counted when it was
 * claimed, so a job whose last attempt was lost becomes dead.
 */
static ap_status_t reap_in_transaction(ap_sqlite_store_t *store, sqlite3 *db,
                                       int64_t now_ms, int64_t *count,
                                       ap_error_t *error) {
  *count = 0;
  sqlite3_stmt *select = NULL;
  sqlite3_stmt *update = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "SELECT id, attempts, max_attempts FROM jobs INDEXED BY "
      "jobs_state_lease WHERE state = 1 AND lease_expires_at < ?1",
      &select, "finding expired leases", error);
  if (status == AP_OK) {
    status = ap_sqlite_prepare(
        db,
        "UPDATE jobs SET state = ?2, due_at = ?3, error_code = ?4, "
        "error_message = ?5, lease_owner = NULL, lease_token = NULL, "
        "lease_expires_at = 0, updated_at = ?6 WHERE id = ?1",
        &update, "re-queueing expired leases", error);
  }
  if (status != AP_OK) {
    ap_sqlite_finish(select);
    return status;
  }

  /* The literal 1 in the SELECT is AP_JOB_RUNNING, which lets SQLite
   * use the partial index jobs_state_lease (migration 3). INDEXED BY,
   * because without ANALYZE statistics SQLite 3.40 prefers the equality
   * on jobs_state_due and walks every running job. */
  sqlite3_bind_int64(select, 1, now_ms);
  int rc;
  while (status == AP_OK && (rc = sqlite3_step(select)) == SQLITE_ROW) {
    int attempts = sqlite3_column_int(select, 1);
    int max_attempts = sqlite3_column_int(select, 2);
    int exhausted = attempts >= max_attempts;
    int64_t delay =
        ap_job_backoff_ms(attempts, store->settings.retry_base_ms,
                          store->settings.retry_max_ms, ap_random_unit());

    sqlite3_bind_value(update, 1, sqlite3_column_value(select, 0));
    sqlite3_bind_int(update, 2, exhausted ? AP_JOB_DEAD : AP_JOB_QUEUED);
    sqlite3_bind_int64(update, 3, exhausted ? now_ms : now_ms + delay);
    sqlite3_bind_int(update, 4, AP_ERR_TIMED_OUT);
    ap_sqlite_bind_text(update, 5, WORKER_LOST_MESSAGE);
    sqlite3_bind_int64(update, 6, now_ms);
    int update_rc = sqlite3_step(update);
    if (update_rc != SQLITE_DONE) {
      status =
          ap_sqlite_error(error, db, update_rc, "re-queueing expired leases");
    }
    sqlite3_reset(update);
    (*count)++;
  }
  if (status == AP_OK && rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "finding expired leases");
  }
  ap_sqlite_finish(select);
  ap_sqlite_finish(update);
  return status;
}

/* Builds the claim's SELECT for `kind_count` kinds. */
static void build_claim_query(char *sql, size_t size, size_t kind_count) {
  int length = snprintf(sql, size,
                        "SELECT id FROM jobs WHERE state = ?1 AND "
                        "due_at <= ?2");
  if (kind_count > 0) {
    length += snprintf(sql + length, size - (size_t)length, " AND kind IN (");
    for (size_t i = 0; i < kind_count; i++) {
      length += snprintf(sql + length, size - (size_t)length, "%s?%zu",
                         i ? ", " : "", i + 3);
    }
    length += snprintf(sql + length, size - (size_t)length, ")");
  }
  snprintf(sql + length, size - (size_t)length,
           " ORDER BY due_at, created_at, id LIMIT 1");
}

/* Picks the oldest due job and leases it, in the caller's transaction.
 * Leaves `id` empty when no job is due. */
static ap_status_t lease_next(sqlite3 *db, const char *worker_id,
                              int64_t lease_ms, const char *const *kinds,
                              size_t kind_count, int64_t now_ms, char *id,
                              const char *token, ap_error_t *error) {
  id[0] = '\0';
  char sql[512];
  build_claim_query(sql, sizeof sql, kind_count);
  sqlite3_stmt *statement = NULL;
  ap_status_t status =
      ap_sqlite_prepare(db, sql, &statement, "claiming a job", error);
  if (status != AP_OK) {
    return status;
  }
  sqlite3_bind_int(statement, 1, AP_JOB_QUEUED);
  sqlite3_bind_int64(statement, 2, now_ms);
  for (size_t i = 0; i < kind_count; i++) {
    ap_sqlite_bind_text(statement, (int)i + 3, kinds[i]);
  }
  int rc = sqlite3_step(statement);
  if (rc == SQLITE_ROW) {
    snprintf(id, AP_ID_SIZE, "%s",
             (const char *)sqlite3_column_text(statement, 0));
  } else if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "claiming a job");
  }
  ap_sqlite_finish(statement);
  if (status != AP_OK || id[0] == '\0') {
    return status;
  }

  status = ap_sqlite_prepare(
      db,
      "UPDATE jobs SET state = ?2, lease_owner = ?3, lease_token = ?4, "
      "lease_expires_at = ?5, attempts = attempts + 1, updated_at = ?6 "
      "WHERE id = ?1",
      &statement, "claiming a job", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, id);
  sqlite3_bind_int(statement, 2, AP_JOB_RUNNING);
  ap_sqlite_bind_text(statement, 3, worker_id);
  ap_sqlite_bind_text(statement, 4, token);
  sqlite3_bind_int64(statement, 5, now_ms + lease_ms);
  sqlite3_bind_int64(statement, 6, now_ms);
  rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "claiming a job");
  }
  ap_sqlite_finish(statement);
  return status;
}

/* Writes 32 random hexadecimal digits and a NUL into `token`. */
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

ap_status_t ap_sqlite_job_claim(void *state, const char *worker_id,
                                int64_t lease_ms, const char *const *kinds,
                                size_t kind_count, int64_t now_ms,
                                ap_job_t **out, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
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

  sqlite3 *db = ap_sqlite_acquire(store);
  status = ap_sqlite_begin(store, db, error);
  int64_t reaped = 0;
  if (status == AP_OK) {
    status = reap_in_transaction(store, db, now_ms, &reaped, error);
  }
  char id[AP_ID_SIZE] = "";
  if (status == AP_OK) {
    status = lease_next(db, worker_id, lease_ms, kinds, kind_count, now_ms, id,
                        token, error);
  }
  ap_job_t *job = NULL;
  if (status == AP_OK && id[0] != '\0') {
    status = ap_sqlite_load_job(db, NULL, id, &job, error);
  }
  if (status == AP_OK) {
    status = ap_sqlite_commit(store, db, error);
  }
  ap_sqlite_release(store, db);

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
 * Explains why a guarded UPDATE on a job changed nothing: the job is gone
 * (AP_ERR_NOT_FOUND) or the caller's token is no longer the lease's
 * (AP_ERR_LEASE_LOST).
 */
static ap_status_t explain_lease_miss(sqlite3 *db, const char *id,
                                      ap_error_t *error) {
  ap_job_t *job = NULL;
  ap_status_t status = ap_sqlite_load_job(db, NULL, id, &job, error);
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

/* Runs a token-guarded UPDATE prepared by the caller. */
static ap_status_t run_guarded(sqlite3 *db, sqlite3_stmt *statement,
                               const char *id, const char *what,
                               ap_error_t *error) {
  int rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) {
    return ap_sqlite_error(error, db, rc, what);
  }
  if (sqlite3_changes(db) == 0) {
    return explain_lease_miss(db, id, error);
  }
  return AP_OK;
}

/*
 * Runs a guarded UPDATE in its own BEGIN IMMEDIATE transaction. In
 * autocommit mode the UPDATE would start as a reader and upgrade to a
 * writer, and in WAL mode that upgrade fails at once with SQLITE_BUSY
 * (no busy handler) when another connection committed since its read
 * began, so concurrent reports failed spuriously.
 */
static ap_status_t run_guarded_transaction(ap_sqlite_store_t *store,
                                           sqlite3 *db, sqlite3_stmt *statement,
                                           const char *id, const char *what,
                                           ap_error_t *error) {
  ap_status_t status = ap_sqlite_begin(store, db, error);
  if (status == AP_OK) {
    status = run_guarded(db, statement, id, what, error);
  }
  if (status == AP_OK) {
    status = ap_sqlite_commit(store, db, error);
  } else {
    ap_sqlite_rollback(store, db);
  }
  return status;
}

ap_status_t ap_sqlite_job_heartbeat(void *state, const char *id,
                                    const char *token, int64_t lease_ms,
                                    int64_t now_ms, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "UPDATE jobs SET lease_expires_at = ?3, updated_at = ?4 WHERE id = ?1 "
      "AND lease_token = ?2 AND state = ?5",
      &statement, "renewing job lease", error);
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, id);
    ap_sqlite_bind_text(statement, 2, token);
    sqlite3_bind_int64(statement, 3, now_ms + lease_ms);
    sqlite3_bind_int64(statement, 4, now_ms);
    sqlite3_bind_int(statement, 5, AP_JOB_RUNNING);
    status = run_guarded_transaction(store, db, statement, id,
                                     "renewing job lease", error);
    ap_sqlite_finish(statement);
  }
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_job_progress(void *state, const char *id,
                                   const char *token, double fraction,
                                   const char *stage, int64_t now_ms,
                                   ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "UPDATE jobs SET progress = ?3, stage = ?4, updated_at = ?5 WHERE "
      "id = ?1 AND lease_token = ?2 AND state = ?6",
      &statement, "recording job progress", error);
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, id);
    ap_sqlite_bind_text(statement, 2, token);
    sqlite3_bind_double(statement, 3, fraction);
    ap_sqlite_bind_text(statement, 4, stage);
    sqlite3_bind_int64(statement, 5, now_ms);
    sqlite3_bind_int(statement, 6, AP_JOB_RUNNING);
    status = run_guarded_transaction(store, db, statement, id,
                                     "recording job progress", error);
    ap_sqlite_finish(statement);
  }
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_job_complete(void *state, const char *id,
                                   const char *token, const char *result_json,
                                   int64_t now_ms, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "UPDATE jobs SET state = ?3, result_json = ?4, progress = 1, "
      "error_code = 0, error_message = NULL, lease_token = NULL, "
      "lease_expires_at = 0, updated_at = ?5 WHERE id = ?1 AND "
      "lease_token = ?2 AND state = ?6",
      &statement, "completing job", error);
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, id);
    ap_sqlite_bind_text(statement, 2, token);
    sqlite3_bind_int(statement, 3, AP_JOB_SUCCEEDED);
    ap_sqlite_bind_text(statement, 4, result_json);
    sqlite3_bind_int64(statement, 5, now_ms);
    sqlite3_bind_int(statement, 6, AP_JOB_RUNNING);
    status = run_guarded_transaction(store, db, statement, id, "completing job",
                                     error);
    ap_sqlite_finish(statement);
  }
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_job_fail(void *state, const char *id, const char *token,
                               int error_code, const char *message,
                               int retryable, int64_t now_ms,
                               ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_begin(store, db, error);

  /* Read the attempt count under the write lock to choose the next state. */
  ap_job_t *job = NULL;
  if (status == AP_OK) {
    status = ap_sqlite_load_job(db, NULL, id, &job, error);
  }
  sqlite3_stmt *statement = NULL;
  if (status == AP_OK) {
    status = ap_sqlite_prepare(
        db,
        "UPDATE jobs SET state = ?3, due_at = ?4, error_code = ?5, "
        "error_message = ?6, lease_owner = NULL, lease_token = NULL, "
        "lease_expires_at = 0, updated_at = ?7 WHERE id = ?1 AND "
        "lease_token = ?2 AND state = ?8",
        &statement, "failing job", error);
  }
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
    ap_sqlite_bind_text(statement, 1, id);
    ap_sqlite_bind_text(statement, 2, token);
    sqlite3_bind_int(statement, 3, next_state);
    sqlite3_bind_int64(statement, 4, due_at);
    sqlite3_bind_int(statement, 5, error_code);
    ap_sqlite_bind_text(statement, 6, message);
    sqlite3_bind_int64(statement, 7, now_ms);
    sqlite3_bind_int(statement, 8, AP_JOB_RUNNING);
    status = run_guarded(db, statement, id, "failing job", error);
    ap_sqlite_finish(statement);
  }
  if (status == AP_OK) {
    status = ap_sqlite_commit(store, db, error);
  }
  ap_sqlite_release(store, db);
  ap_job_free(job);
  return status;
}

ap_status_t ap_sqlite_job_cancel(void *state, const char *owner, const char *id,
                                 int64_t now_ms, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_begin(store, db, error);
  ap_job_t *job = NULL;
  if (status == AP_OK) {
    status = ap_sqlite_load_job(db, owner, id, &job, error);
  }
  if (status == AP_OK && ap_job_state_is_terminal(job->state)) {
    status = ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_JOB_STATE,
                          "job %s is already %s and cannot be cancelled", id,
                          ap_job_state_name(job->state));
  }
  sqlite3_stmt *statement = NULL;
  if (status == AP_OK) {
    status = ap_sqlite_prepare(
        db,
        "UPDATE jobs SET state = ?2, lease_token = NULL, lease_owner = NULL, "
        "lease_expires_at = 0, updated_at = ?3 WHERE id = ?1",
        &statement, "cancelling job", error);
  }
  if (status == AP_OK) {
    ap_sqlite_bind_text(statement, 1, id);
    sqlite3_bind_int(statement, 2, AP_JOB_CANCELLED);
    sqlite3_bind_int64(statement, 3, now_ms);
    int rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE) {
      status = ap_sqlite_error(error, db, rc, "cancelling job");
    }
    ap_sqlite_finish(statement);
  }
  if (status == AP_OK) {
    status = ap_sqlite_commit(store, db, error);
  }
  ap_sqlite_release(store, db);
  ap_job_free(job);
  return status;
}

ap_status_t ap_sqlite_job_reap(void *state, int64_t now_ms, int64_t *count,
                               ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_begin(store, db, error);
  if (status == AP_OK) {
    status = reap_in_transaction(store, db, now_ms, count, error);
  }
  if (status == AP_OK) {
    status = ap_sqlite_commit(store, db, error);
  }
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_job_get(void *state, const char *owner, const char *id,
                              ap_job_t **out, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  ap_status_t status = ap_sqlite_load_job(db, owner, id, out, error);
  ap_sqlite_release(store, db);
  return status;
}

ap_status_t ap_sqlite_job_stats(void *state, int64_t now_ms,
                                ap_job_stats_t *stats, ap_error_t *error) {
  ap_sqlite_store_t *store = state;
  sqlite3 *db = ap_sqlite_acquire(store);
  sqlite3_stmt *statement = NULL;
  ap_status_t status = ap_sqlite_prepare(
      db,
      "SELECT state, COUNT(*), MIN(CASE WHEN due_at <= ?1 THEN due_at END) "
      "FROM jobs WHERE state IN (?2, ?3, ?4, ?5) GROUP BY state",
      &statement, "reading queue statistics", error);
  if (status == AP_OK) {
    sqlite3_bind_int64(statement, 1, now_ms);
    sqlite3_bind_int(statement, 2, AP_JOB_QUEUED);
    sqlite3_bind_int(statement, 3, AP_JOB_RUNNING);
    sqlite3_bind_int(statement, 4, AP_JOB_DEAD);
    sqlite3_bind_int(statement, 5, AP_JOB_FAILED);
    int rc;
    while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
      int job_state = sqlite3_column_int(statement, 0);
      int64_t count = sqlite3_column_int64(statement, 1);
      if (job_state == AP_JOB_QUEUED) {
        stats->queued = count;
        if (sqlite3_column_type(statement, 2) != SQLITE_NULL) {
          stats->oldest_queued_age_ms =
              now_ms - sqlite3_column_int64(statement, 2);
        }
      } else if (job_state == AP_JOB_RUNNING) {
        stats->running = count;
      } else if (job_state == AP_JOB_DEAD) {
        stats->dead = count;
      } else {
        stats->failed = count;
      }
    }
    if (rc != SQLITE_DONE) {
      status = ap_sqlite_error(error, db, rc, "reading queue statistics");
    }
    ap_sqlite_finish(statement);
  }
  ap_sqlite_release(store, db);
  return status;
}
