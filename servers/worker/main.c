/*
 * audiopipe-worker: runs ap_worker_run on the backends of the AUDIOPIPE_*
 * configuration, serves its own Prometheus /metrics, and drains on
 * SIGTERM or SIGINT (exit status 0 after a clean drain).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include <audiopipe/config.h>
#include <audiopipe/context.h>
#include <audiopipe/job.h>
#include <audiopipe/log.h>
#include <audiopipe/metrics.h>
#include <audiopipe/worker.h>

static ap_worker_t *running_worker;

static void print_usage(FILE *stream) {
  fputs(
      "Usage: audiopipe-worker [--concurrency N] [--metrics-listen HOST:PORT]\n"
      "\n"
      "Processes uploaded assets: claims process_asset jobs, writes the\n"
      "waveforms and renditions of processing.profile to the object store and\n"
      "the results to the asset. Configuration comes from AUDIOPIPE_*\n"
      "environment variables (run `audiopipe config` for the keys); the\n"
      "options below override them. SIGTERM or SIGINT stops claiming, lets\n"
      "running jobs finish for worker.drain_timeout, then exits.\n"
      "\n"
      "  --concurrency N            jobs processed at once, 1 to 256\n"
      "                             (worker.concurrency, default 1)\n"
      "  --metrics-listen HOST:PORT serve Prometheus text on\n"
      "                             http://HOST:PORT/metrics\n"
      "                             (worker.metrics_listen, default none)\n"
      "  --help                     show this help\n",
      stream);
}

static void on_signal(int signal_number) {
  (void)signal_number;
  ap_worker_request_stop(running_worker);
}

/* The metric series the event callback updates. */
typedef struct worker_metrics {
  ap_metric_t *jobs;    /* counter by kind and outcome */
  ap_metric_t *seconds; /* histogram by stage */
  ap_metric_t *threads; /* gauge by state: busy, idle */
  ap_metric_t *queue;   /* gauge: jobs queued */
  ap_metric_t *oldest;  /* gauge: oldest due queued job, seconds */
  ap_context_t *context;
} worker_metrics_t;

static ap_status_t register_metrics(worker_metrics_t *metrics,
                                    ap_error_t *error) {
  ap_metrics_t *registry = ap_metrics_default();
  const char *job_labels[] = {"kind", "outcome"};
  const char *stage_labels[] = {"stage"};
  const char *state_labels[] = {"state"};
  static const double stage_buckets[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,  5,    10,  30,   60,  300};
  ap_status_t status = ap_metrics_counter(
      registry, "audiopipe_worker_jobs_total",
      "Jobs by kind and outcome: claimed, succeeded, failed, retried, "
      "lease_lost, stopped.",
      job_labels, 2, &metrics->jobs, error);
  if (status == AP_OK) {
    status = ap_metrics_histogram(
        registry, "audiopipe_worker_stage_seconds",
        "Wall-clock seconds per job stage: decode, process, store, total.",
        stage_labels, 1, stage_buckets,
        sizeof stage_buckets / sizeof stage_buckets[0], &metrics->seconds,
        error);
  }
  if (status == AP_OK) {
    status = ap_metrics_gauge(registry, "audiopipe_worker_threads",
                              "Worker threads by state: busy or idle.",
                              state_labels, 1, &metrics->threads, error);
  }
  if (status == AP_OK) {
    status = ap_metrics_gauge(registry, "audiopipe_worker_queue_depth",
                              "Jobs in state queued, due or not.", NULL, 0,
                              &metrics->queue, error);
  }
  if (status == AP_OK) {
    status =
        ap_metrics_gauge(registry, "audiopipe_worker_queue_oldest_age_seconds",
                         "Age of the oldest due queued job; 0 when none.", NULL,
                         0, &metrics->oldest, error);
  }
  return status;
}

static void count_job(worker_metrics_t *metrics, const char *kind,
                      const char *outcome) {
  const char *values[] = {kind, outcome};
  ap_metrics_add(ap_metrics_series(metrics->jobs, values), 1);
}

static void observe_stage(worker_metrics_t *metrics, const char *stage,
                          double seconds) {
  if (seconds > 0) {
    const char *values[] = {stage};
    ap_metrics_observe(ap_metrics_series(metrics->seconds, values), seconds);
  }
}

