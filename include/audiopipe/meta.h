/*
 * Assets: one uploaded recording and everything derived from it. An asset
 * is created by ap_upload_complete once its bytes have been validated, and
 * the processing job fills in the analysis, renditions and waveforms.
 *
 * Every owner-facing call takes the owner and treats another owner's asset
 * exactly like a missing one (AP_ERR_NOT_FOUND), so an id reveals nothing
 * about who else uses the service.
 *
 * Identifiers are 128 random bits from getrandom(2), written as 26
 * characters of Crockford base32 (digits and upper-case letters without
 * I, L, O and U). Timestamps are milliseconds since the Unix epoch, UTC.
 *
 * An ap_asset_t is an immutable snapshot: it does not change when the
 * store does, and may be read from any number of threads.
 */
#ifndef AUDIOPIPE_META_H
#define AUDIOPIPE_META_H

#include <audiopipe/common.h>
#include <audiopipe/context.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Characters in an identifier, and the buffer size including the NUL. */
#define AP_ID_LENGTH 26
#define AP_ID_SIZE 27

/* Maximum length of an owner string, in bytes. */
#define AP_OWNER_MAX_BYTES 256

/*
 * Writes a new random identifier and its NUL into `id`. Fails with
 * AP_ERR_IO only when getrandom(2) fails.
 */
AP_EXPORT ap_status_t ap_id_generate(char id[AP_ID_SIZE], ap_error_t *error);

/* Returns 1 when `text` is a well-formed identifier, 0 otherwise. */
AP_EXPORT int ap_id_is_valid(const char *text);

typedef enum ap_asset_status {
  AP_ASSET_PENDING = 0,    /* validated, processing not started */
  AP_ASSET_PROCESSING = 1, /* a worker is processing it */
  AP_ASSET_READY = 2,      /* analysis, renditions and waveforms stored */
  AP_ASSET_FAILED = 3      /* processing failed; see the error getters */
} ap_asset_status_t;

/* Returns "pending", "processing", "ready", "failed" or "unknown". */
AP_EXPORT const char *ap_asset_status_name(ap_asset_status_t status);

typedef struct ap_asset ap_asset_t;

/*
 * Reads the asset `asset_id` of `owner` into a new snapshot stored in
 * `*out` (free with ap_asset_free). AP_ERR_NOT_FOUND when it does not
 * exist or belongs to another owner. `owner` NULL skips the owner check;
 * only trusted code (the worker) may pass NULL.
 */
AP_EXPORT ap_status_t ap_asset_get(ap_context_t *context, const char *owner,
                                   const char *asset_id, ap_asset_t **out,
                                   ap_error_t *error);

/*
 * Deletes an asset: cancels its unfinished jobs, deletes its objects (the
 * original, renditions and waveforms) from the object store, then the
 * record. AP_ERR_NOT_FOUND as for ap_asset_get. An object that is already
 * gone is not an error; any other object store failure leaves the record
 * in place so the call can be retried.
 */
AP_EXPORT ap_status_t ap_asset_delete(ap_context_t *context, const char *owner,
                                      const char *asset_id, ap_error_t *error);

AP_EXPORT void ap_asset_free(ap_asset_t *asset);

/* Getters. Strings belong to the asset; NULL when the value is unset. */
AP_EXPORT const char *ap_asset_id(const ap_asset_t *asset);
AP_EXPORT const char *ap_asset_owner(const ap_asset_t *asset);
/* Object store key of the original bytes. */
AP_EXPORT const char *ap_asset_object_key(const ap_asset_t *asset);
AP_EXPORT ap_asset_status_t ap_asset_status(const ap_asset_t *asset);
/* The client's file name, kept as metadata only: never part of a key. */
AP_EXPORT const char *ap_asset_filename(const ap_asset_t *asset);
/* The content type the client declared (and signed into the upload). */
AP_EXPORT const char *ap_asset_content_type(const ap_asset_t *asset);
AP_EXPORT int64_t ap_asset_size_bytes(const ap_asset_t *asset);
/* Id of the processing job created with the asset. */
AP_EXPORT const char *ap_asset_job_id(const ap_asset_t *asset);
/* JSON object from ap_media_info_to_json, stored at upload completion. */
AP_EXPORT const char *ap_asset_probe_json(const ap_asset_t *asset);
/* JSON object written by the processing job; NULL until then. */
AP_EXPORT const char *ap_asset_analysis_json(const ap_asset_t *asset);
/* When the status is failed: the ap_error_code_t and its message. */
AP_EXPORT int ap_asset_error_code(const ap_asset_t *asset);
AP_EXPORT const char *ap_asset_error_message(const ap_asset_t *asset);
AP_EXPORT int64_t ap_asset_created_at_ms(const ap_asset_t *asset);
AP_EXPORT int64_t ap_asset_updated_at_ms(const ap_asset_t *asset);
/* Schema version the asset's row was written with. */
AP_EXPORT int ap_asset_schema_version(const ap_asset_t *asset);

