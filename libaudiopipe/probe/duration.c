/*
 * Duration: picks the cheapest exact evidence the container offers (PCM
 * data size, an encoder's frame count, sample tables with the edit list,
 * the last Ogg granule position, or a scan of every packet). FFmpeg's
 * estimate from the bit rate is never used. This file also sets the
 * encoder delay and padding, the truncation flag and the frame count
 * after which the decoder stops.
 */
#include <string.h>

#include <libavutil/intreadwrite.h>
#include <libavutil/mathematics.h>

#include "core/error_internal.h"
#include "probe/decoder_internal.h"
#include "probe/media_info_internal.h"

typedef struct packet_totals {
  int64_t samples;    /* sum of packet durations, in samples */
  int64_t bytes;      /* sum of packet sizes */
  int64_t skip_start; /* from AV_PKT_DATA_SKIP_SAMPLES */
  int64_t skip_end;
  int64_t first_timestamp; /* in samples, INT64_MIN before the first */
  int64_t end_timestamp;   /* max of pts + duration, in samples */
  int64_t packets;
} packet_totals_t;

/* Samples in an Opus packet from its TOC byte (RFC 6716 section 3.1),
 * at 48 kHz. Returns 0 for a malformed packet. */
static int64_t opus_packet_samples(const uint8_t *data, int size) {
  if (size < 1) {
    return 0;
  }
  static const int frame_samples[32] = {
      480,  960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920,
      2880, 480, 960,  480,  960, 120, 240,  480,  960, 120, 240,
      480,  960, 120,  240,  480, 960, 120,  240,  480, 960};
  int per_frame = frame_samples[data[0] >> 3];
  int count;
  switch (data[0] & 3) {
  case 0:
    count = 1;
    break;
  case 1:
  case 2:
    count = 2;
    break;
  default:
    if (size < 2) {
      return 0;
    }
    count = data[1] & 0x3F;
    break;
  }
  return (int64_t)per_frame * count;
}

/* The pre-skip from an OpusHead header (RFC 7845 section 5.1). */
static int64_t opus_pre_skip(const AVCodecParameters *parameters) {
  if (parameters->extradata_size >= 19 &&
      memcmp(parameters->extradata, "OpusHead", 8) == 0) {
    return AV_RL16(parameters->extradata + 10);
  }
  return parameters->initial_padding;
}

/* Samples in one packet of the selected stream. */
static int64_t packet_samples(const ap_decoder_t *decoder,
                              const AVPacket *packet, int pcm_bytes) {
  const AVStream *stream = decoder->stream;
  int rate = decoder->info->sample_rate;
  AVRational sample_base = {1, rate};
  if (stream->codecpar->codec_id == AV_CODEC_ID_OPUS) {
    return opus_packet_samples(packet->data, packet->size) * rate / 48000;
  }
  if (pcm_bytes > 0) {
    return packet->size / pcm_bytes;
  }
  /* A duration of more than a minute for one packet is an artefact (FFmpeg
   * 5.1's Ogg demuxer stores a negative last duration as a 32-bit unsigned
   * value), so the packet then counts as the codec's frame size. */
  if (packet->duration > 0 &&
      packet->duration <
          av_rescale_q(60, (AVRational){1, 1}, stream->time_base)) {
    return av_rescale_q(packet->duration, stream->time_base, sample_base);
  }
  return stream->codecpar->frame_size;
}

static void add_packet(const ap_decoder_t *decoder, const AVPacket *packet,
                       int pcm_bytes, packet_totals_t *totals) {
  const AVStream *stream = decoder->stream;
  AVRational sample_base = {1, decoder->info->sample_rate};
  int64_t samples = packet_samples(decoder, packet, pcm_bytes);
  if (packet->pts != AV_NOPTS_VALUE) {
    int64_t start = av_rescale_q(packet->pts, stream->time_base, sample_base);
    if (totals->first_timestamp == INT64_MIN) {
      totals->first_timestamp = start;
    }
    if (start + samples > totals->end_timestamp) {
      totals->end_timestamp = start + samples;
    }
  }
  totals->samples += samples;
  totals->bytes += packet->size;
  totals->packets++;
  size_t side_size = 0;
  const uint8_t *skip =
      av_packet_get_side_data(packet, AV_PKT_DATA_SKIP_SAMPLES, &side_size);
  if (skip && side_size >= 8) {
    totals->skip_start += AV_RL32(skip);
    totals->skip_end += AV_RL32(skip + 4);
  }
}

