/*
 * The route table and the segment-by-segment path matcher.
 */
#include <string.h>

#include "router.h"

static const httpd_route_t routes[] = {
    {HTTPD_ROUTE_HEALTHZ, "GET", "/healthz", 0},
    {HTTPD_ROUTE_READYZ, "GET", "/readyz", 0},
    {HTTPD_ROUTE_METRICS, "GET", "/metrics", 0},
    {HTTPD_ROUTE_UPLOAD_CREATE, "POST", "/v1/uploads",
     HTTPD_ROUTE_AUTH | HTTPD_ROUTE_JSON_BODY},
    {HTTPD_ROUTE_UPLOAD_COMPLETE, "POST", "/v1/uploads/{id}/complete",
     HTTPD_ROUTE_AUTH | HTTPD_ROUTE_JSON_BODY},
    {HTTPD_ROUTE_ASSET_LIST, "GET", "/v1/assets", HTTPD_ROUTE_AUTH},
    {HTTPD_ROUTE_ASSET_GET, "GET", "/v1/assets/{id}", HTTPD_ROUTE_AUTH},
    {HTTPD_ROUTE_ASSET_DELETE, "DELETE", "/v1/assets/{id}", HTTPD_ROUTE_AUTH},
    {HTTPD_ROUTE_ASSET_WAVEFORM, "GET", "/v1/assets/{id}/waveform",
     HTTPD_ROUTE_AUTH},
    {HTTPD_ROUTE_ASSET_RENDITION, "GET", "/v1/assets/{id}/renditions/{name}",
     HTTPD_ROUTE_AUTH},
    {HTTPD_ROUTE_JOB_GET, "GET", "/v1/jobs/{id}", HTTPD_ROUTE_AUTH},
    {HTTPD_ROUTE_JOB_EVENTS, "GET", "/v1/jobs/{id}/events", HTTPD_ROUTE_AUTH},
    {HTTPD_ROUTE_OBJECT_PUT, "PUT", "/v1/objects/{key}",
     HTTPD_ROUTE_SIGNED | HTTPD_ROUTE_STREAM_BODY},
    {HTTPD_ROUTE_OBJECT_GET, "GET", "/v1/objects/{key}", HTTPD_ROUTE_SIGNED},
    /* Multipart uploads; {name} is the part number. */
    {HTTPD_ROUTE_UPLOAD_PART_PRESIGN, "POST", "/v1/uploads/{id}/parts/{name}",
     HTTPD_ROUTE_AUTH},
    {HTTPD_ROUTE_UPLOAD_PARTS_LIST, "GET", "/v1/uploads/{id}/parts",
     HTTPD_ROUTE_AUTH},
    {HTTPD_ROUTE_UPLOAD_ABORT, "DELETE", "/v1/uploads/{id}", HTTPD_ROUTE_AUTH},
    /* The file store's form POST, authorised by its signed policy. */
    {HTTPD_ROUTE_OBJECT_POST, "POST", "/v1/objects",
     HTTPD_ROUTE_SIGNED | HTTPD_ROUTE_STREAM_BODY},
};

const httpd_route_t *httpd_routes(size_t *count) {
  *count = sizeof routes / sizeof routes[0];
  return routes;
}

/* Copies one path segment (up to '/' or the end) into `out`. Returns the
 * segment length, or 0 when it is empty or does not fit. */
static size_t copy_segment(const char *path, char *out, size_t out_size,
                           int rest_of_path) {
  size_t length = rest_of_path ? strlen(path) : strcspn(path, "/");
  if (length == 0 || length >= out_size) {
    return 0;
  }
  memcpy(out, path, length);
  out[length] = '\0';
  return length;
}

/* Matches `path` against one template, filling the parameters. */
static int path_matches(const char *template, const char *path,
                        httpd_route_match_t *match) {
  const char *t = template;
  const char *p = path;
  while (*t) {
    if (*t == '{') {
      const char *close = strchr(t, '}');
      if (!close) {
        return 0;
      }
      size_t name_length = (size_t)(close - t - 1);
      char *target = NULL;
      int rest = 0;
      if (name_length == 2 && strncmp(t + 1, "id", 2) == 0) {
        target = match->id;
      } else if (name_length == 4 && strncmp(t + 1, "name", 4) == 0) {
        target = match->name;
      } else if (name_length == 3 && strncmp(t + 1, "key", 3) == 0) {
        target = match->key;
        rest = 1;
      } else {
        return 0;
      }
      size_t length = copy_segment(p, target, HTTPD_PARAM_SIZE, rest);
      if (length == 0) {
        return 0;
      }
      p += length;
      t = close + 1;
      continue;
    }
    if (*t != *p) {
      return 0;
    }
    t++;
    p++;
  }
  return *p == '\0';
}

int httpd_route_match(const char *method, const char *path,
                      httpd_route_match_t *match) {
  match->route = NULL;
  match->allowed[0] = '\0';
  match->id[0] = '\0';
  match->name[0] = '\0';
  match->key[0] = '\0';
  if (!method || !path) {
    return 0;
  }

  size_t allowed_length = 0;
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    /* Parameters are written into `match` directly; a failed template
     * may leave some behind, so they are cleared before each try. */
    match->id[0] = '\0';
    match->name[0] = '\0';
    match->key[0] = '\0';
    if (!path_matches(routes[i].template, path, match)) {
      continue;
    }
    if (strcmp(routes[i].method, method) == 0) {
      match->route = &routes[i];
      return 1;
    }
    size_t method_length = strlen(routes[i].method);
    if (allowed_length + method_length + 2 < sizeof match->allowed) {
      if (allowed_length > 0) {
        memcpy(match->allowed + allowed_length, ", ", 2);
        allowed_length += 2;
      }
      memcpy(match->allowed + allowed_length, routes[i].method, method_length);
      allowed_length += method_length;
      match->allowed[allowed_length] = '\0';
    }
  }
  return 0;
}
