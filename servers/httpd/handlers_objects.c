/*
 * The file store's presigned URLs: PUT /v1/objects/{key} streams the body
 * into the store, GET /v1/objects/{key} streams an object back. Both are
 * authorised by the URL's signature alone, verified by the storage area
 * (expiry, method, host, path, signed content type and length). A PUT
 * answers with the hex MD5 of the body as ETag, as S3 does, which is what
 * a multipart upload's completion checks each part against.
 *
 * POST /v1/objects takes a browser form (multipart/form-data) whose
 * fields key, Content-Type, policy and x-ap-signature come before the
 * file field; the policy is verified before the first file byte is
 * stored, and the file is streamed into the store with its size checked
 * as it arrives.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include <audiopipe/io.h>
#include <audiopipe/log.h>
#include <audiopipe/storage.h>
#include <audiopipe/upload.h>

#include "server.h"

/* Bytes handed to libmicrohttpd per read of an object GET. */
#define GET_BLOCK_SIZE (64 * 1024)

/* Buffer of the form parser, in bytes. */
#define POST_BUFFER_SIZE (64 * 1024)

/* Longest form field kept before the file; the policy is the longest. */
#define FORM_FIELD_MAX_BYTES 8192

/* Body bytes read and discarded after a form failed, before the
 * connection is closed without an answer. */
#define FORM_DRAIN_MAX_BYTES (64 * 1024 * 1024)

/* A form field received before the file field. */
typedef struct form_field {
  char *value;
  size_t length;
} form_field_t;

/* What a streamed object body holds, for a PUT or a form POST. */
typedef struct object_body {
  ap_object_upload_t *upload; /* PUT */
  EVP_MD_CTX *md5;            /* PUT: hash of the body, for the ETag */
  struct MHD_PostProcessor *post_processor; /* POST */
  ap_upload_form_t *form;                   /* POST, once the file starts */
  form_field_t key;
  form_field_t content_type;
  form_field_t policy;
  form_field_t signature;
  int file_seen;    /* a file field started; fields after it are ignored */
  size_t ignored;   /* bytes of the ignored fields after the file */
  uint64_t drained; /* bytes discarded since the failure */
  ap_error_t failure;
  int failed;
} object_body_t;

static void object_body_free(object_body_t *body) {
  if (!body) {
    return;
  }
  ap_object_upload_close(body->upload);
  EVP_MD_CTX_free(body->md5);
  if (body->post_processor) {
    MHD_destroy_post_processor(body->post_processor);
  }
  ap_upload_form_close(body->form);
  free(body->key.value);
  free(body->content_type.value);
  free(body->policy.value);
  free(body->signature.value);
  free(body);
}

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

static enum MHD_Result object_post_begin(httpd_request_t *request,
                                         struct MHD_Connection *connection);
static enum MHD_Result object_post_body(httpd_request_t *request,
                                        struct MHD_Connection *connection,
                                        const char *data, size_t *size);

/* Object uploads only create objects (see ap_object_upload_begin), so a
 * signed URL or form used again gets 409 and cannot replace the object
 * completion validated.
 * NOTE: a part URL used after completion still stores a part that
 * nothing deletes. */
enum MHD_Result httpd_object_put_begin(httpd_request_t *request,
                                       struct MHD_Connection *connection) {
  if (request->match.route->id == HTTPD_ROUTE_OBJECT_POST) {
    return object_post_begin(request, connection);
  }
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
  object_body_t *body = calloc(1, sizeof *body);
  if (body) {
    body->md5 = EVP_MD_CTX_new();
  }
  if (!body || !body->md5 ||
      EVP_DigestInit_ex(body->md5, EVP_md5(), NULL) != 1) {
    object_body_free(body);
    ap_object_upload_close(upload);
    return httpd_respond_error(request, connection, 0, AP_ERR_NO_MEMORY,
                               "out of memory starting the upload");
  }
  body->upload = upload;
  request->upload = body;
  return MHD_YES;
}

/* Formats the body's MD5 as a quoted hex ETag. */
static int format_etag(EVP_MD_CTX *md5, char *etag, size_t size) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(md5, digest, &length) != 1 || size < 2 * length + 3) {
    return 0;
  }
  static const char digits[] = "0123456789abcdef";
  etag[0] = '"';
  for (unsigned int i = 0; i < length; i++) {
    etag[1 + 2 * i] = digits[digest[i] >> 4];
    etag[2 + 2 * i] = digits[digest[i] & 0x0f];
  }
  etag[1 + 2 * length] = '"';
  etag[2 + 2 * length] = '\0';
  return 1;
}