/* Renditions, in name order ("mp3_128k", "opus_64k"). */
AP_EXPORT size_t ap_asset_rendition_count(const ap_asset_t *asset);
AP_EXPORT const char *ap_asset_rendition_name(const ap_asset_t *asset,
                                              size_t index);
AP_EXPORT const char *ap_asset_rendition_key(const ap_asset_t *asset,
                                             size_t index);
AP_EXPORT const char *ap_asset_rendition_content_type(const ap_asset_t *asset,
                                                      size_t index);
AP_EXPORT int64_t ap_asset_rendition_size_bytes(const ap_asset_t *asset,
                                                size_t index);

/* Waveforms, in name order ("peaks_8bit", "peaks_16bit"). */
AP_EXPORT size_t ap_asset_waveform_count(const ap_asset_t *asset);
AP_EXPORT const char *ap_asset_waveform_name(const ap_asset_t *asset,
                                             size_t index);
AP_EXPORT const char *ap_asset_waveform_key(const ap_asset_t *asset,
                                            size_t index);
AP_EXPORT int64_t ap_asset_waveform_size_bytes(const ap_asset_t *asset,
                                               size_t index);

/*
 * Serialises the asset as a JSON object (probe and analysis embedded as
 * objects, renditions and waveforms as objects keyed by name) into a new
 * string stored in `*json`; free it with ap_free.
 */
AP_EXPORT ap_status_t ap_asset_to_json(const ap_asset_t *asset, char **json,
                                       ap_error_t *error);

/* One page of an owner's assets, newest first. */
typedef struct ap_asset_list ap_asset_list_t;

/* Page sizes accepted by ap_asset_list. */
#define AP_ASSET_LIST_MAX_LIMIT 100

/*
 * Lists `owner`'s assets newest first (by creation time, then id), at most
 * `limit` (1..AP_ASSET_LIST_MAX_LIMIT) of them, starting after `cursor`
 * (NULL or "" for the first page). The cursor is an opaque string signed
 * with the context's secret: a cursor that was altered, or made for
 * another owner, fails with AP_ERR_INVALID_ARGUMENT. Pages stay consistent
 * when assets are added while paging, because the cursor names a position
 * in the order rather than an offset.
 */
AP_EXPORT ap_status_t ap_asset_list(ap_context_t *context, const char *owner,
                                    const char *cursor, int limit,
                                    ap_asset_list_t **out, ap_error_t *error);

AP_EXPORT size_t ap_asset_list_count(const ap_asset_list_t *list);
/* The asset at `index`, owned by the list. */
AP_EXPORT const ap_asset_t *ap_asset_list_at(const ap_asset_list_t *list,
                                             size_t index);
/* Cursor for the next page, owned by the list; NULL on the last page. */
AP_EXPORT const char *ap_asset_list_next_cursor(const ap_asset_list_t *list);
AP_EXPORT void ap_asset_list_free(ap_asset_list_t *list);

/*
 * Updates written by the processing job. These take no owner because only
 * the worker calls them; AP_ERR_NOT_FOUND when the asset was deleted
 * meanwhile, so the worker can stop.
 */

/* Sets the status, and for AP_ASSET_FAILED the error code and message
 * (both ignored otherwise). */
AP_EXPORT ap_status_t ap_asset_set_status(
    ap_context_t *context, const char *asset_id, ap_asset_status_t status,
    int error_code, const char *error_message, ap_error_t *error);

/* Stores the analysis JSON object (copied; must parse as JSON). */
AP_EXPORT ap_status_t ap_asset_set_analysis(ap_context_t *context,
                                            const char *asset_id,
                                            const char *analysis_json,
                                            ap_error_t *error);

/* Records a rendition object, replacing one with the same name. */
AP_EXPORT ap_status_t ap_asset_put_rendition(
    ap_context_t *context, const char *asset_id, const char *name,
    const char *object_key, const char *content_type, int64_t size_bytes,
    ap_error_t *error);

/* Records a waveform object, replacing one with the same name. */
AP_EXPORT ap_status_t ap_asset_put_waveform(
    ap_context_t *context, const char *asset_id, const char *name,
    const char *object_key, int64_t size_bytes, ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
