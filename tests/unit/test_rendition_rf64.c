/*
 * Test for WAV renditions over 4 GiB: the sink must switch to RF64 and
 * state the real sizes in the ds64 chunk, while its memory stays flat.
 * The output keeps only the header bytes, so the test needs no disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include <audiopipe/io.h>
#include <audiopipe/rendition.h>

#include "rendition/rendition_sink.h"

#define HEADER_BYTES 512
#define CHANNELS 32
#define BLOCK_FRAMES 4096

/* A seekable output that stores the first HEADER_BYTES bytes and counts
 * the rest. */
typedef struct header_output {
  unsigned char header[HEADER_BYTES];
  int64_t position;
  int64_t length;
} header_output_t;

static int header_write(void *user_data, const void *data, size_t size,
                        ap_error_t *error) {
  (void)error;
  header_output_t *output = user_data;
  const unsigned char *bytes = data;
  for (size_t i = 0; i < size && output->position + (int64_t)i < HEADER_BYTES;
       i++) {
    output->header[output->position + (int64_t)i] = bytes[i];
  }
  output->position += (int64_t)size;
  if (output->position > output->length) {
    output->length = output->position;
  }
  return 0;
}

static int64_t header_seek(void *user_data, int64_t offset, int whence,
                           ap_error_t *error) {
  (void)error;
  header_output_t *output = user_data;
  int64_t base = whence == AP_SEEK_SET   ? 0
                 : whence == AP_SEEK_CUR ? output->position
                                         : output->length;
  output->position = base + offset;
  return output->position;
}

static uint32_t read_le32(const unsigned char *p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t read_le64(const unsigned char *p) {
  return read_le32(p) | ((uint64_t)read_le32(p + 4) << 32);
}

static long max_resident_kib(void) {
  struct rusage usage;
  assert_int_equal(getrusage(RUSAGE_SELF, &usage), 0);
  return usage.ru_maxrss;
}

static void wav_over_4gib_becomes_rf64(void **state) {
  (void)state;
  header_output_t *collected = calloc(1, sizeof *collected);
  assert_non_null(collected);
  ap_output_callbacks_t callbacks = {sizeof callbacks, header_write,
                                     header_seek, NULL};
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_output_open_callbacks(&callbacks, collected, &output, &error), AP_OK);

  ap_rendition_spec_t spec;
  ap_rendition_spec_init(&spec);
  spec.codec = AP_RENDITION_WAV;
  spec.bits_per_sample = 24;
  spec.output = output;
  ap_sink_t *sink = NULL;
  assert_int_equal(ap_rendition_sink_create(&spec, 0.0, &sink, &error), AP_OK);

  /* 32 channels of 24-bit: 96 bytes per frame, so 4 GiB plus 100 blocks
   * of 4096 frames. The samples are a quiet constant, not silence, so the
   * data bytes are not all zero. */
  const int64_t frame_bytes = CHANNELS * 3;
  const int64_t blocks = (4LL << 30) / (frame_bytes * BLOCK_FRAMES) + 100;
  float *plane = malloc(BLOCK_FRAMES * sizeof(float));
  const float **planes = malloc(CHANNELS * sizeof *planes);
  assert_non_null(plane);
  assert_non_null(planes);
  for (int i = 0; i < BLOCK_FRAMES; i++) {
    plane[i] = 0.001f;
  }
  for (int c = 0; c < CHANNELS; c++) {
    planes[c] = plane;
  }

  ap_stream_format_t format = {48000, CHANNELS, 0, blocks * BLOCK_FRAMES};
  assert_int_equal(sink->ops->start(sink, &format, &error), AP_OK);
  long resident_before = 0;
  for (int64_t b = 0; b < blocks; b++) {
    assert_int_equal(sink->ops->write(sink, planes, BLOCK_FRAMES, &error),
                     AP_OK);
    if (b == 100) {
      resident_before = max_resident_kib();
    }
  }
  assert_int_equal(sink->ops->finish(sink, &error), AP_OK);
  long resident_after = max_resident_kib();
  assert_int_equal(ap_output_finish(output, &error), AP_OK);

  const unsigned char *header = collected->header;
  uint64_t data_bytes = (uint64_t)(blocks * BLOCK_FRAMES * frame_bytes);
  assert_memory_equal(header, "RF64", 4);
  assert_int_equal(read_le32(header + 4), 0xffffffffu);
  assert_memory_equal(header + 8, "WAVE", 4);
  assert_memory_equal(header + 12, "ds64", 4);
  assert_int_equal(read_le64(header + 20), (uint64_t)collected->length - 8);
  assert_int_equal(read_le64(header + 28), data_bytes);
  assert_int_equal(read_le64(header + 36), (uint64_t)(blocks * BLOCK_FRAMES));
  assert_int_equal(ap_rendition_sink_bytes(sink), collected->length);
  assert_true((uint64_t)collected->length > data_bytes);

  /* Memory does not grow with the input. AddressSanitizer keeps freed
   * blocks in quarantine, so the check runs only without it. */
#ifndef __SANITIZE_ADDRESS__
  print_message("resident growth %ld KiB\n", resident_after - resident_before);
  assert_true(resident_after - resident_before < 16 * 1024);
#else
  (void)resident_before;
  (void)resident_after;
#endif

  sink->ops->destroy(sink);
  ap_output_close(output);
  free(planes);
  free(plane);
  free(collected);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(wav_over_4gib_becomes_rf64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
