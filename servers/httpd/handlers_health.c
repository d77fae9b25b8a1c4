/*
 * Probes and metrics: GET /healthz (liveness, never touches a backend),
 * GET /readyz (checks the backends) and GET /metrics.
 */
#include <stdlib.h>
#include <string.h>

#include <audiopipe/job.h>
#include <audiopipe/log.h>
#include <audiopipe/metrics.h>
#include <audiopipe/redis.h>

#include "server.h"

enum MHD_Result httpd_handle_healthz(httpd_request_t *request,
                                     struct MHD_Connection *connection) {
  if (atomic_load(&request->server->draining)) {
    return httpd_respond_static_json(request, connection,
                                     MHD_HTTP_SERVICE_UNAVAILABLE,
                                     "{\"status\":\"draining\"}");
  }
  return httpd_respond_static_json(request, connection, MHD_HTTP_OK,
                                   "{\"status\":\"ok\"}");
}

enum MHD_Result httpd_handle_readyz(httpd_request_t *request,
                                    struct MHD_Connection *connection) {
  httpd_server_t *server = request->server;
  if (atomic_load(&server->draining)) {
    return httpd_respond_error(request, connection,
                               MHD_HTTP_SERVICE_UNAVAILABLE, AP_ERR_UNAVAILABLE,
                               "server is draining");
  }
  ap_error_t error = {0};
  if (ap_context_check_ready(server->context, &error) != AP_OK) {
    ap_log_field_t fields[] = {
        AP_LOG_STRING("code", ap_error_code_name((int)error.code))};
    ap_log_write(AP_LOG_WARN, "readiness_failed", request->request_id, NULL,
                 fields, 1, "%s", error.message);
    return httpd_respond_error(request, connection,
                               MHD_HTTP_SERVICE_UNAVAILABLE, (int)error.code,
                               "%s", error.message);
  }
  /* Redis only shortens waits (everything falls back to polling), so a
   * Redis outage is reported but keeps the server in service. */
  ap_redis_health_t redis = {.struct_size = sizeof redis};
  if (ap_redis_check(server->context, &redis, &error) != AP_OK) {
    ap_log_write(AP_LOG_WARN, "readiness_redis_unavailable",
                 request->request_id, NULL, NULL, 0, "%s", error.message);
    return httpd_respond_static_json(
        request, connection, MHD_HTTP_OK,
        "{\"status\":\"ready\",\"redis\":\"unavailable\"}");
  }
  if (redis.enabled) {
    return httpd_respond_static_json(request, connection, MHD_HTTP_OK,
                                     "{\"status\":\"ready\",\"redis\":\"ok\"}");
  }
  return httpd_respond_static_json(request, connection, MHD_HTTP_OK,
                                   "{\"status\":\"ready\"}");
}

/* Sets the job queue gauges from ap_job_stats at scrape time. A failed
 * read leaves the last values and is logged. */
static void update_queue_gauges(httpd_request_t *request) {
  ap_metrics_t *registry = ap_metrics_default();
  ap_metric_t *jobs = NULL;
  ap_metric_t *oldest = NULL;
  const char *labels[] = {"state"};
  if (ap_metrics_gauge(registry, "audiopipe_jobs", "Jobs by state.", labels, 1,
                       &jobs, NULL) != AP_OK ||
      ap_metrics_gauge(registry, "audiopipe_jobs_oldest_queued_age_seconds",
                       "Age of the oldest due queued job.", NULL, 0, &oldest,
                       NULL) != AP_OK) {
    return;
  }
  ap_job_stats_t stats;
  memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  ap_error_t error = {0};
  if (ap_job_stats(request->server->context, &stats, &error) != AP_OK) {
    ap_log_field_t fields[] = {
        AP_LOG_STRING("code", ap_error_code_name((int)error.code))};
    ap_log_write(AP_LOG_WARN, "job_stats_failed", request->request_id, NULL,
                 fields, 1, "%s", error.message);
    return;
  }
  const struct {
    const char *state;
    int64_t count;
  } states[] = {{"queued", stats.queued},
                {"running", stats.running},
                {"dead", stats.dead},
                {"failed", stats.failed}};
  for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
    const char *values[] = {states[i].state};
    ap_metrics_set(ap_metrics_series(jobs, values), (double)states[i].count);
  }
  ap_metrics_set(ap_metrics_series(oldest, NULL),
                 (double)stats.oldest_queued_age_ms / 1000.0);
}

enum MHD_Result httpd_handle_metrics(httpd_request_t *request,
                                     struct MHD_Connection *connection) {
  update_queue_gauges(request);
  char *text = NULL;
  size_t length = 0;
  ap_error_t error = {0};
  if (ap_metrics_render(ap_metrics_default(), &text, &length, &error) !=
      AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  struct MHD_Response *response =
      MHD_create_response_from_buffer(length, text, MHD_RESPMEM_MUST_FREE);
  if (!response) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/plain; version=0.0.4; charset=utf-8");
  request->bytes_sent = length;
  return httpd_queue(request, connection, MHD_HTTP_OK, response);
}
