/*
 * Analysis results: EBU R128 / ITU-R BS.1770-4 loudness, true peak, sample
 * peak, RMS, clipping and silence, all measured on float samples during
 * the decode pass of ap_process. Loudness is measured at the source
 * sample rate (and agrees with libebur128 within 0.05 LU), except that
 * inputs below 44.1 kHz are resampled to 48 kHz first, because the
 * K-weighting filter derived for a low rate drifts near Nyquist (an
 * 8 kHz recording read 0.2 LU high). The
 * results agree with ffmpeg 5.1's ebur128 filter within 0.1 LU and 0.1 dB
 * on the project's test files.
 *
 * Channel weights follow BS.1770-4 from the channel mask (the default
 * layout for the channel count when there is none): 1.0 for front
 * channels, 1.41 for side, back and other rear channels, and LFE
 * excluded.
 *
 * Mono convention: a mono input is measured as one channel with weight
 * 1.0, as BS.1770 defines it (a −23 dBFS 1 kHz sine reads −26.0 LUFS).
 * AP_LOUDNESS_DUAL_MONO measures it as two identical channels instead
 * (the same sine reads −23.0 LUFS), matching ffmpeg's ebur128 dualmono
 * and most broadcast meters. The result records which was used. Inputs
 * with two or more channels are not affected.
 *
 * An ap_analysis_t is immutable once returned and may be read from any
 * number of threads.
 */
#ifndef AUDIOPIPE_ANALYSIS_H
#define AUDIOPIPE_ANALYSIS_H

#include <audiopipe/common.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_analysis ap_analysis_t;

typedef enum ap_mono_convention {
  AP_LOUDNESS_MONO_SINGLE = 0, /* BS.1770: one channel, weight 1.0 */
  AP_LOUDNESS_DUAL_MONO = 1    /* mono counted as left plus right */
} ap_mono_convention_t;

/*
 * Integrated loudness in LUFS. Returns 1 and stores the value when it is
 * defined; returns 0 when it is not (the input is shorter than one 400 ms
 * gating block, or every block is below the −70 LUFS absolute gate), and
 * ap_analysis_loudness_undefined_reason then returns which.
 */
AP_EXPORT int ap_analysis_integrated_lufs(const ap_analysis_t *analysis,
                                          double *lufs);
/* "too_short", "below_absolute_gate", or NULL when loudness is defined. */
AP_EXPORT const char *
ap_analysis_loudness_undefined_reason(const ap_analysis_t *analysis);
/* Loudness range in LU (EBU Tech 3342) from short-term loudness taken
 * every 100 ms, as ffmpeg's ebur128 filter does. (libebur128's
 * ebur128_loudness_range takes one value a second and reads about 0.2 LU
 * differently.) Returns 0 when undefined: less than 3 s of audio, or no
 * short-term value above the −70 LUFS gate. */
AP_EXPORT int ap_analysis_loudness_range(const ap_analysis_t *analysis,
                                         double *lu);
/* Maximum momentary (400 ms) and short-term (3 s) loudness in LUFS,
 * sampled every 100 ms. Return 0 when undefined: the input is shorter
 * than the window, or digitally silent. */
AP_EXPORT int ap_analysis_max_momentary_lufs(const ap_analysis_t *analysis,
                                             double *lufs);
AP_EXPORT int ap_analysis_max_short_term_lufs(const ap_analysis_t *analysis,
                                              double *lufs);
/* Maximum true peak over all channels in dBTP, from the signal upsampled
 * to 192 kHz (at least the 4x of 48 kHz that BS.1770-4 Annex 2 asks for;
 * inputs at 192 kHz or more are not upsampled), and sample peak in dBFS.
 * −inf for digital silence, and when the analysis was not requested. */
AP_EXPORT double ap_analysis_true_peak_dbtp(const ap_analysis_t *analysis);
AP_EXPORT double ap_analysis_sample_peak_dbfs(const ap_analysis_t *analysis);
/* RMS level over all channels and the whole input, in dBFS, relative to
 * full scale without the AES17 offset: a full-scale sine reads −3.01. */
AP_EXPORT double ap_analysis_rms_dbfs(const ap_analysis_t *analysis);
/* Samples (not frames) whose magnitude reaches full scale (≥ 1.0 minus
 * one 16-bit step). */
AP_EXPORT int64_t ap_analysis_clipped_samples(const ap_analysis_t *analysis);
/* Leading and trailing silence in seconds: the span before the first and
 * after the last sample (of any channel) louder than the silence
 * threshold. Both are the whole duration for an input that is silent
 * throughout. */
AP_EXPORT double ap_analysis_leading_silence(const ap_analysis_t *analysis);
AP_EXPORT double ap_analysis_trailing_silence(const ap_analysis_t *analysis);
/* Silence threshold used above, in dBFS. */
AP_EXPORT double
ap_analysis_silence_threshold_dbfs(const ap_analysis_t *analysis);
AP_EXPORT ap_mono_convention_t
ap_analysis_mono_convention(const ap_analysis_t *analysis);

#ifdef __cplusplus
}
#endif

#endif
