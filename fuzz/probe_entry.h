/*
 * The fuzzing entry point, shared by the libFuzzer target fuzz_probe and
 * by the regression test that replays every saved crash input in the
 * normal test suite.
 */
#ifndef AUDIOPIPE_FUZZ_PROBE_ENTRY_H
#define AUDIOPIPE_FUZZ_PROBE_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include <audiopipe/audiopipe.h>

/* What one input produced at each stage. */
typedef struct ap_fuzz_outcome {
  ap_sniff_result_t sniff;
  ap_status_t probe_status;
  ap_error_t probe_error;
  ap_status_t process_status; /* AP_OK too when the probe failed first */
  ap_error_t process_error;
} ap_fuzz_outcome_t;

/*
 * Runs ap_sniff, ap_probe and a short ap_process (every analysis and a
 * .dat waveform written to memory) on `size` bytes at `data`, read
 * through ap_io_open_memory. Limits are lowered so that no single input
 * can decode for long: 2 s of decoding wall clock, 250 000 decoded
 * samples and 10 minutes of declared audio. Returns 0 when every status
 * is well formed (AP_OK, or a known error code with a message), or -1
 * otherwise.
 */
int ap_fuzz_probe_input(const uint8_t *data, size_t size,
                        ap_fuzz_outcome_t *outcome);

#endif
