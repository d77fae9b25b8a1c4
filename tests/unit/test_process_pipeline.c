/*
 * Tests for the fan-out of decoded blocks (process/pipeline.h) with a
 * synthetic source and test-only sinks: identical results inline and on
 * worker threads, the first failure stops the pass, cancellation from the
 * progress callback, and back-pressure from a slow sink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/error_internal.h"
#include "process/pipeline.h"

/* Blocks queued per worker in pipeline.c. */
#define QUEUE_CAPACITY 16

/* A deterministic planar signal in blocks of up to 4096 frames. */
typedef struct test_source {
  int channels;
  int64_t total_frames;
  int64_t position;
  atomic_int blocks_read;
  float *planes[8];
  const float *const_planes[8];
  int fail_at_block; /* -1: never */
} test_source_t;

static ap_status_t test_source_read(void *user_data,
                                    const float *const **planes, int *frames,
                                    ap_error_t *error) {
  test_source_t *source = user_data;
  int block = atomic_load(&source->blocks_read);
  if (block == source->fail_at_block) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                        "test source: corrupt block %d", block);
  }

  int64_t left = source->total_frames - source->position;
  /* Vary the block size so partial blocks are exercised. */
  int count = block % 3 == 2 ? 1000 : AP_SINK_MAX_BLOCK_FRAMES;
  if (left < count) {
    count = (int)left;
  }
  for (int c = 0; c < source->channels; c++) {
    for (int i = 0; i < count; i++) {
      int64_t frame = source->position + i;
      source->planes[c][i] =
          (float)((frame * 7 + c * 13) % 2001 - 1000) / 1000.0f;
    }
    source->const_planes[c] = source->planes[c];
  }
  source->position += count;
  *planes = source->const_planes;
  *frames = count;
  if (count > 0) {
    atomic_fetch_add(&source->blocks_read, 1);
  }
  return AP_OK;
}

static double test_source_progress(void *user_data) {
  test_source_t *source = user_data;
  return (double)source->position / (double)source->total_frames;
}

static test_source_t *test_source_create(int channels, int64_t frames) {
  test_source_t *source = calloc(1, sizeof *source);
  assert_non_null(source);
  source->channels = channels;
  source->total_frames = frames;
  source->fail_at_block = -1;
  for (int c = 0; c < channels; c++) {
    source->planes[c] = calloc(AP_SINK_MAX_BLOCK_FRAMES, sizeof(float));
    assert_non_null(source->planes[c]);
  }
  return source;
}

static void test_source_free(test_source_t *source) {
  for (int c = 0; c < source->channels; c++) {
    free(source->planes[c]);
  }
  free(source);
}

static ap_block_source_t block_source(test_source_t *source) {
  ap_block_source_t block_source = {
      .read = test_source_read,
      .progress = test_source_progress,
      .user_data = source,
  };
  return block_source;
}

/* A sink that checksums what it receives. */
typedef struct test_sink {
  ap_sink_t base;
  int channels;
  int started;
  int finished;
  int64_t frames;
  double checksum;
  int fail_at_block; /* -1: never */
  int fail_in_finish;
  int blocks;
  unsigned delay_microseconds; /* per block, to make a slow sink */
  test_source_t *source;       /* for the back-pressure check */
  int max_lead;                /* blocks read ahead of this sink */
} test_sink_t;

static ap_status_t test_sink_start(ap_sink_t *base,
                                   const ap_stream_format_t *format,
                                   ap_error_t *error) {
  (void)error;
  test_sink_t *sink = (test_sink_t *)base;
  sink->channels = format->channels;
  sink->started++;
  return AP_OK;
}

static ap_status_t test_sink_write(ap_sink_t *base, const float *const *planes,
                                   int frames, ap_error_t *error) {
  test_sink_t *sink = (test_sink_t *)base;
  if (sink->blocks == sink->fail_at_block) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_ENCODE,
                        "disk full at block %d", sink->blocks);
  }
  if (sink->delay_microseconds) {
    struct timespec pause = {0, (long)sink->delay_microseconds * 1000};
    nanosleep(&pause, NULL);
  }
  if (sink->source) {
    int lead = atomic_load(&sink->source->blocks_read) - sink->blocks;
    if (lead > sink->max_lead) {
      sink->max_lead = lead;
    }
  }
  for (int c = 0; c < sink->channels; c++) {
    for (int i = 0; i < frames; i++) {
      sink->checksum += planes[c][i] * (double)((sink->frames + i) % 97 + c);
    }
  }
  sink->frames += frames;
  sink->blocks++;
  return AP_OK;
}

