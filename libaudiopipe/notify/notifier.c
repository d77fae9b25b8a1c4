/*
 * The notifier of a context: the redis.* settings, the counters, the
 * publisher connection, and the health report behind ap_redis_check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include <audiopipe/log.h>
#include <audiopipe/redis.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "notify/notify_internal.h"

/* The longest redis.key_prefix, so every channel and key fits in 256
 * bytes with a job id or an owner appended. */
#define MAX_PREFIX_BYTES 100

static ap_status_t read_duration(const ap_config_t *config, const char *key,
                                 int64_t minimum, int64_t maximum,
                                 int64_t *value, ap_error_t *error) {
  ap_status_t status = ap_config_get_int64(config, key, value, error);
  if (status == AP_OK && (*value < minimum || *value > maximum)) {
    status =
        ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                     "%s = %lld ms is out of range: use %lld to %lld ms", key,
                     (long long)*value, (long long)minimum, (long long)maximum);
  }
  return status;
}

/* A prefix must not contain what PSUBSCRIBE treats as a pattern, nor
 * spaces, which make keys hard to inspect with redis-cli. */
static int is_valid_prefix(const char *prefix) {
  size_t length = strlen(prefix);
  if (length < 1 || length > MAX_PREFIX_BYTES) {
    return 0;
  }
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)prefix[i];
    if (c <= ' ' || c >= 0x7f || strchr("*?[]\\", c)) {
      return 0;
    }
  }
  return 1;
}

ap_status_t ap_redis_settings_read(const ap_config_t *config,
                                   ap_redis_settings_t *settings, int *enabled,
                                   ap_error_t *error) {
  memset(settings, 0, sizeof *settings);
  *enabled = 0;
  const char *uri = ap_config_get(config, "redis.uri");
  if (!uri || uri[0] == '\0') {
    return AP_OK;
  }
  ap_status_t status = ap_redis_uri_parse(uri, &settings->uri, error);
  if (status != AP_OK) {
    return status;
  }

  const char *prefix = ap_config_get(config, "redis.key_prefix");
  if (!prefix || !is_valid_prefix(prefix)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "redis.key_prefix = \"%s\": use 1 to %d printable "
                        "characters without spaces or *?[]\\, such as "
                        "audiopipe-staging",
                        prefix ? prefix : "", MAX_PREFIX_BYTES);
  }
  snprintf(settings->prefix, sizeof settings->prefix, "%s", prefix);

  status = read_duration(config, "redis.connect_timeout", 1, 60000,
                         &settings->connect_timeout_ms, error);
  if (status == AP_OK) {
    status = read_duration(config, "redis.command_timeout", 1, 60000,
                           &settings->command_timeout_ms, error);
  }
  if (status == AP_OK) {
    status = read_duration(config, "redis.reconnect_min", 1, 600000,
                           &settings->backoff_min_ms, error);
  }
  if (status == AP_OK) {
    status =
        read_duration(config, "redis.reconnect_max", settings->backoff_min_ms,
                      600000, &settings->backoff_max_ms, error);
  }
  if (status == AP_OK) {
    *enabled = 1;
  }
  return status;
}

/* Registers the counters in the process-wide registry. Every context
 * adds to the same series; a failure leaves that counter NULL. */
