/*
 * Backend benchmarks driven by bench/backends.sh: no-op job cycles on any
 * metadata backend, and the cost of presigning URLs on any object store.
 *
 *   backends queue METADATA_URI CYCLES THREADS
 *   backends presign OBJECTS_URI COUNT
 *
 * queue: THREADS threads share one context and run CYCLES / THREADS
 * enqueue -> claim -> complete cycles each. Prints cycles per second and
 * the p50/p99 cycle time in ms.
 *
 * presign: signs COUNT GET URLs with ap_object_store_presign_get and
 * COUNT PUT requests (content type and length signed, as for an upload
 * ticket) with ap_object_store_presign, each for a different key, and
 * prints the nanoseconds per URL, of CPU time of the signing thread and
 * of wall-clock time (which includes waiting for a CPU on a loaded
 * machine). Nothing is sent to the store. S3 credentials come from
 * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
 *
 * The program links the static library because ap_object_store_presign,
 * the call behind upload tickets, is internal.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <audiopipe/config.h>
#include <audiopipe/context.h>
#include <audiopipe/job.h>
#include <audiopipe/storage.h>

#include "storage/object_store.h"

#define BENCH_SECRET "bench-secret-0123456789abcdef-0123456789"

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

static double thread_cpu_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static int run_cycle(ap_context_t *context, ap_error_t *error) {
  static const char *const kinds[] = {"bench_noop"};
  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "bench_noop";
  ap_job_t *job = NULL;
  if (ap_job_enqueue(context, &options, &job, error) != AP_OK) {
    return -1;
  }
  ap_job_free(job);
  job = NULL;

  /* Another thread may take the job just enqueued, so an empty claim is
   * retried. */
  for (int empty = 0; !job && empty < 1000; empty++) {
    if (ap_job_claim(context, "bench", 60000, kinds, 1, &job, error) != AP_OK) {
      return -1;
    }
  }
  if (!job) {
    snprintf(error->message, sizeof error->message,
             "no job became due after 1000 claims");
    return -1;
  }
  ap_status_t status = ap_job_complete(context, ap_job_id(job),
                                       ap_job_claim_token(job), NULL, error);
  ap_job_free(job);
  return status == AP_OK ? 0 : -1;
}

static void *run_cycles(void *argument) {
  bench_thread_t *thread = argument;
  for (int i = 0; i < thread->cycles; i++) {
    double start = now_seconds();
    ap_error_t error = {0};
    if (run_cycle(thread->context, &error) != 0) {
      fprintf(stderr, "backends: job cycle failed: %s\n", error.message);
      thread->failed = 1;
      return NULL;
    }
    thread->cycle_ms[i] = (now_seconds() - start) * 1000.0;
  }
  return NULL;
}

static int compare_doubles(const void *left, const void *right) {
  double a = *(const double *)left;
  double b = *(const double *)right;
  return (a > b) - (a < b);
}

