/*
 * Multipart uploads: presigning parts, listing what is stored so a
 * client can resume, assembling the object, and aborting.
 *
 * On S3 these are the store's own multipart calls. On any other store
 * (the local file store) part N of an upload is the object
 * "<object key>.parts/<storage upload id>/<N as 5 digits>". It is PUT
 * through a presigned URL of exactly the part's length, and its ETag is
 * the hex MD5 of its bytes. Assembling copies the parts in order into one
 * writer that commits the object atomically, then deletes the parts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"
#include "storage/s3_store.h"
#include "upload/upload_internal.h"

/* Content type the file store signs into every part URL. */
#define PART_CONTENT_TYPE "application/octet-stream"

/* Bytes copied per read when hashing or assembling parts. */
#define COPY_BLOCK_SIZE (256 * 1024)

static int is_s3(ap_context_t *context) {
  return ap_object_store_backend_state(ap_context_object_store(context),
                                       "s3") != NULL;
}

static int part_count_of(const ap_upload_record_t *upload) {
  return (int)((upload->size_bytes + upload->part_size_bytes - 1) /
               upload->part_size_bytes);
}

/* The length part `number` must have: the part size, or the rest for the
 * last part. */
static int64_t part_length(const ap_upload_record_t *upload, int number) {
  int count = part_count_of(upload);
  return number < count ? upload->part_size_bytes
                        : upload->size_bytes -
                              (int64_t)(count - 1) * upload->part_size_bytes;
}

static void parts_prefix(const ap_upload_record_t *upload, char *prefix,
                         size_t size) {
  snprintf(prefix, size, "%s.parts/%s/", upload->object_key,
           upload->storage_upload_id);
}

static void part_key(const ap_upload_record_t *upload, int number, char *key,
                     size_t size) {
  snprintf(key, size, "%s.parts/%s/%05d", upload->object_key,
           upload->storage_upload_id, number);
}

/*
 * Reads a pending multipart upload of `owner`. AP_ERR_NOT_FOUND for
 * another owner's, AP_ERR_UPLOAD_STATE for another method or state,
 * AP_ERR_EXPIRED past its expiry. Clear `upload` on success.
 */
static ap_status_t load_pending(ap_context_t *context, const char *owner,
                                const char *upload_id,
                                ap_upload_record_t *upload, ap_error_t *error) {
  if (!context || !owner || !upload_id) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "context, owner and upload_id must not be NULL");
  }
  if (!ap_id_is_valid(upload_id)) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_NOT_FOUND,
                        "upload %.40s not found", upload_id);
  }
  ap_meta_store_t *meta = ap_context_meta_store(context);
  ap_status_t status =
      meta->backend->upload_get(meta->state, owner, upload_id, upload, error);
  if (status != AP_OK) {
    return status;
  }
  if (upload->method != AP_UPLOAD_METHOD_MULTIPART ||
      !upload->storage_upload_id || upload->part_size_bytes <= 0) {
    status = ap_error_set(
        error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_STATE,
        "upload %s uses method %s, not multipart: it has no "
        "parts",
        upload_id, ap_upload_method_name((ap_upload_method_t)upload->method));
  } else if (upload->state != AP_UPLOAD_PENDING) {
    status = ap_error_set(
        error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_STATE,
        "upload %s is %s, not pending: create a new upload", upload_id,
        ap_upload_state_name((ap_upload_state_t)upload->state));
  } else if (ap_time_now_ms() >= upload->expires_at_ms) {
    status = ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_EXPIRED,
                          "upload %s expired: create a new upload", upload_id);
  }
  if (status != AP_OK) {
    ap_upload_record_clear(upload);
  }
  return status;
}

static ap_status_t check_part_number(const ap_upload_record_t *upload,
                                     int number, ap_error_t *error) {
  int count = part_count_of(upload);
  if (number < 1 || number > count) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                        "part_number: %d is outside 1 to %d, the parts of "
                        "upload %s",
                        number, count, upload->id);
  }
  return AP_OK;
}

