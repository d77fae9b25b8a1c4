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
  AP_UPLOAD_EXPIRED = 3,   /* not completed in time; object deleted */
  AP_UPLOAD_ABORTED = 4    /* aborted by the client; object deleted */
} ap_upload_state_t;

/* Returns "pending", "completed", "rejected", "expired", "aborted" or
 * "unknown". */
AP_EXPORT const char *ap_upload_state_name(ap_upload_state_t state);

/*
 * How the client sends the bytes.
 *
 *   put:       one presigned PUT of the whole file. Allowed up to
 *              uploads.multipart_threshold bytes.
 *   post:      a browser form POST (an S3 POST policy, or the file store's
 *              signed policy) whose content-length-range caps the body at
 *              the declared size_bytes, with the content type fixed.
 *              Allowed up to uploads.multipart_threshold bytes.
 *   multipart: the file in parts of ap_upload_ticket_part_size_bytes
 *              (the last may be shorter), each PUT to a URL from
 *              ap_upload_part_presign, then ap_upload_multipart_complete.
 *              Needs at least AP_UPLOAD_MIN_PART_SIZE bytes.
 */
typedef enum ap_upload_method {
  AP_UPLOAD_METHOD_PUT = 0,
  AP_UPLOAD_METHOD_POST = 1,
  AP_UPLOAD_METHOD_MULTIPART = 2
} ap_upload_method_t;

/* Smallest part of a multipart upload except the last: 5 MiB, the S3
 * minimum. uploads.part_size may not be lower. */
#define AP_UPLOAD_MIN_PART_SIZE (5LL * 1024 * 1024)

/* Most parts of one multipart upload, as in S3. */
#define AP_UPLOAD_MAX_PART_COUNT 10000

/* Returns "put", "post", "multipart" or "unknown". */
AP_EXPORT const char *ap_upload_method_name(ap_upload_method_t method);

/* Parses "put", "post" or "multipart" (as sent by HTTP clients); fails
 * with AP_ERR_INVALID_ARGUMENT naming the field "method". */
AP_EXPORT ap_status_t ap_upload_method_parse(const char *name,
                                             ap_upload_method_t *method,
                                             ap_error_t *error);

/* A request for an upload URL. Initialise with ap_upload_request_init. */
typedef struct ap_upload_request {
  size_t struct_size;       /* sizeof(ap_upload_request_t) */
  const char *owner;        /* required: 1..AP_OWNER_MAX_BYTES bytes */
  const char *filename;     /* required: 1..255 bytes of UTF-8, no control
                               characters, no '/' or '\\' */
  int64_t size_bytes;       /* required: 1..uploads.max_bytes */
  const char *content_type; /* required: on uploads.allowed_content_types */
  /* Added after the first release: callers built against the shorter
   * struct (a smaller struct_size) get AP_UPLOAD_METHOD_PUT. */
  ap_upload_method_t method; /* default AP_UPLOAD_METHOD_PUT */
} ap_upload_request_t;

/*
 * Zeroes the first `size` bytes of `request` (sizeof *request from the
 * caller's header) and sets struct_size to `size`.
 */
AP_EXPORT void ap_upload_request_init_size(ap_upload_request_t *request,
                                           size_t size);

/*
 * Sources built against this header reach ap_upload_request_init_size
 * through the macro, which passes their struct's size. The function
 * itself is the entry point of binaries built before the method field
 * existed (and of bindings that call the symbol), so it fills only that
 * first version of the struct and never writes past it.
 */
AP_EXPORT void ap_upload_request_init(ap_upload_request_t *request);
#define ap_upload_request_init(request)                                        \
  ap_upload_request_init_size((request), sizeof *(request))

typedef struct ap_upload_ticket ap_upload_ticket_t;

