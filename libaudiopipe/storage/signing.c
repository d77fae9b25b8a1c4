/*
 * Presigned URLs of the file store: the canonical string, its
 * HMAC-SHA256 under signing.secret, the URL a client is given, and the
 * verification audiopipe-httpd runs on every signed request. The format
 * is described in <audiopipe/storage.h>.
 */
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "core/error_internal.h"
#include "storage/storage_internal.h"

/* The string to sign: algorithm, method, authority, path, expiry, content
 * type and content length, one per line. */
#define CANONICAL_FORMAT                                                       \
  "AP1-HMAC-SHA256\n%s\n%s\n" AP_OBJECT_URL_PATH_PREFIX "%s\n%" PRId64         \
  "\n%s\n%s"

/* Origin, key, expiry, body parameters (PUT only) and signature. */
#define URL_FORMAT                                                             \
  "%s" AP_OBJECT_URL_PATH_PREFIX "%s?" AP_SIGNED_PARAM_EXPIRES "=%" PRId64     \
  "%s&" AP_SIGNED_PARAM_SIGNATURE "=%s"

/*
 * OpenSSL 3's one-shot HMAC() looks the MAC and the digest up in the
 * provider tables, under a lock, on every call, and keys a new context.
 * On the short strings signed here that cost several times the hashing.
 * The MAC is fetched once per process instead, and each thread keeps one
 * context with the key it used last, so repeated signing under the same
 * secret reuses the keyed state. Keys longer than HMAC_CACHED_KEY_MAX are
 * set again on every call.
 */
#define HMAC_CACHED_KEY_MAX 512

typedef struct hmac_cache {
  EVP_MAC_CTX *context;
  unsigned char key[HMAC_CACHED_KEY_MAX];
  size_t key_length; /* 0 when no key is set for reuse */
} hmac_cache_t;

static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac_algorithm; /* process lifetime */
static pthread_key_t hmac_cache_key;
static int hmac_cache_ready;

static void free_hmac_cache(void *pointer) {
  hmac_cache_t *cache = pointer;
  EVP_MAC_CTX_free(cache->context);
  OPENSSL_cleanse(cache, sizeof *cache);
  free(cache);
}

static void start_hmac_cache(void) {
  hmac_algorithm = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
  if (hmac_algorithm &&
      pthread_key_create(&hmac_cache_key, free_hmac_cache) == 0) {
    hmac_cache_ready = 1;
  }
}

/* Returns this thread's HMAC context, creating it on first use, or NULL
 * when OpenSSL could not provide one. */
static hmac_cache_t *thread_hmac_cache(void) {
  pthread_once(&hmac_once, start_hmac_cache);
  if (!hmac_cache_ready) {
    return NULL;
  }
  hmac_cache_t *cache = pthread_getspecific(hmac_cache_key);
  if (cache) {
    return cache;
  }
  cache = calloc(1, sizeof *cache);
  if (!cache) {
    return NULL;
  }
  cache->context = EVP_MAC_CTX_new(hmac_algorithm);
  if (!cache->context || pthread_setspecific(hmac_cache_key, cache) != 0) {
    free_hmac_cache(cache);
    return NULL;
  }
  return cache;
}

/* Keys `cache` with `key`, or only resets it when the key is the one it
 * already holds. Returns 1 on success. */
static int key_hmac_cache(hmac_cache_t *cache, const unsigned char *key,
                          size_t key_length) {
  if (key_length > 0 && key_length == cache->key_length &&
      CRYPTO_memcmp(key, cache->key, key_length) == 0) {
    /* A NULL key makes the provider start again from the keyed state. */
    return EVP_MAC_init(cache->context, NULL, 0, NULL);
  }
  OPENSSL_cleanse(cache->key, cache->key_length);
  cache->key_length = 0;
  OSSL_PARAM parameters[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
      OSSL_PARAM_construct_end()};
  /* A NULL key would mean "keep the old key", so an empty key is "". */
  const unsigned char *bytes = key_length ? key : (const unsigned char *)"";
  if (!EVP_MAC_init(cache->context, bytes, key_length, parameters)) {
    return 0;
  }
  if (key_length <= sizeof cache->key) {
    memcpy(cache->key, key, key_length);
    cache->key_length = key_length;
  }
  return 1;
}

