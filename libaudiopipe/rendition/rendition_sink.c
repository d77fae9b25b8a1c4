/*
 * The rendition sink: decoded planar float at the source rate goes
 * through an optional gain, libswresample (rate, channel mix, sample
 * format), an AVAudioFifo that cuts the fixed frame sizes encoders want,
 * the encoder and the muxer. Every context belongs to one sink, so sinks
 * on different threads share no mutable state.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>

#include "core/error_internal.h"
#include "probe/decoder_internal.h"
#include "rendition/rendition_internal.h"
#include "rendition/rendition_sink.h"
#include "rendition/rendition_writer.h"

/* Chunk size for encoders that take any frame size (PCM). */
#define VARIABLE_FRAME_SIZE 4096

/* libopus accepts at most 256 kb/s per channel. */
#define OPUS_MAX_BITRATE_PER_CHANNEL 256000

typedef struct rendition_sink {
  ap_sink_t base; /* first, so an ap_sink_t * is a rendition_sink_t * */

  ap_rendition_spec_t spec; /* copy; spec.name is not used after create */
  char name[AP_RENDITION_NAME_MAX + 1];
  const ap_rendition_codec_info_t *info;
  float gain; /* linear factor from gain_db */

  int source_channels;
  AVChannelLayout source_layout;
  AVChannelLayout output_layout;

  SwrContext *resampler;
  AVCodecContext *encoder;
  AVFormatContext *muxer;
  AVStream *stream;
  AVAudioFifo *fifo;
  AVFrame *frame;
  AVPacket *packet;
  ap_rendition_writer_t writer;

  /* Scratch for the gained and clamped samples: one plane per source
   * channel of AP_SINK_MAX_BLOCK_FRAMES floats. */
  float **scaled;

  /* Per-channel input pointers for one resampler call. */
  const float **inputs;

  /* Resampler output in the encoder's format, `converted_capacity`
   * frames per plane. */
  uint8_t **converted;
  int converted_capacity;

  int frame_size;   /* frames per encoder call */
  int64_t next_pts; /* in encoder time base, 1/sample_rate */
  int64_t bytes;
} rendition_sink_t;

/* Plain FFmpeg failure with the sink's name, or the output's error when
 * the output failed underneath the muxer. */
static ap_status_t ffmpeg_error(rendition_sink_t *sink, int averror,
                                const char *what, ap_error_t *error) {
  ap_status_t status =
      ap_rendition_writer_error(&sink->writer, averror, what, error);
  ap_error_prefix(error, "rendition %s", sink->name);
  return status;
}

/* The source layout: the decoder's channel mask when it matches the
 * channel count, otherwise FFmpeg's default layout for that count. */
static ap_status_t set_source_layout(rendition_sink_t *sink,
                                     const ap_stream_format_t *format,
                                     ap_error_t *error) {
  int result = -1;
  if (format->channel_mask != 0 &&
      __builtin_popcountll(format->channel_mask) == format->channels) {
    result =
        av_channel_layout_from_mask(&sink->source_layout, format->channel_mask);
  }
  if (result < 0) {
    av_channel_layout_default(&sink->source_layout, format->channels);
  }
  sink->source_channels = format->channels;
  (void)error;
  return AP_OK;
}

/*
 * The output layout: mono or stereo when the spec requests it. A spec
 * that keeps the source layout gets it unchanged for lossless codecs up
 * to the codec's channel limit, mono or stereo for lossy codecs from a
 * mono or stereo source, and stereo for anything wider.
 */
static void choose_output_layout(rendition_sink_t *sink) {
  int channels = sink->spec.channels;
  if (channels == 0) {
    if (sink->source_channels > sink->info->max_channels) {
      channels = 2;
    } else if (!sink->info->lossy) {
      av_channel_layout_copy(&sink->output_layout, &sink->source_layout);
      return;
    } else {
      channels = sink->source_channels;
    }
  }
  if (channels == 1) {
    sink->output_layout = (AVChannelLayout)AV_CHANNEL_LAYOUT_MONO;
  } else {
    sink->output_layout = (AVChannelLayout)AV_CHANNEL_LAYOUT_STEREO;
  }
}

/* Picks the encoder's input format: float when the encoder takes it (no
 * requantisation before a lossy encoder), 16-bit or 32-bit integers for
 * FLAC and PCM. */
