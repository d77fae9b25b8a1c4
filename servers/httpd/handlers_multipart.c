/*
 * Multipart uploads and aborts:
 *   POST /v1/uploads/{id}/parts/{n}  presigned URL of part n
 *   GET /v1/uploads/{id}/parts       parts stored so far, to resume
 *   DELETE /v1/uploads/{id}          abort any pending upload
 * and the "parts" list of POST /v1/uploads/{id}/complete. Another
 * owner's upload gets 404, like a missing one.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <audiopipe/upload.h>

#include "server.h"

/* Maximum digits of a part number, for 1..10000. */
#define PART_NUMBER_MAX_DIGITS 5

/* Responds 404 to an upload id that cannot exist and returns 1. */
static int reject_bad_id(httpd_request_t *request,
                         struct MHD_Connection *connection,
                         enum MHD_Result *result) {
  if (ap_id_is_valid(request->match.id)) {
    return 0;
  }
  *result = httpd_respond_error(request, connection, 0, AP_ERR_NOT_FOUND,
                                "upload not found");
  return 1;
}

/* Parses the {n} path segment: digits only, 1 to the part limit. */
static int parse_part_number(const char *text, int *number) {
  size_t length = strlen(text);
  if (length < 1 || length > PART_NUMBER_MAX_DIGITS) {
    return 0;
  }
  int value = 0;
  for (size_t i = 0; i < length; i++) {
    if (text[i] < '0' || text[i] > '9') {
      return 0;
    }
    value = value * 10 + (text[i] - '0');
  }
  if (value < 1 || value > AP_UPLOAD_MAX_PART_COUNT) {
    return 0;
  }
  *number = value;
  return 1;
}

enum MHD_Result
httpd_handle_upload_part_presign(httpd_request_t *request,
                                 struct MHD_Connection *connection) {
  int part_number = 0;
  if (!parse_part_number(request->match.name, &part_number)) {
    return httpd_respond_error(request, connection, MHD_HTTP_BAD_REQUEST,
                               AP_ERR_INVALID_ARGUMENT,
                               "part_number: \"%.16s\" is not a part number: "
                               "use 1 to %d",
                               request->match.name, AP_UPLOAD_MAX_PART_COUNT);
  }
  enum MHD_Result result = MHD_NO;
  if (reject_bad_id(request, connection, &result)) {
    return result;
  }
  ap_error_t error = {0};
  ap_upload_ticket_t *ticket = NULL;
  if (ap_upload_part_presign(request->server->context, request->owner,
                             request->match.id, part_number, &ticket,
                             &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  char *json = NULL;
  ap_status_t status = ap_upload_ticket_to_json(ticket, &json, &error);
  ap_upload_ticket_free(ticket);
  if (status != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  result = httpd_respond_json(request, connection, MHD_HTTP_OK, json);
  ap_free(json);
  return result;
}

enum MHD_Result
httpd_handle_upload_parts_list(httpd_request_t *request,
                               struct MHD_Connection *connection) {
  enum MHD_Result result = MHD_NO;
  if (reject_bad_id(request, connection, &result)) {
    return result;
  }
  ap_error_t error = {0};
  ap_upload_part_t *parts = NULL;
  size_t count = 0;
  if (ap_upload_parts_list(request->server->context, request->owner,
                           request->match.id, &parts, &count,
                           &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  json_object *body = json_object_new_object();
  json_object *list = json_object_new_array();
  if (!body || !list) {
    json_object_put(body);
    json_object_put(list);
    ap_free(parts);
    return httpd_respond_error(request, connection, 0, AP_ERR_NO_MEMORY,
                               "out of memory listing parts");
  }
  for (size_t i = 0; i < count; i++) {
    json_object *item = json_object_new_object();
    if (!item) {
      continue;
    }
    json_object_object_add(item, "number",
                           json_object_new_int(parts[i].number));
    json_object_object_add(item, "etag", json_object_new_string(parts[i].etag));
    json_object_object_add(item, "size_bytes",
                           json_object_new_int64(parts[i].size_bytes));
    json_object_array_add(list, item);
  }
  ap_free(parts);
  json_object_object_add(body, "upload_id",
                         json_object_new_string(request->match.id));
  json_object_object_add(body, "parts", list);
  result = httpd_respond_json(
      request, connection, MHD_HTTP_OK,
      json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(body);
  return result;
}

enum MHD_Result httpd_handle_upload_abort(httpd_request_t *request,
                                          struct MHD_Connection *connection) {
  enum MHD_Result result = MHD_NO;
  if (reject_bad_id(request, connection, &result)) {
    return result;
  }
  ap_error_t error = {0};
  if (ap_upload_abort(request->server->context, request->owner,
                      request->match.id, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  struct MHD_Response *response =
      MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  return httpd_queue(request, connection, MHD_HTTP_NO_CONTENT, response);
}

/* Reads item `index` of the "parts" array into `part`. */
static ap_status_t parse_part(json_object *item, size_t index,
                              ap_upload_part_t *part, ap_error_t *error) {
  if (!json_object_is_type(item, json_type_object)) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "parts[%zu]: must be an object with number and "
                           "etag",
                           index);
  }
  json_object_object_foreach(item, name, value) {
    (void)value;
    if (strcmp(name, "number") != 0 && strcmp(name, "etag") != 0) {
      return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                             "parts[%zu].%.64s: unknown field; the fields are "
                             "number and etag",
                             index, name);
    }
  }
  json_object *number = NULL;
  json_object *etag = NULL;
  if (!json_object_object_get_ex(item, "number", &number) ||
      !json_object_is_type(number, json_type_int)) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "parts[%zu].number: required integer is missing",
                           index);
  }
  int64_t part_number = json_object_get_int64(number);
  if (part_number < 1 || part_number > AP_UPLOAD_MAX_PART_COUNT) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "parts[%zu].number: %lld is outside 1 to %d", index,
                           (long long)part_number, AP_UPLOAD_MAX_PART_COUNT);
  }
  if (!json_object_object_get_ex(item, "etag", &etag) ||
      !json_object_is_type(etag, json_type_string)) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "parts[%zu].etag: required string is missing",
                           index);
  }
  const char *text = json_object_get_string(etag);
  size_t length = (size_t)json_object_get_string_len(etag);
  if (length < 1 || length >= sizeof part->etag) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "parts[%zu].etag: must be 1 to %zu bytes", index,
                           sizeof part->etag - 1);
  }
  /* A "\u0000" would cut the C string, so only the text before it would
   * be compared with the stored ETag. */
  if (memchr(text, '\0', length)) {
    return httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                           "parts[%zu].etag: contains a NUL character: send "
                           "the ETag header of the part's PUT",
                           index);
  }
  part->number = (int)part_number;
  memcpy(part->etag, text, length + 1);
  part->size_bytes = -1;
  return AP_OK;
}

