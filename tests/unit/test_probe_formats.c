/* Tests for ap_probe and the decoder on containers the case files do not
 * cover, generated with the ffmpeg command-line tool in TMPDIR: the probed
 * duration, the evidence behind it, and that decoding agrees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <audiopipe/probe.h>

#include "probe/decoder.h"

typedef struct format_case {
  const char *file;    /* name in TMPDIR */
  const char *options; /* ffmpeg output options */
  const char *container;
  const char *codec;
  int sample_rate;
  int64_t frames; /* exact, or -1 when only decode agreement is checked */
  ap_duration_method_t method;
  int64_t decode_shortfall; /* frames the decoder may deliver fewer */
} format_case_t;

/* One second of a 440 Hz tone at 44.1 kHz, mono. Opus always decodes at
 * 48 kHz. */
static const format_case_t cases[] = {
    {"tone.flac", "-c:a flac", "flac", "flac", 44100, 44100, AP_DURATION_HEADER,
     0},
    {"tone.aiff", "-c:a pcm_s16be", "aiff", "pcm_s16be", 44100, 44100,
     AP_DURATION_HEADER, 0},
    /* FFmpeg 5.1 decodes this file to 43972 frames: it trims 128 more at
     * the end than the granule positions state. */
    {"tone.ogg", "-c:a libvorbis", "ogg", "vorbis", 44100, 44100,
     AP_DURATION_FRAME_COUNT, 128},
    {"tone.opus", "-c:a libopus", "ogg", "opus", 48000, 48000,
     AP_DURATION_FRAME_COUNT, 0},
    {"tone.webm", "-c:a libopus -f webm", "webm", "opus", 48000, 48000,
     AP_DURATION_PACKET_SCAN, 0},
    {"tone.mkv", "-c:a pcm_s16le -f matroska", "matroska", "pcm_s16le", 44100,
     44100, AP_DURATION_PACKET_SCAN, 0},
    {"tone.caf", "-c:a pcm_s16le -f caf", "caf", "pcm_s16le", 44100, 44100,
     AP_DURATION_PACKET_SCAN, 0},
    {"tone.wv", "-c:a wavpack", "wavpack", "wavpack", 44100, 44100,
     AP_DURATION_PACKET_SCAN, 0},
    {"tone_vbr.mp3", "-c:a libmp3lame -q:a 4", "mp3", "mp3", 44100, 44100,
     AP_DURATION_FRAME_COUNT, 0},
    /* No Xing header: every frame header is walked. */
    {"tone_noxing.mp3", "-c:a libmp3lame -q:a 4 -write_xing 0", "mp3", "mp3",
     44100, -1, AP_DURATION_PACKET_SCAN, 0},
};

static const char *temporary_directory(void) {
  const char *directory = getenv("TMPDIR");
  return directory && directory[0] ? directory : "/tmp";
}

static void generate(const format_case_t *format, char *path, size_t size) {
  snprintf(path, size, "%s/%s", temporary_directory(), format->file);
  char command[8192];
  snprintf(command, sizeof command,
           "ffmpeg -nostdin -v error -y -f lavfi -i "
           "\"sine=frequency=440:sample_rate=44100:duration=1\" -ac 1 %s "
           "\"%s\"",
           format->options, path);
  if (system(command) != 0) {
    fail_msg("ffmpeg could not generate %s", path);
  }
}

static int64_t decode_count(const char *path) {
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(path, &io, &error), AP_OK);
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);
  int64_t frames = 0;
  for (;;) {
    const float *const *planes = NULL;
    int count = 0;
    assert_int_equal(ap_decoder_read(decoder, &planes, &count, &error), AP_OK);
    if (count == 0) {
      break;
    }
    frames += count;
  }
  ap_decoder_close(decoder);
  ap_io_close(io);
  return frames;
}

static void probe_generated_formats(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const format_case_t *format = &cases[i];
    char path[4096];
    generate(format, path, sizeof path);

    ap_media_info_t *info = NULL;
    ap_error_t error = {0};
    ap_status_t status = ap_probe_file(path, NULL, &info, &error);
    if (status != AP_OK) {
      fail_msg("%s: status %d: %s", format->file, status, error.message);
    }
    const char *container = ap_media_info_container(info);
    const char *codec = ap_media_info_codec(info);
    int64_t probed = ap_media_info_duration_frames(info);
    if (strcmp(container, format->container) != 0 ||
        strcmp(codec, format->codec) != 0) {
      fail_msg("%s: %s/%s, expected %s/%s", format->file, container, codec,
               format->container, format->codec);
    }
    if (ap_media_info_sample_rate(info) != format->sample_rate) {
      fail_msg("%s: rate %d", format->file, ap_media_info_sample_rate(info));
    }
    if (ap_media_info_duration_method(info) != format->method) {
      fail_msg("%s: method %s", format->file,
               ap_duration_method_name(ap_media_info_duration_method(info)));
    }
    if (format->frames >= 0 && probed != format->frames) {
      fail_msg("%s: probed %lld frames, expected %lld", format->file,
               (long long)probed, (long long)format->frames);
    }
    int64_t decoded = decode_count(path);
    if (decoded > probed || decoded < probed - format->decode_shortfall) {
      fail_msg("%s: decoded %lld frames, probed %lld", format->file,
               (long long)decoded, (long long)probed);
    }
    ap_media_info_free(info);
    unlink(path);
  }
}

/* A Vorbis file whose last packet ends 223 samples before its page: its
 * granule position gives 9505 frames, FFmpeg 5.1 decodes 9728 and stores
 * the negative end duration as a 32-bit unsigned value. The file comes
 * with the freedesktop sound theme, so the test skips without it. */
static void probe_ogg_last_granule(void **state) {
  (void)state;
  const char *path =
      "/usr/share/sounds/freedesktop/stereo/phone-outgoing-calling.oga";
  if (access(path, R_OK) != 0) {
    skip();
  }
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe_file(path, NULL, &info, &error), AP_OK);
  assert_int_equal(ap_media_info_duration_frames(info), 9505);
  assert_int_equal(ap_media_info_duration_method(info),
                   AP_DURATION_FRAME_COUNT);
  ap_media_info_free(info);
  assert_int_equal(decode_count(path), 9505);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(probe_generated_formats),
      cmocka_unit_test(probe_ogg_last_granule),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
