/*
 * Tests for ap_process on real files: results on one and several threads,
 * a failing output, cancellation, progress, JSON, option checks and
 * loudness normalisation (re-measured on the normalised WAV rendition).
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
#include <json-c/json.h>

#include <audiopipe/process.h>

#include "process/process_internal.h"

#define CASES AP_TEST_DATA_DIR "/cases/"

static ap_io_t *open_input(const char *path) {
  ap_io_t *input = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file(path, &input, &error), AP_OK);
  return input;
}

static ap_output_t *open_memory_output(void) {
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);
  return output;
}

/* A callback output that records how it was closed. */
typedef struct recording_output {
  size_t bytes;
  int fail_writes_after; /* bytes; 0 never fails */
  int closed;
  int failed; /* the `failed` argument of close */
} recording_output_t;

static int recording_write(void *user_data, const void *data, size_t size,
                           ap_error_t *error) {
  (void)data;
  (void)error;
  recording_output_t *recording = user_data;
  if (recording->fail_writes_after > 0 &&
      recording->bytes + size > (size_t)recording->fail_writes_after) {
    return -1;
  }
  recording->bytes += size;
  return 0;
}

static int recording_close(void *user_data, int failed, ap_error_t *error) {
  (void)error;
  recording_output_t *recording = user_data;
  recording->closed++;
  recording->failed = failed;
  return 0;
}

static ap_output_t *open_recording_output(recording_output_t *recording) {
  ap_output_callbacks_t callbacks = {
      .struct_size = sizeof callbacks,
      .write = recording_write,
      .close = recording_close,
  };
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_output_open_callbacks(&callbacks, recording, &output, &error), AP_OK);
  return output;
}

static ap_rendition_spec_t wav_spec(ap_output_t *output) {
  ap_rendition_spec_t spec;
  ap_rendition_spec_init(&spec);
  spec.codec = AP_RENDITION_WAV;
  spec.output = output;
  return spec;
}

static ap_waveform_spec_t waveform_spec(ap_output_t *output) {
  ap_waveform_spec_t spec;
  ap_waveform_spec_init(&spec);
  spec.output = output;
  return spec;
}

/* One run of case-03 with a WAV rendition and a waveform. */
typedef struct threaded_run {
  unsigned char *rendition;
  size_t rendition_size;
  unsigned char *waveform;
  size_t waveform_size;
  double lufs;
  double true_peak;
  double range;
  int64_t frames;
} threaded_run_t;

static threaded_run_t run_with_threads(int max_threads) {
  ap_io_t *input = open_input(CASES "case-03.mp3");
  ap_output_t *rendition_output = open_memory_output();
  ap_output_t *waveform_output = open_memory_output();
  ap_rendition_spec_t rendition = wav_spec(rendition_output);
  ap_waveform_spec_t waveform = waveform_spec(waveform_output);

  ap_process_options_t options;
  ap_process_options_init(&options);
  options.max_threads = max_threads;
  options.renditions = &rendition;
  options.rendition_count = 1;
  options.waveforms = &waveform;
  options.waveform_count = 1;

  ap_process_result_t *result = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_process(input, &options, &result, &error), AP_OK);

  threaded_run_t run = {0};
  const void *data =
      ap_output_memory_data(rendition_output, &run.rendition_size);
  run.rendition = malloc(run.rendition_size);
  assert_non_null(run.rendition);
  memcpy(run.rendition, data, run.rendition_size);
  data = ap_output_memory_data(waveform_output, &run.waveform_size);
  run.waveform = malloc(run.waveform_size);
  assert_non_null(run.waveform);
  memcpy(run.waveform, data, run.waveform_size);

  const ap_analysis_t *analysis = ap_process_result_analysis(result);
  assert_true(ap_analysis_integrated_lufs(analysis, &run.lufs));
  run.true_peak = ap_analysis_true_peak_dbtp(analysis);
  assert_true(ap_analysis_loudness_range(analysis, &run.range));
  run.frames = ap_process_result_decoded_frames(result);
  assert_true(run.rendition_size > 44);
  assert_true(run.waveform_size > 24);
  assert_int_equal(ap_process_result_rendition_bytes(result, 0),
                   (int64_t)run.rendition_size);

  ap_process_result_free(result);
  ap_output_close(rendition_output);
  ap_output_close(waveform_output);
  ap_io_close(input);
  return run;
}

