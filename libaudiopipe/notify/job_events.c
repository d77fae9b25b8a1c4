/*
 * The shared job-event subscriber of a context: one connection with
 * PSUBSCRIBE "<prefix>:job:*" whatever the number of open watches. Each
 * message goes to the watches of its job, found in a table by job id,
 * and to every listener of ap_redis_job_listener_open.
 *
 * NOTE: with PSUBSCRIBE every process receives the events of every job,
 * also of jobs nobody watches there; that costs one small message per
 * progress report and process, which is cheaper than a connection per
 * watch but grows with the number of API servers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include <audiopipe/redis.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "notify/notify_internal.h"

/* Buckets of the watch table; a power of two. */
#define BUCKETS 256

/* Maximum messages queued on one watch. Past it the watch reads the
 * record instead, and a consumer that keeps up never gets near it. */
#define QUEUE_SIZE 32

struct ap_notify_watch {
  ap_notify_hub_t *hub;
  char job_id[64];
  pthread_cond_t wake; /* with the hub lock */
  ap_notify_job_message_t queue[QUEUE_SIZE];
  size_t head;
  size_t count;
  int resync;
  ap_notify_watch_t *next; /* bucket list */
};

struct ap_redis_job_listener {
  ap_notify_hub_t *hub;
  ap_redis_job_listener_fn fn;
  void *user_data;
  ap_redis_job_listener_t *next;
};

struct ap_notify_hub {
  ap_notifier_t *notifier;
  ap_redis_job_listener_t *listeners; /* under lock */
  ap_redis_subscriber_t *subscriber;
  char channel_prefix[160]; /* "<prefix>:job:" */
  size_t channel_prefix_length;
  pthread_mutex_t lock;
  ap_notify_watch_t *buckets[BUCKETS];
};

static size_t bucket_of(const char *job_id) {
  uint64_t hash = 1469598103934665603ull;
  for (const char *c = job_id; *c; c++) {
    hash = (hash ^ (unsigned char)*c) * 1099511628211ull;
  }
  return (size_t)(hash & (BUCKETS - 1));
}

/* Parses a message of ap_notify_job_event. Returns 0 when it is not one. */
static int parse_message(const char *text, size_t length,
                         ap_notify_job_message_t *message) {
  memset(message, 0, sizeof *message);
  json_tokener *tokener = json_tokener_new();
  if (!tokener) {
    return 0;
  }
  json_object *root = json_tokener_parse_ex(tokener, text, (int)length);
  json_tokener_free(tokener);
  if (!root || !json_object_is_type(root, json_type_object)) {
    json_object_put(root);
    return 0;
  }
  json_object *value = NULL;
  if (json_object_object_get_ex(root, "state", &value)) {
    const char *state = json_object_get_string(value);
    for (int i = AP_JOB_QUEUED; i <= AP_JOB_CANCELLED; i++) {
      if (state && strcmp(state, ap_job_state_name((ap_job_state_t)i)) == 0) {
        message->has_state = 1;
        message->state = (ap_job_state_t)i;
      }
    }
  }
  if (json_object_object_get_ex(root, "fraction", &value)) {
    message->has_fraction = 1;
    message->fraction = json_object_get_double(value);
  }
  if (json_object_object_get_ex(root, "stage", &value)) {
    snprintf(message->stage, sizeof message->stage, "%s",
             json_object_get_string(value));
  }
  if (json_object_object_get_ex(root, "updated_at_ms", &value)) {
    message->updated_at_ms = json_object_get_int64(value);
  }
  json_object_put(root);
  return 1;
}

