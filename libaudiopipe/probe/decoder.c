/*
 * The decoder's reading side: packets in, planar float blocks out, with
 * end padding trimmed and the limits checked on every block. Opening is
 * in decoder_open.c and the duration in duration.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "core/error_internal.h"
#include "probe/avio_bridge.h"
#include "probe/container_headers.h"
#include "probe/decoder.h"
#include "probe/decoder_internal.h"
#include "probe/media_info_internal.h"

/* Upper bound on channels even when limits.max_channels is 0 (no limit):
 * the limits contract allows 1..255. */
#define HARD_MAX_CHANNELS 255

/* How much libavformat may read and how much media time it may analyse
 * while looking for stream parameters, so a hostile file cannot make
 * probing read gigabytes. */
#define PROBE_SIZE_BYTES "4194304"
#define ANALYZE_DURATION_MICROSECONDS "5000000"

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void silence_ffmpeg(void) { av_log_set_level(AV_LOG_QUIET); }

void ap_decoder_silence_ffmpeg(void) {
  pthread_once(&log_once, silence_ffmpeg);
}

static double monotonic_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Called by libavformat during blocking operations: non-zero aborts
 * them once the decode time budget is spent. */
static int interrupt_callback(void *opaque) {
  ap_decoder_t *decoder = opaque;
  if (decoder->deadline > 0.0 && monotonic_seconds() > decoder->deadline) {
    decoder->deadline_passed = 1;
    return 1;
  }
  return 0;
}

static ap_status_t time_limit_error(const ap_decoder_t *decoder,
                                    ap_error_t *error) {
  return ap_error_set(
      error, AP_DOMAIN_MEDIA, AP_ERR_DECODE_TIME_LIMIT,
      "decoding took longer than %g s (limits.max_decode_seconds) after "
      "%lld frames: raise the limit or reject the input",
      decoder->limits.max_decode_seconds, (long long)decoder->frames_read);
}

static ap_status_t check_deadline(ap_decoder_t *decoder, ap_error_t *error) {
  if (decoder->deadline > 0.0 &&
      (decoder->deadline_passed || monotonic_seconds() > decoder->deadline)) {
    decoder->deadline_passed = 1;
    return time_limit_error(decoder, error);
  }
  return AP_OK;
}

/* Describes an FFmpeg error code in words. */
static const char *av_error_text(int code, char *buffer, size_t size) {
  if (av_strerror(code, buffer, size) < 0) {
    snprintf(buffer, size, "error %d", code);
  }
  return buffer;
}

/* Maps a failure inside libavformat to the most specific status: a
 * failure the byte source recorded, the time limit, or `fallback`. */
static ap_status_t demuxer_error(ap_decoder_t *decoder, int code,
                                 ap_error_code_t fallback, const char *what,
                                 ap_error_t *error) {
  if (decoder->source.failure != AP_OK) {
    if (error) {
      *error = decoder->source.failure_error;
    }
    return decoder->source.failure;
  }
  if (decoder->deadline_passed || code == AVERROR_EXIT) {
    return time_limit_error(decoder, error);
  }
  char text[AV_ERROR_MAX_STRING_SIZE];
  if (fallback == AP_ERR_NOT_AUDIO) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_NOT_AUDIO,
                        "%s: no audio container recognised (%s): upload an "
                        "audio file",
                        what, av_error_text(code, text, sizeof text));
  }
  return ap_error_set(error, AP_DOMAIN_MEDIA, fallback, "%s failed: %s", what,
                      av_error_text(code, text, sizeof text));
}

ap_status_t ap_decoder_check_channels(const ap_limits_t *limits, int channels,
                                      ap_error_t *error) {
  int maximum =
      limits->max_channels > 0 && limits->max_channels < HARD_MAX_CHANNELS
          ? limits->max_channels
          : HARD_MAX_CHANNELS;
  if (channels <= 0 || channels > maximum) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CHANNELS_UNSUPPORTED,
                        "unsupported channel count %d: the maximum is %d "
                        "(limits.max_channels)",
                        channels, maximum);
  }
  return AP_OK;
}

