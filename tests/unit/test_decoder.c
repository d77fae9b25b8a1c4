/* Tests for the internal decoder: exact frame counts for every case,
 * block sizes, forward-only inputs, rewinding, the final media info,
 * limits enforced while decoding, and damaged input. */
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

/* Forward-only input over memory, with no size: a pipe of known bytes. */
typedef struct memory_pipe {
  const unsigned char *data;
  size_t size;
  size_t position;
} memory_pipe_t;

static int64_t memory_pipe_read(void *user_data, void *buffer, size_t size,
                                ap_error_t *error) {
  (void)error;
  memory_pipe_t *pipe = user_data;
  size_t left = pipe->size - pipe->position;
  size_t take = size < left ? size : left;
  memcpy(buffer, pipe->data + pipe->position, take);
  pipe->position += take;
  return (int64_t)take;
}

static ap_io_t *open_memory_pipe(memory_pipe_t *pipe) {
  ap_io_callbacks_t callbacks = {0};
  callbacks.struct_size = sizeof callbacks;
  callbacks.read = memory_pipe_read;
  ap_io_t *io = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_callbacks(&callbacks, pipe, &io, &error), AP_OK);
  return io;
}

/* Decodes to the end; returns the status and stores the frame count. */
static ap_status_t decode_all(ap_decoder_t *decoder, int64_t *frames,
                              ap_error_t *error) {
  *frames = 0;
  for (;;) {
    const float *const *planes = NULL;
    int count = 0;
    ap_status_t status = ap_decoder_read(decoder, &planes, &count, error);
    if (status != AP_OK) {
      return status;
    }
    if (count == 0) {
      return AP_OK;
    }
    assert_true(count <= AP_SINK_MAX_BLOCK_FRAMES);
    *frames += count;
  }
}

static int64_t decode_file(const char *path) {
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(path, &io, &error), AP_OK);
  ap_status_t status = ap_decoder_open(io, NULL, &decoder, &error);
  if (status != AP_OK) {
    fail_msg("%s: open status %d: %s", path, status, error.message);
  }
  int64_t frames = 0;
  status = decode_all(decoder, &frames, &error);
  if (status != AP_OK) {
    fail_msg("%s: read status %d: %s", path, status, error.message);
  }
  assert_int_equal(ap_decoder_frames_read(decoder), frames);
  ap_decoder_close(decoder);
  ap_io_close(io);
  return frames;
}

static void decoder_counts_every_case(void **state) {
  (void)state;
  static const struct {
    const char *path;
    int64_t frames;
  } cases[] = {
      {CASE("case-01.webm"), 480000}, {CASE("case-03.mp3"), 220500},
      {CASE("case-04.m4a"), 480000},  {CASE("case-05.mp3"), 110250},
      {CASE("case-08.wav"), 192000},  {CASE("case-09.wav"), 480000},
      {CASE("case-10.wav"), 480000},  {CASE("case-11.wav"), 44101},
      {CASE("case-13.wav"), 23078},   {CASE("case-15.mp3"), 220500},
      {CASE("case-18.wav"), 13728},   {CASE("case-19.wav"), 480000},
      {CASE("case-21.wav"), 44100},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t frames = decode_file(cases[i].path);
    if (frames != cases[i].frames) {
      fail_msg("%s: decoded %lld frames, expected %lld", cases[i].path,
               (long long)frames, (long long)cases[i].frames);
    }
  }
}

static void decoder_rejects_bad_cases(void **state) {
  (void)state;
  static const struct {
    const char *path;
    ap_status_t status;
  } cases[] = {
      {CASE("case-14.mp3"), AP_ERR_EMPTY_INPUT},
      {CASE("case-16.wav"), AP_ERR_CHANNELS_UNSUPPORTED},
      {CASE("case-22.wav"), AP_ERR_MULTIPART_BODY},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ap_io_t *io = NULL;
    ap_decoder_t *decoder = NULL;
    ap_error_t error = {0};
    assert_int_equal(ap_io_open_file(cases[i].path, &io, &error), AP_OK);
    assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error),
                     cases[i].status);
    assert_null(decoder);
    ap_io_close(io);
  }
}

static void decoder_format_matches_probe(void **state) {
  (void)state;
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(CASE("case-08.wav"), &io, &error), AP_OK);
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);
  const ap_stream_format_t *format = ap_decoder_format(decoder);
  assert_int_equal(format->sample_rate, 48000);
  assert_int_equal(format->channels, 2);
  assert_int_equal(format->channel_mask, 0x3);
  assert_int_equal(format->expected_frames, 192000);
  assert_int_equal(
      ap_media_info_duration_frames(ap_decoder_media_info(decoder)), 192000);
  ap_decoder_close(decoder);
  ap_io_close(io);
}

