/*
 * Opening a decoder: limits that need no parsing, sniffing, the
 * library's own header parsers, then libavformat, and the media info
 * built from all of them.
 */
#include <stdlib.h>
#include <string.h>

#include <libavutil/channel_layout.h>
#include <libavutil/mem.h>

#include "core/error_internal.h"
#include "probe/decoder_internal.h"
#include "probe/media_info_internal.h"

static ap_status_t too_large(int64_t bytes, int64_t limit, ap_error_t *error) {
  return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INPUT_TOO_LARGE,
                      "input is %lld bytes, more than %lld "
                      "(limits.max_input_bytes): raise the limit or reject "
                      "the upload",
                      (long long)bytes, (long long)limit);
}

/*
 * For bytes the sniffer does not know, runs FFmpeg's content probe and accepts
 * only a confident score, because random bytes often contain something that
 * looks like an MPEG frame sync and would otherwise be "decoded".
 */
static ap_status_t probe_unknown(ap_decoder_t *decoder, ap_error_t *error) {
  size_t size = decoder->source.head_size;
  unsigned char *padded = av_mallocz(size + AVPROBE_PADDING_SIZE);
  if (!padded) {
    return AP_NO_MEMORY(error);
  }
  memcpy(padded, decoder->source.head, size);
  AVProbeData probe = {.filename = "", .buf = padded, .buf_size = (int)size};
  int score = 0;
  decoder->input_format = av_probe_input_format3(&probe, 1, &score);
  av_free(padded);
  if (!decoder->input_format || score < AVPROBE_SCORE_RETRY) {
    decoder->input_format = NULL;
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_NOT_AUDIO,
                        "the input's format is not recognised (no known "
                        "signature in its first %zu bytes): upload an audio "
                        "file",
                        size);
  }
  return AP_OK;
}

static ap_status_t read_and_sniff(ap_decoder_t *decoder, ap_io_t *input,
                                  ap_error_t *error) {
  int64_t limit = decoder->limits.max_input_bytes;
  int64_t total = ap_io_size(input);
  int64_t position = ap_io_tell(input);
  if (limit > 0 && total >= 0 && total - position > limit) {
    return too_large(total - position, limit, error);
  }

  ap_status_t status =
      ap_byte_source_open(&decoder->source, input, limit, error);
  if (status != AP_OK) {
    return status;
  }
  if (decoder->source.head_size == 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_EMPTY_INPUT,
                        "the input is empty (0 bytes): the upload stored no "
                        "data, so send the file again");
  }
  if (limit > 0 && (int64_t)decoder->source.head_size > limit) {
    return too_large((int64_t)decoder->source.head_size, limit, error);
  }

  decoder->sniff = ap_sniff(decoder->source.head, decoder->source.head_size,
                            &decoder->sniff_kind);
  if (decoder->sniff == AP_SNIFF_MULTIPART) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_MULTIPART_BODY,
                        "the input is a multipart/form-data body, not audio: "
                        "the client sent a form (FormData) to the upload "
                        "URL; send the file's bytes as the request body");
  }
  if (decoder->sniff == AP_SNIFF_NOT_AUDIO) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_NOT_AUDIO,
                        "the input is %s, not audio: upload an audio file",
                        decoder->sniff_kind);
  }
  if (decoder->sniff == AP_SNIFF_UNKNOWN) {
    return probe_unknown(decoder, error);
  }
  return AP_OK;
}

/* Parses the headers the library reads itself, and rejects hostile channel
 * counts and rates before FFmpeg reads them. */
static ap_status_t parse_headers(ap_decoder_t *decoder, ap_error_t *error) {
  ap_status_t status =
      ap_pcm_header_parse(&decoder->source, &decoder->pcm, error);
  if (status != AP_OK) {
    return status;
  }
  if (decoder->pcm.found) {
    status = ap_decoder_check_channels(&decoder->limits, decoder->pcm.channels,
                                       error);
    if (status == AP_OK) {
      status = ap_decoder_check_sample_rate(&decoder->limits,
                                            decoder->pcm.sample_rate, error);
    }
    return status;
  }
  if (decoder->sniff_kind && (strcmp(decoder->sniff_kind, "mp3") == 0 ||
                              strcmp(decoder->sniff_kind, "id3") == 0)) {
    /* On a forward-only input the first frame must be inside the head,
     * so the head grows past a large ID3v2 tag (cover art). */
    int64_t tags = ap_id3v2_length(&decoder->source, 0);
    if (!decoder->source.seekable &&
        tags + 8192 > (int64_t)decoder->source.head_size) {
      status = ap_byte_source_extend_head(&decoder->source, (size_t)tags + 8192,
                                          error);
      if (status != AP_OK) {
        return status;
      }
    }
    status = ap_mp3_header_parse(&decoder->source, &decoder->mp3, error);
  }
  return status;
}

