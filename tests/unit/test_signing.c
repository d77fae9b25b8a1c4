/*
 * Tests for presigned URLs of the file store: the HMAC-SHA256 primitive
 * against RFC 4231, the URL and headers a client receives, and the
 * verification audiopipe-httpd runs, with every way a request can differ
 * from what was signed.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>

#include <audiopipe/config.h>
#include <audiopipe/storage.h>

#include "storage/object_store.h"
#include "storage/storage_internal.h"

#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

typedef struct fixture {
  char directory[512];
  ap_config_t *config;
  ap_object_store_t *store;
} fixture_t;

static fixture_t *open_fixture(const char *base_url, const char *secret) {
  fixture_t *fixture = calloc(1, sizeof *fixture);
  assert_non_null(fixture);
  const char *temporary = getenv("TMPDIR");
  snprintf(fixture->directory, sizeof fixture->directory, "%s/signing-XXXXXX",
           temporary ? temporary : "/tmp");
  assert_non_null(mkdtemp(fixture->directory));

  char uri[600];
  snprintf(uri, sizeof uri, "file://%s/objects", fixture->directory);
  ap_error_t error = {0};
  assert_int_equal(ap_config_new(&fixture->config, &error), AP_OK);
  assert_int_equal(ap_config_set(fixture->config, "objects.uri", uri, &error),
                   AP_OK);
  if (base_url) {
    assert_int_equal(
        ap_config_set(fixture->config, "public.base_url", base_url, &error),
        AP_OK);
  }
  if (secret) {
    assert_int_equal(
        ap_config_set(fixture->config, "signing.secret", secret, &error),
        AP_OK);
  }
  assert_int_equal(
      ap_object_store_open(fixture->config, &fixture->store, &error), AP_OK);
  return fixture;
}

static void close_fixture(fixture_t *fixture) {
  ap_object_store_close(fixture->store);
  ap_config_free(fixture->config);
  char command[600];
  snprintf(command, sizeof command, "rm -rf '%s'", fixture->directory);
  assert_int_equal(system(command), 0);
  free(fixture);
}

static int setup_default(void **state) {
  *state = open_fixture("http://localhost:8080", SECRET);
  return 0;
}

static int teardown_default(void **state) {
  close_fixture(*state);
  return 0;
}

/* A request as audiopipe-httpd would assemble it from a presigned URL:
 * owned copies of the decoded parts, plus the headers the client sent. */
typedef struct parsed_url {
  char host[256];
  char path[1024];
  char expires[64];
  char content_type[256];
  char content_length[64];
  char signature[128];
  int has_content_type;
  int has_content_length;
  int has_expires;
  int has_signature;
} parsed_url_t;

static void percent_decode(const char *text, size_t length, char *out,
                           size_t size) {
  size_t used = 0;
  for (size_t i = 0; i < length && used + 1 < size; i++) {
    if (text[i] == '%' && i + 2 < length &&
        isxdigit((unsigned char)text[i + 1]) &&
        isxdigit((unsigned char)text[i + 2])) {
      char hex[3] = {text[i + 1], text[i + 2], '\0'};
      out[used++] = (char)strtol(hex, NULL, 16);
      i += 2;
    } else {
      out[used++] = text[i];
    }
  }
  out[used] = '\0';
}

static void parse_url(const char *url, parsed_url_t *parsed) {
  memset(parsed, 0, sizeof *parsed);
  const char *authority = strstr(url, "://");
  assert_non_null(authority);
  authority += 3;
  const char *path = strchr(authority, '/');
  assert_non_null(path);
  snprintf(parsed->host, sizeof parsed->host, "%.*s", (int)(path - authority),
           authority);
  const char *query = strchr(path, '?');
  assert_non_null(query);
  snprintf(parsed->path, sizeof parsed->path, "%.*s", (int)(query - path),
           path);

  const char *cursor = query + 1;
  while (*cursor) {
    size_t length = strcspn(cursor, "&");
    const char *equals = memchr(cursor, '=', length);
    assert_non_null(equals);
    size_t name_length = (size_t)(equals - cursor);
    const char *value = equals + 1;
    size_t value_length = length - name_length - 1;
    struct {
      const char *name;
      char *buffer;
      size_t size;
      int *present;
    } fields[] = {
        {AP_SIGNED_PARAM_EXPIRES, parsed->expires, sizeof parsed->expires,
         &parsed->has_expires},
        {AP_SIGNED_PARAM_CONTENT_TYPE, parsed->content_type,
         sizeof parsed->content_type, &parsed->has_content_type},
        {AP_SIGNED_PARAM_CONTENT_LENGTH, parsed->content_length,
         sizeof parsed->content_length, &parsed->has_content_length},
        {AP_SIGNED_PARAM_SIGNATURE, parsed->signature, sizeof parsed->signature,
         &parsed->has_signature},
    };
    int known = 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
      if (strlen(fields[i].name) == name_length &&
          strncmp(fields[i].name, cursor, name_length) == 0) {
        percent_decode(value, value_length, fields[i].buffer, fields[i].size);
        *fields[i].present = 1;
        known = 1;
      }
    }
    assert_true(known);
    cursor += length;
    if (*cursor == '&') {
      cursor++;
    }
  }
}

