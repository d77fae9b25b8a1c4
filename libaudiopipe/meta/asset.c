/*
 * The public asset calls: snapshots and their getters, JSON output,
 * deletion with the asset's objects, and the updates the worker makes.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"
#include "storage/object_store.h"

ap_asset_t *ap_asset_alloc(void) { return calloc(1, sizeof(ap_asset_t)); }

static void free_objects(ap_asset_object_t *objects, size_t count) {
  for (size_t i = 0; i < count; i++) {
    free(objects[i].name);
    free(objects[i].object_key);
    free(objects[i].content_type);
  }
  free(objects);
}

void ap_asset_free(ap_asset_t *asset) {
  if (!asset) {
    return;
  }
  free(asset->id);
  free(asset->owner);
  free(asset->object_key);
  free(asset->filename);
  free(asset->content_type);
  free(asset->job_id);
  free(asset->probe_json);
  free(asset->analysis_json);
  free(asset->error_message);
  free_objects(asset->renditions, asset->rendition_count);
  free_objects(asset->waveforms, asset->waveform_count);
  free(asset);
}

const char *ap_asset_status_name(ap_asset_status_t status) {
  switch (status) {
  case AP_ASSET_PENDING:
    return "pending";
  case AP_ASSET_PROCESSING:
    return "processing";
  case AP_ASSET_READY:
    return "ready";
  case AP_ASSET_FAILED:
    return "failed";
  }
  return "unknown";
}

const char *ap_asset_id(const ap_asset_t *asset) { return asset->id; }
const char *ap_asset_owner(const ap_asset_t *asset) { return asset->owner; }
const char *ap_asset_object_key(const ap_asset_t *asset) {
  return asset->object_key;
}
ap_asset_status_t ap_asset_status(const ap_asset_t *asset) {
  return (ap_asset_status_t)asset->status;
}
const char *ap_asset_filename(const ap_asset_t *asset) {
  return asset->filename;
}
const char *ap_asset_content_type(const ap_asset_t *asset) {
  return asset->content_type;
}
int64_t ap_asset_size_bytes(const ap_asset_t *asset) {
  return asset->size_bytes;
}
const char *ap_asset_job_id(const ap_asset_t *asset) { return asset->job_id; }
const char *ap_asset_probe_json(const ap_asset_t *asset) {
  return asset->probe_json;
}
const char *ap_asset_analysis_json(const ap_asset_t *asset) {
  return asset->analysis_json;
}
int ap_asset_error_code(const ap_asset_t *asset) { return asset->error_code; }
const char *ap_asset_error_message(const ap_asset_t *asset) {
  return asset->error_message;
}
int64_t ap_asset_created_at_ms(const ap_asset_t *asset) {
  return asset->created_at_ms;
}
int64_t ap_asset_updated_at_ms(const ap_asset_t *asset) {
  return asset->updated_at_ms;
}
int ap_asset_schema_version(const ap_asset_t *asset) {
  return asset->schema_version;
}

size_t ap_asset_rendition_count(const ap_asset_t *asset) {
  return asset->rendition_count;
}
const char *ap_asset_rendition_name(const ap_asset_t *asset, size_t index) {
  return index < asset->rendition_count ? asset->renditions[index].name : NULL;
}
const char *ap_asset_rendition_key(const ap_asset_t *asset, size_t index) {
  return index < asset->rendition_count ? asset->renditions[index].object_key
                                        : NULL;
}
const char *ap_asset_rendition_content_type(const ap_asset_t *asset,
                                            size_t index) {
  return index < asset->rendition_count ? asset->renditions[index].content_type
                                        : NULL;
}
int64_t ap_asset_rendition_size_bytes(const ap_asset_t *asset, size_t index) {
  return index < asset->rendition_count ? asset->renditions[index].size_bytes
                                        : 0;
}

size_t ap_asset_waveform_count(const ap_asset_t *asset) {
  return asset->waveform_count;
}
const char *ap_asset_waveform_name(const ap_asset_t *asset, size_t index) {
  return index < asset->waveform_count ? asset->waveforms[index].name : NULL;
}
const char *ap_asset_waveform_key(const ap_asset_t *asset, size_t index) {
  return index < asset->waveform_count ? asset->waveforms[index].object_key
                                       : NULL;
}
int64_t ap_asset_waveform_size_bytes(const ap_asset_t *asset, size_t index) {
  return index < asset->waveform_count ? asset->waveforms[index].size_bytes : 0;
}

/* Adds `text` as a string, or null. json-c accepts a NULL value. */
static void add_string(json_object *object, const char *key, const char *text) {
  json_object_object_add(object, key,
                         text ? json_object_new_string(text) : NULL);
}

