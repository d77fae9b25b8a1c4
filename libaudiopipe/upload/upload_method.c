/*
 * Upload methods beside the single PUT: the choice and its size rules,
 * and the tickets of browser form POSTs and of multipart uploads.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"
#include "storage/s3_store.h"
#include "upload/upload_internal.h"
#include "upload/upload_method.h"

/* S3 rejects a single PUT above 5 GiB, so the threshold may not exceed
 * it. */
#define MAX_SINGLE_PUT_BYTES (5LL * 1024 * 1024 * 1024)

const char *ap_upload_method_name(ap_upload_method_t method) {
  switch (method) {
  case AP_UPLOAD_METHOD_PUT:
    return "put";
  case AP_UPLOAD_METHOD_POST:
    return "post";
  case AP_UPLOAD_METHOD_MULTIPART:
    return "multipart";
  }
  return "unknown";
}

ap_status_t ap_upload_method_parse(const char *name, ap_upload_method_t *method,
                                   ap_error_t *error) {
  static const ap_upload_method_t methods[] = {
      AP_UPLOAD_METHOD_PUT, AP_UPLOAD_METHOD_POST, AP_UPLOAD_METHOD_MULTIPART};
  for (size_t i = 0; name && method && i < sizeof methods / sizeof *methods;
       i++) {
    if (strcmp(name, ap_upload_method_name(methods[i])) == 0) {
      *method = methods[i];
      return AP_OK;
    }
  }
  return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                      "method: \"%.40s\" is not an upload method: use put, "
                      "post or multipart",
                      name ? name : "(none)");
}

void ap_upload_request_init_size(ap_upload_request_t *request, size_t size) {
  if (!request || size < sizeof request->struct_size) {
    return;
  }
  size_t filled = size < sizeof *request ? size : sizeof *request;
  memset(request, 0, filled);
  request->struct_size = filled;
}

ap_upload_method_t
ap_upload_request_method(const ap_upload_request_t *request) {
  size_t end = offsetof(ap_upload_request_t, method) + sizeof request->method;
  return request->struct_size >= end ? request->method : AP_UPLOAD_METHOD_PUT;
}

ap_status_t ap_upload_multipart_threshold(const ap_config_t *config,
                                          int64_t *threshold,
                                          ap_error_t *error) {
  ap_status_t status = ap_config_get_int64(
      config, "uploads.multipart_threshold", threshold, error);
  if (status == AP_OK &&
      (*threshold < 1 || *threshold > MAX_SINGLE_PUT_BYTES)) {
    status = ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                          "uploads.multipart_threshold = %lld bytes is out of "
                          "range: use 1 to 5G, the S3 limit of one PUT",
                          (long long)*threshold);
  }
  return status;
}

ap_status_t ap_upload_part_layout(const ap_config_t *config, int64_t size_bytes,
                                  int64_t *part_size, int *part_count,
                                  ap_error_t *error) {
  ap_status_t status =
      ap_config_get_int64(config, "uploads.part_size", part_size, error);
  if (status != AP_OK) {
    return status;
  }
  if (*part_size < AP_UPLOAD_MIN_PART_SIZE ||
      *part_size > MAX_SINGLE_PUT_BYTES) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "uploads.part_size = %lld bytes is out of range: use "
                        "5M (the S3 minimum part size) to 5G",
                        (long long)*part_size);
  }
  /* A file that would need more parts than S3 allows gets larger parts. */
  int64_t smallest =
      (size_bytes + AP_UPLOAD_MAX_PART_COUNT - 1) / AP_UPLOAD_MAX_PART_COUNT;
  if (*part_size < smallest) {
    *part_size = smallest;
  }
  *part_count = (int)((size_bytes + *part_size - 1) / *part_size);
  return AP_OK;
}

