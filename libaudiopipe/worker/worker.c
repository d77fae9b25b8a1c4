/*
 * ap_worker_run: the claim loop of each worker thread, the reaper thread,
 * and the drain after a stop request.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <audiopipe/config.h>
#include <audiopipe/log.h>
#include <audiopipe/upload.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"
#include "notify/notify_internal.h"
#include "worker/worker_internal.h"

/* Maximum sleep between two checks of the stop flag, in ms, so a stop
 * request is noticed promptly without a wake-up channel that a signal
 * handler could not use. */
#define STOP_CHECK_MS 20

#define MAX_THREADS 256

ap_status_t ap_worker_new(ap_worker_t **out, ap_error_t *error) {
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_worker_new: out is NULL");
  }
  ap_worker_t *worker = calloc(1, sizeof *worker);
  if (!worker) {
    return AP_NO_MEMORY(error);
  }
  atomic_init(&worker->stop_requested, 0);
  *out = worker;
  return AP_OK;
}

void ap_worker_request_stop(ap_worker_t *worker) {
  if (worker) {
    atomic_store(&worker->stop_requested, 1);
  }
}

void ap_worker_free(ap_worker_t *worker) { free(worker); }

void ap_worker_options_init(ap_worker_options_t *options) {
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->threads = 1;
  options->lease_ms = 60000;
  options->poll_interval_ms = 500;
  options->reap_interval_ms = 10000;
  options->drain_timeout_ms = 30000;
  options->progress_interval_ms = 500;
}

int ap_worker_stopping(const ap_worker_run_state_t *run) {
  return atomic_load(&run->options.handle->stop_requested) != 0;
}

/* Sleeps up to `ms`, returning early once a stop is requested. */
static void sleep_unless_stopping(const ap_worker_run_state_t *run,
                                  int64_t ms) {
  while (ms > 0 && !ap_worker_stopping(run)) {
    int64_t slice = ms < STOP_CHECK_MS ? ms : STOP_CHECK_MS;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = slice * 1000000L};
    nanosleep(&pause, NULL);
    ms -= slice;
  }
}

static uint64_t wake_generation(ap_worker_run_state_t *run) {
  pthread_mutex_lock(&run->wake_lock);
  uint64_t generation = run->wake_generation;
  pthread_mutex_unlock(&run->wake_lock);
  return generation;
}

/* Wakes every idle claim thread. Called by the Redis subscriber. */
static void wake_claimers(void *user_data) {
  ap_worker_run_state_t *run = user_data;
  pthread_mutex_lock(&run->wake_lock);
  run->wake_generation++;
  pthread_cond_broadcast(&run->wake);
  pthread_mutex_unlock(&run->wake_lock);
}

static void on_wakeup(void *user_data, const char *channel, const char *message,
                      size_t length) {
  (void)channel;
  (void)message;
  (void)length;
  wake_claimers(user_data);
}

/*
 * Waits up to `ms` for a wake-up newer than generation `seen`, returning
 * early once a stop is requested. The generation read before the claim
 * means a wake-up between the claim and this wait is not lost. The stop
 * flag is polled every STOP_CHECK_MS, because ap_worker_request_stop runs
 * in signal handlers and cannot signal a condition variable.
 */
static void wait_for_work(ap_worker_run_state_t *run, uint64_t seen,
                          int64_t ms) {
  int64_t deadline = ap_redis_monotonic_ms() + ms;
  pthread_mutex_lock(&run->wake_lock);
  while (run->wake_generation == seen && !ap_worker_stopping(run)) {
    int64_t now = ap_redis_monotonic_ms();
    if (now >= deadline) {
      break;
    }
    int64_t until =
        deadline - now < STOP_CHECK_MS ? deadline : now + STOP_CHECK_MS;
    struct timespec pause = {.tv_sec = (time_t)(until / 1000),
                             .tv_nsec = (long)(until % 1000) * 1000000L};
    pthread_cond_timedwait(&run->wake, &run->wake_lock, &pause);
  }
  pthread_mutex_unlock(&run->wake_lock);
}

