/*
 * Tests of ap_worker_run on real case files: an upload is completed
 * through the library (asset and job in one transaction), a worker runs
 * on a thread of the test, and the test reads the job, the asset and the
 * objects the worker wrote.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <audiopipe/job.h>
#include <audiopipe/meta.h>
#include <audiopipe/upload.h>
#include <audiopipe/waveform.h>
#include <audiopipe/worker.h>

#include "context/context_internal.h"
#include "storage/object_store.h"
#include "unit/test_meta_fixture.h"
#include "worker/worker_internal.h"

/* How long a test waits for a job to end before it gives up: far above
 * the few seconds these inputs take, so only a hang fails it. */
#define JOB_WAIT_MS 120000

typedef struct worker_test {
  meta_fixture_t fixture;
  ap_worker_t *handle;
  ap_worker_options_t options;
  pthread_t thread;
  ap_status_t run_status;
  /* Counts of events by kind, written by the worker threads. */
  atomic_int events[6];
  atomic_int last_error_code;
  /* For the retry test: the job's due_at and updated_at right after its
   * retry was recorded. */
  int64_t retry_due_at_ms;
  int64_t retry_updated_at_ms;
  int retry_state;
  /* For the fault hook. */
  int fail_attempts; /* attempts that fail with AP_ERR_UNAVAILABLE */
  int stop_at_start; /* request a stop from the first job's start */
} worker_test_t;

static void on_event(void *user_data, const ap_worker_event_t *event) {
  worker_test_t *test = user_data;
  atomic_fetch_add(&test->events[event->kind], 1);
  if (event->error_code) {
    atomic_store(&test->last_error_code, event->error_code);
  }
  if (event->kind == AP_WORKER_EVENT_RETRIED) {
    ap_job_t *job = NULL;
    if (ap_job_get(test->fixture.context, NULL, event->job_id, &job, NULL) ==
        AP_OK) {
      test->retry_due_at_ms = ap_job_due_at_ms(job);
      test->retry_updated_at_ms = ap_job_updated_at_ms(job);
      test->retry_state = (int)ap_job_state(job);
    }
    ap_job_free(job);
  }
}

static ap_status_t fault(void *user_data, const char *stage,
                         const ap_job_t *job, ap_error_t *error) {
  (void)stage;
  worker_test_t *test = user_data;
  if (test->stop_at_start) {
    ap_worker_request_stop(test->handle);
    /* Let ap_worker_run see the stop and set the drain deadline, which
     * it checks every 20 ms, before processing starts. */
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 200000000L};
    nanosleep(&pause, NULL);
  }
  if (ap_job_attempts(job) <= test->fail_attempts) {
    error->code = AP_ERR_UNAVAILABLE;
    snprintf(error->message, sizeof error->message,
             "injected failure of attempt %d", ap_job_attempts(job));
    return AP_ERR_UNAVAILABLE;
  }
  return AP_OK;
}

static int setup(void **state) {
  worker_test_t *test = calloc(1, sizeof *test);
  if (!test || meta_fixture_prepare(&test->fixture) != 0 ||
      ap_config_set(test->fixture.config, "jobs.retry_base", "200ms", NULL) !=
          AP_OK ||
      meta_fixture_open(&test->fixture) != 0 ||
      ap_worker_new(&test->handle, NULL) != AP_OK) {
    return -1;
  }
  ap_worker_options_init(&test->options);
  test->options.threads = 2;
  test->options.poll_interval_ms = 10;
  test->options.lease_ms = 5000;
  test->options.profile =
      "waveform=dat:16:256,waveform=json:8:pps20,rendition=opus:64k,"
      "rendition=mp3:128k";
  test->options.handle = test->handle;
  test->options.on_event = on_event;
  test->options.event_user_data = test;
  ap_worker_set_fault_hook(fault, test);
  *state = test;
  return 0;
}

static int teardown(void **state) {
  worker_test_t *test = *state;
  ap_worker_set_fault_hook(NULL, NULL);
  ap_worker_free(test->handle);
  meta_fixture_close(&test->fixture);
  free(test);
  return 0;
}

