/*
 * Tutorial: measure the loudness of an audio file and write its waveform
 * in one decode pass.
 *
 *   process_file case.wav peaks.dat
 *
 * prints the integrated loudness, the true peak and the waveform's width
 * in pixels, and writes an audiowaveform .dat file that peaks.js reads.
 */
#include <stdio.h>

#include <audiopipe/audiopipe.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s INPUT WAVEFORM.dat\n", argv[0]);
    return 2;
  }

  ap_error_t error = {0};
  ap_io_t *input = NULL;
  ap_output_t *peaks = NULL;
  ap_process_result_t *result = NULL;
  int exit_code = 1;

  if (ap_io_open_file(argv[1], &input, &error) != AP_OK) {
    goto done;
  }

  /* A file output is written under a temporary name and renamed into
   * place only when ap_process succeeds, so a failure leaves nothing. */
  if (ap_output_open_file(argv[2], &peaks, &error) != AP_OK) {
    goto done;
  }

  /* One waveform: 16-bit .dat at 256 samples per pixel, channels mixed. */
  ap_waveform_spec_t waveform;
  ap_waveform_spec_init(&waveform);
  waveform.output = peaks;

  /* Process options start with every analysis enabled and the default
   * limits; add the waveform. Renditions would be added the same way. */
  ap_process_options_t options;
  ap_process_options_init(&options);
  options.waveforms = &waveform;
  options.waveform_count = 1;

  if (ap_process(input, &options, &result, &error) != AP_OK) {
    goto done;
  }

  /* Loudness is undefined for inputs shorter than one 400 ms gating
   * block, so the getter returns 0 and the reason instead of a number. */
  const ap_analysis_t *analysis = ap_process_result_analysis(result);
  double lufs = 0.0;
  if (ap_analysis_integrated_lufs(analysis, &lufs)) {
    printf("integrated_loudness: %.1f LUFS\n", lufs);
  } else {
    printf("integrated_loudness: undefined (%s)\n",
           ap_analysis_loudness_undefined_reason(analysis));
  }
  printf("true_peak: %.1f dBTP\n", ap_analysis_true_peak_dbtp(analysis));
  printf("waveform_pixels: %lld\n",
         (long long)ap_process_result_waveform_pixels(result, 0));
  exit_code = 0;

done:
  if (exit_code != 0) {
    fprintf(stderr, "%s: %s (%s)\n", argv[1], error.message,
            ap_error_code_name((int)error.code));
  }

  /* Everything is released in reverse order; each free accepts NULL. */
  ap_process_result_free(result);
  ap_output_close(peaks);
  ap_io_close(input);
  return exit_code;
}
