/*
 * A subscriber thread: one connection that blocks on its socket for
 * messages, and reconnects with backoff when Redis goes away. Stopping
 * shuts the socket down, which ends the blocking read at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include <audiopipe/log.h>

#include "core/error_internal.h"
#include "notify/notify_internal.h"

struct ap_redis_subscriber {
  ap_notifier_t *notifier;
  char channel[512];
  int is_pattern;
  ap_redis_message_fn on_message;
  ap_redis_connected_fn on_connected;
  void *user_data;

  pthread_mutex_t lock;
  pthread_cond_t wake; /* signalled by ap_redis_subscriber_stop */
  int stopping;        /* under lock */
  int socket_fd;       /* under lock; -1 while not subscribed */
  atomic_int connected;

  ap_redis_connection_t connection; /* subscriber thread only */
  pthread_t thread;
};

/* Waits until the connection's next attempt is due or a stop is
 * requested. Returns 1 when stopping. */
static int wait_for_backoff(ap_redis_subscriber_t *subscriber) {
  pthread_mutex_lock(&subscriber->lock);
  while (!subscriber->stopping) {
    int64_t remaining =
        subscriber->connection.next_attempt_ms - ap_redis_monotonic_ms();
    if (remaining <= 0) {
      break;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int64_t nanoseconds = deadline.tv_nsec + (remaining % 1000) * 1000000;
    deadline.tv_sec += (time_t)(remaining / 1000 + nanoseconds / 1000000000);
    deadline.tv_nsec = (long)(nanoseconds % 1000000000);
    pthread_cond_timedwait(&subscriber->wake, &subscriber->lock, &deadline);
  }
  int stopping = subscriber->stopping;
  pthread_mutex_unlock(&subscriber->lock);
  return stopping;
}

static int is_bulk(const redisReply *reply) {
  return reply && reply->type == REDIS_REPLY_STRING && reply->str;
}

/* Hands a "message" or "pmessage" reply to the callback; other pushes
 * (subscribe confirmations) are ignored. */
static void dispatch(ap_redis_subscriber_t *subscriber,
                     const redisReply *reply) {
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
      !is_bulk(reply->element[0])) {
    return;
  }
  const char *kind = reply->element[0]->str;
  if (strcmp(kind, "message") == 0 && reply->elements == 3 &&
      is_bulk(reply->element[1]) && is_bulk(reply->element[2])) {
    subscriber->on_message(subscriber->user_data, reply->element[1]->str,
                           reply->element[2]->str, reply->element[2]->len);
  } else if (strcmp(kind, "pmessage") == 0 && reply->elements == 4 &&
             is_bulk(reply->element[2]) && is_bulk(reply->element[3])) {
    subscriber->on_message(subscriber->user_data, reply->element[2]->str,
                           reply->element[3]->str, reply->element[3]->len);
  }
}

/* Sends (P)SUBSCRIBE and checks the confirmation. Fills `reason` and
 * returns 0 on failure. */
static int subscribe(ap_redis_subscriber_t *subscriber, redisContext *redis,
                     char *reason, size_t size) {
  const char *command = subscriber->is_pattern ? "PSUBSCRIBE" : "SUBSCRIBE";
  const char *argv[] = {command, subscriber->channel};
  redisReply *reply = redisCommandArgv(redis, 2, argv, NULL);
  if (!reply) {
    snprintf(reason, size, "Redis %s failed: %s", command,
             redis->errstr[0] ? redis->errstr : "no reply");
    return 0;
  }
  int ok = reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
           is_bulk(reply->element[0]) &&
           strcasecmp(reply->element[0]->str, command) == 0;
  if (!ok) {
    snprintf(reason, size, "Redis %s returned %s", command,
             reply->type == REDIS_REPLY_ERROR && reply->str
                 ? reply->str
                 : "an unexpected reply");
  }
  freeReplyObject(reply);
  return ok;
}

/* Subscribes on a connected socket and delivers messages until the
 * connection fails or a stop shuts it down. */
