/*
 * Input streams: one small vtable over three kinds of source (a local
 * file descriptor, a borrowed memory buffer, caller callbacks), with the
 * position tracked here so every kind reports ap_io_tell the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <audiopipe/io.h>

#include "core/error_internal.h"

typedef enum input_kind { INPUT_FILE, INPUT_MEMORY, INPUT_CALLBACKS } input_kind_t;

struct ap_io {
  input_kind_t kind;
  int64_t position;

  /* INPUT_FILE */
  int fd;
  int64_t file_size; /* -1 for pipes and other unsized files */
  int file_seekable;

  /* INPUT_MEMORY */
  const unsigned char *data;
  size_t data_size;

  /* INPUT_CALLBACKS */
  ap_io_callbacks_t callbacks;
  void *user_data;
};

ap_status_t ap_io_open_file(const char *path, ap_io_t **out,
                            ap_error_t *error) {
  if (!path || !out) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_io_open_file: path and out are required");
  }

  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int code = errno == ENOENT ? AP_ERR_NOT_FOUND
               : errno == EACCES ? AP_ERR_PERMISSION
                                 : AP_ERR_IO;
    return ap_error_set(error, AP_DOMAIN_IO, (ap_error_code_t)code,
                        "cannot open \"%s\": %s", path, strerror(errno));
  }

  struct stat info;
  if (fstat(fd, &info) != 0) {
    int saved = errno;
    close(fd);
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO, "cannot stat \"%s\": %s",
                        path, strerror(saved));
  }
  if (S_ISDIR(info.st_mode)) {
    close(fd);
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "\"%s\" is a directory: pass an audio file", path);
  }

  ap_io_t *io = calloc(1, sizeof *io);
  if (!io) {
    close(fd);
    return AP_NO_MEMORY(error);
  }
  io->kind = INPUT_FILE;
  io->fd = fd;
  io->file_seekable = S_ISREG(info.st_mode) || S_ISBLK(info.st_mode);
  io->file_size = S_ISREG(info.st_mode) ? (int64_t)info.st_size : -1;
  if (io->file_seekable) {
    off_t start = lseek(fd, 0, SEEK_CUR);
    io->position = start > 0 ? (int64_t)start : 0;
  }
  *out = io;
  return AP_OK;
}

ap_status_t ap_io_open_memory(const void *data, size_t size, ap_io_t **out,
                              ap_error_t *error) {
  if ((!data && size > 0) || !out) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_io_open_memory: data (when size > 0) and out are "
                        "required");
  }
  ap_io_t *io = calloc(1, sizeof *io);
  if (!io) {
    return AP_NO_MEMORY(error);
  }
  io->kind = INPUT_MEMORY;
  io->data = data;
  io->data_size = size;
  *out = io;
  return AP_OK;
}

ap_status_t ap_io_open_callbacks(const ap_io_callbacks_t *callbacks,
                                 void *user_data, ap_io_t **out,
                                 ap_error_t *error) {
  if (!callbacks || !out || !callbacks->read) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_io_open_callbacks: callbacks with a read function "
                        "and out are required");
  }
  if (callbacks->struct_size < sizeof(ap_io_callbacks_t)) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "ap_io_open_callbacks: struct_size %zu is smaller than "
                        "sizeof(ap_io_callbacks_t) %zu: set it with sizeof",
                        callbacks->struct_size, sizeof(ap_io_callbacks_t));
  }
  ap_io_t *io = calloc(1, sizeof *io);
  if (!io) {
    return AP_NO_MEMORY(error);
  }
  io->kind = INPUT_CALLBACKS;
  io->callbacks = *callbacks;
  io->user_data = user_data;
  *out = io;
  return AP_OK;
}

