/*
 * Loudness range (EBU Tech 3342) from short-term loudness values that the
 * caller samples every 100 ms, the rate ffmpeg's ebur128 filter uses.
 * libebur128's own ebur128_loudness_range takes one value per second and
 * reads about 0.2 LU differently, so it is not used.
 *
 * Values go into a histogram of 0.01 LU bins between -70 and +10 LUFS, so
 * memory stays flat over any input length.
 */
#ifndef AP_ANALYSIS_LOUDNESS_RANGE_H
#define AP_ANALYSIS_LOUDNESS_RANGE_H

#include <stdint.h>

typedef struct ap_loudness_range ap_loudness_range_t;

/* Returns NULL when out of memory. */
ap_loudness_range_t *ap_loudness_range_create(void);

/* Adds one short-term value in LUFS; values below the -70 LUFS absolute
 * gate, infinite values and NaN are counted as gated out. */
void ap_loudness_range_add(ap_loudness_range_t *range, double lufs);

/* Computes the range in LU: the 95th minus the 10th percentile of the
 * values above the absolute gate and above the relative gate 20 LU under
 * their mean energy. Returns 0 when no value passed the gates. */
int ap_loudness_range_compute(const ap_loudness_range_t *range, double *lu);

void ap_loudness_range_free(ap_loudness_range_t *range);

#endif
