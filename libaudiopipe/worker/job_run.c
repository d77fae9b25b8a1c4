/*
 * One job of the worker: the heartbeat thread that keeps the lease, the
 * ap_process call that writes every profile item straight into the
 * object store, then the asset results and ap_job_complete, in that
 * order (see <audiopipe/worker.h> for why).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <audiopipe/log.h>
#include <audiopipe/meta.h>
#include <audiopipe/process.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"
#include "storage/object_store.h"
#include "worker/worker_internal.h"

static ap_worker_fault_fn fault_hook;
static void *fault_hook_user_data;

void ap_worker_set_fault_hook(ap_worker_fault_fn hook, void *user_data) {
  fault_hook = hook;
  fault_hook_user_data = user_data;
}

/* Why the job's ap_process was cancelled, if it was. */
enum { RUN_GOING = 0, RUN_LEASE_LOST = 1, RUN_STOPPED = 2 };

typedef struct job_run {
  ap_worker_run_state_t *run;
  ap_job_t *job;
  const char *id;
  const char *token;
  const char *asset_id;
  atomic_int outcome; /* RUN_* */

  /* Heartbeat thread: wakes every heartbeat interval until `finished`. */
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  int finished;

  int64_t last_progress_ms; /* decode thread only */
  char output_keys[AP_PROFILE_MAX_ITEMS][AP_OBJECT_KEY_MAX_LENGTH + 1];
} job_run_t;

static double seconds_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) +
         (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Renews the lease every heartbeat interval; a lost lease cancels the
 * decode through the progress callback. */
static void *heartbeat_loop(void *argument) {
  job_run_t *job_run = argument;
  const ap_worker_options_t *options = &job_run->run->options;
  pthread_mutex_lock(&job_run->mutex);
  while (!job_run->finished) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int64_t nanoseconds =
        deadline.tv_nsec + (options->heartbeat_interval_ms % 1000) * 1000000L;
    deadline.tv_sec += (time_t)(options->heartbeat_interval_ms / 1000) +
                       (time_t)(nanoseconds / 1000000000L);
    deadline.tv_nsec = (long)(nanoseconds % 1000000000L);
    pthread_cond_timedwait(&job_run->wake, &job_run->mutex, &deadline);
    if (job_run->finished) {
      break;
    }
    pthread_mutex_unlock(&job_run->mutex);

    ap_error_t error = {0};
    ap_status_t status =
        ap_job_heartbeat(job_run->run->context, job_run->id, job_run->token,
                         options->lease_ms, &error);
    if (status == AP_ERR_LEASE_LOST || status == AP_ERR_NOT_FOUND) {
      atomic_store(&job_run->outcome, RUN_LEASE_LOST);
    } else if (status != AP_OK) {
      ap_log_write(AP_LOG_WARN, "job_heartbeat_failed", NULL, job_run->id,
                   (ap_log_field_t[]){AP_LOG_STRING("error", error.message)}, 1,
                   "renewing the lease failed; retrying at the next "
                   "heartbeat");
    }
    pthread_mutex_lock(&job_run->mutex);
    if (atomic_load(&job_run->outcome) == RUN_LEASE_LOST) {
      break;
    }
  }
  pthread_mutex_unlock(&job_run->mutex);
  return NULL;
}

/* Records throttled progress, and cancels ap_process when the lease is
 * lost or the drain deadline has passed. */
