/*
 * AWS Signature Version 4 for S3, as described in the AWS S3 API
 * reference ("Signature Calculations for the Authorization Header",
 * "Authenticating Requests: Using Query Parameters" and "Browser-Based
 * Uploads Using POST"): canonical request, string to sign, signing key,
 * presigned URLs and POST policies.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "core/error_internal.h"
#include "storage/s3_sigv4.h"
#include "storage/storage_internal.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* A growable NUL-terminated string. `failed` stays set after a failed
 * allocation, so a chain of appends needs one check at the end. */
typedef struct text_buffer {
  char *data;
  size_t length;
  size_t capacity;
  int failed;
} text_buffer_t;

static void text_append_bytes(text_buffer_t *text, const char *data,
                              size_t size) {
  if (text->failed) {
    return;
  }
  if (text->length + size + 1 > text->capacity) {
    size_t capacity = text->capacity ? text->capacity : 256;
    while (capacity < text->length + size + 1) {
      capacity *= 2;
    }
    char *grown = realloc(text->data, capacity);
    if (!grown) {
      text->failed = 1;
      return;
    }
    text->data = grown;
    text->capacity = capacity;
  }
  memcpy(text->data + text->length, data, size);
  text->length += size;
  text->data[text->length] = '\0';
}

static void text_append(text_buffer_t *text, const char *string) {
  text_append_bytes(text, string, strlen(string));
}

__attribute__((format(printf, 2, 3))) static void
text_append_format(text_buffer_t *text, const char *format, ...) {
  char small[256];
  va_list arguments;
  va_start(arguments, format);
  int length = vsnprintf(small, sizeof small, format, arguments);
  va_end(arguments);
  if (length < 0) {
    text->failed = 1;
    return;
  }
  if ((size_t)length < sizeof small) {
    text_append_bytes(text, small, (size_t)length);
    return;
  }
  char *large = malloc((size_t)length + 1);
  if (!large) {
    text->failed = 1;
    return;
  }
  va_start(arguments, format);
  vsnprintf(large, (size_t)length + 1, format, arguments);
  va_end(arguments);
  text_append_bytes(text, large, (size_t)length);
  free(large);
}

/* Hands the string to the caller, or fails with AP_ERR_NO_MEMORY. */
static ap_status_t text_finish(text_buffer_t *text, char **out,
                               ap_error_t *error) {
  if (text->failed || !text->data) {
    free(text->data);
    *out = NULL;
    return AP_NO_MEMORY(error);
  }
  *out = text->data;
  return AP_OK;
}

static int is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

ap_status_t ap_s3_uri_encode(const char *text, int keep_slash, char **out,
                             ap_error_t *error) {
  static const char hex[] = "0123456789ABCDEF";
  size_t length = strlen(text);
  char *encoded = malloc(length * 3 + 1);
  if (!encoded) {
    *out = NULL;
    return AP_NO_MEMORY(error);
  }
  size_t used = 0;
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)text[i];
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      encoded[used++] = (char)c;
    } else {
      encoded[used++] = '%';
      encoded[used++] = hex[c >> 4];
      encoded[used++] = hex[c & 0x0f];
    }
  }
  encoded[used] = '\0';
  *out = encoded;
  return AP_OK;
}

typedef struct encoded_pair {
  char *name;
  char *value;
} encoded_pair_t;

static int compare_encoded_pairs(const void *left, const void *right) {
  const encoded_pair_t *a = left;
  const encoded_pair_t *b = right;
  int order = strcmp(a->name, b->name);
  return order ? order : strcmp(a->value, b->value);
}

