/*
 * A pool of threads for library calls that block on a backend, so that an
 * asynchronous API can return at once on backends that have no
 * asynchronous path of their own. Threads start on demand, up to a
 * maximum, and then wait for more tasks until the pool is destroyed.
 */
#ifndef AP_CORE_TASK_POOL_H
#define AP_CORE_TASK_POOL_H

#include <audiopipe/error.h>

/*
 * One queued call, embedded by the submitter in a structure of its own.
 * The pool calls `run` once on a pool thread, and `run` may free the
 * structure that contains the task.
 */
typedef struct ap_task {
  void (*run)(struct ap_task *task);
  struct ap_task *next; /* the pool's queue link */
} ap_task_t;

typedef struct ap_task_pool ap_task_pool_t;

/* Creates a pool that runs at most `max_threads` (1 or more) tasks at
 * once. No thread starts before the first submission. */
ap_status_t ap_task_pool_create(int max_threads, ap_task_pool_t **out,
                                ap_error_t *error);

/*
 * Queues `task` and starts a thread for it when no thread is idle and
 * fewer than the maximum run. Fails with AP_ERR_UNAVAILABLE once
 * ap_task_pool_destroy has begun, or when not even one thread could be
 * started; `run` is then never called.
 */
ap_status_t ap_task_pool_submit(ap_task_pool_t *pool, ap_task_t *task,
                                ap_error_t *error);

/* Runs every task already queued, joins the threads and frees the pool.
 * Submissions made while it runs fail. Accepts NULL. */
void ap_task_pool_destroy(ap_task_pool_t *pool);

#endif