static const char *container_name(const ap_decoder_t *decoder) {
  const char *name = decoder->demuxer->iformat->name;
  if (strcmp(name, "wav") == 0 && decoder->pcm.found) {
    return decoder->pcm.container;
  }
  if (strncmp(name, "mov,", 4) == 0) {
    return "mp4";
  }
  if (strncmp(name, "matroska", 8) == 0) {
    return decoder->sniff_kind && strcmp(decoder->sniff_kind, "webm") == 0
               ? "webm"
               : "matroska";
  }
  if (strcmp(name, "wv") == 0) {
    return "wavpack";
  }
  return NULL; /* the first name FFmpeg lists */
}

static ap_status_t set_container(ap_decoder_t *decoder) {
  const char *name = container_name(decoder);
  if (name) {
    return ap_media_info_set_string(&decoder->info->container, name);
  }
  const char *full = decoder->demuxer->iformat->name;
  size_t length = strcspn(full, ",");
  char *copy = strndup(full, length);
  if (!copy) {
    return -1;
  }
  free(decoder->info->container);
  decoder->info->container = copy;
  return 0;
}

static int add_tags(ap_media_info_t *info, const AVDictionary *metadata) {
  const AVDictionaryEntry *entry = NULL;
  while ((entry = av_dict_get(metadata, "", entry, AV_DICT_IGNORE_SUFFIX))) {
    if (ap_media_info_add_tag(info, entry->key, entry->value) != 0) {
      return -1;
    }
  }
  return 0;
}

static uint32_t big_endian_32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

/* Reads a picture's dimensions from its own header (JPEG SOF or PNG
 * IHDR), so the image never has to be decoded. */
static void picture_dimensions(const uint8_t *data, size_t size, int *width,
                               int *height) {
  if (size >= 24 && memcmp(data, "\x89PNG", 4) == 0) {
    *width = (int)big_endian_32(data + 16);
    *height = (int)big_endian_32(data + 20);
    return;
  }
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
    return;
  }
  size_t offset = 2;
  while (offset + 9 <= size && data[offset] == 0xFF) {
    int marker = data[offset + 1];
    if (marker == 0xFF) {
      offset++;
      continue;
    }
    size_t length = ((size_t)data[offset + 2] << 8) | data[offset + 3];
    int start_of_frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 &&
                         marker != 0xC8 && marker != 0xCC;
    if (start_of_frame) {
      *height = (data[offset + 5] << 8) | data[offset + 6];
      *width = (data[offset + 7] << 8) | data[offset + 8];
      return;
    }
    if (length < 2) {
      return;
    }
    offset += 2 + length;
  }
}

static void add_pictures(ap_decoder_t *decoder) {
  ap_media_info_t *info = decoder->info;
  for (unsigned i = 0; i < decoder->demuxer->nb_streams; i++) {
    const AVStream *stream = decoder->demuxer->streams[i];
    if (!(stream->disposition & AV_DISPOSITION_ATTACHED_PIC) ||
        info->picture_count >= AP_MEDIA_INFO_MAX_PICTURES) {
      continue;
    }
    ap_media_picture_t *picture = &info->pictures[info->picture_count++];
    switch (stream->codecpar->codec_id) {
    case AV_CODEC_ID_MJPEG:
      picture->mime = "image/jpeg";
      break;
    case AV_CODEC_ID_PNG:
      picture->mime = "image/png";
      break;
    case AV_CODEC_ID_GIF:
      picture->mime = "image/gif";
      break;
    case AV_CODEC_ID_BMP:
      picture->mime = "image/bmp";
      break;
    case AV_CODEC_ID_WEBP:
      picture->mime = "image/webp";
      break;
    default:
      picture->mime = NULL;
      break;
    }
    picture->bytes = stream->attached_pic.size;
    picture->width = stream->codecpar->width;
    picture->height = stream->codecpar->height;
    if (stream->attached_pic.data) {
      picture_dimensions(stream->attached_pic.data,
                         (size_t)stream->attached_pic.size, &picture->width,
                         &picture->height);
    }
  }
}

static int is_lossy(enum AVCodecID id) {
  const AVCodecDescriptor *descriptor = avcodec_descriptor_get(id);
  return descriptor && (descriptor->props & AV_CODEC_PROP_LOSSY);
}

