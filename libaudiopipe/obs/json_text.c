/*
 * JSON string escaping with UTF-8 validation, so a log line stays valid
 * JSON whatever bytes a caller passes in a value.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "obs/obs_internal.h"

/* Returns the length of the valid UTF-8 sequence at `text`, or 0 when the
 * bytes there are not one (overlong forms and surrogates included). */
static size_t utf8_sequence_length(const unsigned char *text, size_t length) {
  unsigned char lead = text[0];
  size_t needed;
  uint32_t minimum;
  uint32_t code_point;
  if (lead < 0x80) {
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    needed = 2;
    minimum = 0x80;
    code_point = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    needed = 3;
    minimum = 0x800;
    code_point = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    needed = 4;
    minimum = 0x10000;
    code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (length < needed) {
    return 0;
  }
  for (size_t i = 1; i < needed; i++) {
    if ((text[i] & 0xC0) != 0x80) {
      return 0;
    }
    code_point = (code_point << 6) | (text[i] & 0x3F);
  }
  if (code_point < minimum || code_point > 0x10FFFF ||
      (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return 0;
  }
  return needed;
}

size_t ap_obs_json_escape_char(const char *text, size_t length, char *out,
                               size_t *consumed) {
  const unsigned char *bytes = (const unsigned char *)text;
  unsigned char c = bytes[0];
  *consumed = 1;

  switch (c) {
  case '"':
    memcpy(out, "\\\"", 2);
    return 2;
  case '\\':
    memcpy(out, "\\\\", 2);
    return 2;
  case '\n':
    memcpy(out, "\\n", 2);
    return 2;
  case '\r':
    memcpy(out, "\\r", 2);
    return 2;
  case '\t':
    memcpy(out, "\\t", 2);
    return 2;
  default:
    break;
  }
  if (c < 0x20 || c == 0x7F) {
    snprintf(out, 8, "\\u%04x", c);
    return 6;
  }

  size_t sequence = utf8_sequence_length(bytes, length);
  if (sequence == 0) {
    memcpy(out, "\\ufffd", 6);
    return 6;
  }
  memcpy(out, text, sequence);
  *consumed = sequence;
  return sequence;
}
