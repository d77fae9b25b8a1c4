/*
 * The fan-out: one pass over a source of decoded blocks that feeds every
 * sink. The source is read on the calling thread. Sinks with wants_thread
 * run on worker threads, each worker with a bounded queue of
 * reference-counted, immutable copies of the blocks, so memory stays flat
 * however long the input is and a slow sink holds the reader back. Other
 * sinks run inline on the calling thread with the source's own planes.
 */
#ifndef AP_PROCESS_PIPELINE_H
#define AP_PROCESS_PIPELINE_H

#include <stddef.h>

#include "process/progress.h"
#include "process/sink.h"

/* Where the blocks come from: the decoder, or a synthetic source. */
typedef struct ap_block_source {
  /* Same contract as ap_decoder_read: `*frames` is 0 at the end. */
  ap_status_t (*read)(void *user_data, const float *const **planes, int *frames,
                      ap_error_t *error);
  /* Fraction of the input consumed, 0..1; may be NULL. */
  double (*progress)(void *user_data);
  void *user_data;
} ap_block_source_t;

typedef struct ap_pipeline_sink {
  ap_sink_t *sink;     /* borrowed; the caller destroys it */
  const char *label;   /* error context, such as "rendition opus_64k" */
  double busy_seconds; /* set by the run: wall time in start, write and
                          finish */
} ap_pipeline_sink_t;

typedef struct ap_pipeline_options {
  /* As ap_process_options_t.max_threads: 1 runs every sink inline, 0 one
   * worker per threaded sink capped at the core count, n > 1 at most
   * n - 1 workers besides the calling thread. */
  int max_threads;
  ap_progress_t *progress; /* may be NULL */
  const char *stage;       /* stage name for progress reports */
  /* This pass covers fractions progress_start..progress_end of the whole
   * operation. */
  double progress_start;
  double progress_end;
} ap_pipeline_options_t;

typedef struct ap_pipeline_stats {
  double read_seconds; /* wall time inside source->read */
  int worker_threads;
  int64_t frames;
} ap_pipeline_stats_t;

/*
 * Starts every sink with `format`, reads the source to its end writing
 * each block to every sink, and finishes every sink. Stops at the first
 * failure of the source or of a sink, or when the progress callback
 * returns non-zero (AP_ERR_CANCELLED), and returns that first error with
 * the sink's label as context. No sink is finished after a failure. The
 * sinks are not destroyed. `stats` may be NULL.
 */
ap_status_t ap_pipeline_run(const ap_block_source_t *source,
                            const ap_stream_format_t *format,
                            ap_pipeline_sink_t *sinks, size_t sink_count,
                            const ap_pipeline_options_t *options,
                            ap_pipeline_stats_t *stats, ap_error_t *error);

/* The number of worker threads ap_pipeline_run would use. */
int ap_pipeline_worker_count(const ap_pipeline_sink_t *sinks, size_t sink_count,
                             int max_threads);

#endif
