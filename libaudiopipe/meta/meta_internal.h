/*
 * Records of the metadata store and the backend interface behind it.
 * ap_meta_store_t dispatches every operation to a backend (SQLite now,
 * MongoDB later) through ap_meta_backend_t, so the public asset, upload
 * and job calls never depend on one database. With queue.uri = db the job
 * queue lives in the same backend, which is what lets ap_upload_complete
 * create an asset and its job in one transaction.
 */
#ifndef AP_META_META_INTERNAL_H
#define AP_META_META_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <audiopipe/config.h>
#include <audiopipe/job.h>
#include <audiopipe/meta.h>
#include <audiopipe/upload.h>

/* A rendition or waveform object of an asset. */
typedef struct ap_asset_object {
  char *name;
  char *object_key;
  char *content_type; /* NULL for waveforms */
  int64_t size_bytes;
} ap_asset_object_t;

/* Every string is owned by the asset and freed by ap_asset_free. */
struct ap_asset {
  char *id;
  char *owner;
  char *object_key;
  char *filename;
  char *content_type;
  char *job_id;
  char *probe_json;
  char *analysis_json;
  char *error_message;
  int status; /* ap_asset_status_t */
  int error_code;
  int schema_version;
  int64_t size_bytes;
  int64_t created_at_ms;
  int64_t updated_at_ms;
  ap_asset_object_t *renditions;
  size_t rendition_count;
  ap_asset_object_t *waveforms;
  size_t waveform_count;
};

/* Every string is owned by the job and freed by ap_job_free. */
struct ap_job {
  char *id;
  char *kind;
  char *asset_id;
  char *owner;
  char *payload_json;
  char *result_json;
  char *idempotency_key;
  char *error_message;
  char *stage;
  char *lease_owner;
  char *claim_token; /* set only in the snapshot ap_job_claim returns */
  int state;         /* ap_job_state_t */
  int attempts;
  int max_attempts;
  int error_code;
  double progress;
  int64_t lease_expires_at_ms;
  int64_t due_at_ms;
  int64_t created_at_ms;
  int64_t updated_at_ms;
};

/* One row of the uploads table. Strings owned; free with
 * ap_upload_record_clear. */
typedef struct ap_upload_record {
  char *id;
  char *owner;
  char *object_key;
  char *filename;
  char *content_type;
  char *asset_id; /* set once completed */
  int64_t size_bytes;
  int state;          /* ap_upload_state_t */
  int rejection_code; /* ap_error_code_t of a rejected upload */
  int64_t expires_at_ms;
  int64_t created_at_ms;
  int64_t updated_at_ms;
  /* Schema version 4: how the client sends the bytes. */
  int method;              /* ap_upload_method_t; 0 (put) on older rows */
  char *storage_upload_id; /* the store's multipart upload id, else NULL */
  int64_t part_size_bytes; /* multipart part size, else 0 */
} ap_upload_record_t;

void ap_upload_record_clear(ap_upload_record_t *record);

/* Settings the store needs from the configuration, read once at open. */
typedef struct ap_meta_settings {
  int64_t retry_base_ms;
  int64_t retry_max_ms;
} ap_meta_settings_t;

/* Receives the outcome of an asynchronous write: `error` is NULL when
 * `status` is AP_OK. */
typedef void (*ap_meta_done_t)(void *argument, ap_status_t status,
                               const ap_error_t *error);

/*
 * The operations a metadata backend provides. `state` is the backend's own
 * data. Owner arguments may be NULL to skip the owner check; a row of
 * another owner is reported exactly like a missing row (AP_ERR_NOT_FOUND).
 * Time arguments are Unix milliseconds.
 */
