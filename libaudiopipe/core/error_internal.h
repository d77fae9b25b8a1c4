/*
 * Internal helpers for filling ap_error_t. Every failure path inside the
 * library goes through ap_error_set so messages are formatted one way and
 * the host's error hook sees each error once.
 */
#ifndef AP_CORE_ERROR_INTERNAL_H
#define AP_CORE_ERROR_INTERNAL_H

#include <audiopipe/error.h>

/*
 * Fills `error` (which may be NULL) and returns `code`, so a failure path
 * reads `return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_NOT_AUDIO, ...)`.
 * The message should name the value at fault and the fix. Errors caused by
 * caller input (invalid arguments, rejected uploads) are not sent to the
 * error hook; see ap_error_is_reportable.
 */
ap_status_t ap_error_set(ap_error_t *error, ap_error_domain_t domain,
                         ap_error_code_t code, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefixes an existing message with context ("rendition opus_64k: ...")
 * and returns its code. Does nothing when `error` is NULL. */
ap_status_t ap_error_prefix(ap_error_t *error, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Returns 1 if errors with `code` reach the host's error hook: bugs,
 * backend and I/O failures, not validation of caller or user input. */
int ap_error_is_reportable(int code);

/* Shorthand for the most common failure. */
#define AP_NO_MEMORY(error)                                                    \
  ap_error_set((error), AP_DOMAIN_CORE, AP_ERR_NO_MEMORY,                      \
               "out of memory in %s", __func__)

#endif
