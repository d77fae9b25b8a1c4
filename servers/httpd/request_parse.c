/*
 * Parsers for client input: query strings, upload bodies, credentials and
 * presigned URL parameters.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "request_parse.h"

ap_status_t httpd_error_set(ap_error_t *error, ap_error_code_t code,
                            const char *format, ...) {
  if (error) {
    error->domain = AP_DOMAIN_HTTP;
    error->code = (uint32_t)code;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(error->message, sizeof error->message, format, arguments);
    va_end(arguments);
  }
  return code;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

/* Decodes `length` bytes of one name or value into `out` and returns the
 * decoded length, or -1 for a bad escape or a decoded NUL. */
static long decode_component(const char *text, size_t length, char *out) {
  size_t written = 0;
  for (size_t i = 0; i < length; i++) {
    char c = text[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      if (i + 2 >= length) {
        return -1;
      }
      int high = hex_value(text[i + 1]);
      int low = hex_value(text[i + 2]);
      if (high < 0 || low < 0) {
        return -1;
      }
      c = (char)(high * 16 + low);
      if (c == '\0') {
        return -1;
      }
      i += 2;
    } else if (c == '\0') {
      return -1;
    }
    out[written++] = c;
  }
  out[written] = '\0';
  return (long)written;
}

ap_status_t httpd_query_parse(const char *query, size_t length,
                              httpd_query_t *out, ap_error_t *error) {
  out->count = 0;
  if (length > HTTPD_QUERY_MAX_BYTES) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "query: %zu bytes is over the limit of %d", length,
                           HTTPD_QUERY_MAX_BYTES);
  }

  char *storage = out->storage;
  size_t position = 0;
  while (position < length) {
    const char *pair = query + position;
    size_t pair_length = 0;
    while (position + pair_length < length && pair[pair_length] != '&') {
      pair_length++;
    }
    position += pair_length + 1;
    if (pair_length == 0) {
      continue;
    }
    if (out->count == HTTPD_QUERY_MAX_PAIRS) {
      return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                             "query: more than %d parameters",
                             HTTPD_QUERY_MAX_PAIRS);
    }

    size_t name_length = 0;
    while (name_length < pair_length && pair[name_length] != '=') {
      name_length++;
    }
    size_t value_offset =
        name_length < pair_length ? name_length + 1 : pair_length;

    /* Decoding never grows text, and each component adds one NUL, so the
     * storage (query bytes plus two NULs per pair) always has room. */
    long name_written = decode_component(pair, name_length, storage);
    if (name_written < 0) {
      return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                             "query: parameter %zu has a malformed "
                             "%%-escape",
                             out->count + 1);
    }
    out->names[out->count] = storage;
    storage += name_written + 1;

    long value_written = decode_component(pair + value_offset,
                                          pair_length - value_offset, storage);
    if (value_written < 0) {
      return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                             "query: the value of parameter %zu has a "
                             "malformed %%-escape",
                             out->count + 1);
    }
    out->values[out->count] = storage;
    storage += value_written + 1;
    out->count++;
  }
  return AP_OK;
}

const char *httpd_query_get(const httpd_query_t *query, const char *name) {
  for (size_t i = 0; i < query->count; i++) {
    if (strcmp(query->names[i], name) == 0) {
      return query->values[i];
    }
  }
  return NULL;
}

size_t httpd_query_count(const httpd_query_t *query, const char *name) {
  size_t count = 0;
  for (size_t i = 0; i < query->count; i++) {
    count += strcmp(query->names[i], name) == 0;
  }
  return count;
}

/* Parses a whole string of decimal digits, no sign, into `value`. */
static int parse_decimal(const char *text, int64_t maximum, int64_t *value) {
  if (!text || !*text || strlen(text) > 19) {
    return -1;
  }
  int64_t result = 0;
  for (const char *c = text; *c; c++) {
    if (*c < '0' || *c > '9') {
      return -1;
    }
    int digit = *c - '0';
    if (result > (maximum - digit) / 10) {
      return -1;
    }
    result = result * 10 + digit;
  }
  *value = result;
  return 0;
}

ap_status_t httpd_parse_limit(const char *text, int default_limit,
                              int max_limit, int *limit, ap_error_t *error) {
  if (!text) {
    *limit = default_limit;
    return AP_OK;
  }
  int64_t value = 0;
  if (parse_decimal(text, max_limit, &value) != 0 || value < 1) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "limit: must be an integer from 1 to %d", max_limit);
  }
  *limit = (int)value;
  return AP_OK;
}

