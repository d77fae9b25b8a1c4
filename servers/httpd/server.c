/*
 * The libmicrohttpd glue: request lifecycle (start, authentication, body
 * reading, dispatch, completion), access logs and request metrics, and
 * starting and stopping the daemon.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <audiopipe/log.h>

#include "auth.h"
#include "cors.h"
#include "httpd.h"
#include "rate_limit.h"
#include "server.h"
#include "sse.h"

/* Per-connection record of the request that started but has not
 * completed, so a connection closed mid-headers frees it. */
typedef struct connection_slot {
  httpd_request_t *pending;
} connection_slot_t;

static const httpd_handler_fn handlers[HTTPD_ROUTE_COUNT] = {
    [HTTPD_ROUTE_HEALTHZ] = httpd_handle_healthz,
    [HTTPD_ROUTE_READYZ] = httpd_handle_readyz,
    [HTTPD_ROUTE_METRICS] = httpd_handle_metrics,
    [HTTPD_ROUTE_UPLOAD_CREATE] = httpd_handle_upload_create,
    [HTTPD_ROUTE_UPLOAD_COMPLETE] = httpd_handle_upload_complete,
    [HTTPD_ROUTE_ASSET_LIST] = httpd_handle_asset_list,
    [HTTPD_ROUTE_ASSET_GET] = httpd_handle_asset_get,
    [HTTPD_ROUTE_ASSET_DELETE] = httpd_handle_asset_delete,
    [HTTPD_ROUTE_ASSET_WAVEFORM] = httpd_handle_asset_waveform,
    [HTTPD_ROUTE_ASSET_RENDITION] = httpd_handle_asset_rendition,
    [HTTPD_ROUTE_JOB_GET] = httpd_handle_job_get,
    [HTTPD_ROUTE_JOB_EVENTS] = httpd_handle_job_events,
    [HTTPD_ROUTE_OBJECT_GET] = httpd_handle_object_get,
    [HTTPD_ROUTE_UPLOAD_PART_PRESIGN] = httpd_handle_upload_part_presign,
    [HTTPD_ROUTE_UPLOAD_PARTS_LIST] = httpd_handle_upload_parts_list,
    [HTTPD_ROUTE_UPLOAD_ABORT] = httpd_handle_upload_abort,
};

/* Memory pool of each connection: request line, headers and read buffer.
 * libmicrohttpd 0.9.75 clears the whole pool between keep-alive requests,
 * so the default 32 KiB cost a sixth of the CPU time of /healthz. Signed
 * URLs and API headers fit in well under 16 KiB. */
#define CONNECTION_MEMORY_BYTES (16 * 1024)

/* Route label for requests that matched no route. */
static const char unmatched_route[] = "unmatched";

