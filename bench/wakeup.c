/*
 * Job pickup latency: the time from ap_job_enqueue to the worker's
 * AP_WORKER_EVENT_CLAIMED, for an idle ap_worker_run with one thread.
 * The jobs name no asset, so each fails right after its claim; only the
 * pickup is measured. Between jobs the program waits a random time of
 * 20 ms plus up to one poll interval, so an enqueue falls at a random
 * point of the worker's poll interval.
 *
 *   bench-wakeup DIR JOBS POLL_MS [REDIS_URI]
 *
 * Prints one line: the Redis setting, the poll interval and the median,
 * 90th percentile and maximum latency in ms.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <audiopipe/audiopipe.h>
#include <audiopipe/context.h>
#include <audiopipe/job.h>
#include <audiopipe/worker.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t claimed_changed = PTHREAD_COND_INITIALIZER;
static char claimed_id[64];
static double claimed_at_ms;

static double now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec * 1000.0 + (double)now.tv_nsec / 1e6;
}

static void on_event(void *user_data, const ap_worker_event_t *event) {
  (void)user_data;
  if (event->kind != AP_WORKER_EVENT_CLAIMED) {
    return;
  }
  double at = now_ms();
  pthread_mutex_lock(&lock);
  snprintf(claimed_id, sizeof claimed_id, "%s", event->job_id);
  claimed_at_ms = at;
  pthread_cond_broadcast(&claimed_changed);
  pthread_mutex_unlock(&lock);
}

typedef struct run {
  ap_context_t *context;
  ap_worker_options_t options;
  ap_status_t status;
} run_t;

static void *run_worker(void *argument) {
  run_t *run = argument;
  ap_error_t error = {0};
  run->status = ap_worker_run(run->context, &run->options, &error);
  if (run->status != AP_OK) {
    fprintf(stderr, "ap_worker_run: %s\n", error.message);
  }
  return NULL;
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a;
  double y = *(const double *)b;
  return (x > y) - (x < y);
}

static void sleep_ms(int ms) {
  struct timespec pause = {.tv_sec = ms / 1000,
                           .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&pause, NULL);
}

static int set(ap_config_t *config, const char *key, const char *value) {
  ap_error_t error = {0};
  if (ap_config_set(config, key, value, &error) != AP_OK) {
    fprintf(stderr, "%s: %s\n", key, error.message);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s DIR JOBS POLL_MS [REDIS_URI]\n", argv[0]);
    return 2;
  }
  const char *directory = argv[1];
  int jobs = atoi(argv[2]);
  int poll_ms = atoi(argv[3]);
  const char *redis_uri = argc > 4 ? argv[4] : "";
  if (jobs < 1 || poll_ms < 1) {
    fprintf(stderr, "JOBS and POLL_MS must be at least 1\n");
    return 2;
  }

  ap_config_t *config = NULL;
  char value[1024];
  if (ap_config_new(&config, NULL) != AP_OK) {
    return 1;
  }
  snprintf(value, sizeof value, "sqlite://%s/meta.db", directory);
  int failed = set(config, "metadata.uri", value);
  snprintf(value, sizeof value, "file://%s/objects", directory);
  failed |= set(config, "objects.uri", value);
  failed |= set(config, "signing.secret",
                "bench-secret-0123456789abcdef0123456789abcdef");
  failed |= set(config, "redis.uri", redis_uri);
  failed |= set(config, "redis.key_prefix", "bench-wakeup");
  ap_context_t *context = NULL;
  ap_error_t error = {0};
  if (failed || ap_context_open(config, &context, &error) != AP_OK) {
    fprintf(stderr, "ap_context_open: %s\n", error.message);
    return 1;
  }

  ap_worker_t *handle = NULL;
  ap_worker_new(&handle, NULL);
  run_t run = {.context = context};
  ap_worker_options_init(&run.options);
  run.options.poll_interval_ms = poll_ms;
  run.options.handle = handle;
  run.options.on_event = on_event;
  run.options.profile = "waveform=dat:8:256";
  pthread_t thread;
  if (pthread_create(&thread, NULL, run_worker, &run) != 0) {
    return 1;
  }
  /* Gives the worker time to subscribe and go idle. */
  sleep_ms(500);

  double *latencies = calloc((size_t)jobs, sizeof *latencies);
  unsigned seed = 12345;
  for (int i = 0; i < jobs && latencies; i++) {
    ap_job_enqueue_options_t options;
    ap_job_enqueue_options_init(&options);
    options.kind = AP_JOB_KIND_PROCESS_ASSET;
    options.max_attempts = 1;
    ap_job_t *job = NULL;
    double start = now_ms();
    if (ap_job_enqueue(context, &options, &job, &error) != AP_OK) {
      fprintf(stderr, "ap_job_enqueue: %s\n", error.message);
      return 1;
    }
    pthread_mutex_lock(&lock);
    while (strcmp(claimed_id, ap_job_id(job)) != 0) {
      pthread_cond_wait(&claimed_changed, &lock);
    }
    latencies[i] = claimed_at_ms - start;
    pthread_mutex_unlock(&lock);
    ap_job_free(job);
    sleep_ms(20 + (int)(rand_r(&seed) % (unsigned)(poll_ms + 1)));
  }

  ap_worker_request_stop(handle);
  pthread_join(thread, NULL);
  ap_worker_free(handle);
  ap_context_close(context);
  ap_config_free(config);
  if (!latencies) {
    return 1;
  }
  qsort(latencies, (size_t)jobs, sizeof *latencies, compare);
  printf("%-8s poll %5d ms  jobs %4d  pickup median %8.2f ms  p90 %8.2f ms  "
         "max %8.2f ms\n",
         redis_uri[0] ? "redis" : "polling", poll_ms, jobs, latencies[jobs / 2],
         latencies[(jobs * 9) / 10], latencies[jobs - 1]);
  free(latencies);
  return run.status == AP_OK ? 0 : 1;
}