ap_status_t ap_decoder_check_sample_rate(const ap_limits_t *limits,
                                         int64_t sample_rate,
                                         ap_error_t *error) {
  if (sample_rate <= 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_SAMPLE_RATE_UNSUPPORTED,
                        "invalid sample rate %lld Hz in the header: a rate "
                        "must be positive, so the file is damaged; export "
                        "it again",
                        (long long)sample_rate);
  }
  if (limits->max_sample_rate > 0 && sample_rate > limits->max_sample_rate) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_SAMPLE_RATE_UNSUPPORTED,
                        "unsupported sample rate %lld Hz: the maximum is %d Hz "
                        "(limits.max_sample_rate)",
                        (long long)sample_rate, limits->max_sample_rate);
  }
  return AP_OK;
}

static ap_status_t check_duration(const ap_decoder_t *decoder, int64_t frames,
                                  ap_error_t *error) {
  double limit = decoder->limits.max_duration_seconds;
  int rate = decoder->info->sample_rate;
  if (limit > 0.0 && rate > 0 && frames >= 0 && (double)frames / rate > limit) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_DURATION_LIMIT,
                        "audio lasts %.3f s, longer than %.3f s "
                        "(limits.max_duration_seconds): trim it or raise "
                        "the limit",
                        (double)frames / rate, limit);
  }
  return AP_OK;
}

static ap_status_t check_sample_budget(const ap_decoder_t *decoder,
                                       int64_t frames, ap_error_t *error) {
  int64_t budget = decoder->limits.max_decoded_samples;
  int64_t samples = frames * decoder->format.channels;
  if (budget > 0 && samples > budget) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_SAMPLE_BUDGET,
                        "decoded %lld samples (frames x channels), more than "
                        "%lld (limits.max_decoded_samples): raise the budget "
                        "or reject the input",
                        (long long)samples, (long long)budget);
  }
  return AP_OK;
}

static void close_demuxer(ap_decoder_t *decoder) {
  avcodec_free_context(&decoder->codec);
  swr_free(&decoder->resampler);
  if (decoder->demuxer) {
    avformat_close_input(&decoder->demuxer);
  }
  ap_avio_close(&decoder->avio);
  decoder->stream = NULL;
  decoder->stream_index = -1;
}

/* Rejects channel counts and sample rates from codec parameters before
 * avformat_find_stream_info allocates anything per channel. */
static ap_status_t check_stream_parameters(ap_decoder_t *decoder,
                                           ap_error_t *error) {
  for (unsigned i = 0; i < decoder->demuxer->nb_streams; i++) {
    const AVCodecParameters *parameters =
        decoder->demuxer->streams[i]->codecpar;
    if (parameters->codec_type != AVMEDIA_TYPE_AUDIO) {
      continue;
    }
    int channels = parameters->ch_layout.nb_channels;
    if (channels > 0) {
      ap_status_t status =
          ap_decoder_check_channels(&decoder->limits, channels, error);
      if (status != AP_OK) {
        return status;
      }
    }
    if (parameters->sample_rate > 0) {
      ap_status_t status = ap_decoder_check_sample_rate(
          &decoder->limits, parameters->sample_rate, error);
      if (status != AP_OK) {
        return status;
      }
    }
  }
  return AP_OK;
}

/* Picks the first audio stream that has a decoder. */
static ap_status_t select_stream(ap_decoder_t *decoder, ap_error_t *error) {
  const AVCodec *codec = NULL;
  const char *undecodable = NULL;
  int audio_streams = 0;
  decoder->stream_index = -1;
  for (unsigned i = 0; i < decoder->demuxer->nb_streams; i++) {
    AVStream *stream = decoder->demuxer->streams[i];
    if (stream->codecpar->codec_type != AVMEDIA_TYPE_AUDIO ||
        (stream->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      continue;
    }
    audio_streams++;
    const AVCodec *candidate = avcodec_find_decoder(stream->codecpar->codec_id);
    if (!candidate) {
      if (!undecodable) {
        undecodable = avcodec_get_name(stream->codecpar->codec_id);
      }
      continue;
    }
    if (decoder->stream_index < 0) {
      decoder->stream_index = (int)i;
      codec = candidate;
    }
  }
  decoder->audio_stream_count = audio_streams;
  if (audio_streams == 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_NOT_AUDIO,
                        "the %s input has no audio stream: upload an audio "
                        "file",
                        decoder->demuxer->iformat->name);
  }
  if (decoder->stream_index < 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_UNSUPPORTED_CODEC,
                        "no decoder for audio codec \"%s\" in the %s input: "
                        "convert it to a common codec (AAC, MP3, FLAC, PCM)",
                        undecodable ? undecodable : "unknown",
                        decoder->demuxer->iformat->name);
  }
  decoder->stream = decoder->demuxer->streams[decoder->stream_index];
  decoder->codec_definition = codec;
  return AP_OK;
}

