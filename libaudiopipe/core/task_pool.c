#include "core/task_pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/error_internal.h"

struct ap_task_pool {
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  ap_task_t *head;  /* under mutex */
  ap_task_t *tail;  /* under mutex */
  int idle;         /* threads waiting for a task, under mutex */
  int stopping;     /* under mutex */
  int thread_count; /* threads started, under mutex */
  int max_threads;
  pthread_t *threads; /* max_threads entries, thread_count of them used */
};

static void *run_tasks(void *argument) {
  ap_task_pool_t *pool = argument;
  pthread_mutex_lock(&pool->mutex);
  for (;;) {
    while (!pool->head && !pool->stopping) {
      pool->idle++;
      pthread_cond_wait(&pool->wake, &pool->mutex);
      pool->idle--;
    }
    ap_task_t *task = pool->head;
    if (!task) {
      break; /* stopping, and the queue is empty */
    }
    pool->head = task->next;
    if (!pool->head) {
      pool->tail = NULL;
    }
    pthread_mutex_unlock(&pool->mutex);

    task->run(task);

    pthread_mutex_lock(&pool->mutex);
  }
  pthread_mutex_unlock(&pool->mutex);
  return NULL;
}

ap_status_t ap_task_pool_create(int max_threads, ap_task_pool_t **out,
                                ap_error_t *error) {
  if (max_threads < 1 || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_task_pool_create: max_threads must be at least "
                        "1 (got %d) and out must not be NULL",
                        max_threads);
  }
  ap_task_pool_t *pool = calloc(1, sizeof *pool);
  if (!pool) {
    return AP_NO_MEMORY(error);
  }
  pool->threads = calloc((size_t)max_threads, sizeof *pool->threads);
  if (!pool->threads) {
    free(pool);
    return AP_NO_MEMORY(error);
  }
  pthread_mutex_init(&pool->mutex, NULL);
  pthread_cond_init(&pool->wake, NULL);
  pool->max_threads = max_threads;
  *out = pool;
  return AP_OK;
}

ap_status_t ap_task_pool_submit(ap_task_pool_t *pool, ap_task_t *task,
                                ap_error_t *error) {
  pthread_mutex_lock(&pool->mutex);
  if (pool->stopping) {
    pthread_mutex_unlock(&pool->mutex);
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_UNAVAILABLE,
                        "the context is closing and takes no new calls");
  }

  /* Idle threads will take the queued tasks first, so a new thread is
   * needed only when the queue outgrows them. */
  int queued = 0;
  for (ap_task_t *waiting = pool->head; waiting && queued <= pool->idle;
       waiting = waiting->next) {
    queued++;
  }
  if (queued >= pool->idle && pool->thread_count < pool->max_threads) {
    if (pthread_create(&pool->threads[pool->thread_count], NULL, run_tasks,
                       pool) == 0) {
      pool->thread_count++;
    } else if (pool->thread_count == 0) {
      pthread_mutex_unlock(&pool->mutex);
      return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_UNAVAILABLE,
                          "cannot start a thread for a blocking call: the "
                          "process is out of threads or memory");
    }
    /* Otherwise the running threads take the task in turn. */
  }

  task->next = NULL;
  if (pool->tail) {
    pool->tail->next = task;
  } else {
    pool->head = task;
  }
  pool->tail = task;
  pthread_cond_signal(&pool->wake);
  pthread_mutex_unlock(&pool->mutex);
  return AP_OK;
}

void ap_task_pool_destroy(ap_task_pool_t *pool) {
  if (!pool) {
    return;
  }
  pthread_mutex_lock(&pool->mutex);
  pool->stopping = 1;
  pthread_cond_broadcast(&pool->wake);
  int count = pool->thread_count;
  pthread_mutex_unlock(&pool->mutex);

  /* No thread starts once stopping is set, so `count` is final. */
  for (int i = 0; i < count; i++) {
    pthread_join(pool->threads[i], NULL);
  }
  pthread_mutex_destroy(&pool->mutex);
  pthread_cond_destroy(&pool->wake);
  free(pool->threads);
  free(pool);
}