ap_status_t ap_upload_part_presign(ap_context_t *context, const char *owner,
                                   const char *upload_id, int part_number,
                                   ap_upload_ticket_t **out,
                                   ap_error_t *error) {
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_part_presign: out must not be NULL");
  }
  ap_upload_record_t upload;
  ap_status_t status = load_pending(context, owner, upload_id, &upload, error);
  if (status != AP_OK) {
    return status;
  }
  status = check_part_number(&upload, part_number, error);
  int64_t ttl_ms = 0;
  if (status == AP_OK) {
    status = ap_upload_url_ttl(ap_context_config(context), &ttl_ms, error);
  }
  ap_upload_ticket_t *ticket = calloc(1, sizeof *ticket);
  if (status == AP_OK && !ticket) {
    status = AP_NO_MEMORY(error);
  }
  if (status == AP_OK) {
    ticket->id = strdup(upload.id);
    ticket->object_key = strdup(upload.object_key);
    ticket->upload_method = AP_UPLOAD_METHOD_MULTIPART;
    ticket->part_number = part_number;
    ticket->part_size_bytes = upload.part_size_bytes;
    ticket->part_count = part_count_of(&upload);
    if (!ticket->id || !ticket->object_key) {
      status = AP_NO_MEMORY(error);
    }
  }
  if (status == AP_OK) {
    /* A part URL outliving its upload would only store orphan bytes. */
    int64_t left_ms = upload.expires_at_ms - ap_time_now_ms();
    int64_t seconds = (ttl_ms < left_ms ? ttl_ms : left_ms) / 1000;
    if (seconds < 1) {
      seconds = 1;
    }
    ap_object_store_t *store = ap_context_object_store(context);
    if (is_s3(context)) {
      status = ap_s3_multipart_presign_part(
          store, upload.object_key, upload.storage_upload_id, part_number, 0,
          seconds, &ticket->request, error);
    } else {
      char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
      part_key(&upload, part_number, key, sizeof key);
      status = ap_object_store_presign(store, "PUT", key, PART_CONTENT_TYPE,
                                       part_length(&upload, part_number),
                                       seconds, &ticket->request, error);
    }
  }
  ap_upload_record_clear(&upload);
  if (status != AP_OK) {
    ap_upload_ticket_free(ticket);
    return status;
  }
  ticket->expires_at_ms = ticket->request.expires_at * 1000;
  *out = ticket;
  return AP_OK;
}

/* ---- Listing -------------------------------------------------------- */

typedef struct part_list {
  ap_upload_part_t *parts;
  size_t count;
  size_t capacity;
  ap_status_t status;
} part_list_t;

static ap_status_t part_list_add(part_list_t *list, int number,
                                 const char *etag, int64_t size) {
  if (list->count == list->capacity) {
    size_t capacity = list->capacity ? list->capacity * 2 : 16;
    ap_upload_part_t *grown = realloc(list->parts, capacity * sizeof *grown);
    if (!grown) {
      return AP_ERR_NO_MEMORY;
    }
    list->parts = grown;
    list->capacity = capacity;
  }
  ap_upload_part_t *part = &list->parts[list->count++];
  memset(part, 0, sizeof *part);
  part->number = number;
  snprintf(part->etag, sizeof part->etag, "%s", etag);
  part->size_bytes = size;
  return AP_OK;
}

/* Listing callback of the file store: keeps the keys "<prefix>NNNNN". */
static int collect_file_part(void *user_data, const char *key,
                             const ap_object_info_t *info) {
  part_list_t *list = user_data;
  const char *leaf = strrchr(key, '/');
  leaf = leaf ? leaf + 1 : key;
  char *end = NULL;
  long number = strtol(leaf, &end, 10);
  if (strlen(leaf) != 5 || *end != '\0' || number < 1 ||
      number > AP_UPLOAD_MAX_PART_COUNT) {
    return 0;
  }
  list->status = part_list_add(list, (int)number, "", info->size);
  return list->status != AP_OK;
}