static void *claim_loop(void *argument) {
  ap_worker_run_state_t *run = argument;
  const char *kinds[] = {AP_JOB_KIND_PROCESS_ASSET};
  while (!ap_worker_stopping(run)) {
    uint64_t seen = wake_generation(run);
    ap_job_t *job = NULL;
    ap_error_t error = {0};
    if (ap_job_claim(run->context, run->worker_id, run->options.lease_ms, kinds,
                     1, &job, &error) != AP_OK) {
      ap_log_write(
          AP_LOG_WARN, "job_claim_failed", NULL, NULL,
          (ap_log_field_t[]){AP_LOG_STRING("worker_id", run->worker_id),
                             AP_LOG_STRING("error", error.message)},
          2,
          "claiming a job failed; retrying after the poll "
          "interval");
      sleep_unless_stopping(run, run->options.poll_interval_ms);
      continue;
    }
    if (!job) {
      wait_for_work(run, seen, run->options.poll_interval_ms);
      continue;
    }
    ap_worker_run_job(run, job);
  }
  return NULL;
}

/* Re-queues expired leases and removes expired uploads, once per reap
 * interval. Both calls are idempotent, so several processes may reap. */
static void *reap_loop(void *argument) {
  ap_worker_run_state_t *run = argument;
  while (!ap_worker_stopping(run)) {
    ap_error_t error = {0};
    int64_t count = 0;
    if (ap_job_reap(run->context, 0, &count, &error) != AP_OK) {
      ap_log_write(AP_LOG_WARN, "job_reap_failed", NULL, NULL,
                   (ap_log_field_t[]){AP_LOG_STRING("error", error.message)}, 1,
                   "re-queueing expired leases failed");
    } else if (count > 0) {
      ap_log_write(AP_LOG_INFO, "jobs_reaped", NULL, NULL,
                   (ap_log_field_t[]){AP_LOG_INT("count", count)}, 1,
                   "re-queued jobs whose lease expired");
    }
    ap_error_clear(&error);
    count = 0;
    if (ap_upload_cleanup_expired(run->context, 0, &count, &error) != AP_OK) {
      ap_log_write(AP_LOG_WARN, "upload_cleanup_failed", NULL, NULL,
                   (ap_log_field_t[]){AP_LOG_STRING("error", error.message)}, 1,
                   "removing expired uploads failed");
    } else if (count > 0) {
      ap_log_write(AP_LOG_INFO, "uploads_expired", NULL, NULL,
                   (ap_log_field_t[]){AP_LOG_INT("count", count)}, 1,
                   "removed expired uploads");
    }
    sleep_unless_stopping(run, run->options.reap_interval_ms);
  }
  return NULL;
}

static ap_status_t invalid_option(const char *name, long long value,
                                  const char *range, ap_error_t *error) {
  return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                      "worker option %s = %lld is out of range: use %s", name,
                      value, range);
}

/* Copies `options` into `run` with defaults filled in and checks them. */
static ap_status_t prepare_options(const ap_worker_options_t *options,
                                   ap_worker_run_state_t *run,
                                   ap_error_t *error) {
  if (!options || options->struct_size < sizeof *options) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "worker options are missing or not initialised: call "
                        "ap_worker_options_init");
  }
  if (!options->handle) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "worker option handle is NULL: create one with "
                        "ap_worker_new so the run can be stopped");
  }
  run->options = *options;
  ap_worker_options_t *copy = &run->options;
  if (copy->threads < 1 || copy->threads > MAX_THREADS) {
    return invalid_option("threads", copy->threads, "1 to 256", error);
  }
  if (copy->lease_ms < 100) {
    return invalid_option("lease_ms", copy->lease_ms, "at least 100", error);
  }
  if (copy->heartbeat_interval_ms == 0) {
    copy->heartbeat_interval_ms = copy->lease_ms / 4;
  }
  if (copy->heartbeat_interval_ms < 1 ||
      copy->heartbeat_interval_ms >= copy->lease_ms) {
    return invalid_option("heartbeat_interval_ms", copy->heartbeat_interval_ms,
                          "1 to less than lease_ms", error);
  }
  if (copy->poll_interval_ms < 1) {
    return invalid_option("poll_interval_ms", copy->poll_interval_ms,
                          "at least 1", error);
  }
  if (copy->reap_interval_ms < 1) {
    return invalid_option("reap_interval_ms", copy->reap_interval_ms,
                          "at least 1", error);
  }
  if (copy->drain_timeout_ms < 0 || copy->progress_interval_ms < 0) {
    return invalid_option("drain_timeout_ms", copy->drain_timeout_ms,
                          "0 or more", error);
  }

  if (copy->worker_id) {
    if (strlen(copy->worker_id) >= sizeof run->worker_id) {
      return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                          "worker option worker_id is longer than %zu bytes",
                          sizeof run->worker_id - 1);
    }
    snprintf(run->worker_id, sizeof run->worker_id, "%s", copy->worker_id);
  } else {
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(run->worker_id, sizeof run->worker_id, "%s:%ld", host,
             (long)getpid());
  }
  copy->worker_id = run->worker_id;
  return AP_OK;
}

