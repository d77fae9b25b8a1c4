/* Default media limits and their configuration keys. */
#include <string.h>

#include <audiopipe/limits.h>

#include "core/error_internal.h"

void ap_limits_init(ap_limits_t *limits) {
  memset(limits, 0, sizeof *limits);
  limits->struct_size = sizeof *limits;
  limits->max_input_bytes = AP_DEFAULT_MAX_INPUT_BYTES;
  limits->max_duration_seconds = AP_DEFAULT_MAX_DURATION_SECONDS;
  limits->max_channels = AP_DEFAULT_MAX_CHANNELS;
  limits->max_sample_rate = AP_DEFAULT_MAX_SAMPLE_RATE;
  limits->max_decode_seconds = AP_DEFAULT_MAX_DECODE_SECONDS;
  limits->max_decoded_samples = AP_DEFAULT_MAX_DECODED_SAMPLES;
}

/* Reads one integer key and checks it lies in [minimum, maximum]. */
static ap_status_t read_bounded(const ap_config_t *config, const char *key,
                                int64_t minimum, int64_t maximum,
                                int64_t *value, ap_error_t *error) {
  ap_status_t status = ap_config_get_int64(config, key, value, error);
  if (status != AP_OK) {
    return status;
  }
  if (*value < minimum || *value > maximum) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "%s = %lld is out of range: use %lld to %lld", key,
                        (long long)*value, (long long)minimum,
                        (long long)maximum);
  }
  return AP_OK;
}

ap_status_t ap_limits_from_config(const ap_config_t *config,
                                  ap_limits_t *limits, ap_error_t *error) {
  ap_limits_init(limits);

  int64_t value = 0;
  ap_status_t status = read_bounded(config, "limits.max_input_bytes", 0,
                                    INT64_MAX, &value, error);
  if (status != AP_OK) {
    return status;
  }
  limits->max_input_bytes = value;

  status = read_bounded(config, "limits.max_duration", 0, INT64_MAX, &value,
                        error);
  if (status != AP_OK) {
    return status;
  }
  limits->max_duration_seconds = (double)value / 1000.0;

  status = read_bounded(config, "limits.max_channels", 1, 255, &value, error);
  if (status != AP_OK) {
    return status;
  }
  limits->max_channels = (int)value;

  status = read_bounded(config, "limits.max_sample_rate", 1000, 1536000,
                        &value, error);
  if (status != AP_OK) {
    return status;
  }
  limits->max_sample_rate = (int)value;

  status = read_bounded(config, "limits.max_decode_time", 0, INT64_MAX,
                        &value, error);
  if (status != AP_OK) {
    return status;
  }
  limits->max_decode_seconds = (double)value / 1000.0;

  status = read_bounded(config, "limits.max_decoded_samples", 0, INT64_MAX,
                        &value, error);
  if (status != AP_OK) {
    return status;
  }
  limits->max_decoded_samples = value;
  return AP_OK;
}
