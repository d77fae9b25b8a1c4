/*
 * The public job calls: argument checks, snapshots and their getters, JSON
 * output and the retry backoff. The queue work itself is the backend's
 * (job_sqlite.c for the db queue).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"
#include "notify/notify_internal.h"

/* Maximum stage name length stored, in bytes, as in ap_job_event_t. */
#define MAX_STAGE_BYTES 63

ap_job_t *ap_job_alloc(void) { return calloc(1, sizeof(ap_job_t)); }

void ap_job_free(ap_job_t *job) {
  if (!job) {
    return;
  }
  free(job->id);
  free(job->kind);
  free(job->asset_id);
  free(job->owner);
  free(job->payload_json);
  free(job->result_json);
  free(job->idempotency_key);
  free(job->error_message);
  free(job->stage);
  free(job->lease_owner);
  free(job->claim_token);
  free(job);
}

const char *ap_job_state_name(ap_job_state_t state) {
  switch (state) {
  case AP_JOB_QUEUED:
    return "queued";
  case AP_JOB_RUNNING:
    return "running";
  case AP_JOB_SUCCEEDED:
    return "succeeded";
  case AP_JOB_FAILED:
    return "failed";
  case AP_JOB_DEAD:
    return "dead";
  case AP_JOB_CANCELLED:
    return "cancelled";
  }
  return "unknown";
}

int ap_job_state_is_terminal(ap_job_state_t state) {
  return state == AP_JOB_SUCCEEDED || state == AP_JOB_FAILED ||
         state == AP_JOB_DEAD || state == AP_JOB_CANCELLED;
}

int64_t ap_job_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms,
                          double random_unit) {
  if (attempts < 1) {
    attempts = 1;
  }
  /* Past 2^62 the cap applies anyway, so the exponent stops there. */
  double ceiling =
      (double)base_ms * ldexp(1.0, attempts > 62 ? 62 : attempts - 1);
  if (ceiling > (double)max_ms) {
    ceiling = (double)max_ms;
  }
  return (int64_t)(random_unit * ceiling);
}

void ap_job_enqueue_options_init(ap_job_enqueue_options_t *options) {
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
}

/* Checks that a JSON argument, when given, parses. */
static int is_json_or_null(const char *text) {
  if (!text) {
    return 1;
  }
  json_object *parsed = json_tokener_parse(text);
  if (!parsed) {
    return strcmp(text, "null") == 0;
  }
  json_object_put(parsed);
  return 1;
}

static int is_valid_kind(const char *kind) {
  size_t length = kind ? strlen(kind) : 0;
  if (length < 1 || length > 64) {
    return 0;
  }
  for (size_t i = 0; i < length; i++) {
    char c = kind[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return 0;
    }
  }
  return 1;
}

static ap_meta_store_t *meta_of(ap_context_t *context) {
  return ap_context_meta_store(context);
}

ap_status_t ap_job_enqueue(ap_context_t *context,
                           const ap_job_enqueue_options_t *options,
                           ap_job_t **out, ap_error_t *error) {
  if (!context || !options) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_job_enqueue: context and options must not be "
                        "NULL");
  }
  if (!is_valid_kind(options->kind)) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "kind: must be 1 to 64 characters of a-z, 0-9 and _");
  }
  if (!is_json_or_null(options->payload_json)) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "payload_json: not valid JSON");
  }
  size_t key_length =
      options->idempotency_key ? strlen(options->idempotency_key) : 1;
  if (key_length < 1 || key_length > 255) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "idempotency_key: must be 1 to 255 bytes");
  }
  if (options->max_attempts < 0 || options->max_attempts > 100 ||
      options->delay_ms < 0) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "max_attempts = %d or delay_ms = %lld is out of "
                        "range: use 0 to 100 attempts and a delay >= 0",
                        options->max_attempts, (long long)options->delay_ms);
  }

  ap_job_t *job = NULL;
  ap_status_t status = meta_of(context)->backend->job_enqueue(
      meta_of(context)->state, options, ap_time_now_ms(), &job, error);
  if (status != AP_OK) {
    return status;
  }
  /* The backend has committed, so a worker woken now finds the job. */
  ap_notify_job_enqueued(ap_context_notifier(context), job);
  if (out) {
    *out = job;
  } else {
    ap_job_free(job);
  }
  return AP_OK;
}

/* Checks the arguments every lease holder's call shares. */
static ap_status_t check_lease_arguments(const char *function,
                                         ap_context_t *context,
                                         const char *job_id, const char *token,
                                         ap_error_t *error) {
  if (!context || !job_id || !token) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "%s: context, job_id and token must not be NULL",
                        function);
  }
  return AP_OK;
}

