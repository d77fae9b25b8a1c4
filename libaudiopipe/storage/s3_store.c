/*
 * The S3 backend: stat by HEAD, reads as a seekable ap_io_t of ranged
 * GETs with a read-ahead buffer, writes as an ap_output_t that switches
 * to a multipart upload once a part fills, DELETE, ListObjectsV2 with
 * continuation tokens, presigned URLs for the public endpoint, POST
 * policies and presigned multipart uploads.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error_internal.h"
#include "storage/s3_store.h"
#include "storage/storage_internal.h"

/* Bytes a reader fetches at least per ranged GET after a seek. Probing
 * an M4A reads small boxes at the start and the `moov` at the end, so a
 * small first range avoids fetching the middle. Each read that continues
 * where the buffer ended doubles the range, up to the maximum, so a
 * sequential decode needs few requests. */
#define READ_AHEAD_MIN_SIZE (64 * 1024)
#define READ_AHEAD_MAX_SIZE (4 * 1024 * 1024)

typedef struct s3_store {
  ap_s3_client_t *client;
  char *bucket;
  char *region;
  int path_style;
  char *public_origin; /* presigned URLs and POST forms point here */
  char *access_key_id;
  char *secret_access_key;
  char *session_token; /* NULL without temporary credentials */
  int64_t part_size;   /* bytes a writer buffers before a part upload */
} s3_store_t;

static const ap_object_store_backend_t s3_backend;

static ap_s3_credentials_t store_credentials(const s3_store_t *store) {
  ap_s3_credentials_t credentials = {store->access_key_id,
                                     store->secret_access_key,
                                     store->session_token, store->region};
  return credentials;
}

/* Returns the S3 state of `store`, or fails with AP_ERR_UNSUPPORTED. */
static ap_status_t s3_state(ap_object_store_t *store, const char *key,
                            s3_store_t **out, ap_error_t *error) {
  *out = store ? ap_object_store_backend_state(store, s3_backend.name) : NULL;
  if (!*out) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNSUPPORTED,
                        "this call needs an S3 object store: set "
                        "objects.uri to s3://BUCKET?endpoint=URL");
  }
  return key ? ap_object_key_validate(key, error) : AP_OK;
}

/* ---- Stat, delete --------------------------------------------------- */

static ap_status_t s3_stat(void *state, const char *key, ap_object_info_t *info,
                           ap_error_t *error) {
  s3_store_t *store = state;
  ap_s3_request_t request;
  ap_s3_request_init(&request, "HEAD");
  request.key = key;
  ap_s3_response_t response;
  ap_status_t status =
      ap_s3_client_perform(store->client, &request, &response, error);
  if (status == AP_OK) {
    memset(info, 0, sizeof *info);
    info->size = response.content_length;
    snprintf(info->content_type, sizeof info->content_type, "%s",
             *response.content_type ? response.content_type
                                    : AP_DEFAULT_CONTENT_TYPE);
    info->last_modified_ms = response.last_modified_ms;
  }
  ap_s3_response_free(&response);
  return status;
}

static ap_status_t s3_remove(void *state, const char *key, ap_error_t *error) {
  s3_store_t *store = state;
  ap_s3_request_t request;
  ap_s3_request_init(&request, "DELETE");
  request.key = key;
  ap_s3_response_t response;
  ap_error_t local = {0};
  ap_status_t status =
      ap_s3_client_perform(store->client, &request, &response, &local);
  ap_s3_response_free(&response);
  /* S3 returns 204 for a missing key, and some compatible stores 404. */
  if (status == AP_ERR_NOT_FOUND) {
    return AP_OK;
  }
  if (status != AP_OK && error) {
    *error = local;
  }
  return status;
}

/* ---- Ranged reader -------------------------------------------------- */

typedef struct s3_reader {
  s3_store_t *store;
  char *key;
  char etag[AP_S3_ETAG_SIZE]; /* If-Match of every range request */
  int64_t size;
  int64_t position;
  char *buffer; /* bytes [buffer_offset, buffer_offset + buffer_length) */
  int64_t buffer_offset;
  size_t buffer_length;
  size_t read_ahead; /* bytes of the next range request */
} s3_reader_t;

/* Replaces the buffer with the bytes from `offset`, at least `wanted`. */
static ap_status_t fill_buffer(s3_reader_t *reader, int64_t offset,
                               size_t wanted, ap_error_t *error) {
  int sequential =
      reader->buffer &&
      offset == reader->buffer_offset + (int64_t)reader->buffer_length;
  if (!sequential) {
    reader->read_ahead = READ_AHEAD_MIN_SIZE;
  } else if (reader->read_ahead < READ_AHEAD_MAX_SIZE) {
    reader->read_ahead *= 2;
  }
  int64_t length = wanted > reader->read_ahead ? (int64_t)wanted
                                               : (int64_t)reader->read_ahead;
  if (length > reader->size - offset) {
    length = reader->size - offset;
  }
  ap_s3_request_t request;
  ap_s3_request_init(&request, "GET");
  request.key = reader->key;
  request.range_first = offset;
  request.range_last = offset + length - 1;
  /* Pinning the ETag makes an overwrite fail the read with
   * AP_ERR_CONFLICT rather than splice two versions together. */
  request.if_match = *reader->etag ? reader->etag : NULL;
  ap_s3_response_t response;
  ap_status_t status =
      ap_s3_client_perform(reader->store->client, &request, &response, error);
  if (status == AP_OK && response.body_size != (size_t)length) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                          "S3 range %" PRId64 "-%" PRId64 " of \"%s\" returned "
                          "%zu bytes: the server ignored the Range header",
                          request.range_first, request.range_last, reader->key,
                          response.body_size);
  }
  if (status == AP_OK) {
    free(reader->buffer);
    reader->buffer = response.body;
    reader->buffer_offset = offset;
    reader->buffer_length = response.body_size;
    response.body = NULL;
  }
  ap_s3_response_free(&response);
  return status;
}

