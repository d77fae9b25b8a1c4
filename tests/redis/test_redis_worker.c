/*
 * Tests of ap_worker_run with Redis: a worker whose poll interval is one
 * hour still claims a new job at once, a watch follows a worker's
 * progress, and neither stopping Redis nor FLUSHALL loses or repeats a
 * job. Jobs come from real uploads of a one-second WAV case file, with a
 * one-item profile so each takes milliseconds.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include <audiopipe/job.h>
#include <audiopipe/meta.h>
#include <audiopipe/upload.h>
#include <audiopipe/worker.h>

#include "context/context_internal.h"
#include "notify/notify_internal.h"
#include "redis/redis_fixture.h"
#include "storage/object_store.h"

#define CASE_FILE AP_TEST_DATA_DIR "/cases/case-11.wav"

/* A poll interval no test waits for: a job is claimed in time only
 * through a wake-up. */
#define POLL_NEVER_MS (60 * 60 * 1000)

typedef struct worker_counts {
  atomic_int succeeded;
  atomic_int claimed;
} worker_counts_t;

typedef struct running_worker {
  ap_context_t *context;
  ap_worker_t *handle;
  ap_worker_options_t options;
  pthread_t thread;
  ap_status_t status;
} running_worker_t;

/* The workers started by the running test, so that teardown can stop
 * them when a failed assert skipped the test's own stop_worker. */
static running_worker_t *started_workers[4];

static void on_event(void *user_data, const ap_worker_event_t *event) {
  worker_counts_t *counts = user_data;
  if (event->kind == AP_WORKER_EVENT_SUCCEEDED) {
    atomic_fetch_add(&counts->succeeded, 1);
  } else if (event->kind == AP_WORKER_EVENT_CLAIMED) {
    atomic_fetch_add(&counts->claimed, 1);
  }
}

static void *run_worker(void *argument) {
  running_worker_t *worker = argument;
  worker->status = ap_worker_run(worker->context, &worker->options, NULL);
  return NULL;
}

static void start_worker(running_worker_t *worker, ap_context_t *context,
                         int64_t poll_interval_ms, worker_counts_t *counts) {
  memset(worker, 0, sizeof *worker);
  worker->context = context;
  assert_int_equal(ap_worker_new(&worker->handle, NULL), AP_OK);
  ap_worker_options_init(&worker->options);
  worker->options.threads = 1;
  worker->options.poll_interval_ms = poll_interval_ms;
  worker->options.lease_ms = 10000;
  worker->options.progress_interval_ms = 0;
  worker->options.profile = "waveform=dat:8:256";
  worker->options.handle = worker->handle;
  worker->options.on_event = on_event;
  worker->options.event_user_data = counts;
  assert_int_equal(pthread_create(&worker->thread, NULL, run_worker, worker),
                   0);
  for (size_t i = 0; i < 4; i++) {
    if (!started_workers[i]) {
      started_workers[i] = worker;
      break;
    }
  }
}

static void stop_worker(running_worker_t *worker) {
  for (size_t i = 0; i < 4; i++) {
    if (started_workers[i] == worker) {
      started_workers[i] = NULL;
    }
  }
  ap_worker_request_stop(worker->handle);
  assert_int_equal(pthread_join(worker->thread, NULL), 0);
  assert_int_equal(worker->status, AP_OK);
  ap_worker_free(worker->handle);
}

/* Uploads the case file and stores the id of its processing job. */
static void upload_case(ap_context_t *context, char job_id[AP_ID_SIZE]) {
  ap_io_t *input = NULL;
  assert_int_equal(ap_io_open_file(CASE_FILE, &input, NULL), AP_OK);
  ap_upload_request_t request;
  ap_upload_request_init(&request);
  request.owner = "alice";
  request.filename = "tone.wav";
  request.size_bytes = ap_io_size(input);
  request.content_type = "audio/wav";
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_create(context, &request, &ticket, &error), AP_OK);
  assert_int_equal(
      ap_object_store_put_from_io(ap_context_object_store(context),
                                  ap_upload_ticket_object_key(ticket),
                                  "audio/wav", input, &error),
      AP_OK);
  ap_io_close(input);
  ap_asset_t *asset = NULL;
  ap_status_t status = ap_upload_complete(
      context, "alice", ap_upload_ticket_id(ticket), &asset, &error);
  if (status != AP_OK) {
    fail_msg("ap_upload_complete: %s", error.message);
  }
  assert_non_null(ap_asset_job_id(asset));
  snprintf(job_id, AP_ID_SIZE, "%s", ap_asset_job_id(asset));
  ap_asset_free(asset);
  ap_upload_ticket_free(ticket);
}

