/*
 * Tests of ap_upload_create_async on SQLite and the file store. The
 * callback must run exactly once, on a library thread, for concurrent
 * creations, failed inserts, the post method (the pool of blocking calls)
 * and creations still queued when the context closes. Rejected requests
 * must never reach it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <audiopipe/upload.h>

#include "test_meta_fixture.h"

#define SUBMIT_THREADS 4
#define CREATES_PER_THREAD 50
#define MAX_OUTCOMES (SUBMIT_THREADS * CREATES_PER_THREAD)

/* The callbacks' outcomes, gathered under a mutex. */
typedef struct outcomes {
  pthread_mutex_t mutex;
  pthread_cond_t changed;
  int count;
  int failures;
  int on_submitter; /* callbacks that ran on a submitting thread */
  pthread_t submitters[SUBMIT_THREADS];
  int submitter_count;
  char ids[MAX_OUTCOMES][AP_ID_SIZE];
  char methods[MAX_OUTCOMES][8];
  size_t field_counts[MAX_OUTCOMES];
  ap_error_t last_error;
} outcomes_t;

static void outcomes_init(outcomes_t *outcomes) {
  memset(outcomes, 0, sizeof *outcomes);
  pthread_mutex_init(&outcomes->mutex, NULL);
  pthread_cond_init(&outcomes->changed, NULL);
}

static void outcomes_destroy(outcomes_t *outcomes) {
  pthread_mutex_destroy(&outcomes->mutex);
  pthread_cond_destroy(&outcomes->changed);
}

static void on_created(void *user_data, ap_upload_ticket_t *ticket,
                       const ap_error_t *error) {
  outcomes_t *outcomes = user_data;
  pthread_mutex_lock(&outcomes->mutex);
  for (int i = 0; i < outcomes->submitter_count; i++) {
    if (pthread_equal(outcomes->submitters[i], pthread_self())) {
      outcomes->on_submitter++;
    }
  }
  if (ticket && outcomes->count < MAX_OUTCOMES) {
    int slot = outcomes->count;
    snprintf(outcomes->ids[slot], AP_ID_SIZE, "%s",
             ap_upload_ticket_id(ticket));
    snprintf(outcomes->methods[slot], sizeof outcomes->methods[slot], "%s",
             ap_upload_ticket_method(ticket));
    outcomes->field_counts[slot] = ap_upload_ticket_field_count(ticket);
  } else if (!ticket) {
    outcomes->failures++;
    if (error) {
      outcomes->last_error = *error;
    }
  }
  outcomes->count++;
  pthread_cond_broadcast(&outcomes->changed);
  pthread_mutex_unlock(&outcomes->mutex);
  ap_upload_ticket_free(ticket);
}

/* Waits up to 10 s for `count` callbacks. */
static void wait_outcomes(outcomes_t *outcomes, int count) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&outcomes->mutex);
  while (outcomes->count < count) {
    if (pthread_cond_timedwait(&outcomes->changed, &outcomes->mutex,
                               &deadline) != 0) {
      break;
    }
  }
  int reached = outcomes->count;
  pthread_mutex_unlock(&outcomes->mutex);
  assert_int_equal(reached, count);
}

static void fill_request(ap_upload_request_t *request, const char *filename) {
  ap_upload_request_init(request);
  request->owner = "alice";
  request->filename = filename;
  request->size_bytes = 1024;
  request->content_type = "audio/wav";
}

static void open_fixture(meta_fixture_t *fixture) {
  assert_int_equal(meta_fixture_prepare(fixture), 0);
  assert_int_equal(meta_fixture_open(fixture), 0);
}

typedef struct submitter {
  ap_context_t *context;
  outcomes_t *outcomes;
  int rejected; /* calls that did not return AP_OK */
} submitter_t;

static void *submit_creations(void *argument) {
  submitter_t *submitter = argument;
  for (int i = 0; i < CREATES_PER_THREAD; i++) {
    /* The request lives on this stack frame only for the call. */
    char filename[32];
    snprintf(filename, sizeof filename, "take-%d.wav", i);
    ap_upload_request_t request;
    fill_request(&request, filename);
    if (ap_upload_create_async(submitter->context, &request, on_created,
                               submitter->outcomes, NULL) != AP_OK) {
      submitter->rejected++;
    }
  }
  return NULL;
}