static uint64_t monotonic_ns(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

int64_t httpd_monotonic_ms(void) {
  return (int64_t)(monotonic_ns() / 1000000u);
}

/* Request ids: a random per-process prefix and a counter, unique within
 * a run and unguessable across restarts. */
static uint32_t request_id_prefix;
static _Atomic uint64_t request_id_counter;

static void generate_request_id(char out[65]) {
  uint64_t number = atomic_fetch_add(&request_id_counter, 1);
  snprintf(out, 65, "%08" PRIx32 "%012" PRIx64, request_id_prefix, number);
}

static connection_slot_t *slot_of(struct MHD_Connection *connection) {
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return info ? info->socket_context : NULL;
}

static void *on_uri(void *cls, const char *uri,
                    struct MHD_Connection *connection) {
  httpd_server_t *server = cls;
  httpd_request_t *request = malloc(sizeof *request);
  if (!request) {
    return NULL;
  }
  memset(request, 0, offsetof(httpd_request_t, query_error));
  request->match.route = NULL;
  request->match.allowed[0] = '\0';
  request->object_key[0] = '\0';
  request->server = server;
  request->start_ns = monotonic_ns();
  request->route_template = unmatched_route;

  /* The raw URI is split here, before libmicrohttpd decodes it, so the
   * query parser the fuzzer exercises is the one that serves requests. */
  size_t path_length = strcspn(uri, "?");
  request->query_valid = 1;
  if (path_length >= sizeof request->path) {
    request->query_valid = 0;
    httpd_error_set(&request->query_error, AP_ERR_INVALID_ARGUMENT,
                    "path: longer than %zu bytes", sizeof request->path - 1);
  } else {
    memcpy(request->path, uri, path_length);
    request->path[path_length] = '\0';
    const char *query = uri[path_length] == '?' ? uri + path_length + 1 : "";
    if (httpd_query_parse(query, strlen(query), &request->query,
                          &request->query_error) != AP_OK) {
      request->query_valid = 0;
    }
  }

  connection_slot_t *slot = slot_of(connection);
  if (slot) {
    slot->pending = request;
  }
  request->counted = 1;
  atomic_fetch_add(&server->in_flight, 1);
  ap_metrics_add(server->in_flight_gauge, 1);
  return request;
}

static void log_access(httpd_request_t *request, const char *termination) {
  httpd_server_t *server = request->server;
  double duration_s = (double)(monotonic_ns() - request->start_ns) / 1e9;
  uint64_t bytes = request->bytes_sent + atomic_load(&request->streamed_bytes);
  if (request->stream) {
    bytes += httpd_sse_stream_bytes(request->stream);
  }

  char status_text[8];
  snprintf(status_text, sizeof status_text, "%u", request->status);
  const char *method = request->method[0] ? request->method : "-";
  /* NOTE: the series lookup takes the family's mutex once per request;
   * at tens of thousands of requests per second that lock may contend,
   * and caching series per route and status would avoid it. */
  const char *labels[] = {request->route_template, method, status_text};
  ap_metrics_add(ap_metrics_series(server->requests_total, labels), 1);
  const httpd_route_t *route = request->match.route;
  ap_metrics_observe(server->duration_by_route[route ? route->id : 0],
                     duration_s);

  /* The route template replaces the path, so ids, object keys and signed
   * query strings never reach the log. */
  ap_log_field_t fields[] = {AP_LOG_STRING("method", method),
                             AP_LOG_STRING("route", request->route_template),
                             AP_LOG_INT("status", request->status),
                             AP_LOG_INT("bytes", bytes),
                             AP_LOG_DOUBLE("duration_s", duration_s),
                             AP_LOG_STRING("owner", request->owner),
                             AP_LOG_STRING("termination", termination)};
  size_t count = sizeof fields / sizeof fields[0];
  if (!termination) {
    count--;
  }
  ap_log_write(AP_LOG_INFO, "http_request",
               request->request_id[0] ? request->request_id : NULL, NULL,
               fields, count, NULL);
}

static void request_finish(httpd_request_t *request, const char *termination) {
  httpd_server_t *server = request->server;
  if (request->started) {
    log_access(request, termination);
  }
  httpd_object_put_release(request);
  if (request->stream) {
    httpd_sse_stream_release(request->stream);
  }
  free(request->body);
  /* Left when the client closed before a deferred creation was sent. */
  ap_upload_ticket_free(request->deferred_ticket);
  free(request->deferred_error);
  if (request->counted) {
    atomic_fetch_sub(&server->in_flight, 1);
    ap_metrics_add(server->in_flight_gauge, -1);
  }
  free(request);
}

static void on_completed(void *cls, struct MHD_Connection *connection,
                         void **req_cls, enum MHD_RequestTerminationCode code) {
  (void)cls;
  httpd_request_t *request = *req_cls;
  if (!request) {
    return;
  }
  *req_cls = NULL;
  connection_slot_t *slot = slot_of(connection);
  if (slot && slot->pending == request) {
    slot->pending = NULL;
  }

  const char *termination = NULL;
  switch (code) {
  case MHD_REQUEST_TERMINATED_COMPLETED_OK:
    break;
  case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
    termination = "timeout";
    break;
  case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
    termination = "client_closed";
    break;
  case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
    termination = "shutdown";
    break;
  default:
    termination = "error";
    break;
  }
  request_finish(request, termination);
}

static void on_connection(void *cls, struct MHD_Connection *connection,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  (void)cls;
  (void)connection;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    *socket_context = calloc(1, sizeof(connection_slot_t));
    return;
  }
  connection_slot_t *slot = *socket_context;
  if (slot && slot->pending) {
    request_finish(slot->pending, "closed_before_request");
  }
  free(slot);
  *socket_context = NULL;
}