static int64_t reader_read(void *user_data, void *buffer, size_t size,
                           ap_error_t *error) {
  s3_reader_t *reader = user_data;
  if (size == 0 || reader->position >= reader->size) {
    return 0;
  }
  int64_t buffer_end = reader->buffer_offset + (int64_t)reader->buffer_length;
  if (!reader->buffer || reader->position < reader->buffer_offset ||
      reader->position >= buffer_end) {
    if (fill_buffer(reader, reader->position, size, error) != AP_OK) {
      return -1;
    }
    buffer_end = reader->buffer_offset + (int64_t)reader->buffer_length;
  }
  size_t available = (size_t)(buffer_end - reader->position);
  size_t count = size < available ? size : available;
  memcpy(buffer, reader->buffer + (reader->position - reader->buffer_offset),
         count);
  reader->position += (int64_t)count;
  return (int64_t)count;
}

static int64_t reader_seek(void *user_data, int64_t offset, int whence,
                           ap_error_t *error) {
  s3_reader_t *reader = user_data;
  int64_t base = whence == AP_SEEK_SET   ? 0
                 : whence == AP_SEEK_CUR ? reader->position
                 : whence == AP_SEEK_END ? reader->size
                                         : -1;
  if (base < 0 || base + offset < 0) {
    ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                 "seek to %" PRId64 " from origin %d in \"%s\" is invalid",
                 offset, whence, reader->key);
    return -1;
  }
  reader->position = base + offset;
  return reader->position;
}

static int64_t reader_size(void *user_data) {
  s3_reader_t *reader = user_data;
  return reader->size;
}

static void reader_close(void *user_data) {
  s3_reader_t *reader = user_data;
  free(reader->buffer);
  free(reader->key);
  free(reader);
}

static ap_status_t s3_open_read(void *state, const char *key, ap_io_t **out,
                                ap_error_t *error) {
  s3_store_t *store = state;
  *out = NULL;
  ap_s3_request_t request;
  ap_s3_request_init(&request, "HEAD");
  request.key = key;
  ap_s3_response_t response;
  ap_status_t status =
      ap_s3_client_perform(store->client, &request, &response, error);
  if (status == AP_OK && response.content_length < 0) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                          "S3 HEAD of \"%s\" returned no Content-Length", key);
  }
  if (status != AP_OK) {
    ap_s3_response_free(&response);
    return status;
  }

  s3_reader_t *reader = calloc(1, sizeof *reader);
  char *key_copy = strdup(key);
  if (!reader || !key_copy) {
    free(reader);
    free(key_copy);
    ap_s3_response_free(&response);
    return AP_NO_MEMORY(error);
  }
  reader->store = store;
  reader->key = key_copy;
  reader->size = response.content_length;
  snprintf(reader->etag, sizeof reader->etag, "%s", response.etag);
  ap_s3_response_free(&response);

  ap_io_callbacks_t callbacks = {0};
  callbacks.struct_size = sizeof callbacks;
  callbacks.read = reader_read;
  callbacks.seek = reader_seek;
  callbacks.size = reader_size;
  callbacks.close = reader_close;
  status = ap_io_open_callbacks(&callbacks, reader, out, error);
  if (status != AP_OK) {
    reader_close(reader);
  }
  return status;
}

/* ---- Multipart requests --------------------------------------------- */

static ap_status_t create_upload(s3_store_t *store, const char *key,
                                 const char *content_type, char **upload_id,
                                 ap_error_t *error) {
  *upload_id = NULL;
  ap_s3_pair_t query[] = {{"uploads", NULL}};
  ap_s3_request_t request;
  ap_s3_request_init(&request, "POST");
  request.key = key;
  request.query = query;
  request.query_count = 1;
  request.content_type = content_type;
  ap_s3_response_t response;
  ap_status_t status =
      ap_s3_client_perform(store->client, &request, &response, error);
  char id[1024];
  if (status == AP_OK &&
      (!response.body ||
       !ap_s3_xml_find(response.body, NULL, "UploadId", id, sizeof id))) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                          "S3 CreateMultipartUpload of \"%s\" returned no "
                          "UploadId",
                          key);
  }
  if (status == AP_OK) {
    *upload_id = strdup(id);
    if (!*upload_id) {
      status = AP_NO_MEMORY(error);
    }
  }
  ap_s3_response_free(&response);
  return status;
}

static ap_status_t upload_part(s3_store_t *store, const char *key,
                               const char *upload_id, int part_number,
                               const void *data, size_t size,
                               ap_s3_part_t *part, ap_error_t *error) {
  char number[16];
  snprintf(number, sizeof number, "%d", part_number);
  ap_s3_pair_t query[] = {{"partNumber", number}, {"uploadId", upload_id}};
  ap_s3_request_t request;
  ap_s3_request_init(&request, "PUT");
  request.key = key;
  request.query = query;
  request.query_count = 2;
  request.body = data;
  request.body_size = size;
  ap_s3_response_t response;
  ap_status_t status =
      ap_s3_client_perform(store->client, &request, &response, error);
  if (status == AP_OK && !*response.etag) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                          "S3 UploadPart %d of \"%s\" returned no ETag",
                          part_number, key);
  }
  if (status == AP_OK) {
    part->part_number = part_number;
    snprintf(part->etag, sizeof part->etag, "%s", response.etag);
    part->size = (int64_t)size;
  }
  ap_s3_response_free(&response);
  return status;
}