static void *run_worker(void *argument) {
  worker_test_t *test = argument;
  test->run_status = ap_worker_run(test->fixture.context, &test->options, NULL);
  return NULL;
}

static void start_worker(worker_test_t *test) {
  assert_int_equal(pthread_create(&test->thread, NULL, run_worker, test), 0);
}

static void stop_worker(worker_test_t *test) {
  ap_worker_request_stop(test->handle);
  assert_int_equal(pthread_join(test->thread, NULL), 0);
  assert_int_equal(test->run_status, AP_OK);
}

/* Uploads `path` through the library and returns the new asset. */
static ap_asset_t *upload_case(worker_test_t *test, const char *path,
                               const char *content_type) {
  ap_context_t *context = test->fixture.context;
  ap_io_t *input = NULL;
  assert_int_equal(ap_io_open_file(path, &input, NULL), AP_OK);
  ap_upload_request_t request;
  ap_upload_request_init(&request);
  request.owner = "alice";
  request.filename = "recording.bin";
  request.size_bytes = ap_io_size(input);
  request.content_type = content_type;
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_create(context, &request, &ticket, &error), AP_OK);
  assert_int_equal(
      ap_object_store_put_from_io(ap_context_object_store(context),
                                  ap_upload_ticket_object_key(ticket),
                                  content_type, input, &error),
      AP_OK);
  ap_io_close(input);
  ap_asset_t *asset = NULL;
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), &asset,
                                      &error),
                   AP_OK);
  ap_upload_ticket_free(ticket);
  return asset;
}

/* Waits until the job is in a terminal state and returns it. */
static ap_job_t *wait_for_job(worker_test_t *test, const char *job_id) {
  for (int waited = 0; waited < JOB_WAIT_MS; waited += 20) {
    ap_job_t *job = NULL;
    assert_int_equal(
        ap_job_get(test->fixture.context, NULL, job_id, &job, NULL), AP_OK);
    if (ap_job_state_is_terminal(ap_job_state(job))) {
      return job;
    }
    ap_job_free(job);
    usleep(20000);
  }
  fail_msg("job %s did not end within %d ms", job_id, JOB_WAIT_MS);
  return NULL;
}

static ap_asset_t *reload(worker_test_t *test, const ap_asset_t *asset) {
  ap_asset_t *fresh = NULL;
  assert_int_equal(ap_asset_get(test->fixture.context, NULL, ap_asset_id(asset),
                                &fresh, NULL),
                   AP_OK);
  return fresh;
}