ap_status_t httpd_complete_parts_parse(const char *body, size_t length,
                                       ap_upload_part_t **parts, size_t *count,
                                       ap_error_t *error) {
  *parts = NULL;
  *count = 0;
  json_tokener *tokener = json_tokener_new();
  if (!tokener) {
    return httpd_error_set(error, AP_ERR_NO_MEMORY, "out of memory");
  }
  json_object *root = json_tokener_parse_ex(tokener, body, (int)length);
  json_tokener_free(tokener);
  json_object *list = NULL;
  /* Anything else (empty, {}, malformed) is httpd_complete_body_parse's
   * to judge. */
  if (!root || !json_object_is_type(root, json_type_object) ||
      !json_object_object_get_ex(root, "parts", &list)) {
    json_object_put(root);
    return AP_OK;
  }

  ap_status_t status = AP_OK;
  json_object_object_foreach(root, name, value) {
    (void)value;
    if (strcmp(name, "parts") != 0) {
      status = httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                               "%.64s: unknown field; the body may have only "
                               "parts",
                               name);
      break;
    }
  }
  size_t items = 0;
  if (status == AP_OK) {
    if (!json_object_is_type(list, json_type_array) ||
        (items = json_object_array_length(list)) < 1 ||
        items > AP_UPLOAD_MAX_PART_COUNT) {
      status = httpd_error_set(error, AP_ERR_INVALID_ARGUMENT,
                               "parts: must be an array of 1 to %d "
                               "{\"number\", \"etag\"} objects",
                               AP_UPLOAD_MAX_PART_COUNT);
    }
  }
  ap_upload_part_t *result = NULL;
  if (status == AP_OK) {
    result = calloc(items, sizeof *result);
    if (!result) {
      status = httpd_error_set(error, AP_ERR_NO_MEMORY, "out of memory");
    }
  }
  for (size_t i = 0; status == AP_OK && i < items; i++) {
    status =
        parse_part(json_object_array_get_idx(list, i), i, &result[i], error);
  }
  json_object_put(root);
  if (status != AP_OK) {
    free(result);
    return status;
  }
  *parts = result;
  *count = items;
  return AP_OK;
}