ap_status_t ap_hmac_sha256(const void *key, size_t key_length, const void *data,
                           size_t data_length,
                           unsigned char digest[AP_HMAC_SHA256_SIZE],
                           ap_error_t *error) {
  hmac_cache_t *cache = thread_hmac_cache();
  if (cache) {
    size_t digest_length = 0;
    if (key_hmac_cache(cache, key, key_length) &&
        EVP_MAC_update(cache->context, data, data_length) &&
        EVP_MAC_final(cache->context, digest, &digest_length,
                      AP_HMAC_SHA256_SIZE) &&
        digest_length == AP_HMAC_SHA256_SIZE) {
      return AP_OK;
    }
    /* A context in an unknown state is keyed afresh next time. */
    OPENSSL_cleanse(cache->key, cache->key_length);
    cache->key_length = 0;
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INTERNAL,
                        "HMAC-SHA256 failed in OpenSSL");
  }

  unsigned int digest_length = 0;
  if (key_length > INT32_MAX ||
      !HMAC(EVP_sha256(), key, (int)key_length, data, data_length, digest,
            &digest_length) ||
      digest_length != AP_HMAC_SHA256_SIZE) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INTERNAL,
                        "HMAC-SHA256 failed in OpenSSL");
  }
  return AP_OK;
}

ap_status_t ap_signing_secret_check(const char *secret, ap_error_t *error) {
  if (!secret || !*secret) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "signing.secret is not set: set it (or "
                        "AUDIOPIPE_SIGNING_SECRET) to at least %d random bytes",
                        AP_SIGNING_SECRET_MIN_LENGTH);
  }
  if (strlen(secret) < AP_SIGNING_SECRET_MIN_LENGTH) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "signing.secret is %zu bytes long: use at least %d "
                        "random bytes",
                        strlen(secret), AP_SIGNING_SECRET_MIN_LENGTH);
  }
  return AP_OK;
}

void ap_base_url_free(ap_base_url_t *url) {
  if (!url) {
    return;
  }
  free(url->origin);
  free(url->authority);
  free(url->path_prefix);
  memset(url, 0, sizeof *url);
}

/*
 * Lower-cases an authority ("Host:Port") and drops the port when it is the
 * default of the scheme, so "LOCALHOST:80" and "localhost" compare equal
 * for http. Returns a new string or NULL when out of memory.
 */
static char *normalize_authority(const char *text, size_t length, int https) {
  const char *default_port = https ? ":443" : ":80";
  size_t port_length = strlen(default_port);
  if (length > port_length &&
      memcmp(text + length - port_length, default_port, port_length) == 0) {
    length -= port_length;
  }
  char *copy = malloc(length + 1);
  if (!copy) {
    return NULL;
  }
  for (size_t i = 0; i < length; i++) {
    copy[i] = (char)tolower((unsigned char)text[i]);
  }
  copy[length] = '\0';
  return copy;
}

static int is_authority_character(unsigned char c) {
  return isalnum(c) || c == '.' || c == '-' || c == ':' || c == '[' ||
         c == ']' || c == '_';
}

