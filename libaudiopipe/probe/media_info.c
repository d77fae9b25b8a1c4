/*
 * Media info: construction, copying, the public getters, tag
 * sanitisation and the JSON form.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/error_internal.h"
#include "probe/media_info_internal.h"

ap_media_info_t *ap_media_info_new(void) {
  ap_media_info_t *info = calloc(1, sizeof *info);
  if (!info) {
    return NULL;
  }
  info->duration_frames = -1;
  info->header_duration = -1.0;
  info->input_bytes = -1;
  return info;
}

void ap_media_info_free(ap_media_info_t *info) {
  if (!info) {
    return;
  }
  free(info->container);
  free(info->codec);
  free(info->codec_profile);
  free(info->channel_layout);
  free(info->sample_format);
  for (size_t i = 0; i < info->tag_count; i++) {
    free(info->tag_keys[i]);
    free(info->tag_values[i]);
  }
  free(info);
}

int ap_media_info_set_string(char **field, const char *value) {
  char *copy = NULL;
  if (value) {
    copy = strdup(value);
    if (!copy) {
      return -1;
    }
  }
  free(*field);
  *field = copy;
  return 0;
}

ap_media_info_t *ap_media_info_copy(const ap_media_info_t *info) {
  ap_media_info_t *copy = ap_media_info_new();
  if (!copy) {
    return NULL;
  }
  *copy = *info;

  /* Detach the owned strings before duplicating them, so a failure part
   * way leaves a copy that ap_media_info_free can release. */
  copy->container = copy->codec = copy->codec_profile = NULL;
  copy->channel_layout = copy->sample_format = NULL;
  copy->tag_count = 0;
  int failed =
      ap_media_info_set_string(&copy->container, info->container) ||
      ap_media_info_set_string(&copy->codec, info->codec) ||
      ap_media_info_set_string(&copy->codec_profile, info->codec_profile) ||
      ap_media_info_set_string(&copy->channel_layout, info->channel_layout) ||
      ap_media_info_set_string(&copy->sample_format, info->sample_format);
  for (size_t i = 0; !failed && i < info->tag_count; i++) {
    copy->tag_keys[i] = strdup(info->tag_keys[i]);
    copy->tag_values[i] = strdup(info->tag_values[i]);
    copy->tag_count = i + 1;
    failed = !copy->tag_keys[i] || !copy->tag_values[i];
  }
  if (failed) {
    ap_media_info_free(copy);
    return NULL;
  }
  return copy;
}

/* Returns the length of the valid UTF-8 sequence at `text` (at most
 * `left` bytes), or 0 if it is invalid, overlong, a surrogate or above
 * U+10FFFF. Stores the code point in `*code_point`. */
static size_t utf8_sequence(const unsigned char *text, size_t left,
                            uint32_t *code_point) {
  unsigned char lead = text[0];
  size_t length;
  uint32_t value;
  uint32_t minimum;
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2;
    value = lead & 0x1F;
    minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    value = lead & 0x0F;
    minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    value = lead & 0x07;
    minimum = 0x10000;
  } else {
    return 0;
  }
  if (length > left) {
    return 0;
  }
  for (size_t i = 1; i < length; i++) {
    if ((text[i] & 0xC0) != 0x80) {
      return 0;
    }
    value = (value << 6) | (text[i] & 0x3F);
  }
  if (value < minimum || value > 0x10FFFF ||
      (value >= 0xD800 && value <= 0xDFFF)) {
    return 0;
  }
  *code_point = value;
  return length;
}

char *ap_sanitize_utf8(const char *text, size_t size, size_t max_bytes) {
  char *out = malloc(max_bytes + 1);
  if (!out) {
    return NULL;
  }
  const unsigned char *in = (const unsigned char *)text;
  size_t used = 0;
  size_t i = 0;
  while (i < size) {
    uint32_t code_point = 0;
    size_t length = utf8_sequence(in + i, size - i, &code_point);
    const unsigned char *piece = in + i;
    static const unsigned char replacement[] = {0xEF, 0xBF, 0xBD};
    static const unsigned char space[] = {' '};
    size_t piece_length = length;
    if (length == 0) {
      piece = replacement;
      piece_length = sizeof replacement;
      length = 1;
    } else if (code_point == '\t' || code_point == '\n' || code_point == '\r') {
      piece = space;
      piece_length = 1;
    } else if (code_point < 0x20 || code_point == 0x7F ||
               (code_point >= 0x80 && code_point < 0xA0)) {
      i += length;
      continue;
    }
    if (used + piece_length > max_bytes) {
      break;
    }
    memcpy(out + used, piece, piece_length);
    used += piece_length;
    i += length;
  }
  out[used] = '\0';
  return out;
}