static int compare_ids(const void *left, const void *right) {
  return strcmp(left, right);
}

/*
 * Four threads start 50 creations each. Every callback runs once, on a
 * library thread, with a distinct pending upload that is in the
 * database by the time the callback runs.
 */
static void concurrent_creations_call_back_once(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  static outcomes_t outcomes;
  outcomes_init(&outcomes);

  submitter_t submitters[SUBMIT_THREADS];
  pthread_t threads[SUBMIT_THREADS];
  pthread_mutex_lock(&outcomes.mutex);
  for (int i = 0; i < SUBMIT_THREADS; i++) {
    submitters[i] =
        (submitter_t){.context = fixture.context, .outcomes = &outcomes};
    assert_int_equal(
        pthread_create(&threads[i], NULL, submit_creations, &submitters[i]), 0);
    outcomes.submitters[i] = threads[i];
    outcomes.submitter_count = i + 1;
  }
  pthread_mutex_unlock(&outcomes.mutex);
  for (int i = 0; i < SUBMIT_THREADS; i++) {
    pthread_join(threads[i], NULL);
    assert_int_equal(submitters[i].rejected, 0);
  }
  wait_outcomes(&outcomes, MAX_OUTCOMES);

  assert_int_equal(outcomes.failures, 0);
  assert_int_equal(outcomes.on_submitter, 0);
  for (int i = 0; i < MAX_OUTCOMES; i++) {
    assert_string_equal(outcomes.methods[i], "PUT");
    ap_upload_state_t upload_state = AP_UPLOAD_REJECTED;
    assert_int_equal(ap_upload_get_state(fixture.context, "alice",
                                         outcomes.ids[i], &upload_state, NULL,
                                         NULL),
                     AP_OK);
    assert_int_equal(upload_state, AP_UPLOAD_PENDING);
  }
  qsort(outcomes.ids, MAX_OUTCOMES, AP_ID_SIZE, compare_ids);
  for (int i = 1; i < MAX_OUTCOMES; i++) {
    assert_string_not_equal(outcomes.ids[i - 1], outcomes.ids[i]);
  }
  assert_int_equal(meta_fixture_count_rows(fixture.database, "uploads"),
                   MAX_OUTCOMES);

  /* No callback is left to run at close. */
  meta_fixture_close(&fixture);
  assert_int_equal(outcomes.count, MAX_OUTCOMES);
  outcomes_destroy(&outcomes);
}

/* Requests that fail validation return their error at once and never
 * reach the callback; nothing is recorded. */
