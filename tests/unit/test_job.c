/*
 * Tests for the db job queue: the lifecycle, idempotent enqueue, claims
 * racing across threads and processes, leases, retries and backoff,
 * cancellation and watches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <audiopipe/job.h>
#include <audiopipe/meta.h>

#include "meta/meta_internal.h"
#include "test_meta_fixture.h"

static ap_job_t *enqueue(ap_context_t *context, const char *kind,
                         const char *key, int max_attempts) {
  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = kind;
  options.owner = "alice";
  options.payload_json = "{\"n\":1}";
  options.idempotency_key = key;
  options.max_attempts = max_attempts;
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_job_enqueue(context, &options, &job, &error), AP_OK);
  return job;
}

static ap_job_t *claim(ap_context_t *context, int64_t lease_ms) {
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_job_claim(context, "worker-1", lease_ms, NULL, 0, &job, &error),
      AP_OK);
  return job;
}

/* Sleeps past a 1 ms lease; the reaper then runs at the current time, so
 * the re-queued job is due for the next claim. */
static void wait_past_lease(void) { usleep(5000); }

static ap_job_state_t state_of(ap_context_t *context, const char *id) {
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_get(context, NULL, id, &job, NULL), AP_OK);
  ap_job_state_t state = ap_job_state(job);
  ap_job_free(job);
  return state;
}

static void job_lifecycle_succeeds(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_context_t *context = fixture.context;

  ap_job_t *queued = enqueue(context, "process_asset", NULL, 0);
  assert_int_equal(ap_job_state(queued), AP_JOB_QUEUED);
  assert_int_equal(ap_job_max_attempts(queued), AP_JOB_DEFAULT_MAX_ATTEMPTS);
  assert_null(ap_job_claim_token(queued));

  ap_job_t *running = claim(context, 60000);
  assert_non_null(running);
  assert_string_equal(ap_job_id(running), ap_job_id(queued));
  assert_int_equal(ap_job_state(running), AP_JOB_RUNNING);
  assert_int_equal(ap_job_attempts(running), 1);
  assert_string_equal(ap_job_lease_owner(running), "worker-1");
  assert_non_null(ap_job_claim_token(running));
  const char *id = ap_job_id(running);
  const char *token = ap_job_claim_token(running);

  /* Nothing else is due. */
  ap_job_t *none = claim(context, 60000);
  assert_null(none);

  assert_int_equal(ap_job_heartbeat(context, id, token, 60000, NULL), AP_OK);
  assert_int_equal(ap_job_progress(context, id, token, 0.5, "decode", NULL),
                   AP_OK);
  ap_job_t *snapshot = NULL;
  assert_int_equal(ap_job_get(context, "alice", id, &snapshot, NULL), AP_OK);
  assert_true(ap_job_progress_fraction(snapshot) == 0.5);
  assert_string_equal(ap_job_stage(snapshot), "decode");
  assert_null(ap_job_claim_token(snapshot));
  char *json = NULL;
  assert_int_equal(ap_job_to_json(snapshot, &json, NULL), AP_OK);
  assert_non_null(strstr(json, "\"state\":\"running\""));
  assert_null(strstr(json, token));
  ap_free(json);
  ap_job_free(snapshot);

  assert_int_equal(ap_job_complete(context, id, token, "{\"ok\":true}", NULL),
                   AP_OK);
  assert_int_equal(state_of(context, id), AP_JOB_SUCCEEDED);
  ap_error_t error = {0};
  assert_int_equal(ap_job_complete(context, id, token, NULL, &error),
                   AP_ERR_LEASE_LOST);

  ap_job_stats_t stats;
  assert_int_equal(ap_job_stats(context, &stats, NULL), AP_OK);
  assert_int_equal(stats.queued, 0);
  assert_int_equal(stats.running, 0);
  ap_job_free(queued);
  ap_job_free(running);
  meta_fixture_close(&fixture);
}

