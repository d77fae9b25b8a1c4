/*
 * The internal decoder: opens an input with libavformat through ap_io,
 * checks the limits, and yields planar float samples at the source rate
 * with encoder delay and padding trimmed. ap_probe and ap_process are both
 * built on it, so probing and processing agree on every number.
 *
 * One decoder is used by one thread at a time.
 */
#ifndef AP_PROBE_DECODER_H
#define AP_PROBE_DECODER_H

#include <audiopipe/io.h>
#include <audiopipe/limits.h>
#include <audiopipe/probe.h>

#include "process/sink.h"

typedef struct ap_decoder ap_decoder_t;

/*
 * Sniffs and probes `input` (from its current position) and opens the
 * decoder of its first decodable audio stream. On success the media info
 * is available at once; no samples have been decoded yet. Fails with the
 * errors listed for ap_probe, and with AP_ERR_UNSUPPORTED for an MP4 whose
 * `moov` follows `mdat` on a forward-only input (its samples are already
 * behind the read position once the sample tables are known).
 */
ap_status_t ap_decoder_open(ap_io_t *input, const ap_limits_t *limits,
                            ap_decoder_t **out, ap_error_t *error);

/* Flags for ap_decoder_open_with. */
enum {
  /* Measure the duration by scanning packets even when a header states
   * it (ap_probe_options_t.always_scan). */
  AP_DECODER_ALWAYS_SCAN = 1 << 0,
  /* The caller only wants the media info: a forward-only input may then
   * be read to its end to measure the duration, which leaves nothing to
   * decode. */
  AP_DECODER_PROBE_ONLY = 1 << 1
};

/* ap_decoder_open with AP_DECODER_* `flags`. `limits` may be NULL for
 * the defaults. */
ap_status_t ap_decoder_open_with(ap_io_t *input, const ap_limits_t *limits,
                                 unsigned flags, ap_decoder_t **out,
                                 ap_error_t *error);

/* Probe data as established at open (header, frame count or scan). */
const ap_media_info_t *ap_decoder_media_info(const ap_decoder_t *decoder);

/* The format of the samples ap_decoder_read delivers. */
const ap_stream_format_t *ap_decoder_format(const ap_decoder_t *decoder);

/*
 * Decodes the next block. On success `*planes` points to `channels` arrays
 * of `*frames` floats, valid until the next call or ap_decoder_close;
 * `*frames` is 0 at the end of the stream. Enforces the duration, decode
 * time and sample budget limits. Fails with AP_ERR_CORRUPT_INPUT when the
 * stream yields no valid audio at all; isolated corrupt packets are
 * skipped and counted.
 */
ap_status_t ap_decoder_read(ap_decoder_t *decoder, const float *const **planes,
                            int *frames, ap_error_t *error);

/* Fraction of the input consumed, 0.0..1.0 (by bytes when the size is
 * known, else by time against the expected duration). */
double ap_decoder_progress(const ap_decoder_t *decoder);

/* Frames delivered so far. */
int64_t ap_decoder_frames_read(const ap_decoder_t *decoder);

/* Packets the decoder rejected as corrupt and skipped. */
int64_t ap_decoder_corrupt_packets(const ap_decoder_t *decoder);

/* Seeks back to the start for a second pass (loudness normalisation).
 * Fails with AP_ERR_UNSUPPORTED on a forward-only input. */
ap_status_t ap_decoder_rewind(ap_decoder_t *decoder, ap_error_t *error);

/*
 * Returns a new media info equal to the decoder's, but with the duration
 * set from the decoded frame count (method AP_DURATION_DECODE) and the
 * truncation flag set when fewer frames were decoded than the headers
 * promised. Free with ap_media_info_free.
 */
ap_status_t ap_decoder_final_media_info(const ap_decoder_t *decoder,
                                        ap_media_info_t **out,
                                        ap_error_t *error);

void ap_decoder_close(ap_decoder_t *decoder);

#endif