static ap_status_t test_sink_finish(ap_sink_t *base, ap_error_t *error) {
  test_sink_t *sink = (test_sink_t *)base;
  if (sink->fail_in_finish) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_ENCODE, "flush failed");
  }
  sink->finished++;
  return AP_OK;
}

static void test_sink_destroy(ap_sink_t *base) { (void)base; }

static const ap_sink_ops_t test_sink_ops = {
    .name = "test",
    .start = test_sink_start,
    .write = test_sink_write,
    .finish = test_sink_finish,
    .destroy = test_sink_destroy,
};

static void test_sink_init(test_sink_t *sink, int wants_thread) {
  memset(sink, 0, sizeof *sink);
  sink->base.ops = &test_sink_ops;
  sink->base.wants_thread = wants_thread;
  sink->fail_at_block = -1;
}

#define SINK_COUNT 4

typedef struct fan_out_result {
  double checksums[SINK_COUNT];
  int64_t frames[SINK_COUNT];
  int finished[SINK_COUNT];
  int worker_threads;
} fan_out_result_t;

static fan_out_result_t run_fan_out(int max_threads) {
  test_source_t *source = test_source_create(2, 123457);
  ap_block_source_t input = block_source(source);
  ap_stream_format_t format = {
      .sample_rate = 48000, .channels = 2, .expected_frames = 123457};

  test_sink_t sinks[SINK_COUNT];
  ap_pipeline_sink_t entries[SINK_COUNT];
  for (int i = 0; i < SINK_COUNT; i++) {
    /* Sink 0 runs inline; the others ask for a thread. */
    test_sink_init(&sinks[i], i != 0);
    entries[i] = (ap_pipeline_sink_t){.sink = &sinks[i].base, .label = "test"};
  }

  ap_pipeline_options_t options = {
      .max_threads = max_threads, .stage = "decode", .progress_end = 1.0};
  ap_pipeline_stats_t stats;
  ap_error_t error = {0};
  assert_int_equal(ap_pipeline_run(&input, &format, entries, SINK_COUNT,
                                   &options, &stats, &error),
                   AP_OK);
  assert_int_equal(stats.frames, 123457);

  fan_out_result_t result = {.worker_threads = stats.worker_threads};
  for (int i = 0; i < SINK_COUNT; i++) {
    result.checksums[i] = sinks[i].checksum;
    result.frames[i] = sinks[i].frames;
    result.finished[i] = sinks[i].finished;
    assert_int_equal(sinks[i].started, 1);
  }
  test_source_free(source);
  return result;
}

static void fan_out_matches_across_threads(void **state) {
  (void)state;
  fan_out_result_t inline_run = run_fan_out(1);
  fan_out_result_t two = run_fan_out(2);
  fan_out_result_t many = run_fan_out(8);
  fan_out_result_t automatic = run_fan_out(0);

  assert_int_equal(inline_run.worker_threads, 0);
  assert_int_equal(two.worker_threads, 1);
  assert_int_equal(many.worker_threads, 3);
  assert_true(automatic.worker_threads >= 1);
  for (int i = 0; i < SINK_COUNT; i++) {
    assert_int_equal(inline_run.frames[i], 123457);
    assert_int_equal(inline_run.finished[i], 1);
    assert_int_equal(two.finished[i], 1);
    assert_int_equal(many.finished[i], 1);
    assert_int_equal(automatic.finished[i], 1);
    assert_int_equal(two.frames[i], 123457);
    assert_int_equal(many.frames[i], 123457);
    assert_int_equal(automatic.frames[i], 123457);
    /* The same blocks in the same order give bit-identical sums. */
    assert_true(inline_run.checksums[i] == two.checksums[i]);
    assert_true(inline_run.checksums[i] == many.checksums[i]);
    assert_true(inline_run.checksums[i] == automatic.checksums[i]);
  }
  assert_true(inline_run.checksums[1] == inline_run.checksums[0]);
}

