/*
 * The S3 backend without a server: parsing objects.uri, credentials,
 * path-style and virtual-hosted URLs, and reading S3 XML responses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/s3_store.h"

static ap_status_t open_uri(const char *uri, const char *secret,
                            ap_object_store_t **store, ap_error_t *error) {
  ap_config_t *config = NULL;
  assert_int_equal(ap_config_new(&config, error), AP_OK);
  assert_int_equal(ap_config_set(config, "objects.uri", uri, error), AP_OK);
  assert_int_equal(
      ap_config_set(config, "objects.s3_access_key_id", "AKIDEXAMPLE", error),
      AP_OK);
  if (secret) {
    assert_int_equal(
        ap_config_set(config, "objects.s3_secret_access_key", secret, error),
        AP_OK);
  }
  ap_status_t status = ap_object_store_open(config, store, error);
  ap_config_free(config);
  return status;
}

static void uri_errors_name_the_part(void **state) {
  (void)state;
  struct {
    const char *uri;
    const char *fragment;
  } cases[] = {
      {"s3://Bad_Bucket?endpoint=http://127.0.0.1:9000", "Bad_Bucket"},
      {"s3://ab", "\"ab\""},
      {"s3://bucket?endpoint=ftp://127.0.0.1", "endpoint"},
      {"s3://bucket?endpoint=http://127.0.0.1:9000/path", "without a path"},
      {"s3://bucket?colour=blue", "colour"},
      {"s3://bucket?region", "no value"},
      {"s3://bucket?path_style=2", "path_style"},
      {"s3://bucket?public_endpoint=localhost", "public_endpoint"},
      {"s3://bucket?endpoint=http%3A%2F%2F127.0.0.1%zz", "escape"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ap_object_store_t *store = NULL;
    ap_error_t error = {0};
    assert_int_equal(open_uri(cases[i].uri, "secret", &store, &error),
                     AP_ERR_INVALID_CONFIG);
    assert_null(store);
    assert_non_null(strstr(error.message, cases[i].fragment));
  }
}

static void missing_secret_is_invalid_config(void **state) {
  (void)state;
  unsetenv("AWS_SECRET_ACCESS_KEY");
  ap_object_store_t *store = NULL;
  ap_error_t error = {0};
  assert_int_equal(open_uri("s3://bucket?endpoint=http://127.0.0.1:9000", NULL,
                            &store, &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "AWS_SECRET_ACCESS_KEY"));
}

static void secret_from_environment(void **state) {
  (void)state;
  setenv("AWS_SECRET_ACCESS_KEY", "from-environment", 1);
  ap_object_store_t *store = NULL;
  ap_error_t error = {0};
  assert_int_equal(open_uri("s3://bucket?endpoint=http%3A%2F%2F127.0.0.1%3A9000"
                            "&path_style=1",
                            NULL, &store, &error),
                   AP_OK);
  ap_presigned_request_t request;
  assert_int_equal(ap_s3_presign_at(store, "GET", "a/b.wav", NULL, -1,
                                    1369353600, 60, &request, &error),
                   AP_OK);
  assert_non_null(strstr(request.url, "http://127.0.0.1:9000/bucket/a/b.wav?"
                                      "X-Amz-Algorithm=AWS4-HMAC-SHA256&"
                                      "X-Amz-Credential=AKIDEXAMPLE%2F"
                                      "20130524%2Fus-east-1%2Fs3%2F"));
  ap_presigned_request_free(&request);
  ap_object_store_close(store);
  unsetenv("AWS_SECRET_ACCESS_KEY");
}

static void public_endpoint_signs_its_host(void **state) {
  (void)state;
  ap_object_store_t *store = NULL;
  ap_error_t error = {0};
  assert_int_equal(open_uri("s3://media.example?endpoint=http://10.0.0.5:9000&"
                            "public_endpoint=https://S3.Example.com&"
                            "region=eu-west-1",
                            "secret", &store, &error),
                   AP_OK);
  ap_presigned_request_t request;
  assert_int_equal(ap_s3_presign_at(store, "PUT", "up/x.mp3", "audio/mpeg", 100,
                                    1369353600, 900, &request, &error),
                   AP_OK);
  /* Virtual-hosted: the bucket is part of the host name. */
  assert_non_null(strstr(request.url, "https://media.example.s3.example.com"
                                      "/up/x.mp3?"));
  assert_non_null(strstr(request.url, "%2Feu-west-1%2Fs3%2F"));
  assert_null(strstr(request.url, "10.0.0.5"));
  assert_int_equal(request.header_count, 2);
  ap_presigned_request_free(&request);

  assert_int_equal(ap_s3_presign_at(store, "DELETE", "up/x.mp3", NULL, -1, 0,
                                    60, &request, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      ap_s3_presign_at(store, "GET", "../x", NULL, -1, 0, 60, &request, &error),
      AP_ERR_INVALID_ARGUMENT);
  ap_object_store_close(store);
}

