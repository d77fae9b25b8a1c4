/*
 * The file store's browser form POST: the signed policy a post ticket
 * carries, and the receiving side audiopipe-httpd streams the form's file
 * field into.
 *
 * The policy is JSON, base64-encoded into the "policy" field:
 *   {"expiration": UNIX_SECONDS, "key": KEY, "content_type": TYPE,
 *    "content_length_range": [MIN, MAX]}
 * and "x-ap-signature" is the hex HMAC-SHA256 of POLICY_DOMAIN followed
 * by the base64 text, under signing.secret. The domain prefix keeps a
 * policy signature from ever matching a presigned URL's signature.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "storage/object_store.h"
#include "storage/storage_internal.h"
#include "upload/upload_internal.h"
#include "upload/upload_method.h"

#define POLICY_DOMAIN "audiopipe-post-policy\n"

/* Maximum length of the base64 policy, in bytes: a key of 1024 bytes and
 * a content type of 128 fit many times over. */
#define POLICY_MAX_LENGTH 8192

struct ap_upload_form {
  ap_output_t *output;
  char *key;
  int64_t min_length;
  int64_t max_length;
  int64_t received;
  int finished;
  ap_status_t failure; /* repeated by every call after a failure */
  ap_error_t failure_error;
};

void ap_upload_form_fields_init(ap_upload_form_fields_t *fields) {
  memset(fields, 0, sizeof *fields);
  fields->struct_size = sizeof *fields;
}

/* Computes the hex signature of `policy` under the context's secret. */
static ap_status_t sign_policy(ap_context_t *context, const char *policy,
                               char hex[AP_HMAC_SHA256_HEX_SIZE],
                               ap_error_t *error) {
  size_t secret_size = 0;
  const unsigned char *secret =
      ap_context_signing_secret(context, &secret_size);
  if (!secret || secret_size < AP_SIGNING_SECRET_MIN_LENGTH) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_CONFIG,
                        "signing.secret is not set or shorter than %d bytes: "
                        "set it, because POST policies are signed with it",
                        AP_SIGNING_SECRET_MIN_LENGTH);
  }
  size_t policy_length = strlen(policy);
  size_t data_length = strlen(POLICY_DOMAIN) + policy_length;
  char *data = malloc(data_length + 1);
  if (!data) {
    return AP_NO_MEMORY(error);
  }
  memcpy(data, POLICY_DOMAIN, strlen(POLICY_DOMAIN));
  memcpy(data + strlen(POLICY_DOMAIN), policy, policy_length + 1);
  unsigned char digest[AP_HMAC_SHA256_SIZE];
  ap_status_t status =
      ap_hmac_sha256(secret, secret_size, data, data_length, digest, error);
  free(data);
  if (status != AP_OK) {
    return status;
  }
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < AP_HMAC_SHA256_SIZE; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 0x0f];
  }
  hex[2 * AP_HMAC_SHA256_SIZE] = '\0';
  return AP_OK;
}

static ap_status_t add_field(ap_s3_post_form_t *form, const char *name,
                             const char *value, ap_error_t *error) {
  ap_presigned_header_t *grown =
      realloc(form->fields, (form->field_count + 1) * sizeof *grown);
  if (!grown) {
    return AP_NO_MEMORY(error);
  }
  form->fields = grown;
  ap_presigned_header_t *field = &form->fields[form->field_count];
  field->name = strdup(name);
  field->value = strdup(value);
  form->field_count++;
  return field->name && field->value ? AP_OK : AP_NO_MEMORY(error);
}

