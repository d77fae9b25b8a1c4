/*
 * One Redis connection: connect with a timeout, AUTH and SELECT, run
 * commands with a socket timeout, and after any failure wait for an
 * exponential backoff with full jitter before the next connect.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "meta/meta_internal.h"
#include "notify/notify_internal.h"

int64_t ap_redis_monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static struct timeval to_timeval(int64_t milliseconds) {
  struct timeval value = {.tv_sec = (time_t)(milliseconds / 1000),
                          .tv_usec = (suseconds_t)(milliseconds % 1000) * 1000};
  return value;
}

void ap_redis_connection_init(ap_redis_connection_t *connection,
                              const ap_redis_settings_t *settings,
                              const ap_redis_counters_t *counters) {
  memset(connection, 0, sizeof *connection);
  connection->settings = settings;
  connection->counters = counters;
}

void ap_redis_connection_close(ap_redis_connection_t *connection) {
  if (connection->redis) {
    redisFree(connection->redis);
    connection->redis = NULL;
  }
}

void ap_redis_connection_fail(ap_redis_connection_t *connection,
                              const char *reason) {
  ap_redis_connection_close(connection);
  snprintf(connection->last_error, sizeof connection->last_error, "%s", reason);
  if (connection->failures < 30) {
    connection->failures++;
  }
  const ap_redis_settings_t *settings = connection->settings;
  double ceiling =
      (double)ap_job_backoff_ms(connection->failures, settings->backoff_min_ms,
                                settings->backoff_max_ms, 1.0);
  int64_t delay = (int64_t)(ap_random_unit() * ceiling);
  connection->next_attempt_ms = ap_redis_monotonic_ms() + delay;
}

/* Checks the reply of AUTH or SELECT; fills `reason` on failure. */
static int reply_ok(redisContext *redis, redisReply *reply, const char *what,
                    char *reason, size_t size) {
  if (!reply) {
    snprintf(reason, size, "%s failed: %s", what,
             redis->errstr[0] ? redis->errstr : "no reply");
    return 0;
  }
  int ok = reply->type == REDIS_REPLY_STATUS;
  if (!ok) {
    /* Error replies such as WRONGPASS never echo the password. */
    snprintf(reason, size, "%s failed: %s", what,
             reply->type == REDIS_REPLY_ERROR && reply->str
                 ? reply->str
                 : "unexpected reply type");
  }
  freeReplyObject(reply);
  return ok;
}

/* Connects and authenticates; returns NULL with `reason` filled. */
static redisContext *connect_once(const ap_redis_settings_t *settings,
                                  char *reason, size_t size) {
  const ap_redis_uri_t *uri = &settings->uri;
  struct timeval connect_timeout = to_timeval(settings->connect_timeout_ms);
  redisContext *redis =
      uri->is_unix
          ? redisConnectUnixWithTimeout(uri->path, connect_timeout)
          : redisConnectWithTimeout(uri->host, uri->port, connect_timeout);
  if (!redis) {
    snprintf(reason, size, "out of memory connecting to Redis");
    return NULL;
  }
  if (redis->err) {
    if (uri->is_unix) {
      snprintf(reason, size, "connecting to Redis at %.100s failed: %.100s",
               uri->path, redis->errstr);
    } else {
      snprintf(reason, size, "connecting to Redis at %.100s:%d failed: %.100s",
               uri->host, uri->port, redis->errstr);
    }
    redisFree(redis);
    return NULL;
  }
  if (redisSetTimeout(redis, to_timeval(settings->command_timeout_ms)) !=
      REDIS_OK) {
    snprintf(reason, size, "setting the Redis socket timeout failed: %s",
             redis->errstr);
    redisFree(redis);
    return NULL;
  }
  if (!uri->is_unix) {
    /* Keep-alive lets an idle subscriber notice a vanished peer. */
    redisEnableKeepAlive(redis);
  }

  int ok = 1;
  if (uri->password[0] != '\0') {
    redisReply *reply =
        uri->user[0] != '\0'
            ? redisCommand(redis, "AUTH %s %s", uri->user, uri->password)
            : redisCommand(redis, "AUTH %s", uri->password);
    ok = reply_ok(redis, reply, "Redis AUTH (check the password in redis.uri)",
                  reason, size);
  }
  if (ok && uri->database != 0) {
    redisReply *reply = redisCommand(redis, "SELECT %d", uri->database);
    ok = reply_ok(redis, reply,
                  "Redis SELECT (check the database in "
                  "redis.uri)",
                  reason, size);
  }
  if (!ok) {
    redisFree(redis);
    return NULL;
  }
  return redis;
}

struct redisContext *
ap_redis_connection_get(ap_redis_connection_t *connection) {
  if (connection->redis) {
    return connection->redis;
  }
  if (ap_redis_monotonic_ms() < connection->next_attempt_ms) {
    return NULL;
  }
  if (connection->failures > 0) {
    ap_metrics_add(connection->counters->reconnects, 1);
  }
  char reason[sizeof connection->last_error];
  redisContext *redis =
      connect_once(connection->settings, reason, sizeof reason);
  if (!redis) {
    ap_redis_connection_fail(connection, reason);
    return NULL;
  }
  connection->redis = redis;
  return redis;
}

struct redisReply *
ap_redis_connection_command(ap_redis_connection_t *connection, int argc,
                            const char **argv, const size_t *lengths) {
  redisContext *redis = ap_redis_connection_get(connection);
  if (!redis) {
    return NULL;
  }
  redisReply *reply = redisCommandArgv(redis, argc, argv, lengths);
  if (!reply) {
    /* A timeout or I/O error leaves the context unusable. */
    int timed_out =
        redis->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
    char reason[sizeof connection->last_error];
    if (timed_out) {
      snprintf(reason, sizeof reason,
               "Redis %s timed out after %lld ms (redis.command_timeout)",
               argv[0], (long long)connection->settings->command_timeout_ms);
    } else {
      snprintf(reason, sizeof reason, "Redis %s failed: %s", argv[0],
               redis->errstr[0] ? redis->errstr : "no reply");
    }
    ap_redis_connection_fail(connection, reason);
    return NULL;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    snprintf(connection->last_error, sizeof connection->last_error,
             "Redis %s failed: %s", argv[0], reply->str ? reply->str : "");
  } else {
    connection->failures = 0;
    connection->last_error[0] = '\0';
  }
  return reply;
}
