/*
 * The fuzzing entry point: everything an upload's bytes reach before a
 * person has looked at them (sniffing, probing, decoding, analysis and a
 * waveform), all fed from memory.
 */
#include <string.h>

#include "probe_entry.h"

/* A failed call must name a code the library defines and explain it. */
static int status_is_well_formed(ap_status_t status, const ap_error_t *error) {
  if (status == AP_OK) {
    return 1;
  }
  if ((int)error->code != status) {
    return 0;
  }
  if (strcmp(ap_error_code_name(status), "unknown") == 0) {
    return 0;
  }
  return error->message[0] != '\0' &&
         memchr(error->message, '\0', sizeof error->message) != NULL;
}

static void lower_limits(ap_limits_t *limits) {
  limits->max_decode_seconds = 2.0;
  limits->max_decoded_samples = 250000;
  limits->max_duration_seconds = 600.0;
}

static ap_status_t run_probe(const uint8_t *data, size_t size,
                             ap_error_t *error) {
  ap_io_t *input = NULL;
  ap_status_t status = ap_io_open_memory(data, size, &input, error);
  if (status != AP_OK) {
    return status;
  }

  ap_probe_options_t options;
  ap_probe_options_init(&options);
  lower_limits(&options.limits);

  ap_media_info_t *info = NULL;
  status = ap_probe(input, &options, &info, error);
  if (status == AP_OK) {
    char *json = NULL;
    status = ap_media_info_to_json(info, &json, error);
    ap_free(json);
  }
  ap_media_info_free(info);
  ap_io_close(input);
  return status;
}

static ap_status_t run_process(const uint8_t *data, size_t size,
                               ap_error_t *error) {
  ap_io_t *input = NULL;
  ap_output_t *peaks = NULL;
  ap_process_result_t *result = NULL;

  ap_status_t status = ap_io_open_memory(data, size, &input, error);
  if (status == AP_OK) {
    status = ap_output_open_memory(&peaks, error);
  }

  if (status == AP_OK) {
    ap_waveform_spec_t waveform;
    ap_waveform_spec_init(&waveform);
    waveform.output = peaks;

    ap_process_options_t options;
    ap_process_options_init(&options);
    lower_limits(&options.limits);
    options.waveforms = &waveform;
    options.waveform_count = 1;
    options.max_threads = 1;
    status = ap_process(input, &options, &result, error);
  }

  if (status == AP_OK) {
    char *json = NULL;
    status = ap_process_result_to_json(result, &json, error);
    ap_free(json);
  }

  ap_process_result_free(result);
  ap_output_close(peaks);
  ap_io_close(input);
  return status;
}

int ap_fuzz_probe_input(const uint8_t *data, size_t size,
                        ap_fuzz_outcome_t *outcome) {
  memset(outcome, 0, sizeof *outcome);

  const char *kind = NULL;
  outcome->sniff = ap_sniff(data, size, &kind);
  if ((outcome->sniff == AP_SNIFF_AUDIO ||
       outcome->sniff == AP_SNIFF_NOT_AUDIO) &&
      kind == NULL) {
    return -1;
  }

  outcome->probe_status = run_probe(data, size, &outcome->probe_error);
  if (!status_is_well_formed(outcome->probe_status, &outcome->probe_error)) {
    return -1;
  }

  /* Only inputs that probe cleanly reach the decoder, as in the service. */
  if (outcome->probe_status == AP_OK) {
    outcome->process_status = run_process(data, size, &outcome->process_error);
    if (!status_is_well_formed(outcome->process_status,
                               &outcome->process_error)) {
      return -1;
    }
  }
  return 0;
}