static int on_progress(void *user_data, double fraction, const char *stage) {
  job_run_t *job_run = user_data;
  int64_t deadline = atomic_load(&job_run->run->drain_deadline_ms);
  int64_t now = ap_time_now_ms();
  if (deadline != 0 && now >= deadline &&
      atomic_load(&job_run->outcome) == RUN_GOING) {
    atomic_store(&job_run->outcome, RUN_STOPPED);
  }
  if (atomic_load(&job_run->outcome) != RUN_GOING) {
    return 1;
  }
  if (fraction < 1.0 && now - job_run->last_progress_ms <
                            job_run->run->options.progress_interval_ms) {
    return 0;
  }
  job_run->last_progress_ms = now;
  ap_error_t error = {0};
  /* Processing is 5 % to 90 % of the job; storing the results is the
   * rest. */
  ap_status_t status =
      ap_job_progress(job_run->run->context, job_run->id, job_run->token,
                      0.05 + 0.85 * fraction, stage, &error);
  if (status == AP_ERR_LEASE_LOST || status == AP_ERR_NOT_FOUND) {
    atomic_store(&job_run->outcome, RUN_LEASE_LOST);
    return 1;
  }
  return 0;
}

/* Writes the object key of profile item `item` for the asset. */
static void item_key(const char *asset_id, const ap_profile_item_t *item,
                     char *key, size_t size) {
  if (item->is_waveform) {
    snprintf(key, size, "derived/%s/waveform_%s.%s", asset_id, item->name,
             item->extension);
  } else {
    snprintf(key, size, "derived/%s/%s.%s", asset_id, item->name,
             item->extension);
  }
}

/* The outputs and specs of one ap_process call, one per profile item. */
typedef struct job_outputs {
  ap_output_t **outputs;
  ap_waveform_spec_t *waveforms;
  ap_rendition_spec_t *renditions;
  size_t waveform_count;
  size_t rendition_count;
} job_outputs_t;

static void close_outputs(job_outputs_t *outputs, size_t count) {
  for (size_t i = 0; outputs->outputs && i < count; i++) {
    ap_output_close(outputs->outputs[i]);
  }
  free(outputs->outputs);
  free(outputs->waveforms);
  free(outputs->renditions);
  memset(outputs, 0, sizeof *outputs);
}

/* Opens a writer per profile item, each under its own key.
 * NOTE: a worker killed mid-job leaves the file store's hidden temporary
 * files of its unfinished outputs behind; nothing removes them yet. */
static ap_status_t open_outputs(job_run_t *job_run, job_outputs_t *outputs,
                                ap_error_t *error) {
  const ap_profile_t *profile = &job_run->run->profile;
  ap_object_store_t *store = ap_context_object_store(job_run->run->context);
  memset(outputs, 0, sizeof *outputs);
  outputs->outputs = calloc(profile->count, sizeof *outputs->outputs);
  outputs->waveforms = calloc(profile->count, sizeof *outputs->waveforms);
  outputs->renditions = calloc(profile->count, sizeof *outputs->renditions);
  if (!outputs->outputs || !outputs->waveforms || !outputs->renditions) {
    close_outputs(outputs, 0);
    return AP_NO_MEMORY(error);
  }

  for (size_t i = 0; i < profile->count; i++) {
    const ap_profile_item_t *item = &profile->items[i];
    char *key = job_run->output_keys[i];
    item_key(job_run->asset_id, item, key, sizeof job_run->output_keys[i]);
    ap_status_t status = ap_object_store_open_write(
        store, key, item->content_type, &outputs->outputs[i], error);
    if (status != AP_OK) {
      close_outputs(outputs, i);
      return status;
    }
    if (item->is_waveform) {
      ap_waveform_spec_t *spec = &outputs->waveforms[outputs->waveform_count++];
      ap_waveform_spec_init(spec);
      spec->format = item->format;
      spec->bits = item->bits;
      spec->samples_per_pixel = item->samples_per_pixel;
      spec->pixels_per_second = item->pixels_per_second;
      spec->output = outputs->outputs[i];
    } else {
      ap_rendition_spec_t *spec =
          &outputs->renditions[outputs->rendition_count++];
      ap_rendition_spec_init(spec);
      spec->codec = item->codec;
      spec->bitrate = item->bitrate;
      spec->bits_per_sample = item->bits_per_sample;
      spec->name = item->name;
      spec->output = outputs->outputs[i];
    }
  }
  return AP_OK;
}

