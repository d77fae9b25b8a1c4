/*
 * The state audiopipe-httpd shares across its files: the server (backends,
 * settings, metrics) and one request in flight, plus the functions the
 * handlers call to respond.
 *
 * Threading: libmicrohttpd runs a pool of threads, each serving many
 * connections through epoll, so no handler may block for long on a
 * client. A request is served by one pool thread at a time. The server
 * struct is written only before the daemon starts, except for the atomic
 * fields.
 */
#ifndef HTTPD_SERVER_H
#define HTTPD_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include <microhttpd.h>

#include <audiopipe/config.h>
#include <audiopipe/context.h>
#include <audiopipe/error.h>
#include <audiopipe/metrics.h>
#include <audiopipe/storage.h>
#include <audiopipe/upload.h>

#include "request_parse.h"
#include "router.h"

typedef struct httpd_keys httpd_keys_t;
typedef struct httpd_rate_limiter httpd_rate_limiter_t;
typedef struct httpd_cors httpd_cors_t;
typedef struct httpd_sse_hub httpd_sse_hub_t;
typedef struct httpd_sse_stream httpd_sse_stream_t;

/* Settings read from the configuration and the command line. */
typedef struct httpd_settings {
  char listen_host[64];
  uint16_t listen_port;
  unsigned threads;
  unsigned max_connections;
  unsigned connection_timeout_s;
  int64_t max_body_bytes;
  int64_t drain_timeout_ms;
  int64_t drain_grace_ms;
  int64_t heartbeat_ms;
  int64_t sse_poll_ms;
  unsigned sse_max_streams;
  double rate_limit; /* requests per second per key; 0 disables */
  double rate_burst; /* bucket size */
  int64_t upload_max_bytes;
} httpd_settings_t;

typedef struct httpd_server {
  httpd_settings_t settings;
  ap_config_t *config;
  ap_context_t *context;
  ap_object_store_t *store; /* owned by the context */
  httpd_keys_t *keys;
  httpd_rate_limiter_t *rate_limiter;
  httpd_cors_t *cors;
  httpd_sse_hub_t *sse;
  struct MHD_Daemon *daemon;
  /* The listening socket that MHD_quiesce_daemon returned. The daemon's
   * threads may still use it until MHD_stop_daemon returns (libmicrohttpd
   * 0.9.75, MHD_quiesce_daemon's documentation), so it is closed then. */
  MHD_socket quiesced_listener;
  int has_quiesced_listener;

  atomic_int draining;   /* set on SIGTERM: healthz 503, streams end */
  atomic_long in_flight; /* requests between start and completion */

  ap_metric_t *requests_total;
  ap_metric_t *request_duration;
  ap_metric_series_t *duration_by_route[HTTPD_ROUTE_COUNT];
  ap_metric_series_t *in_flight_gauge;
  ap_metric_series_t *sse_streams_gauge;
  ap_metric_series_t *rate_limited_total;
  ap_metric_series_t *auth_failures_total;
} httpd_server_t;

/* One request, from its first line to its completion. The large buffers
 * come last: on_uri zeroes only the fields before `query_error`, because
 * clearing 10 KB per request showed up in profiles of /healthz. */
typedef struct httpd_request {
  httpd_server_t *server;
  char request_id[65];
  char method[16];
  int query_valid;            /* 0 when the query string was rejected */
  const char *route_template; /* for logs and metrics, never the raw path */
  const char *owner;          /* set by authentication, owned by the keys */
  uint64_t start_ns;
  unsigned status;
  uint64_t bytes_sent;
  int started;   /* the access handler has run once */
  int responded; /* a response was queued */
  int counted;   /* counted in in_flight */

  /* JSON bodies, read whole up to settings.max_body_bytes. */
  char *body;
  size_t body_length;
  size_t body_capacity;

  /* Object PUTs, streamed into the store. */
  void *upload; /* ap_object_upload_t */

  /* Server-sent event streams hold a reference to their stream. */
  httpd_sse_stream_t *stream;
  /* Object GETs count streamed bytes here. */
  _Atomic uint64_t streamed_bytes;

  /* Upload creations run through ap_upload_create_async while the
   * connection is suspended (handlers_uploads.c); the callback stores the
   * outcome before it resumes the connection. */
  int deferred; /* 1 once the creation is under way */
  struct MHD_Connection *connection;
  ap_upload_ticket_t *deferred_ticket; /* the outcome on success */
  ap_error_t *deferred_error;          /* the failure, free */

  /* Written before they are read; not zeroed by on_uri. */
  ap_error_t query_error;    /* valid when query_valid is 0 */
  httpd_route_match_t match; /* route is set to NULL by on_uri */
  char object_key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  char path[HTTPD_QUERY_MAX_BYTES];
  httpd_query_t query;
} httpd_request_t;

/* ---- Responses (response.c) ------------------------------------------ */

/* Returns the HTTP status for an ap_error_code_t (see docs/http-api.md). */
unsigned httpd_status_for_code(int code);

/* Registers audiopipe_uploads_{created,completed,rejected}_total and
 * audiopipe_backend_errors_total (handlers_uploads.c); call once at
 * start-up. */
ap_status_t httpd_upload_metrics_register(ap_error_t *error);

/*
 * Lets POST /v1/uploads run creations with ap_upload_create_async while
 * the connection is suspended (handlers_uploads.c). Stop waits until
 * every creation under way has resumed its connection, and creations
 * after it run on the handler's thread. Call stop before MHD_stop_daemon,
 * since a creation resumes its suspended connection when it ends.
 */