/* Reads every packet of the selected stream without decoding it. */
static ap_status_t scan_packets(ap_decoder_t *decoder, packet_totals_t *totals,
                                ap_error_t *error) {
  memset(totals, 0, sizeof *totals);
  totals->first_timestamp = INT64_MIN;
  /* PCM packets carry no exact duration in some containers (Matroska
   * rounds to milliseconds): their size gives the sample count. */
  int pcm_bytes = av_get_bits_per_sample(decoder->stream->codecpar->codec_id) /
                  8 * decoder->info->channels;
  AVPacket *packet = av_packet_alloc();
  if (!packet) {
    return AP_NO_MEMORY(error);
  }

  for (;;) {
    int code = av_read_frame(decoder->demuxer, packet);
    if (code < 0) {
      av_packet_free(&packet);
      if (decoder->source.failure != AP_OK) {
        if (error) {
          *error = decoder->source.failure_error;
        }
        return decoder->source.failure;
      }
      if (decoder->deadline_passed || code == AVERROR_EXIT) {
        return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_DECODE_TIME_LIMIT,
                            "scanning packets took longer than %g s "
                            "(limits.max_decode_seconds): raise the limit",
                            decoder->limits.max_decode_seconds);
      }
      return AP_OK; /* the end, or damage that ends the readable part */
    }
    if (packet->stream_index == decoder->stream_index) {
      add_packet(decoder, packet, pcm_bytes, totals);
    }
    av_packet_unref(packet);
  }
}

/* Reopens the demuxer at offset 0 after a scan read it to the end. */
static ap_status_t reopen(ap_decoder_t *decoder, ap_error_t *error) {
  if (decoder->flags & AP_DECODER_PROBE_ONLY) {
    return AP_OK; /* nothing will be decoded */
  }
  ap_status_t status = ap_byte_source_rewind(&decoder->source, error);
  if (status != AP_OK) {
    return status;
  }
  avcodec_free_context(&decoder->codec);
  swr_free(&decoder->resampler);
  avformat_close_input(&decoder->demuxer);
  ap_avio_close(&decoder->avio);
  return ap_decoder_open_demuxer(decoder, error);
}

/* A scan reads the whole input once: allowed when the input can be read
 * again, or when only the media info is wanted. */
static int can_scan(const ap_decoder_t *decoder) {
  return decoder->source.seekable || (decoder->flags & AP_DECODER_PROBE_ONLY);
}

static double header_claim(const ap_decoder_t *decoder) {
  const AVFormatContext *demuxer = decoder->demuxer;
  if (demuxer->duration != AV_NOPTS_VALUE && demuxer->duration > 0 &&
      demuxer->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE) {
    return (double)demuxer->duration / AV_TIME_BASE;
  }
  return -1.0;
}

static ap_status_t generic_scan(ap_decoder_t *decoder, ap_error_t *error) {
  ap_media_info_t *info = decoder->info;
  if (!can_scan(decoder)) {
    return AP_OK; /* the decode pass will count the frames */
  }
  packet_totals_t totals;
  ap_status_t status = scan_packets(decoder, &totals, error);
  if (status != AP_OK) {
    return status;
  }

  const AVCodecParameters *parameters = decoder->stream->codecpar;
  int64_t delay = totals.skip_start;
  int64_t frames;
  if (parameters->codec_id == AV_CODEC_ID_OPUS) {
    /* Opus: every packet's samples, less the pre-skip and the discard
     * padding of the last packet. */
    int64_t pre_skip = opus_pre_skip(parameters);
    delay = pre_skip > delay ? pre_skip : delay;
    frames = totals.samples - delay - totals.skip_end;
  } else if (strcmp(decoder->demuxer->iformat->name, "ogg") == 0 &&
             totals.first_timestamp != INT64_MIN) {
    /* Ogg: timestamps come from granule positions, so the end of the last
     * packet is the sample count, with end trimming already applied.
     * NOTE: FFmpeg 5.1 decodes some short Vorbis files to fewer frames
     * (43972 of a one-second 44100-frame file): the decoder's count is
     * then the smaller one. */
    int64_t start = totals.first_timestamp > 0 ? totals.first_timestamp : 0;
    frames = totals.end_timestamp - start;
  } else {
    frames = totals.samples - totals.skip_start - totals.skip_end;
  }
  info->duration_frames = frames > 0 ? frames : 0;
  info->duration_method = AP_DURATION_PACKET_SCAN;
  info->encoder_delay = delay;
  info->encoder_padding = totals.skip_end;
  if (info->bitrate <= 0 && frames > 0) {
    info->bitrate = totals.bytes * 8 * info->sample_rate / frames;
  }
  /* NOTE: the decoder is not stopped at a scanned count: libavcodec
   * applies the container's own trimming, and a scan that miscounts one
   * codec's packets must not cut real audio. */
  return reopen(decoder, error);
}