int ap_media_info_add_tag(ap_media_info_t *info, const char *key,
                          const char *value) {
  if (info->tag_count >= AP_MEDIA_INFO_MAX_TAGS || !key || !value) {
    return 0;
  }
  char *clean_key = ap_sanitize_utf8(key, strlen(key), 64);
  if (!clean_key) {
    return -1;
  }
  for (char *c = clean_key; *c; c++) {
    *c = (char)tolower((unsigned char)*c);
  }
  if (clean_key[0] == '\0') {
    free(clean_key);
    return 0;
  }
  for (size_t i = 0; i < info->tag_count; i++) {
    if (strcmp(info->tag_keys[i], clean_key) == 0) {
      free(clean_key);
      return 0;
    }
  }
  char *clean_value =
      ap_sanitize_utf8(value, strlen(value), AP_MEDIA_INFO_MAX_TAG_BYTES);
  if (!clean_value) {
    free(clean_key);
    return -1;
  }
  info->tag_keys[info->tag_count] = clean_key;
  info->tag_values[info->tag_count] = clean_value;
  info->tag_count++;
  return 0;
}

const char *ap_duration_method_name(ap_duration_method_t method) {
  switch (method) {
  case AP_DURATION_HEADER:
    return "header";
  case AP_DURATION_FRAME_COUNT:
    return "frame_count";
  case AP_DURATION_PACKET_SCAN:
    return "packet_scan";
  case AP_DURATION_DECODE:
    return "decode";
  case AP_DURATION_UNKNOWN:
    break;
  }
  return "unknown";
}

const char *ap_media_info_container(const ap_media_info_t *info) {
  return info ? info->container : NULL;
}

const char *ap_media_info_codec(const ap_media_info_t *info) {
  return info ? info->codec : NULL;
}

const char *ap_media_info_codec_profile(const ap_media_info_t *info) {
  return info ? info->codec_profile : NULL;
}

int ap_media_info_sample_rate(const ap_media_info_t *info) {
  return info ? info->sample_rate : 0;
}

int ap_media_info_channels(const ap_media_info_t *info) {
  return info ? info->channels : 0;
}

const char *ap_media_info_channel_layout(const ap_media_info_t *info) {
  return info ? info->channel_layout : NULL;
}

uint64_t ap_media_info_channel_mask(const ap_media_info_t *info) {
  return info ? info->channel_mask : 0;
}

const char *ap_media_info_sample_format(const ap_media_info_t *info) {
  return info ? info->sample_format : NULL;
}

int ap_media_info_bits_per_sample(const ap_media_info_t *info) {
  return info ? info->bits_per_sample : 0;
}

int64_t ap_media_info_bitrate(const ap_media_info_t *info) {
  return info ? info->bitrate : 0;
}

int ap_media_info_is_vbr(const ap_media_info_t *info) {
  return info ? info->is_vbr : 0;
}

double ap_media_info_duration(const ap_media_info_t *info) {
  if (!info || info->duration_frames < 0 || info->sample_rate <= 0) {
    return -1.0;
  }
  return (double)info->duration_frames / info->sample_rate;
}

int64_t ap_media_info_duration_frames(const ap_media_info_t *info) {
  return info ? info->duration_frames : -1;
}

ap_duration_method_t
ap_media_info_duration_method(const ap_media_info_t *info) {
  return info ? info->duration_method : AP_DURATION_UNKNOWN;
}

double ap_media_info_header_duration(const ap_media_info_t *info) {
  return info ? info->header_duration : -1.0;
}

int64_t ap_media_info_encoder_delay(const ap_media_info_t *info) {
  return info ? info->encoder_delay : 0;
}

int64_t ap_media_info_encoder_padding(const ap_media_info_t *info) {
  return info ? info->encoder_padding : 0;
}

int ap_media_info_is_truncated(const ap_media_info_t *info) {
  return info ? info->truncated : 0;
}

int64_t ap_media_info_input_bytes(const ap_media_info_t *info) {
  return info ? info->input_bytes : -1;
}

size_t ap_media_info_tag_count(const ap_media_info_t *info) {
  return info ? info->tag_count : 0;
}

const char *ap_media_info_tag_key(const ap_media_info_t *info, size_t index) {
  return info && index < info->tag_count ? info->tag_keys[index] : NULL;
}

const char *ap_media_info_tag_value(const ap_media_info_t *info, size_t index) {
  return info && index < info->tag_count ? info->tag_values[index] : NULL;
}

size_t ap_media_info_picture_count(const ap_media_info_t *info) {
  return info ? info->picture_count : 0;
}

const char *ap_media_info_picture_mime(const ap_media_info_t *info,
                                       size_t index) {
  return info && index < info->picture_count ? info->pictures[index].mime
                                             : NULL;
}

