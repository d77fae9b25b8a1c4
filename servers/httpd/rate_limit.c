/*
 * Token buckets keyed by owner, in a fixed hash table with one lock per
 * stripe so concurrent owners rarely contend.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <audiopipe/meta.h>

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

int httpd_rate_limiter_admit(httpd_rate_limiter_t *limiter, const char *owner,
                             int64_t now_ms, unsigned *retry_after_s) {
  *retry_after_s = 0;
  if (!limiter || limiter->rate <= 0 || !owner) {
    return 1;
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