ap_status_t ap_base_url_parse(const char *text, ap_base_url_t *out,
                              ap_error_t *error) {
  memset(out, 0, sizeof *out);
  if (!text || !*text) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "public.base_url is not set: set it to the URL "
                        "clients use to reach audiopipe-httpd, such as "
                        "http://localhost:8080");
  }

  const char *rest = NULL;
  if (strncasecmp(text, "http://", 7) == 0) {
    rest = text + 7;
  } else if (strncasecmp(text, "https://", 8) == 0) {
    rest = text + 8;
    out->https = 1;
  } else {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "public.base_url \"%s\" is not an http:// or "
                        "https:// URL",
                        text);
  }

  size_t authority_length = strcspn(rest, "/");
  if (authority_length == 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "public.base_url \"%s\" has no host", text);
  }
  for (size_t i = 0; i < authority_length; i++) {
    if (!is_authority_character((unsigned char)rest[i])) {
      return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                          "public.base_url \"%s\" has an invalid character "
                          "in its host (user information, query and "
                          "fragment are not allowed)",
                          text);
    }
  }
  const char *path = rest + authority_length;
  if (strpbrk(path, "?#%")) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "public.base_url \"%s\" must not have a query, a "
                        "fragment or percent-escapes",
                        text);
  }
  size_t path_length = strlen(path);
  while (path_length > 0 && path[path_length - 1] == '/') {
    path_length--;
  }

  size_t origin_length = (size_t)(path - text) + path_length;
  out->origin = strndup(text, origin_length);
  out->authority = normalize_authority(rest, authority_length, out->https);
  out->path_prefix = strndup(path, path_length);
  if (!out->origin || !out->authority || !out->path_prefix) {
    ap_base_url_free(out);
    return AP_NO_MEMORY(error);
  }
  return AP_OK;
}

ap_status_t ap_signing_sign(const char *secret, const char *method,
                            const char *authority, const char *key,
                            int64_t expires_at, const char *content_type,
                            const char *content_length,
                            unsigned char digest[AP_HMAC_SHA256_SIZE],
                            ap_error_t *error) {
  /* Every field is free of "\n" (methods, authorities, keys, content
   * types and digits are checked before signing and verifying), so the
   * line structure cannot be shifted by a crafted value. */
  int length = snprintf(NULL, 0, CANONICAL_FORMAT, method, authority, key,
                        expires_at, content_type, content_length);
  if (length < 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INTERNAL,
                        "formatting the canonical request failed");
  }
  /* Canonical strings of ordinary keys fit on the stack. */
  char stack_buffer[512];
  char *canonical = stack_buffer;
  if ((size_t)length >= sizeof stack_buffer) {
    canonical = malloc((size_t)length + 1);
    if (!canonical) {
      return AP_NO_MEMORY(error);
    }
  }
  snprintf(canonical, (size_t)length + 1, CANONICAL_FORMAT, method, authority,
           key, expires_at, content_type, content_length);

  ap_status_t status = ap_hmac_sha256(secret, strlen(secret), canonical,
                                      (size_t)length, digest, error);
  OPENSSL_cleanse(canonical, (size_t)length);
  if (canonical != stack_buffer) {
    free(canonical);
  }
  return status;
}

static void hex_encode(const unsigned char *bytes, size_t count, char *text) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < count; i++) {
    text[2 * i] = digits[bytes[i] >> 4];
    text[2 * i + 1] = digits[bytes[i] & 0x0f];
  }
  text[2 * count] = '\0';
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

/* Decodes exactly 2 * count hex digits; returns 0 or -1. */
static int hex_decode(const char *text, unsigned char *bytes, size_t count) {
  if (strlen(text) != 2 * count) {
    return -1;
  }
  for (size_t i = 0; i < count; i++) {
    int high = hex_value(text[2 * i]);
    int low = hex_value(text[2 * i + 1]);
    if (high < 0 || low < 0) {
      return -1;
    }
    bytes[i] = (unsigned char)(high << 4 | low);
  }
  return 0;
}

/* Appends `text` percent-encoded (all but RFC 3986 unreserved bytes). */
static size_t percent_encode(const char *text, char *out) {
  static const char digits[] = "0123456789ABCDEF";
  size_t length = 0;
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    if (isalnum(*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~') {
      out[length++] = (char)*c;
    } else {
      out[length++] = '%';
      out[length++] = digits[*c >> 4];
      out[length++] = digits[*c & 0x0f];
    }
  }
  out[length] = '\0';
  return length;
}

static ap_status_t add_header(ap_presigned_request_t *out, const char *name,
                              const char *value, ap_error_t *error) {
  ap_presigned_header_t *grown =
      realloc(out->headers, (out->header_count + 1) * sizeof *out->headers);
  if (!grown) {
    return AP_NO_MEMORY(error);
  }
  out->headers = grown;
  ap_presigned_header_t *header = &out->headers[out->header_count];
  header->name = strdup(name);
  header->value = strdup(value);
  out->header_count++;
  if (!header->name || !header->value) {
    return AP_NO_MEMORY(error);
  }
  return AP_OK;
}

