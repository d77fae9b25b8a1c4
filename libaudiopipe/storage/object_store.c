/*
 * The backend-neutral half of the object store: choosing the backend from
 * objects.uri, checking every key, type, length and expiry before a
 * backend receives it, and the streaming upload that audiopipe-httpd feeds
 * with request bodies.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error_internal.h"
#include "storage/s3_store.h"
#include "storage/storage_internal.h"

struct ap_object_store {
  const ap_object_store_backend_t *backend;
  void *state;
};

ap_status_t ap_object_store_open(const ap_config_t *config,
                                 ap_object_store_t **out, ap_error_t *error) {
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_object_store_open: out is required");
  }
  *out = NULL;

  const char *uri = ap_config_get(config, "objects.uri");
  const char *separator = uri ? strstr(uri, "://") : NULL;
  if (!separator || separator == uri) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "objects.uri \"%s\" has no scheme: use file://PATH",
                        uri ? uri : "(unset)");
  }
  size_t scheme_length = (size_t)(separator - uri);
  if (scheme_length == 2 && strncmp(uri, "s3", 2) == 0) {
    ap_object_store_t *s3_store = calloc(1, sizeof *s3_store);
    if (!s3_store) {
      return AP_NO_MEMORY(error);
    }
    ap_status_t status = ap_s3_store_open(uri, config, &s3_store->backend,
                                          &s3_store->state, error);
    if (status != AP_OK) {
      free(s3_store);
      return status;
    }
    *out = s3_store;
    return AP_OK;
  }
  if (scheme_length != 4 || strncmp(uri, "file", 4) != 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNSUPPORTED,
                        "objects.uri scheme \"%.*s\" is not supported by "
                        "this build: use file://PATH or s3://BUCKET",
                        (int)scheme_length, uri);
  }
  const char *root = separator + 3;
  if (!*root) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "objects.uri \"%s\" names no directory: use "
                        "file://PATH, such as file://data/objects",
                        uri);
  }

  ap_object_store_t *store = calloc(1, sizeof *store);
  if (!store) {
    return AP_NO_MEMORY(error);
  }
  ap_status_t status =
      ap_file_store_open(root, ap_config_get(config, "public.base_url"),
                         ap_config_get(config, "signing.secret"),
                         &store->backend, &store->state, error);
  if (status != AP_OK) {
    free(store);
    return status;
  }
  *out = store;
  return AP_OK;
}

void ap_object_store_close(ap_object_store_t *store) {
  if (!store) {
    return;
  }
  store->backend->close(store->state);
  free(store);
}

void *ap_object_store_backend_state(ap_object_store_t *store,
                                    const char *backend_name) {
  if (!store || strcmp(store->backend->name, backend_name) != 0) {
    return NULL;
  }
  return store->state;
}

static ap_status_t check_store(const ap_object_store_t *store,
                               const char *function, ap_error_t *error) {
  if (!store) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "%s: store is required", function);
  }
  return AP_OK;
}

ap_status_t ap_object_store_stat(ap_object_store_t *store, const char *key,
                                 ap_object_info_t *info, ap_error_t *error) {
  ap_status_t status = check_store(store, __func__, error);
  if (status == AP_OK && !info) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                          "ap_object_store_stat: info is required");
  }
  if (status == AP_OK) {
    status = ap_object_key_validate(key, error);
  }
  if (status != AP_OK) {
    return status;
  }
  return store->backend->stat(store->state, key, info, error);
}

ap_status_t ap_object_store_open_read(ap_object_store_t *store, const char *key,
                                      ap_io_t **out, ap_error_t *error) {
  ap_status_t status = check_store(store, __func__, error);
  if (status == AP_OK && !out) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                          "ap_object_store_open_read: out is required");
  }
  if (status == AP_OK) {
    status = ap_object_key_validate(key, error);
  }
  if (status != AP_OK) {
    return status;
  }
  return store->backend->open_read(store->state, key, out, error);
}

/* Checks a writer's content type; NULL means the default. */
static ap_status_t check_content_type(const char *content_type,
                                      ap_error_t *error) {
  if (content_type && !ap_content_type_is_valid(content_type)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "invalid content type \"%.130s\": expected "
                        "type/subtype such as audio/wav, without parameters",
                        content_type);
  }
  return AP_OK;
}