static void test_worker_processes_case(void **state) {
  worker_test_t *test = *state;
  ap_asset_t *asset =
      upload_case(test, AP_TEST_DATA_DIR "/cases/case-08.wav", "audio/wav");
  start_worker(test);
  ap_job_t *job = wait_for_job(test, ap_asset_job_id(asset));
  stop_worker(test);

  assert_int_equal(ap_job_state(job), AP_JOB_SUCCEEDED);
  assert_int_equal(ap_job_attempts(job), 1);
  assert_int_equal(atomic_load(&test->events[AP_WORKER_EVENT_SUCCEEDED]), 1);

  ap_asset_t *done = reload(test, asset);
  assert_int_equal(ap_asset_status(done), AP_ASSET_READY);
  assert_non_null(ap_asset_analysis_json(done));
  assert_non_null(strstr(ap_asset_analysis_json(done), "integrated_lufs"));
  /* case-08.wav is 4.000 s of 48 kHz stereo, generated. */
  assert_non_null(strstr(ap_asset_analysis_json(done), "\"duration\":4"));
  assert_int_equal(ap_asset_rendition_count(done), 2);
  assert_int_equal(ap_asset_waveform_count(done), 2);
  assert_string_equal(ap_asset_rendition_name(done, 0), "mp3_128k");
  assert_string_equal(ap_asset_rendition_name(done, 1), "opus_64k");
  assert_string_equal(ap_asset_waveform_name(done, 0), "dat_16bit_256spp");
  assert_string_equal(ap_asset_waveform_name(done, 1), "json_8bit_20pps");

  ap_object_store_t *store = ap_context_object_store(test->fixture.context);
  for (size_t i = 0; i < ap_asset_rendition_count(done); i++) {
    const char *key = ap_asset_rendition_key(done, i);
    assert_non_null(strstr(key, ap_asset_id(done)));
    ap_object_info_t info;
    assert_int_equal(ap_object_store_stat(store, key, &info, NULL), AP_OK);
    assert_true(info.size > 1000);
    assert_int_equal(info.size, ap_asset_rendition_size_bytes(done, i));
  }

  /* The .dat waveform parses with the source's rate and 256 samples per
   * pixel: 4 s x 48000 / 256 = 750 pixels. */
  ap_io_t *io = NULL;
  assert_int_equal(ap_object_store_open_read(
                       store, ap_asset_waveform_key(done, 0), &io, NULL),
                   AP_OK);
  int64_t size = ap_io_size(io);
  char *bytes = malloc((size_t)size);
  assert_non_null(bytes);
  assert_int_equal(ap_io_read(io, bytes, (size_t)size, NULL), size);
  ap_io_close(io);
  ap_waveform_t *waveform = NULL;
  assert_int_equal(ap_waveform_parse_dat(bytes, (size_t)size, &waveform, NULL),
                   AP_OK);
  assert_int_equal(ap_waveform_sample_rate(waveform), 48000);
  assert_int_equal(ap_waveform_samples_per_pixel(waveform), 256);
  assert_int_equal(ap_waveform_length(waveform), 750);
  assert_int_equal(ap_waveform_bits(waveform), 16);
  ap_waveform_free(waveform);
  free(bytes);

  ap_asset_free(done);
  ap_job_free(job);
  ap_asset_free(asset);
}

static void test_worker_rejects_non_audio(void **state) {
  worker_test_t *test = *state;
  ap_asset_t *asset =
      upload_case(test, AP_TEST_DATA_DIR "/cases/case-08.wav", "audio/wav");

  /* Replace the validated original with bytes that are not audio. */
  static const char text[] = "this object is plain text, not audio at all";
  ap_io_t *garbage = NULL;
  assert_int_equal(ap_io_open_memory(text, sizeof text - 1, &garbage, NULL),
                   AP_OK);
  assert_int_equal(ap_object_store_put_from_io(
                       ap_context_object_store(test->fixture.context),
                       ap_asset_object_key(asset), "audio/wav", garbage, NULL),
                   AP_OK);
  ap_io_close(garbage);

  start_worker(test);
  ap_job_t *job = wait_for_job(test, ap_asset_job_id(asset));
  stop_worker(test);

  assert_int_equal(ap_job_state(job), AP_JOB_FAILED);
  assert_int_equal(ap_job_attempts(job), 1);
  assert_false(ap_error_is_retryable(ap_job_error_code(job)));
  assert_int_equal(atomic_load(&test->events[AP_WORKER_EVENT_RETRIED]), 0);
  assert_int_equal(atomic_load(&test->events[AP_WORKER_EVENT_FAILED]), 1);

  ap_asset_t *done = reload(test, asset);
  assert_int_equal(ap_asset_status(done), AP_ASSET_FAILED);
  assert_int_equal(ap_asset_error_code(done), ap_job_error_code(job));
  assert_int_equal(ap_asset_rendition_count(done), 0);
  ap_asset_free(done);
  ap_job_free(job);
  ap_asset_free(asset);
}