ap_status_t ap_job_claim(ap_context_t *context, const char *worker_id,
                         int64_t lease_ms, const char *const *kinds,
                         size_t kind_count, ap_job_t **out, ap_error_t *error) {
  if (!context || !worker_id || !*worker_id || !out ||
      (kind_count > 0 && !kinds)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_job_claim: context, worker_id, out (and kinds "
                        "when kind_count > 0) must be given");
  }
  if (lease_ms < 1) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "lease_ms = %lld must be at least 1",
                        (long long)lease_ms);
  }
  *out = NULL;
  ap_status_t status = meta_of(context)->backend->job_claim(
      meta_of(context)->state, worker_id, lease_ms, kinds, kind_count,
      ap_time_now_ms(), out, error);
  if (status == AP_OK && *out) {
    ap_notify_job_event(ap_context_notifier(context), (*out)->id, "running",
                        -1.0, NULL, (*out)->updated_at_ms);
  }
  return status;
}

ap_status_t ap_job_heartbeat(ap_context_t *context, const char *job_id,
                             const char *token, int64_t lease_ms,
                             ap_error_t *error) {
  ap_status_t status =
      check_lease_arguments(__func__, context, job_id, token, error);
  if (status != AP_OK) {
    return status;
  }
  if (lease_ms < 1) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "lease_ms = %lld must be at least 1",
                        (long long)lease_ms);
  }
  return meta_of(context)->backend->job_heartbeat(meta_of(context)->state,
                                                  job_id, token, lease_ms,
                                                  ap_time_now_ms(), error);
}

ap_status_t ap_job_progress(ap_context_t *context, const char *job_id,
                            const char *token, double fraction,
                            const char *stage, ap_error_t *error) {
  ap_status_t status =
      check_lease_arguments(__func__, context, job_id, token, error);
  if (status != AP_OK) {
    return status;
  }
  if (!(fraction >= 0.0)) {
    fraction = 0.0; /* also catches NaN */
  }
  if (fraction > 1.0) {
    fraction = 1.0;
  }
  char stage_copy[MAX_STAGE_BYTES + 1] = "";
  if (stage) {
    snprintf(stage_copy, sizeof stage_copy, "%s", stage);
  }
  int64_t now_ms = ap_time_now_ms();
  status = meta_of(context)->backend->job_progress(
      meta_of(context)->state, job_id, token, fraction,
      stage ? stage_copy : NULL, now_ms, error);
  if (status == AP_OK) {
    ap_notify_job_event(ap_context_notifier(context), job_id, "running",
                        fraction, stage ? stage_copy : NULL, now_ms);
  }
  return status;
}

ap_status_t ap_job_complete(ap_context_t *context, const char *job_id,
                            const char *token, const char *result_json,
                            ap_error_t *error) {
  ap_status_t status =
      check_lease_arguments(__func__, context, job_id, token, error);
  if (status != AP_OK) {
    return status;
  }
  if (!is_json_or_null(result_json)) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "result_json of job %s is not valid JSON", job_id);
  }
  int64_t now_ms = ap_time_now_ms();
  status = meta_of(context)->backend->job_complete(
      meta_of(context)->state, job_id, token, result_json, now_ms, error);
  if (status == AP_OK) {
    ap_notify_job_event(ap_context_notifier(context), job_id, "succeeded", -1.0,
                        NULL, now_ms);
  }
  return status;
}

ap_status_t ap_job_fail(ap_context_t *context, const char *job_id,
                        const char *token, int error_code, const char *message,
                        int retryable, ap_error_t *error) {
  ap_status_t status =
      check_lease_arguments(__func__, context, job_id, token, error);
  if (status != AP_OK) {
    return status;
  }
  if (error_code <= 0) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_INVALID_ARGUMENT,
                        "error_code = %d: pass the ap_error_code_t of the "
                        "failure",
                        error_code);
  }
  int64_t now_ms = ap_time_now_ms();
  status = meta_of(context)->backend->job_fail(meta_of(context)->state, job_id,
                                               token, error_code, message,
                                               retryable, now_ms, error);
  if (status == AP_OK) {
    /* Queued again, failed or dead: the backend decided, so watches read
     * the record. */
    ap_notify_job_event(ap_context_notifier(context), job_id, NULL, -1.0, NULL,
                        now_ms);
  }
  return status;
}

ap_status_t ap_job_cancel(ap_context_t *context, const char *owner,
                          const char *job_id, ap_error_t *error) {
  if (!context || !job_id) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_job_cancel: context and job_id must not be NULL");
  }
  int64_t now_ms = ap_time_now_ms();
  ap_status_t status = meta_of(context)->backend->job_cancel(
      meta_of(context)->state, owner, job_id, now_ms, error);
  if (status == AP_OK) {
    ap_notify_job_event(ap_context_notifier(context), job_id, "cancelled", -1.0,
                        NULL, now_ms);
  }
  return status;
}