static void enqueue_with_same_key_returns_job(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_job_t *first = enqueue(fixture.context, "process_asset", "key-1", 0);
  ap_job_t *second = enqueue(fixture.context, "process_asset", "key-1", 0);
  ap_job_t *other = enqueue(fixture.context, "process_asset", "key-2", 0);
  assert_string_equal(ap_job_id(first), ap_job_id(second));
  assert_string_not_equal(ap_job_id(first), ap_job_id(other));
  assert_string_equal(ap_job_idempotency_key(second), "key-1");
  ap_job_stats_t stats;
  assert_int_equal(ap_job_stats(fixture.context, &stats, NULL), AP_OK);
  assert_int_equal(stats.queued, 2);

  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "Bad Kind";
  ap_error_t error = {0};
  assert_int_equal(ap_job_enqueue(fixture.context, &options, NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "kind"));
  options.kind = "process_asset";
  options.payload_json = "{not json";
  assert_int_equal(ap_job_enqueue(fixture.context, &options, NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "payload_json"));
  ap_job_free(first);
  ap_job_free(second);
  ap_job_free(other);
  meta_fixture_close(&fixture);
}

static void claim_filters_kinds(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_job_free(enqueue(fixture.context, "transcode", NULL, 0));
  ap_job_t *wanted = enqueue(fixture.context, "process_asset", NULL, 0);
  const char *kinds[] = {"process_asset", "other_kind"};
  ap_job_t *job = NULL;
  assert_int_equal(
      ap_job_claim(fixture.context, "w", 1000, kinds, 2, &job, NULL), AP_OK);
  assert_non_null(job);
  assert_string_equal(ap_job_id(job), ap_job_id(wanted));
  ap_job_free(job);
  assert_int_equal(
      ap_job_claim(fixture.context, "w", 1000, kinds, 2, &job, NULL), AP_OK);
  assert_null(job);
  ap_job_free(wanted);
  meta_fixture_close(&fixture);
}

