/*
 * What the other areas of the library read from a context. The structure
 * itself stays private to libaudiopipe/context; every area goes through
 * these accessors, which are thread-safe because the values they return
 * never change after ap_context_open.
 */
#ifndef AP_CONTEXT_CONTEXT_INTERNAL_H
#define AP_CONTEXT_CONTEXT_INTERNAL_H

#include <stddef.h>

#include <audiopipe/config.h>
#include <audiopipe/context.h>
#include <audiopipe/limits.h>

typedef struct ap_meta_store ap_meta_store_t;

/* The metadata store named by metadata.uri. Owned by the context. */
ap_meta_store_t *ap_context_meta_store(ap_context_t *context);


/*
 * The signing secret (signing.secret), `*size` bytes, not NUL-terminated
 * in general. At least 32 bytes. Never log or return it to a client.
 */
const unsigned char *ap_context_signing_secret(const ap_context_t *context,
                                               size_t *size);

/* uploads.max_bytes, in bytes. */
int64_t ap_context_upload_max_bytes(const ap_context_t *context);

/* jobs.retry_base and jobs.retry_max, in ms. */
int64_t ap_context_retry_base_ms(const ap_context_t *context);
int64_t ap_context_retry_max_ms(const ap_context_t *context);

/* jobs.watch_interval, in ms. */
int64_t ap_context_watch_interval_ms(const ap_context_t *context);

typedef struct ap_notifier ap_notifier_t;

/* The Redis notifier (libaudiopipe/notify), or NULL when redis.uri is
 * empty. Owned by the context. */
ap_notifier_t *ap_context_notifier(ap_context_t *context);

typedef struct ap_task_pool ap_task_pool_t;

/* The threads that run asynchronous calls whose backend has no
 * asynchronous path (libaudiopipe/core/task_pool.h). Owned by the
 * context, which runs every queued call before its backends close. */
ap_task_pool_t *ap_context_blocking_calls(ap_context_t *context);

/* Returns 1 once ap_context_close has begun: asynchronous calls made from
 * callbacks that run during the close must fail instead of queueing. */
int ap_context_is_closing(const ap_context_t *context);

#endif