/* Adds stored JSON text as a nested value. Text that does not parse
 * becomes null, although writers validate it before storing. */
static void add_embedded(json_object *object, const char *key,
                         const char *text) {
  json_object_object_add(object, key, text ? json_tokener_parse(text) : NULL);
}

static json_object *objects_to_json(const ap_asset_object_t *objects,
                                    size_t count) {
  json_object *map = json_object_new_object();
  for (size_t i = 0; map && i < count; i++) {
    json_object *entry = json_object_new_object();
    if (!entry) {
      continue;
    }
    add_string(entry, "key", objects[i].object_key);
    if (objects[i].content_type) {
      add_string(entry, "content_type", objects[i].content_type);
    }
    json_object_object_add(entry, "size_bytes",
                           json_object_new_int64(objects[i].size_bytes));
    json_object_object_add(map, objects[i].name, entry);
  }
  return map;
}

ap_status_t ap_asset_to_json(const ap_asset_t *asset, char **json,
                             ap_error_t *error) {
  if (!asset || !json) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_asset_to_json: asset and json must not be NULL");
  }
  json_object *root = json_object_new_object();
  if (!root) {
    return AP_NO_MEMORY(error);
  }
  add_string(root, "id", asset->id);
  add_string(root, "status", ap_asset_status_name(asset->status));
  add_string(root, "filename", asset->filename);
  add_string(root, "content_type", asset->content_type);
  json_object_object_add(root, "size_bytes",
                         json_object_new_int64(asset->size_bytes));
  add_string(root, "job_id", asset->job_id);
  add_embedded(root, "probe", asset->probe_json);
  add_embedded(root, "analysis", asset->analysis_json);
  json_object_object_add(
      root, "renditions",
      objects_to_json(asset->renditions, asset->rendition_count));
  json_object_object_add(
      root, "waveforms",
      objects_to_json(asset->waveforms, asset->waveform_count));
  if (asset->error_code != 0) {
    json_object *failure = json_object_new_object();
    add_string(failure, "code", ap_error_code_name(asset->error_code));
    add_string(failure, "message", asset->error_message);
    json_object_object_add(root, "error", failure);
  } else {
    json_object_object_add(root, "error", NULL);
  }
  json_object_object_add(root, "created_at_ms",
                         json_object_new_int64(asset->created_at_ms));
  json_object_object_add(root, "updated_at_ms",
                         json_object_new_int64(asset->updated_at_ms));
  json_object_object_add(root, "schema_version",
                         json_object_new_int(asset->schema_version));

  const char *text =
      json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
  *json = text ? strdup(text) : NULL;
  json_object_put(root);
  return *json ? AP_OK : AP_NO_MEMORY(error);
}

/* Checks the context, owner and id arguments shared by the asset calls. */
static ap_status_t check_asset_arguments(const char *function,
                                         ap_context_t *context,
                                         const char *asset_id,
                                         ap_error_t *error) {
  if (!context || !asset_id) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "%s: context and asset_id must not be NULL", function);
  }
  if (!ap_id_is_valid(asset_id)) {
    /* A malformed id names no asset, so it is reported as not found. */
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_NOT_FOUND,
                        "asset %.40s not found", asset_id);
  }
  return AP_OK;
}

ap_status_t ap_asset_get(ap_context_t *context, const char *owner,
                         const char *asset_id, ap_asset_t **out,
                         ap_error_t *error) {
  ap_status_t status =
      check_asset_arguments(__func__, context, asset_id, error);
  if (status != AP_OK) {
    return status;
  }
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_asset_get: out must not be NULL");
  }
  ap_meta_store_t *meta = ap_context_meta_store(context);
  return meta->backend->asset_get(meta->state, owner, asset_id, out, error);
}

/* Deletes one object, treating an object already gone as deleted. */
static ap_status_t delete_object(ap_object_store_t *objects, const char *key,
                                 ap_error_t *error) {
  if (!key) {
    return AP_OK;
  }
  ap_status_t status = ap_object_store_delete(objects, key, error);
  if (status == AP_ERR_NOT_FOUND) {
    return AP_OK;
  }
  return status;
}

