/* Upload documents of the MongoDB metadata backend. */
#include "core/error_internal.h"
#include "meta/mongo_internal.h"

static ap_status_t not_implemented(ap_error_t *error, const char *what) {
  return ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNSUPPORTED,
                      "%s: not implemented yet in the MongoDB backend", what);
}

ap_status_t ap_mongo_upload_insert(void *state,
                                   const ap_upload_record_t *upload,
                                   ap_error_t *error) {
  (void)state, (void)upload;
  return not_implemented(error, "recording upload");
}

ap_status_t ap_mongo_upload_get(void *state, const char *owner, const char *id,
                                ap_upload_record_t *out, ap_error_t *error) {
  (void)state, (void)owner, (void)id, (void)out;
  return not_implemented(error, "reading upload");
}

ap_status_t ap_mongo_upload_finish_pending(void *state, const char *id,
                                           int to_state, int rejection_code,
                                           int64_t now_ms, ap_error_t *error) {
  (void)state, (void)id, (void)to_state, (void)rejection_code, (void)now_ms;
  return not_implemented(error, "updating upload state");
}

ap_status_t ap_mongo_upload_accept(void *state, const char *upload_id,
                                   const ap_asset_t *asset,
                                   const ap_job_enqueue_options_t *job,
                                   int64_t now_ms, ap_asset_t **out,
                                   ap_error_t *error) {
  (void)state, (void)upload_id, (void)asset, (void)job, (void)now_ms;
  (void)out;
  return not_implemented(error, "completing upload");
}

ap_status_t ap_mongo_upload_list_expired(void *state, int64_t now_ms, int limit,
                                         ap_upload_record_t **out,
                                         size_t *count, ap_error_t *error) {
  (void)state, (void)now_ms, (void)limit, (void)out, (void)count;
  return not_implemented(error, "listing expired uploads");
}
