/*
 * The CORS origin allowlist and the headers it adds.
 */
#include <stdlib.h>
#include <string.h>

#include "cors.h"
#include "request_parse.h"

#define MAX_ORIGINS 32
#define ORIGIN_SIZE 256

struct httpd_cors {
  size_t count;
  char origins[MAX_ORIGINS][ORIGIN_SIZE];
};

ap_status_t httpd_cors_new(const char *origins, httpd_cors_t **out,
                           ap_error_t *error) {
  httpd_cors_t *cors = calloc(1, sizeof *cors);
  if (!cors) {
    return httpd_error_set(error, AP_ERR_NO_MEMORY, "out of memory");
  }
  const char *cursor = origins ? origins : "";
  while (*cursor) {
    size_t length = strcspn(cursor, ",");
    const char *start = cursor;
    cursor += length;
    if (*cursor == ',') {
      cursor++;
    }
    while (length > 0 && *start == ' ') {
      start++;
      length--;
    }
    while (length > 0 && start[length - 1] == ' ') {
      length--;
    }
    if (length == 0) {
      continue;
    }
    if (length >= ORIGIN_SIZE || cors->count == MAX_ORIGINS ||
        (length == 1 && *start == '*')) {
      free(cors);
      return httpd_error_set(error, AP_ERR_INVALID_CONFIG,
                             "http.cors_origins: list at most %d origins "
                             "of under %d bytes each, such as "
                             "https://app.example.com (\"*\" is not "
                             "accepted)",
                             MAX_ORIGINS, ORIGIN_SIZE);
    }
    memcpy(cors->origins[cors->count], start, length);
    cors->origins[cors->count][length] = '\0';
    cors->count++;
  }
  *out = cors;
  return AP_OK;
}

void httpd_cors_free(httpd_cors_t *cors) { free(cors); }

int httpd_cors_allows(const httpd_cors_t *cors, const char *origin) {
  if (!cors || !origin) {
    return 0;
  }
  for (size_t i = 0; i < cors->count; i++) {
    if (strcmp(cors->origins[i], origin) == 0) {
      return 1;
    }
  }
  return 0;
}

void httpd_cors_decorate(const httpd_cors_t *cors, const char *origin,
                         struct MHD_Response *response) {
  MHD_add_response_header(response, "Vary", "Origin");
  if (!httpd_cors_allows(cors, origin)) {
    return;
  }
  MHD_add_response_header(response, "Access-Control-Allow-Origin", origin);
  MHD_add_response_header(response, "Access-Control-Expose-Headers",
                          "X-Request-Id, Retry-After, Location");
}

void httpd_cors_decorate_preflight(struct MHD_Response *response) {
  MHD_add_response_header(response, "Access-Control-Allow-Methods",
                          "GET, POST, PUT, DELETE, OPTIONS");
  MHD_add_response_header(response, "Access-Control-Allow-Headers",
                          "Authorization, Content-Type, X-Request-Id, "
                          "Last-Event-ID");
  MHD_add_response_header(response, "Access-Control-Max-Age", "600");
}
