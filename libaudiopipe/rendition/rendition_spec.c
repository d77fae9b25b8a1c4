/*
 * Rendition specs: codec names, defaults, the checks run before any
 * encoding starts, and the per-codec facts those checks and the encoder
 * sink share.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "rendition/rendition_internal.h"

/* MPEG-1, 2 and 2.5 Layer III rates (ISO/IEC 11172-3, 13818-3). */
static const int mp3_sample_rates[] = {8000,  11025, 12000, 16000, 22050,
                                       24000, 32000, 44100, 48000, 0};

/* The rates with an AAC sampling frequency index (ISO/IEC 14496-3). */
static const int aac_sample_rates[] = {7350,  8000,  11025, 12000, 16000,
                                       22050, 24000, 32000, 44100, 48000,
                                       64000, 88200, 96000, 0};

/* Ogg Opus always carries 48 kHz audio (RFC 7845: the decoder outputs 48
 * kHz), so the encoder is always fed 48 kHz. */
static const int opus_sample_rates[] = {48000, 0};

static const ap_rendition_codec_info_t codec_table[] = {
    {AP_RENDITION_OPUS, "opus", "libopus", "ogg", 1, 64000, 6000, 510000,
     opus_sample_rates, 48000, 48000, 2},
    {AP_RENDITION_MP3, "mp3", "libmp3lame", "mp3", 1, 128000, 32000, 320000,
     mp3_sample_rates, 8000, 48000, 2},
    {AP_RENDITION_AAC, "aac", "aac", "ipod", 1, 128000, 32000, 512000,
     aac_sample_rates, 7350, 96000, 2},
    /* FFmpeg's FLAC encoder (flacenc.c) codes any rate below 65535 Hz,
     * and multiples of 10 Hz below 655350 Hz. */
    {AP_RENDITION_FLAC, "flac", "flac", "flac", 0, 0, 0, 0, NULL, 1, 655340, 8},
    /* WAV's rate field is 32 bits wide. The cap is twice the library's
     * default maximum input rate of 384 kHz. */
    {AP_RENDITION_WAV, "wav", NULL, "wav", 0, 0, 0, 0, NULL, 1, 768000, 32},
};

const ap_rendition_codec_info_t *
ap_rendition_codec_info(ap_rendition_codec_t codec) {
  for (size_t i = 0; i < sizeof codec_table / sizeof codec_table[0]; i++) {
    if (codec_table[i].codec == codec) {
      return &codec_table[i];
    }
  }
  return NULL;
}

const char *ap_rendition_codec_name(ap_rendition_codec_t codec) {
  const ap_rendition_codec_info_t *info = ap_rendition_codec_info(codec);
  return info ? info->name : NULL;
}

ap_status_t ap_rendition_codec_parse(const char *name,
                                     ap_rendition_codec_t *codec,
                                     ap_error_t *error) {
  if (!name || !codec) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_rendition_codec_parse: name and codec are "
                        "required");
  }
  for (size_t i = 0; i < sizeof codec_table / sizeof codec_table[0]; i++) {
    if (strcmp(codec_table[i].name, name) == 0) {
      *codec = codec_table[i].codec;
      return AP_OK;
    }
  }
  return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                      "invalid rendition codec \"%.64s\": use one of opus, "
                      "mp3, aac, flac, wav",
                      name);
}

void ap_rendition_spec_init(ap_rendition_spec_t *spec) {
  if (!spec) {
    return;
  }
  memset(spec, 0, sizeof *spec);
  spec->struct_size = sizeof *spec;
  spec->codec = AP_RENDITION_OPUS;
  spec->bitrate = 0;
  spec->target_lufs = -16.0;
  spec->true_peak_ceiling_dbtp = -1.0;
}

/* Highest MP3 bit rate at `sample_rate`: MPEG-1 (32 kHz and up) reaches
 * 320 kb/s and MPEG-2 (16 to 24 kHz) 160 kb/s. LAME 3.100 caps MPEG-2.5
 * (8 to 12 kHz) at 64 kb/s without an error, so that cap is checked. */
static int64_t mp3_max_bitrate(int sample_rate) {
  if (sample_rate >= 32000) {
    return 320000;
  }
  return sample_rate >= 16000 ? 160000 : 64000;
}

int64_t ap_rendition_effective_bitrate(const ap_rendition_spec_t *spec) {
  const ap_rendition_codec_info_t *info = ap_rendition_codec_info(spec->codec);
  if (!info || !info->lossy) {
    return 0;
  }
  if (spec->bitrate != 0) {
    return spec->bitrate;
  }
  if (spec->codec == AP_RENDITION_MP3 && spec->sample_rate != 0 &&
      mp3_max_bitrate(spec->sample_rate) < info->default_bitrate) {
    return mp3_max_bitrate(spec->sample_rate);
  }
  return info->default_bitrate;
}