/*
 * Validates `request`, records a pending upload and stores a ticket in
 * `*out` (free with ap_upload_ticket_free). Fails with
 * AP_ERR_INVALID_ARGUMENT (owner), AP_ERR_INVALID_FILENAME,
 * AP_ERR_UPLOAD_TOO_LARGE or AP_ERR_INVALID_ARGUMENT (size_bytes),
 * AP_ERR_CONTENT_TYPE and AP_ERR_INVALID_ARGUMENT (method: put or post
 * above uploads.multipart_threshold, multipart below
 * AP_UPLOAD_MIN_PART_SIZE), each naming the field; AP_ERR_INVALID_CONFIG
 * when public.base_url is not set, because a URL cannot be signed without
 * it. A multipart upload also starts the multipart upload in the store.
 */
AP_EXPORT ap_status_t ap_upload_create(ap_context_t *context,
                                       const ap_upload_request_t *request,
                                       ap_upload_ticket_t **out,
                                       ap_error_t *error);

/*
 * Receives the outcome of ap_upload_create_async: a ticket that the
 * callback now owns (free it with ap_upload_ticket_free) and a NULL
 * `error`, or a NULL ticket and the error, which is valid only during the
 * call.
 */
typedef void (*ap_upload_created_t)(void *user_data, ap_upload_ticket_t *ticket,
                                    const ap_error_t *error);

/*
 * Starts what ap_upload_create does and returns without waiting for the
 * metadata write, so a server needs no thread per creation in progress.
 * Returns AP_OK when the creation is under way: `on_created` is then
 * called exactly once with `user_data`, on a library thread, and never
 * from inside this call. It may run before this function has returned,
 * so prepare whatever it touches first. Any other status is returned
 * with `error` filled and `on_created` is never called: the validation
 * errors of ap_upload_create, AP_ERR_INVALID_ARGUMENT when an argument
 * is NULL, and AP_ERR_UNAVAILABLE once ap_context_close has begun.
 * `request` and its strings may be freed once this function returns.
 *
 * On the SQLite store, a put upload is queued for the store's commit
 * thread, which writes up to 64 queued uploads in one transaction and
 * then calls each callback in turn. Other methods and stores run the
 * blocking part of ap_upload_create on a pool of up to 64 threads of the
 * context. Either
 * way the callback delays the creations queued behind it, so it should
 * only hand the outcome on. It may start further creations, blocking or
 * not, but must not close the context. ap_context_close finishes every
 * creation still queued, calling its callback, before it returns.
 */
AP_EXPORT ap_status_t ap_upload_create_async(ap_context_t *context,
                                             const ap_upload_request_t *request,
                                             ap_upload_created_t on_created,
                                             void *user_data,
                                             ap_error_t *error);

AP_EXPORT void ap_upload_ticket_free(ap_upload_ticket_t *ticket);

/* Ticket getters. Strings belong to the ticket. */
AP_EXPORT const char *ap_upload_ticket_id(const ap_upload_ticket_t *ticket);
AP_EXPORT const char *
ap_upload_ticket_object_key(const ap_upload_ticket_t *ticket);
/* The presigned URL, on public.base_url. */
AP_EXPORT const char *ap_upload_ticket_url(const ap_upload_ticket_t *ticket);
/* The HTTP method of the request to send: "PUT" for a put ticket, a
 * part ticket and each part of a multipart upload, "POST" for a post
 * ticket. */
AP_EXPORT const char *ap_upload_ticket_method(const ap_upload_ticket_t *ticket);
/* The upload method the ticket was issued for. */
AP_EXPORT ap_upload_method_t
ap_upload_ticket_upload_method(const ap_upload_ticket_t *ticket);
/* Headers the request must carry exactly (Content-Type, Content-Length). */
AP_EXPORT size_t
ap_upload_ticket_header_count(const ap_upload_ticket_t *ticket);
AP_EXPORT const char *
ap_upload_ticket_header_name(const ap_upload_ticket_t *ticket, size_t index);
AP_EXPORT const char *
ap_upload_ticket_header_value(const ap_upload_ticket_t *ticket, size_t index);
AP_EXPORT int64_t
ap_upload_ticket_expires_at_ms(const ap_upload_ticket_t *ticket);

