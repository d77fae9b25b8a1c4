/*
 * True-peak meter: oversamples every channel with a polyphase
 * windowed-sinc FIR and takes the largest magnitude of the oversampled
 * signal and of the source samples.
 *
 * The interpolator has 32 taps per phase (Kaiser window, beta 9, cutoff
 * at the source Nyquist frequency): the filter libswresample 4.7 builds
 * by default when ffmpeg's ebur128 filter upsamples to 192 kHz. Only the
 * phases between source samples are computed, since the source samples
 * are scanned directly.
 *
 * Oversampling factor: rates below 192 kHz are oversampled, rates at or
 * above it are not (BS.1770-4 Annex 2 requires at least 192 kHz). When
 * the rate divides 192 kHz the factor is 192 kHz / rate, so the
 * oversampled instants are those of ffmpeg's 192 kHz grid (48 kHz: 4x).
 * Otherwise (44.1 kHz and its multiples) the instants cannot coincide
 * with ffmpeg's, which upsamples a 48 kHz resampling of the source, and
 * the factor is ceil(384 kHz / rate), 9x at 44.1 kHz. A denser grid
 * misses less of a peak between two of its points: at 4x a tone near
 * 20 kHz can read up to 0.5 dB low, at 9x 0.1 dB, which keeps 44.1 kHz
 * inputs within 0.02 dB of ffmpeg on the test cases where 4x or 5x
 * missed by up to 0.07 dB.
 */
#ifndef AP_ANALYSIS_TRUE_PEAK_H
#define AP_ANALYSIS_TRUE_PEAK_H

#include <audiopipe/error.h>

typedef struct ap_true_peak_meter ap_true_peak_meter_t;

ap_status_t ap_true_peak_meter_create(int channels, int sample_rate,
                                      ap_true_peak_meter_t **out,
                                      ap_error_t *error);

/* The oversampling factor chosen for `sample_rate` (1: none). */
int ap_true_peak_oversampling(int sample_rate);

/* Measures `frames` planar frames. */
void ap_true_peak_meter_write(ap_true_peak_meter_t *meter,
                              const float *const *planes, int frames);

/* Interpolates past the last sample (as if zeros followed). Call once
 * after the last write. */
void ap_true_peak_meter_finish(ap_true_peak_meter_t *meter);

/* The largest magnitude so far, linear (1.0 is full scale); never below
 * the sample peak. */
double ap_true_peak_meter_peak(const ap_true_peak_meter_t *meter);

void ap_true_peak_meter_free(ap_true_peak_meter_t *meter);

#endif
