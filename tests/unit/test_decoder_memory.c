/* Tests that the decoder's memory does not grow with input length: a
 * one-hour MP3, generated with the ffmpeg command-line tool in TMPDIR,
 * decodes within a few MiB of buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include <audiopipe/probe.h>

#include "probe/decoder.h"

/* Sanitizer builds keep freed memory in quarantine, so resident size does not
 * measure the decoder there. The decode itself still runs. */
#if defined(__SANITIZE_ADDRESS__)
#define MEASURE_RSS 0
#else
#define MEASURE_RSS 1
#endif

#define HOUR_FRAMES (3600LL * 8000)

static long max_rss_kib(void) {
  struct rusage usage;
  assert_int_equal(getrusage(RUSAGE_SELF, &usage), 0);
  return usage.ru_maxrss;
}

static void decoder_memory_flat_on_hour(void **state) {
  (void)state;
  const char *directory = getenv("TMPDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/decoder_memory_hour.mp3",
           directory && directory[0] ? directory : "/tmp");

  /* 8 kHz mono keeps the encode short; the frame count (MPEG-2.5, 576
   * samples per frame) is what matters, not the bit rate. */
  char command[8192];
  snprintf(command, sizeof command,
           "ffmpeg -nostdin -v error -y -f lavfi -i "
           "\"sine=frequency=440:sample_rate=8000:duration=3600\" -ac 1 "
           "-c:a libmp3lame -b:a 16k -compression_level 9 \"%s\"",
           path);
  if (system(command) != 0) {
    fail_msg("ffmpeg could not generate %s", path);
  }

  ap_io_t *io = NULL;
  ap_decoder_t *decoder = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(path, &io, &error), AP_OK);
  assert_int_equal(ap_decoder_open(io, NULL, &decoder, &error), AP_OK);
  assert_int_equal(ap_decoder_format(decoder)->expected_frames, HOUR_FRAMES);

  /* Warm up: the first minute allocates every buffer the decoder needs. */
  int64_t frames = 0;
  const float *const *planes = NULL;
  int count = 0;
  while (frames < 60 * 8000) {
    assert_int_equal(ap_decoder_read(decoder, &planes, &count, &error), AP_OK);
    assert_true(count > 0);
    frames += count;
  }
  long warm = max_rss_kib();

  for (;;) {
    assert_int_equal(ap_decoder_read(decoder, &planes, &count, &error), AP_OK);
    if (count == 0) {
      break;
    }
    frames += count;
  }
  long end = max_rss_kib();
  assert_int_equal(frames, HOUR_FRAMES);
  if (MEASURE_RSS && end - warm > 4096) {
    fail_msg("resident size grew by %ld KiB over the hour", end - warm);
  }

  ap_decoder_close(decoder);
  ap_io_close(io);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decoder_memory_flat_on_hour),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