static void stale_token_is_rejected(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_context_t *context = fixture.context;
  ap_job_t *queued = enqueue(context, "process_asset", NULL, 3);

  /* Worker A's lease expires and the reaper re-queues the job. */
  ap_job_t *first = claim(context, 1);
  assert_non_null(first);
  int64_t count = 0;
  wait_past_lease();
  assert_int_equal(ap_job_reap(context, 0, &count, NULL), AP_OK);
  assert_int_equal(count, 1);
  assert_int_equal(state_of(context, ap_job_id(first)), AP_JOB_QUEUED);

  /* Worker B claims it: attempt 2, new token. */
  ap_job_t *second = claim(context, 60000);
  assert_non_null(second);
  assert_int_equal(ap_job_attempts(second), 2);
  assert_string_not_equal(ap_job_claim_token(first),
                          ap_job_claim_token(second));

  const char *id = ap_job_id(first);
  const char *stale = ap_job_claim_token(first);
  ap_error_t error = {0};
  assert_int_equal(ap_job_heartbeat(context, id, stale, 1000, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_job_progress(context, id, stale, 0.9, "x", &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_job_complete(context, id, stale, NULL, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(
      ap_job_fail(context, id, stale, AP_ERR_IO, "disk", 1, &error),
      AP_ERR_LEASE_LOST);
  assert_int_equal(state_of(context, id), AP_JOB_RUNNING);

  assert_int_equal(
      ap_job_complete(context, id, ap_job_claim_token(second), NULL, NULL),
      AP_OK);
  assert_int_equal(state_of(context, id), AP_JOB_SUCCEEDED);
  ap_job_free(queued);
  ap_job_free(first);
  ap_job_free(second);
  meta_fixture_close(&fixture);
}

static void lost_last_attempt_becomes_dead(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_context_t *context = fixture.context;
  ap_job_t *queued = enqueue(context, "process_asset", NULL, 2);

  for (int attempt = 1; attempt <= 2; attempt++) {
    ap_job_t *job = claim(context, 1);
    assert_non_null(job);
    assert_int_equal(ap_job_attempts(job), attempt);
    int64_t count = 0;
    wait_past_lease();
    assert_int_equal(ap_job_reap(context, 0, &count, NULL), AP_OK);
    assert_int_equal(count, 1);
    ap_job_free(job);
  }
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_get(context, NULL, ap_job_id(queued), &job, NULL),
                   AP_OK);
  assert_int_equal(ap_job_state(job), AP_JOB_DEAD);
  assert_int_equal(ap_job_attempts(job), 2);
  assert_string_equal(ap_job_error_message(job), "worker lost");
  ap_job_free(job);
  assert_null(claim(context, 1000));
  ap_job_free(queued);
  meta_fixture_close(&fixture);
}

static void retries_end_dead_with_last_error(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_context_t *context = fixture.context;
  ap_job_t *queued = enqueue(context, "process_asset", NULL, 3);

  const char *messages[] = {"first outage", "second outage", "third outage"};
  for (int attempt = 1; attempt <= 3; attempt++) {
    ap_job_t *job = claim(context, 60000);
    assert_non_null(job);
    assert_int_equal(ap_job_attempts(job), attempt);
    assert_int_equal(ap_job_fail(context, ap_job_id(job),
                                 ap_job_claim_token(job), AP_ERR_UNAVAILABLE,
                                 messages[attempt - 1], 1, NULL),
                     AP_OK);
    ap_job_free(job);
  }
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_get(context, NULL, ap_job_id(queued), &job, NULL),
                   AP_OK);
  assert_int_equal(ap_job_state(job), AP_JOB_DEAD);
  assert_int_equal(ap_job_error_code(job), AP_ERR_UNAVAILABLE);
  assert_string_equal(ap_job_error_message(job), "third outage");
  ap_job_free(job);
  ap_job_stats_t stats;
  assert_int_equal(ap_job_stats(context, &stats, NULL), AP_OK);
  assert_int_equal(stats.dead, 1);
  ap_job_free(queued);
  meta_fixture_close(&fixture);
}

static void non_retryable_error_fails_at_once(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_context_t *context = fixture.context;
  ap_job_t *queued = enqueue(context, "process_asset", NULL, 3);
  ap_job_t *job = claim(context, 60000);
  assert_non_null(job);
  /* The worker requests a retry, but an empty input cannot succeed later. */
  assert_int_equal(ap_job_fail(context, ap_job_id(job), ap_job_claim_token(job),
                               AP_ERR_EMPTY_INPUT, "input is empty", 1, NULL),
                   AP_OK);
  assert_int_equal(state_of(context, ap_job_id(job)), AP_JOB_FAILED);
  assert_null(claim(context, 1000));
  ap_job_free(job);
  ap_job_free(queued);
  meta_fixture_close(&fixture);
}

static void backoff_stays_in_bounds(void **state) {
  (void)state;
  const int64_t base = 5000;
  const int64_t cap = 600000;
  for (int attempts = 1; attempts <= 40; attempts++) {
    int64_t ceiling = attempts <= 20 ? base << (attempts - 1) : cap;
    if (ceiling > cap) {
      ceiling = cap;
    }
    assert_int_equal(ap_job_backoff_ms(attempts, base, cap, 0.0), 0);
    int64_t high = ap_job_backoff_ms(attempts, base, cap, 0.999999);
    assert_true(high <= ceiling);
    assert_true(high >= ceiling - ceiling / 1000 - 1);
    int64_t middle = ap_job_backoff_ms(attempts, base, cap, 0.5);
    assert_int_equal(middle, ceiling / 2);
  }
  for (int i = 0; i < 1000; i++) {
    int64_t delay = ap_job_backoff_ms(3, base, cap, ap_random_unit());
    assert_true(delay >= 0);
    assert_true(delay <= 4 * base);
  }
}

static void cancel_stops_job(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_context_t *context = fixture.context;
  ap_job_t *queued = enqueue(context, "process_asset", NULL, 0);
  ap_job_t *running = claim(context, 60000);
  assert_non_null(running);
  assert_int_equal(ap_job_cancel(context, "alice", ap_job_id(running), NULL),
                   AP_OK);
  assert_int_equal(state_of(context, ap_job_id(running)), AP_JOB_CANCELLED);
  ap_error_t error = {0};
  assert_int_equal(ap_job_heartbeat(context, ap_job_id(running),
                                    ap_job_claim_token(running), 1000, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_job_cancel(context, "alice", ap_job_id(running), &error),
                   AP_ERR_JOB_STATE);
  ap_job_free(queued);
  ap_job_free(running);
  meta_fixture_close(&fixture);
}

static void watch_reports_changes(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  ap_context_t *context = fixture.context;
  ap_job_t *queued = enqueue(context, "process_asset", NULL, 0);
  ap_job_watch_t *watch = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_job_watch_open(context, "mallory", ap_job_id(queued), &watch, &error),
      AP_ERR_NOT_FOUND);
  assert_int_equal(
      ap_job_watch_open(context, "alice", ap_job_id(queued), &watch, NULL),
      AP_OK);

  ap_job_event_t event;
  assert_int_equal(ap_job_watch_next(watch, 0, &event, NULL), AP_OK);
  assert_int_equal(event.state, AP_JOB_QUEUED);
  assert_int_equal(ap_job_watch_next(watch, 20, &event, &error),
                   AP_ERR_TIMED_OUT);

  ap_job_t *running = claim(context, 60000);
  assert_int_equal(ap_job_watch_next(watch, 1000, &event, NULL), AP_OK);
  assert_int_equal(event.state, AP_JOB_RUNNING);
  assert_int_equal(event.attempts, 1);
  assert_int_equal(ap_job_progress(context, ap_job_id(running),
                                   ap_job_claim_token(running), 0.25,
                                   "loudness", NULL),
                   AP_OK);
  assert_int_equal(ap_job_watch_next(watch, 1000, &event, NULL), AP_OK);
  assert_true(event.fraction == 0.25);
  assert_string_equal(event.stage, "loudness");
  assert_int_equal(ap_job_complete(context, ap_job_id(running),
                                   ap_job_claim_token(running), NULL, NULL),
                   AP_OK);
  assert_int_equal(ap_job_watch_next(watch, 1000, &event, NULL), AP_OK);
  assert_int_equal(event.state, AP_JOB_SUCCEEDED);
  assert_int_equal(ap_job_watch_next(watch, 1000, &event, &error),
                   AP_ERR_JOB_STATE);
  ap_job_watch_close(watch);
  ap_job_free(queued);
  ap_job_free(running);
  meta_fixture_close(&fixture);
}

/* ---- Claims racing across threads and processes ---------------------- */

enum { RACE_JOBS = 500, RACE_THREADS_PER_PROCESS = 4, RACE_PROCESSES = 2 };

typedef struct race_worker {
  ap_context_t *context;
  char (*claimed)[AP_ID_SIZE];
  size_t count;
  int failures;
} race_worker_t;

/* Claims and completes jobs until none is left. */
static void *race_claims(void *argument) {
  race_worker_t *worker = argument;
  worker->claimed = calloc(RACE_JOBS, AP_ID_SIZE);
  for (;;) {
    ap_job_t *job = NULL;
    ap_status_t status =
        ap_job_claim(worker->context, "racer", 60000, NULL, 0, &job, NULL);
    if (status == AP_ERR_UNAVAILABLE) {
      continue; /* lock contention beyond busy_timeout: try again */
    }
    if (status != AP_OK) {
      worker->failures++;
      break;
    }
    if (!job) {
      break;
    }
    snprintf(worker->claimed[worker->count++], AP_ID_SIZE, "%s",
             ap_job_id(job));
    do {
      status = ap_job_complete(worker->context, ap_job_id(job),
                               ap_job_claim_token(job), NULL, NULL);
    } while (status == AP_ERR_UNAVAILABLE);
    worker->failures += status != AP_OK;
    ap_job_free(job);
  }
  return NULL;
}

/* Runs the claiming threads of one process and writes the ids it won to
 * `path`, one a line. Returns the number of failed calls. */
static int race_in_process(ap_config_t *config, const char *path) {
  ap_context_t *context = NULL;
  if (ap_context_open(config, &context, NULL) != AP_OK) {
    return 1;
  }
  race_worker_t workers[RACE_THREADS_PER_PROCESS];
  pthread_t threads[RACE_THREADS_PER_PROCESS];
  memset(workers, 0, sizeof workers);
  for (int i = 0; i < RACE_THREADS_PER_PROCESS; i++) {
    workers[i].context = context;
    pthread_create(&threads[i], NULL, race_claims, &workers[i]);
  }
  int failures = 0;
  FILE *file = fopen(path, "w");
  for (int i = 0; i < RACE_THREADS_PER_PROCESS; i++) {
    pthread_join(threads[i], NULL);
    failures += workers[i].failures;
    for (size_t j = 0; file && j < workers[i].count; j++) {
      fprintf(file, "%s\n", workers[i].claimed[j]);
    }
    free(workers[i].claimed);
  }
  failures += !file;
  if (file) {
    fclose(file);
  }
  ap_context_close(context);
  return failures;
}

static int compare_ids(const void *a, const void *b) { return strcmp(a, b); }

static void claims_are_exclusive(void **state) {
  (void)state;
  meta_fixture_t fixture;
  assert_int_equal(meta_fixture_prepare(&fixture), 0);
  assert_int_equal(
      ap_config_set(fixture.config, "metadata.busy_timeout", "30s", NULL),
      AP_OK);
  /* The test is about exclusivity, not durability: NORMAL skips the fsync
   * per commit that dominates the run time with FULL. */
  assert_int_equal(ap_config_set(fixture.config, "metadata.sqlite_synchronous",
                                 "NORMAL", NULL),
                   AP_OK);
  assert_int_equal(meta_fixture_open(&fixture), 0);
  for (int i = 0; i < RACE_JOBS; i++) {
    ap_job_free(enqueue(fixture.context, "process_asset", NULL, 0));
  }
  ap_context_close(fixture.context);
  fixture.context = NULL;

  char paths[RACE_PROCESSES][700];
  pid_t children[RACE_PROCESSES];
  for (int p = 0; p < RACE_PROCESSES; p++) {
    snprintf(paths[p], sizeof paths[p], "%s/claims-%d.txt", fixture.directory,
             p);
    children[p] = fork();
    assert_true(children[p] >= 0);
    if (children[p] == 0) {
      _exit(race_in_process(fixture.config, paths[p]) == 0 ? 0 : 1);
    }
  }
  for (int p = 0; p < RACE_PROCESSES; p++) {
    int status = 0;
    assert_int_equal(waitpid(children[p], &status, 0), children[p]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }

  /* Every job was claimed exactly once, by one process or the other. */
  char(*ids)[AP_ID_SIZE] = calloc(2 * RACE_JOBS, AP_ID_SIZE);
  size_t count = 0;
  size_t per_process[RACE_PROCESSES] = {0};
  for (int p = 0; p < RACE_PROCESSES; p++) {
    FILE *file = fopen(paths[p], "r");
    assert_non_null(file);
    char line[64];
    while (fgets(line, sizeof line, file) && count < 2 * RACE_JOBS) {
      line[strcspn(line, "\n")] = '\0';
      assert_int_equal(strlen(line), AP_ID_LENGTH);
      memcpy(ids[count++], line, AP_ID_SIZE);
      per_process[p]++;
    }
    fclose(file);
  }
  assert_int_equal(count, RACE_JOBS);
  qsort(ids, count, AP_ID_SIZE, compare_ids);
  for (size_t i = 1; i < count; i++) {
    assert_string_not_equal(ids[i - 1], ids[i]);
  }

  assert_int_equal(meta_fixture_open(&fixture), 0);
  for (size_t i = 0; i < count; i++) {
    ap_job_t *job = NULL;
    assert_int_equal(ap_job_get(fixture.context, NULL, ids[i], &job, NULL),
                     AP_OK);
    assert_int_equal(ap_job_state(job), AP_JOB_SUCCEEDED);
    assert_int_equal(ap_job_attempts(job), 1);
    ap_job_free(job);
  }
  printf("claims per process: %zu, %zu\n", per_process[0], per_process[1]);
  free(ids);
  meta_fixture_close(&fixture);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(job_lifecycle_succeeds),
      cmocka_unit_test(enqueue_with_same_key_returns_job),
      cmocka_unit_test(claim_filters_kinds),
      cmocka_unit_test(stale_token_is_rejected),
      cmocka_unit_test(lost_last_attempt_becomes_dead),
      cmocka_unit_test(retries_end_dead_with_last_error),
      cmocka_unit_test(non_retryable_error_fails_at_once),
      cmocka_unit_test(backoff_stays_in_bounds),
      cmocka_unit_test(cancel_stops_job),
      cmocka_unit_test(watch_reports_changes),
      cmocka_unit_test(claims_are_exclusive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
