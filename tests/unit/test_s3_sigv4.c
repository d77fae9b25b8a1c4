/*
 * SigV4 signing without a server: the worked examples of the AWS S3 API
 * reference reproduce exactly, and keys, queries, expiry and POST
 * policies are encoded the way S3 expects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "storage/s3_sigv4.h"

/* The example credentials of the AWS S3 API reference. */
static const ap_s3_credentials_t example_credentials = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL,
    "us-east-1"};

/* 2013-05-24T00:00:00Z, the time of every example. */
static const int64_t example_time = 1369353600;

/* "Authenticating Requests: Using Query Parameters": GET test.txt from
 * examplebucket, valid 86400 s. */
static void presign_get_matches_aws_example(void **state) {
  (void)state;
  ap_s3_presign_input_t input = {0};
  input.method = "GET";
  input.origin = "https://examplebucket.s3.amazonaws.com";
  input.host = "examplebucket.s3.amazonaws.com";
  input.encoded_path = "/test.txt";
  input.content_length = -1;
  input.now = example_time;
  input.expires_seconds = 86400;
  ap_presigned_request_t request;
  ap_error_t error = {0};
  assert_int_equal(
      ap_s3_presign(&example_credentials, &input, &request, &error), AP_OK);
  assert_string_equal(
      request.url,
      "https://examplebucket.s3.amazonaws.com/test.txt"
      "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
      "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
      "aws4_request"
      "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
      "&X-Amz-SignedHeaders=host"
      "&X-Amz-Signature="
      "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  assert_int_equal(request.header_count, 0);
  assert_int_equal(request.expires_at, example_time + 86400);
  ap_presigned_request_free(&request);
}

/* Presigns the AWS query example at `now` with `credentials` and returns
 * the URL's signature (64 hex digits). */
static void example_signature(const ap_s3_credentials_t *credentials,
                              int64_t now, char signature[65]) {
  ap_s3_presign_input_t input = {0};
  input.method = "GET";
  input.origin = "https://examplebucket.s3.amazonaws.com";
  input.host = "examplebucket.s3.amazonaws.com";
  input.encoded_path = "/test.txt";
  input.content_length = -1;
  input.now = now;
  input.expires_seconds = 86400;
  ap_presigned_request_t request;
  ap_error_t error = {0};
  assert_int_equal(ap_s3_presign(credentials, &input, &request, &error), AP_OK);
  const char *found = strstr(request.url, "X-Amz-Signature=");
  assert_non_null(found);
  assert_int_equal(strlen(found + 16), 64);
  memcpy(signature, found + 16, 65);
  ap_presigned_request_free(&request);
}

/* The signing key is cached per thread: a change of secret, region or day
 * must still give the signature a fresh derivation gives. Each reference
 * is signed first on a second credential set so the cache holds another
 * key when the checked signature is made. */
static void signing_key_cache_follows_inputs(void **state) {
  (void)state;
  static const char known[] =
      "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
  ap_s3_credentials_t other_secret = example_credentials;
  other_secret.secret_access_key = "another-secret-of-forty-characters-000000";
  ap_s3_credentials_t other_region = example_credentials;
  other_region.region = "eu-west-1";

  char first[65], again[65], with_secret[65], with_region[65], next_day[65];
  example_signature(&example_credentials, example_time, first);
  example_signature(&example_credentials, example_time, again);
  example_signature(&other_secret, example_time, with_secret);
  example_signature(&other_region, example_time, with_region);
  example_signature(&example_credentials, example_time + 86400, next_day);
  assert_string_equal(first, known);
  assert_string_equal(again, known);
  assert_string_not_equal(with_secret, known);
  assert_string_not_equal(with_region, known);
  assert_string_not_equal(next_day, known);
  assert_string_not_equal(with_secret, with_region);

  /* Back to the example after other keys were cached. */
  char back[65];
  example_signature(&example_credentials, example_time, back);
  assert_string_equal(back, known);

  /* Same inputs give the same signature whether or not the key was
   * cached: sign the other secret twice with another key in between. */
  char with_secret_again[65];
  example_signature(&other_region, example_time, with_region);
  example_signature(&other_secret, example_time, with_secret_again);
  assert_string_equal(with_secret_again, with_secret);
}

/* "Signature Calculations for the Authorization Header", GET Object:
 * the first 10 bytes of test.txt with a signed Range header. */
static void header_signature_matches_aws_example(void **state) {
  (void)state;
  char empty_hash[AP_S3_HEX_DIGEST_SIZE];
  ap_error_t error = {0};
  assert_int_equal(ap_s3_sha256_hex("", 0, empty_hash, &error), AP_OK);
  assert_string_equal(
      empty_hash,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

  ap_s3_pair_t headers[] = {
      {"host", "examplebucket.s3.amazonaws.com"},
      {"range", "bytes=0-9"},
      {"x-amz-content-sha256", empty_hash},
      {"x-amz-date", "20130524T000000Z"},
  };
  char signature[AP_S3_HEX_DIGEST_SIZE];
  char *canonical = NULL;
  assert_int_equal(ap_s3_sign(&example_credentials, "20130524T000000Z", "GET",
                              "/test.txt", "", headers, 4, empty_hash,
                              signature, &canonical, &error),
                   AP_OK);
  assert_string_equal(
      signature,
      "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  assert_string_equal(
      canonical,
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
      "range:bytes=0-9\nx-amz-content-sha256:"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\n"
      "host;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  free(canonical);
}

static void key_encoding_keeps_slashes(void **state) {
  (void)state;
  struct {
    const char *key;
    const char *encoded;
  } cases[] = {
      {"uploads/a b.wav", "uploads/a%20b.wav"},
      {"caf\xc3\xa9/t\xc3\xaate.mp3", "caf%C3%A9/t%C3%AAte.mp3"},
      {"a/b/c~d_e-f.g", "a/b/c~d_e-f.g"},
      {"x+y=z&w", "x%2By%3Dz%26w"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *encoded = NULL;
    ap_error_t error = {0};
    assert_int_equal(ap_s3_uri_encode(cases[i].key, 1, &encoded, &error),
                     AP_OK);
    assert_string_equal(encoded, cases[i].encoded);
    free(encoded);
  }
}

static void query_value_encodes_slash(void **state) {
  (void)state;
  char *encoded = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_s3_uri_encode("a/b c", 0, &encoded, &error), AP_OK);
  assert_string_equal(encoded, "a%2Fb%20c");
  free(encoded);
}

static void query_sorted_and_encoded(void **state) {
  (void)state;
  ap_s3_pair_t params[] = {
      {"prefix", "a/b"},
      {"list-type", "2"},
      {"continuation-token", "1+2="},
      {"uploads", NULL},
  };
  char *query = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_s3_canonical_query(params, 4, &query, &error), AP_OK);
  assert_string_equal(query, "continuation-token=1%2B2%3D&list-type=2&"
                             "prefix=a%2Fb&uploads=");
  free(query);
}

static void query_sorts_by_byte_order(void **state) {
  (void)state;
  ap_s3_pair_t params[] = {{"b", "1"}, {"B", "2"}, {"a", "2"}, {"a", "1"}};
  char *query = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_s3_canonical_query(params, 4, &query, &error), AP_OK);
  assert_string_equal(query, "B=2&a=1&a=2&b=1");
  free(query);
}

static void presign_rejects_long_expiry(void **state) {
  (void)state;
  ap_s3_presign_input_t input = {0};
  input.method = "GET";
  input.origin = "http://127.0.0.1:9000";
  input.host = "127.0.0.1:9000";
  input.encoded_path = "/bucket/key";
  input.content_length = -1;
  input.now = example_time;
  ap_presigned_request_t request;
  ap_error_t error = {0};

  input.expires_seconds = 604801;
  assert_int_equal(
      ap_s3_presign(&example_credentials, &input, &request, &error),
      AP_ERR_INVALID_ARGUMENT);
  assert_null(request.url);

  input.expires_seconds = 0;
  assert_int_equal(
      ap_s3_presign(&example_credentials, &input, &request, &error),
      AP_ERR_INVALID_ARGUMENT);

  input.expires_seconds = 604800;
  assert_int_equal(
      ap_s3_presign(&example_credentials, &input, &request, &error), AP_OK);
  assert_non_null(strstr(request.url, "X-Amz-Expires=604800&"));
  ap_presigned_request_free(&request);
}

static void presign_put_signs_type_and_length(void **state) {
  (void)state;
  ap_s3_credentials_t credentials = example_credentials;
  credentials.session_token = "token/with+chars";
  ap_s3_presign_input_t input = {0};
  input.method = "PUT";
  input.origin = "http://localhost:9000";
  input.host = "localhost:9000";
  input.encoded_path = "/bucket/uploads/a%20b.wav";
  input.content_type = "audio/wav";
  input.content_length = 1234;
  input.now = example_time;
  input.expires_seconds = 900;
  ap_presigned_request_t request;
  ap_error_t error = {0};
  assert_int_equal(ap_s3_presign(&credentials, &input, &request, &error),
                   AP_OK);
  assert_string_equal(request.method, "PUT");
  assert_non_null(strstr(request.url, "http://localhost:9000/bucket/uploads/"
                                      "a%20b.wav?X-Amz-Algorithm="));
  assert_non_null(strstr(request.url, "&X-Amz-SignedHeaders=content-length%3B"
                                      "content-type%3Bhost&"));
  assert_non_null(
      strstr(request.url, "&X-Amz-Security-Token=token%2Fwith%2Bchars&"));
  assert_int_equal(request.header_count, 2);
  assert_string_equal(request.headers[0].name, "Content-Type");
  assert_string_equal(request.headers[0].value, "audio/wav");
  assert_string_equal(request.headers[1].name, "Content-Length");
  assert_string_equal(request.headers[1].value, "1234");
  ap_presigned_request_free(&request);
}

static const char *find_field(const ap_s3_post_form_t *form, const char *name) {
  for (size_t i = 0; i < form->field_count; i++) {
    if (strcmp(form->fields[i].name, name) == 0) {
      return form->fields[i].value;
    }
  }
  return NULL;
}

static void post_policy_document_shape(void **state) {
  (void)state;
  ap_s3_post_policy_input_t input = {0};
  input.url = "http://127.0.0.1:9000/bucket";
  input.bucket = "bucket";
  input.key = "uploads/abc.mp3";
  input.content_type = "audio/mpeg";
  input.min_length = 1;
  input.max_length = 1048576;
  input.now = example_time;
  input.expires_seconds = 3600;
  ap_s3_post_form_t form;
  ap_error_t error = {0};
  assert_int_equal(
      ap_s3_post_policy(&example_credentials, &input, &form, &error), AP_OK);
  assert_string_equal(form.url, "http://127.0.0.1:9000/bucket");
  assert_string_equal(find_field(&form, "key"), "uploads/abc.mp3");
  assert_string_equal(find_field(&form, "Content-Type"), "audio/mpeg");
  assert_string_equal(find_field(&form, "x-amz-algorithm"), "AWS4-HMAC-SHA256");
  assert_string_equal(find_field(&form, "x-amz-date"), "20130524T000000Z");
  assert_string_equal(find_field(&form, "x-amz-credential"),
                      "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                      "aws4_request");
  assert_null(find_field(&form, "x-amz-security-token"));
  assert_int_equal(strlen(find_field(&form, "x-amz-signature")), 64);

  const char *policy = find_field(&form, "policy");
  assert_non_null(policy);
  unsigned char decoded[2048];
  int length = EVP_DecodeBlock(decoded, (const unsigned char *)policy,
                               (int)strlen(policy));
  assert_true(length > 0);
  decoded[length] = '\0';
  const char *json = (const char *)decoded;
  assert_non_null(strstr(json, "\"expiration\":\"2013-05-24T01:00:00Z\""));
  assert_non_null(strstr(json, "{\"bucket\":\"bucket\"}"));
  assert_non_null(strstr(json, "{\"key\":\"uploads/abc.mp3\"}"));
  assert_non_null(strstr(json, "{\"Content-Type\":\"audio/mpeg\"}"));
  assert_non_null(strstr(json, "[\"content-length-range\",1,1048576]"));
  assert_non_null(strstr(json, "{\"x-amz-algorithm\":\"AWS4-HMAC-SHA256\"}"));
  assert_int_equal(form.expires_at, example_time + 3600);
  ap_s3_post_form_free(&form);
}

static void post_policy_rejects_bad_range(void **state) {
  (void)state;
  ap_s3_post_policy_input_t input = {0};
  input.url = "http://127.0.0.1:9000/bucket";
  input.bucket = "bucket";
  input.key = "k";
  input.content_type = "audio/mpeg";
  input.min_length = 10;
  input.max_length = 5;
  input.now = example_time;
  input.expires_seconds = 60;
  ap_s3_post_form_t form;
  ap_error_t error = {0};
  assert_int_equal(
      ap_s3_post_policy(&example_credentials, &input, &form, &error),
      AP_ERR_INVALID_ARGUMENT);
  input.min_length = 0;
  input.expires_seconds = 604801;
  assert_int_equal(
      ap_s3_post_policy(&example_credentials, &input, &form, &error),
      AP_ERR_INVALID_ARGUMENT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(presign_get_matches_aws_example),
      cmocka_unit_test(header_signature_matches_aws_example),
      cmocka_unit_test(signing_key_cache_follows_inputs),
      cmocka_unit_test(key_encoding_keeps_slashes),
      cmocka_unit_test(query_value_encodes_slash),
      cmocka_unit_test(query_sorted_and_encoded),
      cmocka_unit_test(query_sorts_by_byte_order),
      cmocka_unit_test(presign_rejects_long_expiry),
      cmocka_unit_test(presign_put_signs_type_and_length),
      cmocka_unit_test(post_policy_document_shape),
      cmocka_unit_test(post_policy_rejects_bad_range),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
