/*
 * Helpers shared by the files of the storage area: key and content type
 * rules, the HMAC signing of presigned URLs, and the constructor of the
 * local-directory backend. Not used outside libaudiopipe/storage.
 */
#ifndef AP_STORAGE_INTERNAL_H
#define AP_STORAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "storage/object_store.h"

/* Content type recorded when a writer passes none. */
#define AP_DEFAULT_CONTENT_TYPE "application/octet-stream"

/* Shortest accepted signing.secret, in bytes. */
#define AP_SIGNING_SECRET_MIN_LENGTH 32

/* Bytes of an HMAC-SHA256 digest, and of its hex form with the NUL. */
#define AP_HMAC_SHA256_SIZE 32
#define AP_HMAC_SHA256_HEX_SIZE 65

/*
 * Checks a listing prefix: "" or the start of a valid key, which may end
 * in "/" or part way through a segment. AP_ERR_INVALID_ARGUMENT when not.
 */
ap_status_t ap_object_prefix_validate(const char *prefix, ap_error_t *error);

/*
 * Returns 1 when `type` is a media type "type/subtype" of RFC 9110 token
 * characters, at most AP_CONTENT_TYPE_MAX_SIZE - 1 bytes, without
 * parameters. Parameters are refused so that the header a client sends
 * can be compared byte for byte with the signed value.
 */
int ap_content_type_is_valid(const char *type);

/* The parts of public.base_url a presigned URL is built from. */
typedef struct ap_base_url {
  char *origin;      /* "http://localhost:8080", as configured */
  char *authority;   /* "localhost:8080": lower case, no default port */
  char *path_prefix; /* "" or "/audio", without a trailing "/" */
  int https;         /* 1 for https, 0 for http */
} ap_base_url_t;

/*
 * Parses an http:// or https:// URL without user information, query or
 * fragment. Fails with AP_ERR_INVALID_CONFIG naming public.base_url.
 */
ap_status_t ap_base_url_parse(const char *text, ap_base_url_t *out,
                              ap_error_t *error);
void ap_base_url_free(ap_base_url_t *url);

/* Fails with AP_ERR_INVALID_CONFIG when signing.secret is unset or
 * shorter than AP_SIGNING_SECRET_MIN_LENGTH. */
ap_status_t ap_signing_secret_check(const char *secret, ap_error_t *error);

/* Computes HMAC-SHA256 of `data` under `key` with OpenSSL. */
ap_status_t ap_hmac_sha256(const void *key, size_t key_length, const void *data,
                           size_t data_length,
                           unsigned char digest[AP_HMAC_SHA256_SIZE],
                           ap_error_t *error);

/*
 * Computes the signature of a presigned request over the canonical
 * string described in <audiopipe/storage.h>. `content_type` and
 * `content_length` are "" for a GET.
 */
ap_status_t ap_signing_sign(const char *secret, const char *method,
                            const char *authority, const char *key,
                            int64_t expires_at, const char *content_type,
                            const char *content_length,
                            unsigned char digest[AP_HMAC_SHA256_SIZE],
                            ap_error_t *error);

/*
 * Builds the presigned URL and headers of the file store into `out`,
 * with the method, key, type and length already validated.
 */
ap_status_t ap_signing_presign_url(const ap_base_url_t *base_url,
                                   const char *secret, const char *method,
                                   const char *key, const char *content_type,
                                   int64_t content_length, int64_t expires_at,
                                   ap_presigned_request_t *out,
                                   ap_error_t *error);

/*
 * Opens the local-directory backend rooted at `root` (created with mode
 * 0755 when missing). `base_url` and `secret` may be NULL, in which case
 * presigning fails. Stores the backend state in `*state`.
 */
ap_status_t ap_file_store_open(const char *root, const char *base_url,
                               const char *secret,
                               const ap_object_store_backend_t **backend,
                               void **state, ap_error_t *error);

#endif
