/* Asset documents of the MongoDB metadata backend. */
#include "core/error_internal.h"
#include "meta/mongo_internal.h"

static ap_status_t not_implemented(ap_error_t *error, const char *what) {
  return ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNSUPPORTED,
                      "%s: not implemented yet in the MongoDB backend", what);
}

ap_status_t ap_mongo_asset_get(void *state, const char *owner, const char *id,
                               ap_asset_t **out, ap_error_t *error) {
  (void)state, (void)owner, (void)id, (void)out;
  return not_implemented(error, "reading asset");
}

ap_status_t ap_mongo_asset_list(void *state, const char *owner,
                                int64_t after_created_at_ms,
                                const char *after_id, int limit,
                                ap_asset_t ***out, size_t *count,
                                ap_error_t *error) {
  (void)state, (void)owner, (void)after_created_at_ms, (void)after_id;
  (void)limit, (void)out, (void)count;
  return not_implemented(error, "listing assets");
}

ap_status_t ap_mongo_asset_delete(void *state, const char *owner,
                                  const char *id, ap_error_t *error) {
  (void)state, (void)owner, (void)id;
  return not_implemented(error, "deleting asset");
}

ap_status_t ap_mongo_asset_set_status(void *state, const char *id, int status,
                                      int error_code, const char *error_message,
                                      int64_t now_ms, ap_error_t *error) {
  (void)state, (void)id, (void)status, (void)error_code, (void)error_message;
  (void)now_ms;
  return not_implemented(error, "updating asset status");
}

ap_status_t ap_mongo_asset_set_analysis(void *state, const char *id,
                                        const char *analysis_json,
                                        int64_t now_ms, ap_error_t *error) {
  (void)state, (void)id, (void)analysis_json, (void)now_ms;
  return not_implemented(error, "storing asset analysis");
}

ap_status_t ap_mongo_asset_put_object(void *state, const char *asset_id,
                                      const char *kind,
                                      const ap_asset_object_t *object,
                                      int64_t now_ms, ap_error_t *error) {
  (void)state, (void)asset_id, (void)kind, (void)object, (void)now_ms;
  return not_implemented(error, "recording asset object");
}
