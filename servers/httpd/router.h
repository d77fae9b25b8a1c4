/*
 * Route table of audiopipe-httpd and the pure path matcher. Matching
 * touches no server state, so the fuzzer and the OpenAPI test see the same
 * table the server dispatches on.
 */
#ifndef HTTPD_ROUTER_H
#define HTTPD_ROUTER_H

#include <stddef.h>

typedef enum httpd_route_id {
  HTTPD_ROUTE_NONE = 0,
  HTTPD_ROUTE_HEALTHZ,
  HTTPD_ROUTE_READYZ,
  HTTPD_ROUTE_METRICS,
  HTTPD_ROUTE_UPLOAD_CREATE,
  HTTPD_ROUTE_UPLOAD_COMPLETE,
  HTTPD_ROUTE_ASSET_LIST,
  HTTPD_ROUTE_ASSET_GET,
  HTTPD_ROUTE_ASSET_DELETE,
  HTTPD_ROUTE_ASSET_WAVEFORM,
  HTTPD_ROUTE_ASSET_RENDITION,
  HTTPD_ROUTE_JOB_GET,
  HTTPD_ROUTE_JOB_EVENTS,
  HTTPD_ROUTE_OBJECT_PUT,
  HTTPD_ROUTE_OBJECT_GET,
  HTTPD_ROUTE_UPLOAD_PART_PRESIGN,
  HTTPD_ROUTE_UPLOAD_PARTS_LIST,
  HTTPD_ROUTE_UPLOAD_ABORT,
  HTTPD_ROUTE_OBJECT_POST,
  HTTPD_ROUTE_COUNT
} httpd_route_id_t;

/* How a route treats the request body and credentials. */
enum {
  HTTPD_ROUTE_AUTH = 1u << 0,        /* needs Authorization: Bearer */
  HTTPD_ROUTE_JSON_BODY = 1u << 1,   /* body read whole, size-limited */
  HTTPD_ROUTE_STREAM_BODY = 1u << 2, /* body streamed to the handler */
  HTTPD_ROUTE_SIGNED = 1u << 3       /* authorised by a presigned URL */
};

typedef struct httpd_route {
  httpd_route_id_t id;
  const char *method;
  const char *template; /* "/v1/assets/{id}"; {key} takes the rest */
  unsigned flags;
} httpd_route_t;

/* Longest path parameter kept, NUL included; object keys are the
 * longest. */
#define HTTPD_PARAM_SIZE 520

typedef struct httpd_route_match {
  const httpd_route_t *route;  /* NULL when nothing matched */
  char id[HTTPD_PARAM_SIZE];   /* {id} */
  char name[HTTPD_PARAM_SIZE]; /* {name} */
  char key[HTTPD_PARAM_SIZE];  /* {key} */
  /* When the path matched but the method did not: the allowed methods,
   * comma-separated, for the Allow header. */
  char allowed[64];
} httpd_route_match_t;

/* Returns the route table and stores its length in `count`. */
const httpd_route_t *httpd_routes(size_t *count);

/*
 * Matches `method` and `path` (no query string; percent-escapes are not
 * decoded, because no parameter of this API needs them). Returns 1 and
 * fills `match` when a route matches; returns 0 with match->route NULL
 * and match->allowed set when only the path matched (405), or with
 * match->allowed empty when nothing did (404). A parameter longer than
 * HTTPD_PARAM_SIZE - 1 bytes does not match.
 */
int httpd_route_match(const char *method, const char *path,
                      httpd_route_match_t *match);

#endif
