/*
 * Parsing of the --waveform and --rendition values of `audiopipe process`.
 * Both read `KIND[,MODIFIER...]:NUMBER:OUT`, split at the first two colons
 * so the output path may itself contain colons:
 *
 *   --waveform dat:256:peaks.dat          16-bit .dat, 256 samples/pixel
 *   --waveform json,bits=8,split:100pps:peaks.json
 *   --rendition opus:64k:out.opus
 *   --rendition mp3,rate=44100,channels=1:128k:out.mp3
 *   --rendition flac,bits=24::out.flac    empty bit rate: codec default
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Splits `text` at its first two colons into kind, number and path. */
static int split_request(const char *option, char *text, char **kind,
                         char **number, char **path) {
  char *first = strchr(text, ':');
  char *second = first ? strchr(first + 1, ':') : NULL;
  if (!first || !second || second[1] == '\0') {
    cli_usage_error("invalid value \"%s\" for %s: expected "
                    "KIND[,MODIFIER...]:NUMBER:OUT (see --help)",
                    text, option);
    return -1;
  }
  *first = '\0';
  *second = '\0';
  *kind = text;
  *number = first + 1;
  *path = second + 1;
  return 0;
}

/* Returns the value of a `key=value` modifier, or NULL when `modifier`
 * has another key. */
static const char *modifier_value(const char *modifier, const char *key) {
  size_t length = strlen(key);
  if (strncmp(modifier, key, length) == 0 && modifier[length] == '=') {
    return modifier + length + 1;
  }
  return NULL;
}

static int parse_waveform_modifier(const char *modifier,
                                   ap_waveform_spec_t *spec) {
  const char *value = NULL;
  int64_t number = 0;
  if (strcmp(modifier, "split") == 0) {
    spec->split_channels = 1;
  } else if (strcmp(modifier, "mono") == 0) {
    spec->split_channels = 0;
  } else if ((value = modifier_value(modifier, "bits"))) {
    if (cli_parse_int("--waveform bits", value, 8, 16, &number) != 0) {
      return -1;
    }
    if (number != 8 && number != 16) {
      cli_usage_error("invalid value \"%s\" for --waveform bits: expected "
                      "8 or 16",
                      value);
      return -1;
    }
    spec->bits = (int)number;
  } else {
    cli_usage_error("unknown --waveform modifier \"%s\": expected bits=8, "
                    "bits=16, split or mono",
                    modifier);
    return -1;
  }
  return 0;
}

/* Parses the scale: "256" or "256spp" is samples per pixel, "100pps" is
 * pixels per second, empty keeps the default. */
static int parse_waveform_scale(const char *text, ap_waveform_spec_t *spec) {
  if (text[0] == '\0') {
    return 0;
  }

  char digits[32];
  size_t length = strlen(text);
  int per_second = 0;
  if (length > 3 && strcmp(text + length - 3, "pps") == 0) {
    per_second = 1;
    length -= 3;
  } else if (length > 3 && strcmp(text + length - 3, "spp") == 0) {
    length -= 3;
  }
  if (length >= sizeof digits) {
    cli_usage_error("invalid --waveform scale \"%s\": expected samples per "
                    "pixel (256) or pixels per second (100pps)",
                    text);
    return -1;
  }
  memcpy(digits, text, length);
  digits[length] = '\0';

  int64_t number = 0;
  if (per_second) {
    if (cli_parse_int("--waveform pixels per second", digits, 1, 48000,
                      &number) != 0) {
      return -1;
    }
    spec->pixels_per_second = (int)number;
    spec->samples_per_pixel = 0;
  } else {
    if (cli_parse_int("--waveform samples per pixel", digits, 1, 1 << 24,
                      &number) != 0) {
      return -1;
    }
    spec->samples_per_pixel = (int)number;
    spec->pixels_per_second = 0;
  }
  return 0;
}