static enum AVSampleFormat choose_sample_format(const rendition_sink_t *sink,
                                                const AVCodec *codec) {
  int bits = sink->spec.bits_per_sample ? sink->spec.bits_per_sample : 16;
  if (!sink->info->lossy) {
    return bits == 24 ? AV_SAMPLE_FMT_S32 : AV_SAMPLE_FMT_S16;
  }
  const enum AVSampleFormat *formats = codec->sample_fmts;
  for (size_t i = 0; formats && formats[i] != AV_SAMPLE_FMT_NONE; i++) {
    if (formats[i] == AV_SAMPLE_FMT_FLTP || formats[i] == AV_SAMPLE_FMT_FLT) {
      return formats[i];
    }
  }
  return formats ? formats[0] : AV_SAMPLE_FMT_FLTP;
}

static const char *encoder_name(const rendition_sink_t *sink) {
  if (sink->spec.codec == AP_RENDITION_WAV) {
    return sink->spec.bits_per_sample == 24 ? "pcm_s24le" : "pcm_s16le";
  }
  return sink->info->encoder;
}

static ap_status_t open_encoder(rendition_sink_t *sink, int sample_rate,
                                ap_error_t *error) {
  const char *name = encoder_name(sink);
  const AVCodec *codec = avcodec_find_encoder_by_name(name);
  if (!codec) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_UNSUPPORTED,
                        "rendition %s: this FFmpeg build has no \"%s\" "
                        "encoder: install an FFmpeg built with it",
                        sink->name, name);
  }
  sink->encoder = avcodec_alloc_context3(codec);
  if (!sink->encoder) {
    return AP_NO_MEMORY(error);
  }

  AVCodecContext *encoder = sink->encoder;
  encoder->sample_fmt = choose_sample_format(sink, codec);
  encoder->sample_rate = sample_rate;
  encoder->time_base = (AVRational){1, sample_rate};
  int result =
      av_channel_layout_copy(&encoder->ch_layout, &sink->output_layout);
  if (result < 0) {
    return AP_NO_MEMORY(error);
  }
  /* NOTE: FFmpeg 5.1's native AAC encoder treats the bit rate as a
   * ceiling and undershoots on sparse content (about 66 kb/s for a
   * 128 kb/s target on an 8 kHz telephone tone at 22.05 kHz), so AAC
   * sizes are estimates. Opus VBR and LAME CBR came within 7% on the test
   * recordings. */
  if (sink->info->lossy) {
    encoder->bit_rate = ap_rendition_effective_bitrate(&sink->spec);
  }
  if (!sink->info->lossy && sink->spec.bits_per_sample == 24) {
    encoder->bits_per_raw_sample = 24;
  }
  if (sink->muxer->oformat->flags & AVFMT_GLOBALHEADER) {
    encoder->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  }

  if (sink->spec.codec == AP_RENDITION_OPUS &&
      encoder->bit_rate > (int64_t)OPUS_MAX_BITRATE_PER_CHANNEL *
                              encoder->ch_layout.nb_channels) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "rendition %s: bitrate %lld b/s is over the Opus "
                        "limit of %d b/s per channel for %d channel(s): "
                        "lower the bit rate or set channels to 2",
                        sink->name, (long long)encoder->bit_rate,
                        OPUS_MAX_BITRATE_PER_CHANNEL,
                        encoder->ch_layout.nb_channels);
  }

  AVDictionary *options = NULL;
  if (sink->spec.codec == AP_RENDITION_OPUS) {
    /* Constrained VBR is off: plain VBR at the target rate. */
    av_dict_set(&options, "vbr", "on", 0);
  }
  result = avcodec_open2(encoder, codec, &options);
  av_dict_free(&options);
  if (result < 0) {
    return ffmpeg_error(sink, result, "opening the encoder", error);
  }

  int variable = (codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE) ||
                 encoder->frame_size <= 0;
  sink->frame_size = variable ? VARIABLE_FRAME_SIZE : encoder->frame_size;
  return AP_OK;
}

static ap_status_t open_muxer(rendition_sink_t *sink, ap_error_t *error) {
  int result = avformat_alloc_output_context2(&sink->muxer, NULL,
                                              sink->info->muxer, NULL);
  if (result < 0 || !sink->muxer) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_UNSUPPORTED,
                        "rendition %s: this FFmpeg build has no \"%s\" "
                        "muxer: %s",
                        sink->name, sink->info->muxer, av_err2str(result));
  }
  return AP_OK;
}