static ap_status_t complete_upload(s3_store_t *store, const char *key,
                                   const char *upload_id,
                                   const ap_s3_part_t *parts, size_t count,
                                   ap_error_t *error) {
  size_t size = 128 + count * (AP_S3_ETAG_SIZE + 64);
  char *body = malloc(size);
  if (!body) {
    return AP_NO_MEMORY(error);
  }
  size_t used = (size_t)snprintf(body, size, "<CompleteMultipartUpload>");
  for (size_t i = 0; i < count; i++) {
    used += (size_t)snprintf(body + used, size - used,
                             "<Part><PartNumber>%d</PartNumber>"
                             "<ETag>%s</ETag></Part>",
                             parts[i].part_number, parts[i].etag);
  }
  used +=
      (size_t)snprintf(body + used, size - used, "</CompleteMultipartUpload>");

  ap_s3_pair_t query[] = {{"uploadId", upload_id}};
  ap_s3_request_t request;
  ap_s3_request_init(&request, "POST");
  request.key = key;
  request.query = query;
  request.query_count = 1;
  request.content_type = "application/xml";
  request.body = body;
  request.body_size = used;
  ap_s3_response_t response;
  ap_status_t status =
      ap_s3_client_perform(store->client, &request, &response, error);
  /* S3 may return 200 and still report a failure in the body. */
  if (status == AP_OK && response.body && strstr(response.body, "<Error>")) {
    response.status = 500;
    char code[64] = "";
    char message[256] = "";
    ap_s3_xml_find(response.body, NULL, "Code", code, sizeof code);
    ap_s3_xml_find(response.body, NULL, "Message", message, sizeof message);
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNAVAILABLE,
                          "S3 CompleteMultipartUpload of \"%s\" failed with "
                          "%s (%s): retry the upload",
                          key, code, message);
  }
  ap_s3_response_free(&response);
  free(body);
  return status;
}

static ap_status_t abort_upload(s3_store_t *store, const char *key,
                                const char *upload_id, ap_error_t *error) {
  ap_s3_pair_t query[] = {{"uploadId", upload_id}};
  ap_s3_request_t request;
  ap_s3_request_init(&request, "DELETE");
  request.key = key;
  request.query = query;
  request.query_count = 1;
  ap_s3_response_t response;
  ap_status_t status =
      ap_s3_client_perform(store->client, &request, &response, error);
  ap_s3_response_free(&response);
  return status;
}

/* ---- Streaming writer ------------------------------------------------ */

typedef struct s3_writer {
  s3_store_t *store;
  char *key;
  char *content_type;
  char *buffer; /* the part being filled, up to store->part_size bytes */
  size_t length;
  size_t capacity; /* grows by doubling, so small objects stay small */
  char *upload_id; /* NULL until the first part is uploaded */
  ap_s3_part_t *parts;
  size_t part_count;
  size_t part_capacity;
} s3_writer_t;

static void writer_free(s3_writer_t *writer) {
  free(writer->key);
  free(writer->content_type);
  free(writer->buffer);
  free(writer->upload_id);
  free(writer->parts);
  free(writer);
}

/* Uploads the buffer as the next part, starting the upload if needed. */
static ap_status_t flush_part(s3_writer_t *writer, ap_error_t *error) {
  ap_status_t status = AP_OK;
  if (!writer->upload_id) {
    status = create_upload(writer->store, writer->key, writer->content_type,
                           &writer->upload_id, error);
    if (status != AP_OK) {
      return status;
    }
  }
  if (writer->part_count == AP_S3_MAX_PART_COUNT) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UPLOAD_TOO_LARGE,
                        "\"%s\" needs more than %d parts of %" PRId64
                        " bytes: raise objects.s3_part_size",
                        writer->key, AP_S3_MAX_PART_COUNT,
                        writer->store->part_size);
  }
  if (writer->part_count == writer->part_capacity) {
    size_t capacity = writer->part_capacity ? writer->part_capacity * 2 : 16;
    ap_s3_part_t *grown = realloc(writer->parts, capacity * sizeof *grown);
    if (!grown) {
      return AP_NO_MEMORY(error);
    }
    writer->parts = grown;
    writer->part_capacity = capacity;
  }
  ap_s3_part_t *part = &writer->parts[writer->part_count];
  status = upload_part(writer->store, writer->key, writer->upload_id,
                       (int)writer->part_count + 1, writer->buffer,
                       writer->length, part, error);
  if (status == AP_OK) {
    writer->part_count++;
    writer->length = 0;
  }
  return status;
}

static int writer_write(void *user_data, const void *data, size_t size,
                        ap_error_t *error) {
  s3_writer_t *writer = user_data;
  const char *bytes = data;
  size_t part_size = (size_t)writer->store->part_size;
  while (size > 0) {
    /* A full part is sent only once more bytes follow, so the last part
     * is never empty. */
    if (writer->length == part_size && flush_part(writer, error) != AP_OK) {
      return -1;
    }
    if (writer->length == writer->capacity) {
      size_t capacity = writer->capacity * 2;
      capacity = capacity > part_size ? part_size : capacity;
      char *grown = realloc(writer->buffer, capacity);
      if (!grown) {
        AP_NO_MEMORY(error);
        return -1;
      }
      writer->buffer = grown;
      writer->capacity = capacity;
    }
    size_t room = writer->capacity - writer->length;
    size_t count = size < room ? size : room;
    memcpy(writer->buffer + writer->length, bytes, count);
    writer->length += count;
    bytes += count;
    size -= count;
  }
  return 0;
}