/* Runs four sinks where sink `failing` fails at block 5 (or in finish). */
static void check_failing_sink(int max_threads, int failing,
                               int fail_in_finish) {
  test_source_t *source = test_source_create(1, 48000 * 600);
  ap_block_source_t input = block_source(source);
  ap_stream_format_t format = {.sample_rate = 48000, .channels = 1};

  test_sink_t sinks[SINK_COUNT];
  ap_pipeline_sink_t entries[SINK_COUNT];
  const char *labels[SINK_COUNT] = {"waveform 0", "analysis",
                                    "rendition opus_64k", "rendition mp3"};
  for (int i = 0; i < SINK_COUNT; i++) {
    test_sink_init(&sinks[i], i != 0);
    entries[i] =
        (ap_pipeline_sink_t){.sink = &sinks[i].base, .label = labels[i]};
  }
  if (fail_in_finish) {
    sinks[failing].fail_in_finish = 1;
  } else {
    sinks[failing].fail_at_block = 5;
  }

  ap_pipeline_options_t options = {
      .max_threads = max_threads, .stage = "decode", .progress_end = 1.0};
  ap_error_t error = {0};
  assert_int_equal(ap_pipeline_run(&input, &format, entries, SINK_COUNT,
                                   &options, NULL, &error),
                   AP_ERR_ENCODE);
  assert_int_equal(error.code, AP_ERR_ENCODE);

  char expected[128];
  snprintf(expected, sizeof expected, "%s: %s", labels[failing],
           fail_in_finish ? "flush failed" : "disk full at block 5");
  assert_string_equal(error.message, expected);

  if (!fail_in_finish) {
    /* The reader stopped long before the 600 s source ended, and no sink
     * was finished. */
    assert_true(source->position < source->total_frames / 10);
    for (int i = 0; i < SINK_COUNT; i++) {
      assert_int_equal(sinks[i].finished, 0);
    }
  }
  test_source_free(source);
}

static void failing_sink_stops_inline(void **state) {
  (void)state;
  check_failing_sink(1, 2, 0);
  check_failing_sink(1, 0, 0);
  check_failing_sink(1, 3, 1);
}

static void failing_sink_stops_threads(void **state) {
  (void)state;
  check_failing_sink(0, 2, 0);
  check_failing_sink(4, 2, 0);
  check_failing_sink(4, 0, 0);
  check_failing_sink(2, 1, 0);
  check_failing_sink(4, 3, 1);
}

static void source_error_is_returned(void **state) {
  (void)state;
  test_source_t *source = test_source_create(1, 48000 * 60);
  source->fail_at_block = 3;
  ap_block_source_t input = block_source(source);
  ap_stream_format_t format = {.sample_rate = 48000, .channels = 1};
  test_sink_t sink;
  test_sink_init(&sink, 1);
  ap_pipeline_sink_t entry = {.sink = &sink.base, .label = "analysis"};
  ap_pipeline_options_t options = {
      .max_threads = 0, .stage = "decode", .progress_end = 1.0};
  ap_error_t error = {0};

  assert_int_equal(
      ap_pipeline_run(&input, &format, &entry, 1, &options, NULL, &error),
      AP_ERR_CORRUPT_INPUT);
  assert_string_equal(error.message, "test source: corrupt block 3");
  assert_int_equal(sink.finished, 0);
  test_source_free(source);
}

typedef struct progress_log {
  int calls;
  int cancel_after; /* 0: never */
  double last;
  int decreased;
} progress_log_t;

static int log_progress(void *user_data, double fraction, const char *stage) {
  progress_log_t *log = user_data;
  assert_string_equal(stage, "decode");
  if (fraction < log->last) {
    log->decreased = 1;
  }
  log->last = fraction;
  log->calls++;
  return log->cancel_after > 0 && log->calls >= log->cancel_after;
}

static void progress_callback_cancels(void **state) {
  (void)state;
  for (int max_threads = 0; max_threads <= 1; max_threads++) {
    /* 10 hours of mono: long enough that only cancellation ends it. */
    test_source_t *source = test_source_create(1, 48000LL * 36000);
    ap_block_source_t input = block_source(source);
    ap_stream_format_t format = {.sample_rate = 48000, .channels = 1};
    test_sink_t sinks[2];
    test_sink_init(&sinks[0], 0);
    test_sink_init(&sinks[1], 1);
    ap_pipeline_sink_t entries[2] = {
        {.sink = &sinks[0].base, .label = "waveform 0"},
        {.sink = &sinks[1].base, .label = "analysis"},
    };

    progress_log_t log = {.cancel_after = 3};
    ap_progress_t progress;
    ap_progress_init(&progress, log_progress, &log);
    ap_pipeline_options_t options = {.max_threads = max_threads,
                                     .progress = &progress,
                                     .stage = "decode",
                                     .progress_end = 1.0};
    ap_error_t error = {0};

    assert_int_equal(
        ap_pipeline_run(&input, &format, entries, 2, &options, NULL, &error),
        AP_ERR_CANCELLED);
    assert_int_equal(log.calls, 3);
    assert_false(log.decreased);
    assert_non_null(strstr(error.message, "cancelled"));
    assert_true(source->position < source->total_frames / 2);
    assert_int_equal(sinks[0].finished, 0);
    assert_int_equal(sinks[1].finished, 0);
    test_source_free(source);
  }
}

