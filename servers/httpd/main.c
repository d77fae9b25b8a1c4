/*
 * audiopipe-httpd: command line, configuration, start-up, and the
 * graceful drain on SIGTERM or SIGINT.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <audiopipe/context.h>
#include <audiopipe/log.h>
#include <audiopipe/version.h>

#include "auth.h"
#include "cors.h"
#include "httpd.h"
#include "rate_limit.h"
#include "sse.h"

static void print_usage(FILE *stream) {
  fputs(
      "Usage: audiopipe-httpd [--listen HOST:PORT] [--threads N]\n"
      "       audiopipe-httpd --hash-key [KEY]\n"
      "\n"
      "Serves the audiopipe HTTP API (docs/http-api.md). Configuration comes\n"
      "from AUDIOPIPE_* environment variables (run `audiopipe config` for the\n"
      "keys); the options below override them.\n"
      "\n"
      "  --listen HOST:PORT  IPv4 address and port to listen on\n"
      "                      (http.listen, default 127.0.0.1:8080)\n"
      "  --threads N         worker threads (http.threads; 0, the default,\n"
      "                      is twice the number of CPUs)\n"
      "  --hash-key [KEY]    print the SHA-256 hex of KEY, or of the first\n"
      "                      line of standard input, for the keys file\n"
      "                      (http.api_keys_file: lines \"owner sha256hex\")\n"
      "  --help              show this help\n",
      stream);
}

/* Prints the hash of a key given as argument or on standard input. */
static int hash_key(const char *argument) {
  char line[1024];
  const char *key = argument;
  if (!key) {
    if (!fgets(line, sizeof line, stdin)) {
      fputs("audiopipe-httpd: --hash-key: no key on standard input\n", stderr);
      return 2;
    }
    line[strcspn(line, "\r\n")] = '\0';
    key = line;
  }
  if (!*key) {
    fputs("audiopipe-httpd: --hash-key: the key is empty\n", stderr);
    return 2;
  }
  char hex[65];
  httpd_key_hash_hex(key, strlen(key), hex);
  printf("%s\n", hex);
  return 0;
}

static int parse_listen(const char *text, httpd_settings_t *settings) {
  const char *colon = strrchr(text, ':');
  if (!colon || colon == text ||
      (size_t)(colon - text) >= sizeof settings->listen_host) {
    return -1;
  }
  char *end = NULL;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (errno != 0 || !end || *end != '\0' || end == colon + 1 || port < 0 ||
      port > 65535) {
    return -1;
  }
  memcpy(settings->listen_host, text, (size_t)(colon - text));
  settings->listen_host[colon - text] = '\0';
  settings->listen_port = (uint16_t)port;
  return 0;
}

/* Reads an integer key, failing with its error. */
static int read_int(const ap_config_t *config, const char *key, int64_t minimum,
                    int64_t maximum, int64_t *value, ap_error_t *error) {
  if (ap_config_get_int64(config, key, value, error) != AP_OK) {
    return -1;
  }
  if (*value < minimum || *value > maximum) {
    httpd_error_set(error, AP_ERR_INVALID_CONFIG,
                    "%s: %lld is out of range %lld to %lld", key,
                    (long long)*value, (long long)minimum, (long long)maximum);
    return -1;
  }
  return 0;
}

static int load_settings(const ap_config_t *config, httpd_settings_t *settings,
                         ap_error_t *error) {
  memset(settings, 0, sizeof *settings);
  if (parse_listen(ap_config_get(config, "http.listen"), settings) != 0) {
    httpd_error_set(error, AP_ERR_INVALID_CONFIG,
                    "http.listen: expected HOST:PORT such as 127.0.0.1:8080");
    return -1;
  }
  int64_t threads = 0;
  int64_t connections = 0;
  int64_t timeout_ms = 0;
  int64_t streams = 0;
  int64_t rate = 0;
  int64_t burst = 0;
  if (read_int(config, "http.threads", 0, 1024, &threads, error) != 0 ||
      read_int(config, "http.max_connections", 1, 1000000, &connections,
               error) != 0 ||
      read_int(config, "http.connection_timeout", 1000, 86400000, &timeout_ms,
               error) != 0 ||
      read_int(config, "http.max_body_bytes", 1024, 64 * 1024 * 1024,
               &settings->max_body_bytes, error) != 0 ||
      read_int(config, "http.drain_timeout", 0, 3600000,
               &settings->drain_timeout_ms, error) != 0 ||
      read_int(config, "http.drain_grace", 0, 3600000,
               &settings->drain_grace_ms, error) != 0 ||
      read_int(config, "http.sse_heartbeat", 100, 3600000,
               &settings->heartbeat_ms, error) != 0 ||
      read_int(config, "http.sse_max_streams", 1, 1000000, &streams, error) !=
          0 ||
      read_int(config, "jobs.watch_interval", 10, 60000, &settings->sse_poll_ms,
               error) != 0 ||
      read_int(config, "http.rate_limit", 0, 10000000, &rate, error) != 0 ||
      read_int(config, "http.rate_limit_burst", 1, 10000000, &burst, error) !=
          0) {
    return -1;
  }
  settings->threads = (unsigned)threads;
  settings->max_connections = (unsigned)connections;
  settings->connection_timeout_s = (unsigned)((timeout_ms + 999) / 1000);
  settings->sse_max_streams = (unsigned)streams;
  settings->rate_limit = (double)rate;
  settings->rate_burst = (double)burst;
  return 0;
}

/* Sleeps `ms` milliseconds. */
static void sleep_ms(int64_t ms) {
  struct timespec pause = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
  }
}

/* Waits for SIGTERM or SIGINT, then drains: /healthz returns 503 for the
 * grace period, the listener closes, event streams end, and in-flight
 * requests get up to the drain timeout. */