static void decoder_pipe_wav(void **state) {
  (void)state;
  ap_io_t *io = open_pipe_input(CASE("case-10.wav"));
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);
  /* A pipe's length is unknown before it is read. */
  assert_int_equal(ap_decoder_format(decoder)->expected_frames, -1);
  int64_t frames = 0;
  assert_int_equal(decode_all(decoder, &frames, &error), AP_OK);
  assert_int_equal(frames, 480000);

  ap_media_info_t *final = NULL;
  assert_int_equal(ap_decoder_final_media_info(decoder, &final, &error), AP_OK);
  assert_int_equal(ap_media_info_duration_frames(final), 480000);
  assert_int_equal(ap_media_info_duration_method(final), AP_DURATION_DECODE);
  assert_false(ap_media_info_is_truncated(final));
  ap_media_info_free(final);

  assert_int_equal(ap_decoder_rewind(decoder, &error), AP_ERR_UNSUPPORTED);
  ap_decoder_close(decoder);
  ap_io_close(io);
}

static void decoder_pipe_mp4_moov_at_end(void **state) {
  (void)state;
  ap_io_t *io = open_pipe_input(CASE("case-04.m4a"));
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error),
                   AP_ERR_UNSUPPORTED);
  assert_null(decoder);
  assert_non_null(strstr(error.message, "moov"));
  ap_io_close(io);
}

static void decoder_pipe_mp4_moov_first(void **state) {
  (void)state;
  ap_io_t *io = open_pipe_input(CASE("case-15.mp3"));
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);
  int64_t frames = 0;
  assert_int_equal(decode_all(decoder, &frames, &error), AP_OK);
  assert_int_equal(frames, 220500);
  ap_decoder_close(decoder);
  ap_io_close(io);
}

static void decoder_pipe_cut_wav_is_truncated(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *data = read_whole_file(CASE("case-19.wav"), &size);
  memory_pipe_t pipe = {data, 44 + 100000 * 2, 0};
  ap_io_t *io = open_memory_pipe(&pipe);
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);
  int64_t frames = 0;
  assert_int_equal(decode_all(decoder, &frames, &error), AP_OK);
  assert_int_equal(frames, 100000);
  ap_media_info_t *final = NULL;
  assert_int_equal(ap_decoder_final_media_info(decoder, &final, &error), AP_OK);
  assert_true(ap_media_info_is_truncated(final));
  assert_int_equal(ap_media_info_duration_frames(final), 100000);
  ap_media_info_free(final);
  ap_decoder_close(decoder);
  ap_io_close(io);
  free(data);
}

static void decoder_rewinds_for_second_pass(void **state) {
  (void)state;
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(CASE("case-04.m4a"), &io, &error), AP_OK);
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);

  const float *const *planes = NULL;
  int count = 0;
  float first[64];
  assert_int_equal(ap_decoder_read(decoder, &planes, &count, &error), AP_OK);
  assert_true(count >= 64);
  memcpy(first, planes[0], sizeof first);
  int64_t frames = 0;
  assert_int_equal(decode_all(decoder, &frames, &error), AP_OK);
  assert_int_equal(frames + count, 480000);

  assert_int_equal(ap_decoder_rewind(decoder, &error), AP_OK);
  assert_int_equal(ap_decoder_frames_read(decoder), 0);
  assert_int_equal(ap_decoder_read(decoder, &planes, &count, &error), AP_OK);
  assert_memory_equal(first, planes[0], sizeof first);
  assert_int_equal(decode_all(decoder, &frames, &error), AP_OK);
  assert_int_equal(frames + count, 480000);
  ap_decoder_close(decoder);
  ap_io_close(io);
}

static void decoder_progress_reaches_end(void **state) {
  (void)state;
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(CASE("case-03.mp3"), &io, &error), AP_OK);
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);
  double last = ap_decoder_progress(decoder);
  assert_true(last >= 0.0);
  for (;;) {
    const float *const *planes = NULL;
    int count = 0;
    assert_int_equal(ap_decoder_read(decoder, &planes, &count, &error), AP_OK);
    double now = ap_decoder_progress(decoder);
    assert_true(now >= last);
    last = now;
    if (count == 0) {
      break;
    }
  }
  assert_true(last == 1.0);
  ap_decoder_close(decoder);
  ap_io_close(io);
}

