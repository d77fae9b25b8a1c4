/*
 * The library context: opens the metadata store, the object store and the
 * queue named in the configuration, and keeps the settings the other
 * areas read through context_internal.h.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <audiopipe/storage.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "core/task_pool.h"
#include "meta/meta_internal.h"
#include "notify/notify_internal.h"

/* Maximum number of blocking calls that asynchronous calls run at once on
 * backends without asynchronous writes. It equals the maximum batch of
 * one SQLite commit, so both paths admit the same concurrency. */
#define BLOCKING_CALL_THREADS 64

/* Shortest signing secret accepted: 256 bits, the HMAC-SHA256 key size. */
#define MIN_SECRET_BYTES 32

struct ap_context {
  ap_config_t *config;
  ap_meta_store_t *meta;
  ap_object_store_t *objects;
  ap_limits_t limits;
  char *secret;
  size_t secret_size;
  const char *public_base_url; /* owned by config */
  int64_t upload_max_bytes;
  int64_t retry_base_ms;
  int64_t retry_max_ms;
  int64_t watch_interval_ms;
  ap_notifier_t *notifier; /* NULL when redis.uri is empty */
  ap_task_pool_t *blocking_calls;
  atomic_int closing; /* set first by ap_context_close */
};

/* Copies every key set in `source` into a new configuration. */
static ap_status_t copy_config(const ap_config_t *source, ap_config_t **out,
                               ap_error_t *error) {
  ap_status_t status = ap_config_new(out, error);
  for (size_t i = 0; status == AP_OK && i < ap_config_key_count(); i++) {
    const ap_config_key_info_t *info = ap_config_key_at(i);
    const char *value = ap_config_get(source, info->key);
    if (value &&
        (!info->default_value || strcmp(value, info->default_value) != 0)) {
      status = ap_config_set(*out, info->key, value, error);
    }
  }
  if (status != AP_OK) {
    ap_config_free(*out);
    *out = NULL;
  }
  return status;
}

static ap_status_t read_duration(const ap_config_t *config, const char *key,
                                 int64_t minimum, int64_t *value,
                                 ap_error_t *error) {
  ap_status_t status = ap_config_get_int64(config, key, value, error);
  if (status == AP_OK && *value < minimum) {
    status = ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                          "%s = %lld ms is too small: use at least %lld ms",
                          key, (long long)*value, (long long)minimum);
  }
  return status;
}

/* Reads the settings the context keeps. */
static ap_status_t read_settings(ap_context_t *context, ap_error_t *error) {
  const ap_config_t *config = context->config;
  ap_status_t status = ap_limits_from_config(config, &context->limits, error);
  if (status != AP_OK) {
    return status;
  }

  const char *secret = ap_config_get(config, "signing.secret");
  if (!secret || strlen(secret) < MIN_SECRET_BYTES) {
    return ap_error_set(
        error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
        "signing.secret (AUDIOPIPE_SIGNING_SECRET) is %s: set it to at least "
        "%d random bytes, for example the output of `openssl rand -hex 32`",
        secret ? "too short" : "not set", MIN_SECRET_BYTES);
  }
  context->secret = strdup(secret);
  if (!context->secret) {
    return AP_NO_MEMORY(error);
  }
  context->secret_size = strlen(secret);
  context->public_base_url = ap_config_get(config, "public.base_url");

  status = ap_config_get_int64(config, "uploads.max_bytes",
                               &context->upload_max_bytes, error);
  if (status == AP_OK && context->upload_max_bytes < 1) {
    status = ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                          "uploads.max_bytes = %lld must be at least 1",
                          (long long)context->upload_max_bytes);
  }
  if (status == AP_OK) {
    status = read_duration(config, "jobs.retry_base", 0,
                           &context->retry_base_ms, error);
  }
  if (status == AP_OK) {
    status = read_duration(config, "jobs.retry_max", context->retry_base_ms,
                           &context->retry_max_ms, error);
  }
  if (status == AP_OK) {
    status = read_duration(config, "jobs.watch_interval", 1,
                           &context->watch_interval_ms, error);
  }
  return status;
}

static ap_status_t check_queue_uri(const ap_config_t *config,
                                   ap_error_t *error) {
  /* NOTE: ap_upload_complete writes the job in the asset's transaction,
   * which only the db queue can join; a Redis queue needs an outbox. */
  const char *queue = ap_config_get(config, "queue.uri");
  if (queue && strcmp(queue, "db") != 0) {
    return ap_error_set(error, AP_DOMAIN_QUEUE, AP_ERR_UNSUPPORTED,
                        "queue.uri = %s: this build supports only db (jobs "
                        "kept in the metadata store)",
                        queue);
  }
  return AP_OK;
}

