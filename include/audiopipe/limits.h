/*
 * Resource limits for media operations. Each limit turns a hostile or
 * broken input into a specific error before it costs unbounded memory or
 * time. A value of 0 means "no limit" for every field except where noted.
 */
#ifndef AUDIOPIPE_LIMITS_H
#define AUDIOPIPE_LIMITS_H

#include <audiopipe/common.h>
#include <audiopipe/config.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_limits {
  size_t struct_size;          /* sizeof(ap_limits_t) */
  int64_t max_input_bytes;     /* AP_ERR_INPUT_TOO_LARGE above this */
  double max_duration_seconds; /* AP_ERR_DURATION_LIMIT above this */
  int max_channels;            /* AP_ERR_CHANNELS_UNSUPPORTED; 1..255 */
  int max_sample_rate;         /* AP_ERR_SAMPLE_RATE_UNSUPPORTED, in Hz */
  double max_decode_seconds;   /* wall-clock budget: AP_ERR_DECODE_TIME_LIMIT */
  int64_t max_decoded_samples; /* frames x channels: AP_ERR_SAMPLE_BUDGET */
} ap_limits_t;

/* Defaults, also the values of the limits.* configuration keys. */
#define AP_DEFAULT_MAX_INPUT_BYTES (2LL * 1024 * 1024 * 1024) /* 2 GiB */
#define AP_DEFAULT_MAX_DURATION_SECONDS (6.0 * 3600.0)       /* 6 hours */
#define AP_DEFAULT_MAX_CHANNELS 32
#define AP_DEFAULT_MAX_SAMPLE_RATE 384000
#define AP_DEFAULT_MAX_DECODE_SECONDS 1800.0
/* 6 hours of 8 channels at 96 kHz. */
#define AP_DEFAULT_MAX_DECODED_SAMPLES (6LL * 3600 * 96000 * 8)

/* Fills `limits` with the defaults above. */
AP_EXPORT void ap_limits_init(ap_limits_t *limits);

/*
 * Fills `limits` from the limits.* keys of `config` (defaults for unset
 * keys). Fails with AP_ERR_INVALID_CONFIG naming a key whose value is out
 * of range.
 */
AP_EXPORT ap_status_t ap_limits_from_config(const ap_config_t *config,
                                            ap_limits_t *limits,
                                            ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