ap_status_t ap_job_reap(ap_context_t *context, int64_t now_ms, int64_t *count,
                        ap_error_t *error) {
  if (!context) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_job_reap: context must not be NULL");
  }
  int64_t reaped = 0;
  ap_status_t status = meta_of(context)->backend->job_reap(
      meta_of(context)->state, now_ms > 0 ? now_ms : ap_time_now_ms(), &reaped,
      error);
  if (status == AP_OK && count) {
    *count = reaped;
  }
  return status;
}

ap_status_t ap_job_get(ap_context_t *context, const char *owner,
                       const char *job_id, ap_job_t **out, ap_error_t *error) {
  if (!context || !job_id || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_job_get: context, job_id and out must not be "
                        "NULL");
  }
  return meta_of(context)->backend->job_get(meta_of(context)->state, owner,
                                            job_id, out, error);
}

ap_status_t ap_job_stats(ap_context_t *context, ap_job_stats_t *stats,
                         ap_error_t *error) {
  if (!context || !stats) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_job_stats: context and stats must not be NULL");
  }
  memset(stats, 0, sizeof *stats);
  stats->struct_size = sizeof *stats;
  return meta_of(context)->backend->job_stats(meta_of(context)->state,
                                              ap_time_now_ms(), stats, error);
}

const char *ap_job_id(const ap_job_t *job) { return job->id; }
const char *ap_job_kind(const ap_job_t *job) { return job->kind; }
const char *ap_job_asset_id(const ap_job_t *job) { return job->asset_id; }
const char *ap_job_owner(const ap_job_t *job) { return job->owner; }
ap_job_state_t ap_job_state(const ap_job_t *job) {
  return (ap_job_state_t)job->state;
}
const char *ap_job_payload_json(const ap_job_t *job) {
  return job->payload_json;
}
const char *ap_job_result_json(const ap_job_t *job) { return job->result_json; }
const char *ap_job_idempotency_key(const ap_job_t *job) {
  return job->idempotency_key;
}
int ap_job_attempts(const ap_job_t *job) { return job->attempts; }
int ap_job_max_attempts(const ap_job_t *job) { return job->max_attempts; }
int ap_job_error_code(const ap_job_t *job) { return job->error_code; }
const char *ap_job_error_message(const ap_job_t *job) {
  return job->error_message;
}
double ap_job_progress_fraction(const ap_job_t *job) { return job->progress; }
const char *ap_job_stage(const ap_job_t *job) { return job->stage; }
const char *ap_job_lease_owner(const ap_job_t *job) { return job->lease_owner; }
int64_t ap_job_lease_expires_at_ms(const ap_job_t *job) {
  return job->lease_expires_at_ms;
}
const char *ap_job_claim_token(const ap_job_t *job) { return job->claim_token; }
int64_t ap_job_due_at_ms(const ap_job_t *job) { return job->due_at_ms; }
int64_t ap_job_created_at_ms(const ap_job_t *job) { return job->created_at_ms; }
int64_t ap_job_updated_at_ms(const ap_job_t *job) { return job->updated_at_ms; }

static void add_string(json_object *object, const char *key, const char *text) {
  json_object_object_add(object, key,
                         text ? json_object_new_string(text) : NULL);
}

ap_status_t ap_job_to_json(const ap_job_t *job, char **json,
                           ap_error_t *error) {
  if (!job || !json) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_job_to_json: job and json must not be NULL");
  }
  json_object *root = json_object_new_object();
  if (!root) {
    return AP_NO_MEMORY(error);
  }
  add_string(root, "id", job->id);
  add_string(root, "kind", job->kind);
  add_string(root, "asset_id", job->asset_id);
  add_string(root, "state", ap_job_state_name(job->state));
  json_object_object_add(root, "progress",
                         json_object_new_double(job->progress));
  add_string(root, "stage", job->stage);
  json_object_object_add(root, "attempts", json_object_new_int(job->attempts));
  json_object_object_add(root, "max_attempts",
                         json_object_new_int(job->max_attempts));
  json_object_object_add(root, "result",
                         job->result_json ? json_tokener_parse(job->result_json)
                                          : NULL);
  if (job->error_code != 0) {
    json_object *failure = json_object_new_object();
    add_string(failure, "code", ap_error_code_name(job->error_code));
    add_string(failure, "message", job->error_message);
    json_object_object_add(root, "error", failure);
  } else {
    json_object_object_add(root, "error", NULL);
  }
  json_object_object_add(root, "due_at_ms",
                         json_object_new_int64(job->due_at_ms));
  json_object_object_add(root, "created_at_ms",
                         json_object_new_int64(job->created_at_ms));
  json_object_object_add(root, "updated_at_ms",
                         json_object_new_int64(job->updated_at_ms));

  const char *text =
      json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
  *json = text ? strdup(text) : NULL;
  json_object_put(root);
  return *json ? AP_OK : AP_NO_MEMORY(error);
}
