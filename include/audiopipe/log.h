/*
 * Structured logging: one JSON object per line with stable keys, written to
 * a sink (stderr unless the host installs its own).
 *
 * Every line starts with the same keys in the same order:
 *
 *   {"ts":"2026-12-04T16:07:48.123Z","level":"info","event":"job_started",
 *    "request_id":"...","job_id":"...","msg":"...", <fields...>}
 *
 * `ts` is RFC 3339 in UTC with milliseconds, `level` is one of "debug",
 * "info", "warn", "error", `event` is a snake_case name that stays stable
 * across releases, `request_id` and `job_id` appear only when known, and
 * the caller's fields follow. Warnings and errors are rate-limited per
 * event name: past the burst, lines are dropped and counted, and the next
 * line of that event that passes carries the count as "suppressed". Debug
 * and info lines (access logs, job lifecycle) are never dropped.
 *
 * Fields whose key names a secret or personal data (api_key, signature,
 * secret, authorization, password, token, cookie, filename, and keys that
 * contain those words) are written as "[redacted]", whatever the caller
 * passes. The free-text message is not inspected, so callers must keep
 * secrets out of it.
 *
 * Thread-safety: every function here may be called from any thread.
 */
#ifndef AUDIOPIPE_LOG_H
#define AUDIOPIPE_LOG_H

#include <audiopipe/common.h>
#include <audiopipe/config.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Severity. Lines below the configured level are dropped cheaply. */
typedef enum ap_log_level {
  AP_LOG_DEBUG = 10,
  AP_LOG_INFO = 20,
  AP_LOG_WARN = 30,
  AP_LOG_ERROR = 40
} ap_log_level_t;

/* Type of one structured field's value. */
typedef enum ap_log_field_type {
  AP_LOG_FIELD_STRING = 1, /* NULL is written as JSON null */
  AP_LOG_FIELD_INT = 2,
  AP_LOG_FIELD_DOUBLE = 3, /* NaN and infinities are written as null */
  AP_LOG_FIELD_BOOL = 4
} ap_log_field_type_t;

/* One key and value. The strings are only read during the call. */
typedef struct ap_log_field {
  const char *key; /* snake_case */
  ap_log_field_type_t type;
  union {
    const char *string;
    int64_t integer;
    double number;
    int boolean;
  } value;
} ap_log_field_t;

/* Field constructors, for building an ap_log_field_t array in place. */
#define AP_LOG_STRING(k, v)                                                    \
  ((ap_log_field_t){                                                           \
      .key = (k), .type = AP_LOG_FIELD_STRING, .value.string = (v)})
#define AP_LOG_INT(k, v)                                                       \
  ((ap_log_field_t){                                                           \
      .key = (k), .type = AP_LOG_FIELD_INT, .value.integer = (int64_t)(v)})
#define AP_LOG_DOUBLE(k, v)                                                    \
  ((ap_log_field_t){                                                           \
      .key = (k), .type = AP_LOG_FIELD_DOUBLE, .value.number = (double)(v)})
#define AP_LOG_BOOL(k, v)                                                      \
  ((ap_log_field_t){                                                           \
      .key = (k), .type = AP_LOG_FIELD_BOOL, .value.boolean = !!(v)})

/*
 * Sink: receives each finished line (JSON, no trailing newline, `length`
 * bytes, NUL-terminated) on the thread that logged it, possibly
 * concurrently with itself. It must not call back into the logger.
 */
typedef void (*ap_log_sink_fn)(void *user_data, ap_log_level_t level,
                               const char *line, size_t length);

/*
 * Installs the sink that receives every line. NULL restores the default,
 * which writes each line and a newline to stderr in one write(2) call.
 */
AP_EXPORT void ap_log_set_sink(ap_log_sink_fn sink, void *user_data);

/* Sets the lowest level that is written (default AP_LOG_INFO). */
AP_EXPORT void ap_log_set_level(ap_log_level_t level);

/* Returns the lowest level that is written. */
AP_EXPORT ap_log_level_t ap_log_get_level(void);

/* Returns 1 when a line at `level` would be written, so callers can skip
 * building expensive fields. */
AP_EXPORT int ap_log_enabled(ap_log_level_t level);

/*
 * Sets the repeat limit for warnings and errors: at most `burst` lines of
 * one event name per `interval_ms` milliseconds (default 20 per 1000 ms).
 * A `burst` of 0 turns rate limiting off.
 */
AP_EXPORT void ap_log_set_rate_limit(unsigned burst, unsigned interval_ms);

/*
 * Applies the log.* configuration keys (log.level, log.rate_limit_burst,
 * log.rate_limit_interval). Fails with AP_ERR_INVALID_CONFIG naming a key
 * whose value is out of range, leaving the current settings unchanged.
 */
AP_EXPORT ap_status_t ap_log_configure(const ap_config_t *config,
                                       ap_error_t *error);

/* Parses "debug", "info", "warn" (or "warning") and "error". Returns 0 on
 * success and -1 for any other text. */
AP_EXPORT int ap_log_level_parse(const char *text, ap_log_level_t *level);

/* Returns the name of a level as written in the `level` key. Static. */
AP_EXPORT const char *ap_log_level_name(ap_log_level_t level);

/*
 * Returns 1 when values of a field named `key` are redacted: the key
 * contains, case-insensitively, one of the denylisted words above.
 */
AP_EXPORT int ap_log_key_is_redacted(const char *key);

/*
 * Writes one line. `event` is required; `request_id`, `job_id` and
 * `message_format` may be NULL. `fields` contains `field_count` extra
 * key/value pairs written after the standard keys; a field that reuses a
 * standard key name is dropped. Lines longer than 16 KiB are cut at a
 * character boundary and marked with "truncated":true.
 */
AP_EXPORT void ap_log_write(ap_log_level_t level, const char *event,
                            const char *request_id, const char *job_id,
                            const ap_log_field_t *fields, size_t field_count,
                            const char *message_format, ...)
    __attribute__((format(printf, 7, 8)));

/*
 * Writes one "log_suppressed" line for every event that has lines dropped
 * by the rate limit and not yet reported, then resets the counts. Call it
 * at shutdown so the last counts are not lost.
 */
AP_EXPORT void ap_log_flush_suppressed(void);

#ifdef __cplusplus
}
#endif

#endif