/* Adds the stream, attaches the output and writes the container header.
 * MP3 (Xing/LAME frame), FLAC (STREAMINFO) and WAV (sizes) rewrite their
 * header at the end; M4A always goes through a file for faststart. */
static ap_status_t write_header(rendition_sink_t *sink, ap_error_t *error) {
  sink->stream = avformat_new_stream(sink->muxer, NULL);
  if (!sink->stream) {
    return AP_NO_MEMORY(error);
  }
  int result =
      avcodec_parameters_from_context(sink->stream->codecpar, sink->encoder);
  if (result < 0) {
    return ffmpeg_error(sink, result, "copying the codec parameters", error);
  }
  sink->stream->time_base = sink->encoder->time_base;

  ap_rendition_codec_t codec = sink->spec.codec;
  int needs_seek = codec == AP_RENDITION_MP3 || codec == AP_RENDITION_FLAC ||
                   codec == AP_RENDITION_WAV;
  int needs_file = codec == AP_RENDITION_AAC;
  ap_status_t status =
      ap_rendition_writer_open(&sink->writer, sink->spec.output, sink->muxer,
                               needs_seek, needs_file, error);
  if (status != AP_OK) {
    return ap_error_prefix(error, "rendition %s", sink->name);
  }

  AVDictionary *options = NULL;
  if (codec == AP_RENDITION_AAC) {
    av_dict_set(&options, "movflags", "+faststart", 0);
    /* movenc's default movie time scale is 1000, which rounds the edit
     * list's duration to whole milliseconds. At the sample rate the edit
     * list states the exact frame count, so players can trim the end. */
    av_dict_set_int(&options, "movie_timescale", sink->encoder->sample_rate, 0);
  } else if (codec == AP_RENDITION_WAV) {
    av_dict_set(&options, "rf64", "auto", 0);
  } else if (codec == AP_RENDITION_MP3) {
    /* No ID3v2 tag: the file starts with the Xing/LAME frame. */
    av_dict_set(&options, "id3v2_version", "0", 0);
    /* mp3enc copies the first 9 bytes of this tag into the LAME tag's
     * version field, and FFmpeg's mp3 demuxer honours the delay and
     * padding only after "LAME", "Lavf" or "Lavc" there. */
    av_dict_set(&sink->stream->metadata, "encoder",
                LIBAVCODEC_IDENT " libmp3lame", 0);
  }
  /* Without bitexact, muxers stamp the FFmpeg version into the file; the
   * same input then always gives the same bytes. */
  av_dict_set(&options, "fflags", "+bitexact", 0);
  result = avformat_write_header(sink->muxer, &options);
  av_dict_free(&options);
  if (result < 0) {
    return ffmpeg_error(sink, result, "writing the container header", error);
  }
  return AP_OK;
}

static ap_status_t open_resampler(rendition_sink_t *sink, int source_rate,
                                  ap_error_t *error) {
  int result = swr_alloc_set_opts2(
      &sink->resampler, &sink->output_layout, sink->encoder->sample_fmt,
      sink->encoder->sample_rate, &sink->source_layout, AV_SAMPLE_FMT_FLTP,
      source_rate, 0, NULL);
  if (result < 0) {
    return ffmpeg_error(sink, result, "configuring the resampler", error);
  }

  /* Down-mix coefficients of ITU-R BS.775: centre and surrounds at -3 dB
   * (1/sqrt 2), LFE dropped. libswresample then scales the matrix so no
   * output channel can exceed full scale. These are its defaults, set
   * here so the documented mix does not depend on them. */
  av_opt_set_double(sink->resampler, "center_mix_level", M_SQRT1_2, 0);
  av_opt_set_double(sink->resampler, "surround_mix_level", M_SQRT1_2, 0);
  av_opt_set_double(sink->resampler, "lfe_mix_level", 0.0, 0);

  result = swr_init(sink->resampler);
  if (result < 0) {
    return ffmpeg_error(sink, result, "opening the resampler", error);
  }
  return AP_OK;
}

/* Grows the resampler's output planes to hold `frames` frames. */
static ap_status_t reserve_converted(rendition_sink_t *sink, int frames,
                                     ap_error_t *error) {
  if (frames <= sink->converted_capacity) {
    return AP_OK;
  }
  if (sink->converted) {
    av_freep(&sink->converted[0]);
    av_freep(&sink->converted);
  }
  sink->converted_capacity = 0;
  int result = av_samples_alloc_array_and_samples(
      &sink->converted, NULL, sink->encoder->ch_layout.nb_channels, frames,
      sink->encoder->sample_fmt, 0);
  if (result < 0) {
    return AP_NO_MEMORY(error);
  }
  sink->converted_capacity = frames;
  return AP_OK;
}