/* Responds to a CORS preflight. */
static enum MHD_Result answer_preflight(httpd_request_t *request,
                                        struct MHD_Connection *connection) {
  request->route_template = "preflight";
  const char *origin = httpd_header(connection, "Origin");
  const char *wanted =
      httpd_header(connection, "Access-Control-Request-Method");
  if (!httpd_cors_allows(request->server->cors, origin) || !wanted) {
    return httpd_respond_error(request, connection, MHD_HTTP_FORBIDDEN,
                               AP_ERR_PERMISSION,
                               "origin is not on http.cors_origins, or the "
                               "preflight lacks "
                               "Access-Control-Request-Method");
  }
  struct MHD_Response *response =
      MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (!response) {
    return MHD_NO;
  }
  httpd_cors_decorate_preflight(response);
  return httpd_queue(request, connection, MHD_HTTP_NO_CONTENT, response);
}

/* Authenticates the bearer key and applies its rate limit. Returns 1 when
 * the request may go on; otherwise the response is queued. */
static int authenticate(httpd_request_t *request,
                        struct MHD_Connection *connection,
                        enum MHD_Result *result) {
  httpd_server_t *server = request->server;
  const char *token = NULL;
  size_t length = 0;
  const char *header = httpd_header(connection, MHD_HTTP_HEADER_AUTHORIZATION);
  if (httpd_bearer_parse(header, &token, &length)) {
    request->owner = httpd_keys_lookup(server->keys, token, length);
  }
  if (!request->owner) {
    ap_metrics_add(server->auth_failures_total, 1);
    *result = httpd_respond_error(request, connection, MHD_HTTP_UNAUTHORIZED,
                                  AP_ERR_PERMISSION,
                                  "missing or unknown API key: send "
                                  "Authorization: Bearer <key>");
    return 0;
  }

  unsigned retry_after_s = 0;
  if (!httpd_rate_limiter_admit(server->rate_limiter, request->owner,
                                httpd_monotonic_ms(), &retry_after_s)) {
    ap_metrics_add(server->rate_limited_total, 1);
    *result = httpd_respond_rate_limited(request, connection, retry_after_s);
    return 0;
  }
  return 1;
}

/* The first call for a request: headers are in, the body is not. */
static enum MHD_Result begin_request(httpd_request_t *request,
                                     struct MHD_Connection *connection,
                                     const char *method) {
  httpd_server_t *server = request->server;
  request->started = 1;
  snprintf(request->method, sizeof request->method, "%s", method);
  const char *client_id = httpd_header(connection, "X-Request-Id");
  if (httpd_request_id_is_valid(client_id)) {
    snprintf(request->request_id, sizeof request->request_id, "%s", client_id);
  } else {
    generate_request_id(request->request_id);
  }

  if (!request->query_valid) {
    return httpd_respond_ap_error(request, connection, &request->query_error);
  }
  if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0) {
    return answer_preflight(request, connection);
  }

  if (!httpd_route_match(method, request->path, &request->match)) {
    if (request->match.allowed[0]) {
      return httpd_respond_method_not_allowed(request, connection);
    }
    return httpd_respond_error(request, connection, MHD_HTTP_NOT_FOUND,
                               AP_ERR_NOT_FOUND, "no route matches %s %.200s",
                               method, request->path);
  }
  const httpd_route_t *route = request->match.route;
  request->route_template = route->template;

  enum MHD_Result result = MHD_YES;
  if ((route->flags & HTTPD_ROUTE_AUTH) &&
      !authenticate(request, connection, &result)) {
    return result;
  }

  if (route->flags & HTTPD_ROUTE_STREAM_BODY) {
    return httpd_object_put_begin(request, connection);
  }
  if (route->flags & HTTPD_ROUTE_JSON_BODY) {
    const char *length_header =
        httpd_header(connection, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length_header &&
        strtoll(length_header, NULL, 10) > server->settings.max_body_bytes) {
      return httpd_respond_error(
          request, connection, MHD_HTTP_CONTENT_TOO_LARGE,
          AP_ERR_INVALID_ARGUMENT,
          "body: %s bytes is over http.max_body_bytes (%lld)", length_header,
          (long long)server->settings.max_body_bytes);
    }
  }
  return MHD_YES;
}