static void on_message(void *user_data, const char *channel, const char *text,
                       size_t length) {
  ap_notify_hub_t *hub = user_data;
  if (strncmp(channel, hub->channel_prefix, hub->channel_prefix_length) != 0) {
    return;
  }
  const char *job_id = channel + hub->channel_prefix_length;
  ap_notify_job_message_t message;
  if (!parse_message(text, length, &message)) {
    return;
  }

  pthread_mutex_lock(&hub->lock);
  for (ap_redis_job_listener_t *listener = hub->listeners; listener;
       listener = listener->next) {
    listener->fn(listener->user_data, job_id);
  }
  for (ap_notify_watch_t *watch = hub->buckets[bucket_of(job_id)]; watch;
       watch = watch->next) {
    if (strcmp(watch->job_id, job_id) != 0) {
      continue;
    }
    if (watch->count == QUEUE_SIZE) {
      watch->resync = 1;
    } else {
      watch->queue[(watch->head + watch->count) % QUEUE_SIZE] = message;
      watch->count++;
    }
    pthread_cond_signal(&watch->wake);
  }
  pthread_mutex_unlock(&hub->lock);
}

/* Messages published while the subscriber was away are lost, so every
 * watch reads its record again. */
static void on_connected(void *user_data) {
  ap_notify_hub_t *hub = user_data;
  pthread_mutex_lock(&hub->lock);
  for (ap_redis_job_listener_t *listener = hub->listeners; listener;
       listener = listener->next) {
    listener->fn(listener->user_data, NULL);
  }
  for (size_t i = 0; i < BUCKETS; i++) {
    for (ap_notify_watch_t *watch = hub->buckets[i]; watch;
         watch = watch->next) {
      watch->resync = 1;
      pthread_cond_signal(&watch->wake);
    }
  }
  pthread_mutex_unlock(&hub->lock);
}

static ap_status_t hub_start(ap_notifier_t *notifier, ap_notify_hub_t **out,
                             ap_error_t *error) {
  ap_notify_hub_t *hub = calloc(1, sizeof *hub);
  if (!hub) {
    return AP_NO_MEMORY(error);
  }
  hub->notifier = notifier;
  snprintf(hub->channel_prefix, sizeof hub->channel_prefix,
           "%s:job:", ap_notifier_settings(notifier)->prefix);
  hub->channel_prefix_length = strlen(hub->channel_prefix);
  pthread_mutex_init(&hub->lock, NULL);

  char pattern[sizeof hub->channel_prefix + 1];
  snprintf(pattern, sizeof pattern, "%s*", hub->channel_prefix);
  ap_status_t status =
      ap_redis_subscriber_start(notifier, pattern, 1, on_message, on_connected,
                                hub, &hub->subscriber, error);
  if (status != AP_OK) {
    pthread_mutex_destroy(&hub->lock);
    free(hub);
    return status;
  }
  *out = hub;
  return AP_OK;
}

void ap_notify_hub_free(ap_notify_hub_t *hub) {
  if (!hub) {
    return;
  }
  ap_redis_subscriber_stop(hub->subscriber);
  pthread_mutex_destroy(&hub->lock);
  free(hub);
}

/* Returns the notifier's hub, starting it on first use. */
static ap_status_t get_hub(ap_notifier_t *notifier, ap_notify_hub_t **out,
                           ap_error_t *error) {
  pthread_mutex_lock(&notifier->hub_lock);
  ap_status_t status = AP_OK;
  if (!notifier->hub) {
    status = hub_start(notifier, &notifier->hub, error);
  }
  *out = notifier->hub;
  pthread_mutex_unlock(&notifier->hub_lock);
  return status;
}

ap_status_t ap_redis_job_listener_open(ap_context_t *context,
                                       ap_redis_job_listener_fn fn,
                                       void *user_data,
                                       ap_redis_job_listener_t **out,
                                       ap_error_t *error) {
  if (!context || !fn || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_redis_job_listener_open: context, fn and out "
                        "must not be NULL");
  }
  *out = NULL;
  ap_notifier_t *notifier = ap_context_notifier(context);
  if (!notifier) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_UNSUPPORTED,
                        "ap_redis_job_listener_open: redis.uri is not set");
  }
  ap_notify_hub_t *hub = NULL;
  ap_status_t status = get_hub(notifier, &hub, error);
  if (status != AP_OK) {
    return status;
  }
  ap_redis_job_listener_t *listener = calloc(1, sizeof *listener);
  if (!listener) {
    return AP_NO_MEMORY(error);
  }
  listener->hub = hub;
  listener->fn = fn;
  listener->user_data = user_data;
  pthread_mutex_lock(&hub->lock);
  listener->next = hub->listeners;
  hub->listeners = listener;
  pthread_mutex_unlock(&hub->lock);
  *out = listener;
  return AP_OK;
}