/* Stores the analysis and the object records on the asset, then marks it
 * ready. Every step overwrites, so a re-run writes the same rows. */
static ap_status_t store_results(job_run_t *job_run,
                                 const ap_process_result_t *result,
                                 ap_error_t *error) {
  ap_context_t *context = job_run->run->context;
  ap_object_store_t *store = ap_context_object_store(context);
  char *json = NULL;
  ap_status_t status = ap_process_result_to_json(result, &json, error);
  if (status == AP_OK) {
    status = ap_asset_set_analysis(context, job_run->asset_id, json, error);
  }
  ap_free(json);

  const ap_profile_t *profile = &job_run->run->profile;
  for (size_t i = 0; i < profile->count && status == AP_OK; i++) {
    const ap_profile_item_t *item = &profile->items[i];
    const char *key = job_run->output_keys[i];
    ap_object_info_t info;
    status = ap_object_store_stat(store, key, &info, error);
    if (status != AP_OK) {
      break;
    }
    if (item->is_waveform) {
      status = ap_asset_put_waveform(context, job_run->asset_id, item->name,
                                     key, info.size, error);
    } else {
      status =
          ap_asset_put_rendition(context, job_run->asset_id, item->name, key,
                                 item->content_type, info.size, error);
    }
  }
  if (status == AP_OK) {
    status = ap_asset_set_status(context, job_run->asset_id, AP_ASSET_READY, 0,
                                 NULL, error);
  }
  return status;
}

/* Decodes the asset's original into every profile item and, while the
 * lease is held, stores the results. Fills `event`'s timings. */
static ap_status_t process_asset(job_run_t *job_run, ap_worker_event_t *event,
                                 ap_error_t *error) {
  ap_context_t *context = job_run->run->context;
  ap_asset_t *asset = NULL;
  ap_status_t status =
      ap_asset_get(context, NULL, job_run->asset_id, &asset, error);
  if (status == AP_OK) {
    status = ap_asset_set_status(context, job_run->asset_id,
                                 AP_ASSET_PROCESSING, 0, NULL, error);
  }
  ap_io_t *input = NULL;
  if (status == AP_OK) {
    status =
        ap_object_store_open_read(ap_context_object_store(context),
                                  ap_asset_object_key(asset), &input, error);
  }
  ap_asset_free(asset);
  job_outputs_t outputs;
  memset(&outputs, 0, sizeof outputs);
  if (status == AP_OK) {
    status = open_outputs(job_run, &outputs, error);
  }
  if (status != AP_OK) {
    ap_io_close(input);
    return status;
  }

  ap_process_options_t options;
  ap_process_options_init(&options);
  options.limits = *ap_context_limits(context);
  options.waveforms = outputs.waveforms;
  options.waveform_count = outputs.waveform_count;
  options.renditions = outputs.renditions;
  options.rendition_count = outputs.rendition_count;
  options.max_threads = job_run->run->options.process_threads;
  options.progress = on_progress;
  options.progress_user_data = job_run;

  struct timespec started;
  clock_gettime(CLOCK_MONOTONIC, &started);
  ap_process_result_t *result = NULL;
  status = ap_process(input, &options, &result, error);
  ap_io_close(input);
  close_outputs(&outputs, job_run->run->profile.count);
  event->process_seconds = seconds_since(&started);
  if (status != AP_OK) {
    return status;
  }
  event->decode_seconds = ap_process_result_decode_seconds(result);

  /* A lost lease means the new owner writes these keys too: leave them,
   * and write nothing to the asset. */
  if (atomic_load(&job_run->outcome) == RUN_GOING) {
    clock_gettime(CLOCK_MONOTONIC, &started);
    ap_job_progress(context, job_run->id, job_run->token, 0.95, "store", NULL);
    status = store_results(job_run, result, error);
    event->store_seconds = seconds_since(&started);
  }
  ap_process_result_free(result);
  return status;
}