static ap_status_t open_codec(ap_decoder_t *decoder, ap_error_t *error) {
  AVStream *stream = decoder->stream;
  decoder->codec = avcodec_alloc_context3(decoder->codec_definition);
  if (!decoder->codec) {
    return AP_NO_MEMORY(error);
  }
  int code = avcodec_parameters_to_context(decoder->codec, stream->codecpar);
  if (code < 0) {
    return demuxer_error(decoder, code, AP_ERR_UNSUPPORTED_CODEC,
                         "copying codec parameters", error);
  }
  decoder->codec->pkt_timebase = stream->time_base;
  code = avcodec_open2(decoder->codec, decoder->codec_definition, NULL);
  if (code < 0) {
    return demuxer_error(decoder, code, AP_ERR_UNSUPPORTED_CODEC,
                         "opening the audio decoder", error);
  }
  ap_status_t status = ap_decoder_check_channels(
      &decoder->limits, decoder->codec->ch_layout.nb_channels, error);
  if (status == AP_OK) {
    status = ap_decoder_check_sample_rate(&decoder->limits,
                                          decoder->codec->sample_rate, error);
  }
  return status;
}

ap_status_t ap_decoder_open_demuxer(ap_decoder_t *decoder, ap_error_t *error) {
  decoder->avio = ap_avio_open(&decoder->source);
  decoder->demuxer = avformat_alloc_context();
  if (!decoder->avio || !decoder->demuxer) {
    close_demuxer(decoder);
    return AP_NO_MEMORY(error);
  }
  decoder->demuxer->pb = decoder->avio;
  decoder->demuxer->flags |= AVFMT_FLAG_CUSTOM_IO;
  decoder->demuxer->interrupt_callback.callback = interrupt_callback;
  decoder->demuxer->interrupt_callback.opaque = decoder;

  AVDictionary *options = NULL;
  if (av_dict_set(&options, "probesize", PROBE_SIZE_BYTES, 0) < 0 ||
      av_dict_set(&options, "analyzeduration", ANALYZE_DURATION_MICROSECONDS,
                  0) < 0 ||
      av_dict_set(&options, "skip_estimate_duration_from_pts", "1", 0) < 0) {
    av_dict_free(&options);
    close_demuxer(decoder);
    return AP_NO_MEMORY(error);
  }

  /* No URL: the format is chosen from the content alone, never from a
   * file name's extension. */
  int code = avformat_open_input(&decoder->demuxer, NULL, decoder->input_format,
                                 &options);
  av_dict_free(&options);
  if (code < 0) {
    /* avformat_open_input freed the context on failure. */
    decoder->demuxer = NULL;
    ap_status_t status =
        demuxer_error(decoder, code,
                      decoder->sniff == AP_SNIFF_AUDIO ? AP_ERR_CORRUPT_INPUT
                                                       : AP_ERR_NOT_AUDIO,
                      "reading the container header", error);
    close_demuxer(decoder);
    return status;
  }

  ap_status_t status = check_stream_parameters(decoder, error);
  if (status != AP_OK) {
    close_demuxer(decoder);
    return status;
  }

  /* Cover art and video are never decoded: only audio is analysed. */
  for (unsigned i = 0; i < decoder->demuxer->nb_streams; i++) {
    AVStream *stream = decoder->demuxer->streams[i];
    if (stream->codecpar->codec_type != AVMEDIA_TYPE_AUDIO) {
      stream->discard = AVDISCARD_ALL;
    }
  }

  code = avformat_find_stream_info(decoder->demuxer, NULL);
  if (code < 0) {
    status = demuxer_error(decoder, code, AP_ERR_CORRUPT_INPUT,
                           "reading stream parameters", error);
    close_demuxer(decoder);
    return status;
  }
  status = check_stream_parameters(decoder, error);
  if (status == AP_OK) {
    status = select_stream(decoder, error);
  }
  if (status == AP_OK) {
    status = open_codec(decoder, error);
  }
  if (status != AP_OK) {
    close_demuxer(decoder);
    return status;
  }

  for (unsigned i = 0; i < decoder->demuxer->nb_streams; i++) {
    if ((int)i != decoder->stream_index) {
      decoder->demuxer->streams[i]->discard = AVDISCARD_ALL;
    }
  }
  return AP_OK;
}

