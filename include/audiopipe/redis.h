/*
 * Redis: optional notifications shared by every process of a deployment.
 * With redis.uri set, a committed enqueue publishes a wake-up that idle
 * workers receive at once, job progress and state changes are published
 * for job watches, and audiopipe-httpd's per-key rate limit is kept in
 * Redis so every server process shares it.
 *
 * Redis keeps nothing that would be lost with it: the job records in the
 * metadata store stay the source of truth. When Redis is unreachable, the
 * context still opens, workers and watches poll the records as without Redis,
 * and ap_redis_rate_limit fails so the caller uses a local limit. Every
 * connection reconnects with exponential backoff and full jitter, and
 * every command has a timeout (redis.command_timeout), so an outage costs
 * each caller at most one timeout per backoff delay.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef AUDIOPIPE_REDIS_H
#define AUDIOPIPE_REDIS_H

#include <audiopipe/common.h>
#include <audiopipe/context.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns 1 when redis.uri is set for `context`. */
AP_EXPORT int ap_redis_enabled(const ap_context_t *context);

/* The state of the Redis connections of one context. */
typedef struct ap_redis_health {
  size_t struct_size;        /* sizeof(ap_redis_health_t) */
  int enabled;               /* redis.uri is set */
  int connected;             /* the publisher connection replied to PING */
  int subscribers_connected; /* subscriber threads subscribed right now */
  char error[256];           /* the last connection error, "" if none */
} ap_redis_health_t;

/*
 * Sends PING on the publisher connection (at once, unless a reconnect is
 * waiting for its backoff delay) and fills `*health`. Returns AP_OK when
 * Redis is disabled or replied, AP_ERR_UNAVAILABLE with the connection
 * error otherwise. A readiness probe reports the failure but should not
 * take the server out of service, because everything falls back to
 * polling.
 */
AP_EXPORT ap_status_t ap_redis_check(ap_context_t *context,
                                     ap_redis_health_t *health,
                                     ap_error_t *error);

/*
 * Takes one token from the bucket of `key` (an API key's owner) kept in
 * Redis under "<prefix>:rate:<key>", refilled at `rate` tokens per
 * second up to `burst`, in one Lua script, so every process sharing the
 * Redis shares the bucket. Stores 1 in `*admitted`, or 0 and the wait
 * until a token is available in `*retry_after_ms`.
 *
 * Fails with AP_ERR_UNSUPPORTED when Redis is disabled,
 * AP_ERR_UNAVAILABLE when Redis cannot be reached in time (counted in
 * audiopipe_redis_rate_limit_fallbacks_total: the caller should then
 * apply a local limit), AP_ERR_INVALID_ARGUMENT for a rate or burst
 * below 1 or an empty key.
 */
AP_EXPORT ap_status_t ap_redis_rate_limit(ap_context_t *context,
                                          const char *key, double rate,
                                          double burst, int *admitted,
                                          int64_t *retry_after_ms,
                                          ap_error_t *error);

/* Receives the id of a job that changed, or NULL when events may have
 * been lost (the subscription reconnected) and every job may have
 * changed. Runs on a library thread; it must return quickly and must
 * not call ap_redis_job_listener_close. */
typedef void (*ap_redis_job_listener_fn)(void *user_data, const char *job_id);

typedef struct ap_redis_job_listener ap_redis_job_listener_t;

/*
 * Calls `fn` for every job event published on this context's Redis: a
 * claim, progress, completion, failure or cancellation of any job. The
 * events arrive over the context's one shared subscriber connection. It
 * is meant for a server that multiplexes many streams on one thread and
 * reads the changed jobs' records itself. Nothing is called while the
 * subscriber is disconnected, so the caller must also poll. Fails with
 * AP_ERR_UNSUPPORTED when Redis is disabled.
 */
AP_EXPORT ap_status_t ap_redis_job_listener_open(ap_context_t *context,
                                                 ap_redis_job_listener_fn fn,
                                                 void *user_data,
                                                 ap_redis_job_listener_t **out,
                                                 ap_error_t *error);

/* Unregisters the listener; `fn` is not called after it returns. NULL is
 * allowed. */
AP_EXPORT void ap_redis_job_listener_close(ap_redis_job_listener_t *listener);

#ifdef __cplusplus
}
#endif

#endif