/* Counts the bytes of a PCM data chunk whose size is a streaming marker
 * on an input of unknown length, by reading it to the end. */
static ap_status_t count_pcm_bytes(ap_decoder_t *decoder, ap_error_t *error) {
  ap_pcm_header_t *pcm = &decoder->pcm;
  int64_t length = ap_byte_source_read_to_end(&decoder->source, error);
  if (length < 0) {
    return (ap_status_t)error->code;
  }
  pcm->present_bytes =
      length > pcm->data_offset ? length - pcm->data_offset : 0;
  pcm->frames = pcm->present_bytes / pcm->block_align;
  decoder->info->input_bytes = length;
  return AP_OK;
}

static ap_status_t pcm_duration(ap_decoder_t *decoder, ap_error_t *error) {
  ap_pcm_header_t *pcm = &decoder->pcm;
  ap_media_info_t *info = decoder->info;
  if (pcm->declared_frames >= 0) {
    info->header_duration = (double)pcm->declared_frames / pcm->sample_rate;
  }
  ap_duration_method_t method = AP_DURATION_HEADER;
  if (pcm->frames < 0 && can_scan(decoder)) {
    ap_status_t status = count_pcm_bytes(decoder, error);
    if (status != AP_OK) {
      return status;
    }
    method = AP_DURATION_PACKET_SCAN;
    ap_status_t reopened = reopen(decoder, error);
    if (reopened != AP_OK) {
      return reopened;
    }
  }
  if (pcm->frames >= 0) {
    info->duration_frames = pcm->frames;
    info->duration_method = method;
    info->truncated = pcm->truncated;
    decoder->frame_limit = pcm->frames;
  }
  return AP_OK;
}

static ap_status_t mp3_duration(ap_decoder_t *decoder, ap_error_t *error) {
  ap_mp3_header_t *mp3 = &decoder->mp3;
  ap_media_info_t *info = decoder->info;
  int64_t per_frame = mp3->frame.samples_per_frame;
  int64_t trim = mp3->has_lame ? mp3->encoder_delay + mp3->encoder_padding : 0;
  if (mp3->has_lame) {
    info->encoder_delay = mp3->encoder_delay;
    info->encoder_padding = mp3->encoder_padding;
  }
  info->is_vbr = mp3->is_vbr;
  info->bitrate = mp3->frame.bitrate;

  /* A frame count that its bytes contradict is reported as the header's
   * claim, but the frames are counted instead. */
  int header_usable = mp3->has_vbr_header && mp3->header_frames > 0;
  if (header_usable) {
    int64_t frames = mp3->header_frames * per_frame - trim;
    info->header_duration =
        (double)(frames > 0 ? frames : 0) / info->sample_rate;
    if (mp3->is_vbr && mp3->header_bytes > 0 && mp3->header_frames_plausible) {
      info->bitrate = mp3->header_bytes * 8 * info->sample_rate /
                      (mp3->header_frames * per_frame);
    }
    /* The VBR header counts bytes too: fewer present means a cut file. */
    int64_t end = mp3->first_frame + mp3->frame.frame_bytes +
                  (mp3->header_bytes > 0 ? mp3->header_bytes : 0);
    if (mp3->header_bytes > 0 && decoder->source.size >= 0 &&
        end > decoder->source.size + mp3->frame.frame_bytes) {
      info->truncated = 1;
      header_usable = 0;
    }
    if (!mp3->header_frames_plausible) {
      header_usable = 0;
    }
  }
  if (header_usable && !(decoder->flags & AP_DECODER_ALWAYS_SCAN)) {
    info->duration_frames = mp3->header_frames * per_frame - trim;
    if (info->duration_frames < 0) {
      info->duration_frames = 0;
    }
    info->duration_method = AP_DURATION_FRAME_COUNT;
    decoder->frame_limit = info->duration_frames;
    return AP_OK;
  }
  if (!decoder->source.seekable) {
    /* libavformat has read past the head already, so the frames are
     * counted from its packets instead. */
    return generic_scan(decoder, error);
  }

  int64_t frames = 0;
  int64_t bytes = 0;
  int varies = 0;
  ap_status_t status = ap_mp3_scan_frames(&decoder->source, mp3, &frames,
                                          &bytes, &varies, error);
  if (status != AP_OK) {
    return status;
  }
  int64_t samples = frames * per_frame - trim;
  info->duration_frames = samples > 0 ? samples : 0;
  info->duration_method = AP_DURATION_PACKET_SCAN;
  if (varies) {
    info->is_vbr = 1;
  }
  if (frames > 0 && (varies || mp3->is_vbr)) {
    info->bitrate = bytes * 8 * info->sample_rate / (frames * per_frame);
  }
  decoder->frame_limit = info->duration_frames;
  return reopen(decoder, error);
}