ap_status_t ap_s3_canonical_query(const ap_s3_pair_t *params, size_t count,
                                  char **out, ap_error_t *error) {
  *out = NULL;
  encoded_pair_t *pairs = calloc(count ? count : 1, sizeof *pairs);
  if (!pairs) {
    return AP_NO_MEMORY(error);
  }

  ap_status_t status = AP_OK;
  for (size_t i = 0; i < count && status == AP_OK; i++) {
    status = ap_s3_uri_encode(params[i].name, 0, &pairs[i].name, error);
    if (status == AP_OK) {
      status = ap_s3_uri_encode(params[i].value ? params[i].value : "", 0,
                                &pairs[i].value, error);
    }
  }

  if (status == AP_OK) {
    /* The byte order of the encoded names is the order SigV4 signs. */
    qsort(pairs, count, sizeof *pairs, compare_encoded_pairs);
    text_buffer_t text = {0};
    text_append(&text, "");
    for (size_t i = 0; i < count; i++) {
      text_append_format(&text, "%s%s=%s", i ? "&" : "", pairs[i].name,
                         pairs[i].value);
    }
    status = text_finish(&text, out, error);
  }

  for (size_t i = 0; i < count; i++) {
    free(pairs[i].name);
    free(pairs[i].value);
  }
  free(pairs);
  return status;
}

void ap_s3_format_amz_date(int64_t seconds, char date[AP_S3_AMZ_DATE_SIZE]) {
  time_t value = (time_t)seconds;
  struct tm utc;
  if (!gmtime_r(&value, &utc)) {
    memset(&utc, 0, sizeof utc);
  }
  strftime(date, AP_S3_AMZ_DATE_SIZE, "%Y%m%dT%H%M%SZ", &utc);
}

static void hex_encode(const unsigned char *digest, size_t size, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < size; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 0x0f];
  }
  hex[2 * size] = '\0';
}

ap_status_t ap_s3_sha256_hex(const void *data, size_t size,
                             char hex[AP_S3_HEX_DIGEST_SIZE],
                             ap_error_t *error) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  unsigned int digest_length = 0;
  if (!EVP_Digest(data, size, digest, &digest_length, EVP_sha256(), NULL) ||
      digest_length != SHA256_DIGEST_LENGTH) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INTERNAL,
                        "SHA-256 failed in OpenSSL");
  }
  hex_encode(digest, digest_length, hex);
  return AP_OK;
}

ap_status_t ap_s3_signing_key(const char *secret_access_key, const char *date,
                              const char *region, unsigned char key[32],
                              ap_error_t *error) {
  size_t secret_length = strlen(secret_access_key);
  char *first_key = malloc(secret_length + 5);
  if (!first_key) {
    return AP_NO_MEMORY(error);
  }
  memcpy(first_key, "AWS4", 4);
  memcpy(first_key + 4, secret_access_key, secret_length + 1);

  unsigned char date_key[AP_HMAC_SHA256_SIZE];
  unsigned char region_key[AP_HMAC_SHA256_SIZE];
  unsigned char service_key[AP_HMAC_SHA256_SIZE];
  ap_status_t status = ap_hmac_sha256(first_key, secret_length + 4, date,
                                      strlen(date), date_key, error);
  if (status == AP_OK) {
    status = ap_hmac_sha256(date_key, sizeof date_key, region, strlen(region),
                            region_key, error);
  }
  if (status == AP_OK) {
    status = ap_hmac_sha256(region_key, sizeof region_key, "s3", 2, service_key,
                            error);
  }
  if (status == AP_OK) {
    status = ap_hmac_sha256(service_key, sizeof service_key, "aws4_request", 12,
                            key, error);
  }
  OPENSSL_cleanse(first_key, secret_length + 4);
  free(first_key);
  return status;
}

/*
 * The signing key depends only on the secret, the day and the region.
 * Deriving it costs four HMACs, most of a presign. Each thread keeps the
 * last key it derived and the inputs behind it, so many URLs signed on one
 * day with one credential derive it once. Secrets longer than the buffer
 * are not cached (AWS secrets are 40 bytes).
 */
#define CACHED_SECRET_MAX_BYTES 128
#define CACHED_REGION_MAX_BYTES 64
typedef struct signing_key_cache {
  int valid;
  char day[9];
  char secret[CACHED_SECRET_MAX_BYTES + 1];
  char region[CACHED_REGION_MAX_BYTES + 1];
  unsigned char key[AP_HMAC_SHA256_SIZE];
} signing_key_cache_t;

static _Thread_local signing_key_cache_t signing_key_cache;