/* Appends a chunk of a JSON body, or responds 413 past the limit. */
static enum MHD_Result append_body(httpd_request_t *request,
                                   struct MHD_Connection *connection,
                                   const char *data, size_t size) {
  size_t limit = (size_t)request->server->settings.max_body_bytes;
  if (request->body_length + size > limit) {
    return httpd_respond_error(request, connection, MHD_HTTP_CONTENT_TOO_LARGE,
                               AP_ERR_INVALID_ARGUMENT,
                               "body: over http.max_body_bytes (%zu bytes)",
                               limit);
  }
  if (request->body_length + size + 1 > request->body_capacity) {
    size_t capacity = request->body_capacity ? request->body_capacity : 1024;
    while (capacity < request->body_length + size + 1) {
      capacity *= 2;
    }
    char *grown = realloc(request->body, capacity);
    if (!grown) {
      return httpd_respond_error(request, connection, 0, AP_ERR_NO_MEMORY,
                                 "out of memory reading the body");
    }
    request->body = grown;
    request->body_capacity = capacity;
  }
  memcpy(request->body + request->body_length, data, size);
  request->body_length += size;
  request->body[request->body_length] = '\0';
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
  (void)cls;
  (void)url;
  (void)version;
  httpd_request_t *request = *req_cls;
  if (!request) {
    return MHD_NO;
  }
  if (request->responded) {
    /* Responded early (an error before the body ended): drop the rest. */
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (!request->started) {
    return begin_request(request, connection, method);
  }

  const httpd_route_t *route = request->match.route;
  if (route->flags & HTTPD_ROUTE_STREAM_BODY) {
    return httpd_handle_object_put(request, connection, upload_data,
                                   upload_data_size);
  }
  if (*upload_data_size > 0) {
    size_t size = *upload_data_size;
    *upload_data_size = 0;
    if (route->flags & HTTPD_ROUTE_JSON_BODY) {
      return append_body(request, connection, upload_data, size);
    }
    /* Routes without a body ignore one. */
    return MHD_YES;
  }
  return handlers[route->id](request, connection);
}

static void on_daemon_error(void *cls, const char *format, va_list arguments) {
  (void)cls;
  char message[512];
  vsnprintf(message, sizeof message, format, arguments);
  size_t length = strlen(message);
  while (length > 0 && message[length - 1] == '\n') {
    message[--length] = '\0';
  }
  ap_log_write(AP_LOG_WARN, "http_daemon_error", NULL, NULL, NULL, 0, "%s",
               message);
}

static ap_status_t register_metrics(httpd_server_t *server, ap_error_t *error) {
  ap_metrics_t *registry = ap_metrics_default();
  if (!registry) {
    return httpd_error_set(error, AP_ERR_NO_MEMORY, "out of memory");
  }
  const char *request_labels[] = {"route", "method", "status"};
  const char *route_label[] = {"route"};
  ap_metric_t *in_flight = NULL;
  ap_metric_t *streams = NULL;
  ap_metric_t *limited = NULL;
  ap_metric_t *auth = NULL;
  ap_status_t status = ap_metrics_counter(
      registry, "audiopipe_http_requests_total",
      "HTTP requests served, by route template, method and status.",
      request_labels, 3, &server->requests_total, error);
  if (status == AP_OK) {
    status = ap_metrics_histogram(
        registry, "audiopipe_http_request_duration_seconds",
        "Time from the request line to the end of the response.", route_label,
        1, NULL, 0, &server->request_duration, error);
  }
  if (status == AP_OK) {
    status = ap_metrics_gauge(registry, "audiopipe_http_in_flight_requests",
                              "Requests started and not yet completed.", NULL,
                              0, &in_flight, error);
  }
  if (status == AP_OK) {
    status = ap_metrics_gauge(registry, "audiopipe_http_sse_streams",
                              "Open server-sent event streams.", NULL, 0,
                              &streams, error);
  }
  if (status == AP_OK) {
    status = ap_metrics_counter(registry, "audiopipe_http_rate_limited_total",
                                "Requests answered 429 by the per-key rate "
                                "limit.",
                                NULL, 0, &limited, error);
  }
  if (status == AP_OK) {
    status = ap_metrics_counter(registry, "audiopipe_http_auth_failures_total",
                                "Requests with a missing or unknown API key.",
                                NULL, 0, &auth, error);
  }
  if (status == AP_OK) {
    status = httpd_upload_metrics_register(error);
  }
  if (status != AP_OK) {
    return status;
  }
  server->in_flight_gauge = ap_metrics_series(in_flight, NULL);
  server->sse_streams_gauge = ap_metrics_series(streams, NULL);
  server->rate_limited_total = ap_metrics_series(limited, NULL);
  server->auth_failures_total = ap_metrics_series(auth, NULL);

  size_t count = 0;
  const httpd_route_t *routes = httpd_routes(&count);
  const char *unmatched[] = {unmatched_route};
  server->duration_by_route[0] =
      ap_metrics_series(server->request_duration, unmatched);
  for (size_t i = 0; i < count; i++) {
    const char *values[] = {routes[i].template};
    server->duration_by_route[routes[i].id] =
        ap_metrics_series(server->request_duration, values);
  }
  return AP_OK;
}

ap_status_t httpd_server_start(httpd_server_t *server, ap_error_t *error) {
  if (getrandom(&request_id_prefix, sizeof request_id_prefix, 0) !=
      sizeof request_id_prefix) {
    request_id_prefix = (uint32_t)time(NULL);
  }
  ap_status_t status = register_metrics(server, error);
  if (status == AP_OK) {
    httpd_upload_creations_start();
  }
  if (status != AP_OK) {
    return status;
  }

  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons(server->settings.listen_port);
  if (inet_pton(AF_INET, server->settings.listen_host, &address.sin_addr) !=
      1) {
    return httpd_error_set(error, AP_ERR_INVALID_CONFIG,
                           "--listen: \"%s\" is not an IPv4 address",
                           server->settings.listen_host);
  }

  /* A thread pool over epoll serves many keep-alive connections per
   * thread; server-sent event streams suspend their connection between
   * events, so hundreds of them hold no thread. */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  server->daemon = MHD_start_daemon(
      flags, server->settings.listen_port, NULL, NULL, on_request, server,
      MHD_OPTION_EXTERNAL_LOGGER, on_daemon_error, server, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&address, MHD_OPTION_THREAD_POOL_SIZE,
      server->settings.threads, MHD_OPTION_CONNECTION_LIMIT,
      server->settings.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      server->settings.connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)CONNECTION_MEMORY_BYTES, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
      MHD_OPTION_URI_LOG_CALLBACK, on_uri, server, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, server, MHD_OPTION_NOTIFY_CONNECTION, on_connection, server,
      MHD_OPTION_END);
  if (!server->daemon) {
    httpd_upload_creations_stop();
    return httpd_error_set(error, AP_ERR_UNAVAILABLE,
                           "cannot listen on %s:%u: the port may be in use "
                           "or the address not local",
                           server->settings.listen_host,
                           (unsigned)server->settings.listen_port);
  }
  return AP_OK;
}

void httpd_server_stop_accepting(httpd_server_t *server) {
  if (!server->daemon) {
    return;
  }
  MHD_socket listener = MHD_quiesce_daemon(server->daemon);
  if (listener != MHD_INVALID_SOCKET) {
    /* On Linux, shutting down a listening socket stops it listening, so
     * new connections are refused at once (a proxy then tries the other
     * upstream) while the descriptor stays valid for the daemon. */
    shutdown(listener, SHUT_RDWR);
    server->quiesced_listener = listener;
    server->has_quiesced_listener = 1;
  }
}

void httpd_server_stop(httpd_server_t *server) {
  if (server->daemon) {
    httpd_upload_creations_stop();
    MHD_stop_daemon(server->daemon);
    server->daemon = NULL;
  }
  if (server->has_quiesced_listener) {
    close(server->quiesced_listener);
    server->has_quiesced_listener = 0;
  }
}