typedef struct ap_meta_backend {
  const char *name; /* "sqlite" */
  void (*close)(void *state);
  /* Optional: finishes every queued asynchronous write, running its
   * `done`, and makes later writes fail. The store stays readable. */
  void (*drain)(void *state);
  ap_status_t (*ping)(void *state, ap_error_t *error);
  /* Applies migrations up to `target_version` (AP_SCHEMA_VERSION in
   * production, lower in tests) and stores the resulting version. */
  ap_status_t (*migrate)(void *state, int target_version, int *version,
                         ap_error_t *error);
  ap_status_t (*schema_version)(void *state, int *version, ap_error_t *error);

  /* Assets. */
  ap_status_t (*asset_get)(void *state, const char *owner, const char *id,
                           ap_asset_t **out, ap_error_t *error);
  /* Lists up to `limit` assets of `owner` ordered by (created_at, id)
   * descending, strictly after the position (`after_created_at_ms`,
   * `after_id`) when `after_id` is not NULL. */
  ap_status_t (*asset_list)(void *state, const char *owner,
                            int64_t after_created_at_ms, const char *after_id,
                            int limit, ap_asset_t ***out, size_t *count,
                            ap_error_t *error);
  /* Cancels the asset's unfinished jobs and deletes its record and object
   * rows in one transaction. */
  ap_status_t (*asset_delete)(void *state, const char *owner, const char *id,
                              ap_error_t *error);
  ap_status_t (*asset_set_status)(void *state, const char *id, int status,
                                  int error_code, const char *error_message,
                                  int64_t now_ms, ap_error_t *error);
  ap_status_t (*asset_set_analysis)(void *state, const char *id,
                                    const char *analysis_json, int64_t now_ms,
                                    ap_error_t *error);
  /* `kind` is "rendition" or "waveform". */
  ap_status_t (*asset_put_object)(void *state, const char *asset_id,
                                  const char *kind,
                                  const ap_asset_object_t *object,
                                  int64_t now_ms, ap_error_t *error);

  /* Uploads. */
  ap_status_t (*upload_insert)(void *state, const ap_upload_record_t *upload,
                               ap_error_t *error);
  /*
   * Optional (NULL when the backend has no asynchronous writes): queues
   * the insert of `upload`, which must stay valid until `done` runs, and
   * returns AP_OK. The backend's commit thread then calls `done` once with
   * `argument` and the insert's status and error (NULL on success). Fails
   * without calling `done` when the store is closing or out of memory.
   */
  ap_status_t (*upload_insert_async)(void *state,
                                     const ap_upload_record_t *upload,
                                     ap_meta_done_t done, void *argument,
                                     ap_error_t *error);
  ap_status_t (*upload_get)(void *state, const char *owner, const char *id,
                            ap_upload_record_t *out, ap_error_t *error);
  /* Moves a pending upload to `to_state`; AP_ERR_UPLOAD_STATE when it is
   * no longer pending. */
  ap_status_t (*upload_finish_pending)(void *state, const char *id,
                                       int to_state, int rejection_code,
                                       int64_t now_ms, ap_error_t *error);
  /*
   * In one transaction: inserts `asset`, inserts the job described by
   * `job` with the asset's id, and marks the upload completed. When the
   * upload is already completed, returns its asset and changes nothing.
   * Any failure rolls everything back.
   */
  ap_status_t (*upload_accept)(void *state, const char *upload_id,
                               const ap_asset_t *asset,
                               const ap_job_enqueue_options_t *job,
                               int64_t now_ms, ap_asset_t **out,
                               ap_error_t *error);
  /* Pending uploads whose expiry is before `now_ms`, at most `limit`. */
  ap_status_t (*upload_list_expired)(void *state, int64_t now_ms, int limit,
                                     ap_upload_record_t **out, size_t *count,
                                     ap_error_t *error);

  /* Jobs (the db queue). Semantics as documented in <audiopipe/job.h>. */
  ap_status_t (*job_enqueue)(void *state,
                             const ap_job_enqueue_options_t *options,
                             int64_t now_ms, ap_job_t **out, ap_error_t *error);
  ap_status_t (*job_claim)(void *state, const char *worker_id, int64_t lease_ms,
                           const char *const *kinds, size_t kind_count,
                           int64_t now_ms, ap_job_t **out, ap_error_t *error);
  ap_status_t (*job_heartbeat)(void *state, const char *id, const char *token,
                               int64_t lease_ms, int64_t now_ms,
                               ap_error_t *error);
  ap_status_t (*job_progress)(void *state, const char *id, const char *token,
                              double fraction, const char *stage,
                              int64_t now_ms, ap_error_t *error);
  ap_status_t (*job_complete)(void *state, const char *id, const char *token,
                              const char *result_json, int64_t now_ms,
                              ap_error_t *error);
  ap_status_t (*job_fail)(void *state, const char *id, const char *token,
                          int error_code, const char *message, int retryable,
                          int64_t now_ms, ap_error_t *error);
  ap_status_t (*job_cancel)(void *state, const char *owner, const char *id,
                            int64_t now_ms, ap_error_t *error);
  ap_status_t (*job_reap)(void *state, int64_t now_ms, int64_t *count,
                          ap_error_t *error);
  ap_status_t (*job_get)(void *state, const char *owner, const char *id,
                         ap_job_t **out, ap_error_t *error);
  ap_status_t (*job_stats)(void *state, int64_t now_ms, ap_job_stats_t *stats,
                           ap_error_t *error);
} ap_meta_backend_t;

struct ap_meta_store {
  const ap_meta_backend_t *backend;
  void *state;
};
typedef struct ap_meta_store ap_meta_store_t;

/*
 * Opens the store named by `uri` (metadata.uri) with the other
 * metadata.* keys of `config`. Does not migrate.
 */
ap_status_t ap_meta_store_open(const char *uri, const ap_config_t *config,
                               const ap_meta_settings_t *settings,
                               ap_meta_store_t **out, ap_error_t *error);

void ap_meta_store_close(ap_meta_store_t *store);

/* Runs the backend's drain, if it has one (see ap_meta_backend_t). */
void ap_meta_store_drain(ap_meta_store_t *store);

/* Current time in Unix milliseconds (CLOCK_REALTIME). */
int64_t ap_time_now_ms(void);

/* Fills `buffer` with `size` random bytes from getrandom(2). */
ap_status_t ap_random_bytes(void *buffer, size_t size, ap_error_t *error);

/* Allocates an empty asset or job; NULL when out of memory. */
ap_asset_t *ap_asset_alloc(void);
ap_job_t *ap_job_alloc(void);

/* Copies `text` (NULL stays NULL) into `*out`; -1 when out of memory. */
int ap_meta_strdup(const char *text, char **out);

/*
 * Retry delay before the attempt after attempt number `attempts` (1 for
 * the first), with full jitter: uniform in [0, min(max_ms, base_ms *
 * 2^(attempts - 1))]. `random_unit` is a uniform number in [0, 1).
 */
int64_t ap_job_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms,
                          double random_unit);

/* A uniform number in [0, 1) from getrandom(2); 0.5 if it fails. */
double ap_random_unit(void);

#endif
