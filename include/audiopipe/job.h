/*
 * Jobs: durable units of background work (processing an asset). The job
 * record is the source of truth; a worker claims a job for a lease, keeps
 * the lease alive with heartbeats, and finishes it with complete or fail.
 * Only the holder of the current lease, identified by the claim token of
 * its attempt, may report on a job, so a job whose first worker was
 * presumed dead is completed once, by the worker that holds it now.
 *
 * States:
 *   queued -> running -> succeeded
 *                     -> queued (retryable failure or lost lease, with
 *                                backoff) -> ... -> dead (attempts used)
 *                     -> failed (non-retryable error, no retry)
 *   queued | running -> cancelled
 *
 * Retries wait for exponential backoff with full jitter: before attempt
 * n + 1 the job sleeps a uniformly random time in
 * [0, min(jobs.retry_max, jobs.retry_base * 2^(n - 1))].
 *
 * Expired leases: ap_job_claim first re-queues the jobs whose lease has
 * expired (the same step as ap_job_reap) inside its transaction, so a
 * killed worker's job is picked up by the next claim even when nothing
 * runs ap_job_reap. The attempt the lost worker used counts; when it was
 * the last one the job becomes dead with the message "worker lost".
 *
 * Thread-safety: every function may be called from any thread with a
 * shared context. An ap_job_t is an immutable snapshot.
 */
#ifndef AUDIOPIPE_JOB_H
#define AUDIOPIPE_JOB_H

#include <audiopipe/common.h>
#include <audiopipe/context.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ap_job_state {
  AP_JOB_QUEUED = 0,
  AP_JOB_RUNNING = 1,
  AP_JOB_SUCCEEDED = 2,
  AP_JOB_FAILED = 3, /* a non-retryable error: retrying cannot help */
  AP_JOB_DEAD = 4,   /* every attempt failed or was lost */
  AP_JOB_CANCELLED = 5
} ap_job_state_t;

/* Returns "queued", "running", "succeeded", "failed", "dead",
 * "cancelled" or "unknown". */
AP_EXPORT const char *ap_job_state_name(ap_job_state_t state);

/* Returns 1 for the states a job never leaves (succeeded, failed, dead,
 * cancelled). */
AP_EXPORT int ap_job_state_is_terminal(ap_job_state_t state);

/* The kind of job ap_upload_complete enqueues for a new asset. */
#define AP_JOB_KIND_PROCESS_ASSET "process_asset"

/* Default of max_attempts when the enqueue options leave it 0. */
#define AP_JOB_DEFAULT_MAX_ATTEMPTS 3

/* Maximum size of a claim token, including the NUL. */
#define AP_JOB_TOKEN_SIZE 33

typedef struct ap_job ap_job_t;

/* Options for ap_job_enqueue. Initialise with ap_job_enqueue_options_init. */
typedef struct ap_job_enqueue_options {
  size_t struct_size;          /* sizeof(ap_job_enqueue_options_t) */
  const char *kind;            /* required: 1..64 bytes, [a-z0-9_] */
  const char *asset_id;        /* may be NULL */
  const char *owner;           /* may be NULL; used by owner checks */
  const char *payload_json;    /* may be NULL; must parse as JSON */
  const char *idempotency_key; /* may be NULL; 1..255 bytes */
  int max_attempts;            /* 0 for AP_JOB_DEFAULT_MAX_ATTEMPTS */
  int64_t delay_ms;            /* run no sooner than now + delay_ms */
} ap_job_enqueue_options_t;

AP_EXPORT void ap_job_enqueue_options_init(ap_job_enqueue_options_t *options);

/*
 * Enqueues a job and stores a snapshot of it in `*out` (may be NULL).
 * When a job with the same idempotency key exists, no job is added and
 * `*out` receives the existing one, whatever its state.
 */
AP_EXPORT ap_status_t ap_job_enqueue(ap_context_t *context,
                                     const ap_job_enqueue_options_t *options,
                                     ap_job_t **out, ap_error_t *error);

