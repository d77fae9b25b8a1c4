/*
 * Building responses: the error-code-to-status table, JSON error bodies and
 * the headers every response carries.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <audiopipe/log.h>

#include "cors.h"
#include "server.h"

unsigned httpd_status_for_code(int code) {
  switch (code) {
  case AP_ERR_INVALID_ARGUMENT:
  case AP_ERR_INVALID_FILENAME:
    return MHD_HTTP_BAD_REQUEST;
  case AP_ERR_PERMISSION:
  case AP_ERR_SIGNATURE:
  case AP_ERR_EXPIRED:
    return MHD_HTTP_FORBIDDEN;
  case AP_ERR_NOT_FOUND:
    return MHD_HTTP_NOT_FOUND;
  case AP_ERR_CANCELLED:
  case AP_ERR_CONFLICT:
  case AP_ERR_UPLOAD_STATE:
  case AP_ERR_OBJECT_MISSING:
  case AP_ERR_LEASE_LOST:
  case AP_ERR_JOB_STATE:
    return MHD_HTTP_CONFLICT;
  case AP_ERR_UPLOAD_TOO_LARGE:
  case AP_ERR_INPUT_TOO_LARGE:
    return MHD_HTTP_CONTENT_TOO_LARGE;
  case AP_ERR_CONTENT_TYPE:
    return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
  case AP_ERR_EMPTY_INPUT:
  case AP_ERR_NOT_AUDIO:
  case AP_ERR_MULTIPART_BODY:
  case AP_ERR_UNSUPPORTED_CODEC:
  case AP_ERR_CHANNELS_UNSUPPORTED:
  case AP_ERR_SAMPLE_RATE_UNSUPPORTED:
  case AP_ERR_DURATION_LIMIT:
  case AP_ERR_DECODE_TIME_LIMIT:
  case AP_ERR_SAMPLE_BUDGET:
  case AP_ERR_CORRUPT_INPUT:
  case AP_ERR_FORMAT_MISMATCH:
  case AP_ERR_SIZE_MISMATCH:
  case AP_ERR_INFECTED:
    return MHD_HTTP_UNPROCESSABLE_CONTENT;
  case AP_ERR_RATE_LIMITED:
    return MHD_HTTP_TOO_MANY_REQUESTS;
  case AP_ERR_UNSUPPORTED:
    return MHD_HTTP_NOT_IMPLEMENTED;
  case AP_ERR_UNAVAILABLE:
  case AP_ERR_NO_MEMORY:
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  case AP_ERR_TIMED_OUT:
    return MHD_HTTP_GATEWAY_TIMEOUT;
  default:
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
}

const char *httpd_header(struct MHD_Connection *connection, const char *name) {
  return MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
}

enum MHD_Result httpd_queue(httpd_request_t *request,
                            struct MHD_Connection *connection, unsigned status,
                            struct MHD_Response *response) {
  if (!response) {
    return MHD_NO;
  }
  MHD_add_response_header(response, "X-Request-Id", request->request_id);
  httpd_cors_decorate(request->server->cors, httpd_header(connection, "Origin"),
                      response);
  if (atomic_load(&request->server->draining)) {
    /* Closing keep-alive connections lets the drain finish. */
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
  }
  request->status = status;
  request->responded = 1;
  enum MHD_Result result = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return result;
}

/* Builds the JSON error body; NULL when out of memory. Free with
 * json_object_put. */
static json_object *error_body(int code, const char *message) {
  json_object *inner = json_object_new_object();
  json_object *outer = json_object_new_object();
  if (!inner || !outer) {
    json_object_put(inner);
    json_object_put(outer);
    return NULL;
  }
  json_object_object_add(inner, "code",
                         json_object_new_string(ap_error_code_name(code)));
  json_object_object_add(inner, "message", json_object_new_string(message));
  json_object_object_add(outer, "error", inner);
  return outer;
}

