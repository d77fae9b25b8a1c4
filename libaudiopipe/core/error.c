/* Error codes, their names, and the error hook. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <pthread.h>

#include "core/error_internal.h"

typedef struct code_entry {
  int code;
  const char *name;
  const char *description;
  int retryable;
  int reportable;
} code_entry_t;

static const code_entry_t code_table[] = {
    {AP_OK, "ok", "success", 0, 0},
    {AP_ERR_INVALID_ARGUMENT, "invalid_argument", "invalid argument", 0, 0},
    {AP_ERR_NO_MEMORY, "no_memory", "out of memory", 1, 1},
    {AP_ERR_IO, "io_error", "input/output error", 1, 1},
    {AP_ERR_NOT_FOUND, "not_found", "not found", 0, 0},
    {AP_ERR_CANCELLED, "cancelled", "cancelled by the caller", 0, 0},
    {AP_ERR_UNSUPPORTED, "unsupported", "not supported", 0, 0},
    {AP_ERR_INVALID_CONFIG, "invalid_config", "invalid configuration", 0, 0},
    {AP_ERR_INTERNAL, "internal", "internal error", 0, 1},
    {AP_ERR_CONFLICT, "conflict", "state changed concurrently", 1, 0},
    {AP_ERR_UNAVAILABLE, "unavailable", "backend unavailable", 1, 1},
    {AP_ERR_TIMED_OUT, "timed_out", "operation timed out", 1, 1},
    {AP_ERR_PERMISSION, "permission_denied", "permission denied", 0, 0},
    {AP_ERR_EMPTY_INPUT, "empty_input", "input is empty", 0, 0},
    {AP_ERR_NOT_AUDIO, "not_audio", "input is not audio", 0, 0},
    {AP_ERR_MULTIPART_BODY, "multipart_body",
     "input is a multipart form body, not audio", 0, 0},
    {AP_ERR_UNSUPPORTED_CODEC, "unsupported_codec", "unsupported codec", 0, 0},
    {AP_ERR_CHANNELS_UNSUPPORTED, "unsupported_channel_count",
     "unsupported channel count", 0, 0},
    {AP_ERR_SAMPLE_RATE_UNSUPPORTED, "unsupported_sample_rate",
     "unsupported sample rate", 0, 0},
    {AP_ERR_INPUT_TOO_LARGE, "input_too_large", "input exceeds size limit", 0,
     0},
    {AP_ERR_DURATION_LIMIT, "duration_limit", "audio exceeds duration limit",
     0, 0},
    {AP_ERR_DECODE_TIME_LIMIT, "decode_time_limit",
     "decoding exceeded its time limit", 0, 0},
    {AP_ERR_SAMPLE_BUDGET, "sample_budget",
     "decoded samples exceed the budget", 0, 0},
    {AP_ERR_CORRUPT_INPUT, "corrupt_input", "input is corrupt", 0, 0},
    {AP_ERR_ENCODE, "encode_failed", "encoding failed", 0, 1},
    {AP_ERR_FORMAT_MISMATCH, "format_mismatch",
     "content does not match its declared type", 0, 0},
    {AP_ERR_UPLOAD_TOO_LARGE, "upload_too_large", "upload exceeds size limit",
     0, 0},
    {AP_ERR_SIZE_MISMATCH, "size_mismatch",
     "stored size differs from declared size", 0, 0},
    {AP_ERR_CONTENT_TYPE, "content_type_not_allowed",
     "content type not allowed", 0, 0},
    {AP_ERR_INVALID_FILENAME, "invalid_filename", "invalid filename", 0, 0},
    {AP_ERR_EXPIRED, "expired", "expired", 0, 0},
    {AP_ERR_SIGNATURE, "signature_mismatch", "signature does not match", 0, 0},
    {AP_ERR_INFECTED, "infected", "virus scanner found a signature", 0, 0},
    {AP_ERR_UPLOAD_STATE, "upload_state", "upload is not pending", 0, 0},
    {AP_ERR_OBJECT_MISSING, "object_missing", "no object was uploaded", 0, 0},
    {AP_ERR_LEASE_LOST, "lease_lost", "job lease is no longer held", 0, 0},
    {AP_ERR_JOB_STATE, "job_state", "job is not in a state that allows this",
     0, 0},
    {AP_ERR_RATE_LIMITED, "rate_limited", "rate limit exceeded", 1, 0},
};

static const code_entry_t *find_code(int code) {
  for (size_t i = 0; i < sizeof code_table / sizeof code_table[0]; i++) {
    if (code_table[i].code == code) {
      return &code_table[i];
    }
  }
  return NULL;
}

const char *ap_error_code_name(int code) {
  const code_entry_t *entry = find_code(code);
  return entry ? entry->name : "unknown";
}

const char *ap_error_code_description(int code) {
  const code_entry_t *entry = find_code(code);
  return entry ? entry->description : "unknown error";
}

int ap_error_is_retryable(int code) {
  const code_entry_t *entry = find_code(code);
  return entry ? entry->retryable : 0;
}

int ap_error_is_reportable(int code) {
  const code_entry_t *entry = find_code(code);
  return entry ? entry->reportable : 1;
}

const char *ap_error_domain_name(int domain) {
  static const char *const names[] = {"none",   "core",    "io",
                                      "media",  "upload",  "meta",
                                      "storage", "queue",  "http"};
  if (domain < 0 || (size_t)domain >= sizeof names / sizeof names[0]) {
    return "unknown";
  }
  return names[domain];
}

void ap_error_clear(ap_error_t *error) {
  if (error) {
    memset(error, 0, sizeof *error);
  }
}

/* The hook and its argument change together, so a reader never pairs one
 * hook with another's user data. */
static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static ap_error_hook_fn error_hook;
static void *error_hook_user_data;

void ap_set_error_hook(ap_error_hook_fn hook, void *user_data) {
  pthread_mutex_lock(&hook_lock);
  error_hook = hook;
  error_hook_user_data = user_data;
  pthread_mutex_unlock(&hook_lock);
}

static void call_error_hook(const ap_error_t *error) {
  pthread_mutex_lock(&hook_lock);
  ap_error_hook_fn hook = error_hook;
  void *user_data = error_hook_user_data;
  pthread_mutex_unlock(&hook_lock);

  if (hook) {
    hook(user_data, error);
  }
}

ap_status_t ap_error_set(ap_error_t *error, ap_error_domain_t domain,
                         ap_error_code_t code, const char *format, ...) {
  ap_error_t local;
  ap_error_t *target = error ? error : &local;

  target->domain = (uint32_t)domain;
  target->code = (uint32_t)code;

  va_list args;
  va_start(args, format);
  vsnprintf(target->message, sizeof target->message, format, args);
  va_end(args);

  if (ap_error_is_reportable((int)code)) {
    call_error_hook(target);
  }
  return (ap_status_t)code;
}

ap_status_t ap_error_prefix(ap_error_t *error, const char *format, ...) {
  if (!error) {
    return AP_OK;
  }

  char prefix[AP_ERROR_MESSAGE_SIZE];
  va_list args;
  va_start(args, format);
  vsnprintf(prefix, sizeof prefix, format, args);
  va_end(args);

  /* Truncation is acceptable: the message keeps its start and its code. */
  char combined[2 * AP_ERROR_MESSAGE_SIZE + 2];
  snprintf(combined, sizeof combined, "%s: %s", prefix, error->message);
  combined[sizeof error->message - 1] = '\0';
  memcpy(error->message, combined, sizeof error->message);
  return (ap_status_t)error->code;
}