/* Commits the object: one PUT when it fits in a part, else the last part
 * and CompleteMultipartUpload. */
static ap_status_t commit_writer(s3_writer_t *writer, ap_error_t *error) {
  s3_store_t *store = writer->store;
  if (!writer->upload_id) {
    ap_s3_request_t request;
    ap_s3_request_init(&request, "PUT");
    request.key = writer->key;
    request.content_type = writer->content_type;
    request.body = writer->buffer;
    request.body_size = writer->length;
    ap_s3_response_t response;
    ap_status_t status =
        ap_s3_client_perform(store->client, &request, &response, error);
    ap_s3_response_free(&response);
    return status;
  }
  ap_status_t status = flush_part(writer, error);
  if (status == AP_OK) {
    status = complete_upload(store, writer->key, writer->upload_id,
                             writer->parts, writer->part_count, error);
  }
  return status;
}

/* Called with failed = 0 by ap_output_finish and with failed = 1 by
 * ap_output_close of an unfinished output, which also follows a failed
 * commit. The state is freed on the call that ends the output. */
static int writer_close(void *user_data, int failed, ap_error_t *error) {
  s3_writer_t *writer = user_data;
  if (!failed) {
    if (commit_writer(writer, error) == AP_OK) {
      writer_free(writer);
      return 0;
    }
  }
  if (writer->upload_id) {
    ap_error_t ignored = {0};
    /* NOTE: a failed abort leaves the parts on the server until a bucket
     * lifecycle rule (AbortIncompleteMultipartUpload) removes them. */
    abort_upload(writer->store, writer->key, writer->upload_id, &ignored);
    free(writer->upload_id);
    writer->upload_id = NULL;
  }
  if (failed) {
    writer_free(writer);
  }
  return failed ? 0 : -1;
}

static ap_status_t s3_open_write(void *state, const char *key,
                                 const char *content_type, ap_output_t **out,
                                 ap_error_t *error) {
  s3_store_t *store = state;
  *out = NULL;
  s3_writer_t *writer = calloc(1, sizeof *writer);
  if (!writer) {
    return AP_NO_MEMORY(error);
  }
  writer->store = store;
  writer->key = strdup(key);
  writer->content_type = strdup(content_type);
  writer->capacity = 64 * 1024;
  writer->buffer = malloc(writer->capacity);
  if (!writer->key || !writer->content_type || !writer->buffer) {
    writer_free(writer);
    return AP_NO_MEMORY(error);
  }
  ap_output_callbacks_t callbacks = {0};
  callbacks.struct_size = sizeof callbacks;
  callbacks.write = writer_write;
  callbacks.close = writer_close;
  ap_status_t status = ap_output_open_callbacks(&callbacks, writer, out, error);
  if (status != AP_OK) {
    writer_free(writer);
  }
  return status;
}

/* ---- Listing --------------------------------------------------------- */

/* Parses an ISO 8601 UTC time such as 2026-12-04T17:09:16.999Z. */
static int64_t parse_iso8601_ms(const char *text) {
  struct tm utc = {0};
  int milliseconds = 0;
  if (sscanf(text, "%d-%d-%dT%d:%d:%d.%3d", &utc.tm_year, &utc.tm_mon,
             &utc.tm_mday, &utc.tm_hour, &utc.tm_min, &utc.tm_sec,
             &milliseconds) < 6) {
    return 0;
  }
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  return (int64_t)timegm(&utc) * 1000 + milliseconds;
}

/* Calls `callback` for each <Contents> of one ListObjectsV2 page, and sets
 * `*stopped` when the callback returns non-zero. */
static ap_status_t list_page(const char *xml, ap_object_list_fn callback,
                             void *user_data, int *stopped, ap_error_t *error) {
  const char *cursor = xml;
  for (;;) {
    const char *start = strstr(cursor, "<Contents>");
    if (!start) {
      return AP_OK;
    }
    const char *end = strstr(start, "</Contents>");
    if (!end) {
      break;
    }
    char *block = strndup(start, (size_t)(end - start));
    if (!block) {
      return AP_NO_MEMORY(error);
    }
    char key[AP_OBJECT_KEY_MAX_LENGTH * 6 + 1];
    char size[32];
    char modified[64] = "";
    int found = ap_s3_xml_find(block, NULL, "Key", key, sizeof key) &&
                ap_s3_xml_find(block, NULL, "Size", size, sizeof size);
    ap_s3_xml_find(block, NULL, "LastModified", modified, sizeof modified);
    free(block);
    if (!found) {
      break;
    }
    ap_object_info_t info = {0};
    info.size = strtoll(size, NULL, 10);
    info.last_modified_ms = parse_iso8601_ms(modified);
    /* NOTE: ListObjectsV2 does not return content types, so listed
     * objects carry an empty one; ap_object_store_stat has it. */
    if (callback(user_data, key, &info) != 0) {
      *stopped = 1;
      return AP_OK;
    }
    cursor = end;
  }
  return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                      "S3 ListObjectsV2 returned a malformed <Contents> "
                      "element");
}