enum MHD_Result httpd_respond_json(httpd_request_t *request,
                                   struct MHD_Connection *connection,
                                   unsigned status, const char *json) {
  size_t length = strlen(json);
  struct MHD_Response *response = MHD_create_response_from_buffer(
      length, (void *)json, MHD_RESPMEM_MUST_COPY);
  if (!response) {
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  request->bytes_sent = length;
  return httpd_queue(request, connection, status, response);
}

enum MHD_Result httpd_respond_error(httpd_request_t *request,
                                    struct MHD_Connection *connection,
                                    unsigned status, int code,
                                    const char *format, ...) {
  char message[AP_ERROR_MESSAGE_SIZE];
  va_list arguments;
  va_start(arguments, format);
  vsnprintf(message, sizeof message, format, arguments);
  va_end(arguments);

  if (status == 0) {
    status = httpd_status_for_code(code);
  }

  json_object *outer = error_body(code, message);
  if (!outer) {
    return MHD_NO;
  }
  enum MHD_Result result = httpd_respond_json(
      request, connection, status,
      json_object_to_json_string_ext(
          outer, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(outer);
  return result;
}

enum MHD_Result httpd_respond_ap_error(httpd_request_t *request,
                                       struct MHD_Connection *connection,
                                       const ap_error_t *error) {
  unsigned status = httpd_status_for_code((int)error->code);
  if (status >= 500) {
    /* Client mistakes get a response but no log line. Backend faults
     * are logged once here with the ids involved. The message comes from the
     * library, which keeps secrets and file names out of it. */
    ap_log_field_t fields[] = {
        AP_LOG_STRING("route", request->route_template),
        AP_LOG_STRING("code", ap_error_code_name((int)error->code)),
        AP_LOG_STRING("domain", ap_error_domain_name((int)error->domain)),
        AP_LOG_INT("status", status)};
    ap_log_write(AP_LOG_ERROR, "request_failed", request->request_id, NULL,
                 fields, sizeof fields / sizeof fields[0], "%s",
                 error->message);
    httpd_count_backend_error(error);
  }
  return httpd_respond_error(request, connection, status, (int)error->code,
                             "%s", error->message);
}

/* Responds with an error and one extra header. */
static enum MHD_Result
respond_error_with_header(httpd_request_t *request,
                          struct MHD_Connection *connection, unsigned status,
                          int code, const char *message, const char *header,
                          const char *value) {
  json_object *body = error_body(code, message);
  if (!body) {
    return MHD_NO;
  }
  const char *json = json_object_to_json_string_ext(
      body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  size_t length = strlen(json);
  struct MHD_Response *response = MHD_create_response_from_buffer(
      length, (void *)json, MHD_RESPMEM_MUST_COPY);
  json_object_put(body);
  if (!response) {
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  MHD_add_response_header(response, header, value);
  request->bytes_sent = length;
  return httpd_queue(request, connection, status, response);
}

enum MHD_Result httpd_respond_rate_limited(httpd_request_t *request,
                                           struct MHD_Connection *connection,
                                           unsigned retry_after_s) {
  char seconds[16];
  snprintf(seconds, sizeof seconds, "%u", retry_after_s);
  char message[128];
  snprintf(message, sizeof message,
           "rate limit of this API key exceeded: retry after %u s",
           retry_after_s);
  return respond_error_with_header(
      request, connection, MHD_HTTP_TOO_MANY_REQUESTS, AP_ERR_RATE_LIMITED,
      message, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
}

enum MHD_Result
httpd_respond_method_not_allowed(httpd_request_t *request,
                                 struct MHD_Connection *connection) {
  char message[160];
  snprintf(message, sizeof message,
           "method %s is not allowed here; allowed: %s", request->method,
           request->match.allowed);
  return respond_error_with_header(
      request, connection, MHD_HTTP_METHOD_NOT_ALLOWED, AP_ERR_UNSUPPORTED,
      message, MHD_HTTP_HEADER_ALLOW, request->match.allowed);
}

enum MHD_Result httpd_respond_static_json(httpd_request_t *request,
                                          struct MHD_Connection *connection,
                                          unsigned status, const char *json) {
  size_t length = strlen(json);
  struct MHD_Response *response = MHD_create_response_from_buffer(
      length, (void *)json, MHD_RESPMEM_PERSISTENT);
  if (!response) {
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  request->bytes_sent = length;
  return httpd_queue(request, connection, status, response);
}