/* Parses `body` as a JSON object; NULL with `error` filled otherwise. */
static json_object *parse_object(const char *body, size_t length,
                                 ap_error_t *error) {
  if (length > (size_t)INT32_MAX) {
    httpd_error_set(error, AP_ERR_INVALID_ARGUMENT, "body: too large");
    return NULL;
  }
  json_tokener *tokener = json_tokener_new();
  if (!tokener) {
    httpd_error_set(error, AP_ERR_NO_MEMORY, "body: out of memory");
    return NULL;
  }
  json_object *object = json_tokener_parse_ex(tokener, body, (int)length);
  enum json_tokener_error parse_error = json_tokener_get_error(tokener);
  size_t consumed = json_tokener_get_parse_end(tokener);
  json_tokener_free(tokener);

  /* Trailing bytes other than whitespace make the body invalid. */
  int trailing = 0;
  for (size_t i = consumed; object && i < length; i++) {
    if (!isspace((unsigned char)body[i])) {
      trailing = 1;
    }
  }
  if (!object || parse_error != json_tokener_success || trailing) {
    json_object_put(object);
    httpd_error_set(error, AP_ERR_INVALID_ARGUMENT, "body: not valid JSON (%s)",
                    trailing ? "text after the object"
                             : json_tokener_error_desc(parse_error));
    return NULL;
  }
  if (!json_object_is_type(object, json_type_object)) {
    json_object_put(object);
    httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                    "body: must be a JSON object");
    return NULL;
  }
  return object;
}

/* Copies the string field `name` of `object` into `out`. */
static ap_status_t copy_string_field(json_object *object, const char *name,
                                     char *out, size_t out_size,
                                     ap_error_t *error) {
  json_object *value = NULL;
  if (!json_object_object_get_ex(object, name, &value)) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "%s: required field is missing", name);
  }
  if (!json_object_is_type(value, json_type_string)) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "%s: must be a string", name);
  }
  size_t length = (size_t)json_object_get_string_len(value);
  const char *text = json_object_get_string(value);
  if (length >= out_size) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "%s: %zu bytes is too long", name, length);
  }
  if (memchr(text, '\0', length)) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "%s: must not contain NUL characters", name);
  }
  memcpy(out, text, length + 1);
  return AP_OK;
}

ap_status_t httpd_upload_body_parse(const char *body, size_t length,
                                    httpd_upload_body_t *out,
                                    ap_error_t *error) {
  memset(out, 0, sizeof *out);
  json_object *object = parse_object(body, length, error);
  if (!object) {
    return error ? (ap_status_t)error->code : AP_ERR_INVALID_ARGUMENT;
  }

  ap_status_t status = AP_OK;
  json_object_object_foreach(object, name, value) {
    (void)value;
    if (strcmp(name, "filename") != 0 && strcmp(name, "size_bytes") != 0 &&
        strcmp(name, "content_type") != 0 && strcmp(name, "method") != 0) {
      status = httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                               "%.64s: unknown field; the fields are "
                               "filename, size_bytes, content_type and "
                               "method",
                               name);
      break;
    }
  }
  if (status == AP_OK) {
    status = copy_string_field(object, "filename", out->filename,
                               sizeof out->filename, error);
  }
  if (status == AP_OK) {
    json_object *size = NULL;
    if (!json_object_object_get_ex(object, "size_bytes", &size)) {
      status = httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                               "size_bytes: required field is missing");
    } else if (!json_object_is_type(size, json_type_int)) {
      status = httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                               "size_bytes: must be an integer");
    } else {
      errno = 0;
      out->size_bytes = json_object_get_int64(size);
      if (errno != 0) {
        status = httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                                 "size_bytes: out of range");
      }
    }
  }
  if (status == AP_OK) {
    status = copy_string_field(object, "content_type", out->content_type,
                               sizeof out->content_type, error);
  }
  if (status == AP_OK && json_object_object_get_ex(object, "method", NULL)) {
    status = copy_string_field(object, "method", out->method,
                               sizeof out->method, error);
  }
  json_object_put(object);
  return status;
}