static ap_status_t s3_list(void *state, const char *prefix,
                           ap_object_list_fn callback, void *user_data,
                           ap_error_t *error) {
  s3_store_t *store = state;
  char *token = NULL;
  ap_status_t status = AP_OK;
  for (;;) {
    ap_s3_pair_t query[3];
    size_t count = 0;
    if (token) {
      query[count++] = (ap_s3_pair_t){"continuation-token", token};
    }
    query[count++] = (ap_s3_pair_t){"list-type", "2"};
    if (*prefix) {
      query[count++] = (ap_s3_pair_t){"prefix", prefix};
    }
    ap_s3_request_t request;
    ap_s3_request_init(&request, "GET");
    request.query = query;
    request.query_count = count;
    ap_s3_response_t response;
    status = ap_s3_client_perform(store->client, &request, &response, error);
    int stopped = 0;
    if (status == AP_OK) {
      status = list_page(response.body ? response.body : "", callback,
                         user_data, &stopped, error);
    }
    char truncated[8] = "";
    char next[1024] = "";
    if (status == AP_OK && !stopped && response.body) {
      ap_s3_xml_find(response.body, NULL, "IsTruncated", truncated,
                     sizeof truncated);
      ap_s3_xml_find(response.body, NULL, "NextContinuationToken", next,
                     sizeof next);
    }
    ap_s3_response_free(&response);
    free(token);
    token = NULL;
    if (status != AP_OK || stopped || strcmp(truncated, "true") != 0) {
      break;
    }
    if (!*next) {
      status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                            "S3 ListObjectsV2 was truncated without a "
                            "NextContinuationToken");
      break;
    }
    token = strdup(next);
    if (!token) {
      status = AP_NO_MEMORY(error);
      break;
    }
  }
  return status;
}

/* ---- Presigning ------------------------------------------------------ */

/* Presigns against the public endpoint. */
static ap_status_t presign_public(s3_store_t *store, const char *method,
                                  const char *key, const ap_s3_pair_t *params,
                                  size_t param_count, const char *content_type,
                                  int64_t content_length, int64_t now,
                                  int64_t expires_seconds,
                                  ap_presigned_request_t *out,
                                  ap_error_t *error) {
  char *url = NULL;
  char *host = NULL;
  char *path = NULL;
  ap_status_t status =
      ap_s3_object_url(store->public_origin, store->bucket, store->path_style,
                       key, &url, &host, &path, error);
  if (status == AP_OK) {
    /* The URL is the origin the client sends to, then the path. */
    url[strlen(url) - strlen(path)] = '\0';
    ap_s3_presign_input_t input = {0};
    input.method = method;
    input.origin = url;
    input.host = host;
    input.encoded_path = path;
    input.params = params;
    input.param_count = param_count;
    input.content_type = content_type;
    input.content_length = content_length;
    input.now = now ? now : (int64_t)time(NULL);
    input.expires_seconds = expires_seconds;
    ap_s3_credentials_t credentials = store_credentials(store);
    status = ap_s3_presign(&credentials, &input, out, error);
  }
  free(url);
  free(host);
  free(path);
  return status;
}

static ap_status_t s3_presign(void *state, const char *method, const char *key,
                              const char *content_type, int64_t content_length,
                              int64_t expires_at, ap_presigned_request_t *out,
                              ap_error_t *error) {
  int64_t now = (int64_t)time(NULL);
  int64_t expires_seconds = expires_at - now;
  if (expires_seconds < 1) {
    expires_seconds = 1;
  }
  return presign_public(state, method, key, NULL, 0, content_type,
                        content_length, now, expires_seconds, out, error);
}

ap_status_t ap_s3_presign_at(ap_object_store_t *store, const char *method,
                             const char *key, const char *content_type,
                             int64_t content_length, int64_t now,
                             int64_t expires_seconds,
                             ap_presigned_request_t *out, ap_error_t *error) {
  s3_store_t *state = NULL;
  ap_status_t status = s3_state(store, key, &state, error);
  if (status != AP_OK) {
    return status;
  }
  if (!method || (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0 &&
                  strcmp(method, "HEAD") != 0)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "cannot presign method \"%s\": use GET, PUT or HEAD",
                        method ? method : "(null)");
  }
  if (content_type && !ap_content_type_is_valid(content_type)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "invalid content type \"%.130s\": expected "
                        "type/subtype such as audio/wav",
                        content_type);
  }
  return presign_public(state, method, key, NULL, 0, content_type,
                        content_length, now, expires_seconds, out, error);
}

ap_status_t ap_s3_post_form_create(ap_object_store_t *store, const char *key,
                                   const char *content_type, int64_t max_length,
                                   int64_t now, int64_t expires_seconds,
                                   ap_s3_post_form_t *out, ap_error_t *error) {
  memset(out, 0, sizeof *out);
  s3_store_t *state = NULL;
  ap_status_t status = s3_state(store, key, &state, error);
  if (status != AP_OK) {
    return status;
  }
  if (!ap_content_type_is_valid(content_type)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "invalid content type \"%.130s\" for a POST upload: "
                        "expected type/subtype such as audio/mpeg",
                        content_type ? content_type : "(null)");
  }
  char *url = NULL;
  char *host = NULL;
  char *path = NULL;
  status = ap_s3_object_url(state->public_origin, state->bucket,
                            state->path_style, NULL, &url, &host, &path, error);
  if (status == AP_OK) {
    ap_s3_post_policy_input_t input = {0};
    input.url = url;
    input.bucket = state->bucket;
    input.key = key;
    input.content_type = content_type;
    input.min_length = 0;
    input.max_length = max_length;
    input.now = now ? now : (int64_t)time(NULL);
    input.expires_seconds = expires_seconds;
    ap_s3_credentials_t credentials = store_credentials(state);
    status = ap_s3_post_policy(&credentials, &input, out, error);
  }
  free(url);
  free(host);
  free(path);
  return status;
}