/* Fills `request` from `parsed` and the headers a well-behaved client
 * sends for the presigned request. */
static void make_request(const parsed_url_t *parsed, const char *method,
                         const ap_presigned_request_t *presigned,
                         ap_signed_request_t *request) {
  ap_signed_request_init(request);
  request->method = method;
  request->host = parsed->host;
  request->path = parsed->path;
  request->expires = parsed->has_expires ? parsed->expires : NULL;
  request->signed_content_type =
      parsed->has_content_type ? parsed->content_type : NULL;
  request->signed_content_length =
      parsed->has_content_length ? parsed->content_length : NULL;
  request->signature = parsed->has_signature ? parsed->signature : NULL;
  for (size_t i = 0; i < presigned->header_count; i++) {
    if (strcmp(presigned->headers[i].name, "Content-Type") == 0) {
      request->content_type = presigned->headers[i].value;
    } else if (strcmp(presigned->headers[i].name, "Content-Length") == 0) {
      request->content_length = strtoll(presigned->headers[i].value, NULL, 10);
    }
  }
}

static ap_status_t verify(const fixture_t *fixture,
                          const ap_signed_request_t *request, int64_t now,
                          ap_error_t *error) {
  char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  int64_t length = 0;
  return ap_signed_request_verify(fixture->config, request, now, key,
                                  sizeof key, &length, error);
}

static void presign_put(fixture_t *fixture, const char *key,
                        ap_presigned_request_t *presigned) {
  ap_error_t error = {0};
  assert_int_equal(ap_object_store_presign(fixture->store, "PUT", key,
                                           "audio/wav", 1234, 900, presigned,
                                           &error),
                   AP_OK);
}

/* ---- HMAC ------------------------------------------------------------ */

static void hex(const unsigned char *bytes, size_t count, char *text) {
  for (size_t i = 0; i < count; i++) {
    sprintf(text + 2 * i, "%02x", bytes[i]);
  }
}