static void threads_give_identical_results(void **state) {
  (void)state;
  threaded_run_t inline_run = run_with_threads(1);
  threaded_run_t two = run_with_threads(2);
  threaded_run_t automatic = run_with_threads(0);
  threaded_run_t *runs[2] = {&two, &automatic};

  /* case-03 is 5.000 s at 44.1 kHz after the LAME delay and padding. */
  assert_int_equal(inline_run.frames, 220500);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(runs[i]->frames, inline_run.frames);
    assert_int_equal(runs[i]->rendition_size, inline_run.rendition_size);
    assert_memory_equal(runs[i]->rendition, inline_run.rendition,
                        inline_run.rendition_size);
    assert_int_equal(runs[i]->waveform_size, inline_run.waveform_size);
    assert_memory_equal(runs[i]->waveform, inline_run.waveform,
                        inline_run.waveform_size);
    assert_true(runs[i]->lufs == inline_run.lufs);
    assert_true(runs[i]->true_peak == inline_run.true_peak);
    assert_true(runs[i]->range == inline_run.range);
  }

  threaded_run_t *all[3] = {&inline_run, &two, &automatic};
  for (int i = 0; i < 3; i++) {
    free(all[i]->rendition);
    free(all[i]->waveform);
  }
}

static void failing_output_stops_with_context(void **state) {
  (void)state;
  for (int max_threads = 0; max_threads <= 1; max_threads++) {
    ap_io_t *input = open_input(CASES "case-09.wav");
    recording_output_t failing = {.fail_writes_after = 1000};
    recording_output_t waveform_recording = {0};
    ap_output_t *rendition_output = open_recording_output(&failing);
    ap_output_t *waveform_output = open_recording_output(&waveform_recording);
    ap_rendition_spec_t rendition = wav_spec(rendition_output);
    rendition.codec = AP_RENDITION_FLAC;
    ap_waveform_spec_t waveform = waveform_spec(waveform_output);

    ap_process_options_t options;
    ap_process_options_init(&options);
    options.max_threads = max_threads;
    options.renditions = &rendition;
    options.rendition_count = 1;
    options.waveforms = &waveform;
    options.waveform_count = 1;

    ap_process_result_t *result = NULL;
    ap_error_t error = {0};
    assert_int_not_equal(ap_process(input, &options, &result, &error), AP_OK);
    assert_null(result);
    assert_true(strncmp(error.message, "rendition flac_16bit: ", 22) == 0);

    /* Nothing was finished: closing abandons both outputs. */
    assert_int_equal(waveform_recording.closed, 0);
    ap_output_close(rendition_output);
    ap_output_close(waveform_output);
    assert_int_equal(failing.closed, 1);
    assert_int_equal(failing.failed, 1);
    assert_int_equal(waveform_recording.closed, 1);
    assert_int_equal(waveform_recording.failed, 1);
    ap_io_close(input);
  }
}

typedef struct progress_log {
  int calls;
  int cancel_at_call; /* 0: never */
  double last;
  int decreased;
  int measure_calls;
  int after_measure_decode_calls;
  const char *last_stage;
} progress_log_t;

static int log_progress(void *user_data, double fraction, const char *stage) {
  progress_log_t *log = user_data;
  if (fraction < log->last) {
    log->decreased = 1;
  }
  log->last = fraction;
  log->calls++;
  log->last_stage = stage;
  if (strcmp(stage, "measure") == 0) {
    log->measure_calls++;
  } else if (log->measure_calls > 0 && strcmp(stage, "decode") == 0) {
    log->after_measure_decode_calls++;
  }
  return log->cancel_at_call > 0 && log->calls >= log->cancel_at_call;
}

