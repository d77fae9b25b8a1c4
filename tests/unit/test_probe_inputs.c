/* Tests for ap_probe on generated inputs: non-audio files, forward-only
 * inputs, files cut short, limits, tag sanitising and options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/probe.h>

#include "probe/media_info_internal.h"
#include "test_probe_support.h"

static ap_status_t probe_memory(const void *data, size_t size,
                                const ap_probe_options_t *options,
                                ap_media_info_t **info, ap_error_t *error) {
  ap_io_t *io = NULL;
  assert_int_equal(ap_io_open_memory(data, size, &io, error), AP_OK);
  ap_status_t status = ap_probe(io, options, info, error);
  ap_io_close(io);
  return status;
}

static void expect_not_audio(const void *data, size_t size, const char *word) {
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  ap_status_t status = probe_memory(data, size, NULL, &info, &error);
  if (status != AP_ERR_NOT_AUDIO) {
    fail_msg("%s: status %d (%s), expected not_audio", word, status,
             error.message);
  }
  assert_null(info);
  if (!strstr(error.message, word)) {
    fail_msg("message \"%s\" does not name \"%s\"", error.message, word);
  }
}

static void probe_rejects_html(void **state) {
  (void)state;
  const char html[] = "<!DOCTYPE html>\n<html><head><title>403</title>";
  expect_not_audio(html, sizeof html - 1, "html");
}

static void probe_rejects_pdf(void **state) {
  (void)state;
  const char pdf[] = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
  expect_not_audio(pdf, sizeof pdf - 1, "pdf");
}

static void probe_rejects_text(void **state) {
  (void)state;
  const char text[] = "These are my meeting notes, not a recording.\n";
  expect_not_audio(text, sizeof text - 1, "text");
}

static void probe_rejects_png(void **state) {
  (void)state;
  unsigned char png[64] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  expect_not_audio(png, sizeof png, "png");
}

static void probe_rejects_random_bytes(void **state) {
  (void)state;
  size_t size = 256 * 1024;
  unsigned char *noise = malloc(size);
  assert_non_null(noise);
  uint32_t seed = 12345;
  for (size_t i = 0; i < size; i++) {
    seed = seed * 1103515245u + 12345u;
    noise[i] = (unsigned char)(seed >> 16);
  }
  expect_not_audio(noise, size, "not recognised");
  free(noise);
}

static void probe_pipe_wav_streaming_sizes(void **state) {
  (void)state;
  ap_io_t *io = open_pipe_input(CASE("case-10.wav"));
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe(io, NULL, &info, &error), AP_OK);
  assert_int_equal(ap_media_info_duration_frames(info), 480000);
  assert_int_equal(ap_media_info_duration_method(info),
                   AP_DURATION_PACKET_SCAN);
  assert_int_equal(ap_media_info_sample_rate(info), 48000);
  /* Read to its end, the pipe's length is known. */
  assert_int_equal(ap_media_info_input_bytes(info), 960044);
  ap_media_info_free(info);
  ap_io_close(io);
}

static void probe_pipe_wav_declared_size(void **state) {
  (void)state;
  ap_io_t *io = open_pipe_input(CASE("case-08.wav"));
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe(io, NULL, &info, &error), AP_OK);
  assert_int_equal(ap_media_info_duration_frames(info), 192000);
  assert_int_equal(ap_media_info_channel_mask(info), 0x3);
  ap_media_info_free(info);
  ap_io_close(io);
}

static void probe_pipe_mp3(void **state) {
  (void)state;
  ap_io_t *io = open_pipe_input(CASE("case-05.mp3"));
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe(io, NULL, &info, &error), AP_OK);
  assert_int_equal(ap_media_info_duration_frames(info), 110250);
  assert_int_equal(ap_media_info_bitrate(info), 64000);
  ap_media_info_free(info);
  ap_io_close(io);
}

static void probe_cut_wav_is_truncated(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *data = read_whole_file(CASE("case-19.wav"), &size);
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  size_t cut = 44 + 240000 * 2 + 1; /* half the frames and one odd byte */
  assert_int_equal(probe_memory(data, cut, NULL, &info, &error), AP_OK);
  assert_true(ap_media_info_is_truncated(info));
  assert_int_equal(ap_media_info_duration_frames(info), 240000);
  assert_int_equal(ap_media_info_duration_method(info), AP_DURATION_HEADER);
  double claimed = ap_media_info_header_duration(info);
  assert_true(claimed > 9.9999 && claimed < 10.0001);
  ap_media_info_free(info);
  free(data);
}

