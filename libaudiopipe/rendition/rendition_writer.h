/*
 * Where a rendition muxer writes its bytes: an AVIOContext directly over
 * the ap_output_t, or a temporary file in the system temporary directory
 * that is copied to the output once the muxer has finished. The
 * temporary file serves muxers that seek back to rewrite a header when
 * the output cannot seek. M4A always uses it, because FFmpeg's movenc
 * moves `moov` before `mdat` ("+faststart") by reopening its file by
 * name, which a custom AVIOContext cannot offer.
 */
#ifndef AP_RENDITION_WRITER_H
#define AP_RENDITION_WRITER_H

#include <stdint.h>

#include <libavformat/avformat.h>

#include <audiopipe/error.h>
#include <audiopipe/io.h>

typedef struct ap_rendition_writer {
  ap_output_t *output;  /* borrowed */
  AVIOContext *io;      /* the muxer's pb */
  char *temporary_path; /* NULL when writing straight to `output` */

  /* Direct writing: the current offset and the high-water mark, which is
   * the file's length after header rewrites. */
  int64_t position;
  int64_t length;

  /* The first error the output reported, so the caller sees the output's
   * own message instead of FFmpeg's EIO. */
  int output_failed;
  ap_error_t output_error;

  int64_t bytes; /* bytes delivered to `output`, set by finish */
} ap_rendition_writer_t;

/*
 * Attaches a writer to `muxer` (sets muxer->pb, and muxer->url for the
 * temporary file). `needs_seek` is non-zero when the muxer rewrites its
 * header at the end, and `needs_file` forces the temporary file. Call before
 * avformat_write_header.
 */
ap_status_t ap_rendition_writer_open(ap_rendition_writer_t *writer,
                                     ap_output_t *output,
                                     AVFormatContext *muxer, int needs_seek,
                                     int needs_file, ap_error_t *error);

/*
 * Completes the bytes after av_write_trailer: flushes the direct
 * AVIOContext, or closes the temporary file and copies it to the output.
 * Stores the total in writer->bytes.
 */
ap_status_t ap_rendition_writer_finish(ap_rendition_writer_t *writer,
                                       AVFormatContext *muxer,
                                       ap_error_t *error);

/* Releases the AVIOContext and removes the temporary file, if any. Safe to
 * call after a failure, after finish, and more than once. */
void ap_rendition_writer_close(ap_rendition_writer_t *writer,
                               AVFormatContext *muxer);

/*
 * Describes a failed FFmpeg call in `error`: the output's own error when
 * the output failed underneath the muxer, otherwise AP_ERR_ENCODE with
 * `what` and FFmpeg's message for `averror`.
 */
ap_status_t ap_rendition_writer_error(const ap_rendition_writer_t *writer,
                                      int averror, const char *what,
                                      ap_error_t *error);

#endif
