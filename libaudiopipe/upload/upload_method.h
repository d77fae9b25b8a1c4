/* Shared by the files of the upload methods (post and multipart). */
#ifndef AP_UPLOAD_UPLOAD_METHOD_H
#define AP_UPLOAD_UPLOAD_METHOD_H

#include <stdint.h>

#include <audiopipe/config.h>
#include <audiopipe/context.h>
#include <audiopipe/upload.h>

#include "storage/s3_sigv4.h"

/* Reads uploads.multipart_threshold in bytes, checked to lie in 1 to 5
 * GiB. */
ap_status_t ap_upload_multipart_threshold(const ap_config_t *config,
                                          int64_t *threshold,
                                          ap_error_t *error);

/*
 * Computes the parts of a multipart upload of `size_bytes`: the part size
 * from uploads.part_size (5 MiB to 5 GiB), raised so that at most
 * AP_UPLOAD_MAX_PART_COUNT parts are needed, and the part count.
 */
ap_status_t ap_upload_part_layout(const ap_config_t *config, int64_t size_bytes,
                                  int64_t *part_size, int *part_count,
                                  ap_error_t *error);

/*
 * Builds the file store's form for a POST of at most `max_length` bytes
 * of `content_type` to `key` (upload_post.c). The form URL is
 * public.base_url + "/v1/objects", and the fields are key, Content-Type,
 * policy and x-ap-signature. It fills the S3 form type, so both stores
 * produce one kind of ticket.
 */
ap_status_t ap_upload_form_policy_create(ap_context_t *context, const char *key,
                                         const char *content_type,
                                         int64_t max_length,
                                         int64_t expires_seconds,
                                         ap_s3_post_form_t *out,
                                         ap_error_t *error);

#endif