static ap_status_t cached_signing_key(const ap_s3_credentials_t *credentials,
                                      const char *day,
                                      unsigned char key[AP_HMAC_SHA256_SIZE],
                                      ap_error_t *error) {
  signing_key_cache_t *cache = &signing_key_cache;
  size_t secret_length = strlen(credentials->secret_access_key);
  size_t region_length = strlen(credentials->region);
  int cacheable = secret_length <= CACHED_SECRET_MAX_BYTES &&
                  region_length <= CACHED_REGION_MAX_BYTES;
  if (cacheable && cache->valid && strcmp(cache->day, day) == 0 &&
      strcmp(cache->secret, credentials->secret_access_key) == 0 &&
      strcmp(cache->region, credentials->region) == 0) {
    memcpy(key, cache->key, AP_HMAC_SHA256_SIZE);
    return AP_OK;
  }

  ap_status_t status = ap_s3_signing_key(credentials->secret_access_key, day,
                                         credentials->region, key, error);
  if (status != AP_OK || !cacheable) {
    return status;
  }
  memcpy(cache->day, day, sizeof cache->day);
  memcpy(cache->secret, credentials->secret_access_key, secret_length + 1);
  memcpy(cache->region, credentials->region, region_length + 1);
  memcpy(cache->key, key, AP_HMAC_SHA256_SIZE);
  cache->valid = 1;
  return AP_OK;
}

/* Signs `string_to_sign` under the key of `amz_date`'s day. */
static ap_status_t sign_string(const ap_s3_credentials_t *credentials,
                               const char *amz_date, const char *string_to_sign,
                               char signature[AP_S3_HEX_DIGEST_SIZE],
                               ap_error_t *error) {
  char day[9];
  memcpy(day, amz_date, 8);
  day[8] = '\0';
  unsigned char key[AP_HMAC_SHA256_SIZE];
  ap_status_t status = cached_signing_key(credentials, day, key, error);
  unsigned char digest[AP_HMAC_SHA256_SIZE];
  if (status == AP_OK) {
    status = ap_hmac_sha256(key, sizeof key, string_to_sign,
                            strlen(string_to_sign), digest, error);
  }
  OPENSSL_cleanse(key, sizeof key);
  if (status == AP_OK) {
    hex_encode(digest, sizeof digest, signature);
  }
  return status;
}

ap_status_t ap_s3_sign(const ap_s3_credentials_t *credentials,
                       const char *amz_date, const char *method,
                       const char *encoded_path, const char *canonical_query,
                       const ap_s3_pair_t *headers, size_t header_count,
                       const char *payload_hash,
                       char signature[AP_S3_HEX_DIGEST_SIZE],
                       char **canonical_request, ap_error_t *error) {
  if (canonical_request) {
    *canonical_request = NULL;
  }
  if (strlen(amz_date) != AP_S3_AMZ_DATE_SIZE - 1) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "X-Amz-Date \"%s\" is not YYYYMMDDTHHMMSSZ", amz_date);
  }

  /* Canonical request: method, path, query, headers, signed header
   * names and payload hash, one per line. */
  text_buffer_t request = {0};
  text_append_format(&request, "%s\n%s\n%s\n", method, encoded_path,
                     canonical_query);
  for (size_t i = 0; i < header_count; i++) {
    text_append_format(&request, "%s:%s\n", headers[i].name, headers[i].value);
  }
  text_append(&request, "\n");
  for (size_t i = 0; i < header_count; i++) {
    text_append_format(&request, "%s%s", i ? ";" : "", headers[i].name);
  }
  text_append_format(&request, "\n%s", payload_hash);
  char *request_text = NULL;
  ap_status_t status = text_finish(&request, &request_text, error);
  if (status != AP_OK) {
    return status;
  }

  char request_hash[AP_S3_HEX_DIGEST_SIZE];
  status =
      ap_s3_sha256_hex(request_text, strlen(request_text), request_hash, error);

  /* String to sign: algorithm, timestamp, scope and the request hash. */
  char *string_to_sign = NULL;
  if (status == AP_OK) {
    text_buffer_t text = {0};
    text_append_format(&text, ALGORITHM "\n%s\n%.8s/%s/s3/aws4_request\n%s",
                       amz_date, amz_date, credentials->region, request_hash);
    status = text_finish(&text, &string_to_sign, error);
  }
  if (status == AP_OK) {
    status =
        sign_string(credentials, amz_date, string_to_sign, signature, error);
  }
  free(string_to_sign);
  if (status == AP_OK && canonical_request) {
    *canonical_request = request_text;
  } else {
    free(request_text);
  }
  return status;
}

