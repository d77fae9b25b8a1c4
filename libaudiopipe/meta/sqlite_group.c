/*
 * Group commit for the SQLite metadata backend: write requests queue, and
 * one commit thread per store takes up to MAX_BATCH of them at a time and
 * commits them in one transaction. Requests that arrive while a batch
 * commits wait for the next one, so N concurrent writes cost one commit
 * (one WAL commit frame, and one WAL sync at synchronous=FULL) instead of
 * N. A caller either waits for its request (ap_sqlite_write_grouped) or
 * queues it with a function the commit thread calls afterwards
 * (ap_sqlite_write_grouped_async), so a server needs no thread per
 * waiting write.
 *
 * Each request runs inside its own SAVEPOINT, so a request that fails is
 * rolled back alone and its caller receives its own status and error,
 * while the other requests of the batch still commit.
 */
#include <string.h>

#include "core/error_internal.h"
#include "meta/sqlite_internal.h"

/* Maximum number of requests one transaction commits, so that a long queue
 * still returns its first callers' results after a bounded amount of work. */
#define MAX_BATCH 64

/* Runs one statement without results on the pool connection, through the
 * statement cache. */
static int run_statement(sqlite3 *db, const char *sql) {
  sqlite3_stmt *statement = NULL;
  ap_error_t ignored;
  if (ap_sqlite_prepare(db, sql, &statement, sql, &ignored) != AP_OK) {
    return sqlite3_errcode(db);
  }
  int rc = sqlite3_step(statement);
  ap_sqlite_finish(statement);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Fails each request from `first` up to `end` that has not failed yet. */
static void fail_requests(ap_sqlite_write_request_t *first,
                          ap_sqlite_write_request_t *end, ap_status_t status,
                          const ap_error_t *error) {
  for (ap_sqlite_write_request_t *request = first; request != end;
       request = request->next) {
    if (request->status == AP_OK) {
      request->status = status;
      request->error = *error;
    }
  }
}

/* Runs one request in a SAVEPOINT of the open transaction. Returns 0, or
 * -1 when the whole transaction must be rolled back. That is the case when
 * SQLite already rolled it back, as it does after some I/O, disk-full and
 * out-of-memory errors. It is also the case when the savepoint could not
 * be rolled back or released, leaving the request's changes mixed in. */
static int run_request(sqlite3 *db, ap_sqlite_write_request_t *request) {
  int rc = run_statement(db, "SAVEPOINT ap_write_request");
  if (rc != SQLITE_OK) {
    request->status =
        ap_sqlite_error(&request->error, db, rc, "SAVEPOINT of a write");
    return sqlite3_get_autocommit(db) ? -1 : 0;
  }
  request->status = request->write(db, request->argument, &request->error);
  if (request->status != AP_OK) {
    if (sqlite3_get_autocommit(db)) {
      return -1;
    }
    if (run_statement(db, "ROLLBACK TO ap_write_request") != SQLITE_OK) {
      return -1;
    }
  }
  if (run_statement(db, "RELEASE ap_write_request") != SQLITE_OK) {
    return -1;
  }
  return sqlite3_get_autocommit(db) ? -1 : 0;
}

/* Commits the requests from `first` up to `end` in one transaction, or in
 * more than one when a failure rolls the transaction back: the requests
 * that had succeeded in it then fail too, and the rest start anew. */
static void run_batch(ap_sqlite_store_t *store,
                      ap_sqlite_write_request_t *first,
                      ap_sqlite_write_request_t *end) {
  sqlite3 *db = ap_sqlite_acquire_group_writer(store);
  ap_sqlite_write_request_t *start = first;
  while (start != end) {
    ap_error_t error;
    ap_error_clear(&error);
    for (ap_sqlite_write_request_t *request = start; request != end;
         request = request->next) {
      request->status = AP_OK;
      ap_error_clear(&request->error);
    }
    ap_status_t status = ap_sqlite_begin(store, db, &error);
    if (status != AP_OK) {
      fail_requests(start, end, status, &error);
      break;
    }

    ap_sqlite_write_request_t *request = start;
    int aborted = 0;
    for (; request != end && !aborted; request = request->next) {
      aborted = run_request(db, request) != 0;
    }
    if (aborted) {
      /* `request` is the one after the request that failed.
       * NOTE: no test reaches this branch, because it needs an injected
       * I/O or out-of-memory error inside SQLite. */
      ap_sqlite_rollback(store, db);
      ap_error_set(&error, AP_DOMAIN_META, AP_ERR_UNAVAILABLE,
                   "another write in the same transaction failed and the "
                   "transaction was rolled back: retry");
      fail_requests(start, request, AP_ERR_UNAVAILABLE, &error);
      start = request;
      continue;
    }

    status = ap_sqlite_commit(store, db, &error);
    if (status != AP_OK) {
      fail_requests(start, end, status, &error);
    }
    break;
  }
  ap_sqlite_release(store, db);
}

/* Hands each request of a finished batch its outcome: wakes the
 * synchronous ones, then calls `finish` of the asynchronous ones outside
 * the mutex, since finish may take other locks or free the request. */
static void finish_batch(ap_sqlite_store_t *store,
                         ap_sqlite_write_request_t *first,
                         ap_sqlite_write_request_t *end) {
  ap_sqlite_write_request_t *asynchronous = NULL;
  ap_sqlite_write_request_t **asynchronous_tail = &asynchronous;

  pthread_mutex_lock(&store->group_mutex);
  for (ap_sqlite_write_request_t *request = first; request != end;) {
    /* A synchronous request may return and leave its stack frame once it
     * is marked and the mutex is released, so read the link first. */
    ap_sqlite_write_request_t *next = request->next;
    if (request->finish) {
      *asynchronous_tail = request;
      asynchronous_tail = &request->next;
    } else {
      request->done = 1;
      pthread_cond_signal(&request->wake);
    }
    request = next;
  }
  *asynchronous_tail = NULL;
  pthread_mutex_unlock(&store->group_mutex);

  while (asynchronous) {
    ap_sqlite_write_request_t *next = asynchronous->next;
    asynchronous->finish(asynchronous);
    asynchronous = next;
  }
}

/* The store whose commit thread this is, or NULL on any other thread. */
static _Thread_local const ap_sqlite_store_t *committing_store;

/* The commit thread: runs batches until stopped and the queue is empty. */
static void *run_group_commits(void *argument) {
  ap_sqlite_store_t *store = argument;
  committing_store = store;
  pthread_mutex_lock(&store->group_mutex);
  for (;;) {
    while (!store->group_head && !store->group_stop) {
      pthread_cond_wait(&store->group_wake, &store->group_mutex);
    }
    ap_sqlite_write_request_t *first = store->group_head;
    if (!first) {
      break; /* stopping, and every request is finished */
    }
    ap_sqlite_write_request_t *end = first;
    for (int taken = 0; end && taken < MAX_BATCH; taken++) {
      end = end->next;
    }
    store->group_head = end;
    if (!end) {
      store->group_tail = NULL;
    }
    pthread_mutex_unlock(&store->group_mutex);

    run_batch(store, first, end);
    finish_batch(store, first, end);

    pthread_mutex_lock(&store->group_mutex);
  }
  pthread_mutex_unlock(&store->group_mutex);
  return NULL;
}

/* Appends `request` to the queue and wakes the commit thread; fails once
 * the store is closing. Called with group_mutex held. */
static ap_status_t enqueue_locked(ap_sqlite_store_t *store,
                                  ap_sqlite_write_request_t *request,
                                  ap_error_t *error) {
  if (store->group_stop || !store->group_thread_started) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNAVAILABLE,
                        "metadata store %s is closing: the write was not "
                        "made",
                        store->path);
  }
  request->next = NULL;
  if (store->group_tail) {
    store->group_tail->next = request;
  } else {
    store->group_head = request;
    /* The thread sleeps only on an empty queue, so only the first
     * request of a queue needs to wake it. */
    pthread_cond_signal(&store->group_wake);
  }
  store->group_tail = request;
  return AP_OK;
}