int64_t ap_media_info_picture_bytes(const ap_media_info_t *info, size_t index) {
  return info && index < info->picture_count ? info->pictures[index].bytes : 0;
}

int ap_media_info_picture_width(const ap_media_info_t *info, size_t index) {
  return info && index < info->picture_count ? info->pictures[index].width : 0;
}

int ap_media_info_picture_height(const ap_media_info_t *info, size_t index) {
  return info && index < info->picture_count ? info->pictures[index].height : 0;
}

int ap_media_info_audio_stream_count(const ap_media_info_t *info) {
  return info ? info->audio_stream_count : 0;
}

/* Adds `value` under `key`, or JSON null when `value` is NULL. */
static int json_add_string(json_object *object, const char *key,
                           const char *value) {
  json_object *item = value ? json_object_new_string(value) : NULL;
  if (value && !item) {
    return -1;
  }
  return json_object_object_add(object, key, item);
}

static int json_add_int(json_object *object, const char *key, int64_t value) {
  json_object *item = json_object_new_int64(value);
  if (!item) {
    return -1;
  }
  return json_object_object_add(object, key, item);
}

static int json_add_double(json_object *object, const char *key, double value) {
  json_object *item = value >= 0.0 ? json_object_new_double(value) : NULL;
  if (value >= 0.0 && !item) {
    return -1;
  }
  return json_object_object_add(object, key, item);
}

static int json_add_tags(json_object *root, const ap_media_info_t *info) {
  json_object *tags = json_object_new_object();
  if (!tags) {
    return -1;
  }
  for (size_t i = 0; i < info->tag_count; i++) {
    if (json_add_string(tags, info->tag_keys[i], info->tag_values[i]) != 0) {
      json_object_put(tags);
      return -1;
    }
  }
  return json_object_object_add(root, "tags", tags);
}

static int json_add_pictures(json_object *root, const ap_media_info_t *info) {
  json_object *pictures = json_object_new_array();
  if (!pictures) {
    return -1;
  }
  for (size_t i = 0; i < info->picture_count; i++) {
    const ap_media_picture_t *picture = &info->pictures[i];
    json_object *item = json_object_new_object();
    if (!item || json_add_string(item, "mime", picture->mime) != 0 ||
        json_add_int(item, "bytes", picture->bytes) != 0 ||
        json_add_int(item, "width", picture->width) != 0 ||
        json_add_int(item, "height", picture->height) != 0 ||
        json_object_array_add(pictures, item) != 0) {
      json_object_put(item);
      json_object_put(pictures);
      return -1;
    }
  }
  return json_object_object_add(root, "pictures", pictures);
}

ap_status_t ap_media_info_to_json(const ap_media_info_t *info, char **json,
                                  ap_error_t *error) {
  if (!info || !json) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_media_info_to_json: info and json are required");
  }
  char mask[32];
  snprintf(mask, sizeof mask, "0x%llx", (unsigned long long)info->channel_mask);

  json_object *root = json_object_new_object();
  int failed =
      !root || json_add_string(root, "container", info->container) ||
      json_add_string(root, "codec", info->codec) ||
      json_add_string(root, "codec_profile", info->codec_profile) ||
      json_add_int(root, "sample_rate", info->sample_rate) ||
      json_add_int(root, "channels", info->channels) ||
      json_add_string(root, "channel_layout", info->channel_layout) ||
      json_add_string(root, "channel_mask", mask) ||
      json_add_string(root, "sample_format", info->sample_format) ||
      json_add_int(root, "bits_per_sample", info->bits_per_sample) ||
      json_add_int(root, "bitrate", info->bitrate) ||
      json_object_object_add(root, "vbr",
                             json_object_new_boolean(info->is_vbr)) ||
      json_add_double(root, "duration", ap_media_info_duration(info)) ||
      json_add_int(root, "duration_frames", info->duration_frames) ||
      json_add_string(root, "duration_method",
                      ap_duration_method_name(info->duration_method)) ||
      json_add_double(root, "header_duration", info->header_duration) ||
      json_add_int(root, "encoder_delay", info->encoder_delay) ||
      json_add_int(root, "encoder_padding", info->encoder_padding) ||
      json_object_object_add(root, "truncated",
                             json_object_new_boolean(info->truncated)) ||
      json_add_int(root, "input_bytes", info->input_bytes) ||
      json_add_int(root, "audio_streams", info->audio_stream_count) ||
      json_add_tags(root, info) || json_add_pictures(root, info);
  if (failed) {
    json_object_put(root);
    return AP_NO_MEMORY(error);
  }

  const char *text = json_object_to_json_string_ext(
      root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  char *copy = text ? strdup(text) : NULL;
  json_object_put(root);
  if (!copy) {
    return AP_NO_MEMORY(error);
  }
  *json = copy;
  return AP_OK;
}