static ap_status_t allocate_buffers(rendition_sink_t *sink, ap_error_t *error) {
  int channels = sink->encoder->ch_layout.nb_channels;
  sink->fifo = av_audio_fifo_alloc(sink->encoder->sample_fmt, channels,
                                   2 * sink->frame_size);
  sink->frame = av_frame_alloc();
  sink->packet = av_packet_alloc();
  if (!sink->fifo || !sink->frame || !sink->packet) {
    return AP_NO_MEMORY(error);
  }

  sink->frame->nb_samples = sink->frame_size;
  sink->frame->format = sink->encoder->sample_fmt;
  sink->frame->sample_rate = sink->encoder->sample_rate;
  if (av_channel_layout_copy(&sink->frame->ch_layout,
                             &sink->encoder->ch_layout) < 0 ||
      av_frame_get_buffer(sink->frame, 0) < 0) {
    return AP_NO_MEMORY(error);
  }

  sink->inputs = calloc((size_t)sink->source_channels, sizeof *sink->inputs);
  if (!sink->inputs) {
    return AP_NO_MEMORY(error);
  }
  sink->scaled = calloc((size_t)sink->source_channels, sizeof *sink->scaled);
  if (!sink->scaled) {
    return AP_NO_MEMORY(error);
  }
  for (int c = 0; c < sink->source_channels; c++) {
    sink->scaled[c] = malloc(AP_SINK_MAX_BLOCK_FRAMES * sizeof(float));
    if (!sink->scaled[c]) {
      return AP_NO_MEMORY(error);
    }
  }

  int max_frames =
      swr_get_out_samples(sink->resampler, AP_SINK_MAX_BLOCK_FRAMES);
  if (max_frames < 0) {
    return ffmpeg_error(sink, max_frames, "sizing the resampler output", error);
  }
  return reserve_converted(sink, max_frames, error);
}

static ap_status_t rendition_start(ap_sink_t *base,
                                   const ap_stream_format_t *format,
                                   ap_error_t *error) {
  rendition_sink_t *sink = (rendition_sink_t *)base;
  if (!format || format->sample_rate <= 0 || format->channels <= 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                        "rendition %s: invalid stream format (%d Hz, %d "
                        "channels)",
                        sink->name, format ? format->sample_rate : 0,
                        format ? format->channels : 0);
  }

  ap_status_t status = set_source_layout(sink, format, error);
  if (status != AP_OK) {
    return status;
  }
  choose_output_layout(sink);
  int64_t bitrate = ap_rendition_effective_bitrate(&sink->spec);
  int channels = sink->output_layout.nb_channels;
  int rate =
      ap_rendition_pick_sample_rate(sink->info, sink->spec.sample_rate,
                                    format->sample_rate, bitrate, channels);
  if (sink->spec.codec == AP_RENDITION_AAC &&
      bitrate > ap_rendition_aac_max_bitrate(rate, channels)) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "rendition %s: bitrate %lld b/s is over the AAC limit "
                        "of %lld b/s for %d channel(s) at %d Hz: lower the bit "
                        "rate or raise sample_rate",
                        sink->name, (long long)bitrate,
                        (long long)ap_rendition_aac_max_bitrate(rate, channels),
                        channels, rate);
  }

  status = open_muxer(sink, error);
  if (status == AP_OK) {
    status = open_encoder(sink, rate, error);
  }
  if (status == AP_OK) {
    status = open_resampler(sink, format->sample_rate, error);
  }
  if (status == AP_OK) {
    status = allocate_buffers(sink, error);
  }
  if (status == AP_OK) {
    status = write_header(sink, error);
  }
  return status;
}

/* Sends one frame (or NULL to flush) and muxes every packet that comes
 * out. */
