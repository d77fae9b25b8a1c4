/*
 * Tests for the rendition sink: real recordings decoded here with
 * libsndfile are fed through the sink, and the outputs are opened again
 * with libavformat and libavcodec to check codec, rate, channels, bit
 * rate, duration, container headers, pitch, gain and down-mix.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>
#include <sndfile.h>

#include <audiopipe/io.h>
#include <audiopipe/probe.h>
#include <audiopipe/rendition.h>

#include "rendition/rendition_sink.h"

#define RECORDING_SOURCE                                                       \
  "/usr/share/sounds/freedesktop/stereo/alarm-clock-elapsed.oga"

/* Frames per write call: not a multiple of any encoder frame size, so
 * the FIFO has to carry remainders between calls. */
#define FEED_FRAMES 1000

/* ---- audio in memory ---------------------------------------------------- */

typedef struct audio {
  int sample_rate;
  int channels;
  int64_t frames;
  float **planes; /* planes[c][i] */
} audio_t;

static void audio_free(audio_t *audio) {
  if (audio->planes) {
    for (int c = 0; c < audio->channels; c++) {
      free(audio->planes[c]);
    }
    free(audio->planes);
  }
  memset(audio, 0, sizeof *audio);
}

static void audio_allocate(audio_t *audio, int sample_rate, int channels,
                           int64_t frames) {
  audio->sample_rate = sample_rate;
  audio->channels = channels;
  audio->frames = frames;
  audio->planes = calloc((size_t)channels, sizeof *audio->planes);
  assert_non_null(audio->planes);
  for (int c = 0; c < channels; c++) {
    audio->planes[c] = calloc((size_t)(frames > 0 ? frames : 1), sizeof(float));
    assert_non_null(audio->planes[c]);
  }
}

/* Reads a whole file with libsndfile, in blocks, into planar float. */
static void load_sndfile(const char *path, audio_t *audio) {
  SF_INFO info = {0};
  SNDFILE *file = sf_open(path, SFM_READ, &info);
  if (!file) {
    fail_msg("libsndfile cannot open %s: %s", path, sf_strerror(NULL));
  }
  audio_allocate(audio, info.samplerate, info.channels, info.frames);

  float *block = malloc(sizeof(float) * 4096 * (size_t)info.channels);
  assert_non_null(block);
  int64_t position = 0;
  for (;;) {
    sf_count_t count = sf_readf_float(file, block, 4096);
    if (count <= 0) {
      break;
    }
    for (sf_count_t i = 0; i < count; i++) {
      for (int c = 0; c < info.channels; c++) {
        audio->planes[c][position + i] = block[i * info.channels + c];
      }
    }
    position += count;
  }
  assert_int_equal(position, info.frames);
  free(block);
  sf_close(file);
}

static double peak_of(const audio_t *audio, int channel) {
  double peak = 0.0;
  for (int64_t i = 0; i < audio->frames; i++) {
    double value = fabs(audio->planes[channel][i]);
    if (value > peak) {
      peak = value;
    }
  }
  return peak;
}

static void make_sine(audio_t *audio, int sample_rate, int channels,
                      double seconds, double frequency, double amplitude) {
  audio_allocate(audio, sample_rate, channels,
                 (int64_t)(seconds * sample_rate));
  for (int64_t i = 0; i < audio->frames; i++) {
    float value = (float)(amplitude * sin(2.0 * M_PI * frequency * (double)i /
                                          sample_rate));
    for (int c = 0; c < channels; c++) {
      audio->planes[c][i] = value;
    }
  }
}

/* ---- encoding through the sink ----------------------------------------- */

static ap_status_t feed_sink(ap_sink_t *sink, const audio_t *audio,
                             uint64_t channel_mask, ap_error_t *error) {
  ap_stream_format_t format = {audio->sample_rate, audio->channels,
                               channel_mask, audio->frames};
  ap_status_t status = sink->ops->start(sink, &format, error);
  if (status != AP_OK) {
    return status;
  }
  const float **planes = calloc((size_t)audio->channels, sizeof *planes);
  assert_non_null(planes);
  for (int64_t offset = 0; offset < audio->frames; offset += FEED_FRAMES) {
    int64_t left = audio->frames - offset;
    int count = left < FEED_FRAMES ? (int)left : FEED_FRAMES;
    for (int c = 0; c < audio->channels; c++) {
      planes[c] = audio->planes[c] + offset;
    }
    status = sink->ops->write(sink, planes, count, error);
    if (status != AP_OK) {
      free(planes);
      return status;
    }
  }
  free(planes);
  return sink->ops->finish(sink, error);
}

/* Bytes of one finished rendition. */
typedef struct encoded {
  unsigned char *data;
  size_t size;
  int64_t sink_bytes;
  char name[80];
} encoded_t;

static ap_status_t encode_audio_masked(const ap_rendition_spec_t *spec,
                                       double gain_db, const audio_t *audio,
                                       uint64_t channel_mask,
                                       encoded_t *encoded, ap_error_t *error) {
  ap_output_t *output = NULL;
  ap_sink_t *sink = NULL;
  ap_rendition_spec_t local = *spec;
  memset(encoded, 0, sizeof *encoded);

  assert_int_equal(ap_output_open_memory(&output, error), AP_OK);
  local.output = output;
  ap_status_t status = ap_rendition_sink_create(&local, gain_db, &sink, error);
  if (status == AP_OK) {
    assert_true(sink->wants_thread);
    status = feed_sink(sink, audio, channel_mask, error);
  }
  if (status == AP_OK) {
    status = ap_output_finish(output, error);
  }
  if (status == AP_OK) {
    size_t size = 0;
    const void *data = ap_output_memory_data(output, &size);
    encoded->data = malloc(size ? size : 1);
    assert_non_null(encoded->data);
    memcpy(encoded->data, data, size);
    encoded->size = size;
    encoded->sink_bytes = ap_rendition_sink_bytes(sink);
    snprintf(encoded->name, sizeof encoded->name, "%s",
             ap_rendition_sink_name(sink));
  }
  if (sink) {
    sink->ops->destroy(sink);
  }
  ap_output_close(output);
  return status;
}

