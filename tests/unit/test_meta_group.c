/*
 * Tests for the SQLite backend's write path: the per-connection statement
 * cache, group commit with one SAVEPOINT per request on the store's commit
 * thread, asynchronous writes, and concurrent upload creation through it,
 * blocking and asynchronous.
 */
#include <pthread.h>
#include <sched.h>
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

#include "context/context_internal.h"
#include "meta/sqlite_internal.h"
#include "test_meta_fixture.h"

static ap_sqlite_store_t *open_store(meta_fixture_t *fixture) {
  assert_int_equal(meta_fixture_prepare(fixture), 0);
  assert_int_equal(meta_fixture_open(fixture), 0);
  return ap_context_meta_store(fixture->context)->state;
}

#define ABSOLUTE_SQL                                                           \
  "SELECT abs(value) FROM numbers WHERE value >= ?1 ORDER BY id"

/*
 * abs() of the smallest 64-bit integer is a runtime error, so stepping
 * this SELECT returns one row and then fails. The same cached statement,
 * prepared again, must return the right rows for new bindings.
 */
static void cache_recovers_after_step_error(void **state) {
  (void)state;
  meta_fixture_t fixture;
  ap_sqlite_store_t *store = open_store(&fixture);
  sqlite3 *db = ap_sqlite_acquire(store);
  assert_int_equal(ap_sqlite_exec(db,
                                  "CREATE TABLE numbers (id INTEGER PRIMARY "
                                  "KEY, value INTEGER);"
                                  "INSERT INTO numbers (value) VALUES (-5), "
                                  "(-9223372036854775807 - 1), (7);",
                                  NULL),
                   AP_OK);

  sqlite3_stmt *first = NULL;
  assert_int_equal(ap_sqlite_prepare(db, ABSOLUTE_SQL, &first, "abs", NULL),
                   AP_OK);
  sqlite3_bind_int64(first, 1, INT64_MIN);
  assert_int_equal(sqlite3_step(first), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int64(first, 0), 5);
  assert_int_equal(sqlite3_step(first), SQLITE_ERROR);
  ap_sqlite_finish(first);

  sqlite3_stmt *second = NULL;
  assert_int_equal(ap_sqlite_prepare(db, ABSOLUTE_SQL, &second, "abs", NULL),
                   AP_OK);
  assert_ptr_equal(second, first);
  /* The bindings were cleared: NULL matches no row. */
  assert_int_equal(sqlite3_step(second), SQLITE_DONE);
  sqlite3_reset(second);
  sqlite3_bind_int64(second, 1, -6);
  assert_int_equal(sqlite3_step(second), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int64(second, 0), 5);
  assert_int_equal(sqlite3_step(second), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int64(second, 0), 7);
  assert_int_equal(sqlite3_step(second), SQLITE_DONE);
  ap_sqlite_finish(second);

  ap_sqlite_release(store, db);
  meta_fixture_close(&fixture);
}

/* A text already in use gets a second statement, not the busy one. */
static void cache_gives_busy_text_new_statement(void **state) {
  (void)state;
  meta_fixture_t fixture;
  ap_sqlite_store_t *store = open_store(&fixture);
  sqlite3 *db = ap_sqlite_acquire(store);

  sqlite3_stmt *outer = NULL;
  sqlite3_stmt *inner = NULL;
  assert_int_equal(ap_sqlite_prepare(db, "SELECT 1", &outer, "one", NULL),
                   AP_OK);
  assert_int_equal(ap_sqlite_prepare(db, "SELECT 1", &inner, "one", NULL),
                   AP_OK);
  assert_ptr_not_equal(inner, outer);
  assert_int_equal(sqlite3_step(outer), SQLITE_ROW);
  assert_int_equal(sqlite3_step(inner), SQLITE_ROW);
  ap_sqlite_finish(inner);
  ap_sqlite_finish(outer);

  ap_sqlite_release(store, db);
  meta_fixture_close(&fixture);
}