/* Checks the arguments common to both kinds of write. */
static ap_status_t check_write(ap_object_store_t *store, const char *function,
                               const char *key, const char *content_type,
                               ap_output_t **out, ap_error_t *error) {
  ap_status_t status = check_store(store, function, error);
  if (status == AP_OK && !out) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                          "%s: out is required", function);
  }
  if (status == AP_OK) {
    status = ap_object_key_validate(key, error);
  }
  if (status == AP_OK) {
    status = check_content_type(content_type, error);
  }
  return status;
}

ap_status_t ap_object_store_open_write(ap_object_store_t *store,
                                       const char *key,
                                       const char *content_type,
                                       ap_output_t **out, ap_error_t *error) {
  ap_status_t status =
      check_write(store, __func__, key, content_type, out, error);
  if (status != AP_OK) {
    return status;
  }
  return store->backend->open_write(
      store->state, key, content_type ? content_type : AP_DEFAULT_CONTENT_TYPE,
      out, error);
}

ap_status_t ap_object_store_open_write_exclusive(ap_object_store_t *store,
                                                 const char *key,
                                                 const char *content_type,
                                                 ap_output_t **out,
                                                 ap_error_t *error) {
  ap_status_t status =
      check_write(store, __func__, key, content_type, out, error);
  if (status != AP_OK) {
    return status;
  }
  if (!store->backend->open_write_exclusive) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNSUPPORTED,
                        "the %s object store cannot refuse to replace an "
                        "object: clients write to it through its own "
                        "presigned URLs",
                        store->backend->name);
  }
  return store->backend->open_write_exclusive(
      store->state, key, content_type ? content_type : AP_DEFAULT_CONTENT_TYPE,
      out, error);
}

ap_status_t ap_object_store_put_from_io(ap_object_store_t *store,
                                        const char *key,
                                        const char *content_type,
                                        ap_io_t *input, ap_error_t *error) {
  if (!input) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_object_store_put_from_io: input is required");
  }
  ap_output_t *output = NULL;
  ap_status_t status =
      ap_object_store_open_write(store, key, content_type, &output, error);
  if (status != AP_OK) {
    return status;
  }

  enum { CHUNK_SIZE = 64 * 1024 };
  unsigned char *buffer = malloc(CHUNK_SIZE);
  if (!buffer) {
    ap_output_close(output);
    return AP_NO_MEMORY(error);
  }
  for (;;) {
    int64_t count = ap_io_read(input, buffer, CHUNK_SIZE, error);
    if (count < 0) {
      status = error && error->code ? (ap_status_t)error->code : AP_ERR_IO;
      break;
    }
    if (count == 0) {
      status = ap_output_finish(output, error);
      break;
    }
    status = ap_output_write(output, buffer, (size_t)count, error);
    if (status != AP_OK) {
      break;
    }
  }
  free(buffer);
  ap_output_close(output);
  return status;
}

ap_status_t ap_object_store_delete(ap_object_store_t *store, const char *key,
                                   ap_error_t *error) {
  ap_status_t status = check_store(store, __func__, error);
  if (status == AP_OK) {
    status = ap_object_key_validate(key, error);
  }
  if (status != AP_OK) {
    return status;
  }
  return store->backend->remove(store->state, key, error);
}

ap_status_t ap_object_store_list(ap_object_store_t *store, const char *prefix,
                                 ap_object_list_fn callback, void *user_data,
                                 ap_error_t *error) {
  ap_status_t status = check_store(store, __func__, error);
  if (status == AP_OK && !callback) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                          "ap_object_store_list: callback is required");
  }
  if (status == AP_OK) {
    status = ap_object_prefix_validate(prefix, error);
  }
  if (status != AP_OK) {
    return status;
  }
  return store->backend->list(store->state, prefix, callback, user_data, error);
}

