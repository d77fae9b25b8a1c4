/*
 * Assets: GET /v1/assets (one page), GET and DELETE /v1/assets/{id},
 * GET /v1/assets/{id}/waveform and the 302 to a presigned GET of
 * GET /v1/assets/{id}/renditions/{name}.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <audiopipe/io.h>
#include <audiopipe/meta.h>
#include <audiopipe/waveform.h>

#include "server.h"

/* Items per page when the request names no limit. */
#define DEFAULT_PAGE_SIZE 20

/* Largest waveform file served. A 6 h recording at 256 samples per pixel
 * and 16 bits is under 20 MB, so this only stops a corrupt record. */
#define WAVEFORM_MAX_BYTES (64 * 1024 * 1024)

/* Lifetime of the presigned GET a rendition redirects to, in seconds. */
#define RENDITION_URL_TTL_S 300

/* Reads the asset of the route's {id} for the request's owner. When there
 * is none, responds 404 and returns NULL. */
static ap_asset_t *load_asset(httpd_request_t *request,
                              struct MHD_Connection *connection,
                              enum MHD_Result *result) {
  if (!ap_id_is_valid(request->match.id)) {
    *result = httpd_respond_error(request, connection, 0, AP_ERR_NOT_FOUND,
                                  "asset not found");
    return NULL;
  }
  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  if (ap_asset_get(request->server->context, request->owner, request->match.id,
                   &asset, &error) != AP_OK) {
    *result = httpd_respond_ap_error(request, connection, &error);
    return NULL;
  }
  return asset;
}

