/*
 * Regression tests for header fields the prober must not trust. They
 * cover a RIFF chunk size that overflows the walk, an nBlockAlign that
 * disagrees with the channels and sample size, a sample rate of 0 or past
 * INT_MAX, and an MP3 Xing/Info frame count that its bytes contradict.
 * Each input is built in memory, the MP3 ones by editing case-03.mp3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/probe.h>

#include "probe/decoder.h"
#include "test_probe_support.h"

static void put_le16(unsigned char *p, unsigned value) {
  p[0] = (unsigned char)value;
  p[1] = (unsigned char)(value >> 8);
}

static void put_le32(unsigned char *p, uint32_t value) {
  for (int i = 0; i < 4; i++) {
    p[i] = (unsigned char)(value >> (8 * i));
  }
}

static void put_le64(unsigned char *p, uint64_t value) {
  for (int i = 0; i < 8; i++) {
    p[i] = (unsigned char)(value >> (8 * i));
  }
}

static void put_be32(unsigned char *p, uint32_t value) {
  for (int i = 0; i < 4; i++) {
    p[i] = (unsigned char)(value >> (24 - 8 * i));
  }
}

/* Writes a 16-byte PCM fmt chunk body. */
static void put_format(unsigned char *p, unsigned channels, uint32_t rate,
                       unsigned block_align, unsigned bits) {
  put_le16(p, 1);
  put_le16(p + 2, channels);
  put_le32(p + 4, rate);
  put_le32(p + 8, rate * block_align);
  put_le16(p + 12, block_align);
  put_le16(p + 14, bits);
}

/* A canonical 44-byte-header WAV with `data_bytes` of silence. */
static unsigned char *make_wav(unsigned channels, uint32_t rate,
                               unsigned block_align, unsigned bits,
                               uint32_t data_bytes, size_t *size) {
  *size = 44 + (size_t)data_bytes;
  unsigned char *wav = calloc(1, *size);
  assert_non_null(wav);
  memcpy(wav, "RIFF", 4);
  put_le32(wav + 4, (uint32_t)*size - 8);
  memcpy(wav + 8, "WAVEfmt ", 8);
  put_le32(wav + 16, 16);
  put_format(wav + 20, channels, rate, block_align, bits);
  memcpy(wav + 36, "data", 4);
  put_le32(wav + 40, data_bytes);
  return wav;
}

typedef struct probe_result {
  ap_status_t status;
  ap_error_t error;
  ap_media_info_t *info;
} probe_result_t;

static probe_result_t probe_bytes(const unsigned char *data, size_t size) {
  probe_result_t result = {0};
  ap_io_t *io = NULL;
  assert_int_equal(ap_io_open_memory(data, size, &io, &result.error), AP_OK);
  result.status = ap_probe(io, NULL, &result.info, &result.error);
  ap_io_close(io);
  return result;
}

/* Frames the decoder delivers for the bytes, or -1 when it fails. */
static int64_t decode_bytes(const unsigned char *data, size_t size) {
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_memory(data, size, &io, &error), AP_OK);
  int64_t frames = -1;
  if (ap_decoder_open(io, NULL, &decoder, &error) == AP_OK) {
    frames = 0;
    for (;;) {
      const float *const *planes = NULL;
      int count = 0;
      if (ap_decoder_read(decoder, &planes, &count, &error) != AP_OK) {
        frames = -1;
        break;
      }
      if (count == 0) {
        break;
      }
      frames += count;
    }
    ap_decoder_close(decoder);
  }
  ap_io_close(io);
  return frames;
}

/* RF64 whose ds64 data size is near INT64_MAX and whose data chunk comes
 * before fmt: stepping over the data chunk used to overflow the offset
 * and fail with "read at negative offset" (AP_ERR_INVALID_ARGUMENT). */
static void rf64_huge_data_before_format(void **state) {
  (void)state;
  unsigned char file[12 + 36 + 8 + 1000 + 24] = {0};
  memcpy(file, "RF64", 4);
  put_le32(file + 4, 0xFFFFFFFFu);
  memcpy(file + 8, "WAVE", 4);
  memcpy(file + 12, "ds64", 4);
  put_le32(file + 16, 28);
  put_le64(file + 20, UINT64_C(1) << 62);
  put_le64(file + 28, UINT64_C(0x7FFFFFFFFFFFFFF0));
  put_le64(file + 36, UINT64_C(1) << 61);
  memcpy(file + 48, "data", 4);
  put_le32(file + 52, 0xFFFFFFFFu);
  unsigned char *format = file + 56 + 1000;
  memcpy(format, "fmt ", 4);
  put_le32(format + 4, 16);
  put_format(format + 8, 1, 8000, 2, 16);

  probe_result_t result = probe_bytes(file, sizeof file);
  assert_int_not_equal(result.status, AP_OK);
  assert_int_not_equal(result.status, AP_ERR_INVALID_ARGUMENT);
  assert_null(strstr(result.error.message, "negative offset"));
  ap_media_info_free(result.info);
}

/* A data chunk before fmt, with a sane size, is still measured. */
static void wav_data_before_format(void **state) {
  (void)state;
  unsigned char file[12 + 8 + 100 + 24] = {0};
  memcpy(file, "RIFF", 4);
  put_le32(file + 4, sizeof file - 8);
  memcpy(file + 8, "WAVE", 4);
  memcpy(file + 12, "data", 4);
  put_le32(file + 16, 100);
  unsigned char *format = file + 20 + 100;
  memcpy(format, "fmt ", 4);
  put_le32(format + 4, 16);
  put_format(format + 8, 1, 8000, 2, 16);

  probe_result_t result = probe_bytes(file, sizeof file);
  assert_int_equal(result.status, AP_OK);
  assert_int_equal(ap_media_info_duration_frames(result.info), 50);
  ap_media_info_free(result.info);
}

