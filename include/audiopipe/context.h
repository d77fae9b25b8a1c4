/*
 * Context: the handle that ties the library to its backends. One context
 * opens the metadata store (assets, uploads and jobs), the object store
 * (the audio bytes and everything derived from them) and the job queue,
 * each chosen by a URI in the configuration, and reads the limits and the
 * signing secret every other area needs.
 *
 * Backends, by URI:
 *   metadata.uri  sqlite://PATH      a SQLite file; PATH is relative to the
 *                                    working directory unless it starts
 *                                    with '/' (sqlite:///var/lib/a/meta.db)
 *                 sqlite::memory:    not accepted, because a pool of
 *                                    connections cannot share it
 *   objects.uri   file://PATH        a directory of files, presigned URLs
 *                                    verified by audiopipe-httpd
 *   queue.uri     db                 jobs are rows of the metadata store
 * Other schemes (mongodb://, s3://, redis://) fail with AP_ERR_UNSUPPORTED
 * in this build.
 *
 * Durability of the SQLite store: journal_mode=WAL, and synchronous is
 * metadata.sqlite_synchronous (default NORMAL). With FULL, a transaction
 * that returned success survives a power loss or an operating system
 * crash. With NORMAL, a committed transaction survives a crash of the
 * process, but the last transactions before a power loss may roll back;
 * the database is never corrupted in either mode.
 *
 * Thread-safety: a context may be used from any number of threads at once.
 * It keeps a pool of SQLite connections (metadata.pool_size) and each call
 * borrows one for its duration. Open and close it on one thread, and close
 * it only when no other call is running.
 */
#ifndef AUDIOPIPE_CONTEXT_H
#define AUDIOPIPE_CONTEXT_H

#include <audiopipe/common.h>
#include <audiopipe/config.h>
#include <audiopipe/error.h>
#include <audiopipe/limits.h>
#include <audiopipe/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_context ap_context_t;

/* The schema version this build writes; see docs/data-model.md. */
#define AP_SCHEMA_VERSION 5

/*
 * Opens the backends named by `config` (which is copied and may be freed
 * afterwards) and stores a new context in `*out`. When metadata.auto_migrate
 * is true (the default), missing migrations are applied first. When it is
 * false, a database older than AP_SCHEMA_VERSION stays as it is, and
 * ap_context_check_ready reports it until ap_context_migrate runs.
 *
 * Fails with AP_ERR_INVALID_CONFIG when signing.secret
 * (AUDIOPIPE_SIGNING_SECRET) is missing or shorter than 32 bytes, or when
 * a URI does not parse; AP_ERR_UNSUPPORTED for a backend this build lacks;
 * AP_ERR_UNAVAILABLE or AP_ERR_IO when a backend cannot be opened. A
 * database newer than this build fails with AP_ERR_UNSUPPORTED. Redis
 * (redis.uri) is the exception: an unreachable Redis or a rejected
 * password does not fail the open, because everything falls back to
 * polling (see <audiopipe/redis.h>); only a malformed redis.* value does.
 */
AP_EXPORT ap_status_t ap_context_open(const ap_config_t *config,
                                      ap_context_t **out, ap_error_t *error);

/* Closes every backend and frees the context. NULL is allowed. */
AP_EXPORT void ap_context_close(ap_context_t *context);

/*
 * Applies every missing schema migration, each in its own transaction, and
 * stores the resulting version in `*schema_version` (may be NULL). Running
 * it on an up-to-date database changes nothing. Thread-safe, and safe
 * against another process migrating the same file at the same time.
 */
AP_EXPORT ap_status_t ap_context_migrate(ap_context_t *context,
                                         int *schema_version,
                                         ap_error_t *error);

/* Stores the schema version recorded in the metadata store. */
AP_EXPORT ap_status_t ap_context_schema_version(ap_context_t *context,
                                                int *schema_version,
                                                ap_error_t *error);

/*
 * Runs a trivial query on each backend, for a readiness probe. Fails with
 * AP_ERR_UNAVAILABLE naming the backend that failed, or with
 * AP_ERR_CONFLICT when the schema is older than AP_SCHEMA_VERSION.
 */
AP_EXPORT ap_status_t ap_context_check_ready(ap_context_t *context,
                                             ap_error_t *error);

/* Returns the limits read from the limits.* keys. Owned by the context. */
AP_EXPORT const ap_limits_t *ap_context_limits(const ap_context_t *context);

/* Returns public.base_url, or NULL when it is not set. Owned by the
 * context. */
AP_EXPORT const char *ap_context_public_base_url(const ap_context_t *context);

/*
 * Returns the object store named by objects.uri, for the functions of
 * <audiopipe/storage.h>. Owned by the context: do not close it. Safe to
 * use from several threads, like the context.
 */
AP_EXPORT ap_object_store_t *ap_context_object_store(ap_context_t *context);

/* Returns the configuration the context was opened with (its own copy,
 * owned by the context), for checks such as ap_signed_request_verify. */
AP_EXPORT const ap_config_t *ap_context_config(const ap_context_t *context);

/*
 * Progress of a backup or restore: `pages_done` of `pages_total` SQLite
 * pages copied so far. Called on the calling thread after each step.
 */
typedef void (*ap_backup_progress_fn)(void *user_data, int64_t pages_done,
                                      int64_t pages_total);

/* What a backup copied. */
typedef struct ap_backup_summary {
  int64_t objects; /* object files copied (listed in MANIFEST) */
} ap_backup_summary_t;

/*
 * Backs up the embedded backends of `context` into the directory
 * `destination`, which must be missing or empty: the SQLite metadata
 * database as destination/meta.db through SQLite's online backup API
 * (in steps of 1024 pages, so the context and other processes keep
 * writing), then every file of the file object store into
 * destination/objects with one "<bytes> <key>" line per file in
 * destination/MANIFEST. The copy passes PRAGMA integrity_check or the
 * call fails.
 *
 * The database is a consistent snapshot; the objects are copied after it,
 * so every object its rows name is present, plus objects written later.
 * An object deleted during the copy is left out. Writes in progress
 * (".tmp-" files) are not copied. `progress` and `summary` may be NULL.
 *
 * Fails with AP_ERR_UNSUPPORTED unless metadata.uri is sqlite:// and
 * objects.uri is file://; AP_ERR_CONFLICT when `destination` is not
 * empty; AP_ERR_UNAVAILABLE when the database stays locked; AP_ERR_IO
 * on any read or write failure. A failed backup leaves a partial
 * directory that must not be restored.
 */
AP_EXPORT ap_status_t ap_context_backup(ap_context_t *context,
                                        const char *destination,
                                        ap_backup_progress_fn progress,
                                        void *user_data,
                                        ap_backup_summary_t *summary,
                                        ap_error_t *error);

/*
 * Restores a directory written by ap_context_backup into the paths that
 * `config` names: the database file of metadata.uri, which must not
 * exist (its directory must), and the root of objects.uri, which must be
 * missing or empty. Run it before any server opens those paths. Fails
 * with AP_ERR_CONFLICT rather than overwrite, AP_ERR_NOT_FOUND when
 * `source` has no meta.db, and AP_ERR_UNSUPPORTED for other backends.
 */
AP_EXPORT ap_status_t ap_context_restore(const ap_config_t *config,
                                         const char *source,
                                         ap_backup_progress_fn progress,
                                         void *user_data, ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
