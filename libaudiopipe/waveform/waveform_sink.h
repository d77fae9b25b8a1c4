/*
 * The waveform builder as a sink of decoded audio (see process/sink.h).
 * It keeps min/max pairs in memory: pixels x output channels x 2 int16
 * values, so 3 hours of 44.1 kHz audio at 256 samples per pixel needs about
 * 7 MiB for the mono mix. It writes the .dat or JSON file to the spec's
 * output when the stream finishes.
 */
#ifndef AP_WAVEFORM_SINK_H
#define AP_WAVEFORM_SINK_H

#include <audiopipe/waveform.h>

#include "process/sink.h"

/* Creates a sink for one validated spec. The spec's output is borrowed:
 * the sink writes to it in finish but does not finish or close it. */
ap_status_t ap_waveform_sink_create(const ap_waveform_spec_t *spec,
                                    ap_sink_t **out, ap_error_t *error);

/* After finish: pixels written and the samples per pixel used. */
int64_t ap_waveform_sink_pixels(const ap_sink_t *sink);
int ap_waveform_sink_samples_per_pixel(const ap_sink_t *sink);

#endif