/* Fills the media info from the demuxer, the codec and the headers the
 * library parsed itself, which win where they disagree. */
static ap_status_t describe(ap_decoder_t *decoder, ap_error_t *error) {
  ap_media_info_t *info = ap_media_info_new();
  if (!info) {
    return AP_NO_MEMORY(error);
  }
  decoder->info = info;
  const AVCodecParameters *parameters = decoder->stream->codecpar;
  const AVCodecContext *codec = decoder->codec;

  /* Without a stated layout (a plain WAVE header) the name is FFmpeg's
   * default for the channel count, but the mask stays 0: the file does
   * not say which speakers the channels feed. */
  AVChannelLayout named = {0};
  if (codec->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
    av_channel_layout_default(&named, codec->ch_layout.nb_channels);
  } else if (av_channel_layout_copy(&named, &codec->ch_layout) < 0) {
    return AP_NO_MEMORY(error);
  }
  char layout[64] = "";
  if (av_channel_layout_describe(&named, layout, sizeof layout) < 0) {
    layout[0] = '\0';
  }
  av_channel_layout_uninit(&named);
  const char *profile =
      avcodec_profile_name(parameters->codec_id, parameters->profile);
  if (set_container(decoder) != 0 ||
      ap_media_info_set_string(&info->codec,
                               avcodec_get_name(parameters->codec_id)) != 0 ||
      ap_media_info_set_string(&info->codec_profile, profile) != 0 ||
      ap_media_info_set_string(&info->channel_layout,
                               layout[0] ? layout : NULL) != 0 ||
      ap_media_info_set_string(&info->sample_format,
                               av_get_sample_fmt_name(codec->sample_fmt)) !=
          0 ||
      add_tags(info, decoder->demuxer->metadata) != 0 ||
      add_tags(info, decoder->stream->metadata) != 0) {
    return AP_NO_MEMORY(error);
  }

  info->sample_rate = codec->sample_rate;
  info->channels = codec->ch_layout.nb_channels;
  if (codec->ch_layout.order == AV_CHANNEL_ORDER_NATIVE) {
    info->channel_mask = codec->ch_layout.u.mask;
  }
  if (!is_lossy(parameters->codec_id)) {
    info->bits_per_sample = parameters->bits_per_raw_sample > 0
                                ? parameters->bits_per_raw_sample
                                : parameters->bits_per_coded_sample;
  }
  info->bitrate = parameters->bit_rate;
  info->audio_stream_count = decoder->audio_stream_count;
  info->input_bytes = decoder->source.size;

  if (decoder->pcm.found) {
    if (decoder->pcm.channel_mask != 0) {
      info->channel_mask = decoder->pcm.channel_mask;
    }
    if (decoder->pcm.valid_bits > 0) {
      info->bits_per_sample = decoder->pcm.valid_bits;
    }
  }
  add_pictures(decoder);
  return AP_OK;
}

static ap_status_t prepare_output(ap_decoder_t *decoder, ap_error_t *error) {
  int channels = decoder->info->channels;
  decoder->packet = av_packet_alloc();
  decoder->frame = av_frame_alloc();
  decoder->plane_storage =
      calloc((size_t)channels * AP_SINK_MAX_BLOCK_FRAMES, sizeof(float));
  decoder->planes = calloc((size_t)channels, sizeof *decoder->planes);
  if (!decoder->packet || !decoder->frame || !decoder->plane_storage ||
      !decoder->planes) {
    return AP_NO_MEMORY(error);
  }
  for (int c = 0; c < channels; c++) {
    decoder->planes[c] =
        decoder->plane_storage + (size_t)c * AP_SINK_MAX_BLOCK_FRAMES;
  }
  decoder->format.sample_rate = decoder->info->sample_rate;
  decoder->format.channels = channels;
  decoder->format.channel_mask = decoder->info->channel_mask;
  decoder->format.expected_frames = decoder->info->duration_frames;
  return AP_OK;
}

ap_status_t ap_decoder_open_input(ap_decoder_t *decoder, ap_io_t *input,
                                  ap_error_t *error) {
  ap_status_t status = read_and_sniff(decoder, input, error);
  if (status == AP_OK) {
    status = parse_headers(decoder, error);
  }
  if (status == AP_OK) {
    status = ap_decoder_open_demuxer(decoder, error);
  }
  if (status == AP_OK) {
    status = describe(decoder, error);
  }
  if (status == AP_OK) {
    status = ap_decoder_measure_duration(decoder, error);
  }
  if (status == AP_OK) {
    status = prepare_output(decoder, error);
  }
  return status;
}
