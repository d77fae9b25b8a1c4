/* Validation of upload requests, shared by the upload calls and tests. */
#ifndef AP_UPLOAD_UPLOAD_INTERNAL_H
#define AP_UPLOAD_UPLOAD_INTERNAL_H

#include <stddef.h>

#include <audiopipe/config.h>
#include <audiopipe/upload.h>

#include "meta/meta_internal.h"
#include "storage/object_store.h"

struct json_object;

/* An issued ticket; immutable once returned. */
struct ap_upload_ticket {
  char *id;
  char *object_key;
  ap_presigned_request_t request;
  int64_t expires_at_ms;
  /* The POST and multipart methods (upload_method.c). */
  ap_upload_method_t upload_method;
  ap_presigned_header_t *fields; /* form fields of a post ticket */
  size_t field_count;
  int64_t part_size_bytes; /* multipart: size of every part but the last */
  int part_count;
  int part_number; /* a part ticket from ap_upload_part_presign, else 0 */
};

/*
 * Checks every field of `request` against the rules of <audiopipe/upload.h>
 * and uploads.allowed_content_types in `config`, and copies the content
 * type in lower case into `content_type`. Each error names its field.
 */
ap_status_t ap_upload_validate_request(const ap_config_t *config,
                                       int64_t max_bytes,
                                       const ap_upload_request_t *request,
                                       char *content_type,
                                       size_t content_type_size,
                                       ap_error_t *error);

/*
 * Checks `request` as ap_upload_create does before it writes anything:
 * every field, and that public.base_url is set. Copies the content type
 * in lower case into `content_type` (AP_CONTENT_TYPE_MAX_SIZE bytes).
 */
ap_status_t ap_upload_check_create(ap_context_t *context,
                                   const ap_upload_request_t *request,
                                   char *content_type, size_t content_type_size,
                                   ap_error_t *error);

/*
 * Issues the ticket of a request that ap_upload_check_create accepted,
 * with the content type it returned: records the pending upload (and
 * starts a multipart upload in the store) and stores the ticket in `*out`.
 */
ap_status_t ap_upload_issue(ap_context_t *context,
                            const ap_upload_request_t *request,
                            const char *content_type, ap_upload_ticket_t **out,
                            ap_error_t *error);

/*
 * Gives a put ticket its id and object key, presigns its PUT and fills
 * `record` with the pending upload to insert. The record's strings point
 * into `ticket`, `request` and `content_type`, which must outlive it.
 */
ap_status_t
ap_upload_prepare_put(ap_context_t *context, const ap_upload_request_t *request,
                      const char *content_type, ap_upload_ticket_t *ticket,
                      ap_upload_record_t *record, ap_error_t *error);

/* Returns 1 when `text` is 1..`max_bytes` bytes of valid UTF-8 with no
 * control characters (C0, DEL, C1) and no '/' or '\\'. */
int ap_upload_filename_is_valid(const char *text, size_t max_bytes);

/* The request's method; AP_UPLOAD_METHOD_PUT for a request struct from
 * before the field existed. */
ap_upload_method_t ap_upload_request_method(const ap_upload_request_t *request);

/* Checks the method against the size: put and post up to
 * uploads.multipart_threshold, multipart from AP_UPLOAD_MIN_PART_SIZE.
 * Errors name the field "method". */
ap_status_t ap_upload_validate_method(const ap_config_t *config,
                                      const ap_upload_request_t *request,
                                      ap_error_t *error);

/* Writes the object key of upload `id` of `owner` (upload.c). */
void ap_upload_object_key(const char *owner, const char *id, char *key,
                          size_t size);

/* Reads uploads.url_ttl in ms, checked to lie in 1 s .. 7 days
 * (upload.c). */
ap_status_t ap_upload_url_ttl(const ap_config_t *config, int64_t *ttl_ms,
                              ap_error_t *error);

/*
 * Fills a post or multipart ticket whose id and object key are set:
 * builds the form or starts the store's multipart upload, and records the
 * pending upload (upload_method.c).
 */
ap_status_t ap_upload_issue_method_ticket(ap_context_t *context,
                                          const ap_upload_request_t *request,
                                          const char *content_type,
                                          ap_upload_ticket_t *ticket,
                                          ap_error_t *error);

/* Frees what the method added to a ticket. */
void ap_upload_ticket_clear_method(ap_upload_ticket_t *ticket);

/* Adds the method's members to a ticket's JSON object. */
ap_status_t ap_upload_ticket_add_method_json(const ap_upload_ticket_t *ticket,
                                             struct json_object *root,
                                             ap_error_t *error);

/*
 * Fails a plain ap_upload_complete of a pending multipart upload that was
 * not assembled yet, with a message naming "parts"; AP_OK for anything
 * else (upload_multipart.c).
 */
ap_status_t ap_upload_multipart_check(ap_context_t *context,
                                      const ap_upload_record_t *upload,
                                      ap_error_t *error);

/* Deletes the stored parts and aborts the store's multipart upload of a
 * multipart upload; AP_OK at once for other methods. */
ap_status_t ap_upload_storage_abort(ap_context_t *context,
                                    const ap_upload_record_t *upload,
                                    ap_error_t *error);

#endif
