/*
 * Definitions shared by every public header: the export macro, the status
 * type, memory release for strings the library returns, and the progress
 * callback type.
 */
#ifndef AUDIOPIPE_COMMON_H
#define AUDIOPIPE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(AP_BUILDING_LIBRARY)
#define AP_EXPORT __attribute__((visibility("default")))
#else
#define AP_EXPORT
#endif

/*
 * Status returned by every function that can fail: AP_OK (zero) on success,
 * otherwise one of the ap_error_code_t values from <audiopipe/error.h>, which
 * the optional ap_error_t out-parameter explains.
 */
typedef int ap_status_t;

#define AP_OK 0

/*
 * Releases memory the library returned to the caller (JSON strings, byte
 * buffers). Passing NULL is allowed. Thread-safe.
 */
AP_EXPORT void ap_free(void *pointer);

/*
 * Progress callback for long operations. `fraction` runs from 0.0 to 1.0
 * and never decreases within one operation; `stage` is a short static
 * string such as "probe", "decode" or "encode". Return zero to continue or
 * non-zero to cancel: the operation then stops as soon as it can and fails
 * with AP_ERR_CANCELLED. The callback runs on the thread that called the
 * operation, never concurrently with itself.
 */
typedef int (*ap_progress_fn)(void *user_data, double fraction,
                              const char *stage);

/* Returns the library's version string, such as "0.1.0". */
AP_EXPORT const char *ap_version_string(void);

#ifdef __cplusplus
}
#endif

#endif
