/*
 * Output streams. A file output writes to "<path>.partial-XXXXXX" and
 * renames it into place on ap_output_finish, so readers of `path` only
 * ever see complete files. A memory output grows geometrically.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <audiopipe/io.h>

#include "core/error_internal.h"

typedef enum output_kind {
  OUTPUT_FILE,
  OUTPUT_MEMORY,
  OUTPUT_CALLBACKS
} output_kind_t;

struct ap_output {
  output_kind_t kind;
  int finished;
  int failed; /* a write failed: finishing reports the first error */
  ap_error_t first_error;

  /* OUTPUT_FILE */
  int fd;
  char *path;
  char *temporary_path;

  /* OUTPUT_MEMORY: `length` is the high-water mark, `position` the
   * current offset (seeking back rewrites headers in place). */
  unsigned char *buffer;
  size_t length;
  size_t capacity;
  size_t position;

  /* OUTPUT_CALLBACKS */
  ap_output_callbacks_t callbacks;
  void *user_data;
};

ap_status_t ap_output_open_file(const char *path, ap_output_t **out,
                                ap_error_t *error) {
  if (!path || !*path || !out) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_output_open_file: path and out are required");
  }

  ap_output_t *output = calloc(1, sizeof *output);
  size_t temporary_size = strlen(path) + sizeof ".partial-XXXXXX";
  char *temporary_path = malloc(temporary_size);
  char *path_copy = strdup(path);
  if (!output || !temporary_path || !path_copy) {
    free(output);
    free(temporary_path);
    free(path_copy);
    return AP_NO_MEMORY(error);
  }
  snprintf(temporary_path, temporary_size, "%s.partial-XXXXXX", path);

  int fd = mkostemp(temporary_path, O_CLOEXEC);
  if (fd < 0) {
    int saved = errno;
    free(output);
    free(temporary_path);
    free(path_copy);
    return ap_error_set(error, AP_DOMAIN_IO,
                        saved == ENOENT ? AP_ERR_NOT_FOUND : AP_ERR_IO,
                        "cannot create output beside \"%s\": %s (does the "
                        "directory exist and is it writable?)",
                        path, strerror(saved));
  }
  /* mkostemp creates 0600; outputs are ordinary files. */
  (void)fchmod(fd, 0644);

  output->kind = OUTPUT_FILE;
  output->fd = fd;
  output->path = path_copy;
  output->temporary_path = temporary_path;
  *out = output;
  return AP_OK;
}

ap_status_t ap_output_open_memory(ap_output_t **out, ap_error_t *error) {
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_output_open_memory: out is required");
  }
  ap_output_t *output = calloc(1, sizeof *output);
  if (!output) {
    return AP_NO_MEMORY(error);
  }
  output->kind = OUTPUT_MEMORY;
  *out = output;
  return AP_OK;
}

ap_status_t ap_output_open_callbacks(const ap_output_callbacks_t *callbacks,
                                     void *user_data, ap_output_t **out,
                                     ap_error_t *error) {
  if (!callbacks || !callbacks->write || !out) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_output_open_callbacks: callbacks with a write "
                        "function and out are required");
  }
  if (callbacks->struct_size < sizeof(ap_output_callbacks_t)) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_output_open_callbacks: struct_size %zu is smaller "
                        "than sizeof(ap_output_callbacks_t) %zu",
                        callbacks->struct_size, sizeof(ap_output_callbacks_t));
  }
  ap_output_t *output = calloc(1, sizeof *output);
  if (!output) {
    return AP_NO_MEMORY(error);
  }
  output->kind = OUTPUT_CALLBACKS;
  output->callbacks = *callbacks;
  output->user_data = user_data;
  *out = output;
  return AP_OK;
}

const void *ap_output_memory_data(const ap_output_t *output, size_t *size) {
  if (!output || output->kind != OUTPUT_MEMORY) {
    if (size) {
      *size = 0;
    }
    return NULL;
  }
  if (size) {
    *size = output->length;
  }
  return output->buffer;
}

/* Remembers the first failure so ap_output_finish can report it. */
static ap_status_t record_failure(ap_output_t *output, ap_status_t status,
                                  const ap_error_t *error) {
  if (!output->failed) {
    output->failed = 1;
    if (error) {
      output->first_error = *error;
    } else {
      output->first_error.code = (uint32_t)status;
      output->first_error.domain = AP_DOMAIN_IO;
      snprintf(output->first_error.message,
               sizeof output->first_error.message, "%s",
               ap_error_code_description(status));
    }
  }
  return status;
}

static ap_status_t memory_write(ap_output_t *output, const void *data,
                                size_t size, ap_error_t *error) {
  if (size > SIZE_MAX - output->position) {
    return AP_NO_MEMORY(error);
  }
  size_t end = output->position + size;
  if (end > output->capacity) {
    size_t capacity = output->capacity ? output->capacity : 4096;
    while (capacity < end) {
      if (capacity > SIZE_MAX / 2) {
        return AP_NO_MEMORY(error);
      }
      capacity *= 2;
    }
    unsigned char *grown = realloc(output->buffer, capacity);
    if (!grown) {
      return AP_NO_MEMORY(error);
    }
    output->buffer = grown;
    output->capacity = capacity;
  }
  memcpy(output->buffer + output->position, data, size);
  output->position = end;
  if (end > output->length) {
    output->length = end;
  }
  return AP_OK;
}