static void cancel_leaves_outputs_unfinished(void **state) {
  (void)state;
  for (int max_threads = 0; max_threads <= 1; max_threads++) {
    ap_io_t *input = open_input(CASES "case-09.wav");
    recording_output_t rendition_recording = {0};
    recording_output_t waveform_recording = {0};
    ap_output_t *rendition_output = open_recording_output(&rendition_recording);
    ap_output_t *waveform_output = open_recording_output(&waveform_recording);
    ap_rendition_spec_t rendition = wav_spec(rendition_output);
    ap_waveform_spec_t waveform = waveform_spec(waveform_output);

    progress_log_t log = {.cancel_at_call = 2};
    ap_process_options_t options;
    ap_process_options_init(&options);
    options.max_threads = max_threads;
    options.renditions = &rendition;
    options.rendition_count = 1;
    options.waveforms = &waveform;
    options.waveform_count = 1;
    options.progress = log_progress;
    options.progress_user_data = &log;

    ap_process_result_t *result = NULL;
    ap_error_t error = {0};
    assert_int_equal(ap_process(input, &options, &result, &error),
                     AP_ERR_CANCELLED);
    assert_int_equal(error.code, AP_ERR_CANCELLED);
    assert_null(result);
    /* The second call cancels; no call follows it. */
    assert_int_equal(log.calls, 2);

    ap_output_close(rendition_output);
    ap_output_close(waveform_output);
    assert_int_equal(rendition_recording.closed, 1);
    assert_int_equal(rendition_recording.failed, 1);
    assert_int_equal(waveform_recording.closed, 1);
    assert_int_equal(waveform_recording.failed, 1);
    ap_io_close(input);
  }
}

static void progress_rises_to_one(void **state) {
  (void)state;
  ap_io_t *input = open_input(CASES "case-01.webm");
  progress_log_t log = {0};
  ap_process_options_t options;
  ap_process_options_init(&options);
  options.progress = log_progress;
  options.progress_user_data = &log;

  ap_process_result_t *result = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_process(input, &options, &result, &error), AP_OK);
  assert_true(log.calls >= 2);
  assert_false(log.decreased);
  assert_float_equal(log.last, 1.0, 0.0);
  assert_string_equal(log.last_stage, "decode");
  assert_int_equal(log.measure_calls, 0);

  ap_process_result_free(result);
  ap_io_close(input);
}

/* Returns the parsed JSON of a result; the caller puts it. */
static json_object *result_json(const ap_process_result_t *result) {
  char *text = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_process_result_to_json(result, &text, &error), AP_OK);
  json_object *root = json_tokener_parse(text);
  assert_non_null(root);
  ap_free(text);
  return root;
}

static json_object *member(json_object *object, const char *key) {
  json_object *value = NULL;
  assert_true(json_object_object_get_ex(object, key, &value));
  return value;
}

static void json_has_null_for_short_clip(void **state) {
  (void)state;
  ap_io_t *input = open_input(CASES "case-18.wav");
  ap_process_options_t options;
  ap_process_options_init(&options);
  ap_process_result_t *result = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_process(input, &options, &result, &error), AP_OK);

  json_object *root = result_json(result);
  json_object *analysis = member(root, "analysis");
  assert_null(member(analysis, "integrated_lufs"));
  assert_string_equal(json_object_get_string(
                          member(analysis, "integrated_lufs_undefined_reason")),
                      "too_short");
  assert_null(member(analysis, "loudness_range_lu"));
  json_object *true_peak = member(analysis, "true_peak_dbtp");
  assert_non_null(true_peak);
  assert_float_equal(json_object_get_double(true_peak), -5.9, 0.1);
  assert_null(member(analysis, "true_peak_dbtp_undefined_reason"));
  assert_int_equal(json_object_get_int64(member(root, "decoded_frames")),
                   13728);
  assert_string_equal(
      json_object_get_string(member(analysis, "mono_convention")),
      "single_channel");
  json_object *media = member(root, "media");
  assert_true(json_object_is_type(media, json_type_object));
  json_object *timings = member(root, "timings");
  assert_true(json_object_get_double(member(timings, "total_seconds")) >= 0.0);
  assert_true(json_object_is_type(member(timings, "stages"), json_type_array));

  json_object_put(root);
  ap_process_result_free(result);
  ap_io_close(input);
}

