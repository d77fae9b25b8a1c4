/*
 * The in-memory waveform shared by the sink, the .dat parser and the
 * writers of both file forms, so that every path writes the same bytes.
 */
#ifndef AP_WAVEFORM_INTERNAL_H
#define AP_WAVEFORM_INTERNAL_H

#include <stdint.h>

#include <audiopipe/waveform.h>

/* Highest pixel count a file can carry: the .dat length field is a
 * uint32. */
#define AP_WAVEFORM_MAX_PIXELS UINT32_MAX

/* Highest channel count the parser accepts, the largest max_channels limit
 * the library allows. */
#define AP_WAVEFORM_MAX_CHANNELS 255

struct ap_waveform {
  int version;
  int channels;
  int sample_rate;
  int samples_per_pixel;
  int bits;
  uint32_t length; /* pixels */
  /* length x channels pairs, min then max for each channel in turn, in
   * the scale of `bits`. Owned by the waveform; NULL when length is 0. */
  int16_t *values;
};

/*
 * Writes `waveform` to `output` as a version 2 .dat file or as JSON,
 * streaming through a fixed 64 KiB buffer, so the only memory the pixels
 * cost is the waveform's own array. Does not finish the output.
 */
ap_status_t ap_waveform_write(const ap_waveform_t *waveform,
                              ap_waveform_format_t format, ap_output_t *output,
                              ap_error_t *error);

#endif
