/*
 * The analysis as a sink of decoded audio (see process/sink.h): EBU R128
 * loudness (loudness_meter.h), true peak by oversampling (true_peak.h),
 * and sample peak, RMS, clipping and silence from the samples themselves.
 *
 * One sink can measure any subset of the AP_ANALYZE_* analyses, so the
 * pipeline may run true peak (more than half of the analysis cost) in a
 * sink and thread of its own and merge the parts with
 * ap_analysis_sink_collect. Every analysis sink sets wants_thread, which
 * process.c clears when the renditions leave no core for the analysis.
 */
#ifndef AP_ANALYSIS_SINK_H
#define AP_ANALYSIS_SINK_H

#include <audiopipe/analysis.h>

#include "process/sink.h"

typedef struct ap_analysis_settings {
  unsigned analyses; /* AP_ANALYZE_* flags this sink measures */
  ap_mono_convention_t mono_convention;
  double silence_threshold_dbfs; /* for AP_ANALYZE_SILENCE */
} ap_analysis_settings_t;

/* Creates a sink for `settings` (copied). Fails with
 * AP_ERR_INVALID_ARGUMENT on unknown flags or a bad mono convention. */
ap_status_t ap_analysis_sink_create(const ap_analysis_settings_t *settings,
                                    ap_sink_t **out, ap_error_t *error);

/* After a successful finish: stores the analyses this sink measured in
 * `analysis` and adds their flags to analysis->analyses, leaving every
 * other field as it was. */
void ap_analysis_sink_collect(const ap_sink_t *sink, ap_analysis_t *analysis);

#endif
