/*
 * Watching one job for progress streaming. A watch reports a change of
 * state, fraction or stage as one event.
 *
 * Without Redis it polls the job row every jobs.watch_interval. With
 * Redis it waits for the job's events on the context's shared subscriber.
 * A progress message becomes an event at once, with its fraction and
 * stage. Any state change is read from the record, which stays the
 * source of truth. While the subscriber is disconnected it polls as
 * without Redis, and after a reconnect it reads the record, because
 * messages published meanwhile are lost. Even with the subscriber up the
 * record is read every RECHECK_FACTOR watch intervals, which catches the
 * changes that nothing publishes (expired leases re-queued by the reaper) and
 * publishes that failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"
#include "notify/notify_internal.h"

/* With Redis, the record is read every RECHECK_FACTOR watch intervals. */
#define RECHECK_FACTOR 10

struct ap_job_watch {
  ap_context_t *context;
  char *owner;
  char *job_id;
  int64_t interval_ms;
  int has_last; /* `last` contains the previous event */
  ap_job_event_t last;
  ap_notify_watch_t *subscription; /* NULL without Redis */
};

ap_status_t ap_job_watch_open(ap_context_t *context, const char *owner,
                              const char *job_id, ap_job_watch_t **out,
                              ap_error_t *error) {
  if (!context || !job_id || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_job_watch_open: context, job_id and out must "
                        "not be NULL");
  }
  /* Reading the job first reports a missing or foreign job at open. */
  ap_job_t *job = NULL;
  ap_status_t status = ap_job_get(context, owner, job_id, &job, error);
  if (status != AP_OK) {
    return status;
  }
  ap_job_free(job);

  ap_job_watch_t *watch = calloc(1, sizeof *watch);
  if (!watch || ap_meta_strdup(owner, &watch->owner) ||
      ap_meta_strdup(job_id, &watch->job_id)) {
    ap_job_watch_close(watch);
    return AP_NO_MEMORY(error);
  }
  watch->context = context;
  watch->interval_ms = ap_context_watch_interval_ms(context);
  ap_notifier_t *notifier = ap_context_notifier(context);
  if (notifier) {
    status =
        ap_notify_watch_open(notifier, job_id, &watch->subscription, error);
    if (status != AP_OK) {
      ap_job_watch_close(watch);
      return status;
    }
  }
  *out = watch;
  return AP_OK;
}

static void fill_event(const ap_job_t *job, ap_job_event_t *event) {
  memset(event, 0, sizeof *event);
  event->struct_size = sizeof *event;
  event->state = (ap_job_state_t)job->state;
  event->fraction = job->progress;
  snprintf(event->stage, sizeof event->stage, "%s",
           job->stage ? job->stage : "");
  event->attempts = job->attempts;
  event->error_code = job->error_code;
  event->updated_at_ms = job->updated_at_ms;
}

static int events_differ(const ap_job_event_t *a, const ap_job_event_t *b) {
  return a->state != b->state || a->fraction != b->fraction ||
         strcmp(a->stage, b->stage) != 0 || a->attempts != b->attempts;
}

/* Reads the record into `*event`; `*changed` is 1 when it differs from
 * the last event or there is none. */
static ap_status_t read_record(ap_job_watch_t *watch, ap_job_event_t *event,
                               int *changed, ap_error_t *error) {
  ap_job_t *job = NULL;
  ap_status_t status =
      ap_job_get(watch->context, watch->owner, watch->job_id, &job, error);
  if (status != AP_OK) {
    return status;
  }
  fill_event(job, event);
  ap_job_free(job);
  *changed = !watch->has_last || events_differ(event, &watch->last);
  return AP_OK;
}

static ap_status_t emit(ap_job_watch_t *watch, const ap_job_event_t *current,
                        ap_job_event_t *event) {
  watch->last = *current;
  watch->has_last = 1;
  *event = *current;
  return AP_OK;
}