static void encode_audio(const ap_rendition_spec_t *spec, double gain_db,
                         const audio_t *audio, encoded_t *encoded) {
  ap_error_t error = {0};
  ap_status_t status =
      encode_audio_masked(spec, gain_db, audio, 0, encoded, &error);
  if (status != AP_OK) {
    fail_msg("encoding failed: %s", error.message);
  }
}

static ap_rendition_spec_t make_spec(ap_rendition_codec_t codec,
                                     int64_t bitrate) {
  ap_rendition_spec_t spec;
  ap_rendition_spec_init(&spec);
  spec.codec = codec;
  spec.bitrate = bitrate;
  return spec;
}

/* ---- decoding the output back ------------------------------------------ */

typedef struct decoded {
  enum AVCodecID codec_id;
  char format_name[64];
  int profile;
  int sample_rate;
  int channels;
  int64_t initial_padding;
  int bits_per_raw_sample;
  int64_t packet_bytes;
  double stream_seconds; /* from packet timestamps, for the bit rate */
  audio_t audio;         /* decoded samples, trimmed as libavcodec does */
} decoded_t;

static void write_temporary(const encoded_t *encoded, char *path, size_t size) {
  const char *directory = getenv("TMPDIR");
  snprintf(path, size, "%s/rendition-test-XXXXXX",
           directory ? directory : "/tmp");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, encoded->data, encoded->size),
                   (ssize_t)encoded->size);
  close(fd);
}

/* Appends decoded frame samples, converted to planar float. */
static void append_frame(decoded_t *decoded, SwrContext *converter,
                         const AVFrame *frame, int64_t *capacity) {
  audio_t *audio = &decoded->audio;
  if (audio->frames + frame->nb_samples > *capacity) {
    int64_t grown = (*capacity + frame->nb_samples) * 2;
    for (int c = 0; c < audio->channels; c++) {
      audio->planes[c] =
          realloc(audio->planes[c], (size_t)grown * sizeof(float));
      assert_non_null(audio->planes[c]);
    }
    *capacity = grown;
  }
  uint8_t **out = calloc((size_t)audio->channels, sizeof *out);
  assert_non_null(out);
  for (int c = 0; c < audio->channels; c++) {
    out[c] = (uint8_t *)(audio->planes[c] + audio->frames);
  }
  int converted =
      swr_convert(converter, out, frame->nb_samples,
                  (const uint8_t **)frame->extended_data, frame->nb_samples);
  assert_int_equal(converted, frame->nb_samples);
  audio->frames += converted;
  free(out);
}

static void decode_encoded(const encoded_t *encoded, decoded_t *decoded) {
  char path[512];
  memset(decoded, 0, sizeof *decoded);
  write_temporary(encoded, path, sizeof path);

  AVFormatContext *format = NULL;
  assert_int_equal(avformat_open_input(&format, path, NULL, NULL), 0);
  assert_true(avformat_find_stream_info(format, NULL) >= 0);
  assert_int_equal(format->nb_streams, 1);
  AVStream *stream = format->streams[0];
  AVCodecParameters *parameters = stream->codecpar;
  snprintf(decoded->format_name, sizeof decoded->format_name, "%s",
           format->iformat->name);
  decoded->codec_id = parameters->codec_id;
  decoded->profile = parameters->profile;
  decoded->sample_rate = parameters->sample_rate;
  decoded->channels = parameters->ch_layout.nb_channels;
  decoded->initial_padding = parameters->initial_padding;
  decoded->bits_per_raw_sample = parameters->bits_per_raw_sample;

  const AVCodec *codec = avcodec_find_decoder(parameters->codec_id);
  assert_non_null(codec);
  AVCodecContext *decoder = avcodec_alloc_context3(codec);
  assert_non_null(decoder);
  assert_int_equal(avcodec_parameters_to_context(decoder, parameters), 0);
  assert_int_equal(avcodec_open2(decoder, codec, NULL), 0);

  SwrContext *converter = NULL;
  AVChannelLayout layout = decoder->ch_layout;
  if (layout.order == AV_CHANNEL_ORDER_UNSPEC) {
    av_channel_layout_default(&layout, layout.nb_channels);
  }
  assert_int_equal(swr_alloc_set_opts2(&converter, &layout, AV_SAMPLE_FMT_FLTP,
                                       decoder->sample_rate, &layout,
                                       decoder->sample_fmt,
                                       decoder->sample_rate, 0, NULL),
                   0);
  assert_int_equal(swr_init(converter), 0);

  audio_allocate(&decoded->audio, decoder->sample_rate, layout.nb_channels, 0);
  int64_t capacity = 1;
  AVPacket *packet = av_packet_alloc();
  AVFrame *frame = av_frame_alloc();
  int64_t first_pts = AV_NOPTS_VALUE;
  int64_t end_pts = 0;
  int more = 1;
  while (more) {
    int result = av_read_frame(format, packet);
    if (result < 0) {
      more = 0;
      assert_int_equal(avcodec_send_packet(decoder, NULL), 0);
    } else {
      decoded->packet_bytes += packet->size;
      if (packet->pts != AV_NOPTS_VALUE) {
        if (first_pts == AV_NOPTS_VALUE) {
          first_pts = packet->pts;
        }
        end_pts = packet->pts + packet->duration;
      }
      assert_int_equal(avcodec_send_packet(decoder, packet), 0);
      av_packet_unref(packet);
    }
    while (avcodec_receive_frame(decoder, frame) == 0) {
      append_frame(decoded, converter, frame, &capacity);
      av_frame_unref(frame);
    }
  }
  decoded->stream_seconds =
      (double)(end_pts - first_pts) * av_q2d(stream->time_base);

  av_frame_free(&frame);
  av_packet_free(&packet);
  swr_free(&converter);
  avcodec_free_context(&decoder);
  avformat_close_input(&format);
  unlink(path);
}

