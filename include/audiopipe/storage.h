/*
 * Object storage: where uploaded recordings and their results live. A
 * client uploads straight to the store through a presigned URL. The
 * default store is a local directory (`objects.uri = file://PATH`) whose
 * presigned URLs audiopipe-httpd serves. This header gives that server
 * what it needs: open the store, verify a signed request, stream a PUT
 * body into the store, and read an object back for a signed GET.
 *
 * A presigned URL of the file store has the form
 *
 *   ${public.base_url}/v1/objects/<key>?X-Ap-Expires=<unix seconds>
 *       &X-Ap-Content-Type=<type>&X-Ap-Content-Length=<bytes>
 *       &X-Ap-Signature=<64 lowercase hex digits>
 *
 * (content type and length appear only for PUT). The signature is
 * HMAC-SHA256 keyed with `signing.secret` over the lines
 *
 *   AP1-HMAC-SHA256 \n METHOD \n host[:port] \n /v1/objects/<key> \n
 *   expires \n content type \n content length
 *
 * where the host is that of `public.base_url` in lower case without a
 * default port (80 for http, 443 for https). The signed path leaves out
 * any path of `public.base_url`, so a proxy may strip that path. Changing
 * any of these parts invalidates the URL.
 *
 * Thread-safety: an ap_object_store_t may be used from several threads at
 * once. An ap_object_upload_t belongs to one thread at a time.
 */
#ifndef AUDIOPIPE_STORAGE_H
#define AUDIOPIPE_STORAGE_H

#include <audiopipe/common.h>
#include <audiopipe/config.h>
#include <audiopipe/error.h>
#include <audiopipe/io.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Query parameter names of a presigned URL. */
#define AP_SIGNED_PARAM_EXPIRES "X-Ap-Expires"
#define AP_SIGNED_PARAM_CONTENT_TYPE "X-Ap-Content-Type"
#define AP_SIGNED_PARAM_CONTENT_LENGTH "X-Ap-Content-Length"
#define AP_SIGNED_PARAM_SIGNATURE "X-Ap-Signature"

/* The path prefix of object URLs, followed by the key. */
#define AP_OBJECT_URL_PATH_PREFIX "/v1/objects/"

/* Maximum lifetime of a presigned URL: 7 days, the limit of S3 SigV4. */
#define AP_PRESIGN_MAX_EXPIRY_SECONDS 604800

/* Maximum length of an object key in bytes. */
#define AP_OBJECT_KEY_MAX_LENGTH 512

/* Maximum length of one "/"-separated segment of a key in bytes: NAME_MAX
 * of Linux filesystems, because the file store makes each a file name. */
#define AP_OBJECT_KEY_SEGMENT_MAX_LENGTH 255

/* Maximum size of a stored content type, NUL included. */
#define AP_CONTENT_TYPE_MAX_SIZE 128

typedef struct ap_object_store ap_object_store_t;

/*
 * Opens the store named by the `objects.uri` key: `file://PATH` (PATH
 * relative to the working directory or absolute; the directory is created
 * if missing) or `s3://BUCKET?endpoint=URL&region=NAME&path_style=0|1&
 * public_endpoint=URL` (see docs/s3.md). Other schemes fail with
 * AP_ERR_UNSUPPORTED.
 * The store copies what it needs from `config`, which may be freed after.
 * Close with ap_object_store_close.
 */
AP_EXPORT ap_status_t ap_object_store_open(const ap_config_t *config,
                                           ap_object_store_t **out,
                                           ap_error_t *error);

/* Closes the store. NULL is allowed. Uploads and reads opened from the
 * store must be closed first. */
AP_EXPORT void ap_object_store_close(ap_object_store_t *store);

/* What the store records about one object. */
typedef struct ap_object_info {
  int64_t size;                                /* bytes */
  char content_type[AP_CONTENT_TYPE_MAX_SIZE]; /* as given when written */
  int64_t last_modified_ms;                    /* Unix time, ms */
} ap_object_info_t;

/*
 * Checks that `key` is a valid object key: 1 to 512 bytes of
 * [A-Za-z0-9._/-], with no leading or trailing "/", no empty segment, no
 * segment over 255 bytes and no segment that starts with ".". That rules
 * out "." and ".." segments and keeps names starting with a dot for the
 * store's temporary files.
 * Returns AP_OK or AP_ERR_INVALID_ARGUMENT naming the fault.
 */
AP_EXPORT ap_status_t ap_object_key_validate(const char *key,
                                             ap_error_t *error);

/* Fills `info` for `key`; AP_ERR_NOT_FOUND when there is no such object. */
AP_EXPORT ap_status_t ap_object_store_stat(ap_object_store_t *store,
                                           const char *key,
                                           ap_object_info_t *info,
                                           ap_error_t *error);

/*
 * Opens `key` for reading as a seekable ap_io_t whose ap_io_size is the
 * object size. A concurrent overwrite does not change the bytes that an
 * open reader returns. Fails with AP_ERR_NOT_FOUND when there is no such
 * object. Close the stream with ap_io_close.
 */
AP_EXPORT ap_status_t ap_object_store_open_read(ap_object_store_t *store,
                                                const char *key, ap_io_t **out,
                                                ap_error_t *error);

