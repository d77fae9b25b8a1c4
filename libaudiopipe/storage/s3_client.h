/*
 * A small S3 REST client over libcurl: one request at a time per call,
 * signed by libcurl's SigV4 (CURLOPT_AWS_SIGV4), with connections and DNS
 * answers shared between calls, timeouts, retries with backoff for
 * idempotent requests, and S3 XML errors mapped to ap_error codes.
 *
 * Thread-safety: one client may run requests from several threads.
 */
#ifndef AP_STORAGE_S3_CLIENT_H
#define AP_STORAGE_S3_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "storage/s3_sigv4.h"

/* Size of a stored ETag with its quotes and NUL. */
#define AP_S3_ETAG_SIZE 128

typedef struct ap_s3_client ap_s3_client_t;

typedef struct ap_s3_client_options {
  const char *origin; /* "http://127.0.0.1:8000": scheme and host */
  const char *bucket;
  int path_style; /* 1: origin/bucket/key, 0: bucket.host/key */
  ap_s3_credentials_t credentials; /* copied */
  long connect_timeout_ms;         /* per connection attempt */
  long timeout_ms;                 /* per request, transfer included */
  int max_attempts;                /* tries of an idempotent request, >= 1 */
} ap_s3_client_options_t;

/* Opens a client; every string of `options` is copied. */
ap_status_t ap_s3_client_open(const ap_s3_client_options_t *options,
                              ap_s3_client_t **out, ap_error_t *error);
void ap_s3_client_close(ap_s3_client_t *client);

/* One request. Strings are not copied and must outlive the call. */
typedef struct ap_s3_request {
  const char *method;        /* "GET", "HEAD", "PUT", "POST", "DELETE" */
  const char *key;           /* object key, or NULL for the bucket */
  const ap_s3_pair_t *query; /* parameters, not encoded */
  size_t query_count;
  const char *content_type; /* Content-Type header, or NULL */
  const char *if_match;     /* If-Match header, or NULL */
  const void *body;         /* PUT or POST body, may be NULL */
  size_t body_size;
  int64_t range_first; /* first byte of a ranged GET, -1 for none */
  int64_t range_last;  /* last byte, inclusive */
  int idempotent;      /* 1 when a retry cannot change the outcome */
} ap_s3_request_t;

/* Fills `request` with no key, no body and no range. */
void ap_s3_request_init(ap_s3_request_t *request, const char *method);

typedef struct ap_s3_response {
  long status; /* HTTP status, 0 when no response arrived */
  char *body;  /* NUL-terminated, owned; NULL for HEAD */
  size_t body_size;
  char etag[AP_S3_ETAG_SIZE];
  char content_type[AP_CONTENT_TYPE_MAX_SIZE];
  int64_t content_length;   /* -1 when absent */
  int64_t last_modified_ms; /* 0 when absent */
} ap_s3_response_t;

void ap_s3_response_free(ap_s3_response_t *response);

/*
 * Sends `request` and stores the response in `response` (release it with
 * ap_s3_response_free, also after a failure). Returns AP_OK for a 2xx
 * status. Otherwise the error carries the S3 code and message and maps
 * NoSuchKey, NoSuchUpload, NoSuchBucket and 404 to AP_ERR_NOT_FOUND;
 * AccessDenied,
 * SignatureDoesNotMatch, InvalidAccessKeyId, RequestTimeTooSkewed and
 * other 403s to AP_ERR_PERMISSION; PreconditionFailed and 409 to
 * AP_ERR_CONFLICT; EntityTooLarge to AP_ERR_UPLOAD_TOO_LARGE; other 4xx
 * to AP_ERR_INVALID_ARGUMENT; 5xx and connection failures to
 * AP_ERR_UNAVAILABLE; and timeouts to AP_ERR_TIMED_OUT.
 */
ap_status_t ap_s3_client_perform(ap_s3_client_t *client,
                                 const ap_s3_request_t *request,
                                 ap_s3_response_t *response, ap_error_t *error);

/*
 * Builds the URL of `key` (NULL for the bucket) under `origin` with the
 * client's addressing, and the Host header value it implies, both
 * allocated. The key is percent-encoded with "/" kept.
 */
ap_status_t ap_s3_object_url(const char *origin, const char *bucket,
                             int path_style, const char *key, char **url,
                             char **host, char **encoded_path,
                             ap_error_t *error);

/*
 * Copies the text of the first <tag>...</tag> at or after `*cursor` in
 * `xml` into `value` with the five XML entities decoded, and moves
 * `*cursor` past it. Returns 1 when found, 0 when not or when the value
 * would not fit in `size` bytes.
 */
int ap_s3_xml_find(const char *xml, const char **cursor, const char *tag,
                   char *value, size_t size);

#endif
