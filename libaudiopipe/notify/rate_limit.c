/*
 * The shared rate limit: a token bucket per key in a Redis hash, updated
 * by one Lua script so that concurrent checks from many processes are
 * atomic. The script reads the clock with TIME on the Redis server, so
 * the processes' clocks need not agree.
 *
 * The script is loaded once with SCRIPT LOAD and run with EVALSHA; after
 * a NOSCRIPT reply (Redis restarted or SCRIPT FLUSH) it is loaded again.
 */
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include <audiopipe/redis.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "notify/notify_internal.h"

/*
 * KEYS[1] the bucket; ARGV[1] rate in tokens per second, ARGV[2] burst.
 * The hash keeps "tokens" (a decimal string, so fractions survive) and
 * "at" (server time in microseconds). The key expires once a full bucket
 * would be refilled, so idle keys cost no memory.
 * Returns {admitted (1 or 0), wait in ms until one token is available}.
 */
static const char script[] =
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local clock = redis.call('TIME')\n"
    "local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])\n"
    "local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')\n"
    "local tokens = tonumber(state[1])\n"
    "local at = tonumber(state[2])\n"
    "if tokens == nil or at == nil then\n"
    "  tokens = burst\n"
    "  at = now\n"
    "end\n"
    "if now > at then\n"
    "  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)\n"
    "  at = now\n"
    "end\n"
    "local admitted = 0\n"
    "local wait = 0\n"
    "if tokens >= 1 then\n"
    "  tokens = tokens - 1\n"
    "  admitted = 1\n"
    "else\n"
    "  wait = math.ceil((1 - tokens) * 1000 / rate)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),\n"
    "           'at', string.format('%d', at))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)\n"
    "return {admitted, wait}\n";

/* Loads the script; the caller holds rate_lock. Returns 1 on success. */
static int load_script(ap_notifier_t *notifier) {
  const char *argv[] = {"SCRIPT", "LOAD", script};
  redisReply *reply =
      ap_redis_connection_command(&notifier->rate, 3, argv, NULL);
  int loaded = reply && reply->type == REDIS_REPLY_STRING && reply->str &&
               reply->len == 40;
  if (loaded) {
    memcpy(notifier->script_sha, reply->str, 40);
    notifier->script_sha[40] = '\0';
  }
  if (reply) {
    freeReplyObject(reply);
  }
  return loaded;
}

/* Runs the script; returns the reply or NULL. The caller holds
 * rate_lock. */
static redisReply *run_script(ap_notifier_t *notifier, const char *key,
                              const char *rate, const char *burst) {
  for (int attempt = 0; attempt < 2; attempt++) {
    if (notifier->script_sha[0] == '\0' && !load_script(notifier)) {
      return NULL;
    }
    const char *argv[] = {"EVALSHA", notifier->script_sha, "1", key, rate,
                          burst};
    redisReply *reply =
        ap_redis_connection_command(&notifier->rate, 6, argv, NULL);
    if (reply && reply->type == REDIS_REPLY_ERROR && reply->str &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
      freeReplyObject(reply);
      notifier->script_sha[0] = '\0';
      continue;
    }
    return reply;
  }
  return NULL;
}

ap_status_t ap_redis_rate_limit(ap_context_t *context, const char *key,
                                double rate, double burst, int *admitted,
                                int64_t *retry_after_ms, ap_error_t *error) {
  if (!context || !key || key[0] == '\0' || !admitted || !retry_after_ms ||
      !(rate >= 1e-3) || !(burst >= 1)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_redis_rate_limit: context, a non-empty key, "
                        "admitted and retry_after_ms are required, with "
                        "rate > 0 and burst >= 1");
  }
  *admitted = 1;
  *retry_after_ms = 0;
  ap_notifier_t *notifier = ap_context_notifier(context);
  if (!notifier) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_UNSUPPORTED,
                        "ap_redis_rate_limit: redis.uri is not set");
  }

  char bucket[512];
  snprintf(bucket, sizeof bucket, "%s:rate:%s", notifier->settings.prefix, key);
  char rate_text[32];
  char burst_text[32];
  snprintf(rate_text, sizeof rate_text, "%.17g", rate);
  snprintf(burst_text, sizeof burst_text, "%.17g", burst);

  /* NOTE: one connection per context, so concurrent requests of one
   * httpd wait for each other's round trip to Redis. */
  pthread_mutex_lock(&notifier->rate_lock);
  redisReply *reply = run_script(notifier, bucket, rate_text, burst_text);
  int valid = reply && reply->type == REDIS_REPLY_ARRAY &&
              reply->elements == 2 &&
              reply->element[0]->type == REDIS_REPLY_INTEGER &&
              reply->element[1]->type == REDIS_REPLY_INTEGER;
  if (valid) {
    *admitted = reply->element[0]->integer == 1;
    *retry_after_ms = reply->element[1]->integer;
  }
  char reason[256];
  snprintf(reason, sizeof reason, "%s",
           valid ? ""
           : notifier->rate.last_error[0]
               ? notifier->rate.last_error
               : "the rate-limit script returned an unexpected "
                 "reply");
  pthread_mutex_unlock(&notifier->rate_lock);
  if (reply) {
    freeReplyObject(reply);
  }

  if (!valid) {
    ap_metrics_add(notifier->counters.rate_limit_fallbacks, 1);
    /* ap_error_set would send every failed request to the error hook;
     * the fallback counter and the caller's log report the outage. */
    if (error) {
      ap_error_clear(error);
      error->domain = AP_DOMAIN_QUEUE;
      error->code = AP_ERR_UNAVAILABLE;
      snprintf(error->message, sizeof error->message,
               "shared rate limit unavailable: %s", reason);
    }
    return AP_ERR_UNAVAILABLE;
  }
  return AP_OK;
}