static void probe_cut_mp3_is_truncated(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *data = read_whole_file(CASE("case-03.mp3"), &size);
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  size_t cut = size / 2;
  assert_int_equal(probe_memory(data, cut, NULL, &info, &error), AP_OK);
  assert_true(ap_media_info_is_truncated(info));
  assert_int_equal(ap_media_info_duration_method(info),
                   AP_DURATION_PACKET_SCAN);
  double duration = ap_media_info_duration(info);
  assert_true(duration > 2.3);
  assert_true(duration < 2.7);
  assert_true(ap_media_info_header_duration(info) > 4.999);
  ap_media_info_free(info);
  free(data);
}

static void probe_cut_mp4_is_truncated(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *data = read_whole_file(CASE("case-15.mp3"), &size);
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  size_t cut = size / 2;
  assert_int_equal(probe_memory(data, cut, NULL, &info, &error), AP_OK);
  assert_string_equal(ap_media_info_container(info), "mp4");
  assert_true(ap_media_info_is_truncated(info));
  double duration = ap_media_info_duration(info);
  assert_true(duration > 1.5);
  assert_true(duration < 3.5);
  ap_media_info_free(info);
  free(data);
}

static void probe_limit_input_bytes(void **state) {
  (void)state;
  ap_probe_options_t options;
  ap_probe_options_init(&options);
  options.limits.max_input_bytes = 1000;
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe_file(CASE("case-03.mp3"), &options, &info, &error),
                   AP_ERR_INPUT_TOO_LARGE);
  assert_non_null(strstr(error.message, "81103 bytes"));
  assert_non_null(strstr(error.message, "1000"));
}

static void probe_limit_input_bytes_pipe(void **state) {
  (void)state;
  ap_probe_options_t options;
  ap_probe_options_init(&options);
  options.limits.max_input_bytes = 100000;
  ap_io_t *io = open_pipe_input(CASE("case-10.wav"));
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe(io, &options, &info, &error),
                   AP_ERR_INPUT_TOO_LARGE);
  assert_non_null(strstr(error.message, "100000"));
  ap_io_close(io);
}

static void probe_limit_duration(void **state) {
  (void)state;
  ap_probe_options_t options;
  ap_probe_options_init(&options);
  options.limits.max_duration_seconds = 2.0;
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe_file(CASE("case-03.mp3"), &options, &info, &error),
                   AP_ERR_DURATION_LIMIT);
  assert_non_null(strstr(error.message, "5.000 s"));
  assert_non_null(strstr(error.message, "2.000 s"));
}

static void probe_limit_channels(void **state) {
  (void)state;
  ap_probe_options_t options;
  ap_probe_options_init(&options);
  options.limits.max_channels = 1;
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe_file(CASE("case-08.wav"), &options, &info, &error),
                   AP_ERR_CHANNELS_UNSUPPORTED);
  assert_non_null(strstr(error.message, "channel count 2"));
  assert_non_null(strstr(error.message, "maximum is 1"));
}

static void probe_limit_channels_from_codec(void **state) {
  (void)state;
  ap_probe_options_t options;
  ap_probe_options_init(&options);
  options.limits.max_channels = 1;
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe_file(CASE("case-15.mp3"), &options, &info, &error),
                   AP_ERR_CHANNELS_UNSUPPORTED);
  assert_non_null(strstr(error.message, "channel count 2"));
}

static void probe_limit_sample_rate(void **state) {
  (void)state;
  ap_probe_options_t options;
  ap_probe_options_init(&options);
  options.limits.max_sample_rate = 44100;
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe_file(CASE("case-08.wav"), &options, &info, &error),
                   AP_ERR_SAMPLE_RATE_UNSUPPORTED);
  assert_non_null(strstr(error.message, "48000 Hz"));
}

static void probe_always_scan_mp3(void **state) {
  (void)state;
  ap_probe_options_t options;
  ap_probe_options_init(&options);
  options.always_scan = 1;
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe_file(CASE("case-03.mp3"), &options, &info, &error),
                   AP_OK);
  assert_int_equal(ap_media_info_duration_method(info),
                   AP_DURATION_PACKET_SCAN);
  assert_int_equal(ap_media_info_duration_frames(info), 220500);
  ap_media_info_free(info);
}

static void probe_rejects_small_struct_size(void **state) {
  (void)state;
  ap_probe_options_t options;
  ap_probe_options_init(&options);
  options.struct_size = 8;
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_probe_file(CASE("case-03.mp3"), &options, &info, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "struct_size 8"));
}