typedef struct group_request {
  ap_sqlite_write_request_t request; /* first: asynchronous requests only */
  ap_sqlite_store_t *store;
  const char *id;
  int hold_batch; /* wait until `hold_until` more requests are queued */
  int hold_until; /* 2 when 0 */
  int entered;    /* set, atomically, once its write runs */
  ap_status_t status;
  ap_error_t error;
  int finished;       /* finish calls, atomically */
  pthread_t finisher; /* the thread of the last finish call */
} group_request_t;

/* Counts the requests waiting for the next batch. */
static int queued_requests(ap_sqlite_store_t *store) {
  pthread_mutex_lock(&store->group_mutex);
  int count = 0;
  for (ap_sqlite_write_request_t *request = store->group_head; request;
       request = request->next) {
    count++;
  }
  pthread_mutex_unlock(&store->group_mutex);
  return count;
}

/* Waits until the commit thread runs the write of `request`. */
static void wait_entered(group_request_t *request) {
  while (!__atomic_load_n(&request->entered, __ATOMIC_ACQUIRE)) {
    sched_yield();
  }
}

static ap_status_t insert_row(sqlite3 *db, void *argument, ap_error_t *error) {
  group_request_t *request = argument;
  __atomic_store_n(&request->entered, 1, __ATOMIC_RELEASE);
  if (request->hold_batch) {
    /* The other requests queue behind this batch and so share the next
     * one. */
    int until = request->hold_until ? request->hold_until : 2;
    while (queued_requests(request->store) < until) {
      sched_yield();
    }
  }
  sqlite3_stmt *statement = NULL;
  ap_status_t status =
      ap_sqlite_prepare(db, "INSERT INTO rows (id) VALUES (?1)", &statement,
                        "inserting row", error);
  if (status != AP_OK) {
    return status;
  }
  ap_sqlite_bind_text(statement, 1, request->id);
  int rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) {
    status = ap_sqlite_error(error, db, rc, "inserting row");
  }
  ap_sqlite_finish(statement);
  return status;
}

static void *run_request(void *argument) {
  group_request_t *request = argument;
  ap_error_clear(&request->error);
  request->status = ap_sqlite_write_grouped(request->store, insert_row, request,
                                            &request->error);
  return NULL;
}

static int commits;

static int count_commit(void *argument) {
  (void)argument;
  __atomic_add_fetch(&commits, 1, __ATOMIC_RELAXED);
  return 0;
}

static void group_fails_only_failed_request(void **state) {
  (void)state;
  meta_fixture_t fixture;
  ap_sqlite_store_t *store = open_store(&fixture);
  sqlite3 *db = ap_sqlite_acquire(store);
  assert_int_equal(
      ap_sqlite_exec(db, "CREATE TABLE rows (id TEXT PRIMARY KEY)", NULL),
      AP_OK);
  ap_sqlite_release(store, db);
  for (int i = 0; i < store->connection_count; i++) {
    sqlite3_commit_hook(store->connections[i], count_commit, NULL);
  }

  /* The first request holds its batch until both others are queued, so
   * the second batch holds "kept" and a duplicate of "first". */
  group_request_t requests[3] = {
      {.store = store, .id = "first", .hold_batch = 1},
      {.store = store, .id = "kept"},
      {.store = store, .id = "first"},
  };
  pthread_t threads[3];
  assert_int_equal(pthread_create(&threads[0], NULL, run_request, &requests[0]),
                   0);
  wait_entered(&requests[0]);
  for (int i = 1; i < 3; i++) {
    assert_int_equal(
        pthread_create(&threads[i], NULL, run_request, &requests[i]), 0);
  }
  for (int i = 0; i < 3; i++) {
    pthread_join(threads[i], NULL);
  }

  assert_int_equal(requests[0].status, AP_OK);
  assert_int_equal(requests[1].status, AP_OK);
  assert_int_equal(requests[2].status, AP_ERR_CONFLICT);
  assert_int_equal(requests[2].error.code, AP_ERR_CONFLICT);
  assert_non_null(strstr(requests[2].error.message, "inserting row"));
  assert_int_equal(meta_fixture_count_rows(fixture.database, "rows"), 2);
  assert_int_equal(__atomic_load_n(&commits, __ATOMIC_RELAXED), 2);
  meta_fixture_close(&fixture);
}

