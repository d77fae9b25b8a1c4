/*
 * The decoder's state, shared by the files that open it (decoder_open.c),
 * measure its duration (duration.c) and read from it (decoder.c).
 */
#ifndef AP_PROBE_DECODER_INTERNAL_H
#define AP_PROBE_DECODER_INTERNAL_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswresample/swresample.h>

#include "probe/avio_bridge.h"
#include "probe/container_headers.h"
#include "probe/decoder.h"

struct ap_decoder {
  ap_limits_t limits;
  unsigned flags;  /* AP_DECODER_* */
  double deadline; /* CLOCK_MONOTONIC seconds, 0 for none */
  int deadline_passed;

  ap_byte_source_t source;
  ap_sniff_result_t sniff;
  const char *sniff_kind;
  ap_pcm_header_t pcm;
  ap_mp3_header_t mp3;

  /* The format FFmpeg's probe chose for an input the sniffer did not
   * know, or NULL to let avformat_open_input probe. */
  const AVInputFormat *input_format;
  AVIOContext *avio;
  AVFormatContext *demuxer;
  AVStream *stream; /* the selected audio stream, owned by demuxer */
  int stream_index;
  int audio_stream_count;
  const AVCodec *codec_definition;
  AVCodecContext *codec;
  SwrContext *resampler; /* format conversion only, never resampling */
  int converter_format;  /* AVSampleFormat the converter was set up for */
  AVPacket *packet;
  AVFrame *frame;
  int frame_offset; /* frames of `frame` already delivered */

  ap_media_info_t *info;
  ap_stream_format_t format;
  float *plane_storage; /* channels x AP_SINK_MAX_BLOCK_FRAMES floats */
  float **planes;

  /* Frames after which the rest is end padding, -1 when the duration is
   * not exactly known. */
  int64_t frame_limit;
  int64_t frames_read;
  int64_t corrupt_packets;
  int ended;
};

/* Sets av_log to quiet once per process. */
void ap_decoder_silence_ffmpeg(void);

/* Sniffs, parses headers, opens the demuxer and fills the media info. */
ap_status_t ap_decoder_open_input(ap_decoder_t *decoder, ap_io_t *input,
                                  ap_error_t *error);

/* Opens libavformat and the codec on the byte source from offset 0. */
ap_status_t ap_decoder_open_demuxer(ap_decoder_t *decoder, ap_error_t *error);

/* Establishes the duration, the encoder delay and padding, and the
 * truncation flag in decoder->info. May scan the input and reopen the
 * demuxer. */
ap_status_t ap_decoder_measure_duration(ap_decoder_t *decoder,
                                        ap_error_t *error);

ap_status_t ap_decoder_check_channels(const ap_limits_t *limits, int channels,
                                      ap_error_t *error);
/* Rejects a rate that is not positive or exceeds limits->max_sample_rate;
 * 64-bit so a header's 32-bit unsigned rate is reported as stated. */
ap_status_t ap_decoder_check_sample_rate(const ap_limits_t *limits,
                                         int64_t sample_rate,
                                         ap_error_t *error);

#endif