static void register_counters(ap_redis_counters_t *counters) {
  ap_metrics_t *registry = ap_metrics_default();
  ap_metric_t *metric = NULL;
  if (ap_metrics_counter(registry, "audiopipe_redis_publishes_total",
                         "Messages published to Redis (wake-ups and job "
                         "events).",
                         NULL, 0, &metric, NULL) == AP_OK) {
    counters->publishes = ap_metrics_series(metric, NULL);
  }
  if (ap_metrics_counter(registry, "audiopipe_redis_publish_failures_total",
                         "Publishes that failed because Redis was "
                         "unreachable; consumers fall back to polling.",
                         NULL, 0, &metric, NULL) == AP_OK) {
    counters->publish_failures = ap_metrics_series(metric, NULL);
  }
  if (ap_metrics_counter(registry, "audiopipe_redis_reconnects_total",
                         "Connection attempts to Redis after a failed "
                         "connect or a lost connection.",
                         NULL, 0, &metric, NULL) == AP_OK) {
    counters->reconnects = ap_metrics_series(metric, NULL);
  }
  if (ap_metrics_counter(registry, "audiopipe_redis_rate_limit_fallbacks_total",
                         "Rate-limit checks that could not reach Redis and "
                         "used the local limit instead.",
                         NULL, 0, &metric, NULL) == AP_OK) {
    counters->rate_limit_fallbacks = ap_metrics_series(metric, NULL);
  }
  if (ap_metrics_gauge(registry, "audiopipe_redis_up",
                       "1 when the last command on the Redis publisher "
                       "connection succeeded, else 0.",
                       NULL, 0, &metric, NULL) == AP_OK) {
    counters->up = ap_metrics_series(metric, NULL);
  }
}

ap_status_t ap_notifier_open(const ap_config_t *config, ap_notifier_t **out,
                             ap_error_t *error) {
  *out = NULL;
  ap_redis_settings_t settings;
  int enabled = 0;
  ap_status_t status =
      ap_redis_settings_read(config, &settings, &enabled, error);
  if (status != AP_OK || !enabled) {
    return status;
  }
  ap_notifier_t *notifier = calloc(1, sizeof *notifier);
  if (!notifier) {
    return AP_NO_MEMORY(error);
  }
  notifier->settings = settings;
  register_counters(&notifier->counters);
  pthread_mutex_init(&notifier->publisher_lock, NULL);
  pthread_mutex_init(&notifier->rate_lock, NULL);
  pthread_mutex_init(&notifier->hub_lock, NULL);
  ap_redis_connection_init(&notifier->publisher, &notifier->settings,
                           &notifier->counters);
  ap_redis_connection_init(&notifier->rate, &notifier->settings,
                           &notifier->counters);
  atomic_init(&notifier->subscribers_connected, 0);

  /* A first PING reports an unreachable Redis or a bad password in the
   * log at start-up; the context opens either way. */
  ap_redis_health_t health = {.struct_size = sizeof health};
  pthread_mutex_lock(&notifier->publisher_lock);
  const char *argv[] = {"PING"};
  redisReply *reply =
      ap_redis_connection_command(&notifier->publisher, 1, argv, NULL);
  int answered = reply && reply->type == REDIS_REPLY_STATUS;
  if (reply) {
    freeReplyObject(reply);
  }
  snprintf(health.error, sizeof health.error, "%s",
           notifier->publisher.last_error);
  notifier->outage_logged = !answered;
  pthread_mutex_unlock(&notifier->publisher_lock);
  ap_metrics_set(notifier->counters.up, answered ? 1 : 0);
  if (!answered) {
    ap_log_write(AP_LOG_WARN, "redis_unavailable", NULL, NULL,
                 (ap_log_field_t[]){AP_LOG_STRING("error", health.error)}, 1,
                 "Redis did not answer at start-up: workers and job watches "
                 "poll the metadata store until it does");
  }
  *out = notifier;
  return AP_OK;
}

void ap_notifier_close(ap_notifier_t *notifier) {
  if (!notifier) {
    return;
  }
  ap_notify_hub_free(notifier->hub);
  ap_redis_connection_close(&notifier->publisher);
  ap_redis_connection_close(&notifier->rate);
  pthread_mutex_destroy(&notifier->publisher_lock);
  pthread_mutex_destroy(&notifier->rate_lock);
  pthread_mutex_destroy(&notifier->hub_lock);
  free(notifier);
}

const ap_redis_settings_t *ap_notifier_settings(const ap_notifier_t *notifier) {
  return &notifier->settings;
}

const ap_redis_counters_t *ap_notifier_counters(const ap_notifier_t *notifier) {
  return &notifier->counters;
}

void ap_notifier_subscriber_connected(ap_notifier_t *notifier, int delta) {
  atomic_fetch_add(&notifier->subscribers_connected, delta);
}

