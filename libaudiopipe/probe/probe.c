/*
 * The public prober: ap_probe opens a decoder in probe-only mode and
 * returns a copy of its media info, so probing and processing report the
 * same numbers.
 */
#include <string.h>

#include "core/error_internal.h"
#include "probe/decoder_internal.h"
#include "probe/media_info_internal.h"

void ap_probe_options_init(ap_probe_options_t *options) {
  if (!options) {
    return;
  }
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  ap_limits_init(&options->limits);
}

ap_status_t ap_probe(ap_io_t *input, const ap_probe_options_t *options,
                     ap_media_info_t **out, ap_error_t *error) {
  if (!input || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_probe: input and out are required");
  }
  *out = NULL;
  ap_probe_options_t defaults;
  if (!options) {
    ap_probe_options_init(&defaults);
    options = &defaults;
  } else if (options->struct_size < sizeof *options) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_probe: options.struct_size %zu is smaller than "
                        "sizeof(ap_probe_options_t) %zu: initialise the "
                        "options with ap_probe_options_init",
                        options->struct_size, sizeof *options);
  }

  unsigned flags = AP_DECODER_PROBE_ONLY;
  if (options->always_scan) {
    flags |= AP_DECODER_ALWAYS_SCAN;
  }
  ap_decoder_t *decoder = NULL;
  ap_status_t status =
      ap_decoder_open_with(input, &options->limits, flags, &decoder, error);
  if (status != AP_OK) {
    return status;
  }
  ap_media_info_t *info = ap_media_info_copy(ap_decoder_media_info(decoder));
  ap_decoder_close(decoder);
  if (!info) {
    return AP_NO_MEMORY(error);
  }
  *out = info;
  return AP_OK;
}

ap_status_t ap_probe_file(const char *path, const ap_probe_options_t *options,
                          ap_media_info_t **out, ap_error_t *error) {
  ap_io_t *input = NULL;
  ap_status_t status = ap_io_open_file(path, &input, error);
  if (status != AP_OK) {
    return status;
  }
  status = ap_probe(input, options, out, error);
  ap_io_close(input);
  return status;
}
