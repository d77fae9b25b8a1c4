/*
 * libFuzzer target: feeds each input through ap_fuzz_probe_input and
 * aborts when a status is malformed, so the fuzzer records it as a crash
 * beside the sanitizers' findings.
 */
#include <stdio.h>
#include <stdlib.h>

#include "probe_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ap_fuzz_outcome_t outcome;
  if (ap_fuzz_probe_input(data, size, &outcome) != 0) {
    fprintf(stderr,
            "malformed status: probe %d (%s: %s), process %d (%s: %s)\n",
            outcome.probe_status, ap_error_code_name(outcome.probe_status),
            outcome.probe_error.message, outcome.process_status,
            ap_error_code_name(outcome.process_status),
            outcome.process_error.message);
    abort();
  }
  return 0;
}