static ap_status_t flac_duration(ap_decoder_t *decoder, ap_error_t *error) {
  int rate = 0;
  int channels = 0;
  int bits = 0;
  int64_t total = 0;
  ap_media_info_t *info = decoder->info;
  if (ap_flac_streaminfo_parse(&decoder->source, &rate, &channels, &bits,
                               &total) &&
      total > 0) {
    info->header_duration = (double)total / info->sample_rate;
    if (!(decoder->flags & AP_DECODER_ALWAYS_SCAN)) {
      info->duration_frames = total;
      info->duration_method = AP_DURATION_HEADER;
      decoder->frame_limit = total;
      return AP_OK;
    }
  }
  return generic_scan(decoder, error);
}

/* Ogg: libavformat reads the granule position of the last page of a
 * seekable input into the stream duration, which counts the pre-skip of
 * Opus. Without it (a forward-only input) the packets are scanned. */
static ap_status_t ogg_duration(ap_decoder_t *decoder, ap_error_t *error) {
  AVStream *stream = decoder->stream;
  ap_media_info_t *info = decoder->info;
  if (stream->duration == AV_NOPTS_VALUE || stream->duration <= 0 ||
      (decoder->flags & AP_DECODER_ALWAYS_SCAN)) {
    return generic_scan(decoder, error);
  }
  AVRational sample_base = {1, info->sample_rate};
  int64_t frames =
      av_rescale_q(stream->duration, stream->time_base, sample_base);
  if (stream->codecpar->codec_id == AV_CODEC_ID_OPUS) {
    info->encoder_delay = opus_pre_skip(stream->codecpar);
    frames -= info->encoder_delay;
  }
  info->duration_frames = frames > 0 ? frames : 0;
  info->duration_method = AP_DURATION_FRAME_COUNT;
  info->header_duration = (double)info->duration_frames / info->sample_rate;
  /* The last granule position is the stream's length by the Ogg
   * specification: samples FFmpeg fails to trim after it are padding. */
  decoder->frame_limit = info->duration_frames;
  return AP_OK;
}

/* MP4: FFmpeg's stream duration comes from the sample tables with the
 * edit list applied (not from the bit rate), and the edit list's media
 * time is the priming that libavcodec skips. */