static double decoded_bitrate(const decoded_t *decoded) {
  return (double)decoded->packet_bytes * 8.0 / decoded->stream_seconds;
}

static double seconds_of(const audio_t *audio) {
  return (double)audio->frames / audio->sample_rate;
}

/* Frequency from positive-going zero crossings, interpolated between
 * samples, over the middle 80% of channel 0. */
static double zero_crossing_frequency(const audio_t *audio) {
  int64_t begin = audio->frames / 10;
  int64_t end = audio->frames - audio->frames / 10;
  double first = -1.0;
  double last = -1.0;
  int64_t crossings = 0;
  const float *x = audio->planes[0];
  for (int64_t i = begin; i + 1 < end; i++) {
    if (x[i] < 0.0f && x[i + 1] >= 0.0f) {
      double t = (double)i + x[i] / (x[i] - x[i + 1]);
      if (first < 0.0) {
        first = t;
      }
      last = t;
      crossings++;
    }
  }
  assert_true(crossings > 2);
  return (double)(crossings - 1) * audio->sample_rate / (last - first);
}

/* ---- container checks --------------------------------------------------- */

static uint32_t read_be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

/* Returns the offset of the first top-level MP4 atom of `type`, or -1,
 * walking atoms by their sizes from the start of the file. */
static int64_t find_top_level_atom(const encoded_t *encoded, const char *type) {
  size_t offset = 0;
  while (offset + 8 <= encoded->size) {
    uint64_t size = read_be32(encoded->data + offset);
    if (size == 1 && offset + 16 <= encoded->size) {
      size = ((uint64_t)read_be32(encoded->data + offset + 8) << 32) |
             read_be32(encoded->data + offset + 12);
    } else if (size == 0) {
      size = encoded->size - offset;
    }
    if (memcmp(encoded->data + offset + 4, type, 4) == 0) {
      return (int64_t)offset;
    }
    if (size < 8) {
      return -1;
    }
    offset += size;
  }
  return -1;
}

static const unsigned char *find_bytes(const encoded_t *encoded,
                                       const char *needle, size_t limit) {
  size_t length = strlen(needle);
  size_t end = encoded->size < limit ? encoded->size : limit;
  for (size_t i = 0; i + length <= end; i++) {
    if (memcmp(encoded->data + i, needle, length) == 0) {
      return encoded->data + i;
    }
  }
  return NULL;
}

/* ---- fixtures ------------------------------------------------------------ */

static char recording_path[512];

/* Converts a real freedesktop recording (6.1 s, 48 kHz stereo Vorbis) to
 * 16-bit WAV with the ffmpeg binary, so libsndfile can read it. */
static int convert_recording(void **state) {
  (void)state;
  av_log_set_level(AV_LOG_ERROR);
  const char *directory = getenv("TMPDIR");
  snprintf(recording_path, sizeof recording_path, "%s/rendition-alarm.wav",
           directory ? directory : "/tmp");
  char command[1200];
  snprintf(command, sizeof command,
           "ffmpeg -nostdin -v error -y -i '%s' -c:a pcm_s16le '%s'",
           RECORDING_SOURCE, recording_path);
  return system(command) == 0 ? 0 : -1;
}

static int remove_recording(void **state) {
  (void)state;
  unlink(recording_path);
  return 0;
}

/* ---- codec tests ----------------------------------------------------------
 */

static void opus_encodes_recording(void **state) {
  (void)state;
  audio_t source = {0};
  encoded_t encoded;
  decoded_t decoded;
  load_sndfile(recording_path, &source);

  ap_rendition_spec_t spec = make_spec(AP_RENDITION_OPUS, 64000);
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);

  assert_string_equal(encoded.name, "opus_64k");
  assert_int_equal(encoded.sink_bytes, (int64_t)encoded.size);
  assert_string_equal(decoded.format_name, "ogg");
  assert_int_equal(decoded.codec_id, AV_CODEC_ID_OPUS);
  assert_int_equal(decoded.sample_rate, 48000);
  assert_int_equal(decoded.channels, 2);
  double bitrate = decoded_bitrate(&decoded);
  print_message("opus bit rate %.0f b/s\n", bitrate);
  assert_true(fabs(bitrate - 64000.0) <= 0.15 * 64000.0);

  /* The OpusHead pre-skip (RFC 7845, little-endian at offset 10) is the
   * encoder delay, and libavformat trims it and the end padding from the
   * granule positions, so the decode is sample-exact. */
  const unsigned char *head = find_bytes(&encoded, "OpusHead", 200);
  assert_non_null(head);
  int pre_skip = head[10] | (head[11] << 8);
  assert_true(pre_skip > 0);
  assert_int_equal(pre_skip, decoded.initial_padding);
  print_message("opus frames %lld of %lld\n", (long long)decoded.audio.frames,
                (long long)source.frames);
  assert_int_equal(decoded.audio.frames, source.frames);

  audio_free(&decoded.audio);
  free(encoded.data);
  audio_free(&source);
}

