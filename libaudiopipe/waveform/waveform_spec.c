/* Defaults and validation of ap_waveform_spec_t. */
#include <string.h>

#include <audiopipe/waveform.h>

#include "core/error_internal.h"

#define DEFAULT_SAMPLES_PER_PIXEL 256
#define MAX_SAMPLES_PER_PIXEL (1 << 24)
#define MAX_PIXELS_PER_SECOND 48000

void ap_waveform_spec_init(ap_waveform_spec_t *spec) {
  if (!spec) {
    return;
  }
  memset(spec, 0, sizeof *spec);
  spec->struct_size = sizeof *spec;
  spec->format = AP_WAVEFORM_DAT;
  spec->bits = 16;
  spec->samples_per_pixel = DEFAULT_SAMPLES_PER_PIXEL;
  spec->pixels_per_second = 0;
  spec->split_channels = 0;
  spec->output = NULL;
}

ap_status_t ap_waveform_spec_validate(const ap_waveform_spec_t *spec,
                                      ap_error_t *error) {
  if (!spec) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "waveform spec is NULL: pass a spec filled by "
                        "ap_waveform_spec_init");
  }
  if (spec->struct_size < sizeof(ap_waveform_spec_t)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "waveform struct_size %zu is smaller than "
                        "sizeof(ap_waveform_spec_t) %zu: initialise the spec "
                        "with ap_waveform_spec_init",
                        spec->struct_size, sizeof(ap_waveform_spec_t));
  }
  if (spec->format != AP_WAVEFORM_DAT && spec->format != AP_WAVEFORM_JSON) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "waveform format %d is invalid: use AP_WAVEFORM_DAT "
                        "(0) or AP_WAVEFORM_JSON (1)",
                        (int)spec->format);
  }
  if (spec->bits != 8 && spec->bits != 16) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "waveform bits %d is invalid: use 8 or 16", spec->bits);
  }
  if ((spec->samples_per_pixel != 0) == (spec->pixels_per_second != 0)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "waveform samples_per_pixel (%d) and "
                        "pixels_per_second (%d) are both %s: set exactly one "
                        "of them",
                        spec->samples_per_pixel, spec->pixels_per_second,
                        spec->samples_per_pixel ? "set" : "zero");
  }
  if (spec->samples_per_pixel != 0 &&
      (spec->samples_per_pixel < 1 ||
       spec->samples_per_pixel > MAX_SAMPLES_PER_PIXEL)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "waveform samples_per_pixel %d is out of range: use "
                        "1 to %d",
                        spec->samples_per_pixel, MAX_SAMPLES_PER_PIXEL);
  }
  if (spec->pixels_per_second != 0 &&
      (spec->pixels_per_second < 1 ||
       spec->pixels_per_second > MAX_PIXELS_PER_SECOND)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "waveform pixels_per_second %d is out of range: use "
                        "1 to %d",
                        spec->pixels_per_second, MAX_PIXELS_PER_SECOND);
  }
  if (spec->split_channels != 0 && spec->split_channels != 1) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "waveform split_channels %d is invalid: use 0 (mono "
                        "mix) or 1 (one track per channel)",
                        spec->split_channels);
  }
  if (!spec->output) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "waveform output is missing: open one with "
                        "ap_output_open_file or ap_output_open_memory");
  }
  return AP_OK;
}