static void progress_is_rate_limited(void **state) {
  (void)state;
  progress_log_t log = {0};
  ap_progress_t progress;
  ap_progress_init(&progress, log_progress, &log);

  assert_int_equal(ap_progress_report(&progress, 0.1, "decode", 1), 0);
  /* Immediately after a call, unforced reports are skipped. */
  assert_int_equal(ap_progress_report(&progress, 0.2, "decode", 0), 0);
  assert_int_equal(log.calls, 1);
  /* A lower fraction is raised to the last one reported. */
  assert_int_equal(ap_progress_report(&progress, 0.05, "decode", 1), 0);
  assert_int_equal(log.calls, 2);
  assert_float_equal(log.last, 0.1, 0.0);
  assert_int_equal(ap_progress_report(&progress, 7.0, "decode", 1), 0);
  assert_float_equal(log.last, 1.0, 0.0);
  assert_false(log.decreased);
}

static void slow_sink_holds_reader_back(void **state) {
  (void)state;
  test_source_t *source = test_source_create(2, 48000 * 20);
  ap_block_source_t input = block_source(source);
  ap_stream_format_t format = {.sample_rate = 48000, .channels = 2};
  test_sink_t sinks[2];
  test_sink_init(&sinks[0], 1);
  test_sink_init(&sinks[1], 1);
  sinks[1].delay_microseconds = 500;
  sinks[1].source = source;
  ap_pipeline_sink_t entries[2] = {
      {.sink = &sinks[0].base, .label = "analysis"},
      {.sink = &sinks[1].base, .label = "rendition slow"},
  };
  ap_pipeline_options_t options = {
      .max_threads = 3, .stage = "decode", .progress_end = 1.0};
  ap_error_t error = {0};

  assert_int_equal(
      ap_pipeline_run(&input, &format, entries, 2, &options, NULL, &error),
      AP_OK);
  /* The reader can be ahead by the queue, the block being copied and the
   * block being written, never by the whole input. */
  assert_true(sinks[1].max_lead <= QUEUE_CAPACITY + 2);
  assert_true(sinks[1].blocks > 10 * (QUEUE_CAPACITY + 2));
  assert_int_equal(sinks[1].frames, 48000 * 20);
  test_source_free(source);
}

static ap_status_t failing_start(ap_sink_t *base,
                                 const ap_stream_format_t *format,
                                 ap_error_t *error) {
  (void)base;
  return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_UNSUPPORTED,
                      "cannot encode %d channels", format->channels);
}

static void start_failure_names_sink(void **state) {
  (void)state;
  test_source_t *source = test_source_create(2, 48000);
  ap_block_source_t input = block_source(source);
  ap_stream_format_t format = {.sample_rate = 48000, .channels = 2};
  ap_sink_ops_t ops = test_sink_ops;
  ops.start = failing_start;
  test_sink_t sinks[2];
  test_sink_init(&sinks[0], 1);
  test_sink_init(&sinks[1], 1);
  sinks[1].base.ops = &ops;
  ap_pipeline_sink_t entries[2] = {
      {.sink = &sinks[0].base, .label = "analysis"},
      {.sink = &sinks[1].base, .label = "rendition aac_128k"},
  };
  ap_pipeline_options_t options = {
      .max_threads = 0, .stage = "decode", .progress_end = 1.0};
  ap_error_t error = {0};

  assert_int_equal(
      ap_pipeline_run(&input, &format, entries, 2, &options, NULL, &error),
      AP_ERR_UNSUPPORTED);
  assert_string_equal(error.message,
                      "rendition aac_128k: cannot encode 2 channels");
  assert_int_equal(source->position, 0);
  test_source_free(source);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fan_out_matches_across_threads),
      cmocka_unit_test(failing_sink_stops_inline),
      cmocka_unit_test(failing_sink_stops_threads),
      cmocka_unit_test(source_error_is_returned),
      cmocka_unit_test(progress_callback_cancels),
      cmocka_unit_test(progress_is_rate_limited),
      cmocka_unit_test(slow_sink_holds_reader_back),
      cmocka_unit_test(start_failure_names_sink),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