/* RFC 4231 section 4.2 (test case 1) and 4.3 (test case 2). */
static void hmac_matches_rfc_4231(void **state) {
  (void)state;
  unsigned char key[20];
  memset(key, 0x0b, sizeof key);
  unsigned char digest[AP_HMAC_SHA256_SIZE];
  char text[AP_HMAC_SHA256_HEX_SIZE];
  ap_error_t error = {0};

  assert_int_equal(
      ap_hmac_sha256(key, sizeof key, "Hi There", 8, digest, &error), AP_OK);
  hex(digest, sizeof digest, text);
  assert_string_equal(
      text, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

  const char *data = "what do ya want for nothing?";
  assert_int_equal(
      ap_hmac_sha256("Jefe", 4, data, strlen(data), digest, &error), AP_OK);
  hex(digest, sizeof digest, text);
  assert_string_equal(
      text, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/* Computes the reference HMAC-SHA256 with OpenSSL's one-shot HMAC(). */
static void reference_hmac(const void *key, size_t key_length, const char *data,
                           unsigned char *digest) {
  unsigned int length = 0;
  assert_non_null(HMAC(EVP_sha256(), key, (int)key_length,
                       (const unsigned char *)data, strlen(data), digest,
                       &length));
  assert_int_equal(length, AP_HMAC_SHA256_SIZE);
}

/* Each thread reuses one keyed context: switching keys, repeating a key,
 * an empty key and a key too long to keep must all give the digest of a
 * fresh computation. */
static void hmac_reuse_follows_key_changes(void **state) {
  (void)state;
  static unsigned char long_key[600];
  memset(long_key, 0xaa, sizeof long_key);
  const struct {
    const void *key;
    size_t length;
    const char *data;
  } cases[] = {
      {"first secret", 12, "GET\nhost\n/a"},
      {"first secret", 12, "PUT\nhost\n/b"},
      {"second secret", 13, "GET\nhost\n/a"},
      {"", 0, ""},
      {long_key, sizeof long_key, "long key"},
      {long_key, sizeof long_key, "long key again"},
      {"first secret", 12, "GET\nhost\n/a"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    unsigned char digest[AP_HMAC_SHA256_SIZE];
    unsigned char expected[AP_HMAC_SHA256_SIZE];
    ap_error_t error = {0};
    assert_int_equal(ap_hmac_sha256(cases[i].key, cases[i].length,
                                    cases[i].data, strlen(cases[i].data),
                                    digest, &error),
                     AP_OK);
    reference_hmac(cases[i].key, cases[i].length, cases[i].data, expected);
    assert_memory_equal(digest, expected, sizeof digest);
  }
}

#define HMAC_THREADS 4
#define HMAC_ROUNDS 200

typedef struct hmac_thread {
  char key[32];
  int mismatches;
} hmac_thread_t;

static void *sign_in_thread(void *argument) {
  hmac_thread_t *thread = argument;
  unsigned char expected[AP_HMAC_SHA256_SIZE];
  reference_hmac(thread->key, strlen(thread->key), "canonical", expected);
  for (int i = 0; i < HMAC_ROUNDS; i++) {
    unsigned char digest[AP_HMAC_SHA256_SIZE];
    if (ap_hmac_sha256(thread->key, strlen(thread->key), "canonical", 9, digest,
                       NULL) != AP_OK ||
        memcmp(digest, expected, sizeof digest) != 0) {
      thread->mismatches++;
    }
  }
  return NULL;
}

/* Threads signing under different keys at once do not share contexts. */
static void hmac_threads_keep_own_keys(void **state) {
  (void)state;
  hmac_thread_t threads[HMAC_THREADS];
  pthread_t handles[HMAC_THREADS];
  for (int i = 0; i < HMAC_THREADS; i++) {
    memset(&threads[i], 0, sizeof threads[i]);
    snprintf(threads[i].key, sizeof threads[i].key, "thread key %d", i);
    assert_int_equal(
        pthread_create(&handles[i], NULL, sign_in_thread, &threads[i]), 0);
  }
  for (int i = 0; i < HMAC_THREADS; i++) {
    assert_int_equal(pthread_join(handles[i], NULL), 0);
    assert_int_equal(threads[i].mismatches, 0);
  }
}

/* ---- Presigning ------------------------------------------------------ */

static void presigned_put_has_url_and_headers(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  int64_t before = (int64_t)time(NULL);
  presign_put(fixture, "uploads/abc.wav", &presigned);
  int64_t after = (int64_t)time(NULL);

  assert_string_equal(presigned.method, "PUT");
  const char *prefix = "http://localhost:8080/v1/objects/uploads/abc.wav?";
  assert_memory_equal(presigned.url, prefix, strlen(prefix));
  assert_non_null(strstr(presigned.url, "X-Ap-Content-Type=audio%2Fwav"));
  assert_non_null(strstr(presigned.url, "X-Ap-Content-Length=1234"));
  assert_true(presigned.expires_at >= before + 900);
  assert_true(presigned.expires_at <= after + 900);

  assert_int_equal(presigned.header_count, 2);
  assert_string_equal(presigned.headers[0].name, "Content-Type");
  assert_string_equal(presigned.headers[0].value, "audio/wav");
  assert_string_equal(presigned.headers[1].name, "Content-Length");
  assert_string_equal(presigned.headers[1].value, "1234");

  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  assert_int_equal(strlen(parsed.signature), 64);
  char expires[32];
  snprintf(expires, sizeof expires, "%lld", (long long)presigned.expires_at);
  assert_string_equal(parsed.expires, expires);
  ap_presigned_request_free(&presigned);
  assert_null(presigned.url);
}

static void valid_put_verifies(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  presign_put(fixture, "uploads/abc.wav", &presigned);
  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  ap_signed_request_t request;
  make_request(&parsed, "PUT", &presigned, &request);

  char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  int64_t length = 0;
  ap_error_t error = {0};
  assert_int_equal(ap_signed_request_verify(fixture->config, &request, 0, key,
                                            sizeof key, &length, &error),
                   AP_OK);
  assert_string_equal(key, "uploads/abc.wav");
  assert_int_equal(length, 1234);

  /* Host names compare without case, and the default port is optional. */
  request.host = "LocalHost:8080";
  assert_int_equal(verify(fixture, &request, 0, &error), AP_OK);

  char small[4];
  assert_int_equal(ap_signed_request_verify(fixture->config, &request, 0, small,
                                            sizeof small, NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
  ap_presigned_request_free(&presigned);
}

/* Changing any signed part of the URL breaks the signature. */
static void tampered_parameters_fail(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  presign_put(fixture, "uploads/abc.wav", &presigned);
  parsed_url_t original;
  parse_url(presigned.url, &original);

  enum { EXPIRES, TYPE, LENGTH, SIGNATURE, PATH, CASES };
  for (int which = 0; which < CASES; which++) {
    parsed_url_t parsed = original;
    ap_signed_request_t request;
    switch (which) {
    case EXPIRES:
      snprintf(parsed.expires, sizeof parsed.expires, "%lld",
               (long long)presigned.expires_at + 1);
      break;
    case TYPE:
      strcpy(parsed.content_type, "audio/x-wav");
      break;
    case LENGTH:
      strcpy(parsed.content_length, "1235");
      break;
    case SIGNATURE:
      parsed.signature[10] = parsed.signature[10] == '0' ? '1' : '0';
      break;
    case PATH:
      strcpy(parsed.path, "/v1/objects/uploads/abd.wav");
      break;
    }
    make_request(&parsed, "PUT", &presigned, &request);
    /* The body headers follow the tampered values, as an attacker's
     * client would send them. */
    if (which == TYPE) {
      request.content_type = "audio/x-wav";
    }
    if (which == LENGTH) {
      request.content_length = 1235;
    }
    ap_error_t error = {0};
    if (verify(fixture, &request, 0, &error) != AP_ERR_SIGNATURE) {
      fail_msg("tampered field %d verified: %s", which, error.message);
    }
  }

  parsed_url_t parsed = original;
  ap_signed_request_t request;
  ap_error_t error = {0};
  parsed.has_signature = 0;
  make_request(&parsed, "PUT", &presigned, &request);
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  assert_non_null(strstr(error.message, "X-Ap-Signature"));

  parsed = original;
  strcpy(parsed.signature, "not-hex");
  make_request(&parsed, "PUT", &presigned, &request);
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);

  parsed = original;
  strcpy(parsed.path, "/v1/objects/../escape");
  make_request(&parsed, "PUT", &presigned, &request);
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  ap_presigned_request_free(&presigned);
}

static void wrong_method_fails(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  presign_put(fixture, "uploads/abc.wav", &presigned);
  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  ap_signed_request_t request;
  ap_error_t error = {0};

  const char *methods[] = {"POST", "DELETE", "put", "GET"};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    make_request(&parsed, methods[i], &presigned, &request);
    assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  }
  ap_presigned_request_free(&presigned);
}

/* A URL signed for localhost does not verify when sent to 127.0.0.1,
 * even on the same port. */
static void wrong_host_fails(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  presign_put(fixture, "uploads/abc.wav", &presigned);
  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  ap_signed_request_t request;
  ap_error_t error = {0};

  const char *hosts[] = {"127.0.0.1:8080", "localhost:8081", "localhost",
                         "evil.example"};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
    make_request(&parsed, "PUT", &presigned, &request);
    request.host = hosts[i];
    assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
    assert_non_null(strstr(error.message, hosts[i]));
  }
  make_request(&parsed, "PUT", &presigned, &request);
  request.host = NULL;
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  ap_presigned_request_free(&presigned);
}

static void content_type_header_must_match(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  presign_put(fixture, "uploads/abc.wav", &presigned);
  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  ap_signed_request_t request;
  ap_error_t error = {0};

  make_request(&parsed, "PUT", &presigned, &request);
  request.content_type = "audio/x-wav";
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  assert_non_null(strstr(error.message, "audio/x-wav"));
  assert_non_null(strstr(error.message, "audio/wav"));

  request.content_type = NULL;
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  request.content_type = "audio/wav; charset=binary";
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  ap_presigned_request_free(&presigned);
}

static void content_length_header_must_match(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  presign_put(fixture, "uploads/abc.wav", &presigned);
  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  ap_signed_request_t request;
  ap_error_t error = {0};

  make_request(&parsed, "PUT", &presigned, &request);
  request.content_length = 1235;
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  assert_non_null(strstr(error.message, "1235"));
  request.content_length = 1233;
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  request.content_length = -1;
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  assert_non_null(strstr(error.message, "no Content-Length"));
  ap_presigned_request_free(&presigned);
}

/* The clock is passed in, so expiry is tested without waiting. */
static void expired_url_fails(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  ap_error_t error = {0};
  assert_int_equal(ap_object_store_presign(fixture->store, "PUT",
                                           "uploads/short.wav", "audio/wav", 10,
                                           1, &presigned, &error),
                   AP_OK);
  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  ap_signed_request_t request;
  make_request(&parsed, "PUT", &presigned, &request);

  assert_int_equal(verify(fixture, &request, presigned.expires_at, &error),
                   AP_OK);
  assert_int_equal(verify(fixture, &request, presigned.expires_at + 1, &error),
                   AP_ERR_EXPIRED);
  assert_non_null(strstr(error.message, "expired at"));
  assert_non_null(strstr(error.message, "request a new upload"));

  /* A URL claiming to live longer than 7 days is refused even when the
   * signature is right (no signer issues one). */
  assert_int_equal(
      verify(fixture, &request, presigned.expires_at - 604801, &error),
      AP_ERR_SIGNATURE);
  ap_presigned_request_free(&presigned);
}

static void expiry_over_seven_days_rejected(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  ap_error_t error = {0};
  assert_int_equal(ap_object_store_presign(fixture->store, "PUT", "k",
                                           "audio/wav", 1, 604801, &presigned,
                                           &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "604801"));
  assert_null(presigned.url);
  assert_int_equal(ap_object_store_presign(fixture->store, "PUT", "k",
                                           "audio/wav", 1, 0, &presigned,
                                           &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(ap_object_store_presign(fixture->store, "PUT", "k",
                                           "audio/wav", 1, 604800, &presigned,
                                           &error),
                   AP_OK);
  ap_presigned_request_free(&presigned);
}

static void presign_checks_arguments(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  ap_error_t error = {0};
  assert_int_equal(ap_object_store_presign(fixture->store, "DELETE", "k", NULL,
                                           -1, 60, &presigned, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(ap_object_store_presign(fixture->store, "PUT", "../k",
                                           "audio/wav", 1, 60, &presigned,
                                           &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(ap_object_store_presign(fixture->store, "PUT", "k",
                                           "audio/wav\r\nX-Evil: 1", 1, 60,
                                           &presigned, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(ap_object_store_presign(fixture->store, "PUT", "k", NULL, 1,
                                           60, &presigned, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(ap_object_store_presign(fixture->store, "PUT", "k",
                                           "audio/wav", -1, 60, &presigned,
                                           &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(ap_object_store_presign(fixture->store, "GET", "k",
                                           "audio/wav", 1, 60, &presigned,
                                           &error),
                   AP_ERR_INVALID_ARGUMENT);
}

static void presigned_get_verifies(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  ap_error_t error = {0};
  assert_int_equal(ap_object_store_presign(fixture->store, "GET",
                                           "renditions/a.opus", NULL, -1, 60,
                                           &presigned, &error),
                   AP_OK);
  assert_int_equal(presigned.header_count, 0);
  assert_null(strstr(presigned.url, "Content-Type"));

  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  ap_signed_request_t request;
  make_request(&parsed, "GET", &presigned, &request);
  char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  int64_t length = 0;
  assert_int_equal(ap_signed_request_verify(fixture->config, &request, 0, key,
                                            sizeof key, &length, &error),
                   AP_OK);
  assert_string_equal(key, "renditions/a.opus");
  assert_int_equal(length, -1);

  make_request(&parsed, "PUT", &presigned, &request);
  request.signed_content_type = "audio/ogg";
  request.signed_content_length = "0";
  request.content_type = "audio/ogg";
  request.content_length = 0;
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);

  make_request(&parsed, "GET", &presigned, &request);
  request.signed_content_type = "audio/ogg";
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  ap_presigned_request_free(&presigned);
}

static void other_secret_fails(void **state) {
  fixture_t *fixture = *state;
  ap_presigned_request_t presigned;
  presign_put(fixture, "uploads/abc.wav", &presigned);
  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  ap_signed_request_t request;
  make_request(&parsed, "PUT", &presigned, &request);

  fixture_t *other =
      open_fixture("http://localhost:8080", SECRET "-but-another-one");
  ap_error_t error = {0};
  assert_int_equal(verify(other, &request, 0, &error), AP_ERR_SIGNATURE);
  close_fixture(other);
  ap_presigned_request_free(&presigned);
}

static void missing_configuration_reported(void **state) {
  (void)state;
  ap_presigned_request_t presigned;
  ap_error_t error = {0};

  fixture_t *no_secret = open_fixture("http://localhost:8080", NULL);
  assert_int_equal(ap_object_store_presign(no_secret->store, "PUT", "k",
                                           "audio/wav", 1, 60, &presigned,
                                           &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "signing.secret"));
  close_fixture(no_secret);

  fixture_t *short_secret = open_fixture("http://localhost:8080", "short");
  assert_int_equal(ap_object_store_presign(short_secret->store, "PUT", "k",
                                           "audio/wav", 1, 60, &presigned,
                                           &error),
                   AP_ERR_INVALID_CONFIG);
  ap_signed_request_t request;
  ap_signed_request_init(&request);
  assert_int_equal(verify(short_secret, &request, 0, &error),
                   AP_ERR_INVALID_CONFIG);
  close_fixture(short_secret);

  fixture_t *no_base = open_fixture(NULL, SECRET);
  assert_int_equal(ap_object_store_presign(no_base->store, "PUT", "k",
                                           "audio/wav", 1, 60, &presigned,
                                           &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "public.base_url"));
  close_fixture(no_base);

  ap_config_t *config = NULL;
  ap_object_store_t *store = NULL;
  assert_int_equal(ap_config_new(&config, &error), AP_OK);
  assert_int_equal(
      ap_config_set(config, "public.base_url", "ftp://localhost/", &error),
      AP_OK);
  assert_int_equal(ap_object_store_open(config, &store, &error),
                   AP_ERR_INVALID_CONFIG);
  assert_null(store);
  ap_config_free(config);
}

/* A base URL's path appears in the presigned URL. The server may receive
 * the request path with or without it, because a proxy may strip it. */
static void base_url_path_prefix_kept(void **state) {
  (void)state;
  fixture_t *fixture =
      open_fixture("https://Media.Example.com:443/audio/", SECRET);
  ap_presigned_request_t presigned;
  presign_put(fixture, "uploads/abc.wav", &presigned);
  const char *prefix =
      "https://Media.Example.com:443/audio/v1/objects/uploads/abc.wav?";
  assert_memory_equal(presigned.url, prefix, strlen(prefix));

  parsed_url_t parsed;
  parse_url(presigned.url, &parsed);
  ap_signed_request_t request;
  make_request(&parsed, "PUT", &presigned, &request);
  ap_error_t error = {0};
  assert_int_equal(verify(fixture, &request, 0, &error), AP_OK);
  request.host = "media.example.com";
  assert_int_equal(verify(fixture, &request, 0, &error), AP_OK);
  request.path = "/v1/objects/uploads/abc.wav";
  assert_int_equal(verify(fixture, &request, 0, &error), AP_OK);
  request.path = "/other/v1/objects/uploads/abc.wav";
  assert_int_equal(verify(fixture, &request, 0, &error), AP_ERR_SIGNATURE);
  ap_presigned_request_free(&presigned);
  close_fixture(fixture);
}

#define SIGNING_TEST(name)                                                     \
  cmocka_unit_test_setup_teardown(name, setup_default, teardown_default)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hmac_matches_rfc_4231),
      cmocka_unit_test(hmac_reuse_follows_key_changes),
      cmocka_unit_test(hmac_threads_keep_own_keys),
      SIGNING_TEST(presigned_put_has_url_and_headers),
      SIGNING_TEST(valid_put_verifies),
      SIGNING_TEST(tampered_parameters_fail),
      SIGNING_TEST(wrong_method_fails),
      SIGNING_TEST(wrong_host_fails),
      SIGNING_TEST(content_type_header_must_match),
      SIGNING_TEST(content_length_header_must_match),
      SIGNING_TEST(expired_url_fails),
      SIGNING_TEST(expiry_over_seven_days_rejected),
      SIGNING_TEST(presign_checks_arguments),
      SIGNING_TEST(presigned_get_verifies),
      SIGNING_TEST(other_secret_fails),
      cmocka_unit_test(missing_configuration_reported),
      cmocka_unit_test(base_url_path_prefix_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
