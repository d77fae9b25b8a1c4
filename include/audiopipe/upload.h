/*
 * Uploads: the client sends a recording straight to the object store.
 *
 *   1. ap_upload_create validates the request and returns a ticket: a
 *      presigned PUT URL, the exact headers the PUT must carry (the content
 *      type and length are signed into the URL), and its expiry.
 *   2. The client PUTs the bytes to the URL.
 *   3. ap_upload_complete checks what arrived (size, sniffed bytes, probe,
 *      optional virus scan), then creates the asset and its processing job
 *      together. A rejected object is deleted.
 *
 * The object key is built from a hash of the owner and a random id, never
 * from the client's file name, which is kept as metadata only.
 *
 * Validation errors name the request field at fault at the start of the
 * message ("filename: ...", "size_bytes: ...", "content_type: ...").
 *
 * Thread-safety: every function may be called from any thread with a
 * shared context. A ticket is immutable.
 */
#ifndef AUDIOPIPE_UPLOAD_H
#define AUDIOPIPE_UPLOAD_H

#include <audiopipe/common.h>
#include <audiopipe/context.h>
#include <audiopipe/error.h>
#include <audiopipe/meta.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Maximum length of a file name, in bytes of UTF-8. */
#define AP_UPLOAD_FILENAME_MAX_BYTES 255

/* Longest presigned URL lifetime uploads.url_ttl accepts: 7 days, in ms. */
#define AP_UPLOAD_MAX_URL_TTL_MS (7LL * 24 * 3600 * 1000)

typedef enum ap_upload_state {
  AP_UPLOAD_PENDING = 0,   /* URL issued, not completed */
  AP_UPLOAD_COMPLETED = 1, /* asset created */
  AP_UPLOAD_REJECTED = 2,  /* validation failed; object deleted */
  AP_UPLOAD_EXPIRED = 3    /* not completed in time; object deleted */
} ap_upload_state_t;

/* Returns "pending", "completed", "rejected", "expired" or "unknown". */
AP_EXPORT const char *ap_upload_state_name(ap_upload_state_t state);

/* A request for an upload URL. Initialise with ap_upload_request_init. */
typedef struct ap_upload_request {
  size_t struct_size;       /* sizeof(ap_upload_request_t) */
  const char *owner;        /* required: 1..AP_OWNER_MAX_BYTES bytes */
  const char *filename;     /* required: 1..255 bytes of UTF-8, no control
                               characters, no '/' or '\\' */
  int64_t size_bytes;       /* required: 1..uploads.max_bytes */
  const char *content_type; /* required: on uploads.allowed_content_types */
} ap_upload_request_t;

AP_EXPORT void ap_upload_request_init(ap_upload_request_t *request);

typedef struct ap_upload_ticket ap_upload_ticket_t;

/*
 * Validates `request`, records a pending upload and stores a ticket in
 * `*out` (free with ap_upload_ticket_free). Fails with
 * AP_ERR_INVALID_ARGUMENT (owner), AP_ERR_INVALID_FILENAME,
 * AP_ERR_UPLOAD_TOO_LARGE or AP_ERR_INVALID_ARGUMENT (size_bytes) and
 * AP_ERR_CONTENT_TYPE, each naming the field; AP_ERR_INVALID_CONFIG when
 * public.base_url is not set, because a URL cannot be signed without it.
 */
AP_EXPORT ap_status_t ap_upload_create(ap_context_t *context,
                                       const ap_upload_request_t *request,
                                       ap_upload_ticket_t **out,
                                       ap_error_t *error);

AP_EXPORT void ap_upload_ticket_free(ap_upload_ticket_t *ticket);

/* Ticket getters. Strings belong to the ticket. */
AP_EXPORT const char *ap_upload_ticket_id(const ap_upload_ticket_t *ticket);
AP_EXPORT const char *
ap_upload_ticket_object_key(const ap_upload_ticket_t *ticket);
/* The presigned URL, on public.base_url. */
AP_EXPORT const char *ap_upload_ticket_url(const ap_upload_ticket_t *ticket);
/* Always "PUT" in this version. */
AP_EXPORT const char *ap_upload_ticket_method(const ap_upload_ticket_t *ticket);
/* Headers the request must carry exactly (Content-Type, Content-Length). */
AP_EXPORT size_t
ap_upload_ticket_header_count(const ap_upload_ticket_t *ticket);
AP_EXPORT const char *
ap_upload_ticket_header_name(const ap_upload_ticket_t *ticket, size_t index);
AP_EXPORT const char *
ap_upload_ticket_header_value(const ap_upload_ticket_t *ticket, size_t index);
AP_EXPORT int64_t
ap_upload_ticket_expires_at_ms(const ap_upload_ticket_t *ticket);

/* Serialises the ticket as {"upload_id", "method", "url", "headers",
 * "expires_at"} into a new string; free it with ap_free. */
AP_EXPORT ap_status_t ap_upload_ticket_to_json(const ap_upload_ticket_t *ticket,
                                               char **json, ap_error_t *error);

/*
 * Validates the uploaded object and, when it is audio, creates the asset
 * (status pending, probe JSON stored) and its processing job in one
 * transaction, marks the upload completed and stores the asset in `*out`
 * (may be NULL). Completing an upload that is already completed returns
 * the same asset and adds no job.
 *
 * Errors: AP_ERR_NOT_FOUND (no such upload, or another owner's),
 * AP_ERR_UPLOAD_STATE (rejected or expired earlier), AP_ERR_EXPIRED,
 * AP_ERR_OBJECT_MISSING, AP_ERR_UPLOAD_TOO_LARGE, AP_ERR_SIZE_MISMATCH,
 * AP_ERR_EMPTY_INPUT, AP_ERR_MULTIPART_BODY, AP_ERR_NOT_AUDIO, the
 * probe's own errors (AP_ERR_UNSUPPORTED_CODEC,
 * AP_ERR_CHANNELS_UNSUPPORTED, ...), AP_ERR_INFECTED naming the signature
 * when uploads.clamd_address is set, and AP_ERR_UNAVAILABLE when the
 * scanner cannot be reached (retry later: an unscanned object is never
 * accepted). Every rejection of the bytes deletes the object and marks the
 * upload rejected with the code (AP_ERR_EXPIRED marks it expired).
 * AP_ERR_OBJECT_MISSING, retryable errors (AP_ERR_UNAVAILABLE, AP_ERR_IO)
 * and metadata errors leave the upload pending, so the client can still
 * PUT the file or the call can be retried.
 */
AP_EXPORT ap_status_t ap_upload_complete(ap_context_t *context,
                                         const char *owner,
                                         const char *upload_id,
                                         ap_asset_t **out, ap_error_t *error);

/*
 * Reads an upload's state, and for a rejected upload the ap_error_code_t
 * it was rejected with (0 otherwise; `rejection_code` may be NULL).
 * AP_ERR_NOT_FOUND for another owner's upload.
 */
AP_EXPORT ap_status_t ap_upload_get_state(
    ap_context_t *context, const char *owner, const char *upload_id,
    ap_upload_state_t *state, int *rejection_code, ap_error_t *error);

/*
 * Deletes the objects of pending uploads that expired before `now_ms` (0
 * for the current time), marks them expired and stores how many in
 * `*count` (may be NULL).
 */
AP_EXPORT ap_status_t ap_upload_cleanup_expired(ap_context_t *context,
                                                int64_t now_ms, int64_t *count,
                                                ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
