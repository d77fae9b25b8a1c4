/*
 * The S3 backend of the object store (objects.uri = s3://BUCKET?...),
 * and the S3-only calls a server needs beside the backend table: signing
 * with a given clock, browser POST policies and presigned multipart
 * uploads that a client can resume.
 *
 * The calls below take a store opened by ap_object_store_open from an
 * s3:// URI and fail with AP_ERR_UNSUPPORTED for any other store. Every
 * presigned URL and POST form is addressed to the public endpoint; the
 * library's own requests go to the internal endpoint. Thread-safe.
 */
#ifndef AP_STORAGE_S3_STORE_H
#define AP_STORAGE_S3_STORE_H

#include <stdint.h>

#include "storage/object_store.h"
#include "storage/s3_client.h"
#include "storage/s3_sigv4.h"

/* Smallest part S3 accepts in a multipart upload, except the last. */
#define AP_S3_MIN_PART_SIZE (5 * 1024 * 1024)

/* Most parts one multipart upload may have. */
#define AP_S3_MAX_PART_COUNT 10000

/*
 * Opens the backend for `uri` ("s3://BUCKET?endpoint=URL&region=NAME&
 * path_style=0|1&public_endpoint=URL"), with credentials from the
 * objects.s3_* keys of `config` or else AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. Fails with
 * AP_ERR_INVALID_CONFIG naming the part at fault. No request is sent.
 */
ap_status_t ap_s3_store_open(const char *uri, const ap_config_t *config,
                             const ap_object_store_backend_t **backend,
                             void **state, ap_error_t *error);

/*
 * Presigns like ap_object_store_presign, but signed at Unix time `now`
 * (so a test can make a URL that has already expired), for "GET", "PUT"
 * (Content-Type and, when `content_length` >= 0, Content-Length signed)
 * or "HEAD".
 */
ap_status_t ap_s3_presign_at(ap_object_store_t *store, const char *method,
                             const char *key, const char *content_type,
                             int64_t content_length, int64_t now,
                             int64_t expires_seconds,
                             ap_presigned_request_t *out, ap_error_t *error);

/*
 * Builds the form of a browser POST upload to `key` of `content_type`
 * and at most `max_length` bytes (S3 returns 400 EntityTooLarge above
 * it), signed at `now` (0 for the current time).
 */
ap_status_t ap_s3_post_form_create(ap_object_store_t *store, const char *key,
                                   const char *content_type, int64_t max_length,
                                   int64_t now, int64_t expires_seconds,
                                   ap_s3_post_form_t *out, ap_error_t *error);

/* One uploaded part of a multipart upload. */
typedef struct ap_s3_part {
  int part_number;            /* 1 to AP_S3_MAX_PART_COUNT */
  char etag[AP_S3_ETAG_SIZE]; /* with its quotes, as S3 returns it */
  int64_t size;               /* bytes; -1 when not known */
} ap_s3_part_t;

/* Starts a multipart upload to `key`; `*upload_id` is allocated. */
ap_status_t ap_s3_multipart_create(ap_object_store_t *store, const char *key,
                                   const char *content_type, char **upload_id,
                                   ap_error_t *error);

/* Presigns the PUT of part `part_number` for a client, signed at `now`
 * (0 for the current time). */
ap_status_t ap_s3_multipart_presign_part(ap_object_store_t *store,
                                         const char *key, const char *upload_id,
                                         int part_number, int64_t now,
                                         int64_t expires_seconds,
                                         ap_presigned_request_t *out,
                                         ap_error_t *error);

/* Lists the parts uploaded so far in part order, so a client can resume.
 * `*parts` is allocated (free it) and may be NULL when `*count` is 0. */
ap_status_t ap_s3_multipart_list_parts(ap_object_store_t *store,
                                       const char *key, const char *upload_id,
                                       ap_s3_part_t **parts, size_t *count,
                                       ap_error_t *error);

/* Completes the upload from `count` parts in ascending part order. */
ap_status_t ap_s3_multipart_complete(ap_object_store_t *store, const char *key,
                                     const char *upload_id,
                                     const ap_s3_part_t *parts, size_t count,
                                     ap_error_t *error);

/* Aborts the upload and frees its parts on the server. */
ap_status_t ap_s3_multipart_abort(ap_object_store_t *store, const char *key,
                                  const char *upload_id, ap_error_t *error);

#endif
