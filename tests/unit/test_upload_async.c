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

/* Counts the rows of `table` on a connection of its own. */
static int count_rows(const char *database, const char *table) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(database, &db), SQLITE_OK);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
  sqlite3_stmt *statement = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &statement, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(statement), SQLITE_ROW);
  int count = sqlite3_column_int(statement, 0);
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return count;
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
  assert_int_equal(count_rows(fixture.database, "uploads"), MAX_OUTCOMES);

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
  assert_int_equal(count_rows(fixture.database, "uploads"), POSTS);
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
  assert_int_equal(count_rows(fixture.database, "uploads"), CREATIONS);
  meta_fixture_close(&fixture);
  outcomes_destroy(&outcomes);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(concurrent_creations_call_back_once),
      cmocka_unit_test(invalid_requests_skip_callback),
      cmocka_unit_test(failed_insert_reaches_callback),
      cmocka_unit_test(post_method_runs_on_pool),
      cmocka_unit_test(close_runs_pending_callbacks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
