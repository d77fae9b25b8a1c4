/*
 * AWS Signature Version 4 for S3: URI encoding, canonical requests, the
 * signing key, query-string presigning and browser POST policies. Pure
 * functions over OpenSSL HMAC-SHA256 and SHA-256, with the clock passed
 * in, so the AWS documentation's worked examples can be reproduced.
 *
 * Every returned string is allocated with malloc and owned by the caller.
 */
#ifndef AP_STORAGE_S3_SIGV4_H
#define AP_STORAGE_S3_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "storage/object_store.h"

/* Bytes of a hex SHA-256 or HMAC-SHA256 digest with its NUL. */
#define AP_S3_HEX_DIGEST_SIZE 65

/* Payload hash that presigned URLs and streamed bodies sign. */
#define AP_S3_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* Size of an X-Amz-Date value "YYYYMMDDTHHMMSSZ" with its NUL. */
#define AP_S3_AMZ_DATE_SIZE 17

/* The identity and scope a request is signed with. */
typedef struct ap_s3_credentials {
  const char *access_key_id;
  const char *secret_access_key;
  const char *session_token; /* NULL without temporary credentials */
  const char *region;        /* "us-east-1" */
} ap_s3_credentials_t;

/* A name and value pair: a query parameter or a header, not encoded. */
typedef struct ap_s3_pair {
  const char *name;
  const char *value;
} ap_s3_pair_t;

/*
 * Percent-encodes `text` as SigV4 requires (RFC 3986): every byte except
 * A-Z a-z 0-9 - . _ ~ becomes %XY with upper-case hex digits, and "/"
 * stays as it is when `keep_slash` is 1 (object key paths).
 */
ap_status_t ap_s3_uri_encode(const char *text, int keep_slash, char **out,
                             ap_error_t *error);

/*
 * Builds a canonical query string: each name and value encoded, pairs
 * sorted by encoded name and then value, joined with "&". A NULL value
 * is encoded as "" ("uploads=").
 */
ap_status_t ap_s3_canonical_query(const ap_s3_pair_t *params, size_t count,
                                  char **out, ap_error_t *error);

/* Formats Unix time `seconds` as "YYYYMMDDTHHMMSSZ" (UTC). */
void ap_s3_format_amz_date(int64_t seconds, char date[AP_S3_AMZ_DATE_SIZE]);

/* Writes the lower-case hex SHA-256 of `size` bytes at `data`. */
ap_status_t ap_s3_sha256_hex(const void *data, size_t size,
                             char hex[AP_S3_HEX_DIGEST_SIZE],
                             ap_error_t *error);

/*
 * Derives the signing key HMAC(HMAC(HMAC(HMAC("AWS4" secret, date),
 * region), "s3"), "aws4_request") for the 8-digit `date` (YYYYMMDD).
 */
ap_status_t ap_s3_signing_key(const char *secret_access_key, const char *date,
                              const char *region, unsigned char key[32],
                              ap_error_t *error);

/*
 * Signs one request and writes the hex signature. `encoded_path` is the
 * already encoded path ("/test.txt"), `canonical_query` the output of
 * ap_s3_canonical_query ("" for none), `headers` the signed headers with
 * lower-case names, sorted by name, values trimmed. `payload_hash` is
 * the hex SHA-256 of the body or AP_S3_UNSIGNED_PAYLOAD. When
 * `canonical_request` is not NULL it receives the canonical request text.
 */
ap_status_t ap_s3_sign(const ap_s3_credentials_t *credentials,
                       const char *amz_date, const char *method,
                       const char *encoded_path, const char *canonical_query,
                       const ap_s3_pair_t *headers, size_t header_count,
                       const char *payload_hash,
                       char signature[AP_S3_HEX_DIGEST_SIZE],
                       char **canonical_request, ap_error_t *error);

/* What a presigned URL covers. */
typedef struct ap_s3_presign_input {
  const char *method;       /* "GET", "PUT", "HEAD" or "DELETE" */
  const char *origin;       /* "http://127.0.0.1:8000", no trailing "/" */
  const char *host;         /* the Host header clients send: "127.0.0.1:8000" */
  const char *encoded_path; /* "/bucket/key" with the key encoded */
  const ap_s3_pair_t *params; /* extra parameters (partNumber, uploadId) */
  size_t param_count;
  const char *content_type; /* signed as a header when not NULL */
  int64_t content_length;   /* signed as a header when >= 0 */
  int64_t now;              /* Unix seconds the URL is signed at */
  int64_t expires_seconds;  /* 1 to AP_PRESIGN_MAX_EXPIRY_SECONDS */
} ap_s3_presign_input_t;

/*
 * Presigns a request: the URL carries X-Amz-Algorithm, -Credential,
 * -Date, -Expires, -SignedHeaders, -Security-Token (with a session
 * token) and -Signature, and `out` lists the headers the client must
 * send (Content-Type and Content-Length when signed). Fails with
 * AP_ERR_INVALID_ARGUMENT when the expiry is outside 1 to 604800 s,
 * because S3 rejects longer-lived SigV4 URLs.
 */
ap_status_t ap_s3_presign(const ap_s3_credentials_t *credentials,
                          const ap_s3_presign_input_t *input,
                          ap_presigned_request_t *out, ap_error_t *error);

/* The form fields of a browser POST upload. */
typedef struct ap_s3_post_form {
  char *url;                     /* where the form is posted */
  ap_presigned_header_t *fields; /* name and value of each form field */
  size_t field_count;
  int64_t expires_at; /* Unix seconds */
} ap_s3_post_form_t;

/* Frees the strings of `form` and zeroes it. NULL is allowed. */
void ap_s3_post_form_free(ap_s3_post_form_t *form);

/* What a POST policy allows. */
typedef struct ap_s3_post_policy_input {
  const char *url; /* bucket URL the form posts to */
  const char *bucket;
  const char *key;          /* exact key, already validated */
  const char *content_type; /* exact Content-Type field, validated */
  int64_t min_length;       /* content-length-range in bytes */
  int64_t max_length;
  int64_t now;
  int64_t expires_seconds; /* 1 to AP_PRESIGN_MAX_EXPIRY_SECONDS */
} ap_s3_post_policy_input_t;

/*
 * Builds a POST policy: a JSON document with the expiration and the
 * conditions bucket, key, Content-Type, content-length-range,
 * x-amz-credential, x-amz-algorithm, x-amz-date (and
 * x-amz-security-token), base64-encoded into the "policy" field and
 * signed into "x-amz-signature". The fields come out in the order a form
 * must send them, with the file field last and not included.
 */
ap_status_t ap_s3_post_policy(const ap_s3_credentials_t *credentials,
                              const ap_s3_post_policy_input_t *input,
                              ap_s3_post_form_t *out, ap_error_t *error);

#endif
