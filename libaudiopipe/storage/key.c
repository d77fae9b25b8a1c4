/*
 * Object keys and listing prefixes. A key is both a URL path and, in the
 * file store, a path under the store's root. The rules are therefore
 * strict enough that no key can name anything outside the root or collide
 * with the store's own temporary files, whose names start with ".".
 */
#include <string.h>

#include "core/error_internal.h"
#include "storage/storage_internal.h"

static int is_key_character(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/';
}

/*
 * Checks `length` bytes of `text` against the key rules. When `partial`
 * is set the text may end with "/" or an incomplete segment, as a listing
 * prefix does. Returns NULL or a static description of the fault.
 */
static const char *check_segments(const char *text, size_t length,
                                  int partial) {
  if (length > AP_OBJECT_KEY_MAX_LENGTH) {
    return "is longer than 512 bytes";
  }
  for (size_t i = 0; i < length; i++) {
    if (!is_key_character((unsigned char)text[i])) {
      return "contains a character outside [A-Za-z0-9._/-]";
    }
  }
  if (length > 0 && text[0] == '/') {
    return "starts with \"/\"";
  }

  size_t start = 0;
  while (start <= length) {
    const char *slash = memchr(text + start, '/', length - start);
    size_t end = slash ? (size_t)(slash - text) : length;
    int last = slash == NULL;

    if (end == start && !(last && partial)) {
      return "has an empty segment (\"//\" or a trailing \"/\")";
    }
    if (end > start && text[start] == '.') {
      return "has a segment starting with \".\" (such as \".\" or \"..\")";
    }
    if (end - start > AP_OBJECT_KEY_SEGMENT_MAX_LENGTH) {
      return "has a segment longer than 255 bytes";
    }
    if (last) {
      break;
    }
    start = end + 1;
  }
  return NULL;
}

ap_status_t ap_object_key_validate(const char *key, ap_error_t *error) {
  if (!key) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "the object key is NULL");
  }
  size_t length = strlen(key);
  if (length == 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "the object key is empty");
  }
  const char *fault = check_segments(key, length, 0);
  if (fault) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "invalid object key \"%.80s\": it %s", key, fault);
  }
  return AP_OK;
}

ap_status_t ap_object_prefix_validate(const char *prefix, ap_error_t *error) {
  if (!prefix) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "the listing prefix is NULL: pass \"\" to list all");
  }
  size_t length = strlen(prefix);
  if (length == 0) {
    return AP_OK;
  }
  const char *fault = check_segments(prefix, length, 1);
  if (fault) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "invalid listing prefix \"%.80s\": it %s", prefix,
                        fault);
  }
  return AP_OK;
}

/* RFC 9110 tchar, the characters of a token. */
static int is_token_character(unsigned char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
      (c >= '0' && c <= '9')) {
    return 1;
  }
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int ap_content_type_is_valid(const char *type) {
  if (!type) {
    return 0;
  }
  size_t length = strlen(type);
  if (length == 0 || length >= AP_CONTENT_TYPE_MAX_SIZE) {
    return 0;
  }
  const char *slash = strchr(type, '/');
  if (!slash || slash == type || slash[1] == '\0') {
    return 0;
  }
  for (const char *cursor = type; *cursor; cursor++) {
    if (cursor != slash && !is_token_character((unsigned char)*cursor)) {
      return 0;
    }
  }
  return 1;
}