ap_status_t ap_output_write(ap_output_t *output, const void *data, size_t size,
                            ap_error_t *error) {
  if (!output || (!data && size > 0)) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_output_write: output and data are required");
  }
  if (output->finished) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_output_write: the output is already finished");
  }
  if (size == 0) {
    return AP_OK;
  }

  ap_status_t status = AP_OK;
  switch (output->kind) {
  case OUTPUT_FILE: {
    const unsigned char *cursor = data;
    size_t left = size;
    while (left > 0) {
      ssize_t written = write(output->fd, cursor, left);
      if (written < 0 && errno == EINTR) {
        continue;
      }
      if (written < 0) {
        status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                              "write to \"%s\" failed: %s", output->path,
                              strerror(errno));
        break;
      }
      cursor += written;
      left -= (size_t)written;
    }
    break;
  }
  case OUTPUT_MEMORY:
    status = memory_write(output, data, size, error);
    break;
  case OUTPUT_CALLBACKS:
    if (output->callbacks.write(output->user_data, data, size, error) != 0) {
      status = AP_ERR_IO;
      if (error && error->code == 0) {
        ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO, "write callback failed");
      }
      if (error) {
        status = (ap_status_t)error->code;
      }
    }
    break;
  }

  if (status != AP_OK) {
    record_failure(output, status, error);
  }
  return status;
}

int64_t ap_output_seek(ap_output_t *output, int64_t offset, int whence,
                       ap_error_t *error) {
  if (!output || whence < AP_SEEK_SET || whence > AP_SEEK_END) {
    ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                 "ap_output_seek: invalid output or whence %d", whence);
    return -1;
  }
  if (!ap_output_is_seekable(output)) {
    ap_error_set(error, AP_DOMAIN_IO, AP_ERR_UNSUPPORTED,
                 "the output cannot seek");
    return -1;
  }

  switch (output->kind) {
  case OUTPUT_FILE: {
    off_t moved = lseek(output->fd, (off_t)offset, whence);
    if (moved < 0) {
      ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO, "seek in \"%s\" failed: %s",
                   output->path, strerror(errno));
      return -1;
    }
    return (int64_t)moved;
  }
  case OUTPUT_MEMORY: {
    int64_t base = whence == AP_SEEK_SET   ? 0
                   : whence == AP_SEEK_CUR ? (int64_t)output->position
                                           : (int64_t)output->length;
    int64_t target = base + offset;
    if (target < 0 || target > (int64_t)output->length) {
      ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                   "seek to %lld is outside the %zu bytes written",
                   (long long)target, output->length);
      return -1;
    }
    output->position = (size_t)target;
    return target;
  }
  case OUTPUT_CALLBACKS:
    return output->callbacks.seek(output->user_data, offset, whence, error);
  }
  return -1;
}

int ap_output_is_seekable(const ap_output_t *output) {
  if (!output) {
    return 0;
  }
  return output->kind != OUTPUT_CALLBACKS || output->callbacks.seek != NULL;
}

ap_status_t ap_output_finish(ap_output_t *output, ap_error_t *error) {
  if (!output) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_output_finish: output is required");
  }
  if (output->finished) {
    return AP_OK;
  }
  if (output->failed) {
    if (error) {
      *error = output->first_error;
    }
    return (ap_status_t)output->first_error.code;
  }

  ap_status_t status = AP_OK;
  switch (output->kind) {
  case OUTPUT_FILE:
    /* fsync before rename: after a crash the file is either absent or
     * complete, never a renamed empty inode. */
    if (fsync(output->fd) != 0 || close(output->fd) != 0) {
      status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                            "flushing \"%s\" failed: %s", output->path,
                            strerror(errno));
      output->fd = -1;
      break;
    }
    output->fd = -1;
    if (rename(output->temporary_path, output->path) != 0) {
      status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                            "renaming output into \"%s\" failed: %s",
                            output->path, strerror(errno));
    }
    break;
  case OUTPUT_MEMORY:
    break;
  case OUTPUT_CALLBACKS:
    if (output->callbacks.close &&
        output->callbacks.close(output->user_data, 0, error) != 0) {
      status = error && error->code ? (ap_status_t)error->code : AP_ERR_IO;
      if (error && error->code == 0) {
        ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO, "close callback failed");
      }
    }
    break;
  }

  if (status != AP_OK) {
    return record_failure(output, status, error);
  }
  output->finished = 1;
  return AP_OK;
}

void ap_output_close(ap_output_t *output) {
  if (!output) {
    return;
  }
  if (!output->finished) {
    if (output->kind == OUTPUT_FILE) {
      if (output->fd >= 0) {
        close(output->fd);
      }
      unlink(output->temporary_path);
    } else if (output->kind == OUTPUT_CALLBACKS && output->callbacks.close) {
      output->callbacks.close(output->user_data, 1, NULL);
    }
  }
  free(output->path);
  free(output->temporary_path);
  free(output->buffer);
  free(output);
}