/* Responds {"key", "size_bytes"} with an optional ETag header. */
static enum MHD_Result respond_stored(httpd_request_t *request,
                                      struct MHD_Connection *connection,
                                      const char *key, int64_t size,
                                      const char *etag) {
  json_object *body = json_object_new_object();
  if (!body) {
    return MHD_NO;
  }
  json_object_object_add(body, "key", json_object_new_string(key));
  json_object_object_add(body, "size_bytes", json_object_new_int64(size));
  if (etag) {
    json_object_object_add(body, "etag", json_object_new_string(etag));
  }
  const char *text = json_object_to_json_string_ext(
      body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  struct MHD_Response *response = MHD_create_response_from_buffer(
      strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
  json_object_put(body);
  if (!response) {
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  if (etag) {
    MHD_add_response_header(response, MHD_HTTP_HEADER_ETAG, etag);
  }
  return httpd_queue(request, connection, MHD_HTTP_OK, response);
}

enum MHD_Result httpd_handle_object_put(httpd_request_t *request,
                                        struct MHD_Connection *connection,
                                        const char *data, size_t *size) {
  if (request->match.route->id == HTTPD_ROUTE_OBJECT_POST) {
    return object_post_body(request, connection, data, size);
  }
  object_body_t *body = request->upload;
  ap_object_upload_t *upload = body ? body->upload : NULL;
  if (!upload) {
    return httpd_respond_error(request, connection, 0, AP_ERR_INTERNAL,
                               "upload was not started");
  }
  ap_error_t error = {0};
  if (*size > 0) {
    /* Each chunk goes to the store as it arrives, so memory use does not
     * grow with the object. */
    ap_status_t status = ap_object_upload_write(upload, data, *size, &error);
    if (status == AP_OK && EVP_DigestUpdate(body->md5, data, *size) != 1) {
      status =
          httpd_error_set(&error, AP_ERR_NO_MEMORY, "hashing the body failed");
    }
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
  char etag[2 * EVP_MAX_MD_SIZE + 3];
  if (!format_etag(body->md5, etag, sizeof etag)) {
    return httpd_respond_error(request, connection, 0, AP_ERR_INTERNAL,
                               "hashing the body failed");
  }
  return respond_stored(request, connection, request->object_key, received,
                        etag);
}

void httpd_object_put_release(httpd_request_t *request) {
  object_body_free(request->upload);
  request->upload = NULL;
}

/* ---- The file store's form POST ------------------------------------ */

/* Appends a chunk of a form field; fails past FORM_FIELD_MAX_BYTES. */
static int append_field(form_field_t *field, const char *data, size_t size) {
  if (field->length + size > FORM_FIELD_MAX_BYTES) {
    return 0;
  }
  char *grown = realloc(field->value, field->length + size + 1);
  if (!grown) {
    return 0;
  }
  memcpy(grown + field->length, data, size);
  field->value = grown;
  field->length += size;
  field->value[field->length] = '\0';
  return 1;
}

static void body_fail(object_body_t *body, const ap_error_t *error) {
  if (!body->failed) {
    body->failure = *error;
    body->failed = 1;
  }
}

/* Called by the form parser for each piece of a field. */
static enum MHD_Result on_form_data(void *cls, enum MHD_ValueKind kind,
                                    const char *name, const char *filename,
                                    const char *content_type,
                                    const char *transfer_encoding,
                                    const char *data, uint64_t offset,
                                    size_t size) {
  (void)kind;
  (void)filename;
  (void)content_type;
  (void)transfer_encoding;
  httpd_request_t *request = cls;
  object_body_t *body = request->upload;
  ap_error_t error = {0};
  if (body->failed) {
    return MHD_NO;
  }
  /* A part without a name in its Content-Disposition reaches here with
   * name NULL. */
  if (!name) {
    httpd_error_set(&error, AP_ERR_INVALID_ARGUMENT,
                    "form part has no name: give every part a "
                    "Content-Disposition: form-data; name=... header");
    body_fail(body, &error);
    return MHD_NO;
  }
  if (body->file_seen && strcmp(name, "file") != 0) {
    /* S3 ignores the fields after the file, too, but their bytes are
     * bounded like the fields before it, so a form cannot stream without
     * end past its file. */
    body->ignored += size;
    if (body->ignored > FORM_FIELD_MAX_BYTES) {
      httpd_error_set(&error, AP_ERR_INVALID_ARGUMENT,
                      "form fields after the file are over %d bytes: send "
                      "the file last",
                      FORM_FIELD_MAX_BYTES);
      body_fail(body, &error);
      return MHD_NO;
    }
    return MHD_YES;
  }
  if (strcmp(name, "file") == 0) {
    if (!body->form) {
      ap_upload_form_fields_t fields;
      ap_upload_form_fields_init(&fields);
      fields.key = body->key.value;
      fields.content_type = body->content_type.value;
      fields.policy = body->policy.value;
      fields.signature = body->signature.value;
      body->file_seen = 1;
      if (ap_upload_form_begin(request->server->context, &fields, &body->form,
                               &error) != AP_OK) {
        body_fail(body, &error);
        return MHD_NO;
      }
    }
    if (size > 0 &&
        ap_upload_form_write(body->form, data, size, &error) != AP_OK) {
      body_fail(body, &error);
      return MHD_NO;
    }
    return MHD_YES;
  }

  form_field_t *field = strcmp(name, "key") == 0 ? &body->key
                        : strcmp(name, "Content-Type") == 0
                            ? &body->content_type
                        : strcmp(name, "policy") == 0         ? &body->policy
                        : strcmp(name, "x-ap-signature") == 0 ? &body->signature
                                                              : NULL;
  if (!field) {
    httpd_error_set(&error, AP_ERR_INVALID_ARGUMENT,
                    "form field %.64s is unknown: send key, "
                    "Content-Type, policy, x-ap-signature, then file",
                    name);
    body_fail(body, &error);
    return MHD_NO;
  }
  /* A field's value arrives in pieces at rising offsets, so a second
   * piece at offset 0 is the field sent again. */
  if (offset == 0 && field->value) {
    httpd_error_set(&error, AP_ERR_INVALID_ARGUMENT,
                    "form field %.64s is repeated: send each field once", name);
    body_fail(body, &error);
    return MHD_NO;
  }
  if (!append_field(field, data, size)) {
    httpd_error_set(&error, AP_ERR_INVALID_ARGUMENT,
                    "form field %.64s is over %d bytes", name,
                    FORM_FIELD_MAX_BYTES);
    body_fail(body, &error);
    return MHD_NO;
  }
  return MHD_YES;
}

static enum MHD_Result object_post_begin(httpd_request_t *request,
                                         struct MHD_Connection *connection) {
  object_body_t *body = calloc(1, sizeof *body);
  if (!body) {
    return httpd_respond_error(request, connection, 0, AP_ERR_NO_MEMORY,
                               "out of memory starting the form upload");
  }
  request->upload = body;
  body->post_processor = MHD_create_post_processor(connection, POST_BUFFER_SIZE,
                                                   on_form_data, request);
  const char *type = httpd_header(connection, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!body->post_processor || !type ||
      strncasecmp(type, "multipart/form-data", 19) != 0) {
    return httpd_respond_error(request, connection, MHD_HTTP_BAD_REQUEST,
                               AP_ERR_INVALID_ARGUMENT,
                               "Content-Type: must be multipart/form-data "
                               "with a boundary, the body of a browser form "
                               "POST");
  }
  return MHD_YES;
}

/* Responds to a failed form: 400 for a body past the policy's maximum, as
 * S3 answers EntityTooLarge, else the error's own status. */
static enum MHD_Result respond_form_failure(httpd_request_t *request,
                                            struct MHD_Connection *connection,
                                            const ap_error_t *error) {
  if (error->code == AP_ERR_UPLOAD_TOO_LARGE) {
    return httpd_respond_error(request, connection, MHD_HTTP_BAD_REQUEST,
                               (int)error->code, "%s", error->message);
  }
  return httpd_respond_ap_error(request, connection, error);
}

static enum MHD_Result object_post_body(httpd_request_t *request,
                                        struct MHD_Connection *connection,
                                        const char *data, size_t *size) {
  object_body_t *body = request->upload;
  if (!body || !body->post_processor) {
    return httpd_respond_error(request, connection, 0, AP_ERR_INTERNAL,
                               "form upload was not started");
  }
  if (*size > 0) {
    size_t length = *size;
    *size = 0;
    /* libmicrohttpd 0.9.75 cannot queue a response while the body is
     * still arriving. A failed form is therefore drained and answered at
     * its end, and a client that keeps sending far past the failure is
     * cut off. */
    if (body->failed) {
      body->drained += length;
      return body->drained > FORM_DRAIN_MAX_BYTES ? MHD_NO : MHD_YES;
    }
    if (MHD_post_process(body->post_processor, data, length) != MHD_YES &&
        !body->failed) {
      ap_error_t error = {0};
      httpd_error_set(&error, AP_ERR_INVALID_ARGUMENT,
                      "the body is not a valid multipart/form-data form");
      body_fail(body, &error);
    }
    return MHD_YES;
  }

  ap_error_t error = {0};
  if (body->failed) {
    return respond_form_failure(request, connection, &body->failure);
  }
  if (!body->form) {
    return httpd_respond_error(request, connection, MHD_HTTP_BAD_REQUEST,
                               AP_ERR_INVALID_ARGUMENT,
                               "file: the form has no file field: send it "
                               "after the policy fields");
  }
  int64_t received = ap_upload_form_received(body->form);
  if (ap_upload_form_finish(body->form, &error) != AP_OK) {
    return respond_form_failure(request, connection, &error);
  }
  return respond_stored(request, connection, ap_upload_form_key(body->form),
                        received, NULL);
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
