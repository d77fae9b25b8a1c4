/*
 * Content sniffing: classifies the first bytes of an object as empty, a
 * multipart/form-data envelope, a known audio container, or a known
 * non-audio format, without FFmpeg. Anything else is left to the prober.
 */
#include <ctype.h>
#include <string.h>

#include <audiopipe/probe.h>

#include "probe/sniff_internal.h"

static int starts_with(const unsigned char *data, size_t size,
                       const char *prefix) {
  size_t length = strlen(prefix);
  return size >= length && memcmp(data, prefix, length) == 0;
}

static int starts_with_nocase(const unsigned char *data, size_t size,
                              const char *prefix) {
  size_t length = strlen(prefix);
  if (size < length) {
    return 0;
  }
  for (size_t i = 0; i < length; i++) {
    if (tolower(data[i]) != tolower((unsigned char)prefix[i])) {
      return 0;
    }
  }
  return 1;
}

/* Bytes allowed in a MIME boundary (RFC 2046 bcharsnospace). */
static int is_boundary_char(unsigned char c) {
  return isalnum(c) || strchr("'()+_,-./:=?", c) != NULL;
}

/* Returns the length of the line at `data` including its CRLF or LF, or
 * 0 when no line end occurs within `size` bytes. */
static size_t line_length(const unsigned char *data, size_t size) {
  for (size_t i = 0; i < size; i++) {
    if (data[i] == '\n') {
      return i + 1;
    }
  }
  return 0;
}

/*
 * A multipart body starts with "--" and a boundary of 1 to 70 characters
 * on its own line, followed by part headers. At least one header must be
 * Content-Disposition or Content-Type, so a text file that starts with a
 * dashed line is not mistaken for an envelope.
 */
static int is_multipart(const unsigned char *data, size_t size) {
  size_t start = 0;
  while (start < size && start < 4 &&
         (data[start] == '\r' || data[start] == '\n')) {
    start++;
  }
  data += start;
  size -= start;
  if (!starts_with(data, size, "--")) {
    return 0;
  }
  size_t first = line_length(data, size);
  if (first == 0) {
    return 0;
  }
  size_t boundary_end = first - 1;
  if (boundary_end > 0 && data[boundary_end - 1] == '\r') {
    boundary_end--;
  }
  size_t boundary_length = boundary_end - 2;
  if (boundary_length < 1 || boundary_length > 70) {
    return 0;
  }
  for (size_t i = 2; i < boundary_end; i++) {
    if (!is_boundary_char(data[i]) && data[i] != ' ') {
      return 0;
    }
  }

  size_t offset = first;
  for (int header = 0; header < 8 && offset < size; header++) {
    size_t length = line_length(data + offset, size - offset);
    if (length == 0 || length <= 2) {
      break; /* incomplete buffer or the blank line ending the headers */
    }
    if (starts_with_nocase(data + offset, length, "content-disposition:") ||
        starts_with_nocase(data + offset, length, "content-type:")) {
      return 1;
    }
    offset += length;
  }
  return 0;
}

