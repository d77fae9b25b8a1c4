/*
 * Probes and metrics: GET /healthz (liveness, never touches a backend),
 * GET /readyz (checks the backends) and GET /metrics.
 */
#include <stdlib.h>
#include <string.h>

#include <audiopipe/log.h>
#include <audiopipe/metrics.h>

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
  return httpd_respond_static_json(request, connection, MHD_HTTP_OK,
                                   "{\"status\":\"ready\"}");
}

enum MHD_Result httpd_handle_metrics(httpd_request_t *request,
                                     struct MHD_Connection *connection) {
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