ap_status_t ap_signing_presign_url(const ap_base_url_t *base_url,
                                   const char *secret, const char *method,
                                   const char *key, const char *content_type,
                                   int64_t content_length, int64_t expires_at,
                                   ap_presigned_request_t *out,
                                   ap_error_t *error) {
  memset(out, 0, sizeof *out);
  int is_put = strcmp(method, "PUT") == 0;

  char length_text[32] = "";
  if (is_put) {
    snprintf(length_text, sizeof length_text, "%" PRId64, content_length);
  }
  const char *signed_type = is_put ? content_type : "";

  unsigned char digest[AP_HMAC_SHA256_SIZE];
  ap_status_t status =
      ap_signing_sign(secret, method, base_url->authority, key, expires_at,
                      signed_type, length_text, digest, error);
  if (status != AP_OK) {
    return status;
  }
  char signature[AP_HMAC_SHA256_HEX_SIZE];
  hex_encode(digest, sizeof digest, signature);

  /* A content type triples at most when percent-encoded. */
  char encoded_type[3 * AP_CONTENT_TYPE_MAX_SIZE + 1];
  percent_encode(signed_type, encoded_type);
  char body_parameters[sizeof encoded_type + 96] = "";
  if (is_put) {
    snprintf(body_parameters, sizeof body_parameters,
             "&" AP_SIGNED_PARAM_CONTENT_TYPE
             "=%s&" AP_SIGNED_PARAM_CONTENT_LENGTH "=%s",
             encoded_type, length_text);
  }

  int length = snprintf(NULL, 0, URL_FORMAT, base_url->origin, key, expires_at,
                        body_parameters, signature);
  if (length < 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INTERNAL,
                        "formatting the presigned URL failed");
  }
  out->url = malloc((size_t)length + 1);
  out->method = strdup(method);
  if (!out->url || !out->method) {
    ap_presigned_request_free(out);
    return AP_NO_MEMORY(error);
  }
  snprintf(out->url, (size_t)length + 1, URL_FORMAT, base_url->origin, key,
           expires_at, body_parameters, signature);
  out->expires_at = expires_at;

  if (is_put) {
    status = add_header(out, "Content-Type", content_type, error);
    if (status == AP_OK) {
      status = add_header(out, "Content-Length", length_text, error);
    }
    if (status != AP_OK) {
      ap_presigned_request_free(out);
      return status;
    }
  }
  return AP_OK;
}

void ap_presigned_request_free(ap_presigned_request_t *request) {
  if (!request) {
    return;
  }
  for (size_t i = 0; i < request->header_count; i++) {
    free(request->headers[i].name);
    free(request->headers[i].value);
  }
  free(request->headers);
  free(request->method);
  free(request->url);
  memset(request, 0, sizeof *request);
}

void ap_signed_request_init(ap_signed_request_t *request) {
  if (!request) {
    return;
  }
  memset(request, 0, sizeof *request);
  request->struct_size = sizeof *request;
  request->content_length = -1;
}

/* Parses a non-negative decimal of at most 18 digits; returns 0 or -1. */
static int parse_decimal(const char *text, int64_t *value) {
  size_t length = strlen(text);
  if (length == 0 || length > 18) {
    return -1;
  }
  int64_t number = 0;
  for (size_t i = 0; i < length; i++) {
    if (text[i] < '0' || text[i] > '9') {
      return -1;
    }
    number = number * 10 + (text[i] - '0');
  }
  *value = number;
  return 0;
}

static void format_utc(int64_t seconds, char *text, size_t size) {
  time_t moment = (time_t)seconds;
  struct tm parts;
  if (!gmtime_r(&moment, &parts) ||
      strftime(text, size, "%Y-%m-%dT%H:%M:%SZ", &parts) == 0) {
    snprintf(text, size, "%" PRId64 " (Unix time)", seconds);
  }
}

