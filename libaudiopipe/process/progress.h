/*
 * Progress reporting for ap_process: keeps the fraction non-decreasing
 * across passes and calls the caller's callback at most every 50 ms. Used
 * on the calling thread only.
 */
#ifndef AP_PROCESS_PROGRESS_H
#define AP_PROCESS_PROGRESS_H

#include <audiopipe/common.h>

typedef struct ap_progress {
  ap_progress_fn callback; /* NULL: reporting is off */
  void *user_data;
  double last_fraction;
  double last_call_seconds; /* monotonic clock; negative before any call */
} ap_progress_t;

void ap_progress_init(ap_progress_t *progress, ap_progress_fn callback,
                      void *user_data);

/*
 * Reports `fraction` (clamped to 0..1 and to at least the last value) for
 * `stage`. Unless `force` is set, skips the call when the last one was
 * less than 50 ms ago. Returns the callback's value: non-zero requests
 * cancellation.
 */
int ap_progress_report(ap_progress_t *progress, double fraction,
                       const char *stage, int force);

/* Seconds on the monotonic clock. */
double ap_monotonic_seconds(void);

#endif