/* Records an asynchronous request's outcome, on the commit thread. */
static void finish_row(ap_sqlite_write_request_t *base) {
  group_request_t *request = (group_request_t *)base;
  request->status = base->status;
  request->error = base->error;
  request->finisher = pthread_self();
  __atomic_add_fetch(&request->finished, 1, __ATOMIC_RELEASE);
}

static ap_status_t queue_row(ap_sqlite_store_t *store,
                             group_request_t *request) {
  request->store = store;
  request->request.write = insert_row;
  request->request.argument = request;
  request->request.finish = finish_row;
  return ap_sqlite_write_grouped_async(store, &request->request, NULL);
}

static void create_rows_table(ap_sqlite_store_t *store) {
  sqlite3 *db = ap_sqlite_acquire(store);
  assert_int_equal(
      ap_sqlite_exec(db, "CREATE TABLE rows (id TEXT PRIMARY KEY)", NULL),
      AP_OK);
  ap_sqlite_release(store, db);
}

/* Waits up to 10 s until `request` was finished once. */
static void wait_finished(group_request_t *request) {
  for (int i = 0; i < 10000; i++) {
    if (__atomic_load_n(&request->finished, __ATOMIC_ACQUIRE) > 0) {
      return;
    }
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, NULL);
  }
  fail_msg("request %s was not finished within 10 s", request->id);
}

/*
 * Asynchronous requests queued behind a running batch share the next one.
 * Each is finished exactly once, on the commit thread, with its own
 * outcome: the duplicate fails alone and the others commit.
 */
static void async_writes_finish_once(void **state) {
  (void)state;
  meta_fixture_t fixture;
  ap_sqlite_store_t *store = open_store(&fixture);
  create_rows_table(store);

  group_request_t requests[4] = {
      {.id = "first", .hold_batch = 1, .hold_until = 3},
      {.id = "a"},
      {.id = "b"},
      {.id = "first"},
  };
  assert_int_equal(queue_row(store, &requests[0]), AP_OK);
  wait_entered(&requests[0]);
  for (int i = 1; i < 4; i++) {
    assert_int_equal(queue_row(store, &requests[i]), AP_OK);
  }
  for (int i = 0; i < 4; i++) {
    wait_finished(&requests[i]);
  }

  for (int i = 0; i < 3; i++) {
    assert_int_equal(requests[i].status, AP_OK);
  }
  assert_int_equal(requests[3].status, AP_ERR_CONFLICT);
  assert_non_null(strstr(requests[3].error.message, "inserting row"));
  for (int i = 0; i < 4; i++) {
    assert_int_equal(requests[i].finished, 1);
    assert_false(pthread_equal(requests[i].finisher, pthread_self()));
  }
  assert_int_equal(meta_fixture_count_rows(fixture.database, "rows"), 3);
  meta_fixture_close(&fixture);
}

/* Stopping commits and finishes every queued request before it returns;
 * later requests fail at once and are never finished. */