/* A 16-bit mono WAV of `frames` zero samples with a LIST/INFO chunk whose
 * title contains control characters and an invalid UTF-8 byte. */
static unsigned char *wav_with_title(size_t *size) {
  static const char title[] = "Bad\x01Ti\ttle\xff!";
  size_t frames = 800;
  size_t info_bytes = 4 + 8 + sizeof title; /* "INFO" + INAM chunk */
  size_t list_bytes = 8 + info_bytes + (info_bytes & 1);
  size_t total = 44 + frames * 2 + list_bytes;
  unsigned char *wav = calloc(1, total);
  assert_non_null(wav);
  unsigned char *p = wav;
  memcpy(p, "RIFF", 4);
  uint32_t riff = (uint32_t)(total - 8);
  memcpy(p + 4, &riff, 4);
  memcpy(p + 8, "WAVEfmt ", 8);
  static const unsigned char fmt[20] = {
      16, 0, 0, 0, 1, 0, 1, 0, 0x40, 0x1F, 0, 0, 0x80, 0x3E, 0, 0, 2, 0, 16, 0};
  memcpy(p + 16, fmt, sizeof fmt);
  memcpy(p + 36, "data", 4);
  uint32_t data = (uint32_t)(frames * 2);
  memcpy(p + 40, &data, 4);
  p = wav + 44 + frames * 2;
  memcpy(p, "LIST", 4);
  uint32_t list = (uint32_t)info_bytes;
  memcpy(p + 4, &list, 4);
  memcpy(p + 8, "INFOINAM", 8);
  uint32_t name = sizeof title;
  memcpy(p + 16, &name, 4);
  memcpy(p + 20, title, sizeof title);
  *size = total;
  return wav;
}

static void probe_sanitises_tags(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *wav = wav_with_title(&size);
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(probe_memory(wav, size, NULL, &info, &error), AP_OK);
  assert_int_equal(ap_media_info_duration_frames(info), 800);
  const char *title = NULL;
  for (size_t i = 0; i < ap_media_info_tag_count(info); i++) {
    if (strcmp(ap_media_info_tag_key(info, i), "title") == 0) {
      title = ap_media_info_tag_value(info, i);
    }
  }
  assert_non_null(title);
  assert_string_equal(title, "BadTi tle\xef\xbf\xbd!");
  ap_media_info_free(info);
  free(wav);
}

/* Appends a RIFF chunk with its pad byte when `size` is odd. */
static size_t put_chunk(unsigned char *at, const char *id, const void *body,
                        uint32_t size) {
  memcpy(at, id, 4);
  memcpy(at + 4, &size, 4);
  if (body) {
    memcpy(at + 8, body, size);
  } else {
    memset(at + 8, 0, size);
  }
  if (size & 1) {
    at[8 + size] = 0;
    return 8 + size + 1;
  }
  return 8 + size;
}

static void probe_wav_odd_chunks_everywhere(void **state) {
  (void)state;
  /* Odd chunks before fmt and between fmt and data, an odd data chunk of
   * 8-bit mono (one byte per frame), and an odd chunk after the data. */
  unsigned char *wav = calloc(1, 4096);
  assert_non_null(wav);
  size_t offset = 12;
  offset += put_chunk(wav + offset, "JUNK", NULL, 3);
  static const unsigned char fmt[16] = {1,    0,    1, 0, 0x40, 0x1F, 0, 0,
                                        0x40, 0x1F, 0, 0, 1,    0,    8, 0};
  offset += put_chunk(wav + offset, "fmt ", fmt, sizeof fmt);
  offset += put_chunk(wav + offset, "fact", NULL, 5);
  offset += put_chunk(wav + offset, "data", NULL, 1001);
  offset += put_chunk(wav + offset, "id3 ", NULL, 7);
  memcpy(wav, "RIFF", 4);
  uint32_t riff = (uint32_t)(offset - 8);
  memcpy(wav + 4, &riff, 4);
  memcpy(wav + 8, "WAVE", 4);

  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(probe_memory(wav, offset, NULL, &info, &error), AP_OK);
  assert_int_equal(ap_media_info_sample_rate(info), 8000);
  assert_int_equal(ap_media_info_duration_frames(info), 1001);
  assert_false(ap_media_info_is_truncated(info));
  ap_media_info_free(info);
  free(wav);
}