ap_status_t
ap_object_store_presign(ap_object_store_t *store, const char *method,
                        const char *key, const char *content_type,
                        int64_t content_length, int64_t expires_seconds,
                        ap_presigned_request_t *out, ap_error_t *error) {
  ap_status_t status = check_store(store, __func__, error);
  if (status == AP_OK && !out) {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                          "ap_object_store_presign: out is required");
  }
  if (status != AP_OK) {
    return status;
  }
  memset(out, 0, sizeof *out);

  int is_put = method && strcmp(method, "PUT") == 0;
  int is_get = method && strcmp(method, "GET") == 0;
  if (!is_put && !is_get) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "cannot presign method \"%s\": use PUT or GET",
                        method ? method : "(null)");
  }
  status = ap_object_key_validate(key, error);
  if (status != AP_OK) {
    return status;
  }
  if (is_put && !ap_content_type_is_valid(content_type)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "invalid content type \"%.130s\" for a presigned "
                        "PUT: expected type/subtype such as audio/wav",
                        content_type ? content_type : "(null)");
  }
  if (is_put && content_length < 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "content length %" PRId64 " of a presigned PUT is "
                        "negative: pass the exact byte count",
                        content_length);
  }
  if (is_get && (content_type || content_length != -1)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "a presigned GET takes no content type or length: "
                        "pass NULL and -1");
  }
  if (expires_seconds < 1 || expires_seconds > AP_PRESIGN_MAX_EXPIRY_SECONDS) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "expiry of %" PRId64 " s is outside 1 to %d s (7 "
                        "days), the lifetime a presigned URL may have",
                        expires_seconds, AP_PRESIGN_MAX_EXPIRY_SECONDS);
  }

  int64_t expires_at = (int64_t)time(NULL) + expires_seconds;
  return store->backend->presign(store->state, method, key,
                                 is_put ? content_type : NULL, content_length,
                                 expires_at, out, error);
}

/* ---- Streaming upload ----------------------------------------------- */

struct ap_object_upload {
  ap_output_t *output; /* NULL once abandoned or finished */
  int64_t expected_length;
  int64_t received;
  int finished;
  ap_status_t failure; /* first failure, repeated by later calls */
  ap_error_t failure_error;
};

ap_status_t ap_object_upload_begin(ap_object_store_t *store, const char *key,
                                   const char *content_type,
                                   int64_t expected_length,
                                   ap_object_upload_t **out,
                                   ap_error_t *error) {
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_object_upload_begin: out is required");
  }
  *out = NULL;
  if (expected_length < 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "expected length %" PRId64 " is negative: pass the "
                        "signed Content-Length",
                        expected_length);
  }

  ap_object_upload_t *upload = calloc(1, sizeof *upload);
  if (!upload) {
    return AP_NO_MEMORY(error);
  }
  /* Object uploads carry client bodies, so where the store can refuse to
   * replace an object they do: a presigned URL replayed after completion
   * must not swap the validated object for other bytes. */
  ap_status_t status =
      store && store->backend->open_write_exclusive
          ? ap_object_store_open_write_exclusive(store, key, content_type,
                                                 &upload->output, error)
          : ap_object_store_open_write(store, key, content_type,
                                       &upload->output, error);
  if (status != AP_OK) {
    free(upload);
    return status;
  }
  upload->expected_length = expected_length;
  *out = upload;
  return AP_OK;
}

/* Records the first failure, abandons the partial object and returns the
 * failure. */
static ap_status_t fail_upload(ap_object_upload_t *upload, ap_status_t status,
                               const ap_error_t *cause) {
  if (upload->failure == AP_OK) {
    upload->failure = status;
    if (cause) {
      upload->failure_error = *cause;
    } else {
      ap_error_set(&upload->failure_error, AP_DOMAIN_STORAGE,
                   (ap_error_code_t)status, "%s",
                   ap_error_code_description(status));
    }
  }
  ap_output_close(upload->output);
  upload->output = NULL;
  return upload->failure;
}