ap_status_t httpd_complete_body_parse(const char *body, size_t length,
                                      ap_error_t *error) {
  size_t start = 0;
  while (start < length && isspace((unsigned char)body[start])) {
    start++;
  }
  if (start == length) {
    return AP_OK;
  }
  json_object *object = parse_object(body, length, error);
  if (!object) {
    return error ? (ap_status_t)error->code : AP_ERR_INVALID_ARGUMENT;
  }
  ap_status_t status = AP_OK;
  json_object_object_foreach(object, name, value) {
    (void)value;
    status = httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                             "%.64s: unknown field; the body must be empty "
                             "or {}",
                             name);
    break;
  }
  json_object_put(object);
  return status;
}

int httpd_bearer_parse(const char *header, const char **token, size_t *length) {
  if (!header || strncasecmp(header, "Bearer ", 7) != 0) {
    return 0;
  }
  const char *start = header + 7;
  while (*start == ' ') {
    start++;
  }
  size_t size = 0;
  while (start[size] > 0x20 && start[size] < 0x7F) {
    size++;
  }
  /* Only trailing spaces may follow the token. */
  for (const char *rest = start + size; *rest; rest++) {
    if (*rest != ' ') {
      return 0;
    }
  }
  if (size == 0 || size > 512) {
    return 0;
  }
  *token = start;
  *length = size;
  return 1;
}

static const char *const signed_parameters[] = {
    AP_SIGNED_PARAM_EXPIRES, AP_SIGNED_PARAM_CONTENT_TYPE,
    AP_SIGNED_PARAM_CONTENT_LENGTH, AP_SIGNED_PARAM_SIGNATURE};

int httpd_query_has_signature(const httpd_query_t *query) {
  for (size_t i = 0; i < sizeof signed_parameters / sizeof signed_parameters[0];
       i++) {
    if (httpd_query_count(query, signed_parameters[i]) > 0) {
      return 1;
    }
  }
  return 0;
}

ap_status_t httpd_signed_request_fill(
    ap_signed_request_t *request, const char *method, const char *host,
    const char *path, const httpd_query_t *query, const char *content_type,
    const char *content_length_header, ap_error_t *error) {
  ap_signed_request_init(request);
  for (size_t i = 0; i < sizeof signed_parameters / sizeof signed_parameters[0];
       i++) {
    /* A repeated parameter could make the verifier and a cache or proxy
     * read different values, so it is rejected outright. */
    if (httpd_query_count(query, signed_parameters[i]) > 1) {
      return httpd_error_set(error, AP_ERR_SIGNATURE,
                             "%s: appears more than once in the URL",
                             signed_parameters[i]);
    }
  }

  request->method = method;
  request->host = host;
  request->path = path;
  request->expires = httpd_query_get(query, AP_SIGNED_PARAM_EXPIRES);
  request->signed_content_type =
      httpd_query_get(query, AP_SIGNED_PARAM_CONTENT_TYPE);
  request->signed_content_length =
      httpd_query_get(query, AP_SIGNED_PARAM_CONTENT_LENGTH);
  request->signature = httpd_query_get(query, AP_SIGNED_PARAM_SIGNATURE);
  request->content_type = content_type;
  request->content_length = -1;
  if (content_length_header) {
    int64_t value = 0;
    if (parse_decimal(content_length_header, INT64_MAX, &value) != 0) {
      return httpd_error_set(error, AP_ERR_SIGNATURE,
                             "Content-Length: not a decimal byte count");
    }
    request->content_length = value;
  }
  return AP_OK;
}

ap_status_t httpd_waveform_format_parse(const char *format, const char *accept,
                                        httpd_waveform_format_t *out,
                                        ap_error_t *error) {
  if (format) {
    if (strcmp(format, "json") == 0) {
      *out = HTTPD_WAVEFORM_JSON;
      return AP_OK;
    }
    if (strcmp(format, "dat") == 0) {
      *out = HTTPD_WAVEFORM_DAT;
      return AP_OK;
    }
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "format: must be dat or json");
  }

  *out = HTTPD_WAVEFORM_DAT;
  if (accept) {
    const char *json = strstr(accept, "application/json");
    const char *binary = strstr(accept, "application/octet-stream");
    if (json && (!binary || json < binary)) {
      *out = HTTPD_WAVEFORM_JSON;
    }
  }
  return AP_OK;
}

int httpd_request_id_is_valid(const char *text) {
  if (!text) {
    return 0;
  }
  size_t length = 0;
  for (; text[length]; length++) {
    char c = text[length];
    if (!isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-') {
      return 0;
    }
    if (length >= 64) {
      return 0;
    }
  }
  return length > 0;
}

int httpd_last_event_id_parse(const char *text, int64_t *sequence) {
  return parse_decimal(text, (int64_t)1 << 53, sequence);
}