/* Shows a request value in a message, "(missing)" when absent. */
static const char *shown(const char *value) {
  return value ? value : "(missing)";
}

/* Finds the key in the request path, which is the base URL's path prefix
 * (proxies may strip it) followed by /v1/objects/KEY. */
static const char *key_from_path(const ap_base_url_t *base_url,
                                 const char *path) {
  size_t prefix_length = strlen(base_url->path_prefix);
  if (prefix_length > 0 &&
      strncmp(path, base_url->path_prefix, prefix_length) == 0 &&
      strncmp(path + prefix_length, AP_OBJECT_URL_PATH_PREFIX,
              strlen(AP_OBJECT_URL_PATH_PREFIX)) == 0) {
    path += prefix_length;
  }
  if (strncmp(path, AP_OBJECT_URL_PATH_PREFIX,
              strlen(AP_OBJECT_URL_PATH_PREFIX)) != 0) {
    return NULL;
  }
  return path + strlen(AP_OBJECT_URL_PATH_PREFIX);
}

/* Checks the parts of the request the signature covers, except the
 * signature itself, and stores the parsed values. */
static ap_status_t check_request_fields(const ap_signed_request_t *request,
                                        const ap_base_url_t *base_url,
                                        const char **key, int64_t *expires_at,
                                        int64_t *signed_length,
                                        ap_error_t *error) {
  const char *method = request->method;
  if (!method || (strcmp(method, "PUT") != 0 && strcmp(method, "GET") != 0)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                        "method %s is not allowed on a signed URL: use "
                        "PUT or GET as signed",
                        shown(method));
  }
  if (!request->host) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                        "the request has no Host header: send Host as in "
                        "the signed URL");
  }
  char *authority = normalize_authority(request->host, strlen(request->host),
                                        base_url->https);
  if (!authority) {
    return AP_NO_MEMORY(error);
  }
  int host_matches = strcmp(authority, base_url->authority) == 0;
  free(authority);
  if (!host_matches) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                        "Host \"%.100s\" is not the host \"%s\" the URL was "
                        "signed for: send the request to %s",
                        request->host, base_url->authority, base_url->origin);
  }

  *key = request->path ? key_from_path(base_url, request->path) : NULL;
  if (!*key || ap_object_key_validate(*key, NULL) != AP_OK) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                        "path \"%.200s\" is not /v1/objects/ followed by a "
                        "valid object key",
                        shown(request->path));
  }

  if (!request->expires || parse_decimal(request->expires, expires_at) != 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                        "query parameter " AP_SIGNED_PARAM_EXPIRES
                        " is \"%.40s\": expected Unix seconds",
                        shown(request->expires));
  }

  *signed_length = -1;
  if (strcmp(method, "PUT") == 0) {
    if (!ap_content_type_is_valid(request->signed_content_type)) {
      return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                          "query parameter " AP_SIGNED_PARAM_CONTENT_TYPE
                          " is \"%.130s\": expected a media type",
                          shown(request->signed_content_type));
    }
    if (!request->signed_content_length ||
        parse_decimal(request->signed_content_length, signed_length) != 0) {
      return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                          "query parameter " AP_SIGNED_PARAM_CONTENT_LENGTH
                          " is \"%.40s\": expected a byte count",
                          shown(request->signed_content_length));
    }
  } else if (request->signed_content_type || request->signed_content_length) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                        "a signed GET carries no content type or length, "
                        "but the URL has %s: request a new URL",
                        shown(request->signed_content_type
                                  ? AP_SIGNED_PARAM_CONTENT_TYPE
                                  : AP_SIGNED_PARAM_CONTENT_LENGTH));
  }
  return AP_OK;
}

