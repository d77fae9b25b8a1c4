/*
 * CORS: the allowlist of origins from http.cors_origins, the headers of
 * allowed responses, and responses to preflight requests.
 */
#ifndef HTTPD_CORS_H
#define HTTPD_CORS_H

#include <microhttpd.h>

#include <audiopipe/error.h>

typedef struct httpd_cors httpd_cors_t;

/* Parses a comma-separated list of origins ("" allows none; "*" is not
 * accepted, because responses vary by credentials). */
ap_status_t httpd_cors_new(const char *origins, httpd_cors_t **out,
                           ap_error_t *error);

void httpd_cors_free(httpd_cors_t *cors);

/* Returns 1 when `origin` is on the allowlist. */
int httpd_cors_allows(const httpd_cors_t *cors, const char *origin);

/* Adds Access-Control-Allow-Origin and friends to `response` when the
 * request's Origin is allowed; adds Vary: Origin in every case. */
void httpd_cors_decorate(const httpd_cors_t *cors, const char *origin,
                         struct MHD_Response *response);

/* Adds the preflight headers (methods, headers, max age) to `response`. */
void httpd_cors_decorate_preflight(struct MHD_Response *response);

#endif
