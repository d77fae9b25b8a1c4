/*
 * Token buckets keyed by owner, in a fixed hash table with one lock per
 * stripe so concurrent owners rarely contend. With Redis configured the
 * bucket of each owner lives in Redis instead (ap_redis_rate_limit), so
 * every audiopipe-httpd process shares it; when Redis cannot be reached
 * the local bucket decides, so an outage never fails a request.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <audiopipe/log.h>
#include <audiopipe/meta.h>
#include <audiopipe/redis.h>

#include "rate_limit.h"

#define STRIPES 16

typedef struct bucket {
  char owner[AP_OWNER_MAX_BYTES + 1];
  double tokens;
  int64_t updated_ms;
  struct bucket *next;
} bucket_t;

typedef struct stripe {
  pthread_mutex_t lock;
  bucket_t *buckets;
} stripe_t;

struct httpd_rate_limiter {
  double rate;
  double burst;
  stripe_t stripes[STRIPES];
  /* Set once by httpd_rate_limiter_share; NULL keeps every bucket local. */
  _Atomic(ap_context_t *) shared;
};

httpd_rate_limiter_t *httpd_rate_limiter_new(double rate, double burst) {
  httpd_rate_limiter_t *limiter = calloc(1, sizeof *limiter);
  if (!limiter) {
    return NULL;
  }
  limiter->rate = rate;
  limiter->burst = burst < 1 ? 1 : burst;
  for (size_t i = 0; i < STRIPES; i++) {
    pthread_mutex_init(&limiter->stripes[i].lock, NULL);
  }
  atomic_init(&limiter->shared, NULL);
  return limiter;
}

void httpd_rate_limiter_free(httpd_rate_limiter_t *limiter) {
  if (!limiter) {
    return;
  }
  for (size_t i = 0; i < STRIPES; i++) {
    bucket_t *bucket = limiter->stripes[i].buckets;
    while (bucket) {
      bucket_t *next = bucket->next;
      free(bucket);
      bucket = next;
    }
    pthread_mutex_destroy(&limiter->stripes[i].lock);
  }
  free(limiter);
}

void httpd_rate_limiter_share(httpd_rate_limiter_t *limiter,
                              ap_context_t *context) {
  if (limiter && ap_redis_enabled(context)) {
    atomic_store(&limiter->shared, context);
  }
}

/* Asks Redis; returns 1 when it decided, with the result in `*admitted`. */
static int admit_shared(httpd_rate_limiter_t *limiter, const char *owner,
                        int *admitted, unsigned *retry_after_s) {
  ap_context_t *context = atomic_load(&limiter->shared);
  if (!context) {
    return 0;
  }
  int64_t retry_after_ms = 0;
  ap_error_t error = {0};
  if (ap_redis_rate_limit(context, owner, limiter->rate, limiter->burst,
                          admitted, &retry_after_ms, &error) != AP_OK) {
    /* audiopipe_redis_rate_limit_fallbacks_total counts these; the log's
     * repeat limit keeps an outage from flooding it. */
    ap_log_write(AP_LOG_WARN, "rate_limit_fallback", NULL, NULL,
                 (ap_log_field_t[]){AP_LOG_STRING("error", error.message)}, 1,
                 "deciding the request with this process's bucket");
    return 0;
  }
  if (!*admitted) {
    *retry_after_s = (unsigned)((retry_after_ms + 999) / 1000);
    if (*retry_after_s == 0) {
      *retry_after_s = 1;
    }
  }
  return 1;
}

int httpd_rate_limiter_admit(httpd_rate_limiter_t *limiter, const char *owner,
                             int64_t now_ms, unsigned *retry_after_s) {
  *retry_after_s = 0;
  if (!limiter || limiter->rate <= 0 || !owner) {
    return 1;
  }
  int shared_admitted = 1;
  if (admit_shared(limiter, owner, &shared_admitted, retry_after_s)) {
    return shared_admitted;
  }
  uint64_t hash = 1469598103934665603ull;
  for (const char *c = owner; *c; c++) {
    hash = (hash ^ (unsigned char)*c) * 1099511628211ull;
  }
  stripe_t *stripe = &limiter->stripes[hash % STRIPES];

  pthread_mutex_lock(&stripe->lock);
  bucket_t *bucket = stripe->buckets;
  while (bucket && strcmp(bucket->owner, owner) != 0) {
    bucket = bucket->next;
  }
  if (!bucket) {
    /* Owners come from the keys file, so the table is bounded by it. */
    bucket = calloc(1, sizeof *bucket);
    if (!bucket) {
      pthread_mutex_unlock(&stripe->lock);
      return 1;
    }
    strncpy(bucket->owner, owner, sizeof bucket->owner - 1);
    bucket->tokens = limiter->burst;
    bucket->updated_ms = now_ms;
    bucket->next = stripe->buckets;
    stripe->buckets = bucket;
  }

  double elapsed_s = (double)(now_ms - bucket->updated_ms) / 1000.0;
  if (elapsed_s > 0) {
    bucket->tokens =
        fmin(limiter->burst, bucket->tokens + elapsed_s * limiter->rate);
    bucket->updated_ms = now_ms;
  }
  int admitted = bucket->tokens >= 1.0;
  if (admitted) {
    bucket->tokens -= 1.0;
  } else {
    double wait_s = (1.0 - bucket->tokens) / limiter->rate;
    *retry_after_s = (unsigned)ceil(wait_s);
    if (*retry_after_s == 0) {
      *retry_after_s = 1;
    }
  }
  pthread_mutex_unlock(&stripe->lock);
  return admitted;
}