/* Form fields of a post ticket, in the order the form must send them;
 * the file field comes after them. 0 fields for other tickets. */
AP_EXPORT size_t ap_upload_ticket_field_count(const ap_upload_ticket_t *ticket);
AP_EXPORT const char *
ap_upload_ticket_field_name(const ap_upload_ticket_t *ticket, size_t index);
AP_EXPORT const char *
ap_upload_ticket_field_value(const ap_upload_ticket_t *ticket, size_t index);

/* A multipart ticket's part size in bytes (every part but the last has
 * exactly this size) and its number of parts; 0 for other tickets. */
AP_EXPORT int64_t
ap_upload_ticket_part_size_bytes(const ap_upload_ticket_t *ticket);
AP_EXPORT int ap_upload_ticket_part_count(const ap_upload_ticket_t *ticket);
/* The part number of a ticket from ap_upload_part_presign, else 0. */
AP_EXPORT int ap_upload_ticket_part_number(const ap_upload_ticket_t *ticket);

/*
 * Serialises the ticket into a new string (free it with ap_free) as
 * {"upload_id", "upload_method", "method", "url", "headers",
 * "expires_at_ms"}, plus "fields" for a post ticket, "part_number" for a
 * part ticket; a multipart ticket has "part_size_bytes" and "part_count"
 * in place of "url" and "headers".
 */
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
 * for the current time), aborts their multipart uploads in the store,
 * marks them expired and stores how many in `*count` (may be NULL).
 */
AP_EXPORT ap_status_t ap_upload_cleanup_expired(ap_context_t *context,
                                                int64_t now_ms, int64_t *count,
                                                ap_error_t *error);

/* ---- Multipart uploads ---------------------------------------------- */

/* Longest ETag kept, NUL included. */
#define AP_UPLOAD_ETAG_SIZE 128

/* One part of a multipart upload. */
typedef struct ap_upload_part {
  int number; /* 1 to the ticket's part count */
  /* As the store returned it in the ETag header of the part's PUT: the
   * quoted hex MD5 of the part on the file store and on S3 without
   * server-side encryption. Quotes are optional when passed back. */
  char etag[AP_UPLOAD_ETAG_SIZE];
  int64_t size_bytes; /* -1 when the store does not say */
} ap_upload_part_t;

/*
 * Presigns the PUT of part `part_number` (1 to the part count) of a
 * pending multipart upload and stores it as a ticket in `*out`. The
 * ticket's URL and headers are those of the part. They are valid for
 * uploads.url_ttl but not beyond the upload's expiry. A part may be PUT
 * again (after a dropped connection, say) and the last PUT counts. Fails with
 * AP_ERR_NOT_FOUND (no such upload, or another owner's),
 * AP_ERR_UPLOAD_STATE (not a pending multipart upload), AP_ERR_EXPIRED
 * and AP_ERR_INVALID_ARGUMENT (part_number).
 */
AP_EXPORT ap_status_t ap_upload_part_presign(
    ap_context_t *context, const char *owner, const char *upload_id,
    int part_number, ap_upload_ticket_t **out, ap_error_t *error);

/*
 * Lists the parts stored so far in ascending part order, so a client can
 * resume: `*parts` is allocated (free it with ap_free; NULL when `*count`
 * is 0). Errors as ap_upload_part_presign.
 */
AP_EXPORT ap_status_t ap_upload_parts_list(ap_context_t *context,
                                           const char *owner,
                                           const char *upload_id,
                                           ap_upload_part_t **parts,
                                           size_t *count, ap_error_t *error);