ap_status_t ap_upload_form_policy_create(ap_context_t *context, const char *key,
                                         const char *content_type,
                                         int64_t max_length,
                                         int64_t expires_seconds,
                                         ap_s3_post_form_t *out,
                                         ap_error_t *error) {
  memset(out, 0, sizeof *out);
  const char *base_url = ap_context_public_base_url(context);
  if (!base_url) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_INVALID_CONFIG,
                        "public.base_url is not set: set it to the URL "
                        "clients reach audiopipe-httpd on");
  }
  out->expires_at = (int64_t)time(NULL) + expires_seconds;

  json_object *policy = json_object_new_object();
  json_object *range = json_object_new_array();
  if (!policy || !range) {
    json_object_put(policy);
    json_object_put(range);
    return AP_NO_MEMORY(error);
  }
  json_object_object_add(policy, "expiration",
                         json_object_new_int64(out->expires_at));
  json_object_object_add(policy, "key", json_object_new_string(key));
  json_object_object_add(policy, "content_type",
                         json_object_new_string(content_type));
  json_object_array_add(range, json_object_new_int64(1));
  json_object_array_add(range, json_object_new_int64(max_length));
  json_object_object_add(policy, "content_length_range", range);
  const char *text = json_object_to_json_string_ext(
      policy, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  size_t text_length = text ? strlen(text) : 0;
  char *encoded = text ? malloc(4 * ((text_length + 2) / 3) + 1) : NULL;
  if (!encoded) {
    json_object_put(policy);
    return AP_NO_MEMORY(error);
  }
  EVP_EncodeBlock((unsigned char *)encoded, (const unsigned char *)text,
                  (int)text_length);
  json_object_put(policy);

  char signature[AP_HMAC_SHA256_HEX_SIZE];
  ap_status_t status = sign_policy(context, encoded, signature, error);
  size_t base_length = strlen(base_url);
  while (base_length > 0 && base_url[base_length - 1] == '/') {
    base_length--;
  }
  out->url = malloc(base_length + sizeof "/v1/objects");
  if (status == AP_OK && !out->url) {
    status = AP_NO_MEMORY(error);
  }
  if (status == AP_OK) {
    memcpy(out->url, base_url, base_length);
    memcpy(out->url + base_length, "/v1/objects", sizeof "/v1/objects");
    status = add_field(out, "key", key, error);
  }
  if (status == AP_OK) {
    status = add_field(out, "Content-Type", content_type, error);
  }
  if (status == AP_OK) {
    status = add_field(out, "policy", encoded, error);
  }
  if (status == AP_OK) {
    status = add_field(out, "x-ap-signature", signature, error);
  }
  free(encoded);
  return status;
}

/* ---- Receiving ------------------------------------------------------ */

static ap_status_t form_error(ap_error_t *error, const char *detail) {
  return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_SIGNATURE,
                      "POST form rejected: %s: post the fields of a fresh "
                      "post ticket unchanged",
                      detail);
}

/* Decodes the base64 policy into JSON; NULL when it is not valid. */
static json_object *decode_policy(const char *policy) {
  size_t length = strlen(policy);
  if (length == 0 || length > POLICY_MAX_LENGTH || length % 4 != 0) {
    return NULL;
  }
  unsigned char *decoded = malloc(length / 4 * 3 + 1);
  if (!decoded) {
    return NULL;
  }
  int size =
      EVP_DecodeBlock(decoded, (const unsigned char *)policy, (int)length);
  if (size < 0) {
    free(decoded);
    return NULL;
  }
  /* EVP_DecodeBlock counts the padding as zero bytes. */
  for (size_t i = length; i > 0 && policy[i - 1] == '='; i--) {
    size--;
  }
  decoded[size] = '\0';
  json_object *root = json_tokener_parse((const char *)decoded);
  free(decoded);
  if (root && !json_object_is_type(root, json_type_object)) {
    json_object_put(root);
    return NULL;
  }
  return root;
}

/* Reads the string member `name`, or NULL. */
static const char *policy_string(json_object *policy, const char *name) {
  json_object *value = NULL;
  if (!json_object_object_get_ex(policy, name, &value) ||
      !json_object_is_type(value, json_type_string)) {
    return NULL;
  }
  return json_object_get_string(value);
}

/* Checks the policy against the form fields and stores its length
 * range. */
static ap_status_t check_policy(json_object *policy,
                                const ap_upload_form_fields_t *fields,
                                int64_t *min_length, int64_t *max_length,
                                ap_error_t *error) {
  json_object *expiration = NULL;
  json_object *range = NULL;
  const char *key = policy_string(policy, "key");
  const char *type = policy_string(policy, "content_type");
  if (!json_object_object_get_ex(policy, "expiration", &expiration) ||
      !json_object_is_type(expiration, json_type_int) ||
      !json_object_object_get_ex(policy, "content_length_range", &range) ||
      !json_object_is_type(range, json_type_array) ||
      json_object_array_length(range) != 2 || !key || !type) {
    return form_error(error, "the policy is malformed");
  }
  if (strcmp(key, fields->key) != 0) {
    return form_error(error, "the key field differs from the policy's key");
  }
  if (strcmp(type, fields->content_type) != 0) {
    return form_error(error, "the Content-Type field differs from the "
                             "policy's content type");
  }
  *min_length = json_object_get_int64(json_object_array_get_idx(range, 0));
  *max_length = json_object_get_int64(json_object_array_get_idx(range, 1));
  if (*min_length < 0 || *max_length < *min_length) {
    return form_error(error, "the policy's content_length_range is invalid");
  }
  if ((int64_t)time(NULL) >= json_object_get_int64(expiration)) {
    return ap_error_set(error, AP_DOMAIN_UPLOAD, AP_ERR_EXPIRED,
                        "the POST policy expired: create a new upload");
  }
  return AP_OK;
}