/* Waits for events on the Redis subscription (see the file comment). */
static ap_status_t next_from_subscription(ap_job_watch_t *watch,
                                          int64_t timeout_ms,
                                          ap_job_event_t *event,
                                          ap_error_t *error) {
  int64_t now = ap_redis_monotonic_ms();
  int64_t deadline = now + (timeout_ms > 0 ? timeout_ms : 0);
  int read_now = !watch->has_last;
  int64_t next_read = now + watch->interval_ms;
  for (;;) {
    if (read_now) {
      ap_job_event_t current;
      int changed = 0;
      ap_status_t status = read_record(watch, &current, &changed, error);
      if (status != AP_OK) {
        return status;
      }
      if (changed) {
        return emit(watch, &current, event);
      }
      read_now = 0;
      int64_t interval = ap_notify_watch_live(watch->subscription)
                             ? watch->interval_ms * RECHECK_FACTOR
                             : watch->interval_ms;
      next_read = ap_redis_monotonic_ms() + interval;
    }

    now = ap_redis_monotonic_ms();
    if (now >= deadline) {
      return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_TIMED_OUT,
                          "job %s did not change within %lld ms", watch->job_id,
                          (long long)timeout_ms);
    }
    /* A subscriber that is not connected yet or any more delivers
     * nothing, so the record is polled at the plain watch interval. */
    if (!ap_notify_watch_live(watch->subscription) &&
        next_read > now + watch->interval_ms) {
      next_read = now + watch->interval_ms;
    }
    ap_notify_job_message_t message;
    int resync = 0;
    int received = ap_notify_watch_wait(
        watch->subscription, next_read < deadline ? next_read : deadline,
        &message, &resync);
    if (resync || (!received && ap_redis_monotonic_ms() >= next_read)) {
      read_now = 1;
      continue;
    }
    if (!received || message.updated_at_ms < watch->last.updated_at_ms) {
      continue; /* a timeout, or a message older than the last event */
    }
    if (message.has_state && message.state == AP_JOB_RUNNING &&
        watch->last.state == AP_JOB_RUNNING && message.has_fraction) {
      ap_job_event_t current = watch->last;
      current.fraction = message.fraction;
      snprintf(current.stage, sizeof current.stage, "%s", message.stage);
      current.updated_at_ms = message.updated_at_ms;
      if (events_differ(&current, &watch->last)) {
        return emit(watch, &current, event);
      }
      continue;
    }
    read_now = 1; /* a state change: confirmed from the record */
  }
}

static void sleep_ms(int64_t milliseconds) {
  struct timespec pause = {.tv_sec = milliseconds / 1000,
                           .tv_nsec = (milliseconds % 1000) * 1000000};
  while (nanosleep(&pause, &pause) != 0) {
  }
}

ap_status_t ap_job_watch_next(ap_job_watch_t *watch, int64_t timeout_ms,
                              ap_job_event_t *event, ap_error_t *error) {
  if (!watch || !event) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_job_watch_next: watch and event must not be "
                        "NULL");
  }
  if (watch->has_last && ap_job_state_is_terminal(watch->last.state)) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_JOB_STATE,
                        "job %s is %s: it will not change again", watch->job_id,
                        ap_job_state_name(watch->last.state));
  }

  if (watch->subscription) {
    return next_from_subscription(watch, timeout_ms, event, error);
  }

  int64_t deadline = ap_time_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  for (;;) {
    ap_job_t *job = NULL;
    ap_status_t status =
        ap_job_get(watch->context, watch->owner, watch->job_id, &job, error);
    if (status != AP_OK) {
      return status;
    }
    ap_job_event_t current;
    fill_event(job, &current);
    ap_job_free(job);

    if (!watch->has_last || events_differ(&current, &watch->last)) {
      watch->last = current;
      watch->has_last = 1;
      *event = current;
      return AP_OK;
    }

    int64_t remaining = deadline - ap_time_now_ms();
    if (remaining <= 0) {
      return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_TIMED_OUT,
                          "job %s did not change within %lld ms", watch->job_id,
                          (long long)timeout_ms);
    }
    sleep_ms(remaining < watch->interval_ms ? remaining : watch->interval_ms);
  }
}

void ap_job_watch_close(ap_job_watch_t *watch) {
  if (!watch) {
    return;
  }
  ap_notify_watch_close(watch->subscription);
  free(watch->owner);
  free(watch->job_id);
  free(watch);
}
