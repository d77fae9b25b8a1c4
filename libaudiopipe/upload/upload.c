/*
 * The upload flow: issuing presigned upload URLs, validating what arrived,
 * and turning a valid object into an asset and its processing job.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <audiopipe/probe.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"
#include "notify/notify_internal.h"
#include "storage/clamd.h"
#include "storage/object_store.h"
#include "upload/upload_internal.h"

/* Bytes read from the start of an object for ap_sniff. */
#define SNIFF_BYTES 4096

/* Expired uploads handled per metadata query during cleanup. */
#define CLEANUP_BATCH 100

const char *ap_upload_state_name(ap_upload_state_t state) {
  switch (state) {
  case AP_UPLOAD_PENDING:
    return "pending";
  case AP_UPLOAD_COMPLETED:
    return "completed";
  case AP_UPLOAD_REJECTED:
    return "rejected";
  case AP_UPLOAD_EXPIRED:
    return "expired";
  case AP_UPLOAD_ABORTED:
    return "aborted";
  }
  return "unknown";
}

/* Parenthesised so the header's macro of the same name does not expand. */
void(ap_upload_request_init)(ap_upload_request_t *request) {
  ap_upload_request_init_size(request, offsetof(ap_upload_request_t, method));
}

void ap_upload_ticket_free(ap_upload_ticket_t *ticket) {
  if (!ticket) {
    return;
  }
  free(ticket->id);
  free(ticket->object_key);
  ap_presigned_request_free(&ticket->request);
  ap_upload_ticket_clear_method(ticket);
  free(ticket);
}

const char *ap_upload_ticket_id(const ap_upload_ticket_t *ticket) {
  return ticket->id;
}
const char *ap_upload_ticket_object_key(const ap_upload_ticket_t *ticket) {
  return ticket->object_key;
}
const char *ap_upload_ticket_url(const ap_upload_ticket_t *ticket) {
  return ticket->request.url;
}
const char *ap_upload_ticket_method(const ap_upload_ticket_t *ticket) {
  return ticket->request.method;
}
size_t ap_upload_ticket_header_count(const ap_upload_ticket_t *ticket) {
  return ticket->request.header_count;
}
const char *ap_upload_ticket_header_name(const ap_upload_ticket_t *ticket,
                                         size_t index) {
  return index < ticket->request.header_count
             ? ticket->request.headers[index].name
             : NULL;
}
const char *ap_upload_ticket_header_value(const ap_upload_ticket_t *ticket,
                                          size_t index) {
  return index < ticket->request.header_count
             ? ticket->request.headers[index].value
             : NULL;
}
int64_t ap_upload_ticket_expires_at_ms(const ap_upload_ticket_t *ticket) {
  return ticket->expires_at_ms;
}

ap_status_t ap_upload_ticket_to_json(const ap_upload_ticket_t *ticket,
                                     char **json, ap_error_t *error) {
  if (!ticket || !json) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_ticket_to_json: ticket and json must not "
                        "be NULL");
  }
  json_object *root = json_object_new_object();
  json_object *headers = json_object_new_object();
  if (!root || !headers) {
    json_object_put(root);
    json_object_put(headers);
    return AP_NO_MEMORY(error);
  }
  json_object_object_add(root, "upload_id", json_object_new_string(ticket->id));
  json_object_object_add(root, "method",
                         json_object_new_string(ticket->request.method));
  json_object_object_add(root, "url",
                         json_object_new_string(ticket->request.url));
  for (size_t i = 0; i < ticket->request.header_count; i++) {
    json_object_object_add(
        headers, ticket->request.headers[i].name,
        json_object_new_string(ticket->request.headers[i].value));
  }
  json_object_object_add(root, "headers", headers);
  json_object_object_add(root, "expires_at_ms",
                         json_object_new_int64(ticket->expires_at_ms));
  ap_status_t status = ap_upload_ticket_add_method_json(ticket, root, error);
  if (status != AP_OK) {
    json_object_put(root);
    return status;
  }
  const char *text =
      json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
  *json = text ? strdup(text) : NULL;
  json_object_put(root);
  return *json ? AP_OK : AP_NO_MEMORY(error);
}

/* SHA-256, fetched once: OpenSSL 3's SHA256() looks the algorithm up in
 * the provider tables, under a lock, on every call. NULL when the fetch
 * failed, and SHA256() is used. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_algorithm; /* process lifetime */

