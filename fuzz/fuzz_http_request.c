/*
 * libFuzzer target over the request parsers of audiopipe-httpd: the first
 * byte of an input picks the parser, the rest is what a client would
 * send. Every parser is pure, so no server runs. Besides the sanitizers'
 * findings, an inconsistent result (a parsed value that breaks the
 * parser's contract) aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request_parse.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Copies the input into a NUL-terminated string, as headers and paths
 * reach the parsers. */
static char *terminated(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text) {
    memcpy(text, data, size);
    text[size] = '\0';
  }
  return text;
}

static void fuzz_query(const char *text, size_t size) {
  static httpd_query_t query;
  ap_error_t error = {0};
  if (httpd_query_parse(text, size, &query, &error) != AP_OK) {
    return;
  }
  if (query.count > HTTPD_QUERY_MAX_PAIRS) {
    abort();
  }
  int limit = 0;
  if (httpd_parse_limit(httpd_query_get(&query, "limit"), 20, 100, &limit,
                        &error) == AP_OK &&
      (limit < 1 || limit > 100)) {
    abort();
  }
  ap_signed_request_t request;
  if (httpd_signed_request_fill(&request, "PUT", "localhost", "/v1/objects/x",
                                &query, httpd_query_get(&query, "type"),
                                httpd_query_get(&query, "length"),
                                &error) == AP_OK &&
      request.content_length < -1) {
    abort();
  }
  httpd_waveform_format_t format;
  httpd_waveform_format_parse(httpd_query_get(&query, "format"),
                              httpd_query_get(&query, "accept"), &format,
                              &error);
}

static void fuzz_route(const char *text) {
  static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
  httpd_route_match_t match;
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    if (httpd_route_match(methods[i], text, &match) &&
        (!match.route || strlen(match.key) >= HTTPD_PARAM_SIZE)) {
      abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) {
    return 0;
  }
  uint8_t selector = data[0] % 6;
  char *text = terminated(data + 1, size - 1);
  if (!text) {
    return 0;
  }
  size_t length = size - 1;
  ap_error_t error = {0};
  httpd_upload_body_t body;
  const char *token = NULL;
  size_t token_length = 0;
  int64_t sequence = 0;

  switch (selector) {
  case 0:
    fuzz_query(text, length);
    break;
  case 1:
    fuzz_route(text);
    break;
  case 2:
    if (httpd_upload_body_parse(text, length, &body, &error) == AP_OK &&
        (strlen(body.filename) >= sizeof body.filename ||
         strlen(body.content_type) >= sizeof body.content_type)) {
      abort();
    }
    break;
  case 3:
    httpd_complete_body_parse(text, length, &error);
    break;
  case 4:
    if (httpd_bearer_parse(text, &token, &token_length) &&
        (token_length == 0 || token_length > 512)) {
      abort();
    }
    break;
  default:
    httpd_request_id_is_valid(text);
    if (httpd_last_event_id_parse(text, &sequence) == 0 && sequence < 0) {
      abort();
    }
    break;
  }
  free(text);
  return 0;
}