ap_status_t ap_upload_validate_method(const ap_config_t *config,
                                      const ap_upload_request_t *request,
                                      ap_error_t *error) {
  ap_upload_method_t method = ap_upload_request_method(request);
  if (method != AP_UPLOAD_METHOD_PUT && method != AP_UPLOAD_METHOD_POST &&
      method != AP_UPLOAD_METHOD_MULTIPART) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                        "method: %d is not an upload method: use put, post "
                        "or multipart",
                        (int)method);
  }
  if (method == AP_UPLOAD_METHOD_MULTIPART) {
    if (request->size_bytes < AP_UPLOAD_MIN_PART_SIZE) {
      return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                          "method: multipart needs at least %lld bytes (the "
                          "S3 minimum part size), not %lld: use put",
                          (long long)AP_UPLOAD_MIN_PART_SIZE,
                          (long long)request->size_bytes);
    }
    int64_t part_size = 0;
    int part_count = 0;
    return ap_upload_part_layout(config, request->size_bytes, &part_size,
                                 &part_count, error);
  }
  int64_t threshold = 0;
  ap_status_t status = ap_upload_multipart_threshold(config, &threshold, error);
  if (status == AP_OK && request->size_bytes > threshold) {
    status = ap_error_set(
        error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
        "method: %s cannot send %lld bytes, over uploads.multipart_threshold "
        "(%lld): use multipart",
        ap_upload_method_name(method), (long long)request->size_bytes,
        (long long)threshold);
  }
  return status;
}

/* ---- Issuing -------------------------------------------------------- */

/* Fills the form of a post ticket: an S3 POST policy, or the file
 * store's own signed policy. Both cap the body at the declared size. */
static ap_status_t issue_form(ap_context_t *context,
                              const ap_upload_request_t *request,
                              const char *content_type, int64_t ttl_seconds,
                              ap_upload_ticket_t *ticket, ap_error_t *error) {
  ap_object_store_t *store = ap_context_object_store(context);
  ap_s3_post_form_t form = {0};
  ap_status_t status;
  if (ap_object_store_backend_state(store, "s3")) {
    status = ap_s3_post_form_create(store, ticket->object_key, content_type,
                                    request->size_bytes, 0, ttl_seconds, &form,
                                    error);
  } else {
    status = ap_upload_form_policy_create(context, ticket->object_key,
                                          content_type, request->size_bytes,
                                          ttl_seconds, &form, error);
  }
  if (status != AP_OK) {
    ap_s3_post_form_free(&form);
    return status;
  }
  ticket->request.method = strdup("POST");
  ticket->request.url = form.url;
  ticket->request.expires_at = form.expires_at;
  ticket->fields = form.fields;
  ticket->field_count = form.field_count;
  form.url = NULL;
  form.fields = NULL;
  form.field_count = 0;
  ap_s3_post_form_free(&form);
  return ticket->request.method ? AP_OK : AP_NO_MEMORY(error);
}

/* Starts the store's multipart upload; `*storage_upload_id` is
 * allocated. The file store needs no call: its id only names the folder
 * of the parts. */
static ap_status_t start_multipart(ap_context_t *context, const char *key,
                                   const char *content_type,
                                   char **storage_upload_id,
                                   ap_error_t *error) {
  ap_object_store_t *store = ap_context_object_store(context);
  if (ap_object_store_backend_state(store, "s3")) {
    return ap_s3_multipart_create(store, key, content_type, storage_upload_id,
                                  error);
  }
  char id[AP_ID_SIZE];
  ap_status_t status = ap_id_generate(id, error);
  if (status != AP_OK) {
    return status;
  }
  *storage_upload_id = strdup(id);
  return *storage_upload_id ? AP_OK : AP_NO_MEMORY(error);
}