int64_t ap_io_read(ap_io_t *io, void *buffer, size_t size, ap_error_t *error) {
  if (!io || (!buffer && size > 0)) {
    ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                 "ap_io_read: io and buffer are required");
    return -1;
  }
  if (size == 0) {
    return 0;
  }

  int64_t count = -1;
  switch (io->kind) {
  case INPUT_FILE: {
    ssize_t got;
    do {
      got = read(io->fd, buffer, size);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
      ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO, "read failed: %s",
                   strerror(errno));
      return -1;
    }
    count = got;
    break;
  }
  case INPUT_MEMORY: {
    size_t offset = (size_t)io->position;
    size_t left = offset < io->data_size ? io->data_size - offset : 0;
    size_t take = size < left ? size : left;
    if (take > 0) {
      memcpy(buffer, io->data + offset, take);
    }
    count = (int64_t)take;
    break;
  }
  case INPUT_CALLBACKS:
    count = io->callbacks.read(io->user_data, buffer, size, error);
    if (count < 0) {
      if (error && error->code == 0) {
        ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                     "read callback failed at byte %lld",
                     (long long)io->position);
      }
      return -1;
    }
    if ((size_t)count > size) {
      ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INTERNAL,
                   "read callback returned %lld bytes for a %zu-byte buffer",
                   (long long)count, size);
      return -1;
    }
    break;
  }

  io->position += count;
  return count;
}

int64_t ap_io_seek(ap_io_t *io, int64_t offset, int whence,
                   ap_error_t *error) {
  if (!io || whence < AP_SEEK_SET || whence > AP_SEEK_END) {
    ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                 "ap_io_seek: invalid stream or whence %d", whence);
    return -1;
  }
  if (!ap_io_is_seekable(io)) {
    ap_error_set(error, AP_DOMAIN_IO, AP_ERR_UNSUPPORTED,
                 "the input cannot seek (a pipe or forward-only stream)");
    return -1;
  }

  int64_t target = -1;
  switch (io->kind) {
  case INPUT_FILE: {
    off_t moved = lseek(io->fd, (off_t)offset, whence);
    if (moved < 0) {
      ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO, "seek to %lld failed: %s",
                   (long long)offset, strerror(errno));
      return -1;
    }
    target = (int64_t)moved;
    break;
  }
  case INPUT_MEMORY: {
    int64_t base = whence == AP_SEEK_SET   ? 0
                   : whence == AP_SEEK_CUR ? io->position
                                           : (int64_t)io->data_size;
    if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0) {
      ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                   "seek to offset %lld from %lld is out of range",
                   (long long)offset, (long long)base);
      return -1;
    }
    target = base + offset;
    break;
  }
  case INPUT_CALLBACKS:
    target = io->callbacks.seek(io->user_data, offset, whence, error);
    if (target < 0) {
      if (error && error->code == 0) {
        ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                     "seek callback failed for offset %lld",
                     (long long)offset);
      }
      return -1;
    }
    break;
  }

  io->position = target;
  return target;
}

int64_t ap_io_tell(const ap_io_t *io) { return io ? io->position : -1; }

int64_t ap_io_size(ap_io_t *io) {
  if (!io) {
    return -1;
  }
  switch (io->kind) {
  case INPUT_FILE:
    return io->file_size;
  case INPUT_MEMORY:
    return (int64_t)io->data_size;
  case INPUT_CALLBACKS:
    return io->callbacks.size ? io->callbacks.size(io->user_data) : -1;
  }
  return -1;
}

int ap_io_is_seekable(const ap_io_t *io) {
  if (!io) {
    return 0;
  }
  switch (io->kind) {
  case INPUT_FILE:
    return io->file_seekable;
  case INPUT_MEMORY:
    return 1;
  case INPUT_CALLBACKS:
    return io->callbacks.seek != NULL;
  }
  return 0;
}

void ap_io_close(ap_io_t *io) {
  if (!io) {
    return;
  }
  if (io->kind == INPUT_FILE) {
    close(io->fd);
  } else if (io->kind == INPUT_CALLBACKS && io->callbacks.close) {
    io->callbacks.close(io->user_data);
  }
  free(io);
}
