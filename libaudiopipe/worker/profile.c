/*
 * The processing profile: parsing "waveform=..." and "rendition=..." items
 * (syntax in <audiopipe/worker.h>) into waveform and rendition settings,
 * with an error naming the item at fault.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "worker/worker_internal.h"

/* Longest profile item, NUL included. */
#define MAX_ITEM_SIZE 128

/* Parses a decimal integer of the whole text in 1..maximum; -1 if not. */
static long long parse_count(const char *text, long long maximum) {
  if (*text < '0' || *text > '9') {
    return -1;
  }
  errno = 0;
  char *end = NULL;
  long long value = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < 1 || value > maximum) {
    return -1;
  }
  return value;
}

static ap_status_t item_error(size_t position, const char *item,
                              const char *reason, ap_error_t *error) {
  return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                      "processing.profile item %zu '%s': %s", position, item,
                      reason);
}

/* Parses "FORMAT:BITS:SCALE". `fields` is modified. */
static ap_status_t parse_waveform(char *fields, size_t position,
                                  const char *item, ap_profile_item_t *out,
                                  ap_error_t *error) {
  char *format = strtok_r(fields, ":", &fields);
  char *bits = format ? strtok_r(NULL, ":", &fields) : NULL;
  char *scale = bits ? strtok_r(NULL, ":", &fields) : NULL;
  if (!scale || strtok_r(NULL, ":", &fields)) {
    return item_error(position, item,
                      "expected waveform=FORMAT:BITS:SCALE, such as "
                      "waveform=dat:16:256",
                      error);
  }

  out->is_waveform = 1;
  if (strcmp(format, "dat") == 0) {
    out->format = AP_WAVEFORM_DAT;
    out->extension = "dat";
    out->content_type = "application/octet-stream";
  } else if (strcmp(format, "json") == 0) {
    out->format = AP_WAVEFORM_JSON;
    out->extension = "json";
    out->content_type = "application/json";
  } else {
    return item_error(position, item,
                      "unknown waveform format: use dat or json", error);
  }

  if (strcmp(bits, "8") == 0 || strcmp(bits, "16") == 0) {
    out->bits = atoi(bits);
  } else {
    return item_error(position, item, "waveform bits must be 8 or 16", error);
  }

  if (strncmp(scale, "pps", 3) == 0) {
    long long value = parse_count(scale + 3, 48000);
    if (value < 0) {
      return item_error(position, item,
                        "pixels per second must be ppsN with N from 1 to "
                        "48000",
                        error);
    }
    out->pixels_per_second = (int)value;
    snprintf(out->name, sizeof out->name, "%s_%dbit_%dpps", format, out->bits,
             out->pixels_per_second);
  } else {
    long long value = parse_count(scale, 1LL << 24);
    if (value < 0) {
      return item_error(position, item,
                        "the scale must be samples per pixel from 1 to "
                        "16777216, or ppsN",
                        error);
    }
    out->samples_per_pixel = (int)value;
    snprintf(out->name, sizeof out->name, "%s_%dbit_%dspp", format, out->bits,
             out->samples_per_pixel);
  }
  return AP_OK;
}

/* Static facts of each codec. */
static void codec_facts(ap_rendition_codec_t codec, const char **extension,
                        const char **content_type) {
  static const char *const extensions[] = {"ogg", "mp3", "m4a", "flac", "wav"};
  static const char *const types[] = {"audio/ogg", "audio/mpeg", "audio/mp4",
                                      "audio/flac", "audio/wav"};
  *extension = extensions[codec];
  *content_type = types[codec];
}

/* Parses a lossy bit rate "64k" or "64000" in bits per second. */
static int64_t parse_bitrate(const char *text) {
  char digits[32];
  size_t length = strlen(text);
  if (length == 0 || length >= sizeof digits) {
    return -1;
  }
  memcpy(digits, text, length + 1);
  int64_t multiplier = 1;
  if (digits[length - 1] == 'k') {
    digits[length - 1] = '\0';
    multiplier = 1000;
  }
  long long value = parse_count(digits, 10000000);
  return value < 0 ? -1 : value * multiplier;
}

