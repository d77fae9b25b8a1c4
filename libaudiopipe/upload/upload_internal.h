/* Validation of upload requests, shared by the upload calls and tests. */
#ifndef AP_UPLOAD_UPLOAD_INTERNAL_H
#define AP_UPLOAD_UPLOAD_INTERNAL_H

#include <stddef.h>

#include <audiopipe/config.h>
#include <audiopipe/upload.h>

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

/* Returns 1 when `text` is 1..`max_bytes` bytes of valid UTF-8 with no
 * control characters (C0, DEL, C1) and no '/' or '\\'. */
int ap_upload_filename_is_valid(const char *text, size_t max_bytes);

#endif