/* Finishes `md5` into a quoted hex ETag. */
static ap_status_t finish_etag(EVP_MD_CTX *md5, char etag[AP_UPLOAD_ETAG_SIZE],
                               ap_error_t *error) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(md5, digest, &length) != 1) {
    return AP_NO_MEMORY(error);
  }
  static const char digits[] = "0123456789abcdef";
  etag[0] = '"';
  for (unsigned int i = 0; i < length; i++) {
    etag[1 + 2 * i] = digits[digest[i] >> 4];
    etag[2 + 2 * i] = digits[digest[i] & 0x0f];
  }
  etag[1 + 2 * length] = '"';
  etag[2 + 2 * length] = '\0';
  return AP_OK;
}

/* Stores the quoted hex MD5 of the object `key` in `etag`. */
static ap_status_t hash_object(ap_object_store_t *store, const char *key,
                               char etag[AP_UPLOAD_ETAG_SIZE],
                               ap_error_t *error) {
  ap_io_t *input = NULL;
  ap_status_t status = ap_object_store_open_read(store, key, &input, error);
  if (status != AP_OK) {
    return status;
  }
  EVP_MD_CTX *md5 = EVP_MD_CTX_new();
  unsigned char *block = malloc(COPY_BLOCK_SIZE);
  if (!md5 || !block || EVP_DigestInit_ex(md5, EVP_md5(), NULL) != 1) {
    status = AP_NO_MEMORY(error);
  }
  while (status == AP_OK) {
    int64_t count = ap_io_read(input, block, COPY_BLOCK_SIZE, error);
    if (count < 0) {
      status = error && error->code ? (ap_status_t)error->code : AP_ERR_IO;
    } else if (count == 0) {
      break;
    } else if (EVP_DigestUpdate(md5, block, (size_t)count) != 1) {
      status = AP_NO_MEMORY(error);
    }
  }
  if (status == AP_OK) {
    status = finish_etag(md5, etag, error);
  }
  free(block);
  EVP_MD_CTX_free(md5);
  ap_io_close(input);
  return status;
}

/* Lists the stored parts of `upload` in part order; `*parts` is
 * allocated. The file store's ETags are computed only when `hash` is set
 * and are "" otherwise. */
static ap_status_t list_stored_parts(ap_context_t *context,
                                     const ap_upload_record_t *upload, int hash,
                                     ap_upload_part_t **parts, size_t *count,
                                     ap_error_t *error) {
  *parts = NULL;
  *count = 0;
  ap_object_store_t *store = ap_context_object_store(context);
  part_list_t list = {0};
  ap_status_t status = AP_OK;
  if (is_s3(context)) {
    ap_s3_part_t *stored = NULL;
    size_t stored_count = 0;
    status = ap_s3_multipart_list_parts(store, upload->object_key,
                                        upload->storage_upload_id, &stored,
                                        &stored_count, error);
    for (size_t i = 0; status == AP_OK && i < stored_count; i++) {
      status = part_list_add(&list, stored[i].part_number, stored[i].etag,
                             stored[i].size);
      if (status != AP_OK) {
        status = AP_NO_MEMORY(error);
      }
    }
    free(stored);
  } else {
    char prefix[AP_OBJECT_KEY_MAX_LENGTH + 1];
    parts_prefix(upload, prefix, sizeof prefix);
    status =
        ap_object_store_list(store, prefix, collect_file_part, &list, error);
    if (status == AP_OK && list.status != AP_OK) {
      status = AP_NO_MEMORY(error);
    }
    /* Listing is in key order, and five digits make that part order.
     * NOTE: every listing for a client reads each stored part to hash
     * it. */
    for (size_t i = 0; status == AP_OK && hash && i < list.count; i++) {
      char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
      part_key(upload, list.parts[i].number, key, sizeof key);
      status = hash_object(store, key, list.parts[i].etag, error);
    }
  }
  if (status != AP_OK) {
    free(list.parts);
    return status;
  }
  *parts = list.parts;
  *count = list.count;
  return AP_OK;
}

ap_status_t ap_upload_parts_list(ap_context_t *context, const char *owner,
                                 const char *upload_id,
                                 ap_upload_part_t **parts, size_t *count,
                                 ap_error_t *error) {
  if (!parts || !count) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_parts_list: parts and count must not be "
                        "NULL");
  }
  *parts = NULL;
  *count = 0;
  ap_upload_record_t upload;
  ap_status_t status = load_pending(context, owner, upload_id, &upload, error);
  if (status != AP_OK) {
    return status;
  }
  status = list_stored_parts(context, &upload, 1, parts, count, error);
  ap_upload_record_clear(&upload);
  return status;
}