ap_status_t ap_s3_multipart_create(ap_object_store_t *store, const char *key,
                                   const char *content_type, char **upload_id,
                                   ap_error_t *error) {
  *upload_id = NULL;
  s3_store_t *state = NULL;
  ap_status_t status = s3_state(store, key, &state, error);
  if (status != AP_OK) {
    return status;
  }
  if (content_type && !ap_content_type_is_valid(content_type)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "invalid content type \"%.130s\": expected "
                        "type/subtype such as audio/wav",
                        content_type);
  }
  return create_upload(state, key,
                       content_type ? content_type : AP_DEFAULT_CONTENT_TYPE,
                       upload_id, error);
}

static ap_status_t check_upload(const char *upload_id, int part_number,
                                ap_error_t *error) {
  if (!upload_id || !*upload_id) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "multipart upload id is missing: pass the id "
                        "ap_s3_multipart_create returned");
  }
  if (part_number < 1 || part_number > AP_S3_MAX_PART_COUNT) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "part number %d is outside 1 to %d", part_number,
                        AP_S3_MAX_PART_COUNT);
  }
  return AP_OK;
}

ap_status_t ap_s3_multipart_presign_part(ap_object_store_t *store,
                                         const char *key, const char *upload_id,
                                         int part_number, int64_t now,
                                         int64_t expires_seconds,
                                         ap_presigned_request_t *out,
                                         ap_error_t *error) {
  s3_store_t *state = NULL;
  ap_status_t status = s3_state(store, key, &state, error);
  if (status == AP_OK) {
    status = check_upload(upload_id, part_number, error);
  }
  if (status != AP_OK) {
    return status;
  }
  char number[16];
  snprintf(number, sizeof number, "%d", part_number);
  ap_s3_pair_t params[] = {{"partNumber", number}, {"uploadId", upload_id}};
  return presign_public(state, "PUT", key, params, 2, NULL, -1, now,
                        expires_seconds, out, error);
}

/* Appends the <Part> elements of one ListParts page to the array. */
static ap_status_t collect_parts(const char *xml, ap_s3_part_t **parts,
                                 size_t *count, size_t *capacity,
                                 ap_error_t *error) {
  const char *cursor = xml;
  for (;;) {
    const char *start = strstr(cursor, "<Part>");
    if (!start) {
      return AP_OK;
    }
    const char *end = strstr(start, "</Part>");
    if (!end) {
      break;
    }
    char *block = strndup(start, (size_t)(end - start));
    if (!block) {
      return AP_NO_MEMORY(error);
    }
    char number[16];
    char size[32] = "-1";
    ap_s3_part_t part = {0};
    int found =
        ap_s3_xml_find(block, NULL, "PartNumber", number, sizeof number) &&
        ap_s3_xml_find(block, NULL, "ETag", part.etag, sizeof part.etag);
    ap_s3_xml_find(block, NULL, "Size", size, sizeof size);
    free(block);
    if (!found) {
      break;
    }
    part.part_number = atoi(number);
    part.size = strtoll(size, NULL, 10);
    if (*count == *capacity) {
      size_t grown_capacity = *capacity ? *capacity * 2 : 16;
      ap_s3_part_t *grown = realloc(*parts, grown_capacity * sizeof *grown);
      if (!grown) {
        return AP_NO_MEMORY(error);
      }
      *parts = grown;
      *capacity = grown_capacity;
    }
    (*parts)[(*count)++] = part;
    cursor = end;
  }
  return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                      "S3 ListParts returned a malformed <Part> element");
}

ap_status_t ap_s3_multipart_list_parts(ap_object_store_t *store,
                                       const char *key, const char *upload_id,
                                       ap_s3_part_t **parts, size_t *count,
                                       ap_error_t *error) {
  *parts = NULL;
  *count = 0;
  s3_store_t *state = NULL;
  ap_status_t status = s3_state(store, key, &state, error);
  if (status == AP_OK) {
    status = check_upload(upload_id, 1, error);
  }
  if (status != AP_OK) {
    return status;
  }

  size_t capacity = 0;
  char marker[16] = "";
  for (;;) {
    ap_s3_pair_t query[2];
    size_t query_count = 0;
    if (*marker) {
      query[query_count++] = (ap_s3_pair_t){"part-number-marker", marker};
    }
    query[query_count++] = (ap_s3_pair_t){"uploadId", upload_id};
    ap_s3_request_t request;
    ap_s3_request_init(&request, "GET");
    request.key = key;
    request.query = query;
    request.query_count = query_count;
    ap_s3_response_t response;
    status = ap_s3_client_perform(state->client, &request, &response, error);
    if (status == AP_OK) {
      status = collect_parts(response.body ? response.body : "", parts, count,
                             &capacity, error);
    }
    char truncated[8] = "";
    char next[16] = "";
    if (status == AP_OK && response.body) {
      ap_s3_xml_find(response.body, NULL, "IsTruncated", truncated,
                     sizeof truncated);
      ap_s3_xml_find(response.body, NULL, "NextPartNumberMarker", next,
                     sizeof next);
    }
    ap_s3_response_free(&response);
    if (status != AP_OK || strcmp(truncated, "true") != 0 || !*next ||
        strcmp(next, marker) == 0) {
      break;
    }
    snprintf(marker, sizeof marker, "%s", next);
  }
  if (status != AP_OK) {
    free(*parts);
    *parts = NULL;
    *count = 0;
  }
  return status;
}

