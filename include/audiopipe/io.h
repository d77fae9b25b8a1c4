/*
 * Byte streams. An ap_io_t is the input of every media operation: a local
 * file, a memory buffer, or callbacks the caller supplies (an HTTP range
 * reader over object storage, say), so the engine never needs a temporary
 * copy. An ap_output_t is where waveforms and renditions are written.
 *
 * Thread-safety: one stream must be used by one thread at a time. Distinct
 * streams are independent.
 */
#ifndef AUDIOPIPE_IO_H
#define AUDIOPIPE_IO_H

#include <audiopipe/common.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_io ap_io_t;

/* Origins for seek callbacks; the values equal SEEK_SET/SEEK_CUR/SEEK_END. */
#define AP_SEEK_SET 0
#define AP_SEEK_CUR 1
#define AP_SEEK_END 2

/*
 * Caller-supplied input. `read` is required. `seek` may be NULL for a
 * stream that can only be read forward (a pipe); some containers then
 * yield less exact probe data (an M4A with `moov` at the end cannot be
 * read at all). `size` may be NULL or return -1 when the length is
 * unknown. `close` may be NULL; it runs once from ap_io_close.
 */
typedef struct ap_io_callbacks {
  size_t struct_size; /* sizeof(ap_io_callbacks_t) */

  /* Reads up to `size` bytes. Returns the count read, 0 at end of
   * stream, or -1 on error (optionally describing it in `error`). */
  int64_t (*read)(void *user_data, void *buffer, size_t size,
                  ap_error_t *error);

  /* Moves to `offset` from `whence` (AP_SEEK_*). Returns the new absolute
   * position or -1 on error. */
  int64_t (*seek)(void *user_data, int64_t offset, int whence,
                  ap_error_t *error);

  /* Returns the total length in bytes, or -1 if unknown. */
  int64_t (*size)(void *user_data);

  void (*close)(void *user_data);
} ap_io_callbacks_t;

/* Opens a local file for reading. `path` is a filesystem path. */
AP_EXPORT ap_status_t ap_io_open_file(const char *path, ap_io_t **out,
                                      ap_error_t *error);

/*
 * Wraps `size` bytes at `data` without copying them. The caller keeps
 * ownership and must keep the bytes alive until ap_io_close.
 */
AP_EXPORT ap_status_t ap_io_open_memory(const void *data, size_t size,
                                        ap_io_t **out, ap_error_t *error);

/* Wraps caller callbacks. `callbacks` is copied; `user_data` is not. */
AP_EXPORT ap_status_t ap_io_open_callbacks(const ap_io_callbacks_t *callbacks,
                                           void *user_data, ap_io_t **out,
                                           ap_error_t *error);

/* Reads up to `size` bytes; returns the count, 0 at end, -1 on error. */
AP_EXPORT int64_t ap_io_read(ap_io_t *io, void *buffer, size_t size,
                             ap_error_t *error);

/* Seeks; returns the new position or -1 (AP_ERR_UNSUPPORTED if the
 * stream cannot seek). */
AP_EXPORT int64_t ap_io_seek(ap_io_t *io, int64_t offset, int whence,
                             ap_error_t *error);

/* Returns the current position in bytes. */
AP_EXPORT int64_t ap_io_tell(const ap_io_t *io);

/* Returns the total length in bytes, or -1 if unknown. */
AP_EXPORT int64_t ap_io_size(ap_io_t *io);

/* Returns 1 if the stream supports seeking, 0 if it is forward-only. */
AP_EXPORT int ap_io_is_seekable(const ap_io_t *io);

/* Closes the stream and runs its close callback. NULL is allowed. */
AP_EXPORT void ap_io_close(ap_io_t *io);

typedef struct ap_output ap_output_t;

/*
 * Caller-supplied output. `write` is required and must write all `size`
 * bytes or fail. `seek` may be NULL; formats that must rewrite their header
 * (WAV sizes, M4A with `moov` first) then go through a temporary file in
 * the system temporary directory before reaching `write`.
 */
typedef struct ap_output_callbacks {
  size_t struct_size; /* sizeof(ap_output_callbacks_t) */
  int (*write)(void *user_data, const void *data, size_t size,
               ap_error_t *error); /* 0 on success, -1 on error */
  int64_t (*seek)(void *user_data, int64_t offset, int whence,
                  ap_error_t *error);
  /* Called once when the output is finished (`failed` is 0) or abandoned
   * (`failed` is 1, so a partial object can be discarded). Returns 0 or -1. */
  int (*close)(void *user_data, int failed, ap_error_t *error);
} ap_output_callbacks_t;

/*
 * Creates or truncates a local file. The data is written to a temporary
 * name beside it and renamed into place when the output finishes, so a
 * failed operation never leaves a partial file under `path`.
 */
AP_EXPORT ap_status_t ap_output_open_file(const char *path, ap_output_t **out,
                                          ap_error_t *error);

/* Collects the output in a growable memory buffer; read it with
 * ap_output_memory_data after the operation finishes. */
AP_EXPORT ap_status_t ap_output_open_memory(ap_output_t **out,
                                            ap_error_t *error);

/* Wraps caller callbacks. */
AP_EXPORT ap_status_t ap_output_open_callbacks(
    const ap_output_callbacks_t *callbacks, void *user_data, ap_output_t **out,
    ap_error_t *error);

/*
 * For a memory output: returns the bytes written so far and stores their
 * count in `size`. The buffer belongs to the output and lives until
 * ap_output_close. NULL for other outputs.
 */
AP_EXPORT const void *ap_output_memory_data(const ap_output_t *output,
                                            size_t *size);

/* Writes all `size` bytes. Returns AP_OK or an error. */
AP_EXPORT ap_status_t ap_output_write(ap_output_t *output, const void *data,
                                      size_t size, ap_error_t *error);

/* Seeks within the output; AP_ERR_UNSUPPORTED when it cannot seek. */
AP_EXPORT int64_t ap_output_seek(ap_output_t *output, int64_t offset,
                                 int whence, ap_error_t *error);

/* Returns 1 if the output supports seeking, 0 otherwise. */
AP_EXPORT int ap_output_is_seekable(const ap_output_t *output);

/*
 * Marks the output complete: a file output is renamed into place, a
 * callback output gets close(failed = 0). Returns the first error the
 * output met. An output that is closed without ap_output_finish is
 * abandoned (partial files removed, close(failed = 1)).
 */
AP_EXPORT ap_status_t ap_output_finish(ap_output_t *output, ap_error_t *error);

/* Releases the output; abandons it if it was not finished. NULL allowed. */
AP_EXPORT void ap_output_close(ap_output_t *output);

#ifdef __cplusplus
}
#endif

#endif