/* Checks the body headers of a PUT against the signed values. */
static ap_status_t check_body_headers(const ap_signed_request_t *request,
                                      int64_t signed_length,
                                      ap_error_t *error) {
  if (!request->content_type ||
      strcmp(request->content_type, request->signed_content_type) != 0) {
    return ap_error_set(
        error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
        "Content-Type \"%.130s\" differs from the signed "
        "type \"%s\": send Content-Type: %s",
        request->content_type ? request->content_type : "(missing)",
        request->signed_content_type, request->signed_content_type);
  }
  if (request->content_length != signed_length) {
    if (request->content_length < 0) {
      return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                          "the request has no Content-Length: send "
                          "Content-Length: %" PRId64 " as signed",
                          signed_length);
    }
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                        "Content-Length %" PRId64 " differs from the signed "
                        "length %" PRId64 ": upload exactly the signed bytes",
                        request->content_length, signed_length);
  }
  return AP_OK;
}

ap_status_t ap_signed_request_verify(const ap_config_t *config,
                                     const ap_signed_request_t *request,
                                     int64_t now_seconds, char *key,
                                     size_t key_size, int64_t *signed_length,
                                     ap_error_t *error) {
  if (!config || !request || !key) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_signed_request_verify: config, request and key "
                        "are required");
  }
  if (request->struct_size < sizeof *request) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_signed_request_verify: struct_size %zu is smaller "
                        "than sizeof(ap_signed_request_t) %zu: call "
                        "ap_signed_request_init",
                        request->struct_size, sizeof *request);
  }

  const char *secret = ap_config_get(config, "signing.secret");
  ap_status_t status = ap_signing_secret_check(secret, error);
  if (status != AP_OK) {
    return status;
  }
  ap_base_url_t base_url;
  status = ap_base_url_parse(ap_config_get(config, "public.base_url"),
                             &base_url, error);
  if (status != AP_OK) {
    return status;
  }

  const char *request_key = NULL;
  int64_t expires_at = 0;
  int64_t length = -1;
  status = check_request_fields(request, &base_url, &request_key, &expires_at,
                                &length, error);

  /* The signature is checked before the expiry, so an altered expiry is
   * reported as tampering rather than as a stale URL. */
  unsigned char expected[AP_HMAC_SHA256_SIZE];
  unsigned char received[AP_HMAC_SHA256_SIZE];
  if (status == AP_OK &&
      (!request->signature ||
       hex_decode(request->signature, received, sizeof received) != 0)) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                          "query parameter " AP_SIGNED_PARAM_SIGNATURE
                          " is \"%.80s\": expected 64 hex digits",
                          shown(request->signature));
  }
  if (status == AP_OK) {
    int is_put = strcmp(request->method, "PUT") == 0;
    status = ap_signing_sign(
        secret, request->method, base_url.authority, request_key, expires_at,
        is_put ? request->signed_content_type : "",
        is_put ? request->signed_content_length : "", expected, error);
  }
  if (status == AP_OK &&
      CRYPTO_memcmp(expected, received, sizeof expected) != 0) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                          "the signature of the URL for \"%s\" does not "
                          "match: the URL was altered, or signed for another "
                          "method or secret; request a new URL",
                          request_key);
  }
  ap_base_url_free(&base_url);
  if (status != AP_OK) {
    return status;
  }

  int64_t now = now_seconds > 0 ? now_seconds : (int64_t)time(NULL);
  if (now > expires_at) {
    char when[64];
    format_utc(expires_at, when, sizeof when);
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_EXPIRED,
                        "the URL expired at %s: request a new upload", when);
  }
  if (expires_at - now > AP_PRESIGN_MAX_EXPIRY_SECONDS) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_SIGNATURE,
                        "the URL expires more than 7 days from now, which "
                        "no signer issues: request a new URL");
  }

  if (strcmp(request->method, "PUT") == 0) {
    status = check_body_headers(request, length, error);
    if (status != AP_OK) {
      return status;
    }
  }

  size_t key_length = strlen(request_key);
  if (key_size <= key_length) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_signed_request_verify: key buffer of %zu bytes "
                        "is too small: pass AP_OBJECT_KEY_MAX_LENGTH + 1",
                        key_size);
  }
  memcpy(key, request_key, key_length + 1);
  if (signed_length) {
    *signed_length = length;
  }
  return AP_OK;
}