ap_status_t ap_s3_multipart_complete(ap_object_store_t *store, const char *key,
                                     const char *upload_id,
                                     const ap_s3_part_t *parts, size_t count,
                                     ap_error_t *error) {
  s3_store_t *state = NULL;
  ap_status_t status = s3_state(store, key, &state, error);
  if (status == AP_OK) {
    status = check_upload(upload_id, 1, error);
  }
  if (status == AP_OK && (count == 0 || !parts)) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                          "completing upload of \"%s\" needs at least one "
                          "part",
                          key);
  }
  for (size_t i = 0; status == AP_OK && i < count; i++) {
    if (parts[i].part_number < 1 ||
        (i > 0 && parts[i].part_number <= parts[i - 1].part_number)) {
      status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                            "part %zu has number %d: parts must be in "
                            "ascending order from 1",
                            i, parts[i].part_number);
    }
  }
  if (status != AP_OK) {
    return status;
  }
  return complete_upload(state, key, upload_id, parts, count, error);
}

ap_status_t ap_s3_multipart_abort(ap_object_store_t *store, const char *key,
                                  const char *upload_id, ap_error_t *error) {
  s3_store_t *state = NULL;
  ap_status_t status = s3_state(store, key, &state, error);
  if (status == AP_OK) {
    status = check_upload(upload_id, 1, error);
  }
  if (status != AP_OK) {
    return status;
  }
  return abort_upload(state, key, upload_id, error);
}

/* ---- Opening --------------------------------------------------------- */

static void s3_close(void *state) {
  s3_store_t *store = state;
  if (!store) {
    return;
  }
  ap_s3_client_close(store->client);
  if (store->secret_access_key) {
    memset(store->secret_access_key, 0, strlen(store->secret_access_key));
  }
  free(store->bucket);
  free(store->region);
  free(store->public_origin);
  free(store->access_key_id);
  free(store->secret_access_key);
  free(store->session_token);
  free(store);
}

/* No exclusive writes: clients write to S3 itself through its presigned
 * URLs, never through this library's object uploads. */
static const ap_object_store_backend_t s3_backend = {
    .name = "s3",
    .stat = s3_stat,
    .open_read = s3_open_read,
    .open_write = s3_open_write,
    .remove = s3_remove,
    .list = s3_list,
    .presign = s3_presign,
    .close = s3_close,
};

/* Decodes %XY escapes in place; returns 0 for a malformed escape. */
static int percent_decode(char *text) {
  char *out = text;
  for (char *c = text; *c; c++) {
    if (*c == '%') {
      unsigned value = 0;
      if (!c[1] || !c[2] || sscanf(c + 1, "%2x", &value) != 1) {
        return 0;
      }
      *out++ = (char)value;
      c += 2;
    } else {
      *out++ = *c;
    }
  }
  *out = '\0';
  return 1;
}

/* Returns 1 for a DNS-compatible bucket name: 3 to 63 bytes of
 * [a-z0-9.-], starting and ending with a letter or digit. */
static int bucket_is_valid(const char *bucket) {
  size_t length = strlen(bucket);
  if (length < 3 || length > 63) {
    return 0;
  }
  for (size_t i = 0; i < length; i++) {
    char c = bucket[i];
    int alphanumeric = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alphanumeric && c != '.' && c != '-') {
      return 0;
    }
    if (!alphanumeric && (i == 0 || i == length - 1)) {
      return 0;
    }
  }
  return 1;
}

/* The parts of an s3:// URI, pointing into one writable copy. */
typedef struct s3_uri {
  char *copy;
  const char *bucket;
  const char *endpoint;
  const char *region;
  const char *path_style;
  const char *public_endpoint;
} s3_uri_t;

static ap_status_t parse_uri(const char *uri, s3_uri_t *out,
                             ap_error_t *error) {
  memset(out, 0, sizeof *out);
  out->copy = strdup(uri + strlen("s3://"));
  if (!out->copy) {
    return AP_NO_MEMORY(error);
  }
  char *query = strchr(out->copy, '?');
  if (query) {
    *query++ = '\0';
  }
  out->bucket = out->copy;
  if (!bucket_is_valid(out->bucket)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "objects.uri bucket \"%.80s\" is invalid: use 3 to "
                        "63 characters of a-z, 0-9, \".\" and \"-\", as in "
                        "s3://recordings?endpoint=http://127.0.0.1:9000",
                        out->bucket);
  }
  for (char *pair = query ? strtok(query, "&") : NULL; pair;
       pair = strtok(NULL, "&")) {
    char *value = strchr(pair, '=');
    if (!value) {
      return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                          "objects.uri parameter \"%.80s\" has no value: "
                          "write name=value",
                          pair);
    }
    *value++ = '\0';
    if (!percent_decode(value)) {
      return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                          "objects.uri parameter %s has a malformed %% "
                          "escape",
                          pair);
    }
    if (strcmp(pair, "endpoint") == 0) {
      out->endpoint = value;
    } else if (strcmp(pair, "region") == 0) {
      out->region = value;
    } else if (strcmp(pair, "path_style") == 0) {
      out->path_style = value;
    } else if (strcmp(pair, "public_endpoint") == 0) {
      out->public_endpoint = value;
    } else {
      return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                          "objects.uri parameter \"%.80s\" is unknown: use "
                          "endpoint, region, path_style or public_endpoint",
                          pair);
    }
  }
  return AP_OK;
}

