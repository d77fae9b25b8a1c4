/*
 * Waveform peaks in the formats of BBC audiowaveform, which peaks.js and
 * wavesurfer.js read unchanged:
 *
 * - binary `.dat` version 2, little-endian: int32 version (2), uint32 flags
 *   (bit 0 set for 8-bit values), int32 sample rate, int32 samples per
 *   pixel, uint32 length in pixels, int32 channels, then for each pixel the
 *   min and max of each channel in turn, as int8 or int16;
 * - JSON: {"version":2,"channels":..,"sample_rate":..,"samples_per_pixel":..,
 *   "bits":..,"length":..,"data":[...]} with `data` in the same order.
 *
 * Values are the lowest and highest 16-bit sample in each pixel's span; a
 * last partial pixel is kept. 8-bit values are the 16-bit values divided by
 * 256, truncated toward zero. A mono mix is the integer mean of the
 * channels' 16-bit values, as audiowaveform computes it.
 */
#ifndef AUDIOPIPE_WAVEFORM_H
#define AUDIOPIPE_WAVEFORM_H

#include <audiopipe/common.h>
#include <audiopipe/error.h>
#include <audiopipe/io.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ap_waveform_format {
  AP_WAVEFORM_DAT = 0, /* binary .dat, version 2 */
  AP_WAVEFORM_JSON = 1
} ap_waveform_format_t;

/* One waveform to produce during ap_process. Initialise with
 * ap_waveform_spec_init. */
typedef struct ap_waveform_spec {
  size_t struct_size;          /* sizeof(ap_waveform_spec_t) */
  ap_waveform_format_t format;
  int bits;                    /* 8 or 16 */
  /* Exactly one of these two is non-zero. With pixels_per_second, samples
   * per pixel is floor(sample_rate / pixels_per_second). */
  int samples_per_pixel;
  int pixels_per_second;
  int split_channels;          /* 0: mix to mono; 1: one track per channel */
  ap_output_t *output;         /* borrowed; finished by ap_process */
} ap_waveform_spec_t;

/* Defaults: .dat, 16 bits, 256 samples per pixel, mono mix, no output. */
AP_EXPORT void ap_waveform_spec_init(ap_waveform_spec_t *spec);

/*
 * Checks a spec without running anything: bits, pixel scale (1 to 2^24
 * samples per pixel, 1 to 48000 pixels per second), output present.
 * Fails with AP_ERR_INVALID_ARGUMENT naming the field.
 */
AP_EXPORT ap_status_t ap_waveform_spec_validate(const ap_waveform_spec_t *spec,
                                                ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