/* Writes a 16-bit PCM WAV header for `frames` mono frames at 48 kHz. */
static size_t make_silent_wav(unsigned char *buffer, uint32_t frames) {
  uint32_t data_bytes = frames * 2;
  unsigned char header[44] = "RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0"
                             "\x80\xbb\0\0\0\x77\x01\0\x02\0\x10\0data";
  uint32_t riff_size = 36 + data_bytes;
  memcpy(header + 4, &riff_size, 4);
  memcpy(buffer, header, 40);
  memcpy(buffer + 40, &data_bytes, 4);
  memset(buffer + 44, 0, data_bytes);
  return 44 + data_bytes;
}

static void json_has_null_for_silence(void **state) {
  (void)state;
  uint32_t frames = 48000 * 2;
  unsigned char *wav = malloc(44 + frames * 2);
  assert_non_null(wav);
  size_t size = make_silent_wav(wav, frames);
  ap_io_t *input = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_memory(wav, size, &input, &error), AP_OK);

  ap_process_options_t options;
  ap_process_options_init(&options);
  ap_process_result_t *result = NULL;
  assert_int_equal(ap_process(input, &options, &result, &error), AP_OK);

  json_object *root = result_json(result);
  json_object *analysis = member(root, "analysis");
  assert_null(member(analysis, "integrated_lufs"));
  assert_string_equal(json_object_get_string(
                          member(analysis, "integrated_lufs_undefined_reason")),
                      "below_absolute_gate");
  assert_null(member(analysis, "true_peak_dbtp"));
  assert_string_equal(json_object_get_string(
                          member(analysis, "true_peak_dbtp_undefined_reason")),
                      "digital_silence");
  assert_null(member(analysis, "sample_peak_dbfs"));
  assert_null(member(analysis, "rms_dbfs"));
  assert_float_equal(
      json_object_get_double(member(analysis, "leading_silence_seconds")), 2.0,
      1e-9);

  json_object_put(root);
  ap_process_result_free(result);
  ap_io_close(input);
  free(wav);
}