static void fetch_sha256(void) {
  sha256_algorithm = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* Writes "uploads/<first 128 bits of SHA-256(owner) in hex>/<id>". */
static void build_object_key(const char *owner, const char *id, char *key,
                             size_t size) {
  static const char digits[] = "0123456789abcdef";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  pthread_once(&sha256_once, fetch_sha256);
  if (!sha256_algorithm ||
      !EVP_Digest(owner, strlen(owner), digest, NULL, sha256_algorithm, NULL)) {
    SHA256((const unsigned char *)owner, strlen(owner), digest);
  }
  char hex[33];
  for (int i = 0; i < 16; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 0x0f];
  }
  hex[32] = '\0';
  snprintf(key, size, "uploads/%s/%s", hex, id);
}

/* Reads uploads.url_ttl and checks it lies in 1 s .. 7 days. */
static ap_status_t read_url_ttl(const ap_config_t *config, int64_t *ttl_ms,
                                ap_error_t *error) {
  ap_status_t status =
      ap_config_get_int64(config, "uploads.url_ttl", ttl_ms, error);
  if (status == AP_OK &&
      (*ttl_ms < 1000 || *ttl_ms > AP_UPLOAD_MAX_URL_TTL_MS)) {
    status = ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                          "uploads.url_ttl = %lld ms is out of range: use 1s "
                          "to 7 days (168h)",
                          (long long)*ttl_ms);
  }
  return status;
}

ap_status_t
ap_upload_prepare_put(ap_context_t *context, const ap_upload_request_t *request,
                      const char *content_type, ap_upload_ticket_t *ticket,
                      ap_upload_record_t *record, ap_error_t *error) {
  int64_t ttl_ms = 0;
  ap_status_t status = read_url_ttl(ap_context_config(context), &ttl_ms, error);
  if (status != AP_OK) {
    return status;
  }
  char id[AP_ID_SIZE];
  status = ap_id_generate(id, error);
  if (status != AP_OK) {
    return status;
  }
  char key[128];
  build_object_key(request->owner, id, key, sizeof key);
  ticket->id = strdup(id);
  ticket->object_key = strdup(key);
  if (!ticket->id || !ticket->object_key) {
    return AP_NO_MEMORY(error);
  }

  status = ap_object_store_presign(
      ap_context_object_store(context), "PUT", key, content_type,
      request->size_bytes, (ttl_ms + 999) / 1000, &ticket->request, error);
  if (status != AP_OK) {
    return status;
  }
  ticket->expires_at_ms = ticket->request.expires_at * 1000;

  int64_t now_ms = ap_time_now_ms();
  *record = (ap_upload_record_t){
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
  };
  return AP_OK;
}

/* Presigns the PUT and records the pending upload. */
static ap_status_t issue_ticket(ap_context_t *context,
                                const ap_upload_request_t *request,
                                const char *content_type,
                                ap_upload_ticket_t *ticket, ap_error_t *error) {
  ap_upload_record_t record;
  ap_status_t status = ap_upload_prepare_put(context, request, content_type,
                                             ticket, &record, error);
  if (status != AP_OK) {
    return status;
  }
  ap_meta_store_t *meta = ap_context_meta_store(context);
  return meta->backend->upload_insert(meta->state, &record, error);
}

ap_status_t ap_upload_check_create(ap_context_t *context,
                                   const ap_upload_request_t *request,
                                   char *content_type, size_t content_type_size,
                                   ap_error_t *error) {
  ap_status_t status = ap_upload_validate_request(
      ap_context_config(context), ap_context_upload_max_bytes(context), request,
      content_type, content_type_size, error);
  if (status != AP_OK) {
    return status;
  }
  if (!ap_context_public_base_url(context)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "public.base_url (AUDIOPIPE_PUBLIC_BASE_URL) is not "
                        "set: set it to the URL clients reach the server on, "
                        "because upload URLs are signed for that host");
  }
  return AP_OK;
}

ap_status_t ap_upload_issue(ap_context_t *context,
                            const ap_upload_request_t *request,
                            const char *content_type, ap_upload_ticket_t **out,
                            ap_error_t *error) {
  ap_status_t status;
  ap_upload_ticket_t *ticket = calloc(1, sizeof *ticket);
  if (!ticket) {
    return AP_NO_MEMORY(error);
  }
  if (ap_upload_request_method(request) == AP_UPLOAD_METHOD_PUT) {
    status = issue_ticket(context, request, content_type, ticket, error);
  } else {
    status = ap_upload_issue_method_ticket(context, request, content_type,
                                           ticket, error);
  }
  if (status != AP_OK) {
    ap_upload_ticket_free(ticket);
    return status;
  }
  *out = ticket;
  return AP_OK;
}