static ap_status_t check_expiry(int64_t expires_seconds, ap_error_t *error) {
  if (expires_seconds < 1 || expires_seconds > AP_PRESIGN_MAX_EXPIRY_SECONDS) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "expiry of %" PRId64 " s is outside 1 to %d s (7 "
                        "days), the longest S3 accepts for SigV4",
                        expires_seconds, AP_PRESIGN_MAX_EXPIRY_SECONDS);
  }
  return AP_OK;
}

static char *duplicate(const char *text) { return text ? strdup(text) : NULL; }

/* Adds the headers a client must send with a presigned PUT. */
static ap_status_t fill_client_headers(const ap_s3_presign_input_t *input,
                                       const char *length_text,
                                       ap_presigned_request_t *out,
                                       ap_error_t *error) {
  size_t count = (input->content_type ? 1 : 0) + (length_text ? 1 : 0);
  if (count == 0) {
    return AP_OK;
  }
  out->headers = calloc(count, sizeof *out->headers);
  if (!out->headers) {
    return AP_NO_MEMORY(error);
  }
  if (input->content_type) {
    ap_presigned_header_t *header = &out->headers[out->header_count++];
    header->name = duplicate("Content-Type");
    header->value = duplicate(input->content_type);
    if (!header->name || !header->value) {
      return AP_NO_MEMORY(error);
    }
  }
  if (length_text) {
    ap_presigned_header_t *header = &out->headers[out->header_count++];
    header->name = duplicate("Content-Length");
    header->value = duplicate(length_text);
    if (!header->name || !header->value) {
      return AP_NO_MEMORY(error);
    }
  }
  return AP_OK;
}

ap_status_t ap_s3_presign(const ap_s3_credentials_t *credentials,
                          const ap_s3_presign_input_t *input,
                          ap_presigned_request_t *out, ap_error_t *error) {
  memset(out, 0, sizeof *out);
  ap_status_t status = check_expiry(input->expires_seconds, error);
  if (status != AP_OK) {
    return status;
  }

  char amz_date[AP_S3_AMZ_DATE_SIZE];
  ap_s3_format_amz_date(input->now, amz_date);
  char credential[512];
  int written =
      snprintf(credential, sizeof credential, "%s/%.8s/%s/s3/aws4_request",
               credentials->access_key_id, amz_date, credentials->region);
  if (written < 0 || (size_t)written >= sizeof credential) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "S3 access key id or region is too long: the "
                        "credential scope must fit in %zu bytes",
                        sizeof credential);
  }
  char expires[24];
  snprintf(expires, sizeof expires, "%" PRId64, input->expires_seconds);
  char length_text[24];
  int has_length = input->content_length >= 0;
  if (has_length) {
    snprintf(length_text, sizeof length_text, "%" PRId64,
             input->content_length);
  }

  /* Signed headers in name order: content-length, content-type, host. */
  ap_s3_pair_t headers[3];
  size_t header_count = 0;
  char signed_headers[64] = "";
  if (has_length) {
    headers[header_count++] = (ap_s3_pair_t){"content-length", length_text};
  }
  if (input->content_type) {
    headers[header_count++] =
        (ap_s3_pair_t){"content-type", input->content_type};
  }
  headers[header_count++] = (ap_s3_pair_t){"host", input->host};
  for (size_t i = 0; i < header_count; i++) {
    if (i) {
      strcat(signed_headers, ";");
    }
    strcat(signed_headers, headers[i].name);
  }

  size_t param_count = input->param_count + 7;
  ap_s3_pair_t *params = calloc(param_count, sizeof *params);
  if (!params) {
    return AP_NO_MEMORY(error);
  }
  size_t used = 0;
  for (size_t i = 0; i < input->param_count; i++) {
    params[used++] = input->params[i];
  }
  params[used++] = (ap_s3_pair_t){"X-Amz-Algorithm", ALGORITHM};
  params[used++] = (ap_s3_pair_t){"X-Amz-Credential", credential};
  params[used++] = (ap_s3_pair_t){"X-Amz-Date", amz_date};
  params[used++] = (ap_s3_pair_t){"X-Amz-Expires", expires};
  if (credentials->session_token && *credentials->session_token) {
    params[used++] =
        (ap_s3_pair_t){"X-Amz-Security-Token", credentials->session_token};
  }
  params[used++] = (ap_s3_pair_t){"X-Amz-SignedHeaders", signed_headers};

  char *query = NULL;
  status = ap_s3_canonical_query(params, used, &query, error);
  free(params);
  char signature[AP_S3_HEX_DIGEST_SIZE];
  if (status == AP_OK) {
    status = ap_s3_sign(credentials, amz_date, input->method,
                        input->encoded_path, query, headers, header_count,
                        AP_S3_UNSIGNED_PAYLOAD, signature, NULL, error);
  }
  if (status == AP_OK) {
    text_buffer_t url = {0};
    text_append_format(&url, "%s%s?%s&X-Amz-Signature=%s", input->origin,
                       input->encoded_path, query, signature);
    status = text_finish(&url, &out->url, error);
  }
  free(query);
  if (status == AP_OK) {
    out->method = duplicate(input->method);
    if (!out->method) {
      status = AP_NO_MEMORY(error);
    }
  }
  if (status == AP_OK) {
    status =
        fill_client_headers(input, has_length ? length_text : NULL, out, error);
  }
  if (status != AP_OK) {
    ap_presigned_request_free(out);
    return status;
  }
  out->expires_at = input->now + input->expires_seconds;
  return AP_OK;
}