/* ---- Completing ----------------------------------------------------- */

/* Compares two ETags, ignoring surrounding quotes. */
static int etag_equal(const char *left, const char *right) {
  size_t left_length = strlen(left);
  size_t right_length = strlen(right);
  if (left_length >= 2 && left[0] == '"' && left[left_length - 1] == '"') {
    left++;
    left_length -= 2;
  }
  if (right_length >= 2 && right[0] == '"' && right[right_length - 1] == '"') {
    right++;
    right_length -= 2;
  }
  return left_length == right_length && left_length > 0 &&
         strncmp(left, right, left_length) == 0;
}

/* Fails with the message of an ETag that does not match its part. */
static ap_status_t etag_mismatch(const ap_upload_part_t *part,
                                 const char *stored, ap_error_t *error) {
  return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                      "parts: the etag %.70s of part %d does not match the "
                      "stored part's %.70s: send the ETag of the part's last "
                      "PUT",
                      part->etag, part->number, stored);
}

/* Checks the client's part list against the ticket and the stored
 * parts. A stored part without an ETag (the file store's) is checked
 * while it is assembled. */
static ap_status_t check_parts(const ap_upload_record_t *upload,
                               const ap_upload_part_t *parts, size_t count,
                               const ap_upload_part_t *stored,
                               size_t stored_count, ap_error_t *error) {
  int expected = part_count_of(upload);
  if (count != (size_t)expected) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                        "parts: %zu listed but upload %s has %d parts: list "
                        "every part",
                        count, upload->id, expected);
  }
  for (size_t i = 0; i < count; i++) {
    int number = (int)i + 1;
    if (parts[i].number != number) {
      return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                          "parts: item %zu has number %d, expected %d: list "
                          "the parts in ascending order from 1",
                          i, parts[i].number, number);
    }
    const ap_upload_part_t *found = NULL;
    for (size_t j = 0; j < stored_count && !found; j++) {
      if (stored[j].number == number) {
        found = &stored[j];
      }
    }
    if (!found) {
      return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                          "parts: part %d of upload %s was not uploaded: PUT "
                          "it, then complete",
                          number, upload->id);
    }
    if (found->etag[0] && !etag_equal(parts[i].etag, found->etag)) {
      return etag_mismatch(&parts[i], found->etag, error);
    }
    int64_t length = part_length(upload, number);
    if (found->size_bytes >= 0 && found->size_bytes != length) {
      return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                          "parts: part %d has %lld bytes but must have %lld "
                          "(every part but the last is %lld bytes): PUT it "
                          "again",
                          number, (long long)found->size_bytes,
                          (long long)length,
                          (long long)upload->part_size_bytes);
    }
  }
  return AP_OK;
}

/*
 * Copies the file store's parts in order into the object, hashing each
 * part on the way and comparing it with the client's ETag. The object
 * appears only once every byte is written and every ETag matched; the
 * parts are deleted then.
 */