static void serve_connection(ap_redis_subscriber_t *subscriber,
                             redisContext *redis) {
  pthread_mutex_lock(&subscriber->lock);
  int stopping = subscriber->stopping;
  if (!stopping) {
    subscriber->socket_fd = redis->fd;
  }
  pthread_mutex_unlock(&subscriber->lock);
  if (stopping) {
    return;
  }

  char reason[256] = "";
  int subscribed = subscribe(subscriber, redis, reason, sizeof reason);
  /* Messages may be minutes apart, so the read waits without a
   * timeout.
   * NOTE: a Redis host that vanishes without closing the connection is
   * noticed only by TCP keep-alive, after about 30 s with hiredis 0.14's
   * settings; wake-ups are lost until then and workers poll. */
  struct timeval forever = {0, 0};
  if (subscribed && redisSetTimeout(redis, forever) != REDIS_OK) {
    snprintf(reason, sizeof reason,
             "clearing the Redis socket timeout "
             "failed: %s",
             redis->errstr);
    subscribed = 0;
  }
  if (subscribed) {
    subscriber->connection.failures = 0;
    subscriber->connection.last_error[0] = '\0';
    atomic_store(&subscriber->connected, 1);
    ap_notifier_subscriber_connected(subscriber->notifier, 1);
    if (subscriber->on_connected) {
      subscriber->on_connected(subscriber->user_data);
    }
    for (;;) {
      void *reply = NULL;
      if (redisGetReply(redis, &reply) != REDIS_OK || !reply) {
        snprintf(reason, sizeof reason,
                 "the Redis subscription to %.100s "
                 "was lost: %.100s",
                 subscriber->channel,
                 redis->errstr[0] ? redis->errstr : "no reply");
        break;
      }
      dispatch(subscriber, reply);
      freeReplyObject(reply);
    }
    atomic_store(&subscriber->connected, 0);
    ap_notifier_subscriber_connected(subscriber->notifier, -1);
  }

  pthread_mutex_lock(&subscriber->lock);
  subscriber->socket_fd = -1;
  stopping = subscriber->stopping;
  pthread_mutex_unlock(&subscriber->lock);
  if (stopping) {
    ap_redis_connection_close(&subscriber->connection);
    return;
  }
  if (subscriber->connection.failures == 0) {
    ap_log_write(AP_LOG_WARN, "redis_subscription_lost", NULL, NULL,
                 (ap_log_field_t[]){AP_LOG_STRING("error", reason)}, 1,
                 "a Redis subscription ended: polling until it is back");
  }
  ap_redis_connection_fail(&subscriber->connection, reason);
}

static void *subscriber_main(void *argument) {
  ap_redis_subscriber_t *subscriber = argument;
  while (!wait_for_backoff(subscriber)) {
    redisContext *redis = ap_redis_connection_get(&subscriber->connection);
    if (redis) {
      serve_connection(subscriber, redis);
    }
  }
  ap_redis_connection_close(&subscriber->connection);
  return NULL;
}

ap_status_t
ap_redis_subscriber_start(ap_notifier_t *notifier, const char *channel,
                          int is_pattern, ap_redis_message_fn on_message,
                          ap_redis_connected_fn on_connected, void *user_data,
                          ap_redis_subscriber_t **out, ap_error_t *error) {
  ap_redis_subscriber_t *subscriber = calloc(1, sizeof *subscriber);
  if (!subscriber) {
    return AP_NO_MEMORY(error);
  }
  subscriber->notifier = notifier;
  snprintf(subscriber->channel, sizeof subscriber->channel, "%s", channel);
  subscriber->is_pattern = is_pattern;
  subscriber->on_message = on_message;
  subscriber->on_connected = on_connected;
  subscriber->user_data = user_data;
  subscriber->socket_fd = -1;
  atomic_init(&subscriber->connected, 0);
  ap_redis_connection_init(&subscriber->connection,
                           ap_notifier_settings(notifier),
                           ap_notifier_counters(notifier));
  pthread_mutex_init(&subscriber->lock, NULL);
  pthread_cond_init(&subscriber->wake, NULL);
  int result =
      pthread_create(&subscriber->thread, NULL, subscriber_main, subscriber);
  if (result != 0) {
    pthread_cond_destroy(&subscriber->wake);
    pthread_mutex_destroy(&subscriber->lock);
    free(subscriber);
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INTERNAL,
                        "cannot start the Redis subscriber thread for %s: %s",
                        channel, strerror(result));
  }
  *out = subscriber;
  return AP_OK;
}

int ap_redis_subscriber_connected(ap_redis_subscriber_t *subscriber) {
  return subscriber && atomic_load(&subscriber->connected);
}

void ap_redis_subscriber_stop(ap_redis_subscriber_t *subscriber) {
  if (!subscriber) {
    return;
  }
  pthread_mutex_lock(&subscriber->lock);
  subscriber->stopping = 1;
  if (subscriber->socket_fd >= 0) {
    shutdown(subscriber->socket_fd, SHUT_RDWR);
  }
  pthread_cond_signal(&subscriber->wake);
  pthread_mutex_unlock(&subscriber->lock);
  pthread_join(subscriber->thread, NULL);
  pthread_cond_destroy(&subscriber->wake);
  pthread_mutex_destroy(&subscriber->lock);
  free(subscriber);
}
