/*
 * A byte source over an ap_io_t, and an FFmpeg AVIOContext that reads
 * through it, so libavformat reads any input (file, memory, callbacks)
 * without a temporary copy.
 *
 * Offsets here are logical: 0 is the position the ap_io_t had when the
 * source was opened. The first bytes are kept in `head`, so a
 * forward-only input can be sniffed and its headers parsed and then still
 * be read from offset 0 by libavformat.
 */
#ifndef AP_PROBE_AVIO_BRIDGE_H
#define AP_PROBE_AVIO_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include <libavformat/avio.h>

#include <audiopipe/io.h>

/* Bytes read at open for sniffing and header parsing. */
#define AP_BYTE_SOURCE_HEAD_BYTES (64 * 1024)

typedef struct ap_byte_source {
  ap_io_t *io;   /* borrowed */
  int64_t start; /* ap_io_tell at open */
  int64_t size;  /* bytes from `start` to the end, -1 when unknown */
  int seekable;
  unsigned char *head; /* owned: the first `head_size` bytes */
  size_t head_size;
  int64_t io_offset; /* logical offset of the ap_io_t's position */

  /* AP_ERR_INPUT_TOO_LARGE once a read passes this offset (0: no limit).
   * Needed for inputs whose size is unknown until they end. */
  int64_t max_bytes;

  /* The first failure met inside an FFmpeg callback, which can only
   * return an AVERROR; the caller reports it after FFmpeg gives up. */
  ap_status_t failure;
  ap_error_t failure_error;
} ap_byte_source_t;

/* Opens a source at the current position of `io` and reads its head.
 * On failure nothing needs to be released. */
ap_status_t ap_byte_source_open(ap_byte_source_t *source, ap_io_t *io,
                                int64_t max_bytes, ap_error_t *error);

/* The head of a forward-only input may grow to this size so a header
 * parser can see past a large leading tag (ID3v2 cover art). */
#define AP_BYTE_SOURCE_MAX_HEAD_BYTES (16 * 1024 * 1024)

/*
 * Grows the head to `size` bytes (at most AP_BYTE_SOURCE_MAX_HEAD_BYTES)
 * by reading on. Allowed only before anything beyond the head was read.
 */
ap_status_t ap_byte_source_extend_head(ap_byte_source_t *source, size_t size,
                                       ap_error_t *error);

/*
 * Reads on from the furthest offset read so far to the end of the input,
 * discarding the bytes, and returns the input's length, or -1 with
 * `error` set. Works on forward-only inputs; afterwards they cannot be
 * read again.
 */
int64_t ap_byte_source_read_to_end(ap_byte_source_t *source, ap_error_t *error);

/* Releases the head; does not close the ap_io_t. */
void ap_byte_source_close(ap_byte_source_t *source);

/*
 * Reads up to `size` bytes at logical `offset`. Returns the count (short
 * only at the end of the input) or -1 with `error` set. A forward-only
 * input can be read inside the head and, beyond it, only sequentially.
 */
int64_t ap_byte_source_read_at(ap_byte_source_t *source, int64_t offset,
                               void *buffer, size_t size, ap_error_t *error);

/*
 * Moves a seekable source back to offset 0. Forward-only sources fail
 * with AP_ERR_UNSUPPORTED unless nothing beyond the head was read yet.
 */
ap_status_t ap_byte_source_rewind(ap_byte_source_t *source, ap_error_t *error);

/*
 * Creates an AVIOContext that reads `source` from offset 0. The context seeks
 * (and returns the size for AVSEEK_SIZE) only when the source is seekable.
 * Release it with ap_avio_close. NULL when out of memory.
 */
AVIOContext *ap_avio_open(ap_byte_source_t *source);

/* Returns the logical offset the context has read up to. */
int64_t ap_avio_position(const AVIOContext *context);

void ap_avio_close(AVIOContext **context);

#endif
