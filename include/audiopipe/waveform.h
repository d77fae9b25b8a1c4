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
 *
 * Decoded samples become 16-bit values by rounding x * 32768 half away from
 * zero and clamping to -32768..32767, which restores a 16-bit source's own
 * integers. Other sources (24-bit, float, lossy) are rounded the same way.
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
  size_t struct_size; /* sizeof(ap_waveform_spec_t) */
  ap_waveform_format_t format;
  int bits; /* 8 or 16 */
  /* Exactly one of these two is non-zero. With pixels_per_second, samples
   * per pixel is floor(sample_rate / pixels_per_second). */
  int samples_per_pixel;
  int pixels_per_second;
  int split_channels;  /* 0: mix to mono; 1: one track per channel */
  ap_output_t *output; /* borrowed; finished by ap_process */
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

/*
 * Reading waveform files. The HTTP server stores the .dat form and serves
 * JSON converted from it, and tests read back what ap_process wrote.
 */

/* A parsed .dat file, version 1 or 2. Immutable, so one waveform may be
 * read from any number of threads at once. */
typedef struct ap_waveform ap_waveform_t;

/*
 * Parses `size` bytes of a .dat file at `data` into a new waveform in
 * `*out` (free with ap_waveform_free). The bytes are copied, so the caller
 * may release them afterwards. Version 1 files are mono with data at byte
 * 20, version 2 files carry a channel count with data at byte 24. Flag bits
 * other than bit 0 (8-bit values) are ignored.
 *
 * Errors: AP_ERR_EMPTY_INPUT for zero bytes, and AP_ERR_UNSUPPORTED for a
 * version other than 1 or 2. AP_ERR_CORRUPT_INPUT for a truncated header,
 * for a data size other than length x channels x 2 values, and for a
 * sample rate, samples per pixel or channel count (1 to 255) out of range.
 * AP_ERR_NO_MEMORY, and AP_ERR_INVALID_ARGUMENT for NULL pointers.
 */
AP_EXPORT ap_status_t ap_waveform_parse_dat(const void *data, size_t size,
                                            ap_waveform_t **out,
                                            ap_error_t *error);

/* Releases a waveform. NULL is allowed. */
AP_EXPORT void ap_waveform_free(ap_waveform_t *waveform);

/* Header fields: the file's version (1 or 2), channels (1 for version 1),
 * sample rate in Hz, samples per pixel, bits per value (8 or 16) and
 * length in pixels. */
AP_EXPORT int ap_waveform_version(const ap_waveform_t *waveform);
AP_EXPORT int ap_waveform_channels(const ap_waveform_t *waveform);
AP_EXPORT int ap_waveform_sample_rate(const ap_waveform_t *waveform);
AP_EXPORT int ap_waveform_samples_per_pixel(const ap_waveform_t *waveform);
AP_EXPORT int ap_waveform_bits(const ap_waveform_t *waveform);
AP_EXPORT int64_t ap_waveform_length(const ap_waveform_t *waveform);

/*
 * Returns the lowest or highest value of `channel` in `pixel`, in the
 * file's own scale (-128..127 for 8 bits, -32768..32767 for 16 bits).
 * Returns 0 when `pixel` or `channel` is out of range.
 */
AP_EXPORT int ap_waveform_min(const ap_waveform_t *waveform, int64_t pixel,
                              int channel);
AP_EXPORT int ap_waveform_max(const ap_waveform_t *waveform, int64_t pixel,
                              int channel);

/*
 * Converts a .dat file (version 1 or 2) to the JSON form, written to
 * `output` in chunks of at most 64 KiB; the JSON is always version 2. The
 * output is not finished or closed. Fails with the errors of
 * ap_waveform_parse_dat and of ap_output_write.
 */
AP_EXPORT ap_status_t ap_waveform_dat_to_json(const void *data, size_t size,
                                              ap_output_t *output,
                                              ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
