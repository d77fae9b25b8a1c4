/*
 * The object store as the rest of the library uses it: the public calls
 * of <audiopipe/storage.h> plus writing, deleting, listing and presigning.
 * Each backend (the local directory now, S3 later) fills an
 * ap_object_store_backend_t. These functions validate the key before they
 * forward to it, so no backend ever receives an unchecked key.
 *
 * Thread-safety: every function may be called from several threads on the
 * same store. One ap_output_t or ap_io_t belongs to one thread at a time.
 */
#ifndef AP_STORAGE_OBJECT_STORE_H
#define AP_STORAGE_OBJECT_STORE_H

#include <audiopipe/storage.h>

/*
 * Opens a writer for `key`. `content_type` (may be NULL for
 * "application/octet-stream") is stored with the object. Nothing is
 * visible under `key` until ap_output_finish, which makes the object
 * durable (fsync of file and directory) and replaces any previous object
 * in one rename. ap_output_close without finishing discards the bytes.
 * The output can seek, so formats that rewrite their header can be
 * written straight into the store.
 */
ap_status_t ap_object_store_open_write(ap_object_store_t *store,
                                       const char *key,
                                       const char *content_type,
                                       ap_output_t **out, ap_error_t *error);

/*
 * Opens a write that may only create `key`: when an object exists there
 * at commit, ap_output_finish fails with AP_ERR_CONFLICT and the existing
 * object stays as it was. Client writes through presigned URLs use it, so
 * a URL stores one object and cannot replace an object that upload
 * completion has already validated. AP_ERR_UNSUPPORTED on a backend
 * without it (S3, whose presigned URLs do not reach this server).
 */
ap_status_t ap_object_store_open_write_exclusive(ap_object_store_t *store,
                                                 const char *key,
                                                 const char *content_type,
                                                 ap_output_t **out,
                                                 ap_error_t *error);

/* Copies `input` from its current position to its end into `key`, and
 * commits the object only when the whole copy succeeded. */
ap_status_t ap_object_store_put_from_io(ap_object_store_t *store,
                                        const char *key,
                                        const char *content_type,
                                        ap_io_t *input, ap_error_t *error);

/* Deletes `key`. Deleting a key that does not exist returns AP_OK. */
ap_status_t ap_object_store_delete(ap_object_store_t *store, const char *key,
                                   ap_error_t *error);

/*
 * Called once per object by ap_object_store_list, in ascending byte order
 * of the key. `key` and `info` are valid only during the call. Return 0 to
 * continue, non-zero to stop the listing (which then returns AP_OK).
 */
typedef int (*ap_object_list_fn)(void *user_data, const char *key,
                                 const ap_object_info_t *info);

/*
 * Calls `callback` for every object whose key starts with `prefix` (""
 * lists everything). The prefix follows the key rules, except that it may
 * end in "/" or part way through a segment. Objects written while the
 * listing runs may or may not appear.
 */
ap_status_t ap_object_store_list(ap_object_store_t *store, const char *prefix,
                                 ap_object_list_fn callback, void *user_data,
                                 ap_error_t *error);

/* One header a client must send with a presigned request. */
typedef struct ap_presigned_header {
  char *name;
  char *value;
} ap_presigned_header_t;

/* A presigned request. Owned strings; release with
 * ap_presigned_request_free. */
typedef struct ap_presigned_request {
  char *method;                   /* "PUT" or "GET" */
  char *url;                      /* absolute URL to send it to */
  ap_presigned_header_t *headers; /* headers the client must send */
  size_t header_count;
  int64_t expires_at; /* Unix time, seconds */
} ap_presigned_request_t;

/* Frees the strings of `request` and zeroes it. NULL is allowed. */
void ap_presigned_request_free(ap_presigned_request_t *request);

/*
 * Presigns a "PUT" of exactly `content_length` bytes of `content_type` to
 * `key`, or a "GET" of `key` (content type NULL and length -1), valid for
 * `expires_seconds` (1 to AP_PRESIGN_MAX_EXPIRY_SECONDS). For a PUT the
 * headers are Content-Type and Content-Length. Fails with
 * AP_ERR_INVALID_ARGUMENT for a bad method, key, type, length or expiry
 * and AP_ERR_INVALID_CONFIG when signing.secret or public.base_url is
 * unusable.
 */
ap_status_t
ap_object_store_presign(ap_object_store_t *store, const char *method,
                        const char *key, const char *content_type,
                        int64_t content_length, int64_t expires_seconds,
                        ap_presigned_request_t *out, ap_error_t *error);

/* ---- Backend interface ---------------------------------------------- */

/* Returns the state of `store`'s backend when it is the one named
 * `backend_name` ("s3"), else NULL, so a backend's own calls can reach
 * it. */
void *ap_object_store_backend_state(ap_object_store_t *store,
                                    const char *backend_name);

/*
 * The operations a backend provides. `state` is the backend's own data.
 * Keys reaching a backend have passed ap_object_key_validate; prefixes
 * have passed the prefix rules of ap_object_store_list.
 */
typedef struct ap_object_store_backend {
  const char *name; /* "file", "s3" */
  ap_status_t (*stat)(void *state, const char *key, ap_object_info_t *info,
                      ap_error_t *error);
  ap_status_t (*open_read)(void *state, const char *key, ap_io_t **out,
                           ap_error_t *error);
  ap_status_t (*open_write)(void *state, const char *key,
                            const char *content_type, ap_output_t **out,
                            ap_error_t *error);
  ap_status_t (*remove)(void *state, const char *key, ap_error_t *error);
  ap_status_t (*list)(void *state, const char *prefix,
                      ap_object_list_fn callback, void *user_data,
                      ap_error_t *error);
  ap_status_t (*presign)(void *state, const char *method, const char *key,
                         const char *content_type, int64_t content_length,
                         int64_t expires_at, ap_presigned_request_t *out,
                         ap_error_t *error);
  void (*close)(void *state);
  /* As open_write, but the commit fails with AP_ERR_CONFLICT and changes
   * nothing when an object exists under `key`. NULL when the backend
   * cannot promise that. */
  ap_status_t (*open_write_exclusive)(void *state, const char *key,
                                      const char *content_type,
                                      ap_output_t **out, ap_error_t *error);
} ap_object_store_backend_t;

#endif