static void emit(job_run_t *job_run, ap_worker_event_t *event,
                 ap_worker_event_kind_t kind) {
  event->kind = kind;
  event->busy_threads = atomic_load(&job_run->run->busy_threads);
  if (job_run->run->options.on_event) {
    job_run->run->options.on_event(job_run->run->options.event_user_data,
                                   event);
  }
}

/* Logs one line about the job with its ids. */
static void log_job(ap_log_level_t level, const char *name,
                    const job_run_t *job_run, const ap_worker_event_t *event,
                    const char *message) {
  ap_log_field_t fields[] = {
      AP_LOG_STRING("asset_id", job_run->asset_id ? job_run->asset_id : ""),
      AP_LOG_STRING("worker_id", job_run->run->worker_id),
      AP_LOG_INT("attempt", event->attempt),
      AP_LOG_STRING("error_code", event->error_code
                                      ? ap_error_code_name(event->error_code)
                                      : ""),
      AP_LOG_STRING("error", event->error_message),
      AP_LOG_DOUBLE("seconds", event->total_seconds)};
  ap_log_write(level, name, NULL, job_run->id, fields,
               sizeof fields / sizeof fields[0], "%s", message);
}

/* Reports a failed attempt and marks the asset failed when the job will
 * not run again. */
static void report_failure(job_run_t *job_run, ap_worker_event_t *event,
                           int code, const char *message, int retryable) {
  ap_context_t *context = job_run->run->context;
  event->error_code = code;
  event->error_message = message;
  ap_error_t error = {0};
  ap_status_t status = ap_job_fail(context, job_run->id, job_run->token, code,
                                   message, retryable, &error);
  if (status == AP_ERR_LEASE_LOST) {
    emit(job_run, event, AP_WORKER_EVENT_LEASE_LOST);
    log_job(AP_LOG_WARN, "job_lease_lost", job_run, event,
            "another worker owns the job now; result dropped");
    return;
  }
  if (status != AP_OK) {
    /* The lease will expire and the next claim re-queues the job. */
    event->error_message = error.message;
    log_job(AP_LOG_ERROR, "job_fail_report_failed", job_run, event,
            "recording the failure failed; the lease will expire instead");
    return;
  }

  ap_job_t *now = NULL;
  int terminal = 0;
  if (ap_job_get(context, NULL, job_run->id, &now, NULL) == AP_OK) {
    terminal = ap_job_state_is_terminal(ap_job_state(now));
  }
  ap_job_free(now);
  if (!terminal) {
    emit(job_run, event, AP_WORKER_EVENT_RETRIED);
    log_job(AP_LOG_WARN, "job_retried", job_run, event,
            "job failed and is queued again after the backoff");
    return;
  }
  if (job_run->asset_id) {
    ap_asset_set_status(context, job_run->asset_id, AP_ASSET_FAILED, code,
                        message, NULL);
  }
  emit(job_run, event, AP_WORKER_EVENT_FAILED);
  log_job(AP_LOG_ERROR, "job_failed", job_run, event,
          "job failed and will not be retried");
}

/* Runs the job's work with the heartbeat thread beside it. */
static ap_status_t run_with_heartbeat(job_run_t *job_run,
                                      ap_worker_event_t *event,
                                      ap_error_t *error) {
  pthread_t heartbeat;
  int heartbeat_started =
      pthread_create(&heartbeat, NULL, heartbeat_loop, job_run) == 0;
  if (!heartbeat_started) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_UNAVAILABLE,
                        "job %s: could not start the heartbeat thread",
                        job_run->id);
  }
  ap_status_t status = process_asset(job_run, event, error);
  pthread_mutex_lock(&job_run->mutex);
  job_run->finished = 1;
  pthread_cond_signal(&job_run->wake);
  pthread_mutex_unlock(&job_run->mutex);
  pthread_join(heartbeat, NULL);
  return status;
}

