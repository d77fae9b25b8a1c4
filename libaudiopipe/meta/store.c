/*
 * Opening and closing the metadata store: metadata.uri's scheme selects
 * the backend, which then parses the rest of the URI itself.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "meta/mongo_internal.h"
#include "meta/sqlite_internal.h"

#define SUPPORTED_SCHEMES                                                      \
  "sqlite://PATH, mongodb://HOSTS/DATABASE or "                                \
  "mongodb+srv://NAME/DATABASE"

static int has_prefix(const char *text, const char *prefix) {
  return strncmp(text, prefix, strlen(prefix)) == 0;
}

ap_status_t ap_meta_store_open(const char *uri, const ap_config_t *config,
                               const ap_meta_settings_t *settings,
                               ap_meta_store_t **out, ap_error_t *error) {
  if (!uri || !*uri) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "metadata.uri is empty: use " SUPPORTED_SCHEMES);
  }
  if (has_prefix(uri, "sqlite://")) {
    return ap_sqlite_store_open(uri, config, settings, out, error);
  }
  if (has_prefix(uri, "mongodb://") || has_prefix(uri, "mongodb+srv://")) {
    return ap_mongo_store_open(uri, config, settings, out, error);
  }

  /* Only the scheme is shown: the rest may contain a password. */
  const char *separator = strstr(uri, "://");
  if (!separator) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "metadata.uri is not a URI: use " SUPPORTED_SCHEMES);
  }
  return ap_error_set(
      error, AP_DOMAIN_META, AP_ERR_UNSUPPORTED,
      "metadata.uri scheme %.*s:// is not supported: use " SUPPORTED_SCHEMES,
      (int)(separator - uri), uri);
}

void ap_meta_store_drain(ap_meta_store_t *store) {
  if (store && store->backend->drain) {
    store->backend->drain(store->state);
  }
}

void ap_meta_store_close(ap_meta_store_t *store) {
  if (!store) {
    return;
  }
  store->backend->close(store->state);
  free(store);
}