static int bench_queue(const char *metadata_uri, int cycles, int thread_count) {
  ap_error_t error = {0};
  ap_config_t *config = NULL;
  ap_context_t *context = NULL;
  char pool[16];
  snprintf(pool, sizeof pool, "%d", thread_count < 4 ? 4 : thread_count);
  if (ap_config_new(&config, &error) != AP_OK ||
      ap_config_set(config, "metadata.uri", metadata_uri, &error) != AP_OK ||
      ap_config_set(config, "metadata.pool_size", pool, &error) != AP_OK ||
      ap_config_set(config, "signing.secret", BENCH_SECRET, &error) != AP_OK ||
      ap_context_open(config, &context, &error) != AP_OK) {
    fprintf(stderr, "backends: %s\n", error.message);
    ap_config_free(config);
    return 1;
  }

  bench_thread_t *threads = calloc((size_t)thread_count, sizeof *threads);
  pthread_t *handles = calloc((size_t)thread_count, sizeof *handles);
  double *all = calloc((size_t)cycles, sizeof *all);
  if (!threads || !handles || !all) {
    fputs("backends: out of memory\n", stderr);
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
  if (!failed) {
    qsort(all, (size_t)done, sizeof *all, compare_doubles);
    printf("threads=%d cycles=%d seconds=%.3f cycles_per_second=%.0f "
           "p50_ms=%.3f p99_ms=%.3f\n",
           thread_count, done, seconds, done / seconds, all[done / 2],
           all[(size_t)(done * 0.99)]);
  }
  free(all);
  free(handles);
  free(threads);
  ap_context_close(context);
  ap_config_free(config);
  return failed;
}

static int bench_presign(const char *objects_uri, int count) {
  ap_error_t error = {0};
  ap_config_t *config = NULL;
  ap_object_store_t *store = NULL;
  if (ap_config_new(&config, &error) != AP_OK ||
      ap_config_set(config, "objects.uri", objects_uri, &error) != AP_OK ||
      ap_config_set(config, "signing.secret", BENCH_SECRET, &error) != AP_OK ||
      ap_config_set(config, "public.base_url", "http://127.0.0.1:8080",
                    &error) != AP_OK ||
      ap_object_store_open(config, &store, &error) != AP_OK) {
    fprintf(stderr, "backends: %s\n", error.message);
    ap_config_free(config);
    return 1;
  }

  /* Keys shaped like upload keys: a hashed prefix and a 26-character id. */
  char key[128];
  double start = now_seconds();
  double cpu_start = thread_cpu_seconds();
  for (int i = 0; i < count; i++) {
    snprintf(key, sizeof key, "uploads/3f/9c2e/01HZXBENCH%016d", i);
    char *url = NULL;
    if (ap_object_store_presign_get(store, key, 900, &url, NULL, &error) !=
        AP_OK) {
      fprintf(stderr, "backends: presign GET failed: %s\n", error.message);
      return 1;
    }
    ap_free(url);
  }
  double get_seconds = now_seconds() - start;
  double get_cpu_seconds = thread_cpu_seconds() - cpu_start;

  start = now_seconds();
  cpu_start = thread_cpu_seconds();
  for (int i = 0; i < count; i++) {
    snprintf(key, sizeof key, "uploads/3f/9c2e/01HZXBENCH%016d", i);
    ap_presigned_request_t request;
    memset(&request, 0, sizeof request);
    if (ap_object_store_presign(store, "PUT", key, "audio/wav", 1048576, 900,
                                &request, &error) != AP_OK) {
      fprintf(stderr, "backends: presign PUT failed: %s\n", error.message);
      return 1;
    }
    ap_presigned_request_free(&request);
  }
  double put_seconds = now_seconds() - start;
  double put_cpu_seconds = thread_cpu_seconds() - cpu_start;

  printf("urls=%d get_cpu_ns=%.0f put_cpu_ns=%.0f get_wall_ns=%.0f "
         "put_wall_ns=%.0f\n",
         count, get_cpu_seconds * 1e9 / count, put_cpu_seconds * 1e9 / count,
         get_seconds * 1e9 / count, put_seconds * 1e9 / count);
  ap_object_store_close(store);
  ap_config_free(config);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "queue") == 0) {
    int cycles = atoi(argv[3]);
    int threads = atoi(argv[4]);
    if (cycles < 1 || threads < 1 || threads > 64) {
      fputs("backends: CYCLES must be positive and THREADS 1 to 64\n", stderr);
      return 2;
    }
    return bench_queue(argv[2], cycles, threads);
  }
  if (argc == 4 && strcmp(argv[1], "presign") == 0) {
    int count = atoi(argv[3]);
    if (count < 1) {
      fputs("backends: COUNT must be positive\n", stderr);
      return 2;
    }
    return bench_presign(argv[2], count);
  }
  fputs("usage: backends queue METADATA_URI CYCLES THREADS\n"
        "       backends presign OBJECTS_URI COUNT\n",
        stderr);
  return 2;
}
