/*
 * A rendition encoder as a sink of decoded audio (see process/sink.h):
 * resampler and channel mixer, encoder and muxer for one
 * ap_rendition_spec_t. It sets wants_thread, because encoding is the most
 * expensive stage of a pipeline.
 */
#ifndef AP_RENDITION_SINK_H
#define AP_RENDITION_SINK_H

#include <audiopipe/rendition.h>

#include "process/sink.h"

/*
 * Creates a sink for one validated spec. `gain_db` is applied to every
 * sample before encoding (0.0 for none; loudness normalisation computes
 * it from a first pass). The spec's output is borrowed: the sink writes
 * the whole file in write and finish but does not finish or close it.
 */
ap_status_t ap_rendition_sink_create(const ap_rendition_spec_t *spec,
                                     double gain_db, ap_sink_t **out,
                                     ap_error_t *error);

/* After finish: bytes written to the output and the name of the rendition
 * (the spec's name, or one derived from codec and bit rate). */
int64_t ap_rendition_sink_bytes(const ap_sink_t *sink);
const char *ap_rendition_sink_name(const ap_sink_t *sink);

#endif
