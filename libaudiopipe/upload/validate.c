/* Validation of upload requests: owner, file name, size, content type. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <audiopipe/meta.h>

#include "core/error_internal.h"
#include "upload/upload_internal.h"

/* Decodes one UTF-8 sequence at `text`; returns its length and stores the
 * code point, or returns 0 for an invalid, overlong or surrogate form. */
static size_t decode_utf8(const unsigned char *text, size_t available,
                          uint32_t *code_point) {
  unsigned char lead = text[0];
  size_t length = lead < 0x80           ? 1
                  : (lead >> 5) == 0x6  ? 2
                  : (lead >> 4) == 0xe  ? 3
                  : (lead >> 3) == 0x1e ? 4
                                        : 0;
  if (length == 0 || length > available) {
    return 0;
  }
  uint32_t value = length == 1   ? lead
                   : length == 2 ? lead & 0x1fu
                   : length == 3 ? lead & 0x0fu
                                 : lead & 0x07u;
  for (size_t i = 1; i < length; i++) {
    if ((text[i] & 0xc0) != 0x80) {
      return 0;
    }
    value = value << 6 | (text[i] & 0x3fu);
  }
  static const uint32_t minimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (value < minimum[length] || value > 0x10ffff ||
      (value >= 0xd800 && value <= 0xdfff)) {
    return 0;
  }
  *code_point = value;
  return length;
}

int ap_upload_filename_is_valid(const char *text, size_t max_bytes) {
  size_t size = text ? strlen(text) : 0;
  if (size < 1 || size > max_bytes) {
    return 0;
  }
  const unsigned char *bytes = (const unsigned char *)text;
  for (size_t i = 0; i < size;) {
    uint32_t code_point = 0;
    size_t length = decode_utf8(bytes + i, size - i, &code_point);
    if (length == 0) {
      return 0;
    }
    if (code_point < 0x20 || code_point == 0x7f ||
        (code_point >= 0x80 && code_point <= 0x9f) || code_point == '/' ||
        code_point == '\\') {
      return 0;
    }
    i += length;
  }
  return 1;
}

/* Returns 1 when `type` is on the comma-separated `allowed` list,
 * compared without regard to case or surrounding spaces. */
static int content_type_allowed(const char *allowed, const char *type) {
  size_t type_length = strlen(type);
  const char *entry = allowed;
  while (entry && *entry) {
    while (*entry == ' ') {
      entry++;
    }
    const char *end = strchr(entry, ',');
    size_t length = end ? (size_t)(end - entry) : strlen(entry);
    while (length > 0 && entry[length - 1] == ' ') {
      length--;
    }
    if (length == type_length && strncasecmp(entry, type, length) == 0) {
      return 1;
    }
    entry = end ? end + 1 : NULL;
  }
  return 0;
}

ap_status_t ap_upload_validate_request(const ap_config_t *config,
                                       int64_t max_bytes,
                                       const ap_upload_request_t *request,
                                       char *content_type,
                                       size_t content_type_size,
                                       ap_error_t *error) {
  size_t owner_length = request->owner ? strlen(request->owner) : 0;
  if (owner_length < 1 || owner_length > AP_OWNER_MAX_BYTES ||
      !ap_upload_filename_is_valid(request->owner, AP_OWNER_MAX_BYTES)) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                        "owner: must be 1 to %d bytes of UTF-8 without "
                        "control characters or slashes",
                        AP_OWNER_MAX_BYTES);
  }
  if (!ap_upload_filename_is_valid(request->filename,
                                   AP_UPLOAD_FILENAME_MAX_BYTES)) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_FILENAME,
                        "filename: must be 1 to %d bytes of valid UTF-8 "
                        "without control characters, '/' or '\\'",
                        AP_UPLOAD_FILENAME_MAX_BYTES);
  }
  if (request->size_bytes < 1) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                        "size_bytes: %lld is invalid: declare the file's "
                        "size in bytes, at least 1",
                        (long long)request->size_bytes);
  }
  if (request->size_bytes > max_bytes) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_TOO_LARGE,
                        "size_bytes: %lld is over the limit of %lld bytes",
                        (long long)request->size_bytes, (long long)max_bytes);
  }

  const char *type = request->content_type;
  size_t type_length = type ? strlen(type) : 0;
  const char *allowed = ap_config_get(config, "uploads.allowed_content_types");
  if (type_length < 1 || type_length >= content_type_size ||
      !content_type_allowed(allowed ? allowed : "", type)) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_CONTENT_TYPE,
                        "content_type: %.100s is not allowed: use one of %s",
                        type ? type : "(none)", allowed ? allowed : "");
  }
  for (size_t i = 0; i <= type_length; i++) {
    content_type[i] = (char)tolower((unsigned char)type[i]);
  }
  return ap_upload_validate_method(config, request, error);
}