static void stop_finishes_queued_writes(void **state) {
  (void)state;
  meta_fixture_t fixture;
  ap_sqlite_store_t *store = open_store(&fixture);
  create_rows_table(store);

  enum { QUEUED = 5 };
  static const char *ids[QUEUED] = {"q1", "q2", "q3", "q4", "q5"};
  group_request_t batch_holder = {
      .id = "first", .hold_batch = 1, .hold_until = QUEUED};
  group_request_t queued[QUEUED];
  memset(queued, 0, sizeof queued);
  assert_int_equal(queue_row(store, &batch_holder), AP_OK);
  wait_entered(&batch_holder);
  for (int i = 0; i < QUEUED; i++) {
    queued[i].id = ids[i];
    assert_int_equal(queue_row(store, &queued[i]), AP_OK);
  }
  ap_sqlite_group_stop(store);

  assert_int_equal(batch_holder.finished, 1);
  for (int i = 0; i < QUEUED; i++) {
    assert_int_equal(queued[i].finished, 1);
    assert_int_equal(queued[i].status, AP_OK);
  }
  assert_int_equal(meta_fixture_count_rows(fixture.database, "rows"),
                   QUEUED + 1);

  group_request_t late = {.id = "late"};
  assert_int_equal(queue_row(store, &late), AP_ERR_UNAVAILABLE);
  ap_error_t error;
  ap_error_clear(&error);
  group_request_t blocking = {.store = store, .id = "blocking"};
  assert_int_equal(
      ap_sqlite_write_grouped(store, insert_row, &blocking, &error),
      AP_ERR_UNAVAILABLE);
  assert_non_null(strstr(error.message, "closing"));
  assert_int_equal(late.finished, 0);
  assert_int_equal(meta_fixture_count_rows(fixture.database, "rows"),
                   QUEUED + 1);
  meta_fixture_close(&fixture);
}

#define CREATE_THREADS 4
#define CREATES_PER_THREAD 50

typedef struct create_thread {
  ap_context_t *context;
  char ids[CREATES_PER_THREAD][AP_ID_SIZE];
  int failures;
} create_thread_t;

static void *create_uploads(void *argument) {
  create_thread_t *thread = argument;
  for (int i = 0; i < CREATES_PER_THREAD; i++) {
    ap_upload_request_t request;
    ap_upload_request_init(&request);
    request.owner = "alice";
    request.filename = "take.wav";
    request.size_bytes = 1024;
    request.content_type = "audio/wav";
    ap_upload_ticket_t *ticket = NULL;
    if (ap_upload_create(thread->context, &request, &ticket, NULL) != AP_OK) {
      thread->failures++;
      continue;
    }
    snprintf(thread->ids[i], AP_ID_SIZE, "%s", ap_upload_ticket_id(ticket));
    ap_upload_ticket_free(ticket);
  }
  return NULL;
}

static int compare_ids(const void *left, const void *right) {
  return strcmp(left, right);
}

static void concurrent_creates_get_distinct_ids(void **state) {
  (void)state;
  meta_fixture_t fixture;
  open_store(&fixture);
  static create_thread_t threads[CREATE_THREADS];
  pthread_t handles[CREATE_THREADS];
  for (int i = 0; i < CREATE_THREADS; i++) {
    memset(&threads[i], 0, sizeof threads[i]);
    threads[i].context = fixture.context;
    assert_int_equal(
        pthread_create(&handles[i], NULL, create_uploads, &threads[i]), 0);
  }
  for (int i = 0; i < CREATE_THREADS; i++) {
    pthread_join(handles[i], NULL);
  }
  for (int i = 0; i < CREATE_THREADS; i++) {
    assert_int_equal(threads[i].failures, 0);
  }

  enum { TOTAL = CREATE_THREADS * CREATES_PER_THREAD };
  static char ids[TOTAL][AP_ID_SIZE];
  for (int i = 0; i < CREATE_THREADS; i++) {
    memcpy(ids[i * CREATES_PER_THREAD], threads[i].ids, sizeof threads[i].ids);
  }
  qsort(ids, TOTAL, AP_ID_SIZE, compare_ids);
  for (int i = 1; i < TOTAL; i++) {
    assert_string_not_equal(ids[i - 1], ids[i]);
  }
  assert_int_equal(meta_fixture_count_rows(fixture.database, "uploads"), TOTAL);
  meta_fixture_close(&fixture);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cache_recovers_after_step_error),
      cmocka_unit_test(cache_gives_busy_text_new_statement),
      cmocka_unit_test(group_fails_only_failed_request),
      cmocka_unit_test(async_writes_finish_once),
      cmocka_unit_test(stop_finishes_queued_writes),
      cmocka_unit_test(concurrent_creates_get_distinct_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