/* Checks an endpoint and stores its origin ("http://host:port"). */
static ap_status_t parse_endpoint(const char *name, const char *text,
                                  char **origin, ap_error_t *error) {
  ap_base_url_t url = {0};
  ap_error_t local = {0};
  if (ap_base_url_parse(text, &url, &local) != AP_OK || *url.path_prefix) {
    ap_base_url_free(&url);
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "objects.uri %s \"%.200s\" is invalid: use "
                        "http://HOST:PORT or https://HOST without a path",
                        name, text);
  }
  size_t size = strlen(url.authority) + 16;
  *origin = malloc(size);
  if (*origin) {
    snprintf(*origin, size, "%s://%s", url.https ? "https" : "http",
             url.authority);
  }
  ap_base_url_free(&url);
  return *origin ? AP_OK : AP_NO_MEMORY(error);
}

/* Returns the configuration key's value, else the variable's, else NULL. */
static const char *setting(const ap_config_t *config, const char *key,
                           const char *variable) {
  const char *value = ap_config_get(config, key);
  if (value && *value) {
    return value;
  }
  value = getenv(variable);
  return value && *value ? value : NULL;
}

static ap_status_t fill_store(s3_store_t *store, const s3_uri_t *uri,
                              const ap_config_t *config, ap_error_t *error) {
  const char *region = uri->region ? uri->region : "us-east-1";
  store->path_style = uri->path_style && strcmp(uri->path_style, "1") == 0;
  if (uri->path_style && strcmp(uri->path_style, "1") != 0 &&
      strcmp(uri->path_style, "0") != 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "objects.uri path_style \"%.20s\" is invalid: use 0 "
                        "or 1",
                        uri->path_style);
  }
  char default_endpoint[128];
  snprintf(default_endpoint, sizeof default_endpoint,
           "https://s3.%.80s.amazonaws.com", region);
  char *origin = NULL;
  ap_status_t status = parse_endpoint(
      "endpoint", uri->endpoint ? uri->endpoint : default_endpoint, &origin,
      error);
  if (status == AP_OK) {
    status =
        parse_endpoint("public_endpoint",
                       uri->public_endpoint
                           ? uri->public_endpoint
                           : (uri->endpoint ? uri->endpoint : default_endpoint),
                       &store->public_origin, error);
  }
  if (status != AP_OK) {
    free(origin);
    return status;
  }

  const char *access_key_id =
      setting(config, "objects.s3_access_key_id", "AWS_ACCESS_KEY_ID");
  const char *secret_access_key =
      setting(config, "objects.s3_secret_access_key", "AWS_SECRET_ACCESS_KEY");
  const char *session_token =
      setting(config, "objects.s3_session_token", "AWS_SESSION_TOKEN");
  if (!access_key_id || !secret_access_key) {
    free(origin);
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "S3 credentials are missing: set "
                        "objects.s3_access_key_id and "
                        "objects.s3_secret_access_key, or AWS_ACCESS_KEY_ID "
                        "and AWS_SECRET_ACCESS_KEY");
  }
  store->bucket = strdup(uri->bucket);
  store->region = strdup(region);
  store->access_key_id = strdup(access_key_id);
  store->secret_access_key = strdup(secret_access_key);
  store->session_token = session_token ? strdup(session_token) : NULL;
  if (!store->bucket || !store->region || !store->access_key_id ||
      !store->secret_access_key || (session_token && !store->session_token)) {
    free(origin);
    return AP_NO_MEMORY(error);
  }

  int64_t timeout_ms = 0;
  status = ap_config_get_int64(config, "objects.s3_part_size",
                               &store->part_size, error);
  if (status == AP_OK) {
    status =
        ap_config_get_int64(config, "objects.s3_timeout", &timeout_ms, error);
  }
  if (status == AP_OK && (store->part_size < AP_S3_MIN_PART_SIZE ||
                          store->part_size > (int64_t)5 << 30)) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                          "objects.s3_part_size %" PRId64 " is outside 5M "
                          "to 5G, the part sizes S3 accepts",
                          store->part_size);
  }
  if (status == AP_OK) {
    ap_s3_client_options_t options = {0};
    options.origin = origin;
    options.bucket = store->bucket;
    options.path_style = store->path_style;
    options.credentials = store_credentials(store);
    options.connect_timeout_ms = timeout_ms < 10000 ? (long)timeout_ms : 10000;
    options.timeout_ms = (long)timeout_ms;
    options.max_attempts = 4;
    status = ap_s3_client_open(&options, &store->client, error);
  }
  free(origin);
  return status;
}

ap_status_t ap_s3_store_open(const char *uri, const ap_config_t *config,
                             const ap_object_store_backend_t **backend,
                             void **state, ap_error_t *error) {
  *backend = NULL;
  *state = NULL;
  s3_uri_t parsed;
  ap_status_t status = parse_uri(uri, &parsed, error);
  s3_store_t *store = NULL;
  if (status == AP_OK) {
    store = calloc(1, sizeof *store);
    if (!store) {
      status = AP_NO_MEMORY(error);
    }
  }
  if (status == AP_OK) {
    status = fill_store(store, &parsed, config, error);
  }
  free(parsed.copy);
  if (status != AP_OK) {
    s3_close(store);
    return status;
  }
  *backend = &s3_backend;
  *state = store;
  return AP_OK;
}
