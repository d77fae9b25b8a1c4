/*
 * The byte source and its AVIOContext: reads, seeks and AVSEEK_SIZE for
 * libavformat, served from the kept head or from the ap_io_t.
 */
#include <stdlib.h>
#include <string.h>

#include <libavutil/error.h>
#include <libavutil/mem.h>

#include "core/error_internal.h"
#include "probe/avio_bridge.h"

/* The AVIOContext's own buffer. 64 KiB keeps the read calls on object
 * storage inputs few without holding much memory. */
#define AVIO_BUFFER_BYTES (64 * 1024)

typedef struct avio_state {
  ap_byte_source_t *source;
  int64_t position;
} avio_state_t;

/* Reads from the ap_io_t until `size` bytes or the end of the input. */
static int64_t read_fully(ap_byte_source_t *source, unsigned char *buffer,
                          size_t size, ap_error_t *error) {
  size_t total = 0;
  while (total < size) {
    int64_t got = ap_io_read(source->io, buffer + total, size - total, error);
    if (got < 0) {
      return -1;
    }
    if (got == 0) {
      break;
    }
    total += (size_t)got;
  }
  source->io_offset += (int64_t)total;
  return (int64_t)total;
}

ap_status_t ap_byte_source_open(ap_byte_source_t *source, ap_io_t *io,
                                int64_t max_bytes, ap_error_t *error) {
  memset(source, 0, sizeof *source);
  source->io = io;
  source->start = ap_io_tell(io);
  source->seekable = ap_io_is_seekable(io);
  source->max_bytes = max_bytes;
  int64_t total = ap_io_size(io);
  source->size =
      total >= 0 && total >= source->start ? total - source->start : -1;

  source->head = malloc(AP_BYTE_SOURCE_HEAD_BYTES);
  if (!source->head) {
    return AP_NO_MEMORY(error);
  }
  int64_t got =
      read_fully(source, source->head, AP_BYTE_SOURCE_HEAD_BYTES, error);
  if (got < 0) {
    ap_byte_source_close(source);
    return error ? (ap_status_t)error->code : AP_ERR_IO;
  }
  source->head_size = (size_t)got;

  /* A short head is the whole input, whatever the size callback returned. */
  if (source->head_size < AP_BYTE_SOURCE_HEAD_BYTES) {
    source->size = (int64_t)source->head_size;
  }
  return AP_OK;
}

ap_status_t ap_byte_source_extend_head(ap_byte_source_t *source, size_t size,
                                       ap_error_t *error) {
  if (size > AP_BYTE_SOURCE_MAX_HEAD_BYTES) {
    size = AP_BYTE_SOURCE_MAX_HEAD_BYTES;
  }
  if (size <= source->head_size ||
      source->head_size < AP_BYTE_SOURCE_HEAD_BYTES) {
    return AP_OK; /* already long enough, or the head is the whole input */
  }
  if (source->io_offset != (int64_t)source->head_size) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INTERNAL,
                        "the head cannot grow after reads past it");
  }
  unsigned char *grown = realloc(source->head, size);
  if (!grown) {
    return AP_NO_MEMORY(error);
  }
  source->head = grown;
  int64_t got = read_fully(source, grown + source->head_size,
                           size - source->head_size, error);
  if (got < 0) {
    return error ? (ap_status_t)error->code : AP_ERR_IO;
  }
  source->head_size += (size_t)got;
  if (source->head_size < size) {
    source->size = (int64_t)source->head_size;
  }
  if (source->max_bytes > 0 && (int64_t)source->head_size > source->max_bytes) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INPUT_TOO_LARGE,
                        "input is larger than %lld bytes "
                        "(limits.max_input_bytes): raise the limit or reject "
                        "the upload",
                        (long long)source->max_bytes);
  }
  return AP_OK;
}

int64_t ap_byte_source_read_to_end(ap_byte_source_t *source,
                                   ap_error_t *error) {
  if (source->head_size < AP_BYTE_SOURCE_HEAD_BYTES) {
    return (int64_t)source->head_size;
  }
  unsigned char *buffer = malloc(64 * 1024);
  if (!buffer) {
    AP_NO_MEMORY(error);
    return -1;
  }
  int64_t offset = source->io_offset > (int64_t)source->head_size
                       ? source->io_offset
                       : (int64_t)source->head_size;
  for (;;) {
    int64_t got =
        ap_byte_source_read_at(source, offset, buffer, 64 * 1024, error);
    if (got < 0) {
      free(buffer);
      return -1;
    }
    if (got == 0) {
      break;
    }
    offset += got;
  }
  free(buffer);
  source->size = offset;
  return offset;
}