/*
 * The parts of a received request that a signed URL covers, as the HTTP
 * server saw them. Query values are percent-decoded; a missing parameter
 * or header is NULL. Initialise with ap_signed_request_init.
 */
typedef struct ap_signed_request {
  size_t struct_size;                /* sizeof(ap_signed_request_t) */
  const char *method;                /* "PUT" or "GET" */
  const char *host;                  /* Host header, e.g. "localhost:8080" */
  const char *path;                  /* URL path without the query */
  const char *expires;               /* X-Ap-Expires */
  const char *signed_content_type;   /* X-Ap-Content-Type */
  const char *signed_content_length; /* X-Ap-Content-Length */
  const char *signature;             /* X-Ap-Signature */
  const char *content_type;          /* Content-Type header */
  int64_t content_length;            /* Content-Length header, -1 if absent */
} ap_signed_request_t;

/* Zeroes `request`, sets struct_size and marks content_length absent. */
AP_EXPORT void ap_signed_request_init(ap_signed_request_t *request);

/*
 * Verifies a request against `signing.secret` and `public.base_url` from
 * `config`, at Unix time `now_seconds` (pass 0 for the current time). On
 * success copies the object key into `key` (`key_size` of at least
 * AP_OBJECT_KEY_MAX_LENGTH + 1 bytes) and, for a PUT, the signed length
 * into `*signed_length` (may be NULL; -1 for a GET).
 *
 * Fails with AP_ERR_SIGNATURE when:
 *   - a parameter is missing or malformed;
 *   - the signature does not match, because a part was tampered with, the
 *     method differs or the Host is not the one in public.base_url;
 *   - the Content-Type header differs from the signed type, or the
 *     Content-Length header from the signed length.
 * A URL whose expiry lies more than 7 days ahead of `now_seconds` also
 * fails with AP_ERR_SIGNATURE, because no signer issues one. Host names
 * compare without regard to case. Fails with AP_ERR_EXPIRED when the URL
 * is past its expiry, and with AP_ERR_INVALID_CONFIG when signing.secret
 * or public.base_url is unset or invalid. The signature is compared in
 * constant time. Thread-safe.
 */
AP_EXPORT ap_status_t ap_signed_request_verify(
    const ap_config_t *config, const ap_signed_request_t *request,
    int64_t now_seconds, char *key, size_t key_size, int64_t *signed_length,
    ap_error_t *error);

/*
 * Streaming upload of a request body of exactly `expected_length` bytes
 * into `key`. Write the body as it arrives; ap_object_upload_finish
 * commits the object atomically. Writing past the expected length fails
 * with AP_ERR_UPLOAD_TOO_LARGE and finishing short of it with
 * AP_ERR_SIZE_MISMATCH; in both cases, and when the upload is closed
 * without finishing, nothing is committed and an existing object under
 * `key` stays as it was. On the file store an upload only creates an
 * object. When one already exists under `key`, ap_object_upload_finish
 * fails with AP_ERR_CONFLICT and keeps it, so a presigned URL used again
 * cannot replace an object. On S3 the upload replaces it, as S3 does.
 * `content_type` is stored with the object (NULL
 * for application/octet-stream). ap_object_upload_begin fails with
 * AP_ERR_INVALID_ARGUMENT for an invalid key, content type or a negative
 * length, and with the store's errors (AP_ERR_PERMISSION for a symbolic
 * link in the key's path, AP_ERR_CONFLICT when an object is in the way,
 * AP_ERR_IO).
 */
typedef struct ap_object_upload ap_object_upload_t;

AP_EXPORT ap_status_t ap_object_upload_begin(
    ap_object_store_t *store, const char *key, const char *content_type,
    int64_t expected_length, ap_object_upload_t **out, ap_error_t *error);

/* Appends body bytes. After a failure every later call fails the same
 * way, so the caller may keep draining the connection. */
AP_EXPORT ap_status_t ap_object_upload_write(ap_object_upload_t *upload,
                                             const void *data, size_t size,
                                             ap_error_t *error);

/* Returns the number of body bytes accepted so far. */
AP_EXPORT int64_t ap_object_upload_received(const ap_object_upload_t *upload);

/* Commits the object when exactly the expected length arrived. */
AP_EXPORT ap_status_t ap_object_upload_finish(ap_object_upload_t *upload,
                                              ap_error_t *error);

/* Releases the upload, abandoning it unless it was finished. NULL is
 * allowed. */
AP_EXPORT void ap_object_upload_close(ap_object_upload_t *upload);

/*
 * Presigns a GET of `key`, valid for `expires_seconds` (1 to 604800), and
 * stores the absolute URL in `*url` (free it with ap_free) and its expiry
 * as Unix seconds in `*expires_at` (may be NULL). The URL is signed for
 * public.base_url, so it works only on that host. Fails with
 * AP_ERR_INVALID_ARGUMENT for a bad key or expiry and AP_ERR_INVALID_CONFIG
 * when signing.secret or public.base_url is unusable.
 */
AP_EXPORT ap_status_t ap_object_store_presign_get(ap_object_store_t *store,
                                                  const char *key,
                                                  int64_t expires_seconds,
                                                  char **url,
                                                  int64_t *expires_at,
                                                  ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
