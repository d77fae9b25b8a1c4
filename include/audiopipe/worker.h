/*
 * The background worker: threads that claim process_asset jobs, decode
 * each asset's original once with ap_process, store the renditions and
 * waveforms of the processing profile in the object store, write the
 * results to the asset and complete the job.
 *
 * Each job runs in this order, so a crash at any point re-runs the job
 * and overwrites the same object keys (the keys derive from the asset id
 * and the profile item, never from the file name):
 *
 *   claim (lease) -> asset processing -> ap_process into the objects
 *   -> asset results and status ready -> ap_job_complete.
 *
 * A heartbeat thread renews the lease every heartbeat interval while the
 * job runs, so a long decode of a healthy job keeps its lease for as long
 * as the metadata store accepts the renewals within the lease. When
 * the lease is lost (AP_ERR_LEASE_LOST: the job was re-queued, claimed by
 * another worker or cancelled), the worker cancels ap_process, discards
 * its result and deletes nothing, because the new owner writes the same
 * keys.
 *
 * Failures: a retryable error (ap_error_is_retryable) re-queues the job
 * with backoff until its attempts are used up; any other error fails the
 * job at once. When the job ends failed or dead, the asset is marked
 * failed with the same code and message.
 *
 * Stopping: after ap_worker_request_stop no thread claims again. Running
 * jobs get until the drain timeout to finish. A job still running then is
 * cancelled and reported with ap_job_fail as retryable AP_ERR_UNAVAILABLE
 * "worker stopped", which re-queues it after the retry backoff for
 * another worker. That attempt counts, so a job stopped on its last
 * attempt becomes dead. ap_worker_run returns when every thread has
 * stopped.
 *
 * Processing profile (processing.profile, or the options' profile): items
 * separated by commas, each "waveform=FORMAT:BITS:SCALE" or
 * "rendition=CODEC[:RATE]".
 *   FORMAT  dat or json
 *   BITS    8 or 16
 *   SCALE   samples per pixel (256), or ppsN for N pixels per second
 *   CODEC   opus, mp3, aac, flac or wav
 *   RATE    bit rate of a lossy codec in bits per second, with an optional
 *           k suffix (64k); for flac and wav the sample size, 16bit or
 *           24bit
 * Example: waveform=dat:16:256,waveform=json:8:pps20,rendition=opus:64k,
 * rendition=mp3:128k. Names: a waveform is FORMAT_BITSbit_SCALE
 * ("dat_16bit_256spp", "json_8bit_20pps"), a rendition CODEC_RATE
 * ("opus_64k", "flac_16bit"); two items with one name are rejected. Keys
 * are derived/<asset id>/waveform_<name>.<dat|json> and
 * derived/<asset id>/<name>.<ogg|mp3|m4a|flac|wav>.
 *
 * Thread-safety: ap_worker_run blocks its caller; several may run on one
 * context. ap_worker_request_stop is async-signal-safe.
 */
#ifndef AUDIOPIPE_WORKER_H
#define AUDIOPIPE_WORKER_H

#include <audiopipe/common.h>
#include <audiopipe/context.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The profile used when neither the options nor processing.profile set
 * one. */
#define AP_WORKER_DEFAULT_PROFILE                                              \
  "waveform=dat:16:256,waveform=json:8:pps20,rendition=opus:64k,"              \
  "rendition=mp3:128k"

/* Handle through which another thread (or a signal handler) stops a
 * running ap_worker_run. */
typedef struct ap_worker ap_worker_t;

/* Creates a handle. Free it with ap_worker_free after ap_worker_run has
 * returned. */
AP_EXPORT ap_status_t ap_worker_new(ap_worker_t **out, ap_error_t *error);

/* Asks the ap_worker_run using `worker` to stop: no more claims, then
 * drain. Async-signal-safe; calling it again changes nothing. */
AP_EXPORT void ap_worker_request_stop(ap_worker_t *worker);

/* Frees a handle. NULL is allowed. */
AP_EXPORT void ap_worker_free(ap_worker_t *worker);