static void invalid_options_are_rejected(void **state) {
  (void)state;
  ap_io_t *input = open_input(CASES "case-19.wav");
  ap_process_options_t options;
  ap_process_result_t *result = NULL;
  ap_error_t error = {0};

  ap_process_options_init(&options);
  options.struct_size = 8;
  assert_int_equal(ap_process(input, &options, &result, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "struct_size"));

  ap_process_options_init(&options);
  options.max_threads = -1;
  assert_int_equal(ap_process(input, &options, &result, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "max_threads -1"));

  ap_process_options_init(&options);
  options.analyses = 0x80;
  assert_int_equal(ap_process(input, &options, &result, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "analyses"));

  ap_process_options_init(&options);
  ap_waveform_spec_t waveform = waveform_spec(NULL);
  options.waveforms = &waveform;
  options.waveform_count = 1;
  assert_int_equal(ap_process(input, &options, &result, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_true(strncmp(error.message, "waveform 0: ", 12) == 0);

  ap_process_options_init(&options);
  options.rendition_count = 2;
  assert_int_equal(ap_process(input, &options, &result, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "renditions is NULL"));
  assert_null(result);

  ap_process_options_init(&options);
  assert_int_equal(options.analyses, AP_ANALYZE_ALL);
  assert_int_equal(options.mono_convention, AP_LOUDNESS_MONO_SINGLE);
  assert_float_equal(options.silence_threshold_dbfs, -60.0, 0.0);
  assert_int_equal(options.max_threads, 0);
  ap_io_close(input);
}

/* Measures a WAV held in memory. */
static void measure_wav(const void *data, size_t size, double *lufs,
                        double *true_peak) {
  ap_io_t *input = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_memory(data, size, &input, &error), AP_OK);
  ap_process_options_t options;
  ap_process_options_init(&options);
  ap_process_result_t *result = NULL;
  assert_int_equal(ap_process(input, &options, &result, &error), AP_OK);
  assert_true(
      ap_analysis_integrated_lufs(ap_process_result_analysis(result), lufs));
  *true_peak = ap_analysis_true_peak_dbtp(ap_process_result_analysis(result));
  ap_process_result_free(result);
  ap_io_close(input);
}

/* Normalises `path` to -16 LUFS with a -1 dBTP ceiling into a WAV. */
static ap_process_result_t *
normalize_file(const char *path, ap_output_t *output, progress_log_t *log) {
  ap_io_t *input = open_input(path);
  ap_rendition_spec_t rendition = wav_spec(output);
  rendition.normalize = 1;
  rendition.target_lufs = -16.0;
  rendition.true_peak_ceiling_dbtp = -1.0;
  rendition.bits_per_sample = 24;

  ap_process_options_t options;
  ap_process_options_init(&options);
  options.renditions = &rendition;
  options.rendition_count = 1;
  options.progress = log_progress;
  options.progress_user_data = log;

  ap_process_result_t *result = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_process(input, &options, &result, &error);
  if (status != AP_OK) {
    print_message("%s\n", error.message);
  }
  assert_int_equal(status, AP_OK);
  ap_io_close(input);
  return result;
}

static void normalization_reaches_target(void **state) {
  (void)state;
  /* case-19: -26.0 LUFS, true peak -23.0 dBTP: +10 dB reaches -16 LUFS
   * with the peak at -13 dBTP, under the ceiling. */
  ap_output_t *output = open_memory_output();
  progress_log_t log = {0};
  ap_process_result_t *result =
      normalize_file(CASES "case-19.wav", output, &log);

  double gain = ap_process_result_rendition_gain_db(result, 0);
  double source_lufs;
  assert_true(ap_analysis_integrated_lufs(ap_process_result_analysis(result),
                                          &source_lufs));
  assert_float_equal(gain, -16.0 - source_lufs, 1e-9);
  assert_string_equal(ap_process_result_rendition_normalization(result, 0),
                      "target");

  size_t size = 0;
  const void *data = ap_output_memory_data(output, &size);
  double lufs, true_peak;
  measure_wav(data, size, &lufs, &true_peak);
  assert_float_equal(lufs, -16.0, 0.1);
  assert_true(true_peak <= -1.0);

  /* Two passes: "measure" up to one half, then "decode" to 1.0. */
  assert_true(log.measure_calls >= 1);
  assert_true(log.after_measure_decode_calls >= 1);
  assert_false(log.decreased);
  assert_float_equal(log.last, 1.0, 0.0);

  json_object *root = result_json(result);
  assert_int_equal(json_object_get_int(member(root, "passes")), 2);
  json_object *rendition =
      json_object_array_get_idx(member(root, "renditions"), 0);
  json_object *normalization = member(rendition, "normalization");
  assert_string_equal(json_object_get_string(member(normalization, "status")),
                      "target");
  assert_float_equal(json_object_get_double(member(rendition, "gain_db")), gain,
                     1e-6);
  json_object_put(root);

  ap_process_result_free(result);
  ap_output_close(output);
}

static void normalization_respects_ceiling(void **state) {
  (void)state;
  /* case-09: about -20.8 LUFS with a -1.8 dBTP peak: reaching -16 LUFS
   * would put the peak at +3 dBTP, so the gain stops at the ceiling. */
  ap_output_t *output = open_memory_output();
  progress_log_t log = {0};
  ap_process_result_t *result =
      normalize_file(CASES "case-09.wav", output, &log);

  const ap_analysis_t *analysis = ap_process_result_analysis(result);
  double source_lufs;
  assert_true(ap_analysis_integrated_lufs(analysis, &source_lufs));
  double source_peak = ap_analysis_true_peak_dbtp(analysis);
  double gain = ap_process_result_rendition_gain_db(result, 0);
  assert_float_equal(gain, -1.0 - source_peak, 1e-9);
  assert_true(gain < -16.0 - source_lufs);
  assert_string_equal(ap_process_result_rendition_normalization(result, 0),
                      "true_peak_ceiling");

  size_t size = 0;
  const void *data = ap_output_memory_data(output, &size);
  double lufs, true_peak;
  measure_wav(data, size, &lufs, &true_peak);
  assert_float_equal(true_peak, -1.0, 0.1);
  assert_float_equal(lufs, source_lufs + gain, 0.1);

  ap_process_result_free(result);
  ap_output_close(output);
}

static void normalization_skips_short_clip(void **state) {
  (void)state;
  ap_output_t *output = open_memory_output();
  progress_log_t log = {0};
  ap_process_result_t *result =
      normalize_file(CASES "case-18.wav", output, &log);

  assert_float_equal(ap_process_result_rendition_gain_db(result, 0), 0.0, 0.0);
  assert_string_equal(ap_process_result_rendition_normalization(result, 0),
                      "undefined_loudness");

  json_object *root = result_json(result);
  json_object *rendition =
      json_object_array_get_idx(member(root, "renditions"), 0);
  json_object *normalization = member(rendition, "normalization");
  assert_string_equal(json_object_get_string(member(normalization, "status")),
                      "undefined_loudness");
  assert_string_equal(json_object_get_string(member(normalization, "reason")),
                      "too_short");
  json_object_put(root);

  size_t size = 0;
  ap_output_memory_data(output, &size);
  assert_true(size > 44);
  ap_process_result_free(result);
  ap_output_close(output);
}

typedef struct forward_source {
  FILE *file;
} forward_source_t;

static int64_t forward_read(void *user_data, void *buffer, size_t size,
                            ap_error_t *error) {
  (void)error;
  forward_source_t *source = user_data;
  size_t count = fread(buffer, 1, size, source->file);
  return count == 0 && ferror(source->file) ? -1 : (int64_t)count;
}

static void normalization_needs_seekable_input(void **state) {
  (void)state;
  forward_source_t source = {.file = fopen(CASES "case-19.wav", "rb")};
  assert_non_null(source.file);
  ap_io_callbacks_t callbacks = {.struct_size = sizeof callbacks,
                                 .read = forward_read};
  ap_io_t *input = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_callbacks(&callbacks, &source, &input, &error),
                   AP_OK);

  recording_output_t recording = {0};
  ap_output_t *output = open_recording_output(&recording);
  ap_rendition_spec_t rendition = wav_spec(output);
  rendition.normalize = 1;
  ap_process_options_t options;
  ap_process_options_init(&options);
  options.renditions = &rendition;
  options.rendition_count = 1;

  ap_process_result_t *result = NULL;
  assert_int_equal(ap_process(input, &options, &result, &error),
                   AP_ERR_UNSUPPORTED);
  assert_non_null(strstr(error.message, "cannot seek"));
  assert_non_null(strstr(error.message, "normalize"));
  assert_int_equal(recording.bytes, 0);

  ap_output_close(output);
  ap_io_close(input);
  fclose(source.file);
}