static void mp3_encodes_recording(void **state) {
  (void)state;
  audio_t source = {0};
  encoded_t encoded;
  decoded_t decoded;
  load_sndfile(recording_path, &source);

  ap_rendition_spec_t spec = make_spec(AP_RENDITION_MP3, 128000);
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);

  assert_int_equal(encoded.sink_bytes, (int64_t)encoded.size);
  assert_string_equal(decoded.format_name, "mp3");
  assert_int_equal(decoded.codec_id, AV_CODEC_ID_MP3);
  assert_int_equal(decoded.sample_rate, 48000);
  assert_int_equal(decoded.channels, 2);
  double bitrate = decoded_bitrate(&decoded);
  print_message("mp3 bit rate %.0f b/s\n", bitrate);
  assert_true(fabs(bitrate - 128000.0) <= 0.15 * 128000.0);

  /* The first frame is the Info (CBR) tag. Its LAME extension starts
   * 120 bytes after "Info" with a 9-byte version string, and contains the
   * encoder delay and padding in 12 bits each 141 bytes after "Info". */
  assert_int_equal(encoded.data[0], 0xff);
  const unsigned char *info = find_bytes(&encoded, "Info", 64);
  assert_non_null(info);
  assert_memory_equal(info + 120, "Lavc", 4);
  int delay = (info[141] << 4) | (info[142] >> 4);
  int padding = ((info[142] & 0x0f) << 8) | info[143];
  print_message("mp3 LAME delay %d padding %d\n", delay, padding);
  assert_true(delay > 0);
  assert_true(padding > 0);

  /* With the LAME tag the decode is sample-exact. */
  assert_int_equal(decoded.audio.frames, source.frames);

  audio_free(&decoded.audio);
  free(encoded.data);
  audio_free(&source);
}

static void aac_encodes_recording(void **state) {
  (void)state;
  audio_t source = {0};
  encoded_t encoded;
  decoded_t decoded;
  load_sndfile(recording_path, &source);

  ap_rendition_spec_t spec = make_spec(AP_RENDITION_AAC, 128000);
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);

  assert_int_equal(encoded.sink_bytes, (int64_t)encoded.size);
  assert_int_equal(decoded.codec_id, AV_CODEC_ID_AAC);
  assert_int_equal(decoded.profile, FF_PROFILE_AAC_LOW);
  assert_int_equal(decoded.sample_rate, 48000);
  assert_int_equal(decoded.channels, 2);
  double bitrate = decoded_bitrate(&decoded);
  print_message("aac bit rate %.0f b/s\n", bitrate);
  assert_true(fabs(bitrate - 128000.0) <= 0.15 * 128000.0);

  /* M4A brand, and `moov` before `mdat` among the top-level atoms. */
  int64_t ftyp = find_top_level_atom(&encoded, "ftyp");
  int64_t moov = find_top_level_atom(&encoded, "moov");
  int64_t mdat = find_top_level_atom(&encoded, "mdat");
  assert_int_equal(ftyp, 0);
  assert_memory_equal(encoded.data + 8, "M4A ", 4);
  assert_true(moov > 0);
  assert_true(mdat > 0);
  assert_true(moov < mdat);

  /* The edit list skips the 1024 priming frames and spans exactly the
   * source's frames, in a movie time scale equal to the sample rate. */
  const unsigned char *elst = find_bytes(&encoded, "elst", mdat);
  assert_non_null(elst);
  const unsigned char *mvhd = find_bytes(&encoded, "mvhd", mdat);
  assert_non_null(mvhd);
  assert_int_equal(mvhd[4], 0);
  assert_int_equal(read_be32(mvhd + 16), 48000);
  assert_int_equal(elst[4], 0);
  assert_int_equal(read_be32(elst + 8), 1);
  assert_int_equal(read_be32(elst + 12), source.frames);
  assert_int_equal(read_be32(elst + 16), 1024);

  /* FFmpeg 5.1's mov demuxer applies the start of the edit list but not
   * its end, so its decode ends with up to one frame (1024) of padding. */
  print_message("aac frames %lld of %lld\n", (long long)decoded.audio.frames,
                (long long)source.frames);
  assert_true(decoded.audio.frames >= source.frames);
  assert_true(decoded.audio.frames - source.frames < 1024);

  audio_free(&decoded.audio);
  free(encoded.data);
  audio_free(&source);
}

/* Lossless: every decoded sample equals the source sample. */
static void assert_samples_equal(const audio_t *a, const audio_t *b) {
  assert_int_equal(a->channels, b->channels);
  assert_int_equal(a->frames, b->frames);
  for (int c = 0; c < a->channels; c++) {
    for (int64_t i = 0; i < a->frames; i++) {
      if (a->planes[c][i] != b->planes[c][i]) {
        fail_msg("channel %d frame %lld: %.9g != %.9g", c, (long long)i,
                 a->planes[c][i], b->planes[c][i]);
      }
    }
  }
}

static void flac_encodes_24bit(void **state) {
  (void)state;
  audio_t source = {0};
  encoded_t encoded;
  decoded_t decoded;
  load_sndfile(AP_TEST_DATA_DIR "/cases/case-08.wav", &source);

  ap_rendition_spec_t spec = make_spec(AP_RENDITION_FLAC, 0);
  spec.bits_per_sample = 24;
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);

  assert_string_equal(encoded.name, "flac_24bit");
  assert_memory_equal(encoded.data, "fLaC", 4);
  assert_int_equal(decoded.codec_id, AV_CODEC_ID_FLAC);
  assert_int_equal(decoded.sample_rate, 48000);
  assert_int_equal(decoded.channels, 2);
  assert_int_equal(decoded.bits_per_raw_sample, 24);
  /* 4.000 s at 48 kHz: exact, well inside 1 ms. */
  assert_int_equal(decoded.audio.frames, 192000);
  assert_samples_equal(&decoded.audio, &source);

  audio_free(&decoded.audio);
  free(encoded.data);
  audio_free(&source);
}