/* What an event reports. */
typedef enum ap_worker_event_kind {
  AP_WORKER_EVENT_CLAIMED = 0,    /* a thread claimed a job */
  AP_WORKER_EVENT_SUCCEEDED = 1,  /* the job completed */
  AP_WORKER_EVENT_RETRIED = 2,    /* failed, queued again with backoff */
  AP_WORKER_EVENT_FAILED = 3,     /* failed for good (failed or dead) */
  AP_WORKER_EVENT_LEASE_LOST = 4, /* another worker owns the job now */
  AP_WORKER_EVENT_STOPPED = 5     /* cancelled by the drain timeout */
} ap_worker_event_kind_t;

/* One event, valid only during the callback. */
typedef struct ap_worker_event {
  size_t struct_size; /* sizeof(ap_worker_event_t) */
  ap_worker_event_kind_t kind;
  const char *job_id;
  const char *job_kind;
  const char *asset_id;      /* NULL for jobs without an asset */
  int attempt;               /* 1 for the first attempt */
  int error_code;            /* ap_error_code_t; 0 unless it failed */
  const char *error_message; /* "" unless it failed */
  /* Wall-clock seconds of the stages, for finished jobs: reading and
   * decoding inside ap_process, the whole ap_process call, storing the
   * results, and the whole job. 0 when the stage did not run. */
  double decode_seconds;
  double process_seconds;
  double store_seconds;
  double total_seconds;
  int busy_threads; /* threads running a job after this event */
  int threads;      /* threads of this ap_worker_run */
} ap_worker_event_t;

/* Receives events, on the worker thread concerned, possibly concurrently
 * with itself. It must return quickly. */
typedef void (*ap_worker_event_fn)(void *user_data,
                                   const ap_worker_event_t *event);

/* Options of ap_worker_run. Initialise with ap_worker_options_init. */
typedef struct ap_worker_options {
  size_t struct_size; /* sizeof(ap_worker_options_t) */
  int threads;        /* jobs run at once, 1 to 256 (default 1) */
  /* Recorded as each lease's owner, up to 127 bytes. NULL: "HOST:PID". */
  const char *worker_id;
  int64_t lease_ms;              /* default 60000 */
  int64_t heartbeat_interval_ms; /* default lease_ms / 4; < lease_ms */
  int64_t poll_interval_ms;      /* idle wait between claims, default 500 */
  int64_t reap_interval_ms;      /* expired leases and uploads, 10000 */
  int64_t drain_timeout_ms;      /* after a stop request, default 30000 */
  /* The processing profile (syntax above). NULL: processing.profile of
   * the context's configuration, else AP_WORKER_DEFAULT_PROFILE. */
  const char *profile;
  /* ap_process max_threads of each job (0: automatic). */
  int process_threads;
  /* Minimum time between two ap_job_progress calls of one job, default
   * 500 ms. The first and last are always written. */
  int64_t progress_interval_ms;
  ap_worker_t *handle;         /* required: stops the run */
  ap_worker_event_fn on_event; /* may be NULL */
  void *event_user_data;
} ap_worker_options_t;

/* Fills the defaults above, with no handle and no event callback. */
AP_EXPORT void ap_worker_options_init(ap_worker_options_t *options);

/*
 * Checks a processing profile without running anything. Fails with
 * AP_ERR_INVALID_CONFIG naming the item at fault and its position
 * ("processing.profile item 3 'rendition=ogg': unknown codec ...").
 */
AP_EXPORT ap_status_t ap_worker_profile_validate(const char *profile,
                                                 ap_error_t *error);

/*
 * Runs the worker threads until a stop is requested through
 * `options->handle` and the drain has finished. Validates the options and
 * the profile first (AP_ERR_INVALID_ARGUMENT, AP_ERR_INVALID_CONFIG), and
 * fails with AP_ERR_NO_MEMORY or AP_ERR_INTERNAL when the threads cannot
 * start. Errors of single jobs are reported on the jobs, never here.
 */
AP_EXPORT ap_status_t ap_worker_run(ap_context_t *context,
                                    const ap_worker_options_t *options,
                                    ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