/* Stereo 16-bit with nBlockAlign 3: FFmpeg decodes 4-byte frames, so the
 * probe must count 1600 / 4 = 400 frames, not 1600 / 3. */
static void wav_block_align_disagrees(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *wav = make_wav(2, 8000, 3, 16, 1600, &size);
  probe_result_t result = probe_bytes(wav, size);
  assert_int_equal(result.status, AP_OK);
  assert_int_equal(ap_media_info_duration_frames(result.info), 400);
  assert_int_equal(decode_bytes(wav, size), 400);
  ap_media_info_free(result.info);
  free(wav);
}

/* nBlockAlign 0 still gives the header duration. */
static void wav_block_align_zero(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *wav = make_wav(1, 8000, 0, 16, 1600, &size);
  probe_result_t result = probe_bytes(wav, size);
  assert_int_equal(result.status, AP_OK);
  assert_int_equal(ap_media_info_duration_frames(result.info), 800);
  assert_int_equal(ap_media_info_duration_method(result.info),
                   AP_DURATION_HEADER);
  ap_media_info_free(result.info);
  free(wav);
}

/* A zero rate is named as invalid, not as over the maximum. */
static void wav_sample_rate_zero(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *wav = make_wav(1, 0, 2, 16, 1600, &size);
  probe_result_t result = probe_bytes(wav, size);
  assert_int_equal(result.status, AP_ERR_SAMPLE_RATE_UNSUPPORTED);
  assert_non_null(strstr(result.error.message, "invalid sample rate 0 Hz"));
  assert_null(strstr(result.error.message, "maximum"));
  free(wav);
}

/* 0xFFFFFFFF Hz is reported as stated, not as -1 Hz. */
static void wav_sample_rate_past_int_max(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *wav = make_wav(1, 0xFFFFFFFFu, 2, 16, 1600, &size);
  probe_result_t result = probe_bytes(wav, size);
  assert_int_equal(result.status, AP_ERR_SAMPLE_RATE_UNSUPPORTED);
  assert_non_null(strstr(result.error.message, "4294967295 Hz"));
  assert_null(strstr(result.error.message, "-1 Hz"));
  free(wav);
}

/* case-03.mp3 with its Info frame count (193 audio frames) replaced.
 * `marker` replaces "Info" when not NULL. */
static unsigned char *mp3_with_frame_count(uint32_t frames, const char *marker,
                                           size_t *size) {
  unsigned char *mp3 = read_whole_file(CASE("case-03.mp3"), size);
  /* The Info tag starts 21 bytes into the frame after the 20-byte ID3v2
   * tag: marker, flags, then the frame count. */
  assert_memory_equal(mp3 + 41, "Info", 4);
  if (marker) {
    memcpy(mp3 + 41, marker, 4);
  }
  put_be32(mp3 + 49, frames);
  return mp3;
}

typedef struct frame_count_case {
  uint32_t frames;
  const char *marker;
} frame_count_case_t;

/* Frame counts the bytes contradict: 1 frame made the decoder stop at 0
 * samples, 1000 frames probed as 26.08 s, 0xFFFFFFFF frames (as Xing)
 * failed the 6 h duration limit. Each must measure 5 s by counting
 * frames, and decode the 220500 samples. */
static void mp3_frame_count_contradicted(void **state) {
  (void)state;
  static const frame_count_case_t cases[] = {
      {1, NULL}, {1000, NULL}, {0xFFFFFFFFu, "Xing"}, {5, "Xing"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t size = 0;
    unsigned char *mp3 =
        mp3_with_frame_count(cases[i].frames, cases[i].marker, &size);
    probe_result_t result = probe_bytes(mp3, size);
    if (result.status != AP_OK) {
      fail_msg("frame count %u: status %d: %s", cases[i].frames, result.status,
               result.error.message);
    }
    assert_int_equal(ap_media_info_duration_frames(result.info), 220500);
    assert_int_equal(ap_media_info_duration_method(result.info),
                     AP_DURATION_PACKET_SCAN);
    assert_int_equal(decode_bytes(mp3, size), 220500);
    ap_media_info_free(result.info);
    free(mp3);
  }
}

/* The untouched Info count still gives the frame-count duration. */
static void mp3_frame_count_consistent(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *mp3 = mp3_with_frame_count(193, NULL, &size);
  probe_result_t result = probe_bytes(mp3, size);
  assert_int_equal(result.status, AP_OK);
  assert_int_equal(ap_media_info_duration_frames(result.info), 220500);
  assert_int_equal(ap_media_info_duration_method(result.info),
                   AP_DURATION_FRAME_COUNT);
  ap_media_info_free(result.info);
  free(mp3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rf64_huge_data_before_format),
      cmocka_unit_test(wav_data_before_format),
      cmocka_unit_test(wav_block_align_disagrees),
      cmocka_unit_test(wav_block_align_zero),
      cmocka_unit_test(wav_sample_rate_zero),
      cmocka_unit_test(wav_sample_rate_past_int_max),
      cmocka_unit_test(mp3_frame_count_contradicted),
      cmocka_unit_test(mp3_frame_count_consistent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