/*
 * Assembles the object from `count` parts, which must be the parts 1 to
 * the ticket's part count in ascending order with the ETags their PUTs
 * returned, then completes the upload as ap_upload_complete does
 * (validation, asset and job). The object appears whole or not at all.
 * Calling it again on a completed upload returns the same asset.
 *
 * Errors beside those of ap_upload_complete: AP_ERR_INVALID_ARGUMENT
 * naming "parts" for a wrong order or count, an unknown number, an ETag
 * that does not match the stored part, or a part other than the last
 * that is not of the part size. These leave the upload pending, so the
 * client can PUT the part again. AP_ERR_UPLOAD_STATE when the upload is
 * not multipart.
 */
AP_EXPORT ap_status_t ap_upload_multipart_complete(
    ap_context_t *context, const char *owner, const char *upload_id,
    const ap_upload_part_t *parts, size_t count, ap_asset_t **out,
    ap_error_t *error);

/*
 * Aborts a pending upload of any method: deletes what was stored (the
 * object, the parts of a multipart upload, and the store's multipart
 * upload) and marks the upload aborted. Aborting an upload that is
 * already rejected, expired or aborted returns AP_OK. Fails with
 * AP_ERR_NOT_FOUND for another owner's upload and AP_ERR_UPLOAD_STATE for
 * a completed one (delete the asset instead).
 */
AP_EXPORT ap_status_t ap_upload_abort(ap_context_t *context, const char *owner,
                                      const char *upload_id, ap_error_t *error);

/* ---- The file store's POST form ------------------------------------- */

/*
 * The fields of a form POST to the file store's form URL
 * (public.base_url + "/v1/objects"), as the HTTP server received them.
 * Every field is required; NULL when missing.
 */
typedef struct ap_upload_form_fields {
  size_t struct_size;       /* sizeof(ap_upload_form_fields_t) */
  const char *key;          /* "key" */
  const char *content_type; /* "Content-Type" */
  const char *policy;       /* "policy": base64 of the JSON policy */
  const char *signature;    /* "x-ap-signature": hex HMAC-SHA256 */
} ap_upload_form_fields_t;

AP_EXPORT void ap_upload_form_fields_init(ap_upload_form_fields_t *fields);

/* A form upload in progress: the body of the form's file field. */
typedef struct ap_upload_form ap_upload_form_t;

/*
 * Verifies the form's signed policy with signing.secret at the current
 * time (expiry, key, content type) and opens a writer for the file field
 * under the policy's key. Fails with AP_ERR_SIGNATURE (missing, malformed
 * or tampered fields, a field that differs from the policy) and
 * AP_ERR_EXPIRED. Free with ap_upload_form_close.
 */
AP_EXPORT ap_status_t ap_upload_form_begin(
    ap_context_t *context, const ap_upload_form_fields_t *fields,
    ap_upload_form_t **out, ap_error_t *error);

/* Appends bytes of the file field. Past the policy's content-length-range
 * maximum it fails with AP_ERR_UPLOAD_TOO_LARGE (S3 returns
 * EntityTooLarge) and nothing is stored; every later call fails the same
 * way. */
AP_EXPORT ap_status_t ap_upload_form_write(ap_upload_form_t *form,
                                           const void *data, size_t size,
                                           ap_error_t *error);

/* Bytes of the file field accepted so far. */
AP_EXPORT int64_t ap_upload_form_received(const ap_upload_form_t *form);

/* The object key the form writes, owned by the form. */
AP_EXPORT const char *ap_upload_form_key(const ap_upload_form_t *form);

/* Commits the object atomically; fails with AP_ERR_SIZE_MISMATCH below
 * the policy's minimum. */
AP_EXPORT ap_status_t ap_upload_form_finish(ap_upload_form_t *form,
                                            ap_error_t *error);

/* Releases the form, discarding the bytes unless it was finished. NULL is
 * allowed. */
AP_EXPORT void ap_upload_form_close(ap_upload_form_t *form);

#ifdef __cplusplus
}
#endif

#endif
