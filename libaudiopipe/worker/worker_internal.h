/*
 * What the files of the worker area share: the parsed processing profile,
 * the per-job runner, and a fault hook through which tests make a stage
 * fail.
 */
#ifndef AP_WORKER_WORKER_INTERNAL_H
#define AP_WORKER_WORKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <audiopipe/context.h>
#include <audiopipe/job.h>
#include <audiopipe/rendition.h>
#include <audiopipe/waveform.h>
#include <audiopipe/worker.h>

/* Maximum number of items in one profile. */
#define AP_PROFILE_MAX_ITEMS 32

/* Maximum length of a profile item name, NUL included. */
#define AP_PROFILE_NAME_SIZE 48

/* One waveform or rendition of the processing profile. */
typedef struct ap_profile_item {
  int is_waveform;
  /* Waveforms. */
  ap_waveform_format_t format;
  int bits;
  int samples_per_pixel; /* exactly one of these two is non-zero */
  int pixels_per_second;
  /* Renditions. */
  ap_rendition_codec_t codec;
  int64_t bitrate;     /* bits per second, 0 for FLAC and WAV */
  int bits_per_sample; /* 16 or 24 for FLAC and WAV, 0 otherwise */
  /* Both. */
  char name[AP_PROFILE_NAME_SIZE];
  const char *extension;    /* static: "dat", "ogg", ... */
  const char *content_type; /* static */
} ap_profile_item_t;

typedef struct ap_profile {
  ap_profile_item_t *items;
  size_t count;
} ap_profile_t;

/* Parses `text` into `*profile` (free with ap_profile_free). Errors as
 * for ap_worker_profile_validate. */
ap_status_t ap_profile_parse(const char *text, ap_profile_t *profile,
                             ap_error_t *error);
void ap_profile_free(ap_profile_t *profile);

/* The handle of <audiopipe/worker.h>. */
struct ap_worker {
  atomic_int stop_requested;
};

/* The state of one ap_worker_run, shared by its threads. Everything but
 * the atomics is set before the threads start and read-only after. */
typedef struct ap_worker_run_state {
  ap_context_t *context;
  ap_worker_options_t options; /* defaults filled in */
  char worker_id[128];
  ap_profile_t profile;
  atomic_int busy_threads;
  /* 0 until a stop is requested, then the wall-clock time in ms after
   * which running jobs are cancelled. */
  atomic_llong drain_deadline_ms;
  /* Idle claim threads wait on `wake` (CLOCK_MONOTONIC) until
   * `wake_generation` changes, which a Redis wake-up does, or until the
   * poll interval ends. */
  pthread_mutex_t wake_lock;
  pthread_cond_t wake;
  uint64_t wake_generation; /* under wake_lock */
} ap_worker_run_state_t;

/* Returns 1 once a stop has been requested. */
int ap_worker_stopping(const ap_worker_run_state_t *run);

/* Runs one claimed job to its end: completed, failed, re-queued or
 * dropped on a lost lease. Takes ownership of `job`. */
void ap_worker_run_job(ap_worker_run_state_t *run, ap_job_t *job);

/*
 * Test hook: when set, called at the start of every job with the stage
 * "start"; a status other than AP_OK (with `error` filled) makes the
 * attempt fail with that error before anything is read. Process-wide;
 * set it before ap_worker_run starts and clear it after it returns.
 */
typedef ap_status_t (*ap_worker_fault_fn)(void *user_data, const char *stage,
                                          const ap_job_t *job,
                                          ap_error_t *error);
void ap_worker_set_fault_hook(ap_worker_fault_fn hook, void *user_data);

#endif
