/*
 * EBU R128 loudness meter (ITU-R BS.1770-4, EBU Tech 3341 and 3342) in one
 * pass over planar float samples. K-weighting, squaring and summing happen
 * in one loop per channel. Everything else is derived from the weighted
 * mean-square energy of each 100 ms sub-block.
 *
 * - momentary loudness: the mean of 4 consecutive sub-blocks (400 ms),
 *   sampled at every sub-block boundary once 4 are complete;
 * - short-term loudness: the mean of 30 sub-blocks (3 s), sampled the
 *   same way once 30 are complete; these values also feed the loudness
 *   range (see loudness_range.h);
 * - integrated loudness: the BS.1770-4 gating blocks are the momentary
 *   windows (400 ms with 75 % overlap), gated at -70 LUFS and then 10 LU
 *   under the mean energy of the blocks that passed the absolute gate.
 *
 * The K-weighting filter is the two biquads of BS.1770-4 (a high shelf
 * and the RLB high-pass), with coefficients derived for the sample rate
 * by the bilinear transform from the analogue parameters that libebur128
 * 1.2.6 and ffmpeg 5.1's ebur128 filter use, so at 48 kHz they are the
 * coefficients BS.1770-4 tabulates. Filter state and sums are double.
 *
 * Gating blocks go into a histogram of 0.01 LU bins that also sums their
 * energies, so memory stays flat over any input length. Only the blocks
 * in the one bin that straddles the relative gate are placed by their
 * bin's centre, which moves the integrated value by well under 0.01 LU.
 */
#ifndef AP_ANALYSIS_LOUDNESS_METER_H
#define AP_ANALYSIS_LOUDNESS_METER_H

#include <stdint.h>

#include <audiopipe/error.h>

typedef struct ap_loudness_meter ap_loudness_meter_t;

/* What the meter measured; a loudness of -inf means digital silence. */
typedef struct ap_loudness_summary {
  int64_t sub_blocks; /* complete 100 ms sub-blocks */
  /* 0 when fewer than 4 sub-blocks were complete or no gating block
   * passed the absolute gate. */
  int integrated_defined;
  double integrated_lufs;
  double max_momentary_lufs;  /* -inf until 4 sub-blocks */
  double max_short_term_lufs; /* -inf until 30 sub-blocks */
  /* 0 when fewer than 30 sub-blocks were complete or no short-term value
   * passed the gates. */
  int range_defined;
  double range_lu;
} ap_loudness_summary_t;

/*
 * Creates a meter for `channels` planar channels at `sample_rate` Hz.
 * `weights` holds one BS.1770-4 channel weight per channel (1.0 for
 * left, right and centre, 1.41 for surround channels, 0 for LFE, which is
 * then not filtered at all); it is copied. A 100 ms sub-block is
 * (sample_rate + 5) / 10 frames, as in libebur128.
 */
ap_status_t ap_loudness_meter_create(int channels, int sample_rate,
                                     const double *weights,
                                     ap_loudness_meter_t **out,
                                     ap_error_t *error);

/* Measures `frames` frames; planes[c] contains channel c. */
void ap_loudness_meter_write(ap_loudness_meter_t *meter,
                             const float *const *planes, int frames);

/* Computes the summary of everything written so far. A trailing partial
 * sub-block is not counted, as in libebur128 and ffmpeg. */
void ap_loudness_meter_summarize(const ap_loudness_meter_t *meter,
                                 ap_loudness_summary_t *summary);

void ap_loudness_meter_free(ap_loudness_meter_t *meter);

#endif
