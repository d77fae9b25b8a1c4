/*
 * Benchmark of the embedded job queue: no-op jobs through enqueue ->
 * claim -> complete on a fresh SQLite file, timed per cycle.
 *
 *   queue DIRECTORY CYCLES THREADS SYNCHRONOUS
 *
 * THREADS threads share one context, each running CYCLES / THREADS
 * cycles; SYNCHRONOUS is FULL or NORMAL (metadata.sqlite_synchronous).
 * Prints one line: cycles, seconds, cycles per second and the p50/p99
 * cycle time in ms. bench/queue.sh builds and runs it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <audiopipe/config.h>
#include <audiopipe/context.h>
#include <audiopipe/job.h>

typedef struct bench_thread {
  ap_context_t *context;
  int cycles;
  double *cycle_ms; /* one entry per cycle */
  int failed;
} bench_thread_t;

static double now_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void *run_cycles(void *argument) {
  bench_thread_t *thread = argument;
  const char *kinds[] = {"bench_noop"};
  for (int i = 0; i < thread->cycles; i++) {
    double start = now_seconds();
    ap_error_t error = {0};
    ap_job_enqueue_options_t options;
    ap_job_enqueue_options_init(&options);
    options.kind = "bench_noop";
    ap_job_t *job = NULL;
    if (ap_job_enqueue(thread->context, &options, &job, &error) != AP_OK) {
      fprintf(stderr, "queue: enqueue failed: %s\n", error.message);
      thread->failed = 1;
      return NULL;
    }
    ap_job_free(job);
    job = NULL;
    /* Another thread may have taken the job just enqueued, and a job
     * enqueued by one thread can be due a millisecond after another
     * thread's clock reading, so an empty claim is retried. */
    int empty = 0;
    while (!job && empty < 1000) {
      if (ap_job_claim(thread->context, "bench", 60000, kinds, 1, &job,
                       &error) != AP_OK) {
        fprintf(stderr, "queue: claim failed: %s\n", error.message);
        thread->failed = 1;
        return NULL;
      }
      empty += !job;
    }
    if (!job) {
      fputs("queue: no job became due after 1000 claims\n", stderr);
      thread->failed = 1;
      return NULL;
    }
    if (ap_job_complete(thread->context, ap_job_id(job),
                        ap_job_claim_token(job), NULL, &error) != AP_OK) {
      fprintf(stderr, "queue: complete failed: %s\n", error.message);
      thread->failed = 1;
    }
    ap_job_free(job);
    thread->cycle_ms[i] = (now_seconds() - start) * 1000.0;
  }
  return NULL;
}

static int compare_doubles(const void *left, const void *right) {
  double a = *(const double *)left;
  double b = *(const double *)right;
  return (a > b) - (a < b);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fputs("usage: queue DIRECTORY CYCLES THREADS FULL|NORMAL\n", stderr);
    return 2;
  }
  int cycles = atoi(argv[2]);
  int thread_count = atoi(argv[3]);
  if (cycles < 1 || thread_count < 1 || thread_count > 64) {
    fputs("queue: CYCLES must be positive and THREADS 1 to 64\n", stderr);
    return 2;
  }
  char uri[4096];
  snprintf(uri, sizeof uri, "sqlite://%s/meta.db", argv[1]);
  char objects[4096];
  snprintf(objects, sizeof objects, "file://%s/objects", argv[1]);

  ap_error_t error = {0};
  ap_config_t *config = NULL;
  ap_context_t *context = NULL;
  char pool[16];
  snprintf(pool, sizeof pool, "%d", thread_count < 4 ? 4 : thread_count);
  if (ap_config_new(&config, &error) != AP_OK ||
      ap_config_set(config, "metadata.uri", uri, &error) != AP_OK ||
      ap_config_set(config, "objects.uri", objects, &error) != AP_OK ||
      ap_config_set(config, "metadata.sqlite_synchronous", argv[4], &error) !=
          AP_OK ||
      ap_config_set(config, "metadata.pool_size", pool, &error) != AP_OK ||
      ap_config_set(config, "signing.secret",
                    "bench-secret-0123456789abcdef-0123456789",
                    &error) != AP_OK ||
      ap_context_open(config, &context, &error) != AP_OK) {
    fprintf(stderr, "queue: %s\n", error.message);
    ap_config_free(config);
    return 1;
  }

  bench_thread_t *threads = calloc((size_t)thread_count, sizeof *threads);
  pthread_t *handles = calloc((size_t)thread_count, sizeof *handles);
  double *all = calloc((size_t)cycles, sizeof *all);
  if (!threads || !handles || !all) {
    fputs("queue: out of memory\n", stderr);
    return 1;
  }
  int per_thread = cycles / thread_count;
  double start = now_seconds();
  for (int i = 0; i < thread_count; i++) {
    threads[i].context = context;
    threads[i].cycles = per_thread;
    threads[i].cycle_ms = all + (size_t)i * (size_t)per_thread;
    pthread_create(&handles[i], NULL, run_cycles, &threads[i]);
  }
  int failed = 0;
  for (int i = 0; i < thread_count; i++) {
    pthread_join(handles[i], NULL);
    failed |= threads[i].failed;
  }
  double seconds = now_seconds() - start;
  int done = per_thread * thread_count;
  qsort(all, (size_t)done, sizeof *all, compare_doubles);
  printf("synchronous=%s threads=%d cycles=%d seconds=%.3f "
         "cycles_per_second=%.0f p50_ms=%.3f p99_ms=%.3f\n",
         argv[4], thread_count, done, seconds, done / seconds, all[done / 2],
         all[(size_t)(done * 0.99)]);

  free(all);
  free(handles);
  free(threads);
  ap_context_close(context);
  ap_config_free(config);
  return failed;
}