static void test_worker_retries_with_backoff(void **state) {
  worker_test_t *test = *state;
  test->fail_attempts = 1;
  ap_asset_t *asset =
      upload_case(test, AP_TEST_DATA_DIR "/cases/case-08.wav", "audio/wav");
  start_worker(test);
  ap_job_t *job = wait_for_job(test, ap_asset_job_id(asset));
  stop_worker(test);

  assert_int_equal(ap_job_state(job), AP_JOB_SUCCEEDED);
  assert_int_equal(ap_job_attempts(job), 2);
  assert_int_equal(atomic_load(&test->events[AP_WORKER_EVENT_RETRIED]), 1);
  assert_int_equal(atomic_load(&test->last_error_code), AP_ERR_UNAVAILABLE);
  /* Right after the failure the job waited in the queue for a backoff
   * drawn from [0, jobs.retry_base = 200 ms]. */
  assert_int_equal(test->retry_state, AP_JOB_QUEUED);
  assert_true(test->retry_due_at_ms >= test->retry_updated_at_ms);
  assert_true(test->retry_due_at_ms <= test->retry_updated_at_ms + 200);

  ap_asset_t *done = reload(test, asset);
  assert_int_equal(ap_asset_status(done), AP_ASSET_READY);
  ap_asset_free(done);
  ap_job_free(job);
  ap_asset_free(asset);
}

static void test_worker_stop_drains_job(void **state) {
  worker_test_t *test = *state;
  test->stop_at_start = 1;
  test->options.drain_timeout_ms = 600000;
  ap_asset_t *asset =
      upload_case(test, AP_TEST_DATA_DIR "/cases/case-09.wav", "audio/wav");
  start_worker(test);
  assert_int_equal(pthread_join(test->thread, NULL), 0);
  assert_int_equal(test->run_status, AP_OK);

  /* The run returned only after the job it had started finished. */
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_get(test->fixture.context, NULL,
                              ap_asset_job_id(asset), &job, NULL),
                   AP_OK);
  assert_int_equal(ap_job_state(job), AP_JOB_SUCCEEDED);
  assert_int_equal(atomic_load(&test->events[AP_WORKER_EVENT_CLAIMED]), 1);
  ap_job_free(job);
  ap_asset_free(asset);
}

static void test_worker_stop_requeues_after_drain(void **state) {
  worker_test_t *test = *state;
  test->stop_at_start = 1;
  test->options.drain_timeout_ms = 0;
  ap_asset_t *asset =
      upload_case(test, AP_TEST_DATA_DIR "/cases/case-09.wav", "audio/wav");
  start_worker(test);
  assert_int_equal(pthread_join(test->thread, NULL), 0);
  assert_int_equal(test->run_status, AP_OK);

  ap_job_t *job = NULL;
  assert_int_equal(ap_job_get(test->fixture.context, NULL,
                              ap_asset_job_id(asset), &job, NULL),
                   AP_OK);
  assert_int_equal(ap_job_state(job), AP_JOB_QUEUED);
  assert_int_equal(ap_job_attempts(job), 1);
  assert_int_equal(ap_job_error_code(job), AP_ERR_UNAVAILABLE);
  assert_int_equal(atomic_load(&test->events[AP_WORKER_EVENT_STOPPED]), 1);
  ap_job_free(job);
  ap_asset_free(asset);
}

static void test_profile_errors_name_item(void **state) {
  (void)state;
  ap_error_t error = {0};
  assert_int_equal(
      ap_worker_profile_validate(AP_WORKER_DEFAULT_PROFILE, &error), AP_OK);
  assert_int_equal(
      ap_worker_profile_validate("waveform=dat:16:256,rendition=ogg", &error),
      AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "item 2 'rendition=ogg'"));
  assert_int_equal(ap_worker_profile_validate("waveform=dat:12:256", &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "bits"));
  assert_int_equal(ap_worker_profile_validate(
                       "rendition=mp3:128k,rendition=mp3:128000", &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "repeats"));
  assert_int_equal(ap_worker_profile_validate("", &error),
                   AP_ERR_INVALID_CONFIG);
  assert_int_equal(ap_worker_profile_validate("rendition=flac:64k", &error),
                   AP_ERR_INVALID_CONFIG);
  assert_int_equal(ap_worker_profile_validate("rendition=wav:24bit", &error),
                   AP_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_profile_errors_name_item),
      cmocka_unit_test_setup_teardown(test_worker_processes_case, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_worker_rejects_non_audio, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_worker_retries_with_backoff, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_worker_stop_drains_job, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_worker_stop_requeues_after_drain,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