/* Waits up to REDIS_WAIT_MS for the job to end and returns it. */
static ap_job_t *wait_for_job(ap_context_t *context, const char *job_id) {
  int64_t deadline = redis_test_now_ms() + REDIS_WAIT_MS;
  ap_job_state_t state = AP_JOB_QUEUED;
  int attempts = 0;
  while (redis_test_now_ms() < deadline) {
    ap_job_t *job = NULL;
    assert_int_equal(ap_job_get(context, NULL, job_id, &job, NULL), AP_OK);
    if (ap_job_state_is_terminal(ap_job_state(job))) {
      return job;
    }
    state = ap_job_state(job);
    attempts = ap_job_attempts(job);
    ap_job_free(job);
    redis_test_sleep_ms(10);
  }
  fail_msg("job %s did not end within %d ms: still %s after %d attempts",
           job_id, REDIS_WAIT_MS, ap_job_state_name(state), attempts);
  return NULL;
}

/* Checks that the job succeeded on its first attempt. */
static void assert_succeeded_once(ap_context_t *context, const char *job_id) {
  ap_job_t *job = wait_for_job(context, job_id);
  assert_int_equal(ap_job_state(job), AP_JOB_SUCCEEDED);
  assert_int_equal(ap_job_attempts(job), 1);
  ap_job_free(job);
}

static int setup(void **state) {
  meta_fixture_t *fixture = calloc(1, sizeof *fixture);
  if (!fixture || meta_fixture_prepare(fixture) != 0 ||
      redis_fixture_configure(fixture->config, "worker") != 0 ||
      ap_config_set(fixture->config, "jobs.watch_interval", "1h", NULL) !=
          AP_OK ||
      meta_fixture_open(fixture) != 0) {
    return -1;
  }
  *state = fixture;
  return 0;
}

static int teardown(void **state) {
  meta_fixture_t *fixture = *state;
  for (size_t i = 0; i < 4; i++) {
    running_worker_t *worker = started_workers[i];
    if (worker) {
      started_workers[i] = NULL;
      ap_worker_request_stop(worker->handle);
      pthread_join(worker->thread, NULL);
      ap_worker_free(worker->handle);
    }
  }
  /* A test that failed with Redis stopped must not fail the next ones. */
  if (redis_fixture_command("PING") != 0) {
    redis_fixture_server("start");
  }
  meta_fixture_close(fixture);
  free(fixture);
  return 0;
}

static void test_worker_wakes_for_new_job(void **state) {
  meta_fixture_t *fixture = *state;
  worker_counts_t counts = {0};
  running_worker_t worker;
  start_worker(&worker, fixture->context, POLL_NEVER_MS, &counts);
  assert_int_equal(redis_fixture_wait_subscribers(fixture->context, 1), 0);
  /* Let the thread's first claim find nothing, so it is idle. */
  redis_test_sleep_ms(300);

  char job_id[AP_ID_SIZE];
  upload_case(fixture->context, job_id);
  assert_succeeded_once(fixture->context, job_id);
  stop_worker(&worker);
  assert_int_equal(atomic_load(&counts.succeeded), 1);
}

/* With jobs.watch_interval at one hour, the watch's events come from
 * Redis: the worker's claim, its progress in order, and the end. */
static void test_watch_follows_worker(void **state) {
  meta_fixture_t *fixture = *state;
  worker_counts_t counts = {0};
  char job_id[AP_ID_SIZE];
  upload_case(fixture->context, job_id);
  ap_job_watch_t *watch = NULL;
  assert_int_equal(
      ap_job_watch_open(fixture->context, "alice", job_id, &watch, NULL),
      AP_OK);
  assert_int_equal(redis_fixture_wait_subscribers(fixture->context, 1), 0);
  ap_job_event_t event;
  ap_error_t error = {0};
  assert_int_equal(ap_job_watch_next(watch, REDIS_WAIT_MS, &event, &error),
                   AP_OK);
  assert_int_equal(event.state, AP_JOB_QUEUED);

  running_worker_t worker;
  start_worker(&worker, fixture->context, POLL_NEVER_MS, &counts);
  int events = 0;
  int running_events = 0;
  double last_fraction = 0.0;
  while (!ap_job_state_is_terminal(event.state)) {
    ap_status_t status =
        ap_job_watch_next(watch, REDIS_WAIT_MS, &event, &error);
    if (status != AP_OK) {
      fail_msg("event %d: %s", events + 1, error.message);
    }
    events++;
    if (event.state == AP_JOB_RUNNING) {
      running_events++;
      assert_true(event.fraction >= last_fraction);
      last_fraction = event.fraction;
    }
  }
  assert_int_equal(event.state, AP_JOB_SUCCEEDED);
  assert_true(running_events >= 1);
  ap_job_watch_close(watch);
  stop_worker(&worker);
  assert_int_equal(atomic_load(&counts.succeeded), 1);
}