static void invalid_requests_skip_callback(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  static outcomes_t outcomes;
  outcomes_init(&outcomes);

  ap_upload_request_t request;
  fill_request(&request, "../etc/passwd");
  ap_error_t error;
  ap_error_clear(&error);
  assert_int_equal(ap_upload_create_async(fixture.context, &request, on_created,
                                          &outcomes, &error),
                   AP_ERR_INVALID_FILENAME);
  assert_non_null(strstr(error.message, "filename"));

  fill_request(&request, "take.wav");
  request.size_bytes = INT64_MAX;
  assert_int_equal(ap_upload_create_async(fixture.context, &request, on_created,
                                          &outcomes, &error),
                   AP_ERR_UPLOAD_TOO_LARGE);
  assert_non_null(strstr(error.message, "size_bytes"));

  fill_request(&request, "take.wav");
  request.content_type = "text/html";
  assert_int_equal(ap_upload_create_async(fixture.context, &request, on_created,
                                          &outcomes, &error),
                   AP_ERR_CONTENT_TYPE);

  assert_int_equal(ap_upload_create_async(fixture.context, &request, NULL,
                                          &outcomes, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      ap_upload_create_async(NULL, &request, on_created, &outcomes, &error),
      AP_ERR_INVALID_ARGUMENT);

  meta_fixture_close(&fixture);
  assert_int_equal(outcomes.count, 0);
  outcomes_destroy(&outcomes);
}

/* A failed insert reaches the callback as an error with no ticket. */
static void failed_insert_reaches_callback(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  static outcomes_t outcomes;
  outcomes_init(&outcomes);

  /* Without its table, the commit thread's insert fails. */
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(fixture.database, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "DROP TABLE uploads", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);

  ap_upload_request_t request;
  fill_request(&request, "take.wav");
  assert_int_equal(ap_upload_create_async(fixture.context, &request, on_created,
                                          &outcomes, NULL),
                   AP_OK);
  wait_outcomes(&outcomes, 1);
  assert_int_equal(outcomes.failures, 1);
  assert_int_not_equal(outcomes.last_error.code, AP_OK);
  assert_non_null(strstr(outcomes.last_error.message, "recording upload"));

  meta_fixture_close(&fixture);
  assert_int_equal(outcomes.count, 1);
  outcomes_destroy(&outcomes);
}

/* The post method has no asynchronous insert, so it runs on the
 * context's pool of blocking calls and returns a form ticket. */
static void post_method_runs_on_pool(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  static outcomes_t outcomes;
  outcomes_init(&outcomes);
  pthread_mutex_lock(&outcomes.mutex);
  outcomes.submitters[0] = pthread_self();
  outcomes.submitter_count = 1;
  pthread_mutex_unlock(&outcomes.mutex);

  enum { POSTS = 8 };
  for (int i = 0; i < POSTS; i++) {
    ap_upload_request_t request;
    fill_request(&request, "take.wav");
    request.method = AP_UPLOAD_METHOD_POST;
    assert_int_equal(ap_upload_create_async(fixture.context, &request,
                                            on_created, &outcomes, NULL),
                     AP_OK);
  }
  wait_outcomes(&outcomes, POSTS);

  assert_int_equal(outcomes.failures, 0);
  assert_int_equal(outcomes.on_submitter, 0);
  for (int i = 0; i < POSTS; i++) {
    assert_string_equal(outcomes.methods[i], "POST");
    assert_true(outcomes.field_counts[i] > 0);
  }
  assert_int_equal(meta_fixture_count_rows(fixture.database, "uploads"), POSTS);
  meta_fixture_close(&fixture);
  outcomes_destroy(&outcomes);
}

/* Closing the context right after starting creations of both kinds runs
 * every callback before the close returns, and each created upload is in
 * the database. */
static void close_runs_pending_callbacks(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  static outcomes_t outcomes;
  outcomes_init(&outcomes);

  enum { CREATIONS = 100 };
  for (int i = 0; i < CREATIONS; i++) {
    ap_upload_request_t request;
    fill_request(&request, "take.wav");
    if (i % 10 == 0) {
      request.method = AP_UPLOAD_METHOD_POST;
    }
    assert_int_equal(ap_upload_create_async(fixture.context, &request,
                                            on_created, &outcomes, NULL),
                     AP_OK);
  }
  ap_context_close(fixture.context);
  fixture.context = NULL;

  assert_int_equal(outcomes.count, CREATIONS);
  assert_int_equal(outcomes.failures, 0);
  assert_int_equal(meta_fixture_count_rows(fixture.database, "uploads"),
                   CREATIONS);
  meta_fixture_close(&fixture);
  outcomes_destroy(&outcomes);
}

/* Creations started from a callback: the first callback to run starts
 * them, the later ones only count. */
typedef struct chained {
  ap_context_t *context;
  int blocking;       /* 1: one ap_upload_create; 0: ap_upload_create_async */
  int until_rejected; /* keep starting until one is rejected, up to 10 s */
  int chain_enabled;  /* read and written atomically */
  int callbacks;      /* atomically */
  int failures;       /* callbacks with an error, atomically */
  int started;        /* chained creations that returned AP_OK, atomically */
  int rejected;       /* chained creations rejected as unavailable */
  int other_errors;   /* chained creations failing otherwise */
} chained_t;

static void on_created_chaining(void *user_data, ap_upload_ticket_t *ticket,
                                const ap_error_t *error);

/* Starts one creation from a callback and counts its status. Returns the
 * status. */
static ap_status_t start_chained(chained_t *chain) {
  ap_upload_request_t request;
  fill_request(&request, "chained.wav");
  ap_status_t status;
  if (chain->blocking) {
    ap_upload_ticket_t *created = NULL;
    status = ap_upload_create(chain->context, &request, &created, NULL);
    ap_upload_ticket_free(created);
  } else {
    status = ap_upload_create_async(chain->context, &request,
                                    on_created_chaining, chain, NULL);
  }
  if (status == AP_OK) {
    __atomic_add_fetch(&chain->started, 1, __ATOMIC_ACQ_REL);
  } else if (status == AP_ERR_UNAVAILABLE) {
    __atomic_add_fetch(&chain->rejected, 1, __ATOMIC_ACQ_REL);
  } else {
    __atomic_add_fetch(&chain->other_errors, 1, __ATOMIC_ACQ_REL);
  }
  return status;
}

static void on_created_chaining(void *user_data, ap_upload_ticket_t *ticket,
                                const ap_error_t *error) {
  (void)error;
  chained_t *chain = user_data;
  ap_upload_ticket_free(ticket);
  if (!ticket) {
    __atomic_add_fetch(&chain->failures, 1, __ATOMIC_ACQ_REL);
  }
  if (__atomic_exchange_n(&chain->chain_enabled, 0, __ATOMIC_ACQ_REL)) {
    /* With until_rejected, this callback keeps its thread until the
     * context begins to close, so the close runs while it waits. */
    for (int i = 0; i < 10000; i++) {
      if (start_chained(chain) != AP_OK || !chain->until_rejected) {
        break;
      }
      struct timespec pause = {0, 1000000};
      nanosleep(&pause, NULL);
    }
  }
  __atomic_add_fetch(&chain->callbacks, 1, __ATOMIC_ACQ_REL);
}

/* A callback on the SQLite commit thread that creates an upload with the
 * blocking call gets it, instead of waiting for its own thread. */
static void callback_blocking_create_completes(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_fixture(&fixture);
  static chained_t chain;
  chain = (chained_t){
      .context = fixture.context, .blocking = 1, .chain_enabled = 1};

  ap_upload_request_t request;
  fill_request(&request, "take.wav");
  assert_int_equal(ap_upload_create_async(fixture.context, &request,
                                          on_created_chaining, &chain, NULL),
                   AP_OK);
  for (int i = 0;
       i < 10000 && __atomic_load_n(&chain.callbacks, __ATOMIC_ACQUIRE) < 1;
       i++) {
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, NULL);
  }
  assert_int_equal(__atomic_load_n(&chain.callbacks, __ATOMIC_ACQUIRE), 1);
  assert_int_equal(chain.started, 1);
  assert_int_equal(chain.failures, 0);
  assert_int_equal(meta_fixture_count_rows(fixture.database, "uploads"), 2);
  meta_fixture_close(&fixture);
}

