/*
 * Regression tests for renditions of damaged audio. A few flipped bytes
 * in an AAC stream decode to samples near +102 dBFS, which made
 * libmp3lame abort the whole process. The rendition sink must clamp what
 * it feeds an encoder, so every codec finishes.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/io.h>
#include <audiopipe/rendition.h>

#include "probe/decoder.h"
#include "process/sink.h"
#include "rendition/rendition_sink.h"
#include "test_probe_support.h"

typedef struct byte_change {
  size_t offset;
  unsigned char value;
} byte_change_t;

/* The 16 bytes (offset, new value) that turn case-15.mp3 (AAC in MP4)
 * into a stream whose decoded peak is about 125763 times full scale. */
static const byte_change_t damage[] = {
    {15, 0367},   {982, 053},   {1040, 0127}, {1197, 0356},
    {1238, 016},  {1301, 053},  {1462, 0364}, {1611, 0360},
    {1632, 0306}, {1674, 0254}, {1806, 051},  {1858, 064},
    {2723, 0336}, {2818, 0365}, {3242, 054},  {3288, 0355}};

static unsigned char *damaged_aac(size_t *size) {
  unsigned char *data = read_whole_file(CASE("case-15.mp3"), size);
  for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
    assert_true(damage[i].offset < *size);
    data[damage[i].offset] = damage[i].value;
  }
  return data;
}

/* Decodes `data` into a rendition sink for `codec` and returns the sink's
 * final status. Stores the peak decoded magnitude in `*peak` and the
 * rendition's size in `*bytes`. */
static ap_status_t render(const unsigned char *data, size_t size,
                          ap_rendition_codec_t codec, float *peak,
                          int64_t *bytes) {
  ap_error_t error = {0};
  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  assert_int_equal(ap_io_open_memory(data, size, &io, &error), AP_OK);
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);

  ap_output_t *output = NULL;
  assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);
  ap_rendition_spec_t spec;
  ap_rendition_spec_init(&spec);
  spec.codec = codec;
  /* The damaged stream made libmp3lame abort at 64 kb/s. The lossless
   * codecs take no bit rate. */
  spec.bitrate =
      codec == AP_RENDITION_FLAC || codec == AP_RENDITION_WAV ? 0 : 64000;
  spec.output = output;
  ap_sink_t *sink = NULL;
  assert_int_equal(ap_rendition_sink_create(&spec, 0.0, &sink, &error), AP_OK);

  *peak = 0.0f;
  const ap_stream_format_t *format = ap_decoder_format(decoder);
  ap_status_t status = sink->ops->start(sink, format, &error);
  while (status == AP_OK) {
    const float *const *planes = NULL;
    int count = 0;
    status = ap_decoder_read(decoder, &planes, &count, &error);
    if (status != AP_OK || count == 0) {
      break;
    }
    for (int c = 0; c < format->channels; c++) {
      for (int i = 0; i < count; i++) {
        float magnitude = fabsf(planes[c][i]);
        *peak = magnitude > *peak ? magnitude : *peak;
      }
    }
    status = sink->ops->write(sink, planes, count, &error);
  }
  if (status == AP_OK) {
    status = sink->ops->finish(sink, &error);
  }
  *bytes = ap_rendition_sink_bytes(sink);

  sink->ops->destroy(sink);
  ap_output_close(output);
  ap_decoder_close(decoder);
  ap_io_close(io);
  return status;
}

static void damaged_aac_to_every_codec(void **state) {
  (void)state;
  static const ap_rendition_codec_t codecs[] = {
      AP_RENDITION_MP3, AP_RENDITION_OPUS, AP_RENDITION_AAC, AP_RENDITION_FLAC,
      AP_RENDITION_WAV};
  size_t size = 0;
  unsigned char *data = damaged_aac(&size);
  for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
    float peak = 0.0f;
    int64_t bytes = 0;
    ap_status_t status = render(data, size, codecs[i], &peak, &bytes);
    assert_int_equal(status, AP_OK);
    assert_true(bytes > 0);
    /* The input is as hostile as intended: far over full scale. */
    assert_true(peak > 1000.0f);
  }
  free(data);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(damaged_aac_to_every_codec),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