/* Logs the start and the end of an outage once each; the caller holds
 * the publisher lock. */
static void note_outcome(ap_notifier_t *notifier, int succeeded) {
  if (succeeded && notifier->outage_logged) {
    notifier->outage_logged = 0;
    ap_log_write(AP_LOG_INFO, "redis_recovered", NULL, NULL, NULL, 0,
                 "Redis answers again: wake-ups and job events resume");
  } else if (!succeeded && !notifier->outage_logged) {
    notifier->outage_logged = 1;
    ap_log_write(AP_LOG_WARN, "redis_unavailable", NULL, NULL,
                 (ap_log_field_t[]){
                     AP_LOG_STRING("error", notifier->publisher.last_error)},
                 1,
                 "publishing to Redis failed: workers and job watches poll the "
                 "metadata store until it answers again");
  }
  ap_metrics_set(notifier->counters.up, succeeded ? 1 : 0);
}

int ap_notifier_publish(ap_notifier_t *notifier, const char *suffix,
                        const char *message) {
  if (!notifier) {
    return 0;
  }
  char channel[512];
  snprintf(channel, sizeof channel, "%s:%s", notifier->settings.prefix, suffix);
  const char *argv[] = {"PUBLISH", channel, message};

  pthread_mutex_lock(&notifier->publisher_lock);
  redisReply *reply =
      ap_redis_connection_command(&notifier->publisher, 3, argv, NULL);
  int succeeded = reply && reply->type == REDIS_REPLY_INTEGER;
  if (reply && !succeeded) {
    /* An error reply (a read-only replica, an ACL without PUBLISH) does
     * not drop the connection but is a failure all the same. */
    snprintf(notifier->publisher.last_error,
             sizeof notifier->publisher.last_error, "Redis PUBLISH returned %s",
             reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str
                                                            : "no integer");
  }
  if (reply) {
    freeReplyObject(reply);
  }
  note_outcome(notifier, succeeded);
  pthread_mutex_unlock(&notifier->publisher_lock);

  ap_metrics_add(succeeded ? notifier->counters.publishes
                           : notifier->counters.publish_failures,
                 1);
  return succeeded;
}

int ap_redis_enabled(const ap_context_t *context) {
  return context && ap_context_notifier((ap_context_t *)context) != NULL;
}

ap_status_t ap_redis_check(ap_context_t *context, ap_redis_health_t *health,
                           ap_error_t *error) {
  if (!context || !health || health->struct_size < sizeof *health) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_redis_check: context and an initialised health "
                        "(struct_size = sizeof(ap_redis_health_t)) are "
                        "required");
  }
  memset(health, 0, sizeof *health);
  health->struct_size = sizeof *health;
  ap_notifier_t *notifier = ap_context_notifier(context);
  if (!notifier) {
    return AP_OK;
  }
  health->enabled = 1;
  health->subscribers_connected = atomic_load(&notifier->subscribers_connected);

  pthread_mutex_lock(&notifier->publisher_lock);
  const char *argv[] = {"PING"};
  redisReply *reply =
      ap_redis_connection_command(&notifier->publisher, 1, argv, NULL);
  health->connected = reply && reply->type == REDIS_REPLY_STATUS;
  if (reply) {
    freeReplyObject(reply);
  }
  if (!health->connected && notifier->publisher.last_error[0] == '\0') {
    snprintf(notifier->publisher.last_error,
             sizeof notifier->publisher.last_error,
             "Redis PING returned an unexpected reply");
  }
  snprintf(health->error, sizeof health->error, "%s",
           health->connected ? "" : notifier->publisher.last_error);
  note_outcome(notifier, health->connected);
  pthread_mutex_unlock(&notifier->publisher_lock);

  if (!health->connected) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_UNAVAILABLE,
                        "Redis (redis.uri) is unavailable: %s; workers and "
                        "job watches poll the metadata store meanwhile",
                        health->error);
  }
  return AP_OK;
}