/*
 * A worker that only wakes up (W1) runs throughout. With Redis stopped,
 * a polling worker (W2) must still complete every job exactly once, and
 * publishes fail without failing the uploads. After Redis restarts, W1's
 * subscriber reconnects and a new job is claimed through a wake-up again.
 */
static void test_outage_loses_no_job(void **state) {
  meta_fixture_t *fixture = *state;
  ap_context_t *context = fixture->context;
  const ap_redis_counters_t *counters =
      ap_notifier_counters(ap_context_notifier(context));
  worker_counts_t counts = {0};
  running_worker_t waker;
  start_worker(&waker, context, POLL_NEVER_MS, &counts);
  assert_int_equal(redis_fixture_wait_subscribers(context, 1), 0);

  assert_int_equal(redis_fixture_server("stop"), 0);
  double failures = ap_metrics_value(counters->publish_failures);
  running_worker_t poller;
  start_worker(&poller, context, 50, &counts);
  enum { JOBS = 4 };
  char job_ids[JOBS][AP_ID_SIZE];
  for (int i = 0; i < JOBS; i++) {
    upload_case(context, job_ids[i]);
  }
  for (int i = 0; i < JOBS; i++) {
    assert_succeeded_once(context, job_ids[i]);
  }
  stop_worker(&poller);
  assert_true(ap_metrics_value(counters->publish_failures) > failures);
  ap_redis_health_t health = {.struct_size = sizeof health};
  assert_int_equal(ap_redis_check(context, &health, NULL), AP_ERR_UNAVAILABLE);
  assert_int_equal(health.subscribers_connected, 0);

  /* Both the subscriber and the publisher, whose reconnect may still be
   * waiting for its backoff delay, must be back before the wake-up. */
  assert_int_equal(redis_fixture_server("start"), 0);
  assert_int_equal(redis_fixture_wait_subscribers(context, 1), 0);
  assert_int_equal(redis_fixture_wait_publisher(context), 0);
  char last_id[AP_ID_SIZE];
  upload_case(context, last_id);
  assert_succeeded_once(context, last_id);
  assert_int_equal(ap_redis_check(context, &health, NULL), AP_OK);
  stop_worker(&waker);
  assert_int_equal(atomic_load(&counts.succeeded), JOBS + 1);
  assert_int_equal(atomic_load(&counts.claimed), JOBS + 1);
}

/* FLUSHALL and SCRIPT FLUSH between enqueues: Redis contains no job state,
 * so every job still completes once, found through wake-ups alone. */
static void test_flushall_loses_no_job(void **state) {
  meta_fixture_t *fixture = *state;
  worker_counts_t counts = {0};
  running_worker_t worker;
  start_worker(&worker, fixture->context, POLL_NEVER_MS, &counts);
  assert_int_equal(redis_fixture_wait_subscribers(fixture->context, 1), 0);

  enum { JOBS = 3 };
  char job_ids[JOBS][AP_ID_SIZE];
  for (int i = 0; i < JOBS; i++) {
    upload_case(fixture->context, job_ids[i]);
    assert_int_equal(redis_fixture_command("FLUSHALL"), 0);
    assert_int_equal(redis_fixture_command("SCRIPT FLUSH"), 0);
  }
  for (int i = 0; i < JOBS; i++) {
    assert_succeeded_once(fixture->context, job_ids[i]);
  }
  stop_worker(&worker);
  assert_int_equal(atomic_load(&counts.succeeded), JOBS);
  assert_int_equal(atomic_load(&counts.claimed), JOBS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_worker_wakes_for_new_job, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_watch_follows_worker, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_outage_loses_no_job, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_flushall_loses_no_job, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
