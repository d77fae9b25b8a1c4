/*
 * Tests of the db job queue on the MongoDB backend, against the server of
 * the `mongo` ctest fixture or the MongoDB that AUDIOPIPE_TEST_MONGODB_URI
 * names. They cover enqueue and idempotency, claim order and filters,
 * claims racing on two threads, leases, retries, the reaper, cancel,
 * statistics, owner checks and a worker run. Each test has a database of
 * its own, dropped before and after it.
 *
 * Calls that need a chosen clock go to the backend functions directly
 * (every ap_mongo_job_* takes now_ms); the others use the public API.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <audiopipe/config.h>
#include <audiopipe/context.h>
#include <audiopipe/io.h>
#include <audiopipe/job.h>
#include <audiopipe/meta.h>
#include <audiopipe/upload.h>
#include <audiopipe/worker.h>

#include "context/context_internal.h"
#include "meta/mongo_internal.h"
#include "mongo_fixture.h"
#include "storage/object_store.h"

#define TEST_SECRET "test-secret-0123456789abcdef0123456789abcdef"

/* A fixed clock for the backend calls, past 2^32 ms so that a time that
 * lost its upper bits shows. */
#define T0 1700000000000LL

/* How long the worker test waits for its jobs before it gives up: far
 * above the time they take, so only a hang fails it. */
#define WORKER_WAIT_MS 60000

typedef struct job_fixture {
  char directory[512];
  char *uri; /* owned: the server's URI with the test's own database */
  ap_config_t *config;
  ap_context_t *context;
  ap_mongo_store_t *store; /* the context's backend state */
} job_fixture_t;

/* Opens a context on the database of `uri` (taken over), dropped first.
 * retry_base and retry_max are jobs.retry_base and jobs.retry_max ("0ms"
 * for immediate retries). */