static int64_t frames_from_header(const ap_decoder_t *decoder) {
  return decoder->info->duration_frames;
}

ap_status_t ap_decoder_open_with(ap_io_t *input, const ap_limits_t *limits,
                                 unsigned flags, ap_decoder_t **out,
                                 ap_error_t *error) {
  if (!input || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_decoder_open: input and out are required");
  }
  *out = NULL;
  ap_decoder_silence_ffmpeg();

  ap_decoder_t *decoder = calloc(1, sizeof *decoder);
  if (!decoder) {
    return AP_NO_MEMORY(error);
  }
  decoder->stream_index = -1;
  decoder->frame_limit = -1;
  decoder->flags = flags;
  if (limits) {
    decoder->limits = *limits;
  } else {
    ap_limits_init(&decoder->limits);
  }
  if (decoder->limits.max_decode_seconds > 0.0) {
    decoder->deadline =
        monotonic_seconds() + decoder->limits.max_decode_seconds;
  }

  ap_status_t status = ap_decoder_open_input(decoder, input, error);
  if (status != AP_OK) {
    ap_decoder_close(decoder);
    return status;
  }
  *out = decoder;
  return AP_OK;
}

ap_status_t ap_decoder_open(ap_io_t *input, const ap_limits_t *limits,
                            ap_decoder_t **out, ap_error_t *error) {
  return ap_decoder_open_with(input, limits, 0, out, error);
}

const ap_media_info_t *ap_decoder_media_info(const ap_decoder_t *decoder) {
  return decoder ? decoder->info : NULL;
}

const ap_stream_format_t *ap_decoder_format(const ap_decoder_t *decoder) {
  return decoder ? &decoder->format : NULL;
}

/* Sets up the converter to planar float for the layout and sample format
 * of `frame`: the rate stays the same, so no resampling happens. */
static ap_status_t configure_converter(ap_decoder_t *decoder,
                                       const AVFrame *frame,
                                       ap_error_t *error) {
  swr_free(&decoder->resampler);
  AVChannelLayout layout = {0};
  if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC ||
      frame->ch_layout.nb_channels <= 0) {
    av_channel_layout_default(&layout, decoder->format.channels);
  } else if (av_channel_layout_copy(&layout, &frame->ch_layout) < 0) {
    return AP_NO_MEMORY(error);
  }
  if (layout.nb_channels != decoder->format.channels) {
    av_channel_layout_uninit(&layout);
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                        "the stream changed from %d to %d channels while "
                        "decoding: re-encode it with a fixed layout",
                        decoder->format.channels, frame->ch_layout.nb_channels);
  }
  int code = swr_alloc_set_opts2(
      &decoder->resampler, &layout, AV_SAMPLE_FMT_FLTP, frame->sample_rate,
      &layout, (enum AVSampleFormat)frame->format, frame->sample_rate, 0, NULL);
  av_channel_layout_uninit(&layout);
  if (code >= 0) {
    code = swr_init(decoder->resampler);
  }
  if (code < 0) {
    char text[AV_ERROR_MAX_STRING_SIZE];
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                        "cannot convert %s samples to float: %s",
                        av_get_sample_fmt_name(frame->format),
                        av_error_text(code, text, sizeof text));
  }
  decoder->converter_format = frame->format;
  return AP_OK;
}

/* Converts up to AP_SINK_MAX_BLOCK_FRAMES frames of the pending decoded
 * frame into the planes. Returns the frame count or a negative status. */
