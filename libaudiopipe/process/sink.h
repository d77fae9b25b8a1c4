/*
 * The internal interface between the decoder and everything that consumes
 * decoded audio: the analysers, the waveform builders and the rendition
 * encoders. The decoder delivers planar float samples at the source sample
 * rate, after encoder delay and padding are trimmed, in blocks of at most
 * AP_SINK_MAX_BLOCK_FRAMES frames.
 *
 * A sink's callbacks are called from one thread at a time, in the order
 * start, write..., finish, then destroy. They may run on a worker thread
 * other than the decoder's. The sample planes passed to write are shared
 * with other sinks and must not be modified or kept after write returns.
 */
#ifndef AP_PROCESS_SINK_H
#define AP_PROCESS_SINK_H

#include <stdint.h>

#include <audiopipe/error.h>

#define AP_SINK_MAX_BLOCK_FRAMES 4096

/* Format of the decoded stream, fixed for the whole pass. */
typedef struct ap_stream_format {
  int sample_rate;        /* Hz */
  int channels;           /* 1..limits.max_channels */
  uint64_t channel_mask;  /* AV_CH_* bits, 0 when unknown */
  int64_t expected_frames; /* estimate from the probe, -1 if unknown */
} ap_stream_format_t;

typedef struct ap_sink ap_sink_t;

typedef struct ap_sink_ops {
  const char *name; /* "loudness", "waveform", "rendition" */

  /* Prepares for a stream of `format`. */
  ap_status_t (*start)(ap_sink_t *sink, const ap_stream_format_t *format,
                       ap_error_t *error);

  /* Consumes `frames` frames: planes[c][i] is channel c, frame i, nominal
   * range -1.0..1.0 (values beyond it are kept, not clipped). */
  ap_status_t (*write)(ap_sink_t *sink, const float *const *planes,
                       int frames, ap_error_t *error);

  /* Flushes at the end of the stream. Not called after a failure. */
  ap_status_t (*finish)(ap_sink_t *sink, ap_error_t *error);

  /* Releases the sink. Called exactly once, also after failures. */
  void (*destroy)(ap_sink_t *sink);
} ap_sink_ops_t;

struct ap_sink {
  const ap_sink_ops_t *ops;
  /* Set by the sink: non-zero requests a worker thread for this sink,
   * because it is expensive (encoders, true peak). */
  int wants_thread;
};

#endif