int cli_parse_waveform_request(char *text, cli_waveform_request_t *request) {
  memset(request, 0, sizeof *request);
  ap_waveform_spec_init(&request->spec);

  char *kind = NULL;
  char *scale = NULL;
  char *path = NULL;
  if (split_request("--waveform", text, &kind, &scale, &path) != 0) {
    return -1;
  }

  char *modifiers = strchr(kind, ',');
  if (modifiers) {
    *modifiers++ = '\0';
  }
  if (strcmp(kind, "dat") == 0) {
    request->spec.format = AP_WAVEFORM_DAT;
  } else if (strcmp(kind, "json") == 0) {
    request->spec.format = AP_WAVEFORM_JSON;
  } else {
    cli_usage_error("invalid --waveform format \"%s\": expected dat or json",
                    kind);
    return -1;
  }

  while (modifiers) {
    char *next = strchr(modifiers, ',');
    if (next) {
      *next++ = '\0';
    }
    if (parse_waveform_modifier(modifiers, &request->spec) != 0) {
      return -1;
    }
    modifiers = next;
  }

  if (parse_waveform_scale(scale, &request->spec) != 0) {
    return -1;
  }
  request->path = path;
  return 0;
}

static int parse_rendition_modifier(const char *modifier,
                                    cli_rendition_request_t *request) {
  ap_rendition_spec_t *spec = &request->spec;
  const char *value = NULL;
  int64_t number = 0;
  if ((value = modifier_value(modifier, "rate"))) {
    if (cli_parse_int("--rendition rate", value, 1000, 768000, &number) != 0) {
      return -1;
    }
    spec->sample_rate = (int)number;
  } else if ((value = modifier_value(modifier, "channels"))) {
    if (cli_parse_int("--rendition channels", value, 1, 2, &number) != 0) {
      return -1;
    }
    spec->channels = (int)number;
  } else if ((value = modifier_value(modifier, "bits"))) {
    if (cli_parse_int("--rendition bits", value, 16, 24, &number) != 0) {
      return -1;
    }
    if (number != 16 && number != 24) {
      cli_usage_error("invalid value \"%s\" for --rendition bits: expected "
                      "16 or 24",
                      value);
      return -1;
    }
    spec->bits_per_sample = (int)number;
  } else if ((value = modifier_value(modifier, "normalize"))) {
    if (cli_parse_double("--rendition normalize", value, -70.0, 0.0,
                         &spec->target_lufs) != 0) {
      return -1;
    }
    spec->normalize = 1;
    request->has_normalize = 1;
  } else if ((value = modifier_value(modifier, "ceiling"))) {
    if (cli_parse_double("--rendition ceiling", value, -70.0, 0.0,
                         &spec->true_peak_ceiling_dbtp) != 0) {
      return -1;
    }
    request->has_ceiling = 1;
  } else if ((value = modifier_value(modifier, "name"))) {
    if (value[0] == '\0') {
      cli_usage_error("--rendition name is empty: give a name such as "
                      "opus_64k");
      return -1;
    }
    spec->name = value;
  } else {
    cli_usage_error("unknown --rendition modifier \"%s\": expected rate=, "
                    "channels=, bits=, normalize=, ceiling= or name=",
                    modifier);
    return -1;
  }
  return 0;
}

int cli_parse_rendition_request(char *text, cli_rendition_request_t *request) {
  memset(request, 0, sizeof *request);
  ap_rendition_spec_init(&request->spec);

  char *kind = NULL;
  char *bitrate = NULL;
  char *path = NULL;
  if (split_request("--rendition", text, &kind, &bitrate, &path) != 0) {
    return -1;
  }

  char *modifiers = strchr(kind, ',');
  if (modifiers) {
    *modifiers++ = '\0';
  }
  ap_error_t error = {0};
  if (ap_rendition_codec_parse(kind, &request->spec.codec, &error) != AP_OK) {
    cli_usage_error("invalid --rendition codec \"%s\": expected opus, mp3, "
                    "aac, flac or wav",
                    kind);
    return -1;
  }

  while (modifiers) {
    char *next = strchr(modifiers, ',');
    if (next) {
      *next++ = '\0';
    }
    if (parse_rendition_modifier(modifiers, request) != 0) {
      return -1;
    }
    modifiers = next;
  }

  if (bitrate[0] != '\0') {
    if (request->spec.codec == AP_RENDITION_FLAC ||
        request->spec.codec == AP_RENDITION_WAV) {
      cli_usage_error("--rendition %s is lossless and takes no bit rate, got "
                      "\"%s\": leave it empty (%s::OUT)",
                      kind, bitrate, kind);
      return -1;
    }
    if (cli_parse_bitrate("--rendition bit rate", bitrate,
                          &request->spec.bitrate) != 0) {
      return -1;
    }
  }

  request->path = path;
  return 0;
}