static void fixture_open_uri(job_fixture_t *fixture, char *uri,
                             const char *retry_base, const char *retry_max) {
  memset(fixture, 0, sizeof *fixture);
  fixture->uri = uri;
  assert_non_null(fixture->uri);
  mongo_fixture_drop(fixture->uri);

  const char *tmp = getenv("TMPDIR");
  snprintf(fixture->directory, sizeof fixture->directory,
           "%s/apmongojobsXXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(fixture->directory));
  char objects[600];
  snprintf(objects, sizeof objects, "file://%s/objects", fixture->directory);

  assert_int_equal(ap_config_new(&fixture->config, NULL), AP_OK);
  ap_config_t *config = fixture->config;
  assert_int_equal(ap_config_set(config, "metadata.uri", fixture->uri, NULL),
                   AP_OK);
  assert_int_equal(ap_config_set(config, "objects.uri", objects, NULL), AP_OK);
  assert_int_equal(ap_config_set(config, "signing.secret", TEST_SECRET, NULL),
                   AP_OK);
  assert_int_equal(
      ap_config_set(config, "public.base_url", "http://127.0.0.1:8080", NULL),
      AP_OK);
  assert_int_equal(ap_config_set(config, "jobs.retry_base", retry_base, NULL),
                   AP_OK);
  assert_int_equal(ap_config_set(config, "jobs.retry_max", retry_max, NULL),
                   AP_OK);
  ap_error_t error = {0};
  if (ap_context_open(config, &fixture->context, &error) != AP_OK) {
    fail_msg("ap_context_open on %s: %s", fixture->uri, error.message);
  }
  ap_meta_store_t *meta = ap_context_meta_store(fixture->context);
  assert_string_equal(meta->backend->name, "mongodb");
  fixture->store = meta->state;
}

/* Opens a context on a new database of the server under test. */
static void fixture_open(job_fixture_t *fixture, const char *retry_base,
                         const char *retry_max) {
  fixture_open_uri(fixture, mongo_fixture_uri("apjobs"), retry_base, retry_max);
}

static void fixture_close(job_fixture_t *fixture) {
  ap_context_close(fixture->context);
  ap_config_free(fixture->config);
  mongo_fixture_drop(fixture->uri);
  free(fixture->uri);
  char command[600];
  snprintf(command, sizeof command, "rm -rf '%s'", fixture->directory);
  assert_int_equal(system(command), 0);
}

static void options_for(ap_job_enqueue_options_t *options, const char *kind) {
  ap_job_enqueue_options_init(options);
  options->kind = kind;
  options->owner = "alice";
  options->payload_json = "{\"n\":1}";
}

/* Enqueues a job through the backend at `now_ms`. */
static ap_job_t *enqueue_at(job_fixture_t *fixture,
                            const ap_job_enqueue_options_t *options,
                            int64_t now_ms) {
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  if (ap_mongo_job_enqueue(fixture->store, options, now_ms, &job, &error) !=
      AP_OK) {
    fail_msg("enqueue: %s", error.message);
  }
  assert_non_null(job);
  return job;
}

static ap_job_t *enqueue_kind_at(job_fixture_t *fixture, const char *kind,
                                 int max_attempts, int64_t delay_ms,
                                 int64_t now_ms) {
  ap_job_enqueue_options_t options;
  options_for(&options, kind);
  options.max_attempts = max_attempts;
  options.delay_ms = delay_ms;
  return enqueue_at(fixture, &options, now_ms);
}

/* Claims through the backend at `now_ms`; NULL when nothing is due. */
static ap_job_t *claim_at(job_fixture_t *fixture, int64_t lease_ms,
                          int64_t now_ms) {
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  if (ap_mongo_job_claim(fixture->store, "worker-1", lease_ms, NULL, 0, now_ms,
                         &job, &error) != AP_OK) {
    fail_msg("claim: %s", error.message);
  }
  return job;
}

static ap_job_t *get_job(job_fixture_t *fixture, const char *id) {
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  if (ap_job_get(fixture->context, NULL, id, &job, &error) != AP_OK) {
    fail_msg("get %s: %s", id, error.message);
  }
  return job;
}

static void enqueue_get_round_trip(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");

  ap_job_enqueue_options_t options;
  options_for(&options, "process_asset");
  options.asset_id = "asset-1";
  options.idempotency_key = "key-round-trip";
  options.max_attempts = 7;
  options.delay_ms = 250;
  ap_job_t *queued = enqueue_at(&fixture, &options, T0);
  assert_non_null(ap_job_id(queued));
  assert_int_equal(strlen(ap_job_id(queued)), AP_ID_SIZE - 1);

  ap_job_t *stored = get_job(&fixture, ap_job_id(queued));
  ap_job_t *snapshots[] = {queued, stored};
  for (size_t i = 0; i < 2; i++) {
    ap_job_t *job = snapshots[i];
    assert_string_equal(ap_job_id(job), ap_job_id(queued));
    assert_string_equal(ap_job_kind(job), "process_asset");
    assert_string_equal(ap_job_asset_id(job), "asset-1");
    assert_string_equal(ap_job_owner(job), "alice");
    assert_int_equal(ap_job_state(job), AP_JOB_QUEUED);
    assert_string_equal(ap_job_payload_json(job), "{\"n\":1}");
    assert_null(ap_job_result_json(job));
    assert_string_equal(ap_job_idempotency_key(job), "key-round-trip");
    assert_int_equal(ap_job_attempts(job), 0);
    assert_int_equal(ap_job_max_attempts(job), 7);
    assert_int_equal(ap_job_error_code(job), 0);
    assert_null(ap_job_error_message(job));
    assert_true(ap_job_progress_fraction(job) == 0.0);
    assert_null(ap_job_stage(job));
    assert_null(ap_job_lease_owner(job));
    assert_int_equal(ap_job_lease_expires_at_ms(job), 0);
    assert_null(ap_job_claim_token(job));
    assert_int_equal(ap_job_due_at_ms(job), T0 + 250);
    assert_int_equal(ap_job_created_at_ms(job), T0);
    assert_int_equal(ap_job_updated_at_ms(job), T0);
  }
  ap_job_free(stored);

  /* The fields a claim, a progress report and a failure set. */
  ap_job_t *running = claim_at(&fixture, 60000, T0 + 1000);
  assert_non_null(running);
  assert_string_equal(ap_job_id(running), ap_job_id(queued));
  assert_int_equal(ap_job_state(running), AP_JOB_RUNNING);
  assert_int_equal(ap_job_attempts(running), 1);
  assert_string_equal(ap_job_lease_owner(running), "worker-1");
  assert_int_equal(ap_job_lease_expires_at_ms(running), T0 + 61000);
  assert_int_equal(ap_job_updated_at_ms(running), T0 + 1000);
  assert_non_null(ap_job_claim_token(running));
  assert_int_equal(strlen(ap_job_claim_token(running)), AP_JOB_TOKEN_SIZE - 1);
  const char *id = ap_job_id(running);
  const char *token = ap_job_claim_token(running);

  ap_error_t error = {0};
  assert_int_equal(ap_mongo_job_progress(fixture.store, id, token, 0.25,
                                         "decode", T0 + 2000, &error),
                   AP_OK);
  stored = get_job(&fixture, id);
  assert_true(ap_job_progress_fraction(stored) == 0.25);
  assert_string_equal(ap_job_stage(stored), "decode");
  assert_string_equal(ap_job_lease_owner(stored), "worker-1");
  assert_int_equal(ap_job_lease_expires_at_ms(stored), T0 + 61000);
  assert_null(ap_job_claim_token(stored));
  assert_int_equal(ap_job_updated_at_ms(stored), T0 + 2000);
  ap_job_free(stored);

  assert_int_equal(ap_mongo_job_fail(fixture.store, id, token,
                                     AP_ERR_UNAVAILABLE, "store down", 1,
                                     T0 + 3000, &error),
                   AP_OK);
  stored = get_job(&fixture, id);
  assert_int_equal(ap_job_state(stored), AP_JOB_QUEUED);
  assert_int_equal(ap_job_error_code(stored), AP_ERR_UNAVAILABLE);
  assert_string_equal(ap_job_error_message(stored), "store down");
  assert_null(ap_job_lease_owner(stored));
  assert_int_equal(ap_job_lease_expires_at_ms(stored), 0);
  assert_int_equal(ap_job_due_at_ms(stored), T0 + 3000);
  assert_int_equal(ap_job_attempts(stored), 1);
  ap_job_free(stored);

  /* The result of a completed job. */
  ap_job_t *again = claim_at(&fixture, 60000, T0 + 4000);
  assert_non_null(again);
  assert_int_equal(ap_job_attempts(again), 2);
  assert_int_equal(ap_mongo_job_complete(fixture.store, id,
                                         ap_job_claim_token(again),
                                         "{\"ok\":true}", T0 + 5000, &error),
                   AP_OK);
  stored = get_job(&fixture, id);
  assert_int_equal(ap_job_state(stored), AP_JOB_SUCCEEDED);
  assert_string_equal(ap_job_result_json(stored), "{\"ok\":true}");
  assert_true(ap_job_progress_fraction(stored) == 1.0);
  assert_int_equal(ap_job_error_code(stored), 0);
  assert_null(ap_job_error_message(stored));
  assert_int_equal(ap_job_updated_at_ms(stored), T0 + 5000);
  ap_job_free(stored);

  assert_int_equal(
      ap_job_get(fixture.context, NULL, "missing-job", &stored, &error),
      AP_ERR_NOT_FOUND);
  assert_non_null(strstr(error.message, "missing-job"));

  ap_job_free(again);
  ap_job_free(running);
  ap_job_free(queued);
  fixture_close(&fixture);
}

typedef struct enqueue_race {
  job_fixture_t *fixture;
  char id[AP_ID_SIZE];
  ap_status_t status;
} enqueue_race_t;

static void *enqueue_same_key(void *argument) {
  enqueue_race_t *race = argument;
  ap_job_enqueue_options_t options;
  options_for(&options, "process_asset");
  options.idempotency_key = "key-race";
  ap_job_t *job = NULL;
  race->status = ap_job_enqueue(race->fixture->context, &options, &job, NULL);
  if (race->status == AP_OK) {
    snprintf(race->id, sizeof race->id, "%s", ap_job_id(job));
  }
  ap_job_free(job);
  return NULL;
}

static void idempotent_enqueue_same_job(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");

  ap_job_enqueue_options_t options;
  options_for(&options, "process_asset");
  options.idempotency_key = "key-1";
  ap_job_t *first = NULL;
  ap_job_t *second = NULL;
  ap_job_t *other = NULL;
  assert_int_equal(ap_job_enqueue(fixture.context, &options, &first, NULL),
                   AP_OK);
  /* The second call's own options differ: the stored job wins. */
  options.payload_json = "{\"n\":2}";
  assert_int_equal(ap_job_enqueue(fixture.context, &options, &second, NULL),
                   AP_OK);
  options.idempotency_key = "key-2";
  assert_int_equal(ap_job_enqueue(fixture.context, &options, &other, NULL),
                   AP_OK);
  assert_string_equal(ap_job_id(first), ap_job_id(second));
  assert_string_not_equal(ap_job_id(first), ap_job_id(other));
  assert_string_equal(ap_job_idempotency_key(second), "key-1");
  assert_string_equal(ap_job_payload_json(second), "{\"n\":1}");
  assert_int_equal(ap_job_created_at_ms(second), ap_job_created_at_ms(first));

  /* A job that already ran is still the job of its key. */
  ap_job_t *running = claim_at(&fixture, 60000, ap_time_now_ms() + 1000);
  assert_non_null(running);
  options.idempotency_key = ap_job_idempotency_key(running);
  ap_job_t *third = NULL;
  assert_int_equal(ap_job_enqueue(fixture.context, &options, &third, NULL),
                   AP_OK);
  assert_string_equal(ap_job_id(third), ap_job_id(running));
  assert_int_equal(ap_job_state(third), AP_JOB_RUNNING);

  ap_job_stats_t stats;
  assert_int_equal(ap_job_stats(fixture.context, &stats, NULL), AP_OK);
  assert_int_equal(stats.queued + stats.running, 2);

  if (!mongo_fixture_skip("concurrent enqueues with one idempotency key "
                          "need the unique index, which it does not "
                          "enforce")) {
    enum { RACERS = 8 };
    pthread_t threads[RACERS];
    enqueue_race_t races[RACERS];
    for (int i = 0; i < RACERS; i++) {
      memset(&races[i], 0, sizeof races[i]);
      races[i].fixture = &fixture;
      assert_int_equal(
          pthread_create(&threads[i], NULL, enqueue_same_key, &races[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
      assert_int_equal(pthread_join(threads[i], NULL), 0);
    }
    for (int i = 0; i < RACERS; i++) {
      assert_int_equal(races[i].status, AP_OK);
      assert_string_equal(races[i].id, races[0].id);
    }
    assert_int_equal(ap_job_stats(fixture.context, &stats, NULL), AP_OK);
    assert_int_equal(stats.queued + stats.running, 3);
  }

  ap_job_free(third);
  ap_job_free(running);
  ap_job_free(first);
  ap_job_free(second);
  ap_job_free(other);
  fixture_close(&fixture);
}

static void claim_order_due_then_created(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");

  /* Due at T0 + 1500, T0 + 1200 and T0 + 1200. The two due together are
   * taken in order of creation. */
  ap_job_t *late =
      enqueue_kind_at(&fixture, "process_asset", 0, 500, T0 + 1000);
  ap_job_t *newer = enqueue_kind_at(&fixture, "process_asset", 0, 0, T0 + 1200);
  ap_job_t *older =
      enqueue_kind_at(&fixture, "process_asset", 0, 100, T0 + 1100);
  const char *expected[] = {ap_job_id(older), ap_job_id(newer),
                            ap_job_id(late)};
  for (size_t i = 0; i < 3; i++) {
    ap_job_t *job = claim_at(&fixture, 60000, T0 + 2000);
    assert_non_null(job);
    assert_string_equal(ap_job_id(job), expected[i]);
    ap_job_free(job);
  }
  assert_null(claim_at(&fixture, 60000, T0 + 2000));
  ap_job_free(late);
  ap_job_free(newer);
  ap_job_free(older);
  fixture_close(&fixture);
}

static void claim_filters_kinds(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");

  ap_job_free(enqueue_kind_at(&fixture, "transcode", 0, 0, T0));
  ap_job_t *requested =
      enqueue_kind_at(&fixture, "process_asset", 0, 0, T0 + 1);
  const char *kinds[] = {"process_asset", "other_kind"};
  ap_job_t *job = NULL;
  assert_int_equal(
      ap_job_claim(fixture.context, "w", 1000, kinds, 2, &job, NULL), AP_OK);
  assert_non_null(job);
  assert_string_equal(ap_job_id(job), ap_job_id(requested));
  ap_job_free(job);
  assert_int_equal(
      ap_job_claim(fixture.context, "w", 1000, kinds, 2, &job, NULL), AP_OK);
  assert_null(job);

  /* Without a filter the other kind is claimed. */
  assert_int_equal(
      ap_job_claim(fixture.context, "w", 1000, NULL, 0, &job, NULL), AP_OK);
  assert_non_null(job);
  assert_string_equal(ap_job_kind(job), "transcode");
  ap_job_free(job);

  const char *too_many[17];
  for (size_t i = 0; i < 17; i++) {
    too_many[i] = "process_asset";
  }
  ap_error_t error = {0};
  assert_int_equal(
      ap_job_claim(fixture.context, "w", 1000, too_many, 17, &job, &error),
      AP_ERR_INVALID_ARGUMENT);
  ap_job_free(requested);
  fixture_close(&fixture);
}

static void delayed_job_waits(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");

  ap_job_t *delayed = enqueue_kind_at(&fixture, "process_asset", 0, 60000, T0);
  assert_int_equal(ap_job_due_at_ms(delayed), T0 + 60000);
  assert_null(claim_at(&fixture, 1000, T0));
  assert_null(claim_at(&fixture, 1000, T0 + 59999));
  ap_job_t *job = claim_at(&fixture, 1000, T0 + 60000);
  assert_non_null(job);
  assert_string_equal(ap_job_id(job), ap_job_id(delayed));
  ap_job_free(job);
  ap_job_free(delayed);
  fixture_close(&fixture);
}

enum { RACE_JOBS = 100 };

typedef struct claim_race {
  job_fixture_t *fixture;
  char worker_id[16];
  char ids[RACE_JOBS][AP_ID_SIZE];
  int count;
  ap_status_t status;
} claim_race_t;

static void *claim_until_empty(void *argument) {
  claim_race_t *race = argument;
  for (;;) {
    ap_job_t *job = NULL;
    ap_error_t error = {0};
    race->status = ap_job_claim(race->fixture->context, race->worker_id, 60000,
                                NULL, 0, &job, &error);
    if (race->status != AP_OK || !job) {
      break;
    }
    if (race->count < RACE_JOBS) {
      snprintf(race->ids[race->count], AP_ID_SIZE, "%s", ap_job_id(job));
    }
    race->count++;
    ap_job_free(job);
  }
  return NULL;
}

static void racing_claims_exclusive(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");
  for (int i = 0; i < RACE_JOBS; i++) {
    ap_job_free(enqueue_kind_at(&fixture, "process_asset", 0, 0, T0 + i));
  }

  claim_race_t *races = calloc(2, sizeof *races);
  assert_non_null(races);
  pthread_t threads[2];
  for (int i = 0; i < 2; i++) {
    races[i].fixture = &fixture;
    snprintf(races[i].worker_id, sizeof races[i].worker_id, "racer-%d", i);
    assert_int_equal(
        pthread_create(&threads[i], NULL, claim_until_empty, &races[i]), 0);
  }
  for (int i = 0; i < 2; i++) {
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  }
  assert_int_equal(races[0].status, AP_OK);
  assert_int_equal(races[1].status, AP_OK);
  assert_int_equal(races[0].count + races[1].count, RACE_JOBS);

  /* Every claimed id differs from every other. */
  for (int a = 0; a < 2; a++) {
    for (int i = 0; i < races[a].count; i++) {
      for (int b = 0; b < 2; b++) {
        for (int j = 0; j < races[b].count; j++) {
          if (a == b && i == j) {
            continue;
          }
          assert_string_not_equal(races[a].ids[i], races[b].ids[j]);
        }
      }
    }
  }
  ap_job_stats_t stats;
  assert_int_equal(ap_job_stats(fixture.context, &stats, NULL), AP_OK);
  assert_int_equal(stats.running, RACE_JOBS);
  assert_int_equal(stats.queued, 0);
  free(races);
  fixture_close(&fixture);
}

static void heartbeat_extends_lease(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");
  ap_job_free(enqueue_kind_at(&fixture, "process_asset", 0, 0, T0));
  ap_job_t *job = claim_at(&fixture, 1000, T0);
  assert_non_null(job);
  const char *id = ap_job_id(job);
  const char *token = ap_job_claim_token(job);

  ap_error_t error = {0};
  assert_int_equal(
      ap_mongo_job_heartbeat(fixture.store, id, token, 1000, T0 + 500, &error),
      AP_OK);
  ap_job_t *stored = get_job(&fixture, id);
  assert_int_equal(ap_job_lease_expires_at_ms(stored), T0 + 1500);
  assert_int_equal(ap_job_updated_at_ms(stored), T0 + 500);
  ap_job_free(stored);

  /* Past the first lease but inside the renewed one, nothing is reaped. */
  int64_t count = -1;
  assert_int_equal(ap_mongo_job_reap(fixture.store, T0 + 1200, &count, &error),
                   AP_OK);
  assert_int_equal(count, 0);

  assert_int_equal(ap_mongo_job_heartbeat(fixture.store, id,
                                          "0123456789abcdef0123456789abcdef",
                                          1000, T0 + 600, &error),
                   AP_ERR_LEASE_LOST);
  assert_non_null(strstr(error.message, id));
  assert_int_equal(ap_mongo_job_heartbeat(fixture.store, "missing-job", token,
                                          1000, T0 + 600, &error),
                   AP_ERR_NOT_FOUND);
  assert_int_equal(ap_mongo_job_progress(fixture.store, "missing-job", token,
                                         0.5, NULL, T0 + 600, &error),
                   AP_ERR_NOT_FOUND);
  stored = get_job(&fixture, id);
  assert_int_equal(ap_job_lease_expires_at_ms(stored), T0 + 1500);
  ap_job_free(stored);
  ap_job_free(job);
  fixture_close(&fixture);
}

static void stale_token_changes_nothing(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");
  ap_job_free(enqueue_kind_at(&fixture, "process_asset", 3, 0, T0));

  /* Worker A's lease expires and the job is re-queued, then claimed by
   * worker B: attempt 2 with a new token. */
  ap_job_t *first = claim_at(&fixture, 1000, T0);
  assert_non_null(first);
  int64_t count = 0;
  ap_error_t error = {0};
  assert_int_equal(ap_mongo_job_reap(fixture.store, T0 + 1001, &count, &error),
                   AP_OK);
  assert_int_equal(count, 1);
  ap_job_t *second = claim_at(&fixture, 60000, T0 + 1002);
  assert_non_null(second);
  assert_int_equal(ap_job_attempts(second), 2);
  assert_string_not_equal(ap_job_claim_token(first),
                          ap_job_claim_token(second));
  const char *id = ap_job_id(first);
  const char *stale = ap_job_claim_token(first);
  ap_job_t *before = get_job(&fixture, id);

  assert_int_equal(
      ap_mongo_job_complete(fixture.store, id, stale, "{}", T0 + 2000, &error),
      AP_ERR_LEASE_LOST);
  assert_non_null(strstr(error.message, "no longer holds the lease"));
  assert_int_equal(ap_mongo_job_fail(fixture.store, id, stale, AP_ERR_IO,
                                     "late failure", 1, T0 + 2000, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_mongo_job_fail(fixture.store, id, stale, AP_ERR_IO,
                                     "late failure", 0, T0 + 2000, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_mongo_job_progress(fixture.store, id, stale, 0.9, "late",
                                         T0 + 2000, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_mongo_job_fail(fixture.store, "missing-job", stale,
                                     AP_ERR_IO, "late failure", 1, T0 + 2000,
                                     &error),
                   AP_ERR_NOT_FOUND);

  ap_job_t *after = get_job(&fixture, id);
  assert_int_equal(ap_job_state(after), AP_JOB_RUNNING);
  assert_int_equal(ap_job_attempts(after), 2);
  assert_int_equal(ap_job_updated_at_ms(after), ap_job_updated_at_ms(before));
  assert_int_equal(ap_job_lease_expires_at_ms(after), T0 + 61002);
  assert_int_equal(ap_job_error_code(after), ap_job_error_code(before));
  assert_string_equal(ap_job_error_message(after), "worker lost");
  assert_null(ap_job_result_json(after));
  assert_null(ap_job_stage(after));

  /* The current holder still completes it, once. */
  const char *current = ap_job_claim_token(second);
  assert_int_equal(ap_mongo_job_complete(fixture.store, id, current, NULL,
                                         T0 + 3000, &error),
                   AP_OK);
  assert_int_equal(ap_mongo_job_complete(fixture.store, id, current, NULL,
                                         T0 + 3001, &error),
                   AP_ERR_LEASE_LOST);
  ap_job_free(after);
  ap_job_free(before);
  ap_job_free(first);
  ap_job_free(second);
  fixture_close(&fixture);
}

static void retry_backoff_then_dead(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "1000ms", "1500ms");
  ap_job_t *queued = enqueue_kind_at(&fixture, "process_asset", 3, 0, T0);
  const char *id = ap_job_id(queued);

  /* Attempts 1 and 2 are re-queued within the backoff ceilings 1000 ms
   * and min(1500, 2000) ms; attempt 3 ends dead with its error. */
  int64_t ceilings[] = {1000, 1500};
  int64_t now = T0;
  ap_error_t error = {0};
  for (int attempt = 1; attempt <= 3; attempt++) {
    ap_job_t *job = claim_at(&fixture, 60000, now);
    assert_non_null(job);
    assert_int_equal(ap_job_attempts(job), attempt);
    assert_int_equal(ap_mongo_job_fail(
                         fixture.store, id, ap_job_claim_token(job),
                         AP_ERR_UNAVAILABLE, "store down", 1, now + 10, &error),
                     AP_OK);
    ap_job_free(job);

    ap_job_t *stored = get_job(&fixture, id);
    assert_int_equal(ap_job_error_code(stored), AP_ERR_UNAVAILABLE);
    assert_string_equal(ap_job_error_message(stored), "store down");
    if (attempt < 3) {
      assert_int_equal(ap_job_state(stored), AP_JOB_QUEUED);
      assert_true(ap_job_due_at_ms(stored) >= now + 10);
      assert_true(ap_job_due_at_ms(stored) <= now + 10 + ceilings[attempt - 1]);
      now = ap_job_due_at_ms(stored);
    } else {
      assert_int_equal(ap_job_state(stored), AP_JOB_DEAD);
    }
    ap_job_free(stored);
  }
  assert_null(claim_at(&fixture, 60000, now + 100000));

  /* A non-retryable error fails the job at once, whatever remains. */
  ap_job_t *other = enqueue_kind_at(&fixture, "process_asset", 3, 0, now);
  ap_job_t *job = claim_at(&fixture, 60000, now + 1);
  assert_non_null(job);
  assert_int_equal(
      ap_mongo_job_fail(fixture.store, ap_job_id(job), ap_job_claim_token(job),
                        AP_ERR_CORRUPT_INPUT, "bad file", 1, now + 2, &error),
      AP_OK);
  ap_job_t *stored = get_job(&fixture, ap_job_id(other));
  assert_int_equal(ap_job_state(stored), AP_JOB_FAILED);
  assert_int_equal(ap_job_error_code(stored), AP_ERR_CORRUPT_INPUT);
  assert_int_equal(ap_job_attempts(stored), 1);
  ap_job_free(stored);
  ap_job_free(job);
  ap_job_free(other);
  ap_job_free(queued);
  fixture_close(&fixture);
}

typedef struct reap_race {
  job_fixture_t *fixture;
  int64_t count;
  ap_status_t status;
} reap_race_t;

static void *reap_once(void *argument) {
  reap_race_t *race = argument;
  race->status =
      ap_mongo_job_reap(race->fixture->store, T0 + 5000, &race->count, NULL);
  return NULL;
}

static void reap_requeues_expired(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");
  ap_job_t *queued = enqueue_kind_at(&fixture, "process_asset", 2, 0, T0);
  const char *id = ap_job_id(queued);
  ap_job_t *job = claim_at(&fixture, 1000, T0);
  assert_non_null(job);
  ap_job_free(job);

  /* The lease ends at T0 + 1000: expired only strictly after. */
  int64_t count = -1;
  ap_error_t error = {0};
  assert_int_equal(ap_mongo_job_reap(fixture.store, T0 + 1000, &count, &error),
                   AP_OK);
  assert_int_equal(count, 0);
  assert_int_equal(ap_mongo_job_reap(fixture.store, T0 + 1001, &count, &error),
                   AP_OK);
  assert_int_equal(count, 1);
  ap_job_t *stored = get_job(&fixture, id);
  assert_int_equal(ap_job_state(stored), AP_JOB_QUEUED);
  assert_int_equal(ap_job_error_code(stored), AP_ERR_TIMED_OUT);
  assert_string_equal(ap_job_error_message(stored), "worker lost");
  assert_null(ap_job_lease_owner(stored));
  assert_int_equal(ap_job_lease_expires_at_ms(stored), 0);
  assert_int_equal(ap_job_due_at_ms(stored), T0 + 1001);
  assert_int_equal(ap_job_updated_at_ms(stored), T0 + 1001);
  ap_job_free(stored);
  assert_int_equal(ap_mongo_job_reap(fixture.store, T0 + 1002, &count, &error),
                   AP_OK);
  assert_int_equal(count, 0);

  /* The last attempt lost: a claim reaps it first, and it is dead. */
  job = claim_at(&fixture, 1000, T0 + 2000);
  assert_non_null(job);
  assert_int_equal(ap_job_attempts(job), 2);
  ap_job_free(job);
  assert_null(claim_at(&fixture, 1000, T0 + 3001));
  stored = get_job(&fixture, id);
  assert_int_equal(ap_job_state(stored), AP_JOB_DEAD);
  assert_string_equal(ap_job_error_message(stored), "worker lost");
  ap_job_free(stored);

  /* Two reapers racing over 20 expired leases move each exactly once. */
  for (int i = 0; i < 20; i++) {
    ap_job_free(enqueue_kind_at(&fixture, "transcode", 3, 0, T0 + 4000));
  }
  for (int i = 0; i < 20; i++) {
    ap_job_t *claimed = claim_at(&fixture, 100, T0 + 4000);
    assert_non_null(claimed);
    ap_job_free(claimed);
  }
  reap_race_t races[2];
  pthread_t threads[2];
  for (int i = 0; i < 2; i++) {
    memset(&races[i], 0, sizeof races[i]);
    races[i].fixture = &fixture;
    assert_int_equal(pthread_create(&threads[i], NULL, reap_once, &races[i]),
                     0);
  }
  for (int i = 0; i < 2; i++) {
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  }
  assert_int_equal(races[0].status, AP_OK);
  assert_int_equal(races[1].status, AP_OK);
  assert_int_equal(races[0].count + races[1].count, 20);
  ap_job_stats_t stats = {0};
  assert_int_equal(ap_mongo_job_stats(fixture.store, T0 + 5000, &stats, &error),
                   AP_OK);
  assert_int_equal(stats.queued, 20);
  assert_int_equal(stats.running, 0);
  assert_int_equal(stats.dead, 1);
  ap_job_free(queued);
  fixture_close(&fixture);
}

static void cancel_queued_and_running(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");
  ap_job_t *waiting = enqueue_kind_at(&fixture, "transcode", 0, 0, T0);
  ap_job_t *queued = enqueue_kind_at(&fixture, "process_asset", 0, 0, T0 + 1);
  ap_job_t *running = NULL;
  const char *kinds[] = {"transcode"};
  ap_error_t error = {0};
  assert_int_equal(ap_mongo_job_claim(fixture.store, "worker-1", 60000, kinds,
                                      1, T0 + 2, &running, &error),
                   AP_OK);
  assert_non_null(running);
  assert_string_equal(ap_job_id(running), ap_job_id(waiting));

  assert_int_equal(
      ap_job_cancel(fixture.context, "alice", ap_job_id(queued), &error),
      AP_OK);
  ap_job_t *stored = get_job(&fixture, ap_job_id(queued));
  assert_int_equal(ap_job_state(stored), AP_JOB_CANCELLED);
  ap_job_free(stored);

  const char *id = ap_job_id(running);
  const char *token = ap_job_claim_token(running);
  assert_int_equal(ap_job_cancel(fixture.context, NULL, id, &error), AP_OK);
  stored = get_job(&fixture, id);
  assert_int_equal(ap_job_state(stored), AP_JOB_CANCELLED);
  assert_null(ap_job_lease_owner(stored));
  assert_int_equal(ap_job_lease_expires_at_ms(stored), 0);
  ap_job_free(stored);
  assert_int_equal(ap_job_heartbeat(fixture.context, id, token, 1000, &error),
                   AP_ERR_LEASE_LOST);
  assert_non_null(strstr(error.message, "cancelled"));

  assert_int_equal(ap_job_cancel(fixture.context, "alice", id, &error),
                   AP_ERR_JOB_STATE);
  assert_non_null(strstr(error.message, "already cancelled"));
  assert_int_equal(
      ap_job_cancel(fixture.context, "alice", "missing-job", &error),
      AP_ERR_NOT_FOUND);
  assert_null(claim_at(&fixture, 1000, T0 + 10));
  ap_job_free(waiting);
  ap_job_free(queued);
  ap_job_free(running);
  fixture_close(&fixture);
}

static void stats_count_by_state(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");
  ap_error_t error = {0};
  ap_job_stats_t stats = {0};
  assert_int_equal(ap_mongo_job_stats(fixture.store, T0, &stats, &error),
                   AP_OK);
  assert_int_equal(stats.queued, 0);
  assert_int_equal(stats.oldest_queued_age_ms, 0);

  /* One each of running, succeeded, failed and dead, then two due queued
   * jobs and one delayed. */
  for (int i = 0; i < 4; i++) {
    ap_job_free(enqueue_kind_at(&fixture, "process_asset", 1, 0, T0 + i));
  }
  ap_job_t *jobs[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = claim_at(&fixture, 60000, T0 + 10);
    assert_non_null(jobs[i]);
  }
  assert_int_equal(ap_mongo_job_complete(fixture.store, ap_job_id(jobs[1]),
                                         ap_job_claim_token(jobs[1]), NULL,
                                         T0 + 20, &error),
                   AP_OK);
  assert_int_equal(ap_mongo_job_fail(fixture.store, ap_job_id(jobs[2]),
                                     ap_job_claim_token(jobs[2]),
                                     AP_ERR_CORRUPT_INPUT, "bad", 0, T0 + 20,
                                     &error),
                   AP_OK);
  assert_int_equal(ap_mongo_job_fail(fixture.store, ap_job_id(jobs[3]),
                                     ap_job_claim_token(jobs[3]),
                                     AP_ERR_UNAVAILABLE, "down", 1, T0 + 20,
                                     &error),
                   AP_OK);
  ap_job_free(enqueue_kind_at(&fixture, "process_asset", 0, 0, T0 + 100));
  ap_job_free(enqueue_kind_at(&fixture, "process_asset", 0, 50, T0 + 100));
  ap_job_free(enqueue_kind_at(&fixture, "process_asset", 0, 99000, T0 + 100));

  assert_int_equal(ap_mongo_job_stats(fixture.store, T0 + 1000, &stats, &error),
                   AP_OK);
  assert_int_equal(stats.queued, 3);
  assert_int_equal(stats.running, 1);
  assert_int_equal(stats.failed, 1);
  assert_int_equal(stats.dead, 1);
  assert_int_equal(stats.oldest_queued_age_ms, 900);

  /* Through the public call, on the current clock. */
  ap_job_stats_t now_stats;
  assert_int_equal(ap_job_stats(fixture.context, &now_stats, &error), AP_OK);
  assert_int_equal(now_stats.queued, 3);
  assert_true(now_stats.oldest_queued_age_ms > 0);
  for (int i = 0; i < 4; i++) {
    ap_job_free(jobs[i]);
  }
  fixture_close(&fixture);
}

static void owner_isolation(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");
  ap_job_t *queued = enqueue_kind_at(&fixture, "process_asset", 0, 0, T0);
  const char *id = ap_job_id(queued);

  ap_job_t *job = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_job_get(fixture.context, "alice", id, &job, &error),
                   AP_OK);
  assert_string_equal(ap_job_owner(job), "alice");
  ap_job_free(job);
  job = NULL;
  assert_int_equal(ap_job_get(fixture.context, "mallory", id, &job, &error),
                   AP_ERR_NOT_FOUND);
  assert_null(job);
  assert_non_null(strstr(error.message, "not found"));
  assert_int_equal(ap_job_cancel(fixture.context, "mallory", id, &error),
                   AP_ERR_NOT_FOUND);
  ap_job_t *stored = get_job(&fixture, id);
  assert_int_equal(ap_job_state(stored), AP_JOB_QUEUED);
  ap_job_free(stored);

  /* A job without an owner is reachable only without an owner check. */
  ap_job_enqueue_options_t options;
  options_for(&options, "process_asset");
  options.owner = NULL;
  ap_job_t *ownerless = enqueue_at(&fixture, &options, T0);
  assert_null(ap_job_owner(ownerless));
  assert_int_equal(
      ap_job_get(fixture.context, "alice", ap_job_id(ownerless), &job, &error),
      AP_ERR_NOT_FOUND);
  stored = get_job(&fixture, ap_job_id(ownerless));
  assert_null(ap_job_owner(stored));
  ap_job_free(stored);
  ap_job_free(ownerless);
  ap_job_free(queued);
  fixture_close(&fixture);
}

enum { WORKER_JOBS = 20 };

typedef struct worker_run {
  job_fixture_t *fixture;
  ap_worker_t *handle;
  ap_worker_options_t options;
  ap_status_t status;
  atomic_int claimed;
  atomic_int finished;
} worker_run_t;

static void count_event(void *user_data, const ap_worker_event_t *event) {
  worker_run_t *run = user_data;
  if (event->kind == AP_WORKER_EVENT_CLAIMED) {
    atomic_fetch_add(&run->claimed, 1);
  } else if (event->kind == AP_WORKER_EVENT_FAILED ||
             event->kind == AP_WORKER_EVENT_SUCCEEDED) {
    atomic_fetch_add(&run->finished, 1);
  }
}

static void *run_worker(void *argument) {
  worker_run_t *run = argument;
  run->status = ap_worker_run(run->fixture->context, &run->options, NULL);
  return NULL;
}

/* A worker with two threads takes each of 20 queued jobs exactly once.
 * The jobs have no asset, which the worker fails at once (non-retryable
 * AP_ERR_INVALID_ARGUMENT), so the test needs no uploads or media. */
static void worker_runs_each_job_once(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");
  char ids[WORKER_JOBS][AP_ID_SIZE];
  for (int i = 0; i < WORKER_JOBS; i++) {
    ap_job_enqueue_options_t options;
    options_for(&options, AP_JOB_KIND_PROCESS_ASSET);
    ap_job_t *job = NULL;
    assert_int_equal(ap_job_enqueue(fixture.context, &options, &job, NULL),
                     AP_OK);
    snprintf(ids[i], sizeof ids[i], "%s", ap_job_id(job));
    ap_job_free(job);
  }

  worker_run_t run;
  memset(&run, 0, sizeof run);
  run.fixture = &fixture;
  atomic_init(&run.claimed, 0);
  atomic_init(&run.finished, 0);
  assert_int_equal(ap_worker_new(&run.handle, NULL), AP_OK);
  ap_worker_options_init(&run.options);
  run.options.threads = 2;
  run.options.poll_interval_ms = 10;
  run.options.lease_ms = 5000;
  run.options.handle = run.handle;
  run.options.on_event = count_event;
  run.options.event_user_data = &run;
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, run_worker, &run), 0);

  for (int waited = 0;
       atomic_load(&run.finished) < WORKER_JOBS && waited < WORKER_WAIT_MS;
       waited += 10) {
    usleep(10000);
  }
  ap_worker_request_stop(run.handle);
  assert_int_equal(pthread_join(thread, NULL), 0);
  assert_int_equal(run.status, AP_OK);
  assert_int_equal(atomic_load(&run.claimed), WORKER_JOBS);
  assert_int_equal(atomic_load(&run.finished), WORKER_JOBS);

  for (int i = 0; i < WORKER_JOBS; i++) {
    ap_job_t *job = get_job(&fixture, ids[i]);
    assert_int_equal(ap_job_state(job), AP_JOB_FAILED);
    assert_int_equal(ap_job_attempts(job), 1);
    assert_int_equal(ap_job_error_code(job), AP_ERR_INVALID_ARGUMENT);
    ap_job_free(job);
  }
  ap_worker_free(run.handle);
  fixture_close(&fixture);
}

/* Uploads `path` through the library, which creates the asset and its
 * process_asset job in one transaction, and returns the asset. */
static ap_asset_t *upload_case(job_fixture_t *fixture, const char *path,
                               const char *content_type) {
  ap_context_t *context = fixture->context;
  ap_io_t *input = NULL;
  assert_int_equal(ap_io_open_file(path, &input, NULL), AP_OK);
  ap_upload_request_t request;
  ap_upload_request_init(&request);
  request.owner = "alice";
  request.filename = "recording.wav";
  request.size_bytes = ap_io_size(input);
  request.content_type = content_type;
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  if (ap_upload_create(context, &request, &ticket, &error) != AP_OK) {
    fail_msg("upload create: %s", error.message);
  }
  assert_int_equal(
      ap_object_store_put_from_io(ap_context_object_store(context),
                                  ap_upload_ticket_object_key(ticket),
                                  content_type, input, &error),
      AP_OK);
  ap_io_close(input);
  ap_asset_t *asset = NULL;
  if (ap_upload_complete(context, "alice", ap_upload_ticket_id(ticket), &asset,
                         &error) != AP_OK) {
    fail_msg("upload complete: %s", error.message);
  }
  ap_upload_ticket_free(ticket);
  return asset;
}

/* A real processing job on MongoDB: the upload's job is claimed once,
 * processed and completed, and the asset gets its results. */
static void worker_processes_uploaded_case(void **state) {
  (void)state;
  job_fixture_t fixture;
  fixture_open(&fixture, "0ms", "0ms");
  ap_asset_t *asset =
      upload_case(&fixture, AP_TEST_DATA_DIR "/cases/case-08.wav", "audio/wav");
  assert_non_null(ap_asset_job_id(asset));
  ap_job_t *queued = get_job(&fixture, ap_asset_job_id(asset));
  assert_int_equal(ap_job_state(queued), AP_JOB_QUEUED);
  assert_string_equal(ap_job_kind(queued), AP_JOB_KIND_PROCESS_ASSET);
  assert_string_equal(ap_job_asset_id(queued), ap_asset_id(asset));
  assert_string_equal(ap_job_owner(queued), "alice");
  ap_job_free(queued);

  worker_run_t run;
  memset(&run, 0, sizeof run);
  run.fixture = &fixture;
  atomic_init(&run.claimed, 0);
  atomic_init(&run.finished, 0);
  assert_int_equal(ap_worker_new(&run.handle, NULL), AP_OK);
  ap_worker_options_init(&run.options);
  run.options.threads = 2;
  run.options.poll_interval_ms = 10;
  run.options.lease_ms = 5000;
  run.options.handle = run.handle;
  run.options.on_event = count_event;
  run.options.event_user_data = &run;
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, run_worker, &run), 0);
  for (int waited = 0;
       atomic_load(&run.finished) < 1 && waited < WORKER_WAIT_MS;
       waited += 10) {
    usleep(10000);
  }
  ap_worker_request_stop(run.handle);
  assert_int_equal(pthread_join(thread, NULL), 0);
  assert_int_equal(run.status, AP_OK);
  assert_int_equal(atomic_load(&run.claimed), 1);

  ap_job_t *job = get_job(&fixture, ap_asset_job_id(asset));
  assert_int_equal(ap_job_state(job), AP_JOB_SUCCEEDED);
  assert_int_equal(ap_job_attempts(job), 1);
  assert_true(ap_job_progress_fraction(job) == 1.0);
  ap_job_free(job);
  ap_asset_t *done = NULL;
  assert_int_equal(
      ap_asset_get(fixture.context, "alice", ap_asset_id(asset), &done, NULL),
      AP_OK);
  assert_int_equal(ap_asset_status(done), AP_ASSET_READY);
  assert_non_null(ap_asset_analysis_json(done));
  assert_int_equal(ap_asset_rendition_count(done), 2);
  assert_int_equal(ap_asset_waveform_count(done), 2);
  ap_asset_free(done);
  ap_asset_free(asset);
  ap_worker_free(run.handle);
  fixture_close(&fixture);
}

/* Runs the test server script with `action` (start or stop) on the spare
 * port. */
static int run_private_server(const char *action) {
  char command[1024];
  snprintf(command, sizeof command, "'%s' %s '%s' %d", AP_TEST_MONGO_SCRIPT,
           action, AP_TEST_MONGO_DIR, AP_TEST_MONGO_SPARE_PORT);
  return system(command);
}

static int stop_private_server(void **state) {
  (void)state;
  return run_private_server("stop") == 0 ? 0 : -1;
}

/* With the server down, job calls fail with AP_ERR_UNAVAILABLE naming the
 * host and the job, and the first calls after it returns succeed on the
 * same context. The test server keeps nothing across a restart, so the
 * job claimed before the outage is gone afterwards. */
static void outage_gives_unavailable(void **state) {
  (void)state;
  assert_int_equal(run_private_server("start"), 0);
  char host[64];
  snprintf(host, sizeof host, "127.0.0.1:%d", AP_TEST_MONGO_SPARE_PORT);
  char *uri = malloc(256);
  assert_non_null(uri);
  snprintf(uri, 256,
           "mongodb://%s/apjobs_outage?replicaSet=rs0&"
           "serverSelectionTimeoutMS=1500",
           host);
  job_fixture_t fixture;
  fixture_open_uri(&fixture, uri, "0ms", "0ms");

  ap_job_enqueue_options_t options;
  options_for(&options, "process_asset");
  assert_int_equal(ap_job_enqueue(fixture.context, &options, NULL, NULL),
                   AP_OK);
  ap_job_t *job = NULL;
  assert_int_equal(
      ap_job_claim(fixture.context, "worker-1", 60000, NULL, 0, &job, NULL),
      AP_OK);
  assert_non_null(job);
  const char *id = ap_job_id(job);
  const char *token = ap_job_claim_token(job);

  assert_int_equal(run_private_server("stop"), 0);
  ap_error_t error = {0};
  assert_int_equal(ap_job_heartbeat(fixture.context, id, token, 60000, &error),
                   AP_ERR_UNAVAILABLE);
  assert_non_null(strstr(error.message, host));
  assert_non_null(strstr(error.message, id));
  ap_job_t *none = NULL;
  assert_int_equal(
      ap_job_claim(fixture.context, "worker-1", 60000, NULL, 0, &none, &error),
      AP_ERR_UNAVAILABLE);
  assert_null(none);
  assert_non_null(strstr(error.message, host));
  assert_int_equal(ap_job_enqueue(fixture.context, &options, NULL, &error),
                   AP_ERR_UNAVAILABLE);
  assert_non_null(strstr(error.message, host));

  assert_int_equal(run_private_server("start"), 0);
  ap_job_t *queued = NULL;
  if (ap_job_enqueue(fixture.context, &options, &queued, &error) != AP_OK) {
    fail_msg("enqueue after the restart: %s", error.message);
  }
  ap_job_t *again = NULL;
  assert_int_equal(
      ap_job_claim(fixture.context, "worker-1", 60000, NULL, 0, &again, NULL),
      AP_OK);
  assert_non_null(again);
  assert_string_equal(ap_job_id(again), ap_job_id(queued));
  assert_int_equal(ap_job_complete(fixture.context, ap_job_id(again),
                                   ap_job_claim_token(again), NULL, &error),
                   AP_OK);
  assert_int_equal(ap_job_heartbeat(fixture.context, id, token, 60000, &error),
                   AP_ERR_NOT_FOUND);

  ap_job_free(again);
  ap_job_free(queued);
  ap_job_free(job);
  fixture_close(&fixture);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(enqueue_get_round_trip),
      cmocka_unit_test(idempotent_enqueue_same_job),
      cmocka_unit_test(claim_order_due_then_created),
      cmocka_unit_test(claim_filters_kinds),
      cmocka_unit_test(delayed_job_waits),
      cmocka_unit_test(racing_claims_exclusive),
      cmocka_unit_test(heartbeat_extends_lease),
      cmocka_unit_test(stale_token_changes_nothing),
      cmocka_unit_test(retry_backoff_then_dead),
      cmocka_unit_test(reap_requeues_expired),
      cmocka_unit_test(cancel_queued_and_running),
      cmocka_unit_test(stats_count_by_state),
      cmocka_unit_test(owner_isolation),
      cmocka_unit_test(worker_runs_each_job_once),
      cmocka_unit_test(worker_processes_uploaded_case),
      cmocka_unit_test_teardown(outage_gives_unavailable, stop_private_server),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