/* Parses "CODEC[:RATE]". `fields` is modified. */
static ap_status_t parse_rendition(char *fields, size_t position,
                                   const char *item, ap_profile_item_t *out,
                                   ap_error_t *error) {
  char *codec = strtok_r(fields, ":", &fields);
  char *rate = codec ? strtok_r(NULL, ":", &fields) : NULL;
  if (!codec || (rate && strtok_r(NULL, ":", &fields))) {
    return item_error(position, item,
                      "expected rendition=CODEC[:RATE], such as "
                      "rendition=opus:64k",
                      error);
  }
  if (ap_rendition_codec_parse(codec, &out->codec, NULL) != AP_OK) {
    return item_error(position, item,
                      "unknown codec: use opus, mp3, aac, flac or wav", error);
  }
  codec_facts(out->codec, &out->extension, &out->content_type);

  int lossless =
      out->codec == AP_RENDITION_FLAC || out->codec == AP_RENDITION_WAV;
  if (lossless) {
    out->bits_per_sample = 16;
    if (rate && strcmp(rate, "24bit") == 0) {
      out->bits_per_sample = 24;
    } else if (rate && strcmp(rate, "16bit") != 0) {
      return item_error(position, item,
                        "flac and wav take 16bit or 24bit, not a bit rate",
                        error);
    }
    snprintf(out->name, sizeof out->name, "%s_%dbit", codec,
             out->bits_per_sample);
    return AP_OK;
  }

  static const int64_t default_bitrates[] = {64000, 128000, 128000};
  out->bitrate = default_bitrates[out->codec];
  if (rate) {
    out->bitrate = parse_bitrate(rate);
    if (out->bitrate < 0) {
      return item_error(position, item,
                        "the bit rate must be a positive number of bits per "
                        "second, optionally with k (64k)",
                        error);
    }
  }
  ap_rendition_spec_t spec;
  ap_rendition_spec_init(&spec);
  spec.codec = out->codec;
  spec.bitrate = out->bitrate;
  ap_error_t cause = {0};
  if (ap_rendition_spec_validate(&spec, &cause) != AP_OK &&
      strstr(cause.message, "bitrate")) {
    return item_error(position, item, cause.message, error);
  }
  if (out->bitrate % 1000 == 0) {
    snprintf(out->name, sizeof out->name, "%s_%lldk", codec,
             (long long)(out->bitrate / 1000));
  } else {
    snprintf(out->name, sizeof out->name, "%s_%lld", codec,
             (long long)out->bitrate);
  }
  return AP_OK;
}

/* Parses one "KIND=FIELDS" item into `out`. */
static ap_status_t parse_item(const char *item, size_t position,
                              ap_profile_item_t *out, ap_error_t *error) {
  char copy[MAX_ITEM_SIZE];
  if (strlen(item) >= sizeof copy) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "processing.profile item %zu is longer than %d bytes",
                        position, MAX_ITEM_SIZE - 1);
  }
  snprintf(copy, sizeof copy, "%s", item);
  char *equals = strchr(copy, '=');
  if (!equals) {
    return item_error(position, item, "expected waveform=... or rendition=...",
                      error);
  }
  *equals = '\0';
  memset(out, 0, sizeof *out);
  if (strcmp(copy, "waveform") == 0) {
    return parse_waveform(equals + 1, position, item, out, error);
  }
  if (strcmp(copy, "rendition") == 0) {
    return parse_rendition(equals + 1, position, item, out, error);
  }
  return item_error(position, item,
                    "unknown item kind: use waveform= or rendition=", error);
}

/* Rejects a second item with the same name, since both would write one
 * object key. */
static ap_status_t check_unique(const ap_profile_t *profile, size_t position,
                                const char *item, ap_error_t *error) {
  const ap_profile_item_t *last = &profile->items[profile->count - 1];
  for (size_t i = 0; i + 1 < profile->count; i++) {
    if (profile->items[i].is_waveform == last->is_waveform &&
        strcmp(profile->items[i].name, last->name) == 0) {
      return item_error(position, item, "repeats an earlier item", error);
    }
  }
  return AP_OK;
}

ap_status_t ap_profile_parse(const char *text, ap_profile_t *profile,
                             ap_error_t *error) {
  memset(profile, 0, sizeof *profile);
  if (!text) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "processing.profile is missing");
  }
  char *copy = strdup(text);
  profile->items = calloc(AP_PROFILE_MAX_ITEMS, sizeof *profile->items);
  if (!copy || !profile->items) {
    free(copy);
    ap_profile_free(profile);
    return AP_NO_MEMORY(error);
  }

  ap_status_t status = AP_OK;
  size_t position = 0;
  char *rest = copy;
  for (char *item = strtok_r(rest, ",", &rest); item && status == AP_OK;
       item = strtok_r(NULL, ",", &rest)) {
    position++;
    if (profile->count == AP_PROFILE_MAX_ITEMS) {
      status = ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                            "processing.profile has more than %d items",
                            AP_PROFILE_MAX_ITEMS);
      break;
    }
    status = parse_item(item, position, &profile->items[profile->count], error);
    if (status == AP_OK) {
      profile->count++;
      status = check_unique(profile, position, item, error);
    }
  }
  if (status == AP_OK && profile->count == 0) {
    status = ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                          "processing.profile '%s' has no items: give at "
                          "least one waveform= or rendition=",
                          text);
  }
  free(copy);
  if (status != AP_OK) {
    ap_profile_free(profile);
  }
  return status;
}

void ap_profile_free(ap_profile_t *profile) {
  if (!profile) {
    return;
  }
  free(profile->items);
  profile->items = NULL;
  profile->count = 0;
}

ap_status_t ap_worker_profile_validate(const char *profile, ap_error_t *error) {
  ap_profile_t parsed;
  ap_status_t status = ap_profile_parse(profile, &parsed, error);
  ap_profile_free(&parsed);
  return status;
}