int ap_sniff_mpeg_audio_header(const unsigned char *header,
                               ap_mpeg_audio_header_t *out) {
  if (header[0] != 0xFF || (header[1] & 0xE0) != 0xE0) {
    return 0;
  }
  int version_bits = (header[1] >> 3) & 3; /* 0: 2.5, 1: reserved, 2: 2, 3: 1 */
  int layer_bits = (header[1] >> 1) & 3;   /* 1: III, 2: II, 3: I */
  int bitrate_index = header[2] >> 4;
  int rate_index = (header[2] >> 2) & 3;
  int padding = (header[2] >> 1) & 1;
  if (version_bits == 1 || layer_bits == 0 || bitrate_index == 0 ||
      bitrate_index == 15 || rate_index == 3) {
    return 0;
  }

  static const int rates[3] = {44100, 48000, 32000};
  static const int bitrates[2][3][15] = {
      /* MPEG-1: layer I, II, III */
      {{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
       {0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
       {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}},
      /* MPEG-2 and 2.5: layer I, II, III */
      {{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
       {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
       {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}}};
  int mpeg1 = version_bits == 3;
  int layer = 4 - layer_bits;
  int sample_rate = rates[rate_index] >> (version_bits == 3   ? 0
                                          : version_bits == 2 ? 1
                                                              : 2);
  int kbps = bitrates[mpeg1 ? 0 : 1][layer - 1][bitrate_index];
  int samples = layer == 1 ? 384 : (layer == 2 || mpeg1) ? 1152 : 576;
  int bytes;
  if (layer == 1) {
    bytes = (12 * kbps * 1000 / sample_rate + padding) * 4;
  } else {
    bytes = samples / 8 * kbps * 1000 / sample_rate + padding;
  }
  if (out) {
    out->mpeg1 = mpeg1;
    out->layer = layer;
    out->sample_rate = sample_rate;
    out->bitrate = kbps * 1000;
    out->channels = ((header[3] >> 6) & 3) == 3 ? 1 : 2;
    out->samples_per_frame = samples;
    out->frame_bytes = bytes;
    out->crc = !(header[1] & 1);
  }
  return 1;
}

/* An MPEG audio frame header, confirmed by a second header where the
 * first frame ends when the buffer reaches that far. */
static int is_mpeg_audio(const unsigned char *data, size_t size) {
  ap_mpeg_audio_header_t first;
  if (size < 4 || !ap_sniff_mpeg_audio_header(data, &first)) {
    return 0;
  }
  size_t next = (size_t)first.frame_bytes;
  if (next + 4 <= size) {
    ap_mpeg_audio_header_t second;
    return ap_sniff_mpeg_audio_header(data + next, &second) &&
           second.sample_rate == first.sample_rate &&
           second.layer == first.layer;
  }
  return 1;
}

/* An ADTS header: 12-bit sync, layer 0, a valid sampling index and a
 * frame length that covers at least the header. */
static int is_adts(const unsigned char *data, size_t size) {
  if (size < 7 || data[0] != 0xFF || (data[1] & 0xF6) != 0xF0) {
    return 0;
  }
  int rate_index = (data[2] >> 2) & 0x0F;
  int frame_length = ((data[3] & 0x03) << 11) | (data[4] << 3) | (data[5] >> 5);
  return rate_index < 13 && frame_length >= 7;
}

static int is_id3(const unsigned char *data, size_t size) {
  /* Major version 2..4, and the four size bytes are syncsafe. */
  return size >= 10 && memcmp(data, "ID3", 3) == 0 && data[3] >= 2 &&
         data[3] <= 4 && data[4] != 0xFF && !(data[6] & 0x80) &&
         !(data[7] & 0x80) && !(data[8] & 0x80) && !(data[9] & 0x80);
}

/* Audio-only ISO BMFF major or compatible brands. Generic brands (isom,
 * mp42) may hold audio or video, so they are left to the prober. */
static const char *iso_audio_brand(const unsigned char *data, size_t size) {
  static const char *const brands[] = {"M4A ", "M4B ", "M4P ", "F4A ", "F4B "};
  if (size < 12 || memcmp(data + 4, "ftyp", 4) != 0) {
    return NULL;
  }
  size_t box = ((size_t)data[0] << 24) | ((size_t)data[1] << 16) |
               ((size_t)data[2] << 8) | data[3];
  if (box < 16) {
    box = 16;
  }
  size_t end = box < size ? box : size;
  for (size_t offset = 8; offset + 4 <= end; offset += 4) {
    if (offset == 12) {
      continue; /* minor version */
    }
    for (size_t i = 0; i < sizeof brands / sizeof brands[0]; i++) {
      if (memcmp(data + offset, brands[i], 4) == 0) {
        return "mp4";
      }
    }
  }
  return NULL;
}

/* Matroska or WebM, as the EBML DocType in the header names it. */
static const char *ebml_kind(const unsigned char *data, size_t size) {
  size_t limit = size < 64 ? size : 64;
  for (size_t i = 4; i + 6 <= limit; i++) {
    if (data[i] == 0x42 && data[i + 1] == 0x82) {
      if (memcmp(data + i + 3, "webm", 4) == 0) {
        return "webm";
      }
      return "matroska";
    }
  }
  return "matroska";
}

static const char *audio_kind(const unsigned char *data, size_t size) {
  if (size >= 12 && memcmp(data + 8, "WAVE", 4) == 0) {
    if (starts_with(data, size, "RIFF")) {
      return "wav";
    }
    if (starts_with(data, size, "RF64")) {
      return "rf64";
    }
    if (starts_with(data, size, "BW64")) {
      return "bw64";
    }
  }
  if (size >= 12 && starts_with(data, size, "FORM") &&
      (memcmp(data + 8, "AIFF", 4) == 0 || memcmp(data + 8, "AIFC", 4) == 0)) {
    return "aiff";
  }
  if (is_id3(data, size)) {
    return "id3";
  }
  if (starts_with(data, size, "fLaC")) {
    return "flac";
  }
  if (size >= 5 && starts_with(data, size, "OggS") && data[4] == 0) {
    return "ogg";
  }
  if (size >= 4 && data[0] == 0x1A && data[1] == 0x45 && data[2] == 0xDF &&
      data[3] == 0xA3) {
    return ebml_kind(data, size);
  }
  const char *brand = iso_audio_brand(data, size);
  if (brand) {
    return brand;
  }
  if (size >= 8 && starts_with(data, size, "caff") && data[4] == 0 &&
      data[5] == 1) {
    return "caf";
  }
  if (size >= 32 && starts_with(data, size, "wvpk")) {
    return "wavpack";
  }
  if (size >= 24 && starts_with(data, size, ".snd")) {
    return "au";
  }
  if (is_adts(data, size)) {
    return "aac";
  }
  if (is_mpeg_audio(data, size)) {
    return "mp3";
  }
  return NULL;
}

/* Skips a UTF-8 byte order mark and ASCII white space. */
static size_t skip_text_prefix(const unsigned char *data, size_t size) {
  size_t offset = 0;
  if (size >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) {
    offset = 3;
  }
  while (offset < size && isspace(data[offset])) {
    offset++;
  }
  return offset;
}

/* Text: the first bytes are valid UTF-8 without control characters other
 * than white space. A cut multi-byte character at the end is allowed. */
static int is_text(const unsigned char *data, size_t size) {
  size_t limit = size < 1024 ? size : 1024;
  size_t i = 0;
  while (i < limit) {
    unsigned char c = data[i];
    if (c < 0x80) {
      if ((c < 0x20 && !isspace(c)) || c == 0x7F) {
        return 0;
      }
      i++;
      continue;
    }
    size_t length = (c & 0xE0) == 0xC0   ? 2
                    : (c & 0xF0) == 0xE0 ? 3
                    : (c & 0xF8) == 0xF0 ? 4
                                         : 0;
    if (length == 0 || (c == 0xC0 || c == 0xC1)) {
      return 0;
    }
    for (size_t k = 1; k < length; k++) {
      if (i + k >= limit) {
        return limit < size ? 1 : 0;
      }
      if ((data[i + k] & 0xC0) != 0x80) {
        return 0;
      }
    }
    i += length;
  }
  return 1;
}

static const char *non_audio_kind(const unsigned char *data, size_t size) {
  static const unsigned char png[] = {0x89, 'P',  'N',  'G',
                                      '\r', '\n', 0x1A, '\n'};
  if (size >= sizeof png && memcmp(data, png, sizeof png) == 0) {
    return "png";
  }
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    return "jpeg";
  }
  if (starts_with(data, size, "GIF87a") || starts_with(data, size, "GIF89a")) {
    return "gif";
  }
  if (starts_with(data, size, "%PDF-")) {
    return "pdf";
  }
  if (size >= 4 && data[0] == 'P' && data[1] == 'K' &&
      ((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6) ||
       (data[2] == 7 && data[3] == 8))) {
    return "zip";
  }
  if (starts_with(data, size,
                  "\x7f"
                  "ELF")) {
    return "elf";
  }
  if (size >= 64 && data[0] == 'M' && data[1] == 'Z') {
    return "pe";
  }
  if (starts_with(data, size, "#!")) {
    return "script";
  }

  size_t offset = skip_text_prefix(data, size);
  const unsigned char *text = data + offset;
  size_t left = size - offset;
  if (starts_with_nocase(text, left, "<!doctype html") ||
      starts_with_nocase(text, left, "<html") ||
      starts_with_nocase(text, left, "<head") ||
      starts_with_nocase(text, left, "<body") ||
      starts_with_nocase(text, left, "<!--")) {
    return "html";
  }
  if (starts_with(text, left, "<?xml") || starts_with(text, left, "<svg")) {
    return "xml";
  }
  if (left >= 2 && (text[0] == '{' || text[0] == '[') && is_text(data, size)) {
    size_t next = 1;
    while (next < left && isspace(text[next])) {
      next++;
    }
    if (next == left || strchr("\"{}[]-0123456789tfn", text[next])) {
      return "json";
    }
  }
  if (is_text(data, size)) {
    return "text";
  }
  return NULL;
}

ap_sniff_result_t ap_sniff(const void *data, size_t size, const char **kind) {
  const unsigned char *bytes = data;
  if (kind) {
    *kind = NULL;
  }
  if (size == 0 || !data) {
    return AP_SNIFF_EMPTY;
  }
  if (is_multipart(bytes, size)) {
    if (kind) {
      *kind = "multipart";
    }
    return AP_SNIFF_MULTIPART;
  }
  const char *found = audio_kind(bytes, size);
  if (found) {
    if (kind) {
      *kind = found;
    }
    return AP_SNIFF_AUDIO;
  }
  found = non_audio_kind(bytes, size);
  if (found) {
    if (kind) {
      *kind = found;
    }
    return AP_SNIFF_NOT_AUDIO;
  }
  return AP_SNIFF_UNKNOWN;
}
