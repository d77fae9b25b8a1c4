/*
 * Tests of the pool of threads for blocking calls: the thread cap, every
 * queued task running by the end of destroy, and submissions rejected
 * once destroy has begun.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "core/task_pool.h"

typedef struct counted_task {
  ap_task_t task; /* first, so a task pointer converts back */
  int *ran;       /* incremented atomically */
  int *running;   /* tasks running now, atomically */
  int *peak;      /* the maximum running at once, atomically */
} counted_task_t;

static void sleep_ms(long ms) {
  struct timespec pause = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&pause, NULL);
}

static void run_counted(ap_task_t *task) {
  counted_task_t *counted = (counted_task_t *)task;
  int now = __atomic_add_fetch(counted->running, 1, __ATOMIC_ACQ_REL);
  int peak = __atomic_load_n(counted->peak, __ATOMIC_ACQUIRE);
  while (now > peak &&
         !__atomic_compare_exchange_n(counted->peak, &peak, now, 0,
                                      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
  }
  sleep_ms(2);
  __atomic_sub_fetch(counted->running, 1, __ATOMIC_ACQ_REL);
  __atomic_add_fetch(counted->ran, 1, __ATOMIC_ACQ_REL);
}

/* 30 sleeping tasks on a pool of 3 threads: never more than 3 run at
 * once, more than one does, and destroy returns after all 30 ran. */
static void pool_caps_running_threads(void **state) {
  (void)state;
  ap_task_pool_t *pool = NULL;
  assert_int_equal(ap_task_pool_create(3, &pool, NULL), AP_OK);

  enum { TASKS = 30 };
  static counted_task_t tasks[TASKS];
  int ran = 0;
  int running = 0;
  int peak = 0;
  for (int i = 0; i < TASKS; i++) {
    tasks[i] = (counted_task_t){.task.run = run_counted,
                                .ran = &ran,
                                .running = &running,
                                .peak = &peak};
    assert_int_equal(ap_task_pool_submit(pool, &tasks[i].task, NULL), AP_OK);
  }
  ap_task_pool_destroy(pool);

  assert_int_equal(ran, TASKS);
  assert_true(peak <= 3);
  assert_true(peak > 1);
}

typedef struct late_submitter {
  ap_task_t task;
  ap_task_pool_t *pool;
  counted_task_t rejected; /* must never run */
  ap_status_t status;
  ap_error_t error;
  int ran;
  int running;
  int peak;
} late_submitter_t;

static void run_and_free(ap_task_t *task) { free(task); }

/* Submits until the pool rejects a task, which happens once destroy has
 * begun, then tries the task that must never run. */
static void run_late_submitter(ap_task_t *task) {
  late_submitter_t *submitter = (late_submitter_t *)task;
  for (int i = 0; i < 10000; i++) {
    ap_task_t *noop = calloc(1, sizeof *noop);
    assert_non_null(noop);
    noop->run = run_and_free;
    if (ap_task_pool_submit(submitter->pool, noop, NULL) != AP_OK) {
      free(noop);
      break;
    }
    sleep_ms(1);
  }
  ap_error_clear(&submitter->error);
  submitter->status = ap_task_pool_submit(
      submitter->pool, &submitter->rejected.task, &submitter->error);
}

static void destroy_rejects_new_tasks(void **state) {
  (void)state;
  static late_submitter_t submitter;
  submitter = (late_submitter_t){.task.run = run_late_submitter};
  submitter.rejected = (counted_task_t){.task.run = run_counted,
                                        .ran = &submitter.ran,
                                        .running = &submitter.running,
                                        .peak = &submitter.peak};
  assert_int_equal(ap_task_pool_create(1, &submitter.pool, NULL), AP_OK);
  assert_int_equal(ap_task_pool_submit(submitter.pool, &submitter.task, NULL),
                   AP_OK);
  ap_task_pool_destroy(submitter.pool);

  assert_int_equal(submitter.status, AP_ERR_UNAVAILABLE);
  assert_int_equal(submitter.error.code, AP_ERR_UNAVAILABLE);
  assert_int_equal(submitter.ran, 0);
}

static void create_rejects_zero_threads(void **state) {
  (void)state;
  ap_task_pool_t *pool = NULL;
  ap_error_t error;
  ap_error_clear(&error);
  assert_int_equal(ap_task_pool_create(0, &pool, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_null(pool);
  ap_task_pool_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pool_caps_running_threads),
      cmocka_unit_test(destroy_rejects_new_tasks),
      cmocka_unit_test(create_rejects_zero_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