ap_status_t ap_context_open(const ap_config_t *config, ap_context_t **out,
                            ap_error_t *error) {
  if (!config || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_context_open: config and out must not be NULL");
  }
  ap_context_t *context = calloc(1, sizeof *context);
  if (!context) {
    return AP_NO_MEMORY(error);
  }

  ap_status_t status = copy_config(config, &context->config, error);
  if (status == AP_OK) {
    status = read_settings(context, error);
  }
  if (status == AP_OK) {
    status = check_queue_uri(context->config, error);
  }
  if (status == AP_OK) {
    ap_meta_settings_t settings = {.retry_base_ms = context->retry_base_ms,
                                   .retry_max_ms = context->retry_max_ms};
    const char *uri = ap_config_get(context->config, "metadata.uri");
    status = ap_meta_store_open(uri, context->config, &settings, &context->meta,
                                error);
  }
  int auto_migrate = 1;
  if (status == AP_OK) {
    status = ap_config_get_bool(context->config, "metadata.auto_migrate",
                                &auto_migrate, error);
  }
  if (status == AP_OK && auto_migrate) {
    status = ap_context_migrate(context, NULL, error);
  }
  if (status == AP_OK) {
    status = ap_object_store_open(context->config, &context->objects, error);
  }
  /* Last, so a failing backend does not leave a Redis connection behind;
   * an unreachable Redis does not fail the open (see <audiopipe/redis.h>). */
  if (status == AP_OK) {
    status = ap_notifier_open(context->config, &context->notifier, error);
  }
  if (status == AP_OK) {
    status = ap_task_pool_create(BLOCKING_CALL_THREADS,
                                 &context->blocking_calls, error);
  }

  if (status != AP_OK) {
    ap_context_close(context);
    return status;
  }
  *out = context;
  return AP_OK;
}

void ap_context_close(ap_context_t *context) {
  if (!context) {
    return;
  }
  /* Asynchronous calls still queued use the backends, and their callbacks
   * may start more calls, which the flag rejects. So both queues finish
   * before any backend closes. */
  atomic_store(&context->closing, 1);
  ap_task_pool_destroy(context->blocking_calls);
  context->blocking_calls = NULL;
  ap_meta_store_drain(context->meta);
  ap_notifier_close(context->notifier);
  ap_object_store_close(context->objects);
  ap_meta_store_close(context->meta);
  if (context->secret) {
    /* Volatile stores keep the compiler from dropping the wipe. */
    volatile char *secret = context->secret;
    for (size_t i = 0; i < context->secret_size; i++) {
      secret[i] = 0;
    }
    free(context->secret);
  }
  ap_config_free(context->config);
  free(context);
}

ap_status_t ap_context_migrate(ap_context_t *context, int *schema_version,
                               ap_error_t *error) {
  if (!context) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_context_migrate: context must not be NULL");
  }
  return context->meta->backend->migrate(
      context->meta->state, AP_SCHEMA_VERSION, schema_version, error);
}

ap_status_t ap_context_schema_version(ap_context_t *context,
                                      int *schema_version, ap_error_t *error) {
  if (!context || !schema_version) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_context_schema_version: context and "
                        "schema_version must not be NULL");
  }
  return context->meta->backend->schema_version(context->meta->state,
                                                schema_version, error);
}

ap_status_t ap_context_check_ready(ap_context_t *context, ap_error_t *error) {
  if (!context) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_context_check_ready: context must not be NULL");
  }
  ap_status_t status =
      context->meta->backend->ping(context->meta->state, error);
  if (status != AP_OK) {
    return status;
  }

  int version = 0;
  status = ap_context_schema_version(context, &version, error);
  if (status != AP_OK) {
    return status;
  }
  if (version < AP_SCHEMA_VERSION) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_CONFLICT,
                        "the metadata schema is at version %d, older than "
                        "%d: run `audiopipe migrate`",
                        version, AP_SCHEMA_VERSION);
  }

  /* A stat of a key that does not exist is the trivial query: any result
   * but an error proves the object store is reachable. */
  ap_object_info_t info;
  ap_error_t cause;
  ap_error_clear(&cause);
  status =
      ap_object_store_stat(context->objects, "readiness-probe", &info, &cause);
  if (status != AP_OK && status != AP_ERR_NOT_FOUND) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNAVAILABLE,
                        "object store did not answer: %s", cause.message);
  }
  return AP_OK;
}

const ap_limits_t *ap_context_limits(const ap_context_t *context) {
  return context ? &context->limits : NULL;
}

const char *ap_context_public_base_url(const ap_context_t *context) {
  return context ? context->public_base_url : NULL;
}

ap_object_store_t *ap_context_object_store(ap_context_t *context) {
  return context->objects;
}

ap_meta_store_t *ap_context_meta_store(ap_context_t *context) {
  return context->meta;
}

const ap_config_t *ap_context_config(const ap_context_t *context) {
  return context->config;
}

const unsigned char *ap_context_signing_secret(const ap_context_t *context,
                                               size_t *size) {
  *size = context->secret_size;
  return (const unsigned char *)context->secret;
}

int64_t ap_context_upload_max_bytes(const ap_context_t *context) {
  return context->upload_max_bytes;
}

int64_t ap_context_retry_base_ms(const ap_context_t *context) {
  return context->retry_base_ms;
}

int64_t ap_context_retry_max_ms(const ap_context_t *context) {
  return context->retry_max_ms;
}

int64_t ap_context_watch_interval_ms(const ap_context_t *context) {
  return context->watch_interval_ms;
}

ap_notifier_t *ap_context_notifier(ap_context_t *context) {
  return context->notifier;
}

ap_task_pool_t *ap_context_blocking_calls(ap_context_t *context) {
  return context->blocking_calls;
}

int ap_context_is_closing(const ap_context_t *context) {
  return atomic_load(&context->closing);
}