enum MHD_Result httpd_handle_asset_list(httpd_request_t *request,
                                        struct MHD_Connection *connection) {
  ap_error_t error = {0};
  int limit = 0;
  if (httpd_parse_limit(httpd_query_get(&request->query, "limit"),
                        DEFAULT_PAGE_SIZE, AP_ASSET_LIST_MAX_LIMIT, &limit,
                        &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  const char *cursor = httpd_query_get(&request->query, "cursor");

  ap_asset_list_t *list = NULL;
  if (ap_asset_list(request->server->context, request->owner, cursor, limit,
                    &list, &error) != AP_OK) {
    if (error.code == AP_ERR_INVALID_ARGUMENT) {
      return httpd_respond_error(request, connection, 0,
                                 AP_ERR_INVALID_ARGUMENT, "cursor: %s",
                                 error.message);
    }
    return httpd_respond_ap_error(request, connection, &error);
  }

  json_object *page = json_object_new_object();
  json_object *items = json_object_new_array();
  ap_status_t status = page && items ? AP_OK : AP_ERR_NO_MEMORY;
  for (size_t i = 0; status == AP_OK && i < ap_asset_list_count(list); i++) {
    char *text = NULL;
    status = ap_asset_to_json(ap_asset_list_at(list, i), &text, &error);
    if (status == AP_OK) {
      json_object *item = json_tokener_parse(text);
      ap_free(text);
      if (!item) {
        status = AP_ERR_INTERNAL;
      } else {
        json_object_array_add(items, item);
      }
    }
  }
  if (status != AP_OK) {
    json_object_put(page);
    json_object_put(items);
    ap_asset_list_free(list);
    return httpd_respond_error(request, connection, 0, status,
                               "cannot serialise the asset list");
  }
  const char *next = ap_asset_list_next_cursor(list);
  json_object_object_add(page, "assets", items);
  json_object_object_add(page, "next_cursor",
                         next ? json_object_new_string(next) : NULL);
  ap_asset_list_free(list);

  enum MHD_Result result = httpd_respond_json(
      request, connection, MHD_HTTP_OK,
      json_object_to_json_string_ext(page, JSON_C_TO_STRING_PLAIN |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(page);
  return result;
}

enum MHD_Result httpd_handle_asset_get(httpd_request_t *request,
                                       struct MHD_Connection *connection) {
  enum MHD_Result result = MHD_NO;
  ap_asset_t *asset = load_asset(request, connection, &result);
  if (!asset) {
    return result;
  }
  char *json = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_asset_to_json(asset, &json, &error);
  ap_asset_free(asset);
  if (status != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  result = httpd_respond_json(request, connection, MHD_HTTP_OK, json);
  ap_free(json);
  return result;
}

enum MHD_Result httpd_handle_asset_delete(httpd_request_t *request,
                                          struct MHD_Connection *connection) {
  if (!ap_id_is_valid(request->match.id)) {
    return httpd_respond_error(request, connection, 0, AP_ERR_NOT_FOUND,
                               "asset not found");
  }
  ap_error_t error = {0};
  if (ap_asset_delete(request->server->context, request->owner,
                      request->match.id, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  struct MHD_Response *response =
      MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  return httpd_queue(request, connection, MHD_HTTP_NO_CONTENT, response);
}

/* Reads a whole object of at most `max_bytes` into a new buffer. */
static ap_status_t read_object(ap_object_store_t *store, const char *key,
                               size_t max_bytes, char **data, size_t *size,
                               ap_error_t *error) {
  ap_io_t *io = NULL;
  ap_status_t status = ap_object_store_open_read(store, key, &io, error);
  if (status != AP_OK) {
    return status;
  }
  int64_t length = ap_io_size(io);
  if (length < 0 || (uint64_t)length > max_bytes) {
    ap_io_close(io);
    return httpd_error_set(error, AP_ERR_INTERNAL,
                           "waveform object is %lld bytes, over the %zu "
                           "bytes served",
                           (long long)length, max_bytes);
  }
  char *buffer = malloc((size_t)length + 1);
  if (!buffer) {
    ap_io_close(io);
    return httpd_error_set(error, AP_ERR_NO_MEMORY, "out of memory");
  }
  size_t filled = 0;
  while (filled < (size_t)length) {
    int64_t got =
        ap_io_read(io, buffer + filled, (size_t)length - filled, error);
    if (got < 0) {
      free(buffer);
      ap_io_close(io);
      return error ? (ap_status_t)error->code : AP_ERR_IO;
    }
    if (got == 0) {
      break;
    }
    filled += (size_t)got;
  }
  ap_io_close(io);
  *data = buffer;
  *size = filled;
  return AP_OK;
}

enum MHD_Result httpd_handle_asset_waveform(httpd_request_t *request,
                                            struct MHD_Connection *connection) {
  ap_error_t error = {0};
  httpd_waveform_format_t format = HTTPD_WAVEFORM_DAT;
  if (httpd_waveform_format_parse(
          httpd_query_get(&request->query, "format"),
          httpd_header(connection, MHD_HTTP_HEADER_ACCEPT), &format,
          &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  const char *wanted = httpd_query_get(&request->query, "name");

  enum MHD_Result result = MHD_NO;
  ap_asset_t *asset = load_asset(request, connection, &result);
  if (!asset) {
    return result;
  }
  const char *key = NULL;
  for (size_t i = 0; i < ap_asset_waveform_count(asset) && !key; i++) {
    if (!wanted || strcmp(wanted, ap_asset_waveform_name(asset, i)) == 0) {
      key = ap_asset_waveform_key(asset, i);
    }
  }
  if (!key) {
    ap_asset_free(asset);
    return httpd_respond_error(request, connection, 0, AP_ERR_NOT_FOUND,
                               "the asset has no waveform%s yet",
                               wanted ? " of that name" : "");
  }

  char *data = NULL;
  size_t size = 0;
  ap_status_t status = read_object(request->server->store, key,
                                   WAVEFORM_MAX_BYTES, &data, &size, &error);
  ap_asset_free(asset);
  if (status != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }

  if (format == HTTPD_WAVEFORM_DAT) {
    struct MHD_Response *response =
        MHD_create_response_from_buffer(size, data, MHD_RESPMEM_MUST_FREE);
    if (!response) {
      free(data);
      return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
    request->bytes_sent = size;
    return httpd_queue(request, connection, MHD_HTTP_OK, response);
  }

  ap_output_t *output = NULL;
  status = ap_output_open_memory(&output, &error);
  if (status == AP_OK) {
    status = ap_waveform_dat_to_json(data, size, output, &error);
  }
  free(data);
  if (status != AP_OK) {
    ap_output_close(output);
    return httpd_respond_ap_error(request, connection, &error);
  }
  size_t json_size = 0;
  const void *json = ap_output_memory_data(output, &json_size);
  struct MHD_Response *response = MHD_create_response_from_buffer(
      json_size, (void *)json, MHD_RESPMEM_MUST_COPY);
  ap_output_close(output);
  if (!response) {
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  request->bytes_sent = json_size;
  return httpd_queue(request, connection, MHD_HTTP_OK, response);
}

enum MHD_Result
httpd_handle_asset_rendition(httpd_request_t *request,
                             struct MHD_Connection *connection) {
  enum MHD_Result result = MHD_NO;
  ap_asset_t *asset = load_asset(request, connection, &result);
  if (!asset) {
    return result;
  }
  const char *key = NULL;
  for (size_t i = 0; i < ap_asset_rendition_count(asset) && !key; i++) {
    if (strcmp(request->match.name, ap_asset_rendition_name(asset, i)) == 0) {
      key = ap_asset_rendition_key(asset, i);
    }
  }
  if (!key) {
    ap_asset_free(asset);
    return httpd_respond_error(request, connection, 0, AP_ERR_NOT_FOUND,
                               "the asset has no rendition of that name");
  }

  char *url = NULL;
  ap_error_t error = {0};
  ap_status_t status =
      ap_object_store_presign_get(request->server->store, key,
                                  RENDITION_URL_TTL_S, &url, NULL, &error);
  ap_asset_free(asset);
  if (status != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  struct MHD_Response *response =
      MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (response) {
    MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, url);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                            "no-store");
  }
  ap_free(url);
  return httpd_queue(request, connection, MHD_HTTP_FOUND, response);
}