static void flac_encodes_recording(void **state) {
  (void)state;
  audio_t source = {0};
  encoded_t encoded;
  decoded_t decoded;
  load_sndfile(recording_path, &source);

  ap_rendition_spec_t spec = make_spec(AP_RENDITION_FLAC, 0);
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);

  assert_int_equal(decoded.codec_id, AV_CODEC_ID_FLAC);
  assert_int_equal(decoded.bits_per_raw_sample, 16);
  assert_true(fabs(seconds_of(&decoded.audio) - seconds_of(&source)) < 0.001);
  assert_samples_equal(&decoded.audio, &source);

  audio_free(&decoded.audio);
  free(encoded.data);
  audio_free(&source);
}

static void wav_encodes_recording(void **state) {
  (void)state;
  audio_t source = {0};
  encoded_t encoded;
  decoded_t decoded;
  load_sndfile(AP_TEST_DATA_DIR "/cases/case-18.wav", &source);

  ap_rendition_spec_t spec = make_spec(AP_RENDITION_WAV, 0);
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);

  assert_string_equal(encoded.name, "wav_16bit");
  assert_memory_equal(encoded.data, "RIFF", 4);
  assert_int_equal(decoded.codec_id, AV_CODEC_ID_PCM_S16LE);
  assert_int_equal(decoded.sample_rate, 44100);
  assert_int_equal(decoded.channels, 2);
  /* case-18.wav is 13728 frames (0.311293 s). */
  assert_int_equal(decoded.audio.frames, 13728);
  assert_samples_equal(&decoded.audio, &source);

  /* RIFF and data sizes match the bytes written. */
  uint32_t riff = encoded.data[4] | (encoded.data[5] << 8) |
                  (encoded.data[6] << 16) | ((uint32_t)encoded.data[7] << 24);
  assert_int_equal(riff + 8, encoded.size);

  audio_free(&decoded.audio);
  free(encoded.data);
  audio_free(&source);
}

/* ---- non-seekable outputs -------------------------------------------------
 */

typedef struct collector {
  unsigned char *data;
  size_t size;
  int fail_writes; /* fail every write after this many bytes; -1 never */
  int closes_ok;
  int closes_failed;
} collector_t;

static int collector_write(void *user_data, const void *data, size_t size,
                           ap_error_t *error) {
  collector_t *collector = user_data;
  if (collector->fail_writes >= 0 &&
      collector->size + size > (size_t)collector->fail_writes) {
    error->domain = AP_DOMAIN_STORAGE;
    error->code = AP_ERR_UNAVAILABLE;
    snprintf(error->message, sizeof error->message,
             "object store refused the part");
    return -1;
  }
  unsigned char *grown = realloc(collector->data, collector->size + size);
  assert_non_null(grown);
  memcpy(grown + collector->size, data, size);
  collector->data = grown;
  collector->size += size;
  return 0;
}

static int collector_close(void *user_data, int failed, ap_error_t *error) {
  (void)error;
  collector_t *collector = user_data;
  if (failed) {
    collector->closes_failed++;
  } else {
    collector->closes_ok++;
  }
  return 0;
}

static ap_output_t *open_collector(collector_t *collector) {
  ap_output_callbacks_t callbacks = {sizeof callbacks, collector_write, NULL,
                                     collector_close};
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_output_open_callbacks(&callbacks, collector, &output, &error), AP_OK);
  return output;
}

/* Counts files the writer left in TMPDIR. */
static int count_temporary_files(void) {
  const char *directory = getenv("TMPDIR");
  DIR *dir = opendir(directory ? directory : "/tmp");
  assert_non_null(dir);
  int count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (strncmp(entry->d_name, "audiopipe-rendition-", 20) == 0) {
      count++;
    }
  }
  closedir(dir);
  return count;
}

static void forward_only_output_gets_headers(void **state) {
  (void)state;
  audio_t source = {0};
  load_sndfile(AP_TEST_DATA_DIR "/cases/case-18.wav", &source);
  const ap_rendition_codec_t codecs[] = {AP_RENDITION_WAV, AP_RENDITION_MP3,
                                         AP_RENDITION_FLAC};
  int before = count_temporary_files();

  for (size_t i = 0; i < 3; i++) {
    collector_t collector = {NULL, 0, -1, 0, 0};
    ap_output_t *output = open_collector(&collector);
    ap_rendition_spec_t spec = make_spec(codecs[i], 0);
    spec.output = output;
    ap_sink_t *sink = NULL;
    ap_error_t error = {0};
    assert_int_equal(ap_rendition_sink_create(&spec, 0.0, &sink, &error),
                     AP_OK);
    assert_int_equal(feed_sink(sink, &source, 0, &error), AP_OK);
    assert_int_equal(ap_output_finish(output, &error), AP_OK);
    assert_int_equal(ap_rendition_sink_bytes(sink), (int64_t)collector.size);
    sink->ops->destroy(sink);
    ap_output_close(output);

    encoded_t encoded = {collector.data, collector.size, 0, ""};
    decoded_t decoded;
    decode_encoded(&encoded, &decoded);
    if (codecs[i] == AP_RENDITION_WAV) {
      uint32_t riff = collector.data[4] | (collector.data[5] << 8) |
                      (collector.data[6] << 16) |
                      ((uint32_t)collector.data[7] << 24);
      assert_int_equal(riff + 8, collector.size);
    }
    if (codecs[i] == AP_RENDITION_MP3) {
      const unsigned char *info = find_bytes(&encoded, "Info", 64);
      assert_non_null(info);
      assert_memory_equal(info + 120, "Lavc", 4);
    }
    if (codecs[i] == AP_RENDITION_FLAC) {
      /* STREAMINFO's 36-bit total sample count, rewritten at the end. */
      const unsigned char *info = collector.data + 8;
      uint64_t total =
          ((uint64_t)(info[13] & 0x0f) << 32) | read_be32(info + 14);
      assert_int_equal(total, 13728);
    }
    assert_int_equal(decoded.audio.frames, 13728);
    assert_int_equal(collector.closes_ok, 1);
    assert_int_equal(collector.closes_failed, 0);
    audio_free(&decoded.audio);
    free(collector.data);
  }
  assert_int_equal(count_temporary_files(), before);
  audio_free(&source);
}