void ap_byte_source_close(ap_byte_source_t *source) {
  free(source->head);
  source->head = NULL;
  source->head_size = 0;
}

int64_t ap_byte_source_read_at(ap_byte_source_t *source, int64_t offset,
                               void *buffer, size_t size, ap_error_t *error) {
  unsigned char *out = buffer;
  size_t done = 0;
  if (offset < 0) {
    ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                 "read at negative offset %lld", (long long)offset);
    return -1;
  }

  if ((uint64_t)offset < source->head_size) {
    size_t available = source->head_size - (size_t)offset;
    done = size < available ? size : available;
    memcpy(out, source->head + offset, done);
  }
  if (done == size || source->head_size < AP_BYTE_SOURCE_HEAD_BYTES) {
    return (int64_t)done;
  }

  int64_t next = offset + (int64_t)done;
  if (next != source->io_offset) {
    if (!source->seekable) {
      ap_error_set(error, AP_DOMAIN_IO, AP_ERR_UNSUPPORTED,
                   "forward-only input cannot move from byte %lld to %lld",
                   (long long)source->io_offset, (long long)next);
      return -1;
    }
    if (ap_io_seek(source->io, source->start + next, AP_SEEK_SET, error) < 0) {
      return -1;
    }
    source->io_offset = next;
  }

  int64_t got = read_fully(source, out + done, size - done, error);
  if (got < 0) {
    return -1;
  }
  done += (size_t)got;
  if (source->max_bytes > 0 && offset + (int64_t)done > source->max_bytes) {
    ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INPUT_TOO_LARGE,
                 "input is larger than %lld bytes (limits.max_input_bytes): "
                 "raise the limit or reject the upload",
                 (long long)source->max_bytes);
    return -1;
  }
  return (int64_t)done;
}

ap_status_t ap_byte_source_rewind(ap_byte_source_t *source, ap_error_t *error) {
  if (!source->seekable && source->io_offset > (int64_t)source->head_size) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_UNSUPPORTED,
                        "forward-only input cannot be read a second time: "
                        "pass a seekable input for two-pass processing");
  }
  return AP_OK; /* read_at seeks on demand */
}

/* Remembers the first failure so the caller can report it in full. */
static void record_failure(ap_byte_source_t *source, const ap_error_t *error) {
  if (source->failure == AP_OK) {
    source->failure = error->code ? (ap_status_t)error->code : AP_ERR_IO;
    source->failure_error = *error;
  }
}

static int bridge_read(void *opaque, uint8_t *buffer, int size) {
  avio_state_t *state = opaque;
  ap_error_t error = {0};
  int64_t got = ap_byte_source_read_at(state->source, state->position, buffer,
                                       (size_t)size, &error);
  if (got < 0) {
    record_failure(state->source, &error);
    return AVERROR(EIO);
  }
  if (got == 0) {
    return AVERROR_EOF;
  }
  state->position += got;
  return (int)got;
}

static int64_t bridge_seek(void *opaque, int64_t offset, int whence) {
  avio_state_t *state = opaque;
  int64_t size = state->source->size;
  if (whence & AVSEEK_SIZE) {
    return size >= 0 ? size : AVERROR(ENOSYS);
  }
  int64_t target;
  switch (whence & ~AVSEEK_FORCE) {
  case SEEK_SET:
    target = offset;
    break;
  case SEEK_CUR:
    target = state->position + offset;
    break;
  case SEEK_END:
    if (size < 0) {
      return AVERROR(ENOSYS);
    }
    target = size + offset;
    break;
  default:
    return AVERROR(EINVAL);
  }
  if (target < 0) {
    return AVERROR(EINVAL);
  }
  state->position = target;
  return target;
}

AVIOContext *ap_avio_open(ap_byte_source_t *source) {
  avio_state_t *state = av_mallocz(sizeof *state);
  unsigned char *buffer = av_malloc(AVIO_BUFFER_BYTES);
  if (!state || !buffer) {
    av_free(state);
    av_free(buffer);
    return NULL;
  }
  state->source = source;
  AVIOContext *context =
      avio_alloc_context(buffer, AVIO_BUFFER_BYTES, 0, state, bridge_read, NULL,
                         source->seekable ? bridge_seek : NULL);
  if (!context) {
    av_free(state);
    av_free(buffer);
    return NULL;
  }
  return context;
}

int64_t ap_avio_position(const AVIOContext *context) {
  const avio_state_t *state = context->opaque;
  return state->position;
}

void ap_avio_close(AVIOContext **context) {
  if (!context || !*context) {
    return;
  }
  av_freep(&(*context)->opaque);
  av_freep(&(*context)->buffer);
  avio_context_free(context);
}