ap_status_t ap_upload_create(ap_context_t *context,
                             const ap_upload_request_t *request,
                             ap_upload_ticket_t **out, ap_error_t *error) {
  if (!context || !request || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_create: context, request and out must "
                        "not be NULL");
  }
  char content_type[AP_CONTENT_TYPE_MAX_SIZE];
  ap_status_t status = ap_upload_check_create(context, request, content_type,
                                              sizeof content_type, error);
  if (status != AP_OK) {
    return status;
  }
  return ap_upload_issue(context, request, content_type, out, error);
}

/*
 * Deletes the object of a rejected upload and marks the upload with
 * `to_state` and `code`. Returns `code` with the caller's message kept,
 * unless the cleanup itself failed, whose error then wins so the caller
 * retries.
 */
static ap_status_t reject_upload(ap_context_t *context,
                                 const ap_upload_record_t *upload, int to_state,
                                 ap_status_t code, ap_error_t *error) {
  /* NOTE: the object is deleted before the state changes, so if another
   * call completed the same upload meanwhile (possible only when the two
   * calls judged the same bytes differently, such as clamd answering one
   * and not the other) the asset loses its object. */
  ap_error_t cleanup;
  ap_error_clear(&cleanup);
  ap_status_t status = ap_object_store_delete(ap_context_object_store(context),
                                              upload->object_key, &cleanup);
  if (status == AP_OK) {
    status = ap_upload_storage_abort(context, upload, &cleanup);
  }
  if (status == AP_OK) {
    ap_meta_store_t *meta = ap_context_meta_store(context);
    status = meta->backend->upload_finish_pending(
        meta->state, upload->id, to_state, code, ap_time_now_ms(), &cleanup);
  }
  if (status != AP_OK && error) {
    *error = cleanup;
    return status;
  }
  return code;
}

/* Reads the first bytes of the object and sniffs them. */
static ap_status_t sniff_object(ap_io_t *input, ap_error_t *error) {
  unsigned char buffer[SNIFF_BYTES];
  size_t filled = 0;
  while (filled < sizeof buffer) {
    int64_t count =
        ap_io_read(input, buffer + filled, sizeof buffer - filled, error);
    if (count < 0) {
      return error && error->code ? (ap_status_t)error->code : AP_ERR_IO;
    }
    if (count == 0) {
      break;
    }
    filled += (size_t)count;
  }

  const char *kind = NULL;
  switch (ap_sniff(buffer, filled, &kind)) {
  case AP_SNIFF_EMPTY:
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_EMPTY_INPUT,
                        "the uploaded object is empty: upload the file's "
                        "bytes");
  case AP_SNIFF_MULTIPART:
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_MULTIPART_BODY,
                        "the uploaded object is a multipart/form-data body, "
                        "not audio: PUT the raw file bytes, not a form");
  case AP_SNIFF_NOT_AUDIO:
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_NOT_AUDIO,
                        "the uploaded object is %s, not audio",
                        kind ? kind : "a known non-audio format");
  default:
    return AP_OK;
  }
}

/* Streams the object to clamd when uploads.clamd_address is set. */
static ap_status_t scan_object(ap_context_t *context, ap_io_t *input,
                               ap_error_t *error) {
  const ap_config_t *config = ap_context_config(context);
  const char *address = ap_config_get(config, "uploads.clamd_address");
  if (!address || !*address) {
    return AP_OK;
  }
  int64_t timeout_ms = 0;
  ap_status_t status =
      ap_config_get_int64(config, "uploads.clamd_timeout", &timeout_ms, error);
  if (status != AP_OK) {
    return status;
  }
  if (ap_io_seek(input, 0, AP_SEEK_SET, error) < 0) {
    return AP_ERR_IO;
  }
  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  char signature[128] = "";
  status = ap_clamd_scan(address, input, timeout_ms, &verdict, signature,
                         sizeof signature, error);
  if (status == AP_OK && verdict != AP_CLAMD_CLEAN) {
    /* Only a clean verdict passes: anything else is never a silent pass. */
    status = ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_UNAVAILABLE,
                          "virus scan did not complete: retry later");
  }
  return status;
}

/* Probes the object and stores its media info JSON in `*probe_json`. */
static ap_status_t probe_object(ap_context_t *context, ap_io_t *input,
                                char **probe_json, ap_error_t *error) {
  if (ap_io_seek(input, 0, AP_SEEK_SET, error) < 0) {
    return AP_ERR_IO;
  }
  ap_probe_options_t options;
  ap_probe_options_init(&options);
  options.limits = *ap_context_limits(context);
  ap_media_info_t *info = NULL;
  ap_status_t status = ap_probe(input, &options, &info, error);
  if (status != AP_OK) {
    return status;
  }
  status = ap_media_info_to_json(info, probe_json, error);
  ap_media_info_free(info);
  return status;
}