static ap_status_t assemble_file_parts(ap_context_t *context,
                                       const ap_upload_record_t *upload,
                                       const ap_upload_part_t *parts,
                                       ap_error_t *error) {
  ap_object_store_t *store = ap_context_object_store(context);
  ap_output_t *output = NULL;
  ap_status_t status = ap_object_store_open_write(
      store, upload->object_key, upload->content_type, &output, error);
  if (status != AP_OK) {
    return status;
  }
  unsigned char *block = malloc(COPY_BLOCK_SIZE);
  EVP_MD_CTX *md5 = EVP_MD_CTX_new();
  if (!block || !md5) {
    status = AP_NO_MEMORY(error);
  }
  int count = part_count_of(upload);
  for (int number = 1; status == AP_OK && number <= count; number++) {
    char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
    part_key(upload, number, key, sizeof key);
    ap_io_t *input = NULL;
    status = ap_object_store_open_read(store, key, &input, error);
    if (status == AP_OK && EVP_DigestInit_ex(md5, EVP_md5(), NULL) != 1) {
      status = AP_NO_MEMORY(error);
    }
    while (status == AP_OK) {
      int64_t got = ap_io_read(input, block, COPY_BLOCK_SIZE, error);
      if (got < 0) {
        status = error && error->code ? (ap_status_t)error->code : AP_ERR_IO;
      } else if (got == 0) {
        break;
      } else if (EVP_DigestUpdate(md5, block, (size_t)got) != 1) {
        status = AP_NO_MEMORY(error);
      } else {
        status = ap_output_write(output, block, (size_t)got, error);
      }
    }
    ap_io_close(input);
    char etag[AP_UPLOAD_ETAG_SIZE];
    if (status == AP_OK) {
      status = finish_etag(md5, etag, error);
    }
    if (status == AP_OK && !etag_equal(parts[number - 1].etag, etag)) {
      status = etag_mismatch(&parts[number - 1], etag, error);
    }
  }
  EVP_MD_CTX_free(md5);
  free(block);
  if (status == AP_OK) {
    status = ap_output_finish(output, error);
  }
  ap_output_close(output);
  if (status == AP_OK) {
    status = ap_upload_storage_abort(context, upload, error);
  }
  return status;
}

ap_status_t ap_upload_multipart_complete(ap_context_t *context,
                                         const char *owner,
                                         const char *upload_id,
                                         const ap_upload_part_t *parts,
                                         size_t count, ap_asset_t **out,
                                         ap_error_t *error) {
  if (!context || !owner || !upload_id || (!parts && count > 0)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_multipart_complete: context, owner, "
                        "upload_id and parts must not be NULL");
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
  if (upload.method != AP_UPLOAD_METHOD_MULTIPART ||
      !upload.storage_upload_id || upload.part_size_bytes <= 0) {
    status = ap_error_set(
        error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_STATE,
        "upload %s uses method %s, not multipart: complete it without parts",
        upload_id, ap_upload_method_name((ap_upload_method_t)upload.method));
    ap_upload_record_clear(&upload);
    return status;
  }
  if (upload.state != AP_UPLOAD_PENDING ||
      ap_time_now_ms() >= upload.expires_at_ms) {
    /* A completed upload returns its asset, an expired one is marked
     * expired with its parts aborted, and another state is reported:
     * ap_upload_complete does each of these. */
    ap_upload_record_clear(&upload);
    return ap_upload_complete(context, owner, upload_id, out, error);
  }

  /* An earlier call that assembled the object and then failed (a
   * retryable validation error, say) consumed the parts, so all that is
   * left is validating the object. */
  ap_object_info_t info;
  if (ap_object_store_stat(ap_context_object_store(context), upload.object_key,
                           &info, NULL) == AP_OK) {
    ap_upload_record_clear(&upload);
    return ap_upload_complete(context, owner, upload_id, out, error);
  }

  /* NOTE: on the file store a completion racing another of the same
   * upload may find the parts gone while it assembles, and then fails
   * with not_found naming the part (and the store's root path). A later
   * call returns the asset. */
  ap_upload_part_t *stored = NULL;
  size_t stored_count = 0;
  status =
      list_stored_parts(context, &upload, 0, &stored, &stored_count, error);
  if (status == AP_OK) {
    status = check_parts(&upload, parts, count, stored, stored_count, error);
  }
  free(stored);
  if (status == AP_OK) {
    if (is_s3(context)) {
      ap_s3_part_t *s3_parts = calloc(count, sizeof *s3_parts);
      if (!s3_parts) {
        status = AP_NO_MEMORY(error);
      }
      for (size_t i = 0; status == AP_OK && i < count; i++) {
        s3_parts[i].part_number = parts[i].number;
        s3_parts[i].size = -1;
        snprintf(s3_parts[i].etag, sizeof s3_parts[i].etag, "%s",
                 parts[i].etag);
      }
      if (status == AP_OK) {
        status = ap_s3_multipart_complete(
            ap_context_object_store(context), upload.object_key,
            upload.storage_upload_id, s3_parts, count, error);
      }
      free(s3_parts);
    } else {
      status = assemble_file_parts(context, &upload, parts, error);
    }
  }
  ap_upload_record_clear(&upload);
  if (status != AP_OK) {
    return status;
  }
  return ap_upload_complete(context, owner, upload_id, out, error);
}

