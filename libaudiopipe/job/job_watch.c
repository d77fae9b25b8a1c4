/*
 * Watching one job for progress streaming. With the db queue a watch
 * polls the job row every jobs.watch_interval and reports a change of
 * state, fraction or stage as one event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"

struct ap_job_watch {
  ap_context_t *context;
  char *owner;
  char *job_id;
  int64_t interval_ms;
  int has_last; /* `last` contains the previous event */
  ap_job_event_t last;
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
  free(watch->owner);
  free(watch->job_id);
  free(watch);
}
