/*
 * Writes waveforms of a known stereo signal for the waveform-data check:
 * <folder>/stereo16.dat and .json (split channels, 16 bits) and
 * <folder>/mono8.dat and .json (mono mix, 8 bits). The signal has 950
 * frames at 100 samples per pixel, so the last of its 10 pixels is
 * partial. In pixel p the left channel alternates between -1000p and
 * 1000p + 500 and the right channel between -100p and 100p.
 */
#include <stdio.h>
#include <stdlib.h>

#include <audiopipe/waveform.h>

#include "waveform/waveform_sink.h"

#define FRAMES 950
#define SAMPLES_PER_PIXEL 100

static int write_one(const char *folder, const char *name,
                     ap_waveform_format_t format, int bits, int split,
                     const float *const *planes) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", folder, name);

  ap_error_t error = {0};
  ap_output_t *output = NULL;
  ap_sink_t *sink = NULL;
  ap_waveform_spec_t spec;
  ap_waveform_spec_init(&spec);
  spec.format = format;
  spec.bits = bits;
  spec.samples_per_pixel = SAMPLES_PER_PIXEL;
  spec.split_channels = split;

  ap_stream_format_t stream = {
      .sample_rate = 44100, .channels = 2, .expected_frames = FRAMES};
  ap_status_t status = ap_output_open_file(path, &output, &error);
  if (status == AP_OK) {
    spec.output = output;
    status = ap_waveform_sink_create(&spec, &sink, &error);
  }
  if (status == AP_OK) {
    status = sink->ops->start(sink, &stream, &error);
  }
  if (status == AP_OK) {
    status = sink->ops->write(sink, planes, FRAMES, &error);
  }
  if (status == AP_OK) {
    status = sink->ops->finish(sink, &error);
  }
  if (status == AP_OK) {
    status = ap_output_finish(output, &error);
  }
  if (sink) {
    sink->ops->destroy(sink);
  }
  ap_output_close(output);
  if (status != AP_OK) {
    fprintf(stderr, "writing %s failed: %s\n", path, error.message);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FOLDER\n", argv[0]);
    return 2;
  }

  static float left[FRAMES];
  static float right[FRAMES];
  for (int i = 0; i < FRAMES; i++) {
    int pixel = i / SAMPLES_PER_PIXEL;
    int low = i % 2 == 0;
    left[i] = (float)(low ? -1000 * pixel : 1000 * pixel + 500) / 32768.0f;
    right[i] = (float)(low ? -100 * pixel : 100 * pixel) / 32768.0f;
  }
  const float *planes[2] = {left, right};

  int failures = 0;
  failures +=
      write_one(argv[1], "stereo16.dat", AP_WAVEFORM_DAT, 16, 1, planes);
  failures +=
      write_one(argv[1], "stereo16.json", AP_WAVEFORM_JSON, 16, 1, planes);
  failures += write_one(argv[1], "mono8.dat", AP_WAVEFORM_DAT, 8, 0, planes);
  failures += write_one(argv[1], "mono8.json", AP_WAVEFORM_JSON, 8, 0, planes);
  return failures ? 1 : 0;
}