/*
 * The first callback keeps starting creations until ap_context_close
 * begins, which then rejects them as unavailable. Every creation started
 * before that completes and calls back, and, under AddressSanitizer, no
 * callback reaches a backend the close already freed. Round 0 uses the
 * commit thread only; round 1 sends every tenth creation through the
 * pool.
 */
static void close_rejects_chained_creations(void **state) {
  (void)state;
  enum { CREATIONS = 200 };
  for (int round = 0; round < 2; round++) {
    meta_fixture_t fixture;
    open_fixture(&fixture);
    static chained_t chain;
    chain = (chained_t){
        .context = fixture.context, .until_rejected = 1, .chain_enabled = 1};

    for (int i = 0; i < CREATIONS; i++) {
      ap_upload_request_t request;
      fill_request(&request, "take.wav");
      if (round == 1 && i % 10 == 0) {
        request.method = AP_UPLOAD_METHOD_POST;
      }
      assert_int_equal(ap_upload_create_async(fixture.context, &request,
                                              on_created_chaining, &chain,
                                              NULL),
                       AP_OK);
    }
    ap_context_close(fixture.context);
    fixture.context = NULL;

    assert_int_equal(chain.rejected, 1);
    assert_int_equal(chain.other_errors, 0);
    assert_int_equal(chain.failures, 0);
    assert_int_equal(chain.callbacks, CREATIONS + chain.started);
    assert_int_equal(meta_fixture_count_rows(fixture.database, "uploads"),
                     CREATIONS + chain.started);
    meta_fixture_close(&fixture);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(concurrent_creations_call_back_once),
      cmocka_unit_test(invalid_requests_skip_callback),
      cmocka_unit_test(failed_insert_reaches_callback),
      cmocka_unit_test(post_method_runs_on_pool),
      cmocka_unit_test(close_runs_pending_callbacks),
      cmocka_unit_test(callback_blocking_create_completes),
      cmocka_unit_test(close_rejects_chained_creations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
