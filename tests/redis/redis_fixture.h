/*
 * Shared setup of the Redis tests. The metadata fixture's configuration
 * points at the redis-server of the ctest fixture, with a key prefix of
 * its own. Helpers send commands straight to that server (FLUSHALL,
 * SCRIPT FLUSH) and run the script that stops and restarts it.
 */
#ifndef AP_TEST_REDIS_FIXTURE_H
#define AP_TEST_REDIS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <audiopipe/redis.h>

#include "unit/test_meta_fixture.h"

/* How long a test waits for something that Redis makes happen at once:
 * far above any delay on a loaded machine, so only a missing wake-up or
 * event fails it. */
#define REDIS_WAIT_MS 20000

static inline int64_t redis_test_now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static inline void redis_test_sleep_ms(int64_t ms) {
  struct timespec pause = {.tv_sec = (time_t)(ms / 1000),
                           .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&pause, NULL);
}

/* Points `config` at the fixture's Redis with a prefix unique to this
 * process and short reconnect delays, so tests do not wait long for a
 * restarted server. */
static inline int redis_fixture_configure(ap_config_t *config,
                                          const char *name) {
  char value[128];
  snprintf(value, sizeof value, "redis://127.0.0.1:%d", AP_TEST_REDIS_PORT);
  int failed = ap_config_set(config, "redis.uri", value, NULL);
  snprintf(value, sizeof value, "aptest-%s-%ld", name, (long)getpid());
  failed |= ap_config_set(config, "redis.key_prefix", value, NULL);
  failed |= ap_config_set(config, "redis.reconnect_min", "10ms", NULL);
  failed |= ap_config_set(config, "redis.reconnect_max", "200ms", NULL);
  return failed ? -1 : 0;
}

/* Runs one command on a fresh connection to the fixture's Redis; returns
 * 0 when it replied without an error. */
static inline int redis_fixture_command(const char *command) {
  struct timeval timeout = {.tv_sec = 5, .tv_usec = 0};
  redisContext *redis =
      redisConnectWithTimeout("127.0.0.1", AP_TEST_REDIS_PORT, timeout);
  if (!redis || redis->err) {
    redisFree(redis);
    return -1;
  }
  redisReply *reply = redisCommand(redis, command);
  int failed = !reply || reply->type == REDIS_REPLY_ERROR;
  if (reply) {
    freeReplyObject(reply);
  }
  redisFree(redis);
  return failed ? -1 : 0;
}

/* Runs scripts/redis-test-server.sh with `action` (stop, start, restart). */
static inline int redis_fixture_server(const char *action) {
  char command[1024];
  snprintf(command, sizeof command, "'%s' %s '%s' %d >/dev/null",
           AP_TEST_REDIS_SCRIPT, action, AP_TEST_REDIS_DIR, AP_TEST_REDIS_PORT);
  return system(command) == 0 ? 0 : -1;
}

/* Waits until `count` subscribers of `context` are connected; returns 0
 * when they are. */
static inline int redis_fixture_wait_subscribers(ap_context_t *context,
                                                 int count) {
  int64_t deadline = redis_test_now_ms() + REDIS_WAIT_MS;
  while (redis_test_now_ms() < deadline) {
    ap_redis_health_t health = {.struct_size = sizeof health};
    ap_redis_check(context, &health, NULL);
    if (health.subscribers_connected >= count) {
      return 0;
    }
    redis_test_sleep_ms(10);
  }
  return -1;
}

/* Waits until the publisher connection of `context` replies to PING;
 * returns 0 when it does. */
static inline int redis_fixture_wait_publisher(ap_context_t *context) {
  int64_t deadline = redis_test_now_ms() + REDIS_WAIT_MS;
  while (redis_test_now_ms() < deadline) {
    ap_redis_health_t health = {.struct_size = sizeof health};
    if (ap_redis_check(context, &health, NULL) == AP_OK) {
      return 0;
    }
    redis_test_sleep_ms(10);
  }
  return -1;
}

#endif