static void failing_output_reports_its_error(void **state) {
  (void)state;
  audio_t source = {0};
  load_sndfile(recording_path, &source);
  /* Opus writes straight to the output, WAV and AAC through a temporary
   * file copied at the end: both paths must report the output's error. */
  const ap_rendition_codec_t codecs[] = {AP_RENDITION_OPUS, AP_RENDITION_WAV,
                                         AP_RENDITION_AAC};
  int before = count_temporary_files();

  for (size_t i = 0; i < 3; i++) {
    collector_t collector = {NULL, 0, 4000, 0, 0};
    ap_output_t *output = open_collector(&collector);
    ap_rendition_spec_t spec = make_spec(codecs[i], 0);
    spec.output = output;
    ap_sink_t *sink = NULL;
    ap_error_t error = {0};
    assert_int_equal(ap_rendition_sink_create(&spec, 0.0, &sink, &error),
                     AP_OK);
    assert_int_equal(feed_sink(sink, &source, 0, &error), AP_ERR_UNAVAILABLE);
    assert_int_equal(error.code, AP_ERR_UNAVAILABLE);
    assert_int_equal(error.domain, AP_DOMAIN_STORAGE);
    assert_non_null(strstr(error.message, "object store refused the part"));
    sink->ops->destroy(sink);

    /* Nothing was finished: closing abandons the output. */
    assert_int_equal(collector.closes_ok, 0);
    ap_output_close(output);
    assert_int_equal(collector.closes_ok, 0);
    assert_int_equal(collector.closes_failed, 1);
    free(collector.data);
  }
  assert_int_equal(count_temporary_files(), before);
  audio_free(&source);
}

/* ---- resampling, gain, down-mix ---------------------------------------- */

static void resampling_keeps_pitch(void **state) {
  (void)state;
  audio_t sine = {0};
  make_sine(&sine, 8000, 1, 2.0, 1000.0, 0.5);
  struct {
    ap_rendition_codec_t codec;
    int sample_rate;
  } targets[] = {{AP_RENDITION_OPUS, 0}, {AP_RENDITION_MP3, 44100}};

  for (size_t i = 0; i < 2; i++) {
    encoded_t encoded;
    decoded_t decoded;
    ap_rendition_spec_t spec = make_spec(targets[i].codec, 0);
    spec.sample_rate = targets[i].sample_rate;
    encode_audio(&spec, 0.0, &sine, &encoded);
    decode_encoded(&encoded, &decoded);

    int expected_rate = targets[i].codec == AP_RENDITION_OPUS ? 48000 : 44100;
    assert_int_equal(decoded.sample_rate, expected_rate);
    double frequency = zero_crossing_frequency(&decoded.audio);
    print_message("%s: %.2f Hz\n", ap_rendition_codec_name(targets[i].codec),
                  frequency);
    assert_true(fabs(frequency - 1000.0) <= 10.0);
    /* Duration survives the rate change: 2.000 s. */
    assert_true(fabs(seconds_of(&decoded.audio) - 2.0) < 0.001);
    audio_free(&decoded.audio);
    free(encoded.data);
  }
  audio_free(&sine);
}

static void telephony_file_keeps_duration(void **state) {
  (void)state;
  audio_t source = {0};
  encoded_t encoded;
  decoded_t decoded;
  /* 8 kHz G.711 u-law, 23078 frames (2.88475 s). */
  load_sndfile(AP_TEST_DATA_DIR "/cases/case-13.wav", &source);
  assert_int_equal(source.frames, 23078);

  ap_rendition_spec_t spec = make_spec(AP_RENDITION_OPUS, 32000);
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);
  assert_int_equal(decoded.sample_rate, 48000);
  assert_int_equal(decoded.channels, 1);
  /* 23078 x 6 frames at 48 kHz. */
  assert_int_equal(decoded.audio.frames, 23078 * 6);
  audio_free(&decoded.audio);
  free(encoded.data);

  /* MP3 at 128 kb/s cannot use 8 kHz (MPEG-2.5 stops at 64 kb/s in
   * LAME), so the sink picks 16 kHz and keeps the bit rate. */
  spec = make_spec(AP_RENDITION_MP3, 0);
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);
  assert_int_equal(decoded.sample_rate, 16000);
  double bitrate = decoded_bitrate(&decoded);
  print_message("mp3 at 16 kHz: %.0f b/s\n", bitrate);
  assert_true(fabs(bitrate - 128000.0) <= 0.15 * 128000.0);
  assert_int_equal(decoded.audio.frames, 23078 * 2);
  audio_free(&decoded.audio);
  free(encoded.data);
  audio_free(&source);
}

static void gain_halves_peak(void **state) {
  (void)state;
  audio_t source = {0};
  encoded_t encoded;
  decoded_t decoded;
  load_sndfile(recording_path, &source);

  ap_rendition_spec_t spec = make_spec(AP_RENDITION_WAV, 0);
  spec.bits_per_sample = 24;
  encode_audio(&spec, -6.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);

  for (int c = 0; c < source.channels; c++) {
    double ratio_db =
        20.0 * log10(peak_of(&decoded.audio, c) / peak_of(&source, c));
    print_message("channel %d: %.3f dB\n", c, ratio_db);
    assert_true(fabs(ratio_db - -6.0) <= 0.1);
  }
  audio_free(&decoded.audio);
  free(encoded.data);
  audio_free(&source);
}