ap_status_t ap_upload_multipart_check(ap_context_t *context,
                                      const ap_upload_record_t *upload,
                                      ap_error_t *error) {
  if (upload->method != AP_UPLOAD_METHOD_MULTIPART ||
      upload->state != AP_UPLOAD_PENDING ||
      ap_time_now_ms() >= upload->expires_at_ms) {
    return AP_OK;
  }
  ap_object_info_t info;
  if (ap_object_store_stat(ap_context_object_store(context), upload->object_key,
                           &info, NULL) == AP_ERR_NOT_FOUND) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_ARGUMENT,
                        "parts: upload %s is multipart: complete it with the "
                        "list of its parts and their ETags",
                        upload->id);
  }
  return AP_OK;
}

/* ---- Aborting ------------------------------------------------------- */

typedef struct key_list {
  char **keys;
  size_t count;
  size_t capacity;
  int failed;
} key_list_t;

static int collect_key(void *user_data, const char *key,
                       const ap_object_info_t *info) {
  (void)info;
  key_list_t *list = user_data;
  if (list->count == list->capacity) {
    size_t capacity = list->capacity ? list->capacity * 2 : 16;
    char **grown = realloc(list->keys, capacity * sizeof *grown);
    if (!grown) {
      list->failed = 1;
      return 1;
    }
    list->keys = grown;
    list->capacity = capacity;
  }
  list->keys[list->count] = strdup(key);
  if (!list->keys[list->count]) {
    list->failed = 1;
    return 1;
  }
  list->count++;
  return 0;
}

ap_status_t ap_upload_storage_abort(ap_context_t *context,
                                    const ap_upload_record_t *upload,
                                    ap_error_t *error) {
  if (upload->method != AP_UPLOAD_METHOD_MULTIPART ||
      !upload->storage_upload_id) {
    return AP_OK;
  }
  ap_object_store_t *store = ap_context_object_store(context);
  if (is_s3(context)) {
    ap_error_t local = {0};
    ap_status_t status = ap_s3_multipart_abort(
        store, upload->object_key, upload->storage_upload_id, &local);
    /* A completed or aborted upload is gone already. */
    if (status != AP_OK && status != AP_ERR_NOT_FOUND && error) {
      *error = local;
    }
    return status == AP_ERR_NOT_FOUND ? AP_OK : status;
  }

  char prefix[AP_OBJECT_KEY_MAX_LENGTH + 1];
  parts_prefix(upload, prefix, sizeof prefix);
  key_list_t list = {0};
  ap_status_t status =
      ap_object_store_list(store, prefix, collect_key, &list, error);
  if (status == AP_OK && list.failed) {
    status = AP_NO_MEMORY(error);
  }
  for (size_t i = 0; i < list.count; i++) {
    if (status == AP_OK) {
      status = ap_object_store_delete(store, list.keys[i], error);
    }
    free(list.keys[i]);
  }
  free(list.keys);
  return status;
}

ap_status_t ap_upload_abort(ap_context_t *context, const char *owner,
                            const char *upload_id, ap_error_t *error) {
  if (!context || !owner || !upload_id) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_abort: context, owner and upload_id must "
                        "not be NULL");
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
  if (upload.state == AP_UPLOAD_COMPLETED) {
    status = ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_STATE,
                          "upload %s is completed: delete its asset %s "
                          "instead",
                          upload_id, upload.asset_id ? upload.asset_id : "");
  } else if (upload.state == AP_UPLOAD_PENDING) {
    status = ap_upload_storage_abort(context, &upload, error);
    if (status == AP_OK) {
      status = ap_object_store_delete(ap_context_object_store(context),
                                      upload.object_key, error);
    }
    if (status == AP_OK) {
      status = meta->backend->upload_finish_pending(meta->state, upload_id,
                                                    AP_UPLOAD_ABORTED, 0,
                                                    ap_time_now_ms(), error);
    }
  }
  ap_upload_record_clear(&upload);
  return status;
}