/*
 * Claims the oldest queued job that is due, of one of the `kind_count`
 * kinds in `kinds` (any kind when `kind_count` is 0), in one
 * BEGIN IMMEDIATE transaction: it becomes running, leased to `worker_id`
 * until now + lease_ms, with its attempt count incremented and a new claim
 * token (ap_job_claim_token). Stores the job in `*out`, or NULL when no
 * job is due (still AP_OK). Exactly one caller wins each job, across
 * threads and processes sharing the database.
 */
AP_EXPORT ap_status_t ap_job_claim(ap_context_t *context, const char *worker_id,
                                   int64_t lease_ms, const char *const *kinds,
                                   size_t kind_count, ap_job_t **out,
                                   ap_error_t *error);

/*
 * Extends the lease of a running job to now + lease_ms. AP_ERR_LEASE_LOST
 * when `token` is not the current claim token (the lease expired and the
 * job was re-queued, claimed by another worker, or cancelled): the caller
 * must then stop working on the job and discard its output. A lease that
 * expired but has not been reaped yet can still be renewed, because no
 * other worker holds it.
 */
AP_EXPORT ap_status_t ap_job_heartbeat(ap_context_t *context,
                                       const char *job_id, const char *token,
                                       int64_t lease_ms, ap_error_t *error);

/* Records progress (fraction clamped to 0..1, stage up to 63 bytes).
 * AP_ERR_LEASE_LOST as for ap_job_heartbeat. */
AP_EXPORT ap_status_t ap_job_progress(ap_context_t *context, const char *job_id,
                                      const char *token, double fraction,
                                      const char *stage, ap_error_t *error);

/* Marks the job succeeded with `result_json` (may be NULL). Only the
 * current lease holder may; others get AP_ERR_LEASE_LOST. */
AP_EXPORT ap_status_t ap_job_complete(ap_context_t *context, const char *job_id,
                                      const char *token,
                                      const char *result_json,
                                      ap_error_t *error);

/*
 * Reports a failed attempt with an ap_error_code_t and message. When
 * `retryable` is non-zero, ap_error_is_retryable(error_code) returns 1 and
 * attempts remain, the job is queued again after the backoff. When the
 * attempts are used up it becomes dead with this error. Otherwise it
 * becomes failed at once. AP_ERR_LEASE_LOST as for ap_job_complete.
 */
AP_EXPORT ap_status_t ap_job_fail(ap_context_t *context, const char *job_id,
                                  const char *token, int error_code,
                                  const char *message, int retryable,
                                  ap_error_t *error);

/*
 * Cancels a queued or running job (a running job's worker learns it from
 * AP_ERR_LEASE_LOST at its next heartbeat). AP_ERR_JOB_STATE when the job
 * has already finished. `owner` as for ap_job_get.
 */
AP_EXPORT ap_status_t ap_job_cancel(ap_context_t *context, const char *owner,
                                    const char *job_id, ap_error_t *error);

/*
 * Re-queues (or marks dead) every running job whose lease expired before
 * `now_ms` (0 for the current time) and stores how many in `*count` (may
 * be NULL).
 */
AP_EXPORT ap_status_t ap_job_reap(ap_context_t *context, int64_t now_ms,
                                  int64_t *count, ap_error_t *error);

/*
 * Reads a job. AP_ERR_NOT_FOUND when it does not exist or its owner is not
 * `owner`; `owner` NULL skips the check (trusted callers only).
 */
AP_EXPORT ap_status_t ap_job_get(ap_context_t *context, const char *owner,
                                 const char *job_id, ap_job_t **out,
                                 ap_error_t *error);

AP_EXPORT void ap_job_free(ap_job_t *job);