static void decoder_limit_duration_while_decoding(void **state) {
  (void)state;
  ap_limits_t limits;
  ap_limits_init(&limits);
  limits.max_duration_seconds = 2.0;
  /* Through a pipe the duration is unknown at open, so the decoder must
   * stop on its own count. */
  ap_io_t *io = open_pipe_input(CASE("case-10.wav"));
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_decoder_open(io, &limits, &decoder, &error), AP_OK);
  int64_t frames = 0;
  assert_int_equal(decode_all(decoder, &frames, &error), AP_ERR_DURATION_LIMIT);
  assert_true(frames <= 2 * 48000);
  assert_non_null(strstr(error.message, "2.000 s"));
  ap_decoder_close(decoder);
  ap_io_close(io);
}

static void decoder_limit_duration_at_open(void **state) {
  (void)state;
  ap_limits_t limits;
  ap_limits_init(&limits);
  limits.max_duration_seconds = 4.5;
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(CASE("case-15.mp3"), &io, &error), AP_OK);
  assert_int_equal(ap_decoder_open(io, &limits, &decoder, &error),
                   AP_ERR_DURATION_LIMIT);
  assert_non_null(strstr(error.message, "4.500 s"));
  ap_io_close(io);
}

static void decoder_limit_decoded_samples(void **state) {
  (void)state;
  ap_limits_t limits;
  ap_limits_init(&limits);
  limits.max_decoded_samples = 100000;
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(CASE("case-03.mp3"), &io, &error), AP_OK);
  assert_int_equal(ap_decoder_open(io, &limits, &decoder, &error), AP_OK);
  int64_t frames = 0;
  assert_int_equal(decode_all(decoder, &frames, &error), AP_ERR_SAMPLE_BUDGET);
  assert_true(frames <= 100000);
  assert_non_null(strstr(error.message, "100000"));
  ap_decoder_close(decoder);
  ap_io_close(io);
}

static void decoder_limit_decode_time(void **state) {
  (void)state;
  ap_limits_t limits;
  ap_limits_init(&limits);
  limits.max_decode_seconds = 1e-9; /* spent before the first read */
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(CASE("case-01.webm"), &io, &error), AP_OK);
  ap_status_t status = ap_decoder_open(io, &limits, &decoder, &error);
  if (status == AP_OK) {
    int64_t frames = 0;
    status = decode_all(decoder, &frames, &error);
    ap_decoder_close(decoder);
  }
  assert_int_equal(status, AP_ERR_DECODE_TIME_LIMIT);
  assert_non_null(strstr(error.message, "limits.max_decode_seconds"));
  ap_io_close(io);
}

static void decoder_skips_damaged_frames(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *data = read_whole_file(CASE("case-03.mp3"), &size);
  uint32_t seed = 99;
  for (size_t i = 30000; i < 40000; i++) {
    seed = seed * 1103515245u + 12345u;
    data[i] = (unsigned char)(seed >> 16);
  }
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_memory(data, size, &io, &error), AP_OK);
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);
  int64_t frames = 0;
  assert_int_equal(decode_all(decoder, &frames, &error), AP_OK);
  assert_true(frames > 150000);
  assert_true(frames <= 220500);
  assert_true(ap_decoder_corrupt_packets(decoder) > 0);
  ap_decoder_close(decoder);
  ap_io_close(io);
  free(data);
}

static void decoder_fails_without_valid_audio(void **state) {
  (void)state;
  size_t size = 0;
  unsigned char *data = read_whole_file(CASE("case-03.mp3"), &size);
  /* Keep the ID3 tag and the Info frame (bytes 20..437), zero the audio. */
  memset(data + 438, 0, size - 438);
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_memory(data, size, &io, &error), AP_OK);
  ap_status_t status = ap_decoder_open(io, NULL, &decoder, &error);
  if (status == AP_OK) {
    int64_t frames = 0;
    status = decode_all(decoder, &frames, &error);
    ap_decoder_close(decoder);
  }
  assert_int_equal(status, AP_ERR_CORRUPT_INPUT);
  ap_io_close(io);
  free(data);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decoder_counts_every_case),
      cmocka_unit_test(decoder_rejects_bad_cases),
      cmocka_unit_test(decoder_format_matches_probe),
      cmocka_unit_test(decoder_pipe_wav),
      cmocka_unit_test(decoder_pipe_mp4_moov_at_end),
      cmocka_unit_test(decoder_pipe_mp4_moov_first),
      cmocka_unit_test(decoder_pipe_cut_wav_is_truncated),
      cmocka_unit_test(decoder_rewinds_for_second_pass),
      cmocka_unit_test(decoder_progress_reaches_end),
      cmocka_unit_test(decoder_limit_duration_while_decoding),
      cmocka_unit_test(decoder_limit_duration_at_open),
      cmocka_unit_test(decoder_limit_decoded_samples),
      cmocka_unit_test(decoder_limit_decode_time),
      cmocka_unit_test(decoder_skips_damaged_frames),
      cmocka_unit_test(decoder_fails_without_valid_audio),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