static void mono_mix_cancels_opposite_phase(void **state) {
  (void)state;
  audio_t source = {0};
  make_sine(&source, 48000, 2, 1.0, 440.0, 0.5);
  for (int64_t i = 0; i < source.frames; i++) {
    source.planes[1][i] = -source.planes[0][i];
  }

  /* Mono is the mean of left and right, so opposite phases cancel. */
  encoded_t encoded;
  decoded_t decoded;
  ap_rendition_spec_t spec = make_spec(AP_RENDITION_WAV, 0);
  spec.channels = 1;
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);
  assert_int_equal(decoded.channels, 1);
  assert_int_equal(decoded.audio.frames, source.frames);
  assert_true(peak_of(&decoded.audio, 0) < 1.0 / 32768.0 + 1e-9);
  audio_free(&decoded.audio);
  free(encoded.data);

  /* The same signal in phase keeps its level. */
  for (int64_t i = 0; i < source.frames; i++) {
    source.planes[1][i] = source.planes[0][i];
  }
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);
  assert_true(fabs(peak_of(&decoded.audio, 0) - 0.5) < 0.001);
  audio_free(&decoded.audio);
  free(encoded.data);

  /* Stereo output keeps both channels as they are. */
  for (int64_t i = 0; i < source.frames; i++) {
    source.planes[1][i] = -source.planes[0][i];
  }
  spec.channels = 2;
  encode_audio(&spec, 0.0, &source, &encoded);
  decode_encoded(&encoded, &decoded);
  assert_int_equal(decoded.channels, 2);
  assert_true(fabs(peak_of(&decoded.audio, 0) - 0.5) < 0.001);
  assert_true(fabs(peak_of(&decoded.audio, 1) - 0.5) < 0.001);
  audio_free(&decoded.audio);
  free(encoded.data);
  audio_free(&source);
}

/*
 * 5.1 to stereo follows ITU-R BS.775 with libswresample's scaling to full
 * scale: L = (FL + 0.7071 FC + 0.7071 SL) / 2.4142, the same for R, LFE
 * dropped. A tone in one channel at a time shows each coefficient.
 */
static void surround_mix_uses_itu_coefficients(void **state) {
  (void)state;
  const double norm = 1.0 + 2.0 * M_SQRT1_2;
  struct {
    int channel; /* index in FL FR FC LFE SL SR order */
    double left;
    double right;
  } cases[] = {
      {0, 1.0 / norm, 0.0},                    /* FL */
      {1, 0.0, 1.0 / norm},                    /* FR */
      {2, M_SQRT1_2 / norm, M_SQRT1_2 / norm}, /* FC */
      {3, 0.0, 0.0},                           /* LFE */
      {4, M_SQRT1_2 / norm, 0.0},              /* SL */
      {5, 0.0, M_SQRT1_2 / norm},              /* SR */
  };

  for (size_t i = 0; i < 6; i++) {
    audio_t tone = {0};
    audio_t source = {0};
    make_sine(&tone, 48000, 1, 0.5, 440.0, 0.5);
    audio_allocate(&source, 48000, 6, tone.frames);
    memcpy(source.planes[cases[i].channel], tone.planes[0],
           (size_t)tone.frames * sizeof(float));

    ap_rendition_spec_t spec = make_spec(AP_RENDITION_WAV, 0);
    spec.channels = 2;
    spec.bits_per_sample = 24;
    encoded_t encoded;
    decoded_t decoded;
    ap_error_t error = {0};
    assert_int_equal(encode_audio_masked(&spec, 0.0, &source,
                                         AV_CH_LAYOUT_5POINT1, &encoded,
                                         &error),
                     AP_OK);
    decode_encoded(&encoded, &decoded);
    print_message("channel %d: L %.4f R %.4f\n", cases[i].channel,
                  peak_of(&decoded.audio, 0), peak_of(&decoded.audio, 1));
    assert_true(fabs(peak_of(&decoded.audio, 0) - 0.5 * cases[i].left) < 0.001);
    assert_true(fabs(peak_of(&decoded.audio, 1) - 0.5 * cases[i].right) <
                0.001);
    audio_free(&decoded.audio);
    free(encoded.data);
    audio_free(&source);
    audio_free(&tone);
  }
}

static void surround_source_becomes_stereo(void **state) {
  (void)state;
  audio_t source = {0};
  make_sine(&source, 48000, 6, 0.5, 440.0, 0.25);

  /* A lossy codec keeping the source layout mixes 5.1 down to stereo;
   * FLAC keeps all six channels. */
  const ap_rendition_codec_t codecs[] = {AP_RENDITION_MP3, AP_RENDITION_FLAC};
  const int channels[] = {2, 6};
  for (size_t i = 0; i < 2; i++) {
    ap_rendition_spec_t spec = make_spec(codecs[i], 0);
    encoded_t encoded;
    decoded_t decoded;
    ap_error_t error = {0};
    assert_int_equal(encode_audio_masked(&spec, 0.0, &source,
                                         AV_CH_LAYOUT_5POINT1, &encoded,
                                         &error),
                     AP_OK);
    decode_encoded(&encoded, &decoded);
    assert_int_equal(decoded.channels, channels[i]);
    audio_free(&decoded.audio);
    free(encoded.data);
  }
  audio_free(&source);
}

/* ---- threads --------------------------------------------------------------
 */

typedef struct encode_job {
  ap_rendition_spec_t spec;
  const audio_t *source;
  encoded_t encoded;
  ap_status_t status;
  ap_error_t error;
} encode_job_t;

static void *run_encode_job(void *argument) {
  encode_job_t *job = argument;
  job->status = encode_audio_masked(&job->spec, 0.0, job->source, 0,
                                    &job->encoded, &job->error);
  return NULL;
}