static void run_until_signal(httpd_server_t *server, sigset_t *signals) {
  int signal_number = 0;
  sigwait(signals, &signal_number);
  atomic_store(&server->draining, 1);
  ap_log_field_t fields[] = {
      AP_LOG_INT("signal", signal_number),
      AP_LOG_INT("in_flight", atomic_load(&server->in_flight))};
  ap_log_write(AP_LOG_INFO, "drain_started", NULL, NULL, fields, 2,
               "stopping: finishing in-flight requests");

  sleep_ms(server->settings.drain_grace_ms);
  httpd_server_stop_accepting(server);
  httpd_sse_hub_finish_all(server->sse);

  int64_t deadline = httpd_monotonic_ms() + server->settings.drain_timeout_ms;
  while (atomic_load(&server->in_flight) > 0 &&
         httpd_monotonic_ms() < deadline) {
    sleep_ms(20);
  }
  long abandoned = atomic_load(&server->in_flight);
  if (abandoned > 0) {
    ap_log_field_t left[] = {AP_LOG_INT("in_flight", abandoned)};
    ap_log_write(AP_LOG_WARN, "drain_timed_out", NULL, NULL, left, 1,
                 "http.drain_timeout passed with requests still running");
  }
}

int main(int argc, char **argv) {
  const char *listen = NULL;
  const char *threads = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_usage(stdout);
      return 0;
    }
    if (strcmp(argv[i], "--hash-key") == 0) {
      return hash_key(i + 1 < argc ? argv[i + 1] : NULL);
    }
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      listen = argv[++i];
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = argv[++i];
    } else {
      fprintf(stderr, "audiopipe-httpd: unknown or incomplete option %s\n",
              argv[i]);
      print_usage(stderr);
      return 2;
    }
  }

  httpd_server_t *server = calloc(1, sizeof *server);
  if (!server) {
    return 1;
  }
  ap_error_t error = {0};
  int exit_code = 1;
  ap_status_t status = ap_config_from_env(&server->config, &error);
  if (status == AP_OK && listen) {
    status = ap_config_set(server->config, "http.listen", listen, &error);
  }
  if (status == AP_OK && threads) {
    status = ap_config_set(server->config, "http.threads", threads, &error);
  }
  if (status == AP_OK) {
    status = ap_log_configure(server->config, &error);
  }
  if (status == AP_OK &&
      load_settings(server->config, &server->settings, &error) != 0) {
    status = (ap_status_t)error.code;
  }
  if (status == AP_OK && server->settings.threads == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    server->settings.threads = (unsigned)(cpus > 0 ? 2 * cpus : 2);
  }

  const char *keys_path = ap_config_get(server->config, "http.api_keys_file");
  if (status == AP_OK && !keys_path) {
    status = httpd_error_set(&error, AP_ERR_INVALID_CONFIG,
                             "http.api_keys_file is not set: set "
                             "AUDIOPIPE_HTTP_API_KEYS_FILE to a file of "
                             "\"owner sha256hex\" lines");
  }
  if (status == AP_OK) {
    status = httpd_keys_load(keys_path, &server->keys, &error);
  }
  if (status == AP_OK) {
    status = httpd_cors_new(ap_config_get(server->config, "http.cors_origins"),
                            &server->cors, &error);
  }
  if (status == AP_OK) {
    server->rate_limiter = httpd_rate_limiter_new(server->settings.rate_limit,
                                                  server->settings.rate_burst);
    if (!server->rate_limiter) {
      status = httpd_error_set(&error, AP_ERR_NO_MEMORY, "out of memory");
    }
  }
  if (status == AP_OK) {
    status = ap_context_open(server->config, &server->context, &error);
  }
  if (status == AP_OK) {
    httpd_rate_limiter_share(server->rate_limiter, server->context);
  }
  if (status == AP_OK) {
    server->store = ap_context_object_store(server->context);
  }

  /* Signals are blocked before any thread starts, so every thread
   * inherits the mask and only sigwait in main receives them. */
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (status == AP_OK) {
    status = httpd_sse_hub_start(server, &server->sse, &error);
  }
  if (status == AP_OK) {
    status = httpd_server_start(server, &error);
  }

  if (status == AP_OK) {
    ap_log_field_t fields[] = {
        AP_LOG_STRING("listen_host", server->settings.listen_host),
        AP_LOG_INT("listen_port", server->settings.listen_port),
        AP_LOG_INT("threads", server->settings.threads),
        AP_LOG_INT("key_count", httpd_keys_count(server->keys)),
        AP_LOG_STRING("version", AP_VERSION_STRING)};
    ap_log_write(AP_LOG_INFO, "server_started", NULL, NULL, fields,
                 sizeof fields / sizeof fields[0], "listening");
    run_until_signal(server, &signals);
    exit_code = 0;
  } else {
    ap_log_field_t fields[] = {
        AP_LOG_STRING("code", ap_error_code_name((int)error.code))};
    ap_log_write(AP_LOG_ERROR, "server_start_failed", NULL, NULL, fields, 1,
                 "%s", error.message);
    fprintf(stderr, "audiopipe-httpd: %s\n", error.message);
  }

  httpd_server_stop(server);
  httpd_sse_hub_stop(server->sse);
  ap_context_close(server->context);
  httpd_rate_limiter_free(server->rate_limiter);
  httpd_cors_free(server->cors);
  httpd_keys_free(server->keys);
  ap_config_free(server->config);
  if (exit_code == 0) {
    ap_log_write(AP_LOG_INFO, "server_stopped", NULL, NULL, NULL, 0, NULL);
  }
  ap_log_flush_suppressed();
  free(server);
  return exit_code;
}