/* Checks the object's size and bytes; stores the probe JSON on success. */
static ap_status_t validate_object(ap_context_t *context,
                                   const ap_upload_record_t *upload,
                                   char **probe_json, ap_error_t *error) {
  ap_object_store_t *objects = ap_context_object_store(context);
  ap_object_info_t info;
  ap_status_t status =
      ap_object_store_stat(objects, upload->object_key, &info, error);
  if (status == AP_ERR_NOT_FOUND) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_OBJECT_MISSING,
                        "upload %s: nothing was uploaded to its URL: PUT the "
                        "file, then complete the upload",
                        upload->id);
  }
  if (status != AP_OK) {
    return status;
  }
  if (info.size == 0) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_EMPTY_INPUT,
                        "upload %s: the uploaded object is empty", upload->id);
  }
  int64_t max_bytes = ap_context_upload_max_bytes(context);
  if (info.size > max_bytes) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_TOO_LARGE,
                        "upload %s: %lld bytes stored, over the limit of %lld "
                        "(uploads.max_bytes)",
                        upload->id, (long long)info.size, (long long)max_bytes);
  }
  if (info.size != upload->size_bytes) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_SIZE_MISMATCH,
                        "upload %s: %lld bytes stored but %lld declared: "
                        "upload the whole file",
                        upload->id, (long long)info.size,
                        (long long)upload->size_bytes);
  }

  ap_io_t *input = NULL;
  status =
      ap_object_store_open_read(objects, upload->object_key, &input, error);
  if (status != AP_OK) {
    return status;
  }
  status = sniff_object(input, error);
  if (status == AP_OK) {
    status = probe_object(context, input, probe_json, error);
  }
  if (status == AP_OK) {
    status = scan_object(context, input, error);
  }
  ap_io_close(input);
  return status;
}

/* Creates the asset and its job from a validated upload. */
static ap_status_t accept_upload(ap_context_t *context,
                                 const ap_upload_record_t *upload,
                                 char *probe_json, ap_asset_t **out,
                                 ap_error_t *error) {
  char asset_id[AP_ID_SIZE];
  ap_status_t status = ap_id_generate(asset_id, error);
  if (status != AP_OK) {
    return status;
  }
  int64_t now_ms = ap_time_now_ms();
  ap_asset_t asset = {
      .id = asset_id,
      .owner = upload->owner,
      .object_key = upload->object_key,
      .filename = upload->filename,
      .content_type = upload->content_type,
      .probe_json = probe_json,
      .status = AP_ASSET_PENDING,
      .size_bytes = upload->size_bytes,
      .created_at_ms = now_ms,
      .updated_at_ms = now_ms,
  };

  char payload[256];
  snprintf(payload, sizeof payload,
           "{\"asset_id\":\"%s\",\"object_key\":\"%s\"}", asset_id,
           upload->object_key);
  ap_job_enqueue_options_t job;
  ap_job_enqueue_options_init(&job);
  job.kind = AP_JOB_KIND_PROCESS_ASSET;
  job.asset_id = asset_id;
  job.owner = upload->owner;
  job.payload_json = payload;
  job.idempotency_key = upload->id;

  ap_meta_store_t *meta = ap_context_meta_store(context);
  status = meta->backend->upload_accept(meta->state, upload->id, &asset, &job,
                                        now_ms, out, error);
  if (status == AP_OK) {
    /* The job committed with the asset, so a worker woken now finds it. */
    ap_notify_wakeup(ap_context_notifier(context), AP_JOB_KIND_PROCESS_ASSET,
                     asset_id);
  }
  return status;
}

/* Completes an upload already read from the store. */
static ap_status_t complete_record(ap_context_t *context,
                                   const ap_upload_record_t *upload,
                                   ap_asset_t **out, ap_error_t *error) {
  ap_meta_store_t *meta = ap_context_meta_store(context);
  if (upload->state == AP_UPLOAD_COMPLETED) {
    return meta->backend->asset_get(meta->state, NULL, upload->asset_id, out,
                                    error);
  }
  if (upload->state != AP_UPLOAD_PENDING) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_STATE,
                        "upload %s was %s and cannot be completed: create a "
                        "new upload",
                        upload->id, ap_upload_state_name(upload->state));
  }
  if (ap_time_now_ms() >= upload->expires_at_ms) {
    ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_EXPIRED,
                 "upload %s expired: create a new upload", upload->id);
    return reject_upload(context, upload, AP_UPLOAD_EXPIRED, AP_ERR_EXPIRED,
                         error);
  }

  char *probe_json = NULL;
  ap_status_t status = validate_object(context, upload, &probe_json, error);
  if (status != AP_OK) {
    free(probe_json);
    /* A missing object can still be uploaded, and a retryable failure
     * (I/O, scanner down) proves nothing about the bytes, so both leave the
     * upload pending. */
    if (status == AP_ERR_OBJECT_MISSING || ap_error_is_retryable(status)) {
      return status;
    }
    return reject_upload(context, upload, AP_UPLOAD_REJECTED, status, error);
  }
  status = accept_upload(context, upload, probe_json, out, error);
  free(probe_json);
  return status;
}