static void split_true_peak_gives_same_analysis(void **state) {
  (void)state;
  ap_process_options_t options;
  ap_process_options_init(&options);
  double values[2][3];
  for (int split = 0; split <= 1; split++) {
    ap_io_t *input = open_input(CASES "case-01.webm");
    ap_process_tuning_t tuning = {.split_true_peak = split};
    ap_process_result_t *result = NULL;
    ap_error_t error = {0};
    assert_int_equal(
        ap_process_tuned(input, &options, &tuning, &result, &error), AP_OK);
    const ap_analysis_t *analysis = ap_process_result_analysis(result);
    assert_true(ap_analysis_integrated_lufs(analysis, &values[split][0]));
    values[split][1] = ap_analysis_true_peak_dbtp(analysis);
    values[split][2] = ap_analysis_rms_dbfs(analysis);
    ap_process_result_free(result);
    ap_io_close(input);
  }
  for (int i = 0; i < 3; i++) {
    assert_true(values[0][i] == values[1][i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(threads_give_identical_results),
      cmocka_unit_test(failing_output_stops_with_context),
      cmocka_unit_test(cancel_leaves_outputs_unfinished),
      cmocka_unit_test(progress_rises_to_one),
      cmocka_unit_test(json_has_null_for_short_clip),
      cmocka_unit_test(json_has_null_for_silence),
      cmocka_unit_test(invalid_options_are_rejected),
      cmocka_unit_test(normalization_reaches_target),
      cmocka_unit_test(normalization_respects_ceiling),
      cmocka_unit_test(normalization_skips_short_clip),
      cmocka_unit_test(normalization_needs_seekable_input),
      cmocka_unit_test(split_true_peak_gives_same_analysis),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