/* Getters. Strings belong to the job; NULL when unset. */
AP_EXPORT const char *ap_job_id(const ap_job_t *job);
AP_EXPORT const char *ap_job_kind(const ap_job_t *job);
AP_EXPORT const char *ap_job_asset_id(const ap_job_t *job);
AP_EXPORT const char *ap_job_owner(const ap_job_t *job);
AP_EXPORT ap_job_state_t ap_job_state(const ap_job_t *job);
AP_EXPORT const char *ap_job_payload_json(const ap_job_t *job);
AP_EXPORT const char *ap_job_result_json(const ap_job_t *job);
AP_EXPORT const char *ap_job_idempotency_key(const ap_job_t *job);
AP_EXPORT int ap_job_attempts(const ap_job_t *job);
AP_EXPORT int ap_job_max_attempts(const ap_job_t *job);
/* The last error: an ap_error_code_t (0 when none) and its message. */
AP_EXPORT int ap_job_error_code(const ap_job_t *job);
AP_EXPORT const char *ap_job_error_message(const ap_job_t *job);
AP_EXPORT double ap_job_progress_fraction(const ap_job_t *job);
AP_EXPORT const char *ap_job_stage(const ap_job_t *job);
AP_EXPORT const char *ap_job_lease_owner(const ap_job_t *job);
AP_EXPORT int64_t ap_job_lease_expires_at_ms(const ap_job_t *job);
/* The claim token, only in the snapshot ap_job_claim returns; NULL in
 * snapshots from ap_job_get, so the token never leaves the worker. */
AP_EXPORT const char *ap_job_claim_token(const ap_job_t *job);
AP_EXPORT int64_t ap_job_due_at_ms(const ap_job_t *job);
AP_EXPORT int64_t ap_job_created_at_ms(const ap_job_t *job);
AP_EXPORT int64_t ap_job_updated_at_ms(const ap_job_t *job);

/* Serialises the job (without its claim token) as a JSON object into a
 * new string stored in `*json`; free it with ap_free. */
AP_EXPORT ap_status_t ap_job_to_json(const ap_job_t *job, char **json,
                                     ap_error_t *error);

/* One observed change of a job, for streaming progress to a client. */
typedef struct ap_job_event {
  size_t struct_size; /* sizeof(ap_job_event_t) */
  ap_job_state_t state;
  double fraction; /* 0..1 */
  char stage[64];  /* "" when unset */
  int attempts;
  int error_code; /* ap_error_code_t, 0 when none */
  int64_t updated_at_ms;
} ap_job_event_t;

typedef struct ap_job_watch ap_job_watch_t;

/*
 * Opens a subscription to the changes of one job. With the db queue it
 * polls the job row every jobs.watch_interval. `owner` as for ap_job_get.
 * A watch is used by one thread at a time.
 */
AP_EXPORT ap_status_t ap_job_watch_open(ap_context_t *context,
                                        const char *owner, const char *job_id,
                                        ap_job_watch_t **out,
                                        ap_error_t *error);

/*
 * Waits up to `timeout_ms` for the job's state, fraction or stage to
 * differ from the last event returned (the first call returns the current
 * state at once) and fills `*event`. AP_ERR_TIMED_OUT when nothing changed
 * in time (send a heartbeat and call again), AP_ERR_NOT_FOUND when the job
 * was deleted. After an event in a terminal state, later calls return
 * AP_ERR_JOB_STATE at once.
 */
AP_EXPORT ap_status_t ap_job_watch_next(ap_job_watch_t *watch,
                                        int64_t timeout_ms,
                                        ap_job_event_t *event,
                                        ap_error_t *error);

AP_EXPORT void ap_job_watch_close(ap_job_watch_t *watch);

/* Queue figures for metrics. */
typedef struct ap_job_stats {
  size_t struct_size; /* sizeof(ap_job_stats_t) */
  int64_t queued;     /* jobs in state queued (due or not) */
  int64_t running;
  int64_t dead;
  int64_t failed;
  int64_t oldest_queued_age_ms; /* age of the oldest due queued job; 0 if
                                   none */
} ap_job_stats_t;

AP_EXPORT ap_status_t ap_job_stats(ap_context_t *context, ap_job_stats_t *stats,
                                   ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