static ap_status_t encode(rendition_sink_t *sink, const AVFrame *frame,
                          ap_error_t *error) {
  int result = avcodec_send_frame(sink->encoder, frame);
  if (result < 0) {
    return ffmpeg_error(sink, result, "encoding", error);
  }
  for (;;) {
    result = avcodec_receive_packet(sink->encoder, sink->packet);
    if (result == AVERROR(EAGAIN) || result == AVERROR_EOF) {
      return AP_OK;
    }
    if (result < 0) {
      return ffmpeg_error(sink, result, "encoding", error);
    }
    sink->packet->stream_index = sink->stream->index;
    av_packet_rescale_ts(sink->packet, sink->encoder->time_base,
                         sink->stream->time_base);
    result = av_interleaved_write_frame(sink->muxer, sink->packet);
    if (result < 0) {
      return ffmpeg_error(sink, result, "writing a packet", error);
    }
  }
}

/* Encodes whole frames from the FIFO; at the end (`final`) also the
 * remainder, padded with silence only for encoders that cannot take a
 * short last frame. */
static ap_status_t drain_fifo(rendition_sink_t *sink, int final,
                              ap_error_t *error) {
  for (;;) {
    int available = av_audio_fifo_size(sink->fifo);
    if (available == 0 || (available < sink->frame_size && !final)) {
      return AP_OK;
    }
    int frames = available < sink->frame_size ? available : sink->frame_size;

    int result = av_frame_make_writable(sink->frame);
    if (result < 0) {
      return AP_NO_MEMORY(error);
    }
    sink->frame->nb_samples = sink->frame_size;
    if (av_audio_fifo_read(sink->fifo, (void **)sink->frame->extended_data,
                           frames) != frames) {
      return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                          "rendition %s: the sample FIFO returned fewer than "
                          "%d frames",
                          sink->name, frames);
    }
    int small_last =
        sink->frame_size == VARIABLE_FRAME_SIZE ||
        (sink->encoder->codec->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME);
    if (frames < sink->frame_size && !small_last) {
      av_samples_set_silence(
          sink->frame->extended_data, frames, sink->frame_size - frames,
          sink->encoder->ch_layout.nb_channels, sink->encoder->sample_fmt);
    } else {
      sink->frame->nb_samples = frames;
    }
    sink->frame->pts = sink->next_pts;
    sink->next_pts += sink->frame->nb_samples;

    ap_status_t status = encode(sink, sink->frame, error);
    if (status != AP_OK) {
      return status;
    }
  }
}

/* Resamples `frames` frames into the FIFO; NULL planes flush the
 * resampler. Stores the frames added in `produced`. */
static ap_status_t resample(rendition_sink_t *sink, const float *const *planes,
                            int frames, int *produced_out, ap_error_t *error) {
  int room = swr_get_out_samples(sink->resampler, frames);
  if (room < 0) {
    return ffmpeg_error(sink, room, "sizing the resampler output", error);
  }
  ap_status_t status = reserve_converted(sink, room, error);
  if (status != AP_OK) {
    return status;
  }
  int produced =
      swr_convert(sink->resampler, sink->converted, sink->converted_capacity,
                  (const uint8_t **)planes, frames);
  if (produced < 0) {
    return ffmpeg_error(sink, produced, "resampling", error);
  }
  if (produced > 0 && av_audio_fifo_write(sink->fifo, (void **)sink->converted,
                                          produced) != produced) {
    return AP_NO_MEMORY(error);
  }
  *produced_out = produced;
  return AP_OK;
}

/*
 * Applies the gain and clamps to full scale, with NaN as silence. A
 * damaged AAC stream can decode to samples near 125000 (+102 dBFS), and
 * libmp3lame 3.100 then aborts the process on an assertion in
 * CBR_iteration_loop. Integer outputs clip at full scale anyway.
 */
static void condition_samples(const float *input, float *output, int count,
                              float gain) {
  for (int i = 0; i < count; i++) {
    float sample = input[i] * gain;
    if (isnan(sample)) {
      sample = 0.0f;
    } else if (sample > 1.0f) {
      sample = 1.0f;
    } else if (sample < -1.0f) {
      sample = -1.0f;
    }
    output[i] = sample;
  }
}

static ap_status_t rendition_write(ap_sink_t *base, const float *const *planes,
                                   int frames, ap_error_t *error) {
  rendition_sink_t *sink = (rendition_sink_t *)base;
  int offset = 0;
  while (offset < frames) {
    int count = frames - offset;
    if (count > AP_SINK_MAX_BLOCK_FRAMES) {
      count = AP_SINK_MAX_BLOCK_FRAMES;
    }

    /* The planes are shared with other sinks, so the gain and the clamp
     * go into the sink's own scratch copy. */
    const float **input = sink->inputs;
    for (int c = 0; c < sink->source_channels; c++) {
      condition_samples(planes[c] + offset, sink->scaled[c], count, sink->gain);
      input[c] = sink->scaled[c];
    }

    int produced = 0;
    ap_status_t status = resample(sink, input, count, &produced, error);
    if (status == AP_OK) {
      status = drain_fifo(sink, 0, error);
    }
    if (status != AP_OK) {
      return status;
    }
    offset += count;
  }
  return AP_OK;
}