void ap_s3_post_form_free(ap_s3_post_form_t *form) {
  if (!form) {
    return;
  }
  for (size_t i = 0; i < form->field_count; i++) {
    free(form->fields[i].name);
    free(form->fields[i].value);
  }
  free(form->fields);
  free(form->url);
  memset(form, 0, sizeof *form);
}

/* Base64 of `text` without line breaks, as POST policies carry it. */
static ap_status_t base64_encode(const char *text, char **out,
                                 ap_error_t *error) {
  size_t length = strlen(text);
  char *encoded = malloc(4 * ((length + 2) / 3) + 1);
  if (!encoded) {
    return AP_NO_MEMORY(error);
  }
  EVP_EncodeBlock((unsigned char *)encoded, (const unsigned char *)text,
                  (int)length);
  *out = encoded;
  return AP_OK;
}

/* Appends a form field, copying both strings. */
static ap_status_t add_field(ap_s3_post_form_t *form, size_t capacity,
                             const char *name, const char *value,
                             ap_error_t *error) {
  if (form->field_count >= capacity) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INTERNAL,
                        "POST policy has more fields than reserved");
  }
  ap_presigned_header_t *field = &form->fields[form->field_count];
  field->name = strdup(name);
  field->value = strdup(value);
  form->field_count++;
  if (!field->name || !field->value) {
    return AP_NO_MEMORY(error);
  }
  return AP_OK;
}

/* Returns 1 when `text` can go between JSON quotes without escaping. */
static int is_plain_json_text(const char *text) {
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    if (*c < 0x20 || *c == '"' || *c == '\\' || *c >= 0x7f) {
      return 0;
    }
  }
  return 1;
}