static void parallel_sinks_match_sequential(void **state) {
  (void)state;
  audio_t source = {0};
  load_sndfile(recording_path, &source);
  const ap_rendition_codec_t codecs[] = {AP_RENDITION_FLAC, AP_RENDITION_WAV,
                                         AP_RENDITION_OPUS, AP_RENDITION_MP3};
  encode_job_t parallel[4];
  encode_job_t sequential[4];
  pthread_t threads[4];

  for (int i = 0; i < 4; i++) {
    memset(&parallel[i], 0, sizeof parallel[i]);
    parallel[i].spec = make_spec(codecs[i], 0);
    parallel[i].source = &source;
    sequential[i] = parallel[i];
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(
        pthread_create(&threads[i], NULL, run_encode_job, &parallel[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  }
  for (int i = 0; i < 4; i++) {
    run_encode_job(&sequential[i]);
  }

  for (int i = 0; i < 4; i++) {
    print_message("%s: %zu bytes\n", ap_rendition_codec_name(codecs[i]),
                  parallel[i].encoded.size);
    assert_int_equal(parallel[i].status, AP_OK);
    assert_int_equal(sequential[i].status, AP_OK);
    assert_int_equal(parallel[i].encoded.size, sequential[i].encoded.size);
    assert_memory_equal(parallel[i].encoded.data, sequential[i].encoded.data,
                        parallel[i].encoded.size);
    free(parallel[i].encoded.data);
    free(sequential[i].encoded.data);
  }
  audio_free(&source);
}

/* The library's own probe reads the gapless signalling of every output:
 * the Opus pre-skip and end granule, the LAME tag, the M4A edit list, the
 * FLAC STREAMINFO and the WAV sizes, so each reports the source length. */
static void probe_reads_rendition_length(void **state) {
  (void)state;
  audio_t source = {0};
  load_sndfile(recording_path, &source);
  const ap_rendition_codec_t codecs[] = {AP_RENDITION_OPUS, AP_RENDITION_MP3,
                                         AP_RENDITION_AAC, AP_RENDITION_FLAC,
                                         AP_RENDITION_WAV};
  for (size_t i = 0; i < 5; i++) {
    encoded_t encoded;
    ap_rendition_spec_t spec = make_spec(codecs[i], 0);
    encode_audio(&spec, 0.0, &source, &encoded);

    char path[512];
    write_temporary(&encoded, path, sizeof path);
    ap_media_info_t *info = NULL;
    ap_error_t error = {0};
    ap_status_t status = ap_probe_file(path, NULL, &info, &error);
    unlink(path);
    if (status != AP_OK) {
      fail_msg("probing the %s rendition failed: %s",
               ap_rendition_codec_name(codecs[i]), error.message);
    }
    print_message("%s: %lld frames by %s\n", ap_rendition_codec_name(codecs[i]),
                  (long long)ap_media_info_duration_frames(info),
                  ap_duration_method_name(ap_media_info_duration_method(info)));
    assert_int_equal(ap_media_info_sample_rate(info), 48000);
    assert_int_equal(ap_media_info_channels(info), 2);
    assert_int_equal(ap_media_info_duration_frames(info), source.frames);
    ap_media_info_free(info);
    free(encoded.data);
  }
  audio_free(&source);
}

static void sink_rejects_invalid_spec(void **state) {
  (void)state;
  ap_output_t *output = NULL;
  ap_sink_t *sink = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);

  ap_rendition_spec_t spec = make_spec(AP_RENDITION_MP3, 400000);
  spec.output = output;
  assert_int_equal(ap_rendition_sink_create(&spec, 0.0, &sink, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "bitrate 400000"));
  assert_null(sink);

  spec.bitrate = 0;
  assert_int_equal(ap_rendition_sink_create(&spec, NAN, &sink, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "gain_db"));
  assert_null(sink);

  /* Mono Opus tops out at 256 kb/s; known only once the source is. */
  spec = make_spec(AP_RENDITION_OPUS, 320000);
  spec.output = output;
  assert_int_equal(ap_rendition_sink_create(&spec, 0.0, &sink, &error), AP_OK);
  ap_stream_format_t format = {48000, 1, 0, -1};
  assert_int_equal(sink->ops->start(sink, &format, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "bitrate 320000"));
  sink->ops->destroy(sink);

  /* AAC carries at most 6144 bits per channel per 1024 frames: 48 kb/s
   * per channel at 8 kHz. */
  spec = make_spec(AP_RENDITION_AAC, 128000);
  spec.sample_rate = 8000;
  spec.output = output;
  assert_int_equal(ap_rendition_sink_create(&spec, 0.0, &sink, &error), AP_OK);
  assert_int_equal(sink->ops->start(sink, &format, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "48000 b/s"));
  sink->ops->destroy(sink);
  ap_output_close(output);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(opus_encodes_recording),
      cmocka_unit_test(mp3_encodes_recording),
      cmocka_unit_test(aac_encodes_recording),
      cmocka_unit_test(flac_encodes_24bit),
      cmocka_unit_test(flac_encodes_recording),
      cmocka_unit_test(wav_encodes_recording),
      cmocka_unit_test(forward_only_output_gets_headers),
      cmocka_unit_test(failing_output_reports_its_error),
      cmocka_unit_test(resampling_keeps_pitch),
      cmocka_unit_test(telephony_file_keeps_duration),
      cmocka_unit_test(gain_halves_peak),
      cmocka_unit_test(mono_mix_cancels_opposite_phase),
      cmocka_unit_test(surround_mix_uses_itu_coefficients),
      cmocka_unit_test(surround_source_becomes_stereo),
      cmocka_unit_test(parallel_sinks_match_sequential),
      cmocka_unit_test(probe_reads_rendition_length),
      cmocka_unit_test(sink_rejects_invalid_spec),
  };
  return cmocka_run_group_tests(tests, convert_recording, remove_recording);
}
