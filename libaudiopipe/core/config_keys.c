/*
 * Every configuration key the library knows, with its type, default and
 * unit. docs/operations.md is generated from the same facts by
 * `audiopipe config --markdown`, so keep descriptions to one sentence.
 */
#include <string.h>

#include "core/config_keys.h"

static const ap_config_key_info_t key_table[] = {
    /* Media limits (see <audiopipe/limits.h>). */
    {"limits.max_input_bytes", "size", "2G", "bytes",
     "Largest input the engine reads; larger inputs fail with input_too_large."},
    {"limits.max_duration", "duration", "6h", "ms",
     "Longest audio accepted; longer inputs fail with duration_limit."},
    {"limits.max_channels", "integer", "32", "channels",
     "Most channels accepted (1 to 255); more fail with unsupported_channel_count."},
    {"limits.max_sample_rate", "integer", "384000", "Hz",
     "Highest sample rate accepted; higher fail with unsupported_sample_rate."},
    {"limits.max_decode_time", "duration", "30m", "ms",
     "Wall-clock budget for decoding one input; past it, decode_time_limit."},
    {"limits.max_decoded_samples", "integer", "16588800000", "samples",
     "Budget of decoded samples (frames times channels) for one input."},

    /* Object store, presigned URLs and virus scanning (libaudiopipe/storage). */
    {"objects.uri", "string", "file://data/objects", "",
     "Object store: file://PATH for a local directory (s3:// is not built yet)."},
    {"public.base_url", "string", NULL, "",
     "Scheme, host and port clients use to reach audiopipe-httpd; presigned URLs start with it."},
    {"signing.secret", "string", NULL, "",
     "HMAC-SHA256 key (at least 32 bytes) for presigned URLs and other signed tokens."},
    {"clamd.address", "string", NULL, "",
     "clamd to scan uploads with: unix:/path/clamd.ctl or tcp:127.0.0.1:3310; unset skips scanning."},
    {"clamd.timeout", "duration", "60s", "ms",
     "Deadline for connecting to clamd and for each read or write of a scan."},
};

size_t ap_config_key_count(void) {
  return sizeof key_table / sizeof key_table[0];
}

const ap_config_key_info_t *ap_config_key_at(size_t index) {
  if (index >= ap_config_key_count()) {
    return NULL;
  }
  return &key_table[index];
}

const ap_config_key_info_t *ap_config_key_find(const char *key) {
  for (size_t i = 0; i < ap_config_key_count(); i++) {
    if (strcmp(key_table[i].key, key) == 0) {
      return &key_table[i];
    }
  }
  return NULL;
}