static void on_event(void *user_data, const ap_worker_event_t *event) {
  worker_metrics_t *metrics = user_data;
  static const char *const outcomes[] = {"claimed", "succeeded",  "retried",
                                         "failed",  "lease_lost", "stopped"};
  const char *kind = event->job_kind ? event->job_kind : "";
  count_job(metrics, kind, outcomes[event->kind]);
  if (event->kind == AP_WORKER_EVENT_SUCCEEDED) {
    observe_stage(metrics, "decode", event->decode_seconds);
    observe_stage(metrics, "process", event->process_seconds);
    observe_stage(metrics, "store", event->store_seconds);
    observe_stage(metrics, "total", event->total_seconds);
  }
  const char *busy[] = {"busy"};
  const char *idle[] = {"idle"};
  ap_metrics_set(ap_metrics_series(metrics->threads, busy),
                 event->busy_threads);
  ap_metrics_set(ap_metrics_series(metrics->threads, idle),
                 event->threads - event->busy_threads);
}

static enum MHD_Result
serve_metrics(void *user_data, struct MHD_Connection *connection,
              const char *url, const char *method, const char *version,
              const char *upload_data, size_t *upload_data_size,
              void **request_state) {
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)request_state;
  worker_metrics_t *metrics = user_data;
  unsigned code = MHD_HTTP_OK;
  char *text = NULL;
  size_t length = 0;
  const char *type = "text/plain; version=0.0.4";
  if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0) {
    code = MHD_HTTP_NOT_FOUND;
  } else {
    /* Queue figures are read at scrape time, so they are never stale. */
    ap_job_stats_t stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    if (ap_job_stats(metrics->context, &stats, NULL) == AP_OK) {
      ap_metrics_set(ap_metrics_series(metrics->queue, NULL),
                     (double)stats.queued);
      ap_metrics_set(ap_metrics_series(metrics->oldest, NULL),
                     (double)stats.oldest_queued_age_ms / 1000.0);
    }
    if (ap_metrics_render(ap_metrics_default(), &text, &length, NULL) !=
        AP_OK) {
      code = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
  }
  struct MHD_Response *response =
      text
          ? MHD_create_response_from_buffer(length, text, MHD_RESPMEM_MUST_COPY)
          : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  ap_free(text);
  if (!response) {
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  enum MHD_Result result = MHD_queue_response(connection, code, response);
  MHD_destroy_response(response);
  return result;
}

/* Starts the /metrics listener on IPv4 HOST:PORT; NULL on failure. */
static struct MHD_Daemon *start_metrics(const char *listen,
                                        worker_metrics_t *metrics) {
  char host[64];
  const char *colon = strrchr(listen, ':');
  if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host) {
    return NULL;
  }
  memcpy(host, listen, (size_t)(colon - listen));
  host[colon - listen] = '\0';
  char *end = NULL;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (errno != 0 || *end != '\0' || port < 0 || port > 65535) {
    return NULL;
  }
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
    return NULL;
  }
  return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                          (uint16_t)port, NULL, NULL, serve_metrics, metrics,
                          MHD_OPTION_SOCK_ADDR, &address, MHD_OPTION_END);
}

/* Sets `key` from a command-line value, reporting a bad one. */
static int set_option(ap_config_t *config, const char *key, const char *value) {
  ap_error_t error = {0};
  if (ap_config_set(config, key, value, &error) != AP_OK) {
    fprintf(stderr, "audiopipe-worker: %s\n", error.message);
    return -1;
  }
  return 0;
}

/* Applies the command line to `config`. Returns 0, 1 after --help, or 2
 * for a usage error. */
static int parse_arguments(int argc, char **argv, ap_config_t *config) {
  for (int i = 1; i < argc; i++) {
    const char *argument = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argument, "--help") == 0 || strcmp(argument, "-h") == 0) {
      print_usage(stdout);
      return 1;
    }
    const char *key = NULL;
    if (strcmp(argument, "--concurrency") == 0) {
      key = "worker.concurrency";
    } else if (strcmp(argument, "--metrics-listen") == 0) {
      key = "worker.metrics_listen";
    } else {
      fprintf(stderr, "audiopipe-worker: unknown option %s\n", argument);
      print_usage(stderr);
      return 2;
    }
    if (!value) {
      fprintf(stderr, "audiopipe-worker: the value of %s is missing\n",
              argument);
      return 2;
    }
    if (set_option(config, key, value) != 0) {
      return 2;
    }
    i++;
  }
  return 0;
}