ap_status_t ap_upload_complete(ap_context_t *context, const char *owner,
                               const char *upload_id, ap_asset_t **out,
                               ap_error_t *error) {
  if (!context || !owner || !upload_id) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_complete: context, owner and upload_id "
                        "must not be NULL");
  }
  if (!ap_id_is_valid(upload_id)) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_NOT_FOUND,
                        "upload %.40s not found", upload_id);
  }
  ap_meta_store_t *meta = ap_context_meta_store(context);
  ap_upload_record_t upload;
  ap_status_t status =
      meta->backend->upload_get(meta->state, owner, upload_id, &upload, error);
  if (status != AP_OK) {
    return status;
  }
  ap_asset_t *asset = NULL;
  status = ap_upload_multipart_check(context, &upload, error);
  if (status == AP_OK) {
    status = complete_record(context, &upload, &asset, error);
  }
  ap_upload_record_clear(&upload);
  if (status != AP_OK) {
    return status;
  }
  if (out) {
    *out = asset;
  } else {
    ap_asset_free(asset);
  }
  return AP_OK;
}

ap_status_t ap_upload_get_state(ap_context_t *context, const char *owner,
                                const char *upload_id, ap_upload_state_t *state,
                                int *rejection_code, ap_error_t *error) {
  if (!context || !owner || !upload_id || !state) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_get_state: context, owner, upload_id and "
                        "state must not be NULL");
  }
  ap_meta_store_t *meta = ap_context_meta_store(context);
  ap_upload_record_t upload;
  ap_status_t status =
      meta->backend->upload_get(meta->state, owner, upload_id, &upload, error);
  if (status != AP_OK) {
    return status;
  }
  *state = (ap_upload_state_t)upload.state;
  if (rejection_code) {
    *rejection_code = upload.rejection_code;
  }
  ap_upload_record_clear(&upload);
  return AP_OK;
}

ap_status_t ap_upload_cleanup_expired(ap_context_t *context, int64_t now_ms,
                                      int64_t *count, ap_error_t *error) {
  if (!context) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_cleanup_expired: context must not be "
                        "NULL");
  }
  if (now_ms <= 0) {
    now_ms = ap_time_now_ms();
  }
  ap_meta_store_t *meta = ap_context_meta_store(context);
  int64_t expired = 0;
  ap_status_t status = AP_OK;

  for (;;) {
    ap_upload_record_t *records = NULL;
    size_t found = 0;
    status = meta->backend->upload_list_expired(
        meta->state, now_ms, CLEANUP_BATCH, &records, &found, error);
    if (status != AP_OK) {
      break;
    }
    for (size_t i = 0; i < found; i++) {
      if (status == AP_OK) {
        status = ap_upload_storage_abort(context, &records[i], error);
      }
      if (status == AP_OK) {
        status = ap_object_store_delete(ap_context_object_store(context),
                                        records[i].object_key, error);
      }
      if (status == AP_OK) {
        status = meta->backend->upload_finish_pending(
            meta->state, records[i].id, AP_UPLOAD_EXPIRED, AP_ERR_EXPIRED,
            now_ms, error);
        /* A completion that won the race is not an error here. */
        if (status == AP_ERR_UPLOAD_STATE) {
          status = AP_OK;
        } else if (status == AP_OK) {
          expired++;
        }
      }
      ap_upload_record_clear(&records[i]);
    }
    free(records);
    if (status != AP_OK || found < CLEANUP_BATCH) {
      break;
    }
  }
  if (count) {
    *count = expired;
  }
  return status;
}

void ap_upload_object_key(const char *owner, const char *id, char *key,
                          size_t size) {
  build_object_key(owner, id, key, size);
}

ap_status_t ap_upload_url_ttl(const ap_config_t *config, int64_t *ttl_ms,
                              ap_error_t *error) {
  return read_url_ttl(config, ttl_ms, error);
}