ap_status_t ap_upload_issue_method_ticket(ap_context_t *context,
                                          const ap_upload_request_t *request,
                                          const char *content_type,
                                          ap_upload_ticket_t *ticket,
                                          ap_error_t *error) {
  const ap_config_t *config = ap_context_config(context);
  int64_t ttl_ms = 0;
  ap_status_t status = ap_upload_url_ttl(config, &ttl_ms, error);
  if (status != AP_OK) {
    return status;
  }
  int64_t ttl_seconds = (ttl_ms + 999) / 1000;
  char id[AP_ID_SIZE];
  status = ap_id_generate(id, error);
  if (status != AP_OK) {
    return status;
  }
  char key[128];
  ap_upload_object_key(request->owner, id, key, sizeof key);
  ticket->id = strdup(id);
  ticket->object_key = strdup(key);
  if (!ticket->id || !ticket->object_key) {
    return AP_NO_MEMORY(error);
  }
  ticket->upload_method = ap_upload_request_method(request);

  char *storage_upload_id = NULL;
  if (ticket->upload_method == AP_UPLOAD_METHOD_POST) {
    status =
        issue_form(context, request, content_type, ttl_seconds, ticket, error);
  } else {
    status = ap_upload_part_layout(config, request->size_bytes,
                                   &ticket->part_size_bytes,
                                   &ticket->part_count, error);
    if (status == AP_OK) {
      status = start_multipart(context, key, content_type, &storage_upload_id,
                               error);
    }
    if (status == AP_OK) {
      ticket->request.method = strdup("PUT");
      ticket->request.url = strdup("");
      /* NOTE: the whole multipart upload expires with uploads.url_ttl,
       * as a put does, so a slow client must send every part in time. */
      ticket->request.expires_at = ap_time_now_ms() / 1000 + ttl_seconds;
      if (!ticket->request.method || !ticket->request.url) {
        status = AP_NO_MEMORY(error);
      }
    }
  }
  if (status != AP_OK) {
    free(storage_upload_id);
    return status;
  }
  ticket->expires_at_ms = ticket->request.expires_at * 1000;

  int64_t now_ms = ap_time_now_ms();
  ap_upload_record_t record = {
      .id = ticket->id,
      .owner = (char *)request->owner,
      .object_key = ticket->object_key,
      .filename = (char *)request->filename,
      .content_type = (char *)content_type,
      .size_bytes = request->size_bytes,
      .state = AP_UPLOAD_PENDING,
      .expires_at_ms = ticket->expires_at_ms,
      .created_at_ms = now_ms,
      .updated_at_ms = now_ms,
      .method = (int)ticket->upload_method,
      .storage_upload_id = storage_upload_id,
      .part_size_bytes = ticket->part_size_bytes,
  };
  ap_meta_store_t *meta = ap_context_meta_store(context);
  status = meta->backend->upload_insert(meta->state, &record, error);
  if (status != AP_OK && storage_upload_id) {
    /* No row names the store's upload, so nothing else would abort it. */
    (void)ap_upload_storage_abort(context, &record, NULL);
  }
  free(storage_upload_id);
  return status;
}

/* ---- Tickets -------------------------------------------------------- */

void ap_upload_ticket_clear_method(ap_upload_ticket_t *ticket) {
  for (size_t i = 0; i < ticket->field_count; i++) {
    free(ticket->fields[i].name);
    free(ticket->fields[i].value);
  }
  free(ticket->fields);
  ticket->fields = NULL;
  ticket->field_count = 0;
}

ap_status_t ap_upload_ticket_add_method_json(const ap_upload_ticket_t *ticket,
                                             json_object *root,
                                             ap_error_t *error) {
  json_object_object_add(
      root, "upload_method",
      json_object_new_string(ap_upload_method_name(ticket->upload_method)));
  if (ticket->upload_method == AP_UPLOAD_METHOD_POST) {
    json_object *fields = json_object_new_object();
    if (!fields) {
      return AP_NO_MEMORY(error);
    }
    for (size_t i = 0; i < ticket->field_count; i++) {
      json_object_object_add(fields, ticket->fields[i].name,
                             json_object_new_string(ticket->fields[i].value));
    }
    json_object_object_add(root, "fields", fields);
  }
  if (ticket->part_number > 0) {
    json_object_object_add(root, "part_number",
                           json_object_new_int(ticket->part_number));
  } else if (ticket->upload_method == AP_UPLOAD_METHOD_MULTIPART) {
    /* Each part has its own URL, from POST /v1/uploads/{id}/parts/{n}. */
    json_object_object_del(root, "url");
    json_object_object_del(root, "headers");
    json_object_object_add(root, "part_size_bytes",
                           json_object_new_int64(ticket->part_size_bytes));
    json_object_object_add(root, "part_count",
                           json_object_new_int(ticket->part_count));
  }
  return AP_OK;
}

ap_upload_method_t
ap_upload_ticket_upload_method(const ap_upload_ticket_t *ticket) {
  return ticket->upload_method;
}
size_t ap_upload_ticket_field_count(const ap_upload_ticket_t *ticket) {
  return ticket->field_count;
}
const char *ap_upload_ticket_field_name(const ap_upload_ticket_t *ticket,
                                        size_t index) {
  return index < ticket->field_count ? ticket->fields[index].name : NULL;
}
const char *ap_upload_ticket_field_value(const ap_upload_ticket_t *ticket,
                                         size_t index) {
  return index < ticket->field_count ? ticket->fields[index].value : NULL;
}
int64_t ap_upload_ticket_part_size_bytes(const ap_upload_ticket_t *ticket) {
  return ticket->part_size_bytes;
}
int ap_upload_ticket_part_count(const ap_upload_ticket_t *ticket) {
  return ticket->part_count;
}
int ap_upload_ticket_part_number(const ap_upload_ticket_t *ticket) {
  return ticket->part_number;
}