static void object_url_addressing(void **state) {
  (void)state;
  char *url = NULL;
  char *host = NULL;
  char *path = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_s3_object_url("http://127.0.0.1:9000", "bucket", 1,
                                    "a b/c.wav", &url, &host, &path, &error),
                   AP_OK);
  assert_string_equal(url, "http://127.0.0.1:9000/bucket/a%20b/c.wav");
  assert_string_equal(host, "127.0.0.1:9000");
  assert_string_equal(path, "/bucket/a%20b/c.wav");
  free(url);
  free(host);
  free(path);

  assert_int_equal(ap_s3_object_url("https://s3.amazonaws.com", "bucket", 0,
                                    NULL, &url, &host, &path, &error),
                   AP_OK);
  assert_string_equal(url, "https://bucket.s3.amazonaws.com/");
  assert_string_equal(host, "bucket.s3.amazonaws.com");
  assert_string_equal(path, "/");
  free(url);
  free(host);
  free(path);
}

static void xml_values_are_decoded(void **state) {
  (void)state;
  const char *xml = "<R><Key>a&amp;b&lt;c&gt;</Key><Key>second</Key>"
                    "<Empty></Empty></R>";
  const char *cursor = xml;
  char value[32];
  assert_true(ap_s3_xml_find(xml, &cursor, "Key", value, sizeof value));
  assert_string_equal(value, "a&b<c>");
  assert_true(ap_s3_xml_find(xml, &cursor, "Key", value, sizeof value));
  assert_string_equal(value, "second");
  assert_false(ap_s3_xml_find(xml, &cursor, "Key", value, sizeof value));
  assert_true(ap_s3_xml_find(xml, NULL, "Empty", value, sizeof value));
  assert_string_equal(value, "");
  char small[4];
  assert_false(ap_s3_xml_find(xml, NULL, "Key", small, sizeof small));
}

static void s3_calls_reject_file_store(void **state) {
  (void)state;
  ap_config_t *config = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_config_new(&config, &error), AP_OK);
  char uri[256];
  snprintf(uri, sizeof uri, "file://%s/s3-config-objects",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  assert_int_equal(ap_config_set(config, "objects.uri", uri, &error), AP_OK);
  ap_object_store_t *store = NULL;
  assert_int_equal(ap_object_store_open(config, &store, &error), AP_OK);
  ap_config_free(config);
  char *upload_id = NULL;
  assert_int_equal(
      ap_s3_multipart_create(store, "a/b", NULL, &upload_id, &error),
      AP_ERR_UNSUPPORTED);
  assert_null(upload_id);
  ap_s3_post_form_t form;
  assert_int_equal(ap_s3_post_form_create(store, "a/b", "audio/mpeg", 10, 0, 60,
                                          &form, &error),
                   AP_ERR_UNSUPPORTED);
  ap_object_store_close(store);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(uri_errors_name_the_part),
      cmocka_unit_test(missing_secret_is_invalid_config),
      cmocka_unit_test(secret_from_environment),
      cmocka_unit_test(public_endpoint_signs_its_host),
      cmocka_unit_test(object_url_addressing),
      cmocka_unit_test(xml_values_are_decoded),
      cmocka_unit_test(s3_calls_reject_file_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