static int convert_block(ap_decoder_t *decoder, ap_error_t *error) {
  AVFrame *frame = decoder->frame;
  int left = frame->nb_samples - decoder->frame_offset;
  int count = left < AP_SINK_MAX_BLOCK_FRAMES ? left : AP_SINK_MAX_BLOCK_FRAMES;
  if (decoder->frame_limit >= 0 &&
      decoder->frames_read + count > decoder->frame_limit) {
    count = (int)(decoder->frame_limit - decoder->frames_read);
  }
  if (count <= 0) {
    decoder->frame_offset = frame->nb_samples;
    return 0;
  }

  int channels = decoder->format.channels;
  if (frame->format == AV_SAMPLE_FMT_FLTP &&
      frame->ch_layout.nb_channels == channels) {
    /* Planar float already (MP3, AAC, Vorbis, Opus): the planes point
     * into the frame, which stays referenced until the next read. */
    for (int c = 0; c < channels; c++) {
      decoder->planes[c] =
          (float *)frame->extended_data[c] + decoder->frame_offset;
    }
    decoder->frame_offset += count;
    return count;
  }
  for (int c = 0; c < channels; c++) {
    decoder->planes[c] =
        decoder->plane_storage + (size_t)c * AP_SINK_MAX_BLOCK_FRAMES;
  }

  if (!decoder->resampler || frame->format != decoder->converter_format) {
    ap_status_t status = configure_converter(decoder, frame, error);
    if (status != AP_OK) {
      return -status;
    }
  }

  int bytes = av_get_bytes_per_sample(frame->format);
  const uint8_t *inputs[HARD_MAX_CHANNELS];
  if (av_sample_fmt_is_planar(frame->format)) {
    for (int c = 0; c < channels; c++) {
      inputs[c] =
          frame->extended_data[c] + (size_t)decoder->frame_offset * bytes;
    }
  } else {
    inputs[0] = frame->extended_data[0] +
                (size_t)decoder->frame_offset * bytes * channels;
  }
  int converted = swr_convert(decoder->resampler, (uint8_t **)decoder->planes,
                              count, inputs, count);
  if (converted < 0) {
    char text[AV_ERROR_MAX_STRING_SIZE];
    return -ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                         "sample conversion failed: %s",
                         av_error_text(converted, text, sizeof text));
  }
  decoder->frame_offset += count;
  return converted;
}

/* Feeds the decoder the next packet of the selected stream, or the
 * flush packet at the end. Returns 0, 1 when the input ended, or a
 * negative status. */
static int feed_packet(ap_decoder_t *decoder, ap_error_t *error) {
  for (;;) {
    ap_status_t status = check_deadline(decoder, error);
    if (status != AP_OK) {
      return -status;
    }
    int code = av_read_frame(decoder->demuxer, decoder->packet);
    if (code < 0) {
      if (decoder->source.failure != AP_OK || decoder->deadline_passed) {
        return -demuxer_error(decoder, code, AP_ERR_IO, "reading packets",
                              error);
      }
      /* The end of the input, or damage the demuxer cannot pass: flush
       * what was decoded so far. */
      if (code != AVERROR_EOF) {
        decoder->corrupt_packets++;
      }
      avcodec_send_packet(decoder->codec, NULL);
      return 1;
    }
    if (decoder->packet->stream_index != decoder->stream_index) {
      av_packet_unref(decoder->packet);
      continue;
    }
    code = avcodec_send_packet(decoder->codec, decoder->packet);
    av_packet_unref(decoder->packet);
    if (code == AVERROR(EAGAIN)) {
      /* libavcodec returns EAGAIN here only when a frame is waiting, and
       * the caller receives frames before feeding again. */
      return 0;
    }
    if (code < 0) {
      decoder->corrupt_packets++;
      continue;
    }
    return 0;
  }
}

