/*
 * The file store's presigned URLs: PUT /v1/objects/{key} streams the body
 * into the store, GET /v1/objects/{key} streams an object back. Both are
 * authorised by the URL's signature alone, verified by the storage area
 * (expiry, method, host, path, signed content type and length).
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <audiopipe/io.h>
#include <audiopipe/log.h>
#include <audiopipe/storage.h>

#include "server.h"

/* Bytes handed to libmicrohttpd per read of an object GET. */
#define GET_BLOCK_SIZE (64 * 1024)

/* Verifies the request's signature; on success stores the key and, for a
 * PUT, the signed length. */
static ap_status_t verify(httpd_request_t *request,
                          struct MHD_Connection *connection,
                          int64_t *signed_length, ap_error_t *error) {
  ap_signed_request_t signed_request;
  ap_status_t status = httpd_signed_request_fill(
      &signed_request, request->method, httpd_header(connection, "Host"),
      request->path, &request->query,
      httpd_header(connection, MHD_HTTP_HEADER_CONTENT_TYPE),
      httpd_header(connection, MHD_HTTP_HEADER_CONTENT_LENGTH), error);
  if (status != AP_OK) {
    return status;
  }
  return ap_signed_request_verify(
      ap_context_config(request->server->context), &signed_request, 0,
      request->object_key, sizeof request->object_key, signed_length, error);
}

enum MHD_Result httpd_object_put_begin(httpd_request_t *request,
                                       struct MHD_Connection *connection) {
  ap_error_t error = {0};
  int64_t signed_length = -1;
  if (verify(request, connection, &signed_length, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  ap_object_upload_t *upload = NULL;
  if (ap_object_upload_begin(
          request->server->store, request->object_key,
          httpd_header(connection, MHD_HTTP_HEADER_CONTENT_TYPE), signed_length,
          &upload, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  request->upload = upload;
  return MHD_YES;
}

enum MHD_Result httpd_handle_object_put(httpd_request_t *request,
                                        struct MHD_Connection *connection,
                                        const char *data, size_t *size) {
  ap_object_upload_t *upload = request->upload;
  if (!upload) {
    return httpd_respond_error(request, connection, 0, AP_ERR_INTERNAL,
                               "upload was not started");
  }
  ap_error_t error = {0};
  if (*size > 0) {
    /* Each chunk goes to the store as it arrives, so memory use does not
     * grow with the object. */
    ap_status_t status = ap_object_upload_write(upload, data, *size, &error);
    *size = 0;
    if (status != AP_OK) {
      return httpd_respond_ap_error(request, connection, &error);
    }
    return MHD_YES;
  }

  int64_t received = ap_object_upload_received(upload);
  if (ap_object_upload_finish(upload, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  json_object *body = json_object_new_object();
  if (!body) {
    return MHD_NO;
  }
  json_object_object_add(body, "key",
                         json_object_new_string(request->object_key));
  json_object_object_add(body, "size_bytes", json_object_new_int64(received));
  enum MHD_Result result = httpd_respond_json(
      request, connection, MHD_HTTP_OK,
      json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(body);
  return result;
}

void httpd_object_put_release(httpd_request_t *request) {
  if (request->upload) {
    ap_object_upload_close(request->upload);
    request->upload = NULL;
  }
}

static ssize_t read_object_block(void *cls, uint64_t position, char *buffer,
                                 size_t max) {
  (void)position;
  ap_io_t *io = cls;
  ap_error_t error = {0};
  int64_t got = ap_io_read(io, buffer, max, &error);
  if (got < 0) {
    ap_log_write(AP_LOG_ERROR, "object_read_failed", NULL, NULL, NULL, 0, "%s",
                 error.message);
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  if (got == 0) {
    return MHD_CONTENT_READER_END_OF_STREAM;
  }
  return (ssize_t)got;
}

static void close_object(void *cls) { ap_io_close(cls); }

enum MHD_Result httpd_handle_object_get(httpd_request_t *request,
                                        struct MHD_Connection *connection) {
  /* Without any signed parameter the request is not a presigned URL at
   * all; 404 keeps object keys from being probed. */
  if (!httpd_query_has_signature(&request->query)) {
    return httpd_respond_error(request, connection, MHD_HTTP_NOT_FOUND,
                               AP_ERR_NOT_FOUND,
                               "object not found: objects are served only "
                               "through presigned URLs");
  }
  ap_error_t error = {0};
  if (verify(request, connection, NULL, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }

  ap_object_info_t info;
  ap_io_t *io = NULL;
  ap_object_store_t *store = request->server->store;
  if (ap_object_store_stat(store, request->object_key, &info, &error) !=
          AP_OK ||
      ap_object_store_open_read(store, request->object_key, &io, &error) !=
          AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  int64_t size = ap_io_size(io);
  struct MHD_Response *response = MHD_create_response_from_callback(
      size < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)size, GET_BLOCK_SIZE,
      read_object_block, io, close_object);
  if (!response) {
    ap_io_close(io);
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          info.content_type[0] ? info.content_type
                                               : "application/octet-stream");
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                          "private, max-age=300");
  request->bytes_sent = size < 0 ? 0 : (uint64_t)size;
  return httpd_queue(request, connection, MHD_HTTP_OK, response);
}
