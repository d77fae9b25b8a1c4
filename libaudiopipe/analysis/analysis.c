/* Construction and the public getters of ap_analysis_t. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis_internal.h"

ap_analysis_t *ap_analysis_create(ap_mono_convention_t mono_convention,
                                  double silence_threshold_dbfs) {
  ap_analysis_t *analysis = calloc(1, sizeof *analysis);
  if (!analysis) {
    return NULL;
  }

  analysis->mono_convention = mono_convention;
  analysis->silence_threshold_dbfs = silence_threshold_dbfs;
  analysis->integrated_undefined_reason = AP_REASON_TOO_SHORT;
  analysis->range_undefined_reason = AP_REASON_TOO_SHORT;
  analysis->true_peak_dbtp = -INFINITY;
  analysis->sample_peak_dbfs = -INFINITY;
  analysis->rms_dbfs = -INFINITY;
  return analysis;
}

ap_analysis_t *ap_analysis_copy(const ap_analysis_t *analysis) {
  ap_analysis_t *copy = malloc(sizeof *copy);
  if (copy) {
    memcpy(copy, analysis, sizeof *copy);
  }
  return copy;
}

void ap_analysis_free(ap_analysis_t *analysis) { free(analysis); }

int ap_analysis_integrated_lufs(const ap_analysis_t *analysis, double *lufs) {
  if (!analysis || !analysis->integrated_defined) {
    return 0;
  }
  if (lufs) {
    *lufs = analysis->integrated_lufs;
  }
  return 1;
}

const char *
ap_analysis_loudness_undefined_reason(const ap_analysis_t *analysis) {
  if (!analysis || analysis->integrated_defined) {
    return NULL;
  }
  return analysis->integrated_undefined_reason;
}

int ap_analysis_loudness_range(const ap_analysis_t *analysis, double *lu) {
  if (!analysis || !analysis->range_defined) {
    return 0;
  }
  if (lu) {
    *lu = analysis->range_lu;
  }
  return 1;
}

int ap_analysis_max_momentary_lufs(const ap_analysis_t *analysis,
                                   double *lufs) {
  if (!analysis || !analysis->momentary_defined) {
    return 0;
  }
  if (lufs) {
    *lufs = analysis->max_momentary_lufs;
  }
  return 1;
}

int ap_analysis_max_short_term_lufs(const ap_analysis_t *analysis,
                                    double *lufs) {
  if (!analysis || !analysis->short_term_defined) {
    return 0;
  }
  if (lufs) {
    *lufs = analysis->max_short_term_lufs;
  }
  return 1;
}

double ap_analysis_true_peak_dbtp(const ap_analysis_t *analysis) {
  return analysis ? analysis->true_peak_dbtp : -INFINITY;
}

double ap_analysis_sample_peak_dbfs(const ap_analysis_t *analysis) {
  return analysis ? analysis->sample_peak_dbfs : -INFINITY;
}

double ap_analysis_rms_dbfs(const ap_analysis_t *analysis) {
  return analysis ? analysis->rms_dbfs : -INFINITY;
}

int64_t ap_analysis_clipped_samples(const ap_analysis_t *analysis) {
  return analysis ? analysis->clipped_samples : 0;
}

double ap_analysis_leading_silence(const ap_analysis_t *analysis) {
  return analysis ? analysis->leading_silence : 0.0;
}

double ap_analysis_trailing_silence(const ap_analysis_t *analysis) {
  return analysis ? analysis->trailing_silence : 0.0;
}

double ap_analysis_silence_threshold_dbfs(const ap_analysis_t *analysis) {
  return analysis ? analysis->silence_threshold_dbfs : 0.0;
}

ap_mono_convention_t
ap_analysis_mono_convention(const ap_analysis_t *analysis) {
  return analysis ? analysis->mono_convention : AP_LOUDNESS_MONO_SINGLE;
}