/* Reads the worker.* keys into `options`. */
static int read_options(const ap_config_t *config,
                        ap_worker_options_t *options) {
  int64_t concurrency = 0;
  ap_error_t error = {0};
  if (ap_config_get_int64(config, "worker.concurrency", &concurrency, &error) !=
          AP_OK ||
      ap_config_get_int64(config, "worker.lease", &options->lease_ms, &error) !=
          AP_OK ||
      ap_config_get_int64(config, "worker.drain_timeout",
                          &options->drain_timeout_ms, &error) != AP_OK) {
    fprintf(stderr, "audiopipe-worker: %s\n", error.message);
    return -1;
  }
  if (concurrency < 1 || concurrency > 256) {
    fprintf(stderr,
            "audiopipe-worker: worker.concurrency = %lld is out of range: "
            "use 1 to 256\n",
            (long long)concurrency);
    return -1;
  }
  options->threads = (int)concurrency;
  return 0;
}

int main(int argc, char **argv) {
  ap_error_t error = {0};
  ap_config_t *config = NULL;
  if (ap_config_from_env(&config, &error) != AP_OK) {
    fprintf(stderr, "audiopipe-worker: %s\n", error.message);
    return 2;
  }
  int parsed = parse_arguments(argc, argv, config);
  if (parsed != 0) {
    ap_config_free(config);
    return parsed == 1 ? 0 : 2;
  }
  if (ap_log_configure(config, &error) != AP_OK) {
    fprintf(stderr, "audiopipe-worker: %s\n", error.message);
    ap_config_free(config);
    return 2;
  }

  ap_worker_options_t options;
  ap_worker_options_init(&options);
  options.profile = ap_config_get(config, "processing.profile");
  if (read_options(config, &options) != 0 ||
      ap_worker_profile_validate(options.profile, &error) != AP_OK) {
    if (error.message[0]) {
      fprintf(stderr, "audiopipe-worker: %s\n", error.message);
    }
    ap_config_free(config);
    return 2;
  }

  ap_context_t *context = NULL;
  if (ap_context_open(config, &context, &error) != AP_OK) {
    fprintf(stderr, "audiopipe-worker: %s\n", error.message);
    ap_config_free(config);
    return 1;
  }

  worker_metrics_t metrics;
  memset(&metrics, 0, sizeof metrics);
  metrics.context = context;
  struct MHD_Daemon *daemon = NULL;
  const char *listen = ap_config_get(config, "worker.metrics_listen");
  int exit_code = 0;
  if (register_metrics(&metrics, &error) != AP_OK) {
    fprintf(stderr, "audiopipe-worker: %s\n", error.message);
    exit_code = 1;
  } else if (listen && *listen && !(daemon = start_metrics(listen, &metrics))) {
    fprintf(stderr,
            "audiopipe-worker: cannot serve /metrics on %s: give a free "
            "IPv4 HOST:PORT such as 127.0.0.1:9101\n",
            listen);
    exit_code = 1;
  }
  if (exit_code == 0 && ap_worker_new(&running_worker, &error) != AP_OK) {
    fprintf(stderr, "audiopipe-worker: %s\n", error.message);
    exit_code = 1;
  }
  if (exit_code == 0) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *idle[] = {"idle"};
    ap_metrics_set(ap_metrics_series(metrics.threads, idle), options.threads);
    options.handle = running_worker;
    options.on_event = on_event;
    options.event_user_data = &metrics;
    if (ap_worker_run(context, &options, &error) != AP_OK) {
      fprintf(stderr, "audiopipe-worker: %s\n", error.message);
      exit_code = 1;
    }
  }

  if (daemon) {
    MHD_stop_daemon(daemon);
  }
  ap_log_flush_suppressed();
  ap_worker_free(running_worker);
  ap_context_close(context);
  ap_config_free(config);
  return exit_code;
}