static int rate_is_listed(const int *rates, int rate) {
  for (size_t i = 0; rates[i] != 0; i++) {
    if (rates[i] == rate) {
      return 1;
    }
  }
  return 0;
}

/* Formats a 0-terminated rate list as "8000, 11025, ..." for messages. */
static void format_rates(const int *rates, char *buffer, size_t size) {
  size_t used = 0;
  buffer[0] = '\0';
  for (size_t i = 0; rates[i] != 0 && used < size; i++) {
    int written = snprintf(buffer + used, size - used, "%s%d",
                           i > 0 ? ", " : "", rates[i]);
    if (written < 0) {
      return;
    }
    used += (size_t)written;
  }
}

static int name_character_is_allowed(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

static ap_status_t validate_name(const char *name, ap_error_t *error) {
  size_t length = strlen(name);
  if (length == 0 || length > AP_RENDITION_NAME_MAX) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition name has %zu characters: use 1 to %d, or "
                        "NULL to derive one from codec and bit rate",
                        length, AP_RENDITION_NAME_MAX);
  }
  for (size_t i = 0; i < length; i++) {
    if (!name_character_is_allowed(name[i])) {
      return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                          "rendition name \"%.64s\" contains character 0x%02x "
                          "at offset %zu: use letters, digits, '_', '-' and "
                          "'.' only",
                          name, (unsigned)(unsigned char)name[i], i);
    }
  }
  return AP_OK;
}

static ap_status_t validate_sample_rate(const ap_rendition_spec_t *spec,
                                        const ap_rendition_codec_info_t *info,
                                        ap_error_t *error) {
  if (spec->sample_rate == 0) {
    return AP_OK;
  }
  if (info->sample_rates) {
    if (rate_is_listed(info->sample_rates, spec->sample_rate)) {
      return AP_OK;
    }
    char rates[256];
    format_rates(info->sample_rates, rates, sizeof rates);
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition sample_rate %d Hz is not supported by %s: "
                        "use 0 (source rate) or one of %s",
                        spec->sample_rate, info->name, rates);
  }
  if (spec->sample_rate < info->min_sample_rate ||
      spec->sample_rate > info->max_sample_rate) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition sample_rate %d Hz is out of range for %s: "
                        "use 0 (source rate) or %d to %d",
                        spec->sample_rate, info->name, info->min_sample_rate,
                        info->max_sample_rate);
  }
  if (spec->codec == AP_RENDITION_FLAC && spec->sample_rate >= 65535 &&
      spec->sample_rate % 10 != 0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition sample_rate %d Hz cannot be coded by "
                        "flac: from 65535 Hz up use a multiple of 10 Hz",
                        spec->sample_rate);
  }
  return AP_OK;
}

static ap_status_t validate_normalization(const ap_rendition_spec_t *spec,
                                          ap_error_t *error) {
  if (!spec->normalize) {
    return AP_OK;
  }
  if (!isfinite(spec->target_lufs) || spec->target_lufs < -70.0 ||
      spec->target_lufs > 0.0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition target_lufs %g is out of range: use -70 "
                        "to 0 LUFS",
                        spec->target_lufs);
  }
  if (!isfinite(spec->true_peak_ceiling_dbtp) ||
      spec->true_peak_ceiling_dbtp < -20.0 ||
      spec->true_peak_ceiling_dbtp > 0.0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition true_peak_ceiling_dbtp %g is out of range: "
                        "use -20 to 0 dBTP",
                        spec->true_peak_ceiling_dbtp);
  }
  return AP_OK;
}

