/*
 * The layout of ap_analysis_t, shared by the analysis sinks that fill it
 * and the getters in analysis.c. Fields of an analysis that was not
 * requested keep the values ap_analysis_create gave them.
 */
#ifndef AP_ANALYSIS_INTERNAL_H
#define AP_ANALYSIS_INTERNAL_H

#include <stdint.h>

#include <audiopipe/analysis.h>

struct ap_analysis {
  unsigned analyses; /* AP_ANALYZE_* flags that were measured */
  ap_mono_convention_t mono_convention;
  double silence_threshold_dbfs;
  int sample_rate; /* Hz */
  int channels;
  int64_t frames;

  /* AP_ANALYZE_LOUDNESS. A reason is a static string; NULL when the value
   * is defined. */
  int integrated_defined;
  double integrated_lufs;
  const char *integrated_undefined_reason;
  int range_defined;
  double range_lu;
  const char *range_undefined_reason;
  int momentary_defined;
  double max_momentary_lufs;
  int short_term_defined;
  double max_short_term_lufs;

  /* AP_ANALYZE_TRUE_PEAK; -inf for digital silence. */
  double true_peak_dbtp;

  /* AP_ANALYZE_LEVELS */
  double sample_peak_dbfs;
  double rms_dbfs;
  int64_t clipped_samples;

  /* AP_ANALYZE_SILENCE, in seconds */
  double leading_silence;
  double trailing_silence;
};

/* Undefined-value reasons, also used as JSON strings. */
#define AP_REASON_TOO_SHORT "too_short"
#define AP_REASON_BELOW_ABSOLUTE_GATE "below_absolute_gate"
#define AP_REASON_DIGITAL_SILENCE "digital_silence"

/* Allocates an analysis with nothing measured yet: loudness undefined,
 * peaks and levels at -inf, no silence. Returns NULL when out of
 * memory. */
ap_analysis_t *ap_analysis_create(ap_mono_convention_t mono_convention,
                                  double silence_threshold_dbfs);

/* Returns a copy of `analysis`, or NULL when out of memory. */
ap_analysis_t *ap_analysis_copy(const ap_analysis_t *analysis);

void ap_analysis_free(ap_analysis_t *analysis);

#endif