ap_status_t ap_asset_delete(ap_context_t *context, const char *owner,
                            const char *asset_id, ap_error_t *error) {
  ap_asset_t *asset = NULL;
  ap_status_t status = ap_asset_get(context, owner, asset_id, &asset, error);
  if (status != AP_OK) {
    return status;
  }

  /* Objects go first: if a delete fails the record still lists every key,
   * so a retry can finish the job instead of leaking objects. */
  ap_object_store_t *objects = ap_context_object_store(context);
  status = delete_object(objects, asset->object_key, error);
  for (size_t i = 0; status == AP_OK && i < asset->rendition_count; i++) {
    status = delete_object(objects, asset->renditions[i].object_key, error);
  }
  for (size_t i = 0; status == AP_OK && i < asset->waveform_count; i++) {
    status = delete_object(objects, asset->waveforms[i].object_key, error);
  }
  ap_asset_free(asset);
  if (status != AP_OK) {
    ap_error_prefix(error, "deleting asset %s", asset_id);
    return status;
  }

  ap_meta_store_t *meta = ap_context_meta_store(context);
  return meta->backend->asset_delete(meta->state, owner, asset_id, error);
}

ap_status_t ap_asset_set_status(ap_context_t *context, const char *asset_id,
                                ap_asset_status_t status_value, int error_code,
                                const char *error_message, ap_error_t *error) {
  ap_status_t status =
      check_asset_arguments(__func__, context, asset_id, error);
  if (status != AP_OK) {
    return status;
  }
  if (status_value < AP_ASSET_PENDING || status_value > AP_ASSET_FAILED) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "asset status %d is not an ap_asset_status_t",
                        (int)status_value);
  }
  ap_meta_store_t *meta = ap_context_meta_store(context);
  return meta->backend->asset_set_status(
      meta->state, asset_id, (int)status_value, error_code, error_message,
      ap_time_now_ms(), error);
}

/* Returns 1 when `text` parses as one JSON value. */
static int is_json(const char *text) {
  json_object *parsed = json_tokener_parse(text);
  if (!parsed) {
    return strcmp(text, "null") == 0;
  }
  json_object_put(parsed);
  return 1;
}

ap_status_t ap_asset_set_analysis(ap_context_t *context, const char *asset_id,
                                  const char *analysis_json,
                                  ap_error_t *error) {
  ap_status_t status =
      check_asset_arguments(__func__, context, asset_id, error);
  if (status != AP_OK) {
    return status;
  }
  if (!analysis_json || !is_json(analysis_json)) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "analysis_json for asset %s is not valid JSON",
                        asset_id);
  }
  ap_meta_store_t *meta = ap_context_meta_store(context);
  return meta->backend->asset_set_analysis(meta->state, asset_id, analysis_json,
                                           ap_time_now_ms(), error);
}

/* Checks a rendition or waveform entry before it is recorded. */
static ap_status_t check_object(const char *kind, const char *name,
                                const char *object_key, int64_t size_bytes,
                                ap_error_t *error) {
  if (!name || !*name || strlen(name) > 64) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "%s name must be 1 to 64 bytes", kind);
  }
  ap_status_t status = ap_object_key_validate(object_key, error);
  if (status != AP_OK) {
    ap_error_prefix(error, "%s %s", kind, name);
    return status;
  }
  if (size_bytes < 0) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "%s %s: size_bytes = %lld is negative", kind, name,
                        (long long)size_bytes);
  }
  return AP_OK;
}

ap_status_t ap_asset_put_rendition(ap_context_t *context, const char *asset_id,
                                   const char *name, const char *object_key,
                                   const char *content_type, int64_t size_bytes,
                                   ap_error_t *error) {
  ap_status_t status =
      check_asset_arguments(__func__, context, asset_id, error);
  if (status == AP_OK) {
    status = check_object("rendition", name, object_key, size_bytes, error);
  }
  if (status != AP_OK) {
    return status;
  }
  ap_asset_object_t object = {(char *)name, (char *)object_key,
                              (char *)content_type, size_bytes};
  ap_meta_store_t *meta = ap_context_meta_store(context);
  return meta->backend->asset_put_object(meta->state, asset_id, "rendition",
                                         &object, ap_time_now_ms(), error);
}

ap_status_t ap_asset_put_waveform(ap_context_t *context, const char *asset_id,
                                  const char *name, const char *object_key,
                                  int64_t size_bytes, ap_error_t *error) {
  ap_status_t status =
      check_asset_arguments(__func__, context, asset_id, error);
  if (status == AP_OK) {
    status = check_object("waveform", name, object_key, size_bytes, error);
  }
  if (status != AP_OK) {
    return status;
  }
  ap_asset_object_t object = {(char *)name, (char *)object_key, NULL,
                              size_bytes};
  ap_meta_store_t *meta = ap_context_meta_store(context);
  return meta->backend->asset_put_object(meta->state, asset_id, "waveform",
                                         &object, ap_time_now_ms(), error);
}