static ap_status_t mp4_duration(ap_decoder_t *decoder, ap_error_t *error) {
  AVStream *stream = decoder->stream;
  ap_media_info_t *info = decoder->info;
  AVRational sample_base = {1, info->sample_rate};
  if (stream->duration == AV_NOPTS_VALUE || stream->duration <= 0 ||
      (decoder->flags & AP_DECODER_ALWAYS_SCAN)) {
    return generic_scan(decoder, error);
  }
  int64_t frames =
      av_rescale_q(stream->duration, stream->time_base, sample_base);
  info->header_duration = (double)frames / info->sample_rate;
  /* FFmpeg shifts the primed samples before zero, so the first sample's
   * timestamp gives the priming the edit list skips. */
  int entries = avformat_index_get_entries_count(stream);
  int64_t start = stream->start_time != AV_NOPTS_VALUE ? stream->start_time : 0;
  const AVIndexEntry *first =
      entries > 0 ? avformat_index_get_entry(stream, 0) : NULL;
  if (first && first->timestamp < start) {
    info->encoder_delay =
        av_rescale_q(start - first->timestamp, stream->time_base, sample_base);
  } else {
    info->encoder_delay = stream->codecpar->initial_padding;
  }
  /* With `moov` after `mdat`, a forward-only input has passed the media
   * data by the time the sample tables are known. libavformat can still
   * seek inside its buffer, so that is what decides. */
  if (first && !decoder->source.seekable &&
      !(decoder->flags & AP_DECODER_PROBE_ONLY) &&
      avio_seek(decoder->demuxer->pb, first->pos, SEEK_SET) < 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_UNSUPPORTED,
                        "the MP4's moov box follows its media data, so a "
                        "forward-only input cannot be decoded: pass a "
                        "seekable input or remux with -movflags +faststart");
  }

  int frame_size = stream->codecpar->frame_size;
  if (frame_size > 0 && stream->nb_frames > 0) {
    int64_t padding =
        stream->nb_frames * frame_size - info->encoder_delay - frames;
    info->encoder_padding = padding > 0 ? padding : 0;
  }

  /* A sample whose bytes lie past the end of the input marks a cut
   * file: the duration is then what the present samples cover. */
  if (decoder->source.size >= 0 && entries > 0) {
    const AVIndexEntry *last = avformat_index_get_entry(stream, entries - 1);
    if (last && last->pos + last->size > decoder->source.size) {
      int low = 0;
      int high = entries - 1;
      while (low < high) {
        int middle = (low + high) / 2;
        const AVIndexEntry *entry = avformat_index_get_entry(stream, middle);
        if (entry->pos + entry->size > decoder->source.size) {
          high = middle;
        } else {
          low = middle + 1;
        }
      }
      const AVIndexEntry *missing = avformat_index_get_entry(stream, low);
      int64_t present = av_rescale_q(missing->timestamp - start,
                                     stream->time_base, sample_base);
      info->truncated = 1;
      if (present < frames) {
        frames = present > 0 ? present : 0;
      }
    }
  }
  info->duration_frames = frames;
  info->duration_method = AP_DURATION_FRAME_COUNT;
  decoder->frame_limit = frames;
  return AP_OK;
}

ap_status_t ap_decoder_measure_duration(ap_decoder_t *decoder,
                                        ap_error_t *error) {
  ap_media_info_t *info = decoder->info;
  const char *format = decoder->demuxer->iformat->name;
  info->header_duration = header_claim(decoder);
  if (info->sample_rate <= 0) {
    return AP_OK;
  }

  ap_status_t status;
  if (decoder->pcm.found && decoder->pcm.is_pcm &&
      decoder->pcm.block_align > 0 &&
      (strcmp(format, "wav") == 0 || strcmp(format, "aiff") == 0)) {
    status = pcm_duration(decoder, error);
  } else if (decoder->mp3.found && strcmp(format, "mp3") == 0) {
    status = mp3_duration(decoder, error);
  } else if (strcmp(format, "flac") == 0) {
    status = flac_duration(decoder, error);
  } else if (strncmp(format, "mov,", 4) == 0) {
    status = mp4_duration(decoder, error);
  } else if (strcmp(format, "ogg") == 0) {
    status = ogg_duration(decoder, error);
  } else {
    status = generic_scan(decoder, error);
  }
  if (status != AP_OK) {
    return status;
  }

  double limit = decoder->limits.max_duration_seconds;
  double seconds = info->duration_frames >= 0
                       ? (double)info->duration_frames / info->sample_rate
                       : info->header_duration;
  if (limit > 0.0 && seconds > limit) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_DURATION_LIMIT,
                        "audio lasts %.3f s, longer than %.3f s "
                        "(limits.max_duration_seconds): trim it or raise "
                        "the limit",
                        seconds, limit);
  }
  return AP_OK;
}
