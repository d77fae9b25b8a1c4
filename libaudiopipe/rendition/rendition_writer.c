/*
 * Muxer output for renditions: an AVIOContext over ap_output_t, or a
 * temporary file copied to the output at the end (see rendition_writer.h
 * for when each is used).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/error.h>
#include <libavutil/mem.h>

#include "core/error_internal.h"
#include "rendition/rendition_writer.h"

/* AVIOContext buffer and copy chunk: 64 KiB keeps the callback count low
 * without holding much memory per rendition. */
#define WRITER_BUFFER_SIZE 65536

/* The prefix FFmpeg needs to open a plain path with its file protocol,
 * whatever characters the temporary directory contains. */
#define FILE_PROTOCOL_PREFIX "file:"

static int write_to_output(void *opaque, uint8_t *data, int size) {
  ap_rendition_writer_t *writer = opaque;
  if (writer->output_failed) {
    return AVERROR(EIO);
  }
  ap_error_t error = {0};
  if (ap_output_write(writer->output, data, (size_t)size, &error) != AP_OK) {
    writer->output_failed = 1;
    writer->output_error = error;
    return AVERROR(EIO);
  }
  writer->position += size;
  if (writer->position > writer->length) {
    writer->length = writer->position;
  }
  return size;
}

static int64_t seek_output(void *opaque, int64_t offset, int whence) {
  ap_rendition_writer_t *writer = opaque;
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) {
    return writer->length;
  }
  if (writer->output_failed) {
    return AVERROR(EIO);
  }
  ap_error_t error = {0};
  int64_t moved = ap_output_seek(writer->output, offset, whence, &error);
  if (moved < 0) {
    writer->output_failed = 1;
    writer->output_error = error;
    return AVERROR(EIO);
  }
  writer->position = moved;
  return moved;
}

static ap_status_t open_direct(ap_rendition_writer_t *writer, int seekable,
                               AVFormatContext *muxer, ap_error_t *error) {
  unsigned char *buffer = av_malloc(WRITER_BUFFER_SIZE);
  if (!buffer) {
    return AP_NO_MEMORY(error);
  }
  writer->io =
      avio_alloc_context(buffer, WRITER_BUFFER_SIZE, 1, writer, NULL,
                         write_to_output, seekable ? seek_output : NULL);
  if (!writer->io) {
    av_free(buffer);
    return AP_NO_MEMORY(error);
  }
  writer->io->seekable = seekable ? AVIO_SEEKABLE_NORMAL : 0;
  muxer->pb = writer->io;
  return AP_OK;
}

/* Creates an empty file in $TMPDIR (or /tmp) and opens it with FFmpeg's
 * file protocol under a "file:" URL, which movenc can reopen by name. */
static ap_status_t open_temporary(ap_rendition_writer_t *writer,
                                  AVFormatContext *muxer, ap_error_t *error) {
  const char *directory = getenv("TMPDIR");
  if (!directory || !*directory) {
    directory = "/tmp";
  }
  size_t size = sizeof FILE_PROTOCOL_PREFIX + strlen(directory) +
                sizeof "/audiopipe-rendition-XXXXXX";
  char *url = malloc(size);
  if (!url) {
    return AP_NO_MEMORY(error);
  }
  snprintf(url, size, "%s%s/audiopipe-rendition-XXXXXX", FILE_PROTOCOL_PREFIX,
           directory);
  char *path = url + strlen(FILE_PROTOCOL_PREFIX);

  int fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0) {
    int saved = errno;
    free(url);
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                        "cannot create a temporary rendition file in \"%s\": "
                        "%s (set TMPDIR to a writable directory)",
                        directory, strerror(saved));
  }
  close(fd);
  writer->temporary_path = url;

  /* The muxer owns its url and frees it with avformat_free_context. */
  av_freep(&muxer->url);
  muxer->url = av_strdup(url);
  if (!muxer->url) {
    return AP_NO_MEMORY(error);
  }

  int result = avio_open2(&writer->io, url, AVIO_FLAG_WRITE, NULL, NULL);
  if (result < 0) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                        "cannot open the temporary rendition file \"%s\": %s",
                        path, av_err2str(result));
  }
  muxer->pb = writer->io;
  return AP_OK;
}

ap_status_t ap_rendition_writer_open(ap_rendition_writer_t *writer,
                                     ap_output_t *output,
                                     AVFormatContext *muxer, int needs_seek,
                                     int needs_file, ap_error_t *error) {
  memset(writer, 0, sizeof *writer);
  writer->output = output;

  int seekable = ap_output_is_seekable(output);
  if (needs_file || (needs_seek && !seekable)) {
    return open_temporary(writer, muxer, error);
  }
  return open_direct(writer, seekable, muxer, error);
}

/* Copies the finished temporary file to the output in fixed chunks, so
 * memory stays flat however long the rendition is. */
static ap_status_t copy_temporary(ap_rendition_writer_t *writer,
                                  ap_error_t *error) {
  const char *path = writer->temporary_path + strlen(FILE_PROTOCOL_PREFIX);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                        "cannot reopen the temporary rendition file \"%s\": "
                        "%s",
                        path, strerror(errno));
  }
  unsigned char *buffer = malloc(WRITER_BUFFER_SIZE);
  if (!buffer) {
    close(fd);
    return AP_NO_MEMORY(error);
  }

  ap_status_t status = AP_OK;
  for (;;) {
    ssize_t count = read(fd, buffer, WRITER_BUFFER_SIZE);
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count < 0) {
      status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                            "reading the temporary rendition file \"%s\" "
                            "failed: %s",
                            path, strerror(errno));
      break;
    }
    if (count == 0) {
      break;
    }
    status = ap_output_write(writer->output, buffer, (size_t)count, error);
    if (status != AP_OK) {
      break;
    }
    writer->bytes += count;
  }
  free(buffer);
  close(fd);
  return status;
}

ap_status_t ap_rendition_writer_finish(ap_rendition_writer_t *writer,
                                       AVFormatContext *muxer,
                                       ap_error_t *error) {
  if (!writer->temporary_path) {
    avio_flush(writer->io);
    if (writer->output_failed || writer->io->error < 0) {
      return ap_rendition_writer_error(writer, writer->io->error,
                                       "flushing the rendition", error);
    }
    writer->bytes = writer->length;
    return AP_OK;
  }

  muxer->pb = NULL;
  int result = avio_closep(&writer->io);
  if (result < 0) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                        "writing the temporary rendition file failed: %s",
                        av_err2str(result));
  }
  return copy_temporary(writer, error);
}

void ap_rendition_writer_close(ap_rendition_writer_t *writer,
                               AVFormatContext *muxer) {
  if (muxer && muxer->pb == writer->io) {
    muxer->pb = NULL;
  }
  if (writer->temporary_path) {
    avio_closep(&writer->io);
    unlink(writer->temporary_path + strlen(FILE_PROTOCOL_PREFIX));
    free(writer->temporary_path);
    writer->temporary_path = NULL;
  } else if (writer->io) {
    /* The context may have replaced its buffer, so free the current one. */
    av_freep(&writer->io->buffer);
    avio_context_free(&writer->io);
  }
}

ap_status_t ap_rendition_writer_error(const ap_rendition_writer_t *writer,
                                      int averror, const char *what,
                                      ap_error_t *error) {
  if (writer->output_failed) {
    if (error) {
      *error = writer->output_error;
    }
    return writer->output_error.code ? (ap_status_t)writer->output_error.code
                                     : AP_ERR_IO;
  }
  return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_ENCODE, "%s failed: %s",
                      what, av_err2str(averror));
}