ap_status_t ap_worker_run(ap_context_t *context,
                          const ap_worker_options_t *options,
                          ap_error_t *error) {
  if (!context) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_worker_run: context is NULL");
  }
  ap_worker_run_state_t *run = calloc(1, sizeof *run);
  if (!run) {
    return AP_NO_MEMORY(error);
  }
  run->context = context;
  atomic_init(&run->busy_threads, 0);
  atomic_init(&run->drain_deadline_ms, 0);
  pthread_mutex_init(&run->wake_lock, NULL);
  pthread_condattr_t wake_attributes;
  pthread_condattr_init(&wake_attributes);
  pthread_condattr_setclock(&wake_attributes, CLOCK_MONOTONIC);
  pthread_cond_init(&run->wake, &wake_attributes);
  pthread_condattr_destroy(&wake_attributes);
  ap_status_t status = prepare_options(options, run, error);

  const char *profile = run->options.profile;
  if (!profile) {
    profile = ap_config_get(ap_context_config(context), "processing.profile");
  }
  if (!profile) {
    profile = AP_WORKER_DEFAULT_PROFILE;
  }
  if (status == AP_OK) {
    status = ap_profile_parse(profile, &run->profile, error);
  }
  pthread_t *threads = NULL;
  if (status == AP_OK) {
    threads = calloc((size_t)run->options.threads, sizeof *threads);
    if (!threads) {
      status = AP_NO_MEMORY(error);
    }
  }
  /* One subscriber per run; without Redis, or while it is down, the
   * threads find jobs by polling. */
  ap_redis_subscriber_t *subscriber = NULL;
  ap_notifier_t *notifier = ap_context_notifier(context);
  if (status == AP_OK && notifier) {
    char channel[256];
    ap_notify_wakeup_channel(notifier, AP_JOB_KIND_PROCESS_ASSET, channel,
                             sizeof channel);
    status = ap_redis_subscriber_start(notifier, channel, 0, on_wakeup,
                                       wake_claimers, run, &subscriber, error);
  }
  if (status != AP_OK) {
    free(threads);
    ap_profile_free(&run->profile);
    pthread_cond_destroy(&run->wake);
    pthread_mutex_destroy(&run->wake_lock);
    free(run);
    return status;
  }

  ap_log_write(AP_LOG_INFO, "worker_started", NULL, NULL,
               (ap_log_field_t[]){AP_LOG_STRING("worker_id", run->worker_id),
                                  AP_LOG_INT("threads", run->options.threads),
                                  AP_LOG_STRING("profile", profile)},
               3, "worker started");

  int started = 0;
  for (; started < run->options.threads; started++) {
    if (pthread_create(&threads[started], NULL, claim_loop, run) != 0) {
      break;
    }
  }
  pthread_t reaper;
  int reaper_started = pthread_create(&reaper, NULL, reap_loop, run) == 0;
  if (started < run->options.threads || !reaper_started) {
    status = ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INTERNAL,
                          "could not start worker thread %d of %d", started + 1,
                          run->options.threads);
    ap_worker_request_stop(run->options.handle);
  }

  while (!ap_worker_stopping(run)) {
    struct timespec pause = {.tv_sec = 0, .tv_nsec = STOP_CHECK_MS * 1000000L};
    nanosleep(&pause, NULL);
  }
  atomic_store(&run->drain_deadline_ms,
               ap_time_now_ms() + run->options.drain_timeout_ms);
  ap_log_write(
      AP_LOG_INFO, "worker_draining", NULL, NULL,
      (ap_log_field_t[]){
          AP_LOG_STRING("worker_id", run->worker_id),
          AP_LOG_INT("busy_threads", atomic_load(&run->busy_threads)),
          AP_LOG_INT("drain_timeout_ms", run->options.drain_timeout_ms)},
      3, "stop requested: no more claims, draining running jobs");

  for (int i = 0; i < started; i++) {
    pthread_join(threads[i], NULL);
  }
  if (reaper_started) {
    pthread_join(reaper, NULL);
  }
  ap_redis_subscriber_stop(subscriber);
  ap_log_write(AP_LOG_INFO, "worker_stopped", NULL, NULL,
               (ap_log_field_t[]){AP_LOG_STRING("worker_id", run->worker_id)},
               1, "worker stopped");
  free(threads);
  ap_profile_free(&run->profile);
  pthread_cond_destroy(&run->wake);
  pthread_mutex_destroy(&run->wake_lock);
  free(run);
  return status;
}
