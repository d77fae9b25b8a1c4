/*
 * Container header parsers: the RIFF/RF64/BW64 and AIFF chunk walkers,
 * the MPEG audio VBR/LAME header reader and frame scanner, and FLAC
 * STREAMINFO.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "probe/container_headers.h"

/* Chunk walks stop after this many chunks, so a file of empty chunks
 * cannot keep the walker busy. */
#define MAX_CHUNKS 4096

static uint32_t read_le32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

static uint16_t read_le16(const unsigned char *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint64_t read_le64(const unsigned char *p) {
  return (uint64_t)read_le32(p) | ((uint64_t)read_le32(p + 4) << 32);
}

static uint32_t read_be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint16_t read_be16(const unsigned char *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

/* Reads exactly `size` bytes at `offset`: 1 when all were read, 0 at the
 * end of the input, -1 on a read error. */
static int read_exact(ap_byte_source_t *source, int64_t offset, void *buffer,
                      size_t size, ap_error_t *error) {
  int64_t got = ap_byte_source_read_at(source, offset, buffer, size, error);
  if (got < 0) {
    return -1;
  }
  return (size_t)got == size;
}

/* A read past the head of a forward-only input is not an error for a
 * header parser: the header is then taken as ending there. */
static int read_header_bytes(ap_byte_source_t *source, int64_t offset,
                             void *buffer, size_t size, ap_error_t *error) {
  if (!source->seekable &&
      offset + (int64_t)size > (int64_t)source->head_size) {
    return 0;
  }
  return read_exact(source, offset, buffer, size, error);
}

/* Moves `*offset` past a chunk body of `size` bytes at `body` and its pad
 * byte. Returns 0 when the walk must stop: the size runs past the end of
 * the input, or would overflow an int64_t (RF64 sizes are 64-bit). */
static int next_chunk(const ap_byte_source_t *source, int64_t body,
                      uint64_t size, int64_t *offset) {
  if (size > (uint64_t)(INT64_MAX - 1 - body)) {
    return 0;
  }
  *offset = body + (int64_t)size + (int64_t)(size & 1);
  return source->size < 0 || *offset < source->size;
}

static void parse_wave_format(const unsigned char *fmt, uint32_t size,
                              ap_pcm_header_t *header) {
  header->format_tag = read_le16(fmt);
  header->channels = read_le16(fmt + 2);
  header->sample_rate = read_le32(fmt + 4);
  header->block_align = read_le16(fmt + 12);
  header->bits_per_sample = size >= 16 ? read_le16(fmt + 14) : 0;
  header->valid_bits = header->bits_per_sample;
  if (header->format_tag == AP_WAVE_FORMAT_EXTENSIBLE && size >= 40 &&
      read_le16(fmt + 16) >= 22) {
    int valid = read_le16(fmt + 18);
    if (valid > 0 && valid <= header->bits_per_sample) {
      header->valid_bits = valid;
    }
    header->channel_mask = read_le32(fmt + 20);
    /* The SubFormat GUID starts with the plain format tag. */
    header->format_tag = read_le16(fmt + 24);
  }
  header->is_pcm = header->format_tag == AP_WAVE_FORMAT_PCM ||
                   header->format_tag == AP_WAVE_FORMAT_IEEE_FLOAT ||
                   header->format_tag == AP_WAVE_FORMAT_ALAW ||
                   header->format_tag == AP_WAVE_FORMAT_MULAW;

  /* FFmpeg's PCM decoders size a frame as channels x whole bytes per
   * sample and ignore nBlockAlign, so a header whose nBlockAlign
   * disagrees would give a duration the decode never matches. */
  if (header->is_pcm && header->bits_per_sample > 0) {
    header->block_align =
        header->channels * ((header->bits_per_sample + 7) / 8);
  }
}

/* Fills present_bytes, frames and truncated from the data chunk's
 * declared size and the input's length. */
static void settle_data_size(ap_byte_source_t *source,
                             ap_pcm_header_t *header) {
  if (header->data_offset < 0) {
    return;
  }
  if (source->size >= 0) {
    int64_t present = source->size - header->data_offset;
    present = present > 0 ? present : 0;
    if (header->declared_bytes >= 0 && header->declared_bytes < present) {
      present = header->declared_bytes;
    }
    header->present_bytes = present;
    header->truncated =
        header->declared_bytes >= 0 && header->declared_bytes > present;
  } else if (header->declared_bytes >= 0) {
    /* Size unknown (a pipe): trust the header until the decoder counts. */
    header->present_bytes = header->declared_bytes;
  }
  if (header->is_pcm && header->block_align > 0) {
    if (header->present_bytes >= 0) {
      header->frames = header->present_bytes / header->block_align;
    }
    if (header->declared_bytes >= 0 && header->declared_frames < 0) {
      header->declared_frames = header->declared_bytes / header->block_align;
    }
  }
}

static ap_status_t parse_riff(ap_byte_source_t *source,
                              const unsigned char *start,
                              ap_pcm_header_t *header, ap_error_t *error) {
  int rf64 = memcmp(start, "RIFF", 4) != 0;
  header->container = memcmp(start, "RIFF", 4) == 0   ? "wav"
                      : memcmp(start, "RF64", 4) == 0 ? "rf64"
                                                      : "bw64";
  uint64_t ds64_data_bytes = 0;
  int have_ds64 = 0;
  int have_format = 0;

  int64_t offset = 12;
  for (int chunk = 0; chunk < MAX_CHUNKS; chunk++) {
    unsigned char chunk_header[8];
    int got = read_header_bytes(source, offset, chunk_header, 8, error);
    if (got < 0) {
      return (ap_status_t)error->code;
    }
    if (got == 0) {
      break;
    }
    uint32_t size = read_le32(chunk_header + 4);
    int64_t body = offset + 8;

    if (memcmp(chunk_header, "ds64", 4) == 0 && rf64 && size >= 24) {
      unsigned char ds64[24];
      got = read_header_bytes(source, body, ds64, sizeof ds64, error);
      if (got < 0) {
        return (ap_status_t)error->code;
      }
      if (got == 1) {
        ds64_data_bytes = read_le64(ds64 + 8);
        have_ds64 = 1;
      }
    } else if (memcmp(chunk_header, "fmt ", 4) == 0 && size >= 14) {
      unsigned char fmt[40] = {0};
      uint32_t take = size < sizeof fmt ? size : (uint32_t)sizeof fmt;
      got = read_header_bytes(source, body, fmt, take, error);
      if (got < 0) {
        return (ap_status_t)error->code;
      }
      if (got == 1) {
        parse_wave_format(fmt, take, header);
        have_format = 1;
      }
    } else if (memcmp(chunk_header, "data", 4) == 0) {
      header->data_offset = body;
      if (rf64 && size == 0xFFFFFFFFu && have_ds64 &&
          ds64_data_bytes <= INT64_MAX) {
        header->declared_bytes = (int64_t)ds64_data_bytes;
      } else if (size == 0xFFFFFFFFu || size == 0) {
        /* Streaming writers leave the size unset: the data runs to the
         * end of the input. */
        header->declared_bytes = -1;
        break;
      } else {
        header->declared_bytes = size;
      }
      if (have_format ||
          !next_chunk(source, body, (uint64_t)header->declared_bytes,
                      &offset)) {
        break; /* everything needed is known, or no chunk can follow */
      }
      continue;
    }

    /* Odd-sized chunks are followed by one pad byte. */
    if (!next_chunk(source, body, size, &offset)) {
      break;
    }
  }

  header->found = have_format;
  settle_data_size(source, header);
  return AP_OK;
}

/* Converts the 80-bit IEEE 754 extended value AIFF uses for its rate. */
static double read_extended(const unsigned char *p) {
  int exponent = ((p[0] & 0x7F) << 8) | p[1];
  uint64_t mantissa = 0;
  for (int i = 2; i < 10; i++) {
    mantissa = (mantissa << 8) | p[i];
  }
  if (exponent == 0 && mantissa == 0) {
    return 0.0;
  }
  double value = ldexp((double)mantissa, exponent - 16383 - 63);
  return (p[0] & 0x80) ? -value : value;
}

static ap_status_t parse_aiff(ap_byte_source_t *source,
                              const unsigned char *start,
                              ap_pcm_header_t *header, ap_error_t *error) {
  int aifc = memcmp(start + 8, "AIFC", 4) == 0;
  int have_common = 0;
  header->container = "aiff";

  int64_t offset = 12;
  for (int chunk = 0; chunk < MAX_CHUNKS; chunk++) {
    unsigned char chunk_header[8];
    int got = read_header_bytes(source, offset, chunk_header, 8, error);
    if (got < 0) {
      return (ap_status_t)error->code;
    }
    if (got == 0) {
      break;
    }
    uint32_t size = read_be32(chunk_header + 4);
    int64_t body = offset + 8;

    if (memcmp(chunk_header, "COMM", 4) == 0 && size >= 18) {
      unsigned char common[22] = {0};
      uint32_t take = aifc && size >= 22 ? 22 : 18;
      got = read_header_bytes(source, body, common, take, error);
      if (got < 0) {
        return (ap_status_t)error->code;
      }
      if (got == 1) {
        header->channels = read_be16(common);
        header->declared_frames = read_be32(common + 2);
        header->bits_per_sample = read_be16(common + 6);
        header->valid_bits = header->bits_per_sample;
        double rate = read_extended(common + 8);
        /* NaN and non-positive rates become 0; huge ones saturate. */
        header->sample_rate = !(rate > 0.0)   ? 0
                              : rate < 9.0e15 ? (int64_t)llrint(rate)
                                              : INT64_MAX;
        header->is_pcm = !aifc || memcmp(common + 18, "NONE", 4) == 0 ||
                         memcmp(common + 18, "twos", 4) == 0 ||
                         memcmp(common + 18, "sowt", 4) == 0 ||
                         memcmp(common + 18, "fl32", 4) == 0 ||
                         memcmp(common + 18, "fl64", 4) == 0;
        header->block_align =
            header->channels * ((header->bits_per_sample + 7) / 8);
        have_common = 1;
      }
    } else if (memcmp(chunk_header, "SSND", 4) == 0 && size >= 8) {
      unsigned char sound[8];
      got = read_header_bytes(source, body, sound, 8, error);
      if (got < 0) {
        return (ap_status_t)error->code;
      }
      if (got == 1) {
        uint32_t skip = read_be32(sound);
        header->data_offset = body + 8 + skip;
        header->declared_bytes =
            size >= 8 + (uint64_t)skip ? (int64_t)size - 8 - skip : 0;
      }
      if (have_common) {
        break;
      }
    }
    if (!next_chunk(source, body, size, &offset)) {
      break;
    }
  }

  header->found = have_common;
  settle_data_size(source, header);
  if (header->frames >= 0 && header->declared_frames >= 0 &&
      header->declared_frames < header->frames) {
    header->frames = header->declared_frames;
  }
  if (header->frames >= 0 && header->declared_frames > header->frames) {
    header->truncated = 1;
  }
  return AP_OK;
}

ap_status_t ap_pcm_header_parse(ap_byte_source_t *source,
                                ap_pcm_header_t *header, ap_error_t *error) {
  memset(header, 0, sizeof *header);
  header->data_offset = -1;
  header->declared_bytes = -1;
  header->present_bytes = -1;
  header->frames = -1;
  header->declared_frames = -1;
  if (source->head_size < 12) {
    return AP_OK;
  }
  const unsigned char *start = source->head;
  if (memcmp(start + 8, "WAVE", 4) == 0 &&
      (memcmp(start, "RIFF", 4) == 0 || memcmp(start, "RF64", 4) == 0 ||
       memcmp(start, "BW64", 4) == 0)) {
    return parse_riff(source, start, header, error);
  }
  if (memcmp(start, "FORM", 4) == 0 && (memcmp(start + 8, "AIFF", 4) == 0 ||
                                        memcmp(start + 8, "AIFC", 4) == 0)) {
    return parse_aiff(source, start, header, error);
  }
  return AP_OK;
}

int64_t ap_id3v2_length(ap_byte_source_t *source, int64_t offset) {
  int64_t total = 0;
  /* Several tags may follow each other; bound the count. */
  for (int tag = 0; tag < 8; tag++) {
    unsigned char id3[10];
    ap_error_t ignored = {0};
    if (read_header_bytes(source, offset + total, id3, 10, &ignored) != 1 ||
        memcmp(id3, "ID3", 3) != 0 ||
        (id3[6] | id3[7] | id3[8] | id3[9]) & 0x80) {
      break;
    }
    int64_t size =
        ((int64_t)id3[6] << 21) | (id3[7] << 14) | (id3[8] << 7) | id3[9];
    total += 10 + size + ((id3[5] & 0x10) ? 10 : 0);
  }
  return total;
}

/* Window over the input for walking MPEG frames without a read call per
 * frame. */
typedef struct window {
  ap_byte_source_t *source;
  int sequential; /* may read a forward-only input past its head */
  unsigned char data[64 * 1024];
  int64_t offset; /* input offset of data[0] */
  size_t length;
} window_t;

/* Makes `size` bytes at `offset` available; returns a pointer to them,
 * or NULL at the end of the input (or on error, with `*failed` set). */
static const unsigned char *window_at(window_t *window, int64_t offset,
                                      size_t size, int *failed,
                                      ap_error_t *error) {
  if (offset >= window->offset &&
      offset + (int64_t)size <= window->offset + (int64_t)window->length) {
    return window->data + (offset - window->offset);
  }
  /* A forward-only input is parsed only inside its head, so libavformat
   * can still read it from the start afterwards. */
  size_t want = sizeof window->data;
  ap_byte_source_t *source = window->source;
  if (!source->seekable && !window->sequential) {
    if (offset >= (int64_t)source->head_size) {
      return NULL;
    }
    size_t left = source->head_size - (size_t)offset;
    want = left < want ? left : want;
  }
  int64_t got =
      ap_byte_source_read_at(source, offset, window->data, want, error);
  if (got < 0) {
    *failed = 1;
    return NULL;
  }
  window->offset = offset;
  window->length = (size_t)got;
  return (size_t)got >= size ? window->data : NULL;
}

/* Checks that a valid frame header at `offset` is followed by another
 * with the same layer and rate, or by the end of the input. */
static int confirmed_frame(window_t *window, int64_t offset,
                           ap_mpeg_audio_header_t *frame, int *failed,
                           ap_error_t *error) {
  const unsigned char *bytes = window_at(window, offset, 4, failed, error);
  if (!bytes || !ap_sniff_mpeg_audio_header(bytes, frame)) {
    return 0;
  }
  int64_t next_offset = offset + frame->frame_bytes;
  const unsigned char *next = window_at(window, next_offset, 4, failed, error);
  if (!next) {
    return !*failed;
  }
  ap_mpeg_audio_header_t second;
  return ap_sniff_mpeg_audio_header(next, &second) &&
         second.layer == frame->layer &&
         second.sample_rate == frame->sample_rate;
}

static void parse_vbr_headers(const unsigned char *frame, size_t size,
                              ap_mp3_header_t *header) {
  const ap_mpeg_audio_header_t *info = &header->frame;
  size_t side_info = info->mpeg1 ? (info->channels == 1 ? 17 : 32)
                                 : (info->channels == 1 ? 9 : 17);
  size_t xing = 4 + side_info + (info->crc ? 2 : 0);
  if (xing + 8 > size) {
    return;
  }
  if (memcmp(frame + xing, "Xing", 4) != 0 &&
      memcmp(frame + xing, "Info", 4) != 0) {
    /* Some encoders ignore the CRC when placing the tag. */
    xing = 4 + side_info;
  }
  if (memcmp(frame + xing, "Xing", 4) == 0 ||
      memcmp(frame + xing, "Info", 4) == 0) {
    header->has_vbr_header = 1;
    header->is_vbr = memcmp(frame + xing, "Xing", 4) == 0;
    uint32_t flags = read_be32(frame + xing + 4);
    size_t field = xing + 8;
    if ((flags & 1) && field + 4 <= size) {
      header->header_frames = read_be32(frame + field);
      field += 4;
    }
    if ((flags & 2) && field + 4 <= size) {
      header->header_bytes = read_be32(frame + field);
      field += 4;
    }
    if (flags & 4) {
      field += 100; /* seek table */
    }
    if (flags & 8) {
      field += 4; /* quality */
    }
    /* LAME tag: 9-byte encoder string, then the delay and padding as two
     * 12-bit fields 21 bytes in. LAME and FFmpeg's encoder both write it. */
    if (field + 24 <= size) {
      const unsigned char *lame = frame + field;
      int printable = 1;
      for (int i = 0; i < 4; i++) {
        printable = printable && lame[i] >= 0x20 && lame[i] < 0x7F;
      }
      if (printable) {
        header->has_lame = 1;
        header->encoder_delay = (lame[21] << 4) | (lame[22] >> 4);
        header->encoder_padding = ((lame[22] & 0x0F) << 8) | lame[23];
      }
    }
    return;
  }
  /* NOTE: no VBRI file was at hand to check whether its frame count
   * includes the VBRI frame itself; it is taken to exclude it, as Xing's
   * does. */
  if (36 + 18 <= size && memcmp(frame + 36, "VBRI", 4) == 0) {
    header->has_vbr_header = 1;
    header->is_vbr = 1;
    header->header_bytes = read_be32(frame + 36 + 10);
    header->header_frames = read_be32(frame + 36 + 14);
  }
}

/* Checks the VBR header's frame count against the bytes it covers, so a
 * header that lies (one frame, or four billion) is not taken as the
 * length: the frames' mean bit rate must lie within the bit rates of the
 * MPEG version and layer (ISO/IEC 11172-3 and 13818-3), with 10% slack.
 * A CBR Info header must also match the first frame's bit rate within
 * 10%. Without a byte count or an input size the count is unchecked.
 * NOTE: a VBR count wrong by less than that range allows (up to a factor
 * of 10 for MPEG-1 Layer III) is still taken as the length. */
static int vbr_frames_plausible(const ap_mp3_header_t *header,
                                int64_t input_size) {
  const ap_mpeg_audio_header_t *frame = &header->frame;
  if (header->header_frames <= 0) {
    return 0;
  }
  int64_t bytes = header->header_bytes;
  if (bytes <= 0 && input_size > 0) {
    bytes = input_size - header->first_frame;
  }
  if (bytes <= 0) {
    return 1;
  }

  double seconds = (double)header->header_frames * frame->samples_per_frame /
                   frame->sample_rate;
  double bitrate = (double)bytes * 8.0 / seconds;
  int lowest = frame->mpeg1 || frame->layer == 1 ? 32000 : 8000;
  int highest = frame->mpeg1        ? (frame->layer == 1   ? 448000
                                       : frame->layer == 2 ? 384000
                                                           : 320000)
                : frame->layer == 1 ? 256000
                                    : 160000;
  if (bitrate < 0.9 * lowest || bitrate > 1.1 * highest) {
    return 0;
  }
  if (!header->is_vbr && header->header_bytes > 0 &&
      fabs(bitrate - frame->bitrate) > 0.1 * frame->bitrate) {
    return 0;
  }
  return 1;
}

ap_status_t ap_mp3_header_parse(ap_byte_source_t *source,
                                ap_mp3_header_t *header, ap_error_t *error) {
  memset(header, 0, sizeof *header);
  header->header_frames = -1;
  header->header_bytes = -1;
  header->id3_bytes = ap_id3v2_length(source, 0);

  window_t *window = malloc(sizeof *window);
  if (!window) {
    return AP_NO_MEMORY(error);
  }
  window->source = source;
  window->sequential = 0;
  window->offset = 0;
  window->length = 0;

  /* Look for the first confirmed frame within 64 KiB after the tags. */
  int failed = 0;
  ap_status_t status = AP_OK;
  for (int64_t offset = header->id3_bytes;
       offset < header->id3_bytes + 64 * 1024; offset++) {
    ap_mpeg_audio_header_t frame;
    if (confirmed_frame(window, offset, &frame, &failed, error)) {
      header->found = 1;
      header->first_frame = offset;
      header->frame = frame;
      break;
    }
    if (failed) {
      status = (ap_status_t)error->code;
      break;
    }
    if (!window_at(window, offset, 4, &failed, error)) {
      break;
    }
  }
  if (header->found) {
    size_t want = (size_t)header->frame.frame_bytes;
    const unsigned char *bytes =
        window_at(window, header->first_frame, want, &failed, error);
    if (bytes) {
      parse_vbr_headers(bytes, want, header);
    }
    header->header_frames_plausible =
        vbr_frames_plausible(header, source->size);
  }
  free(window);
  return status;
}

ap_status_t ap_mp3_scan_frames(ap_byte_source_t *source,
                               const ap_mp3_header_t *header, int64_t *frames,
                               int64_t *bytes, int *varies, ap_error_t *error) {
  *frames = 0;
  *bytes = 0;
  *varies = 0;
  window_t *window = malloc(sizeof *window);
  if (!window) {
    return AP_NO_MEMORY(error);
  }
  window->source = source;
  window->sequential = 1;
  window->offset = 0;
  window->length = 0;

  int64_t offset = header->first_frame;
  if (header->has_vbr_header) {
    offset += header->frame.frame_bytes;
  }
  int failed = 0;
  int first_bitrate = 0;
  int64_t junk = 0;
  for (;;) {
    const unsigned char *at = window_at(window, offset, 4, &failed, error);
    if (!at) {
      break;
    }
    ap_mpeg_audio_header_t frame;
    if (ap_sniff_mpeg_audio_header(at, &frame) &&
        frame.layer == header->frame.layer &&
        frame.sample_rate == header->frame.sample_rate) {
      /* A frame cut short by the end of the input is not counted. */
      if (!window_at(window, offset, (size_t)frame.frame_bytes, &failed,
                     error)) {
        break;
      }
      *frames += 1;
      *bytes += frame.frame_bytes;
      junk = 0;
      if (first_bitrate == 0) {
        first_bitrate = frame.bitrate;
      } else if (frame.bitrate != first_bitrate) {
        *varies = 1;
      }
      offset += frame.frame_bytes;
      continue;
    }
    if (memcmp(at, "TAG", 3) == 0 || memcmp(at, "APET", 4) == 0) {
      break; /* ID3v1 or APE tag at the end */
    }
    /* Junk between frames: move on byte by byte, but give up after
     * 1 MiB without a frame so random bytes end the scan. */
    offset++;
    if (++junk > 1024 * 1024) {
      break;
    }
  }
  free(window);
  return failed ? (ap_status_t)error->code : AP_OK;
}

int ap_flac_streaminfo_parse(ap_byte_source_t *source, int *sample_rate,
                             int *channels, int *bits, int64_t *total_samples) {
  int64_t offset = ap_id3v2_length(source, 0);
  unsigned char block[4 + 4 + 34];
  ap_error_t ignored = {0};
  if (read_header_bytes(source, offset, block, sizeof block, &ignored) != 1 ||
      memcmp(block, "fLaC", 4) != 0 || (block[4] & 0x7F) != 0) {
    return 0;
  }
  const unsigned char *info = block + 8;
  *sample_rate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4);
  *channels = ((info[12] >> 1) & 0x07) + 1;
  *bits = (((info[12] & 1) << 4) | (info[13] >> 4)) + 1;
  *total_samples = ((int64_t)(info[13] & 0x0F) << 32) | read_be32(info + 14);
  return 1;
}