void ap_worker_run_job(ap_worker_run_state_t *run, ap_job_t *job) {
  job_run_t *job_run = calloc(1, sizeof *job_run);
  if (!job_run) {
    /* The lease expires and another claim takes the job. */
    ap_job_free(job);
    return;
  }
  job_run->run = run;
  job_run->job = job;
  job_run->id = ap_job_id(job);
  job_run->token = ap_job_claim_token(job);
  job_run->asset_id = ap_job_asset_id(job);
  atomic_init(&job_run->outcome, RUN_GOING);
  pthread_mutex_init(&job_run->mutex, NULL);
  pthread_cond_init(&job_run->wake, NULL);
  atomic_fetch_add(&run->busy_threads, 1);

  ap_worker_event_t event;
  memset(&event, 0, sizeof event);
  event.struct_size = sizeof event;
  event.job_id = job_run->id;
  event.job_kind = ap_job_kind(job);
  event.asset_id = job_run->asset_id;
  event.attempt = ap_job_attempts(job);
  event.error_message = "";
  event.threads = run->options.threads;
  emit(job_run, &event, AP_WORKER_EVENT_CLAIMED);
  log_job(AP_LOG_INFO, "job_started", job_run, &event, "job started");

  struct timespec started;
  clock_gettime(CLOCK_MONOTONIC, &started);
  ap_error_t error = {0};
  ap_status_t status = AP_OK;
  if (fault_hook) {
    status = fault_hook(fault_hook_user_data, "start", job, &error);
  }
  if (status == AP_OK && !job_run->asset_id) {
    status = ap_error_set(&error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                          "job %s has no asset id, so there is nothing to "
                          "process",
                          job_run->id);
  }
  if (status == AP_OK) {
    status = run_with_heartbeat(job_run, &event, &error);
  }
  event.total_seconds = seconds_since(&started);

  int outcome = atomic_load(&job_run->outcome);
  if (outcome == RUN_LEASE_LOST) {
    atomic_fetch_sub(&run->busy_threads, 1);
    emit(job_run, &event, AP_WORKER_EVENT_LEASE_LOST);
    log_job(AP_LOG_WARN, "job_lease_lost", job_run, &event,
            "another worker owns the job now; result dropped");
  } else if (outcome == RUN_STOPPED) {
    atomic_fetch_sub(&run->busy_threads, 1);
    emit(job_run, &event, AP_WORKER_EVENT_STOPPED);
    report_failure(job_run, &event, AP_ERR_UNAVAILABLE,
                   "worker stopped before the job finished", 1);
  } else if (status != AP_OK) {
    atomic_fetch_sub(&run->busy_threads, 1);
    report_failure(job_run, &event, (int)status, error.message,
                   ap_error_is_retryable((int)status));
  } else {
    status = ap_job_complete(run->context, job_run->id, job_run->token, NULL,
                             &error);
    atomic_fetch_sub(&run->busy_threads, 1);
    if (status == AP_OK) {
      emit(job_run, &event, AP_WORKER_EVENT_SUCCEEDED);
      log_job(AP_LOG_INFO, "job_succeeded", job_run, &event, "job succeeded");
    } else if (status == AP_ERR_LEASE_LOST) {
      emit(job_run, &event, AP_WORKER_EVENT_LEASE_LOST);
      log_job(AP_LOG_WARN, "job_lease_lost", job_run, &event,
              "another worker owns the job now; result dropped");
    } else {
      event.error_code = (int)status;
      event.error_message = error.message;
      log_job(AP_LOG_ERROR, "job_complete_failed", job_run, &event,
              "completing the job failed; the lease will expire and the job "
              "runs again");
    }
  }

  pthread_mutex_destroy(&job_run->mutex);
  pthread_cond_destroy(&job_run->wake);
  free(job_run);
  ap_job_free(job);
}