static ap_status_t rendition_finish(ap_sink_t *base, ap_error_t *error) {
  rendition_sink_t *sink = (rendition_sink_t *)base;

  /* The resampler holds back up to its filter length; flush it first. */
  int produced = 0;
  ap_status_t status = AP_OK;
  do {
    status = resample(sink, NULL, 0, &produced, error);
    if (status == AP_OK) {
      status = drain_fifo(sink, 0, error);
    }
    if (status != AP_OK) {
      return status;
    }
  } while (produced > 0);

  status = drain_fifo(sink, 1, error);
  if (status == AP_OK) {
    status = encode(sink, NULL, error);
  }
  if (status != AP_OK) {
    return status;
  }

  int result = av_write_trailer(sink->muxer);
  if (result < 0) {
    return ffmpeg_error(sink, result, "writing the container trailer", error);
  }
  status = ap_rendition_writer_finish(&sink->writer, sink->muxer, error);
  if (status != AP_OK) {
    return ap_error_prefix(error, "rendition %s", sink->name);
  }
  sink->bytes = sink->writer.bytes;
  return AP_OK;
}

static void rendition_destroy(ap_sink_t *base) {
  rendition_sink_t *sink = (rendition_sink_t *)base;
  if (!sink) {
    return;
  }
  ap_rendition_writer_close(&sink->writer, sink->muxer);
  avformat_free_context(sink->muxer);
  avcodec_free_context(&sink->encoder);
  swr_free(&sink->resampler);
  if (sink->fifo) {
    av_audio_fifo_free(sink->fifo);
  }
  av_frame_free(&sink->frame);
  av_packet_free(&sink->packet);
  if (sink->converted) {
    av_freep(&sink->converted[0]);
    av_freep(&sink->converted);
  }
  free(sink->inputs);
  if (sink->scaled) {
    for (int c = 0; c < sink->source_channels; c++) {
      free(sink->scaled[c]);
    }
    free(sink->scaled);
  }
  av_channel_layout_uninit(&sink->source_layout);
  av_channel_layout_uninit(&sink->output_layout);
  free(sink);
}

static const ap_sink_ops_t rendition_ops = {
    .name = "rendition",
    .start = rendition_start,
    .write = rendition_write,
    .finish = rendition_finish,
    .destroy = rendition_destroy,
};

ap_status_t ap_rendition_sink_create(const ap_rendition_spec_t *spec,
                                     double gain_db, ap_sink_t **out,
                                     ap_error_t *error) {
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_rendition_sink_create: out is required");
  }
  *out = NULL;
  ap_status_t status = ap_rendition_spec_validate(spec, error);
  if (status != AP_OK) {
    return status;
  }
  if (!isfinite(gain_db) || gain_db < -120.0 || gain_db > 60.0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "rendition gain_db %g is out of range: use -120 to "
                        "+60 dB",
                        gain_db);
  }

  /* Encoders and muxers log through FFmpeg's process-wide callback (movenc
   * announces its faststart pass, for one); the library reports through
   * ap_error_t instead, with the same policy as the decoder. */
  ap_decoder_silence_ffmpeg();

  rendition_sink_t *sink = calloc(1, sizeof *sink);
  if (!sink) {
    return AP_NO_MEMORY(error);
  }
  sink->base.ops = &rendition_ops;
  sink->base.wants_thread = 1;
  sink->spec = *spec;
  sink->spec.name = NULL;
  sink->info = ap_rendition_codec_info(spec->codec);
  sink->gain = (float)pow(10.0, gain_db / 20.0);
  ap_rendition_derive_name(spec, sink->name, sizeof sink->name);
  *out = &sink->base;
  return AP_OK;
}

int64_t ap_rendition_sink_bytes(const ap_sink_t *sink) {
  return sink ? ((const rendition_sink_t *)sink)->bytes : 0;
}

const char *ap_rendition_sink_name(const ap_sink_t *sink) {
  return sink ? ((const rendition_sink_t *)sink)->name : NULL;
}