/* Repeats the recorded failure into the caller's error. */
static ap_status_t repeat_failure(const ap_object_upload_t *upload,
                                  ap_error_t *error) {
  if (error) {
    *error = upload->failure_error;
  }
  return upload->failure;
}

ap_status_t ap_object_upload_write(ap_object_upload_t *upload, const void *data,
                                   size_t size, ap_error_t *error) {
  if (!upload || (!data && size > 0)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_object_upload_write: upload and data are "
                        "required");
  }
  if (upload->failure != AP_OK) {
    return repeat_failure(upload, error);
  }
  if (upload->finished) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_object_upload_write: the upload is finished");
  }

  uint64_t room = (uint64_t)(upload->expected_length - upload->received);
  if ((uint64_t)size > room) {
    ap_error_t local = {0};
    ap_error_set(&local, AP_DOMAIN_STORAGE, AP_ERR_UPLOAD_TOO_LARGE,
                 "the body exceeds the signed Content-Length of %" PRId64
                 " bytes: nothing was stored; upload exactly the signed "
                 "bytes",
                 upload->expected_length);
    fail_upload(upload, AP_ERR_UPLOAD_TOO_LARGE, &local);
    return repeat_failure(upload, error);
  }

  ap_error_t local = {0};
  ap_status_t status = ap_output_write(upload->output, data, size, &local);
  if (status != AP_OK) {
    fail_upload(upload, status, &local);
    return repeat_failure(upload, error);
  }
  upload->received += (int64_t)size;
  return AP_OK;
}

int64_t ap_object_upload_received(const ap_object_upload_t *upload) {
  return upload ? upload->received : -1;
}

ap_status_t ap_object_upload_finish(ap_object_upload_t *upload,
                                    ap_error_t *error) {
  if (!upload) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_object_upload_finish: upload is required");
  }
  if (upload->failure != AP_OK) {
    return repeat_failure(upload, error);
  }
  if (upload->finished) {
    return AP_OK;
  }
  if (upload->received != upload->expected_length) {
    ap_error_t local = {0};
    ap_error_set(&local, AP_DOMAIN_STORAGE, AP_ERR_SIZE_MISMATCH,
                 "the body ended after %" PRId64 " of the %" PRId64
                 " signed bytes: nothing was stored; upload the whole file",
                 upload->received, upload->expected_length);
    fail_upload(upload, AP_ERR_SIZE_MISMATCH, &local);
    return repeat_failure(upload, error);
  }

  ap_error_t local = {0};
  ap_status_t status = ap_output_finish(upload->output, &local);
  if (status != AP_OK) {
    fail_upload(upload, status, &local);
    return repeat_failure(upload, error);
  }
  ap_output_close(upload->output);
  upload->output = NULL;
  upload->finished = 1;
  return AP_OK;
}

void ap_object_upload_close(ap_object_upload_t *upload) {
  if (!upload) {
    return;
  }
  ap_output_close(upload->output);
  free(upload);
}

ap_status_t ap_object_store_presign_get(ap_object_store_t *store,
                                        const char *key,
                                        int64_t expires_seconds, char **url,
                                        int64_t *expires_at,
                                        ap_error_t *error) {
  if (!url) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_object_store_presign_get: url is required");
  }
  *url = NULL;

  ap_presigned_request_t presigned;
  ap_status_t status = ap_object_store_presign(
      store, "GET", key, NULL, -1, expires_seconds, &presigned, error);
  if (status != AP_OK) {
    return status;
  }

  /* The URL moves to the caller; ap_free releases it like any string the
   * library returns. */
  *url = presigned.url;
  presigned.url = NULL;
  if (expires_at) {
    *expires_at = presigned.expires_at;
  }
  ap_presigned_request_free(&presigned);
  return AP_OK;
}