ap_status_t ap_decoder_read(ap_decoder_t *decoder, const float *const **planes,
                            int *frames, ap_error_t *error) {
  if (!decoder || !planes || !frames) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_decoder_read: decoder, planes and frames are "
                        "required");
  }
  *frames = 0;
  *planes = (const float *const *)decoder->planes;
  if (!decoder->demuxer) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_decoder_read: the decoder has no open input "
                        "(a failed rewind?)");
  }

  for (;;) {
    if (decoder->ended) {
      return AP_OK;
    }
    if (decoder->frame_limit >= 0 &&
        decoder->frames_read >= decoder->frame_limit) {
      decoder->ended = 1; /* the rest is encoder padding */
      continue;
    }
    if (decoder->frame_offset < decoder->frame->nb_samples) {
      int count = convert_block(decoder, error);
      if (count < 0) {
        return -count;
      }
      if (count == 0) {
        continue;
      }
      int64_t total = decoder->frames_read + count;
      ap_status_t status = check_duration(decoder, total, error);
      if (status == AP_OK) {
        status = check_sample_budget(decoder, total, error);
      }
      if (status == AP_OK) {
        status = check_deadline(decoder, error);
      }
      if (status != AP_OK) {
        return status;
      }
      decoder->frames_read = total;
      *frames = count;
      return AP_OK;
    }

    av_frame_unref(decoder->frame);
    decoder->frame_offset = 0;
    int code = avcodec_receive_frame(decoder->codec, decoder->frame);
    if (code == 0) {
      continue;
    }
    if (code == AVERROR_EOF) {
      decoder->ended = 1;
      if (decoder->frames_read == 0) {
        return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                            "no valid audio could be decoded (%lld corrupt "
                            "packets skipped): the file is damaged",
                            (long long)decoder->corrupt_packets);
      }
      return AP_OK;
    }
    if (code != AVERROR(EAGAIN)) {
      decoder->corrupt_packets++;
      continue;
    }
    int fed = feed_packet(decoder, error);
    if (fed < 0) {
      return -fed;
    }
  }
}

double ap_decoder_progress(const ap_decoder_t *decoder) {
  if (!decoder) {
    return 0.0;
  }
  double fraction = 0.0;
  if (decoder->ended) {
    fraction = 1.0;
  } else if (decoder->source.size > 0 && decoder->avio) {
    fraction = (double)ap_avio_position(decoder->avio) / decoder->source.size;
  } else if (decoder->format.expected_frames > 0) {
    fraction = (double)decoder->frames_read / decoder->format.expected_frames;
  }
  if (fraction > 1.0) {
    fraction = 1.0;
  }
  return fraction < 0.0 ? 0.0 : fraction;
}

int64_t ap_decoder_frames_read(const ap_decoder_t *decoder) {
  return decoder ? decoder->frames_read : 0;
}

int64_t ap_decoder_corrupt_packets(const ap_decoder_t *decoder) {
  return decoder ? decoder->corrupt_packets : 0;
}

ap_status_t ap_decoder_rewind(ap_decoder_t *decoder, ap_error_t *error) {
  if (!decoder) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_decoder_rewind: decoder is required");
  }
  ap_status_t status = ap_byte_source_rewind(&decoder->source, error);
  if (status != AP_OK) {
    return status;
  }
  close_demuxer(decoder);
  av_frame_unref(decoder->frame);
  decoder->frame_offset = 0;
  decoder->frames_read = 0;
  decoder->corrupt_packets = 0;
  decoder->ended = 0;
  if (decoder->limits.max_decode_seconds > 0.0) {
    decoder->deadline =
        monotonic_seconds() + decoder->limits.max_decode_seconds;
    decoder->deadline_passed = 0;
  }
  return ap_decoder_open_demuxer(decoder, error);
}

ap_status_t ap_decoder_final_media_info(const ap_decoder_t *decoder,
                                        ap_media_info_t **out,
                                        ap_error_t *error) {
  if (!decoder || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_decoder_final_media_info: decoder and out are "
                        "required");
  }
  ap_media_info_t *info = ap_media_info_copy(decoder->info);
  if (!info) {
    return AP_NO_MEMORY(error);
  }
  /* A packet scan counts what the container states, which a decoder may
   * trim slightly differently, so only a shortfall of more than one
   * packet's worth marks the input as cut short. */
  int64_t promised = frames_from_header(decoder);
  int64_t tolerance = 0;
  if (decoder->info->duration_method == AP_DURATION_PACKET_SCAN) {
    int frame_size = decoder->codec ? decoder->codec->frame_size : 0;
    tolerance = frame_size > 2048 ? frame_size : 2048;
  }
  if (promised >= 0 && decoder->frames_read < promised - tolerance) {
    info->truncated = 1;
  }
  info->duration_frames = decoder->frames_read;
  info->duration_method = AP_DURATION_DECODE;
  *out = info;
  return AP_OK;
}

void ap_decoder_close(ap_decoder_t *decoder) {
  if (!decoder) {
    return;
  }
  close_demuxer(decoder);
  av_packet_free(&decoder->packet);
  av_frame_free(&decoder->frame);
  free(decoder->plane_storage);
  free(decoder->planes);
  ap_media_info_free(decoder->info);
  ap_byte_source_close(&decoder->source);
  free(decoder);
}