/* Appends a big-endian AIFF chunk with its pad byte when `size` is odd. */
static size_t put_aiff_chunk(unsigned char *at, const char *id,
                             const void *body, uint32_t size) {
  memcpy(at, id, 4);
  at[4] = (unsigned char)(size >> 24);
  at[5] = (unsigned char)(size >> 16);
  at[6] = (unsigned char)(size >> 8);
  at[7] = (unsigned char)size;
  if (body) {
    memcpy(at + 8, body, size);
  } else {
    memset(at + 8, 0, size);
  }
  return 8 + size + (size & 1);
}

static void probe_aiff_odd_chunks_everywhere(void **state) {
  (void)state;
  unsigned char *aiff = calloc(1, 4096);
  assert_non_null(aiff);
  size_t offset = 12;
  offset += put_aiff_chunk(aiff + offset, "NAME", "abc", 3);
  /* 1 channel, 1001 frames, 8 bits, 8000 Hz as an 80-bit extended. */
  static const unsigned char common[18] = {
      0, 1, 0, 0, 0x03, 0xE9, 0, 8, 0x40, 0x0B, 0xFA, 0, 0, 0, 0, 0, 0, 0};
  offset += put_aiff_chunk(aiff + offset, "COMM", common, sizeof common);
  offset += put_aiff_chunk(aiff + offset, "SSND", NULL, 8 + 1001);
  offset += put_aiff_chunk(aiff + offset, "ANNO", "x", 1);
  memcpy(aiff, "FORM", 4);
  uint32_t form = (uint32_t)(offset - 8);
  aiff[4] = (unsigned char)(form >> 24);
  aiff[5] = (unsigned char)(form >> 16);
  aiff[6] = (unsigned char)(form >> 8);
  aiff[7] = (unsigned char)form;
  memcpy(aiff + 8, "AIFF", 4);

  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  assert_int_equal(probe_memory(aiff, offset, NULL, &info, &error), AP_OK);
  assert_string_equal(ap_media_info_container(info), "aiff");
  assert_int_equal(ap_media_info_sample_rate(info), 8000);
  assert_int_equal(ap_media_info_duration_frames(info), 1001);
  assert_int_equal(ap_media_info_duration_method(info), AP_DURATION_HEADER);
  assert_false(ap_media_info_is_truncated(info));
  ap_media_info_free(info);
  free(aiff);
}

static void sanitize_cuts_at_character(void **state) {
  (void)state;
  /* "aé" is 3 bytes: a 2-byte cap must not split the é. */
  char *clean = ap_sanitize_utf8("a\xc3\xa9", 3, 2);
  assert_string_equal(clean, "a");
  free(clean);
  clean = ap_sanitize_utf8("\xe0\x80\x80x", 4, 64); /* overlong NUL */
  assert_string_equal(clean, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx");
  free(clean);
  clean = ap_sanitize_utf8("\xed\xa0\x80", 3, 64); /* a surrogate */
  assert_string_equal(clean, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  free(clean);
  clean = ap_sanitize_utf8("a\x7f\xc2\x85z", 5, 64); /* DEL and C1 NEL */
  assert_string_equal(clean, "az");
  free(clean);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(probe_rejects_html),
      cmocka_unit_test(probe_rejects_pdf),
      cmocka_unit_test(probe_rejects_text),
      cmocka_unit_test(probe_rejects_png),
      cmocka_unit_test(probe_rejects_random_bytes),
      cmocka_unit_test(probe_pipe_wav_streaming_sizes),
      cmocka_unit_test(probe_pipe_wav_declared_size),
      cmocka_unit_test(probe_pipe_mp3),
      cmocka_unit_test(probe_cut_wav_is_truncated),
      cmocka_unit_test(probe_cut_mp3_is_truncated),
      cmocka_unit_test(probe_cut_mp4_is_truncated),
      cmocka_unit_test(probe_limit_input_bytes),
      cmocka_unit_test(probe_limit_input_bytes_pipe),
      cmocka_unit_test(probe_limit_duration),
      cmocka_unit_test(probe_limit_channels),
      cmocka_unit_test(probe_limit_channels_from_codec),
      cmocka_unit_test(probe_limit_sample_rate),
      cmocka_unit_test(probe_always_scan_mp3),
      cmocka_unit_test(probe_rejects_small_struct_size),
      cmocka_unit_test(probe_sanitises_tags),
      cmocka_unit_test(probe_wav_odd_chunks_everywhere),
      cmocka_unit_test(probe_aiff_odd_chunks_everywhere),
      cmocka_unit_test(sanitize_cuts_at_character),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
