/* Tests for the request parsers and the router of audiopipe-httpd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "request_parse.h"
#include "router.h"

static void router_matches_templates(void **state) {
  (void)state;
  httpd_route_match_t match;
  assert_true(httpd_route_match("GET", "/v1/assets/ABC", &match));
  assert_int_equal(match.route->id, HTTPD_ROUTE_ASSET_GET);
  assert_string_equal(match.id, "ABC");

  assert_true(
      httpd_route_match("GET", "/v1/assets/ABC/renditions/mp3_128k", &match));
  assert_int_equal(match.route->id, HTTPD_ROUTE_ASSET_RENDITION);
  assert_string_equal(match.name, "mp3_128k");

  assert_true(httpd_route_match("PUT", "/v1/objects/uploads/ab/cd", &match));
  assert_int_equal(match.route->id, HTTPD_ROUTE_OBJECT_PUT);
  assert_string_equal(match.key, "uploads/ab/cd");

  assert_true(httpd_route_match("POST", "/v1/uploads/X1/complete", &match));
  assert_int_equal(match.route->id, HTTPD_ROUTE_UPLOAD_COMPLETE);
}

static void router_reports_allowed_methods(void **state) {
  (void)state;
  httpd_route_match_t match;
  assert_false(httpd_route_match("PATCH", "/v1/assets/ABC", &match));
  assert_null(match.route);
  assert_string_equal(match.allowed, "GET, DELETE");

  assert_false(httpd_route_match("GET", "/v1/assets/ABC/extra", &match));
  assert_string_equal(match.allowed, "");
  assert_false(httpd_route_match("GET", "/v1/assets/", &match));
  assert_false(httpd_route_match("GET", "/v1/objects/", &match));
}

static void query_decodes_pairs(void **state) {
  (void)state;
  httpd_query_t query;
  ap_error_t error = {0};
  const char *text = "limit=5&cursor=a%2Bb+c&flag&&X-Ap-Signature=ff";
  assert_int_equal(httpd_query_parse(text, strlen(text), &query, &error),
                   AP_OK);
  assert_int_equal(query.count, 4);
  assert_string_equal(httpd_query_get(&query, "limit"), "5");
  assert_string_equal(httpd_query_get(&query, "cursor"), "a+b c");
  assert_string_equal(httpd_query_get(&query, "flag"), "");
  assert_null(httpd_query_get(&query, "missing"));
  assert_true(httpd_query_has_signature(&query));
}

static void query_rejects_bad_escapes(void **state) {
  (void)state;
  httpd_query_t query;
  ap_error_t error = {0};
  const char *cases[] = {"a=%", "a=%4", "a=%zz", "a=%00", "%=1"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(
        httpd_query_parse(cases[i], strlen(cases[i]), &query, &error),
        AP_ERR_INVALID_ARGUMENT);
  }
  assert_non_null(strstr(error.message, "query:"));
}

static void limit_parsing_names_field(void **state) {
  (void)state;
  int limit = 0;
  ap_error_t error = {0};
  assert_int_equal(httpd_parse_limit(NULL, 20, 100, &limit, &error), AP_OK);
  assert_int_equal(limit, 20);
  assert_int_equal(httpd_parse_limit("100", 20, 100, &limit, &error), AP_OK);
  assert_int_equal(limit, 100);
  assert_int_equal(httpd_parse_limit("101", 20, 100, &limit, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(httpd_parse_limit("0", 20, 100, &limit, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(httpd_parse_limit("-1", 20, 100, &limit, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(httpd_parse_limit("5x", 20, 100, &limit, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_true(strncmp(error.message, "limit:", 6) == 0);
}

static void upload_body_accepts_valid(void **state) {
  (void)state;
  httpd_upload_body_t body;
  ap_error_t error = {0};
  const char *json = " {\"filename\":\"take 1.wav\",\"size_bytes\":1234,"
                     "\"content_type\":\"audio/wav\"} \n";
  assert_int_equal(httpd_upload_body_parse(json, strlen(json), &body, &error),
                   AP_OK);
  assert_string_equal(body.filename, "take 1.wav");
  assert_int_equal(body.size_bytes, 1234);
  assert_string_equal(body.content_type, "audio/wav");
}

/* Parses `json` as an upload body and checks the error names `field`. */
static void expect_field_error(const char *json, const char *field) {
  httpd_upload_body_t body;
  ap_error_t error = {0};
  assert_int_equal(httpd_upload_body_parse(json, strlen(json), &body, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_true(strncmp(error.message, field, strlen(field)) == 0);
  assert_int_equal(error.message[strlen(field)], ':');
}

static void upload_body_names_bad_field(void **state) {
  (void)state;
  expect_field_error("{\"size_bytes\":1,\"content_type\":\"audio/wav\"}",
                     "filename");
  expect_field_error("{\"filename\":\"a\",\"size_bytes\":\"1\","
                     "\"content_type\":\"audio/wav\"}",
                     "size_bytes");
  expect_field_error("{\"filename\":\"a\",\"size_bytes\":1.5,"
                     "\"content_type\":\"audio/wav\"}",
                     "size_bytes");
  expect_field_error("{\"filename\":\"a\",\"size_bytes\":1}", "content_type");
  expect_field_error("{\"filename\":\"a\",\"size_bytes\":1,"
                     "\"content_type\":\"x\",\"owner\":\"root\"}",
                     "owner");
  expect_field_error("[1,2]", "body");
  expect_field_error("{\"filename\":\"a\"} trailing", "body");
  expect_field_error("", "body");
}

static void complete_body_allows_empty(void **state) {
  (void)state;
  ap_error_t error = {0};
  assert_int_equal(httpd_complete_body_parse("", 0, &error), AP_OK);
  assert_int_equal(httpd_complete_body_parse(" {} ", 4, &error), AP_OK);
  assert_int_equal(httpd_complete_body_parse("{\"a\":1}", 7, &error),
                   AP_ERR_INVALID_ARGUMENT);
}

static void bearer_token_is_extracted(void **state) {
  (void)state;
  const char *token = NULL;
  size_t length = 0;
  assert_true(httpd_bearer_parse("Bearer abc123", &token, &length));
  assert_int_equal(length, 6);
  assert_true(strncmp(token, "abc123", 6) == 0);
  assert_true(httpd_bearer_parse("bearer  xyz ", &token, &length));
  assert_int_equal(length, 3);
  assert_false(httpd_bearer_parse("Basic abc", &token, &length));
  assert_false(httpd_bearer_parse("Bearer ", &token, &length));
  assert_false(httpd_bearer_parse("Bearer a b", &token, &length));
  assert_false(httpd_bearer_parse(NULL, &token, &length));
}

static void signed_request_rejects_repeats(void **state) {
  (void)state;
  httpd_query_t query;
  ap_signed_request_t request;
  ap_error_t error = {0};
  const char *text = "X-Ap-Expires=10&X-Ap-Signature=aa&X-Ap-Signature=bb";
  assert_int_equal(httpd_query_parse(text, strlen(text), &query, &error),
                   AP_OK);
  assert_int_equal(httpd_signed_request_fill(&request, "GET", "h", "/p", &query,
                                             NULL, NULL, &error),
                   AP_ERR_SIGNATURE);

  const char *single = "X-Ap-Expires=10&X-Ap-Signature=aa";
  assert_int_equal(httpd_query_parse(single, strlen(single), &query, &error),
                   AP_OK);
  assert_int_equal(httpd_signed_request_fill(&request, "PUT", "h", "/p", &query,
                                             "audio/wav", "42", &error),
                   AP_OK);
  assert_string_equal(request.expires, "10");
  assert_string_equal(request.signature, "aa");
  assert_int_equal(request.content_length, 42);
  assert_int_equal(httpd_signed_request_fill(&request, "PUT", "h", "/p", &query,
                                             "audio/wav", "4 2", &error),
                   AP_ERR_SIGNATURE);
}

static void waveform_format_follows_accept(void **state) {
  (void)state;
  httpd_waveform_format_t format;
  ap_error_t error = {0};
  assert_int_equal(httpd_waveform_format_parse(NULL, NULL, &format, &error),
                   AP_OK);
  assert_int_equal(format, HTTPD_WAVEFORM_DAT);
  assert_int_equal(
      httpd_waveform_format_parse(NULL, "application/json", &format, &error),
      AP_OK);
  assert_int_equal(format, HTTPD_WAVEFORM_JSON);
  assert_int_equal(
      httpd_waveform_format_parse("dat", "application/json", &format, &error),
      AP_OK);
  assert_int_equal(format, HTTPD_WAVEFORM_DAT);
  assert_int_equal(httpd_waveform_format_parse("png", NULL, &format, &error),
                   AP_ERR_INVALID_ARGUMENT);
}

static void request_id_validation(void **state) {
  (void)state;
  assert_true(httpd_request_id_is_valid("abc-123_X.y"));
  assert_false(httpd_request_id_is_valid(""));
  assert_false(httpd_request_id_is_valid("has space"));
  assert_false(httpd_request_id_is_valid("new\nline"));
  char long_id[80];
  memset(long_id, 'a', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  assert_false(httpd_request_id_is_valid(long_id));

  int64_t sequence = 0;
  assert_int_equal(httpd_last_event_id_parse("41", &sequence), 0);
  assert_int_equal(sequence, 41);
  assert_int_equal(httpd_last_event_id_parse("-1", &sequence), -1);
  assert_int_equal(httpd_last_event_id_parse("99999999999999999999", &sequence),
                   -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(router_matches_templates),
      cmocka_unit_test(router_reports_allowed_methods),
      cmocka_unit_test(query_decodes_pairs),
      cmocka_unit_test(query_rejects_bad_escapes),
      cmocka_unit_test(limit_parsing_names_field),
      cmocka_unit_test(upload_body_accepts_valid),
      cmocka_unit_test(upload_body_names_bad_field),
      cmocka_unit_test(complete_body_allows_empty),
      cmocka_unit_test(bearer_token_is_extracted),
      cmocka_unit_test(signed_request_rejects_repeats),
      cmocka_unit_test(waveform_format_follows_accept),
      cmocka_unit_test(request_id_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