void ap_redis_job_listener_close(ap_redis_job_listener_t *listener) {
  if (!listener) {
    return;
  }
  ap_notify_hub_t *hub = listener->hub;
  pthread_mutex_lock(&hub->lock);
  ap_redis_job_listener_t **link = &hub->listeners;
  while (*link && *link != listener) {
    link = &(*link)->next;
  }
  if (*link) {
    *link = listener->next;
  }
  pthread_mutex_unlock(&hub->lock);
  free(listener);
}

ap_status_t ap_notify_watch_open(ap_notifier_t *notifier, const char *job_id,
                                 ap_notify_watch_t **out, ap_error_t *error) {
  *out = NULL;
  if (strlen(job_id) >= sizeof((ap_notify_watch_t *)0)->job_id) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "job id %.40s... is too long", job_id);
  }
  ap_notify_hub_t *hub = NULL;
  ap_status_t status = get_hub(notifier, &hub, error);
  if (status != AP_OK) {
    return status;
  }

  ap_notify_watch_t *watch = calloc(1, sizeof *watch);
  if (!watch) {
    return AP_NO_MEMORY(error);
  }
  watch->hub = hub;
  snprintf(watch->job_id, sizeof watch->job_id, "%s", job_id);
  pthread_condattr_t attributes;
  pthread_condattr_init(&attributes);
  pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
  pthread_cond_init(&watch->wake, &attributes);
  pthread_condattr_destroy(&attributes);

  pthread_mutex_lock(&hub->lock);
  size_t bucket = bucket_of(job_id);
  watch->next = hub->buckets[bucket];
  hub->buckets[bucket] = watch;
  pthread_mutex_unlock(&hub->lock);
  *out = watch;
  return AP_OK;
}

int ap_notify_watch_wait(ap_notify_watch_t *watch, int64_t deadline_ms,
                         ap_notify_job_message_t *message, int *resync) {
  ap_notify_hub_t *hub = watch->hub;
  *resync = 0;
  int received = 0;
  pthread_mutex_lock(&hub->lock);
  for (;;) {
    if (watch->resync) {
      watch->resync = 0;
      watch->count = 0;
      *resync = 1;
      break;
    }
    if (watch->count > 0) {
      *message = watch->queue[watch->head];
      watch->head = (watch->head + 1) % QUEUE_SIZE;
      watch->count--;
      received = 1;
      break;
    }
    int64_t now = ap_redis_monotonic_ms();
    if (now >= deadline_ms) {
      break;
    }
    struct timespec deadline = {.tv_sec = (time_t)(deadline_ms / 1000),
                                .tv_nsec =
                                    (long)(deadline_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&watch->wake, &hub->lock, &deadline);
  }
  pthread_mutex_unlock(&hub->lock);
  return received;
}

int ap_notify_watch_live(ap_notify_watch_t *watch) {
  return ap_redis_subscriber_connected(watch->hub->subscriber);
}

void ap_notify_watch_close(ap_notify_watch_t *watch) {
  if (!watch) {
    return;
  }
  ap_notify_hub_t *hub = watch->hub;
  pthread_mutex_lock(&hub->lock);
  ap_notify_watch_t **link = &hub->buckets[bucket_of(watch->job_id)];
  while (*link && *link != watch) {
    link = &(*link)->next;
  }
  if (*link) {
    *link = watch->next;
  }
  pthread_mutex_unlock(&hub->lock);
  pthread_cond_destroy(&watch->wake);
  free(watch);
}