void httpd_upload_creations_start(void);
void httpd_upload_creations_stop(void);

/* Counts one 5xx failure caused by a backend, labelled by error domain. */
void httpd_count_backend_error(const ap_error_t *error);

/*
 * Queues `response` with `status`, adding the headers every response
 * carries (X-Request-Id, CORS, Connection: close while draining), and
 * destroys the caller's reference. Records status and size for the
 * access log. `response` NULL (an allocation failed) closes the
 * connection.
 */
enum MHD_Result httpd_queue(httpd_request_t *request,
                            struct MHD_Connection *connection, unsigned status,
                            struct MHD_Response *response);

/* Answers with a copy of `json` (`application/json`). */
enum MHD_Result httpd_respond_json(httpd_request_t *request,
                                   struct MHD_Connection *connection,
                                   unsigned status, const char *json);

/*
 * Answers {"error":{"code":"<name>","message":"..."}}. `status` 0 takes
 * the status from the code's table entry.
 */
enum MHD_Result
httpd_respond_error(httpd_request_t *request, struct MHD_Connection *connection,
                    unsigned status, int code, const char *format, ...)
    __attribute__((format(printf, 5, 6)));

/* Answers with an ap_error_t from the library, logging it when it is not
 * a plain rejection of client input. */
enum MHD_Result httpd_respond_ap_error(httpd_request_t *request,
                                       struct MHD_Connection *connection,
                                       const ap_error_t *error);

/* Answers 429 with Retry-After: `retry_after_s`. */
enum MHD_Result httpd_respond_rate_limited(httpd_request_t *request,
                                           struct MHD_Connection *connection,
                                           unsigned retry_after_s);

/* Answers 405 with the Allow header from request->match.allowed. */
enum MHD_Result
httpd_respond_method_not_allowed(httpd_request_t *request,
                                 struct MHD_Connection *connection);

/* Answers a static JSON text without copying it. */
enum MHD_Result httpd_respond_static_json(httpd_request_t *request,
                                          struct MHD_Connection *connection,
                                          unsigned status, const char *json);

/* Returns a request header, or NULL. */
const char *httpd_header(struct MHD_Connection *connection, const char *name);

/* ---- Handlers (handlers_*.c, sse.c) ------------------------------------ */

typedef enum MHD_Result (*httpd_handler_fn)(httpd_request_t *request,
                                            struct MHD_Connection *connection);

enum MHD_Result httpd_handle_healthz(httpd_request_t *request,
                                     struct MHD_Connection *connection);
enum MHD_Result httpd_handle_readyz(httpd_request_t *request,
                                    struct MHD_Connection *connection);
enum MHD_Result httpd_handle_metrics(httpd_request_t *request,
                                     struct MHD_Connection *connection);
enum MHD_Result httpd_handle_upload_create(httpd_request_t *request,
                                           struct MHD_Connection *connection);
enum MHD_Result httpd_handle_upload_complete(httpd_request_t *request,
                                             struct MHD_Connection *connection);
enum MHD_Result httpd_handle_asset_list(httpd_request_t *request,
                                        struct MHD_Connection *connection);
enum MHD_Result httpd_handle_asset_get(httpd_request_t *request,
                                       struct MHD_Connection *connection);
enum MHD_Result httpd_handle_asset_delete(httpd_request_t *request,
                                          struct MHD_Connection *connection);
enum MHD_Result httpd_handle_asset_waveform(httpd_request_t *request,
                                            struct MHD_Connection *connection);
enum MHD_Result httpd_handle_asset_rendition(httpd_request_t *request,
                                             struct MHD_Connection *connection);
enum MHD_Result httpd_handle_job_get(httpd_request_t *request,
                                     struct MHD_Connection *connection);
enum MHD_Result httpd_handle_job_events(httpd_request_t *request,
                                        struct MHD_Connection *connection);
enum MHD_Result httpd_handle_object_get(httpd_request_t *request,
                                        struct MHD_Connection *connection);

/* Multipart uploads (handlers_multipart.c). */
enum MHD_Result
httpd_handle_upload_part_presign(httpd_request_t *request,
                                 struct MHD_Connection *connection);
enum MHD_Result
httpd_handle_upload_parts_list(httpd_request_t *request,
                               struct MHD_Connection *connection);
enum MHD_Result httpd_handle_upload_abort(httpd_request_t *request,
                                          struct MHD_Connection *connection);

/*
 * Reads the "parts" list of a POST /v1/uploads/{id}/complete body into
 * `*parts` (free it) and `*count`. A body without "parts" stores NULL and
 * returns AP_OK, for httpd_complete_body_parse to check. Errors name the
 * item at fault ("parts[2].etag: ...").
 */
ap_status_t httpd_complete_parts_parse(const char *body, size_t length,
                                       ap_upload_part_t **parts, size_t *count,
                                       ap_error_t *error);

/*
 * The object PUT is streamed: called on every body chunk. Returns MHD_YES
 * to keep reading; answers once the body is complete or rejected.
 */
enum MHD_Result httpd_handle_object_put(httpd_request_t *request,
                                        struct MHD_Connection *connection,
                                        const char *data, size_t *size);

/* Verifies a presigned PUT and opens its upload, on the first call, so a
 * rejected PUT is answered before the client sends its body. */
enum MHD_Result httpd_object_put_begin(httpd_request_t *request,
                                       struct MHD_Connection *connection);

/* Releases what an unfinished object PUT holds (abandons the upload). */
void httpd_object_put_release(httpd_request_t *request);

/* Returns the current time in milliseconds on the monotonic clock. */
int64_t httpd_monotonic_ms(void);

#endif