/* Queues `request` and waits until the commit thread has run its batch.
 * Fails, with the request not run, when it cannot be queued. */
static ap_status_t wait_for_batch(ap_sqlite_store_t *store,
                                  ap_sqlite_write_request_t *request,
                                  ap_error_t *error) {
  if (pthread_cond_init(&request->wake, NULL) != 0) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_NO_MEMORY,
                        "cannot create a condition variable for a grouped "
                        "write: the system is out of resources");
  }
  pthread_mutex_lock(&store->group_mutex);
  ap_status_t status = enqueue_locked(store, request, error);
  while (status == AP_OK && !request->done) {
    pthread_cond_wait(&request->wake, &store->group_mutex);
  }
  pthread_mutex_unlock(&store->group_mutex);
  pthread_cond_destroy(&request->wake);
  return status;
}

ap_status_t ap_sqlite_write_grouped(ap_sqlite_store_t *store,
                                    ap_sqlite_write_function_t write,
                                    void *argument, ap_error_t *error) {
  ap_sqlite_write_request_t request = {.write = write, .argument = argument};
  if (committing_store == store) {
    /* A callback of an asynchronous write, on the commit thread, would
     * wait for itself, so the write runs here as a batch of its own. */
    run_batch(store, &request, NULL);
  } else {
    ap_status_t status = wait_for_batch(store, &request, error);
    if (status != AP_OK) {
      return status;
    }
  }

  if (request.status != AP_OK && error) {
    *error = request.error;
  }
  return request.status;
}

ap_status_t ap_sqlite_write_grouped_async(ap_sqlite_store_t *store,
                                          ap_sqlite_write_request_t *request,
                                          ap_error_t *error) {
  pthread_mutex_lock(&store->group_mutex);
  ap_status_t status = enqueue_locked(store, request, error);
  pthread_mutex_unlock(&store->group_mutex);
  return status;
}

ap_status_t ap_sqlite_group_start(ap_sqlite_store_t *store, ap_error_t *error) {
  if (pthread_create(&store->group_thread, NULL, run_group_commits, store) !=
      0) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNAVAILABLE,
                        "metadata.uri %s: cannot start the commit thread",
                        store->path);
  }
  pthread_mutex_lock(&store->group_mutex);
  store->group_thread_started = 1;
  pthread_mutex_unlock(&store->group_mutex);
  return AP_OK;
}

void ap_sqlite_group_stop(ap_sqlite_store_t *store) {
  pthread_mutex_lock(&store->group_mutex);
  int started = store->group_thread_started;
  store->group_stop = 1;
  pthread_cond_signal(&store->group_wake);
  pthread_mutex_unlock(&store->group_mutex);
  if (started) {
    pthread_join(store->group_thread, NULL);
    pthread_mutex_lock(&store->group_mutex);
    store->group_thread_started = 0;
    pthread_mutex_unlock(&store->group_mutex);
  }
}
