/* Rate-limited, non-decreasing progress reports. */
#include <time.h>

#include "process/progress.h"

/* At most 20 calls a second. */
#define PROGRESS_INTERVAL_SECONDS 0.05

double ap_monotonic_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

void ap_progress_init(ap_progress_t *progress, ap_progress_fn callback,
                      void *user_data) {
  progress->callback = callback;
  progress->user_data = user_data;
  progress->last_fraction = 0.0;
  progress->last_call_seconds = -1.0;
}

int ap_progress_report(ap_progress_t *progress, double fraction,
                       const char *stage, int force) {
  if (!progress->callback) {
    return 0;
  }

  double now = ap_monotonic_seconds();
  if (!force && progress->last_call_seconds >= 0.0 &&
      now - progress->last_call_seconds < PROGRESS_INTERVAL_SECONDS) {
    return 0;
  }

  if (!(fraction >= progress->last_fraction)) {
    fraction = progress->last_fraction;
  }
  if (fraction > 1.0) {
    fraction = 1.0;
  }
  progress->last_fraction = fraction;
  progress->last_call_seconds = now;
  return progress->callback(progress->user_data, fraction, stage);
}