ap_status_t ap_s3_post_policy(const ap_s3_credentials_t *credentials,
                              const ap_s3_post_policy_input_t *input,
                              ap_s3_post_form_t *out, ap_error_t *error) {
  memset(out, 0, sizeof *out);
  ap_status_t status = check_expiry(input->expires_seconds, error);
  if (status != AP_OK) {
    return status;
  }
  if (input->min_length < 0 || input->max_length < input->min_length) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "content-length-range %" PRId64 " to %" PRId64
                        " is invalid: pass 0 <= minimum <= maximum bytes",
                        input->min_length, input->max_length);
  }
  const char *token = credentials->session_token && *credentials->session_token
                          ? credentials->session_token
                          : NULL;
  if (!is_plain_json_text(input->bucket) || !is_plain_json_text(input->key) ||
      !is_plain_json_text(input->content_type) ||
      !is_plain_json_text(credentials->access_key_id) ||
      (token && !is_plain_json_text(token))) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "POST policy values must be printable ASCII without "
                        "quotes or backslashes: check the bucket, key, "
                        "content type and credentials");
  }

  char amz_date[AP_S3_AMZ_DATE_SIZE];
  ap_s3_format_amz_date(input->now, amz_date);
  char credential[512];
  int written =
      snprintf(credential, sizeof credential, "%s/%.8s/%s/s3/aws4_request",
               credentials->access_key_id, amz_date, credentials->region);
  if (written < 0 || (size_t)written >= sizeof credential) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "S3 access key id or region is too long for a "
                        "credential scope of %zu bytes",
                        sizeof credential);
  }
  time_t expiration_time = (time_t)(input->now + input->expires_seconds);
  struct tm utc;
  char expiration[32];
  if (!gmtime_r(&expiration_time, &utc) ||
      !strftime(expiration, sizeof expiration, "%Y-%m-%dT%H:%M:%SZ", &utc)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "POST policy expiration %" PRId64 " is not a valid "
                        "time",
                        (int64_t)expiration_time);
  }

  /* The policy names every field the form sends except the file. */
  text_buffer_t policy = {0};
  text_append_format(&policy,
                     "{\"expiration\":\"%s\",\"conditions\":["
                     "{\"bucket\":\"%s\"},{\"key\":\"%s\"},"
                     "{\"Content-Type\":\"%s\"},"
                     "[\"content-length-range\",%" PRId64 ",%" PRId64 "],"
                     "{\"x-amz-credential\":\"%s\"},"
                     "{\"x-amz-algorithm\":\"" ALGORITHM "\"},"
                     "{\"x-amz-date\":\"%s\"}",
                     expiration, input->bucket, input->key, input->content_type,
                     input->min_length, input->max_length, credential,
                     amz_date);
  if (token) {
    text_append_format(&policy, ",{\"x-amz-security-token\":\"%s\"}", token);
  }
  text_append(&policy, "]}");
  char *policy_json = NULL;
  status = text_finish(&policy, &policy_json, error);
  if (status != AP_OK) {
    return status;
  }
  char *policy_base64 = NULL;
  status = base64_encode(policy_json, &policy_base64, error);
  free(policy_json);
  char signature[AP_S3_HEX_DIGEST_SIZE];
  if (status == AP_OK) {
    status =
        sign_string(credentials, amz_date, policy_base64, signature, error);
  }

  enum { FIELD_CAPACITY = 8 };
  if (status == AP_OK) {
    out->fields = calloc(FIELD_CAPACITY, sizeof *out->fields);
    out->url = strdup(input->url);
    if (!out->fields || !out->url) {
      status = AP_NO_MEMORY(error);
    }
  }
  if (status == AP_OK) {
    status = add_field(out, FIELD_CAPACITY, "key", input->key, error);
  }
  if (status == AP_OK) {
    status = add_field(out, FIELD_CAPACITY, "Content-Type", input->content_type,
                       error);
  }
  if (status == AP_OK) {
    status =
        add_field(out, FIELD_CAPACITY, "x-amz-credential", credential, error);
  }
  if (status == AP_OK) {
    status =
        add_field(out, FIELD_CAPACITY, "x-amz-algorithm", ALGORITHM, error);
  }
  if (status == AP_OK) {
    status = add_field(out, FIELD_CAPACITY, "x-amz-date", amz_date, error);
  }
  if (status == AP_OK && token) {
    status =
        add_field(out, FIELD_CAPACITY, "x-amz-security-token", token, error);
  }
  if (status == AP_OK) {
    status = add_field(out, FIELD_CAPACITY, "policy", policy_base64, error);
  }
  if (status == AP_OK) {
    status =
        add_field(out, FIELD_CAPACITY, "x-amz-signature", signature, error);
  }
  free(policy_base64);
  if (status != AP_OK) {
    ap_s3_post_form_free(out);
    return status;
  }
  out->expires_at = input->now + input->expires_seconds;
  return AP_OK;
}
