/*
 * Per-key rate limits: a token bucket for each owner, refilled at
 * http.rate_limit tokens per second up to http.rate_limit_burst, kept in
 * this process or, once shared, in Redis for every process.
 */
#ifndef HTTPD_RATE_LIMIT_H
#define HTTPD_RATE_LIMIT_H

#include <stdint.h>

#include <audiopipe/context.h>

typedef struct httpd_rate_limiter httpd_rate_limiter_t;

/* Creates a limiter; `rate` 0 admits everything. NULL when out of
 * memory. */
httpd_rate_limiter_t *httpd_rate_limiter_new(double rate, double burst);

void httpd_rate_limiter_free(httpd_rate_limiter_t *limiter);

/*
 * Keeps the buckets in the Redis of `context` (redis.uri) from now on, so
 * every process sharing that Redis shares each owner's bucket. Does
 * nothing when the context has no Redis. When a Redis call fails, that
 * request is decided by the local bucket. `context` must outlive the
 * limiter's use. Call it before requests are served.
 */
void httpd_rate_limiter_share(httpd_rate_limiter_t *limiter,
                              ap_context_t *context);

/*
 * Takes one token from `owner`'s bucket at monotonic time `now_ms`.
 * Returns 1 when the request may go on; returns 0 and stores in
 * `retry_after_s` the whole seconds until a token is available.
 * Thread-safe.
 */
int httpd_rate_limiter_admit(httpd_rate_limiter_t *limiter, const char *owner,
                             int64_t now_ms, unsigned *retry_after_s);

#endif