ap_status_t ap_upload_form_begin(ap_context_t *context,
                                 const ap_upload_form_fields_t *fields,
                                 ap_upload_form_t **out, ap_error_t *error) {
  if (!context || !fields || !out ||
      fields->struct_size < sizeof(ap_upload_form_fields_t)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_form_begin: context, fields (initialised "
                        "with ap_upload_form_fields_init) and out are "
                        "required");
  }
  *out = NULL;
  if (!fields->key || !fields->content_type || !fields->policy ||
      !fields->signature) {
    return form_error(error, "a field is missing (key, Content-Type, policy "
                             "and x-ap-signature must come before file)");
  }
  char expected[AP_HMAC_SHA256_HEX_SIZE];
  ap_status_t status = sign_policy(context, fields->policy, expected, error);
  if (status != AP_OK) {
    return status;
  }
  if (strlen(fields->signature) != AP_HMAC_SHA256_HEX_SIZE - 1 ||
      CRYPTO_memcmp(expected, fields->signature, AP_HMAC_SHA256_HEX_SIZE - 1) !=
          0) {
    return form_error(error, "the x-ap-signature field does not match the "
                             "policy");
  }
  json_object *policy = decode_policy(fields->policy);
  if (!policy) {
    return form_error(error, "the policy field is not base64 of a JSON "
                             "object");
  }
  int64_t min_length = 0;
  int64_t max_length = 0;
  status = check_policy(policy, fields, &min_length, &max_length, error);
  json_object_put(policy);
  if (status != AP_OK) {
    return status;
  }

  ap_upload_form_t *form = calloc(1, sizeof *form);
  if (!form || !(form->key = strdup(fields->key))) {
    free(form);
    return AP_NO_MEMORY(error);
  }
  form->min_length = min_length;
  form->max_length = max_length;
  status = ap_object_store_open_write_exclusive(
      ap_context_object_store(context), form->key, fields->content_type,
      &form->output, error);
  if (status != AP_OK) {
    ap_upload_form_close(form);
    return status;
  }
  *out = form;
  return AP_OK;
}

/* Records a failure, discards the bytes, and returns the status. */
static ap_status_t form_fail(ap_upload_form_t *form, ap_status_t status,
                             const ap_error_t *cause, ap_error_t *error) {
  form->failure = status;
  if (cause) {
    form->failure_error = *cause;
  }
  ap_output_close(form->output);
  form->output = NULL;
  if (error && cause && error != cause) {
    *error = *cause;
  }
  return status;
}

ap_status_t ap_upload_form_write(ap_upload_form_t *form, const void *data,
                                 size_t size, ap_error_t *error) {
  if (!form || (!data && size > 0)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_form_write: form and data are required");
  }
  if (form->failure != AP_OK) {
    if (error) {
      *error = form->failure_error;
    }
    return form->failure;
  }
  if (form->finished) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_form_write: the form is finished");
  }
  if ((uint64_t)size > (uint64_t)(form->max_length - form->received)) {
    ap_error_t local = {0};
    ap_error_set(&local, AP_DOMAIN_UPLOAD, AP_ERR_UPLOAD_TOO_LARGE,
                 "EntityTooLarge: the file field is over the policy's "
                 "maximum of %lld bytes, the declared size: nothing was "
                 "stored",
                 (long long)form->max_length);
    return form_fail(form, AP_ERR_UPLOAD_TOO_LARGE, &local, error);
  }
  ap_error_t local = {0};
  ap_status_t status = ap_output_write(form->output, data, size, &local);
  if (status != AP_OK) {
    return form_fail(form, status, &local, error);
  }
  form->received += (int64_t)size;
  return AP_OK;
}

int64_t ap_upload_form_received(const ap_upload_form_t *form) {
  return form ? form->received : 0;
}

const char *ap_upload_form_key(const ap_upload_form_t *form) {
  return form ? form->key : NULL;
}

ap_status_t ap_upload_form_finish(ap_upload_form_t *form, ap_error_t *error) {
  if (!form) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_form_finish: form is required");
  }
  if (form->failure != AP_OK) {
    if (error) {
      *error = form->failure_error;
    }
    return form->failure;
  }
  if (form->received < form->min_length) {
    ap_error_t local = {0};
    ap_error_set(&local, AP_DOMAIN_UPLOAD, AP_ERR_SIZE_MISMATCH,
                 "the file field has %lld bytes, under the policy's minimum "
                 "of %lld: nothing was stored",
                 (long long)form->received, (long long)form->min_length);
    return form_fail(form, AP_ERR_SIZE_MISMATCH, &local, error);
  }
  ap_error_t local = {0};
  ap_status_t status = ap_output_finish(form->output, &local);
  if (status != AP_OK) {
    return form_fail(form, status, &local, error);
  }
  form->finished = 1;
  return AP_OK;
}

void ap_upload_form_close(ap_upload_form_t *form) {
  if (!form) {
    return;
  }
  ap_output_close(form->output);
  free(form->key);
  free(form);
}