ap_status_t ap_rendition_spec_validate(const ap_rendition_spec_t *spec,
                                       ap_error_t *error) {
  if (!spec) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_rendition_spec_validate: spec is required");
  }
  if (spec->struct_size < sizeof(ap_rendition_spec_t)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition struct_size %zu is smaller than "
                        "sizeof(ap_rendition_spec_t) %zu: initialise the "
                        "spec with ap_rendition_spec_init",
                        spec->struct_size, sizeof(ap_rendition_spec_t));
  }

  const ap_rendition_codec_info_t *info = ap_rendition_codec_info(spec->codec);
  if (!info) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition codec %d is invalid: use one of the "
                        "AP_RENDITION_* values",
                        (int)spec->codec);
  }

  if (info->lossy && spec->bitrate != 0 &&
      (spec->bitrate < info->min_bitrate ||
       spec->bitrate > info->max_bitrate)) {
    return ap_error_set(
        error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
        "rendition bitrate %lld b/s is out of range for %s: "
        "use 0 (default %lld) or %lld to %lld bits per second",
        (long long)spec->bitrate, info->name, (long long)info->default_bitrate,
        (long long)info->min_bitrate, (long long)info->max_bitrate);
  }

  ap_status_t status = validate_sample_rate(spec, info, error);
  if (status != AP_OK) {
    return status;
  }

  if (spec->codec == AP_RENDITION_MP3 && spec->sample_rate != 0 &&
      spec->bitrate > mp3_max_bitrate(spec->sample_rate)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition bitrate %lld b/s is out of range for mp3 "
                        "at sample_rate %d Hz: use 32000 to %lld bits per "
                        "second at this rate, or a higher sample_rate",
                        (long long)spec->bitrate, spec->sample_rate,
                        (long long)mp3_max_bitrate(spec->sample_rate));
  }

  if (spec->channels < 0 || spec->channels > 2) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition channels %d is invalid: use 0 (source "
                        "layout), 1 (mono) or 2 (stereo)",
                        spec->channels);
  }

  /* libopus allows 256 kb/s per channel. */
  if (spec->codec == AP_RENDITION_OPUS && spec->channels == 1 &&
      spec->bitrate > 256000) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition bitrate %lld b/s is out of range for mono "
                        "opus: use 6000 to 256000 bits per second, or set "
                        "channels to 2",
                        (long long)spec->bitrate);
  }

  if (spec->bits_per_sample != 0 && spec->bits_per_sample != 16 &&
      spec->bits_per_sample != 24) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition bits_per_sample %d is invalid: use 0 or "
                        "16 for 16-bit, or 24",
                        spec->bits_per_sample);
  }

  status = validate_normalization(spec, error);
  if (status != AP_OK) {
    return status;
  }

  if (spec->name) {
    status = validate_name(spec->name, error);
    if (status != AP_OK) {
      return status;
    }
  }

  if (!spec->output) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition output is missing: open one with "
                        "ap_output_open_file, _memory or _callbacks");
  }
  return AP_OK;
}

int64_t ap_rendition_aac_max_bitrate(int sample_rate, int channels) {
  return (int64_t)6144 * sample_rate / 1024 * channels;
}

int ap_rendition_pick_sample_rate(const ap_rendition_codec_info_t *info,
                                  int requested, int source_rate,
                                  int64_t bitrate, int channels) {
  int target = requested > 0 ? requested : source_rate;
  if (!info->sample_rates) {
    if (target < info->min_sample_rate) {
      return info->min_sample_rate;
    }
    if (target > info->max_sample_rate) {
      return info->max_sample_rate;
    }
    if (info->codec == AP_RENDITION_FLAC && target >= 65535) {
      target = (target + 5) / 10 * 10;
      return target > info->max_sample_rate ? info->max_sample_rate : target;
    }
    return target;
  }

  if (requested > 0 && rate_is_listed(info->sample_rates, requested)) {
    return requested;
  }
  int best = 0;
  for (size_t i = 0; info->sample_rates[i] != 0; i++) {
    int rate = info->sample_rates[i];
    if (info->codec == AP_RENDITION_MP3 && bitrate > mp3_max_bitrate(rate)) {
      continue;
    }
    if (info->codec == AP_RENDITION_AAC &&
        bitrate > ap_rendition_aac_max_bitrate(rate, channels)) {
      continue;
    }
    /* The list is ascending, so `<=` keeps the higher rate on a tie. */
    if (best == 0 || abs(rate - target) <= abs(best - target)) {
      best = rate;
    }
  }
  return best;
}

void ap_rendition_derive_name(const ap_rendition_spec_t *spec, char *buffer,
                              size_t size) {
  if (spec->name) {
    snprintf(buffer, size, "%s", spec->name);
    return;
  }
  const ap_rendition_codec_info_t *info = ap_rendition_codec_info(spec->codec);
  const char *codec = info ? info->name : "unknown";
  if (info && info->lossy) {
    snprintf(buffer, size, "%s_%lldk", codec,
             (long long)(ap_rendition_effective_bitrate(spec) / 1000));
    return;
  }
  int bits = spec->bits_per_sample ? spec->bits_per_sample : 16;
  snprintf(buffer, size, "%s_%dbit", codec, bits);
}
