/*
 * Tests for waveforms of real files. The square-step case has known peaks,
 * and the MP3's bursts show whether encoder delay is trimmed. The other
 * files are compared with min/max computed here from libsndfile's decoding
 * of WAV files and of freedesktop sounds converted with the ffmpeg binary.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <sndfile.h>

#include <audiopipe/io.h>
#include <audiopipe/limits.h>
#include <audiopipe/process.h>
#include <audiopipe/waveform.h>

#include "probe/decoder.h"
#include "waveform/waveform_sink.h"

extern char **environ;

/* Audio decoded by libsndfile: interleaved doubles in -1..1. */
typedef struct reference_audio {
  int sample_rate;
  int channels;
  int64_t frames;
  double *samples;
} reference_audio_t;

static void reference_load(const char *path, reference_audio_t *audio) {
  SF_INFO info = {0};
  SNDFILE *file = sf_open(path, SFM_READ, &info);
  if (!file) {
    fail_msg("libsndfile cannot open %s: %s", path, sf_strerror(NULL));
  }
  assert_true(info.channels > 0);
  assert_true(info.frames >= 0);
  audio->sample_rate = info.samplerate;
  audio->channels = info.channels;
  audio->samples = malloc((size_t)(info.frames > 0 ? info.frames : 1) *
                          (size_t)info.channels * sizeof(double));
  assert_non_null(audio->samples);
  audio->frames = sf_readf_double(file, audio->samples, info.frames);
  assert_int_equal(audio->frames, info.frames);
  sf_close(file);
}

/* The 16-bit value of a sample, by the rule of the waveform format. */
static int reference_int16(double sample) {
  double scaled = round(sample * 32768.0);
  if (scaled > 32767.0) {
    return 32767;
  }
  if (scaled < -32768.0) {
    return -32768;
  }
  return (int)scaled;
}

/* Min/max per pixel computed from the reference decoding: pixels x
 * output channels x 2 values, in the scale of `bits`. */
static int *reference_peaks(const reference_audio_t *audio,
                            int samples_per_pixel, int split, int bits,
                            int64_t *pixels) {
  int channels = split ? audio->channels : 1;
  *pixels = (audio->frames + samples_per_pixel - 1) / samples_per_pixel;
  int *peaks = malloc((size_t)(*pixels > 0 ? *pixels : 1) * (size_t)channels *
                      2 * sizeof(int));
  assert_non_null(peaks);

  for (int64_t pixel = 0; pixel < *pixels; pixel++) {
    int64_t first = pixel * samples_per_pixel;
    int64_t last = first + samples_per_pixel;
    if (last > audio->frames) {
      last = audio->frames;
    }
    for (int c = 0; c < channels; c++) {
      int low = 32767;
      int high = -32768;
      for (int64_t frame = first; frame < last; frame++) {
        const double *row = audio->samples + frame * audio->channels;
        int value;
        if (split) {
          value = reference_int16(row[c]);
        } else {
          int sum = 0;
          for (int k = 0; k < audio->channels; k++) {
            sum += reference_int16(row[k]);
          }
          value = sum / audio->channels;
        }
        low = value < low ? value : low;
        high = value > high ? value : high;
      }
      if (bits == 8) {
        low /= 256;
        high /= 256;
      }
      int *pair = peaks + (pixel * channels + c) * 2;
      pair[0] = low;
      pair[1] = high;
    }
  }
  return peaks;
}

/* Feeds the library's own decoding of `path` to `sink`. */
static void feed_sink(const char *path, ap_sink_t *sink) {
  ap_error_t error = {0};
  ap_io_t *input = NULL;
  assert_int_equal(ap_io_open_file(path, &input, &error), AP_OK);
  ap_limits_t limits;
  ap_limits_init(&limits);
  ap_decoder_t *decoder = NULL;
  if (ap_decoder_open(input, &limits, &decoder, &error) != AP_OK) {
    fail_msg("decoder cannot open %s: %s", path, error.message);
  }
  assert_int_equal(sink->ops->start(sink, ap_decoder_format(decoder), &error),
                   AP_OK);
  for (;;) {
    const float *const *planes = NULL;
    int frames = 0;
    if (ap_decoder_read(decoder, &planes, &frames, &error) != AP_OK) {
      fail_msg("decoding %s failed: %s", path, error.message);
    }
    if (frames == 0) {
      break;
    }
    assert_int_equal(sink->ops->write(sink, planes, frames, &error), AP_OK);
  }
  assert_int_equal(sink->ops->finish(sink, &error), AP_OK);
  ap_decoder_close(decoder);
  ap_io_close(input);
}

/* Builds the waveform of `path` and returns its bytes (free them). */
static unsigned char *build_waveform(const char *path,
                                     const ap_waveform_spec_t *spec_template,
                                     size_t *size, int *samples_per_pixel) {
  ap_error_t error = {0};
  ap_output_t *output = NULL;
  assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);
  ap_waveform_spec_t spec = *spec_template;
  spec.output = output;
  ap_sink_t *sink = NULL;
  assert_int_equal(ap_waveform_sink_create(&spec, &sink, &error), AP_OK);
  feed_sink(path, sink);
  if (samples_per_pixel) {
    *samples_per_pixel = ap_waveform_sink_samples_per_pixel(sink);
  }
  sink->ops->destroy(sink);

  const void *data = ap_output_memory_data(output, size);
  unsigned char *copy = malloc(*size + 1);
  assert_non_null(copy);
  memcpy(copy, data, *size);
  copy[*size] = '\0';
  ap_output_close(output);
  return copy;
}

static ap_waveform_spec_t spec_for(ap_waveform_format_t format, int bits,
                                   int samples_per_pixel, int pixels_per_second,
                                   int split) {
  ap_waveform_spec_t spec;
  ap_waveform_spec_init(&spec);
  spec.format = format;
  spec.bits = bits;
  spec.samples_per_pixel = samples_per_pixel;
  spec.pixels_per_second = pixels_per_second;
  spec.split_channels = split;
  return spec;
}

/* Expected case-21 peak of pixel `pixel`: four quarters of 25 pixels. */
static int case21_peak(int pixel, int bits) {
  static const int levels16[] = {32767, 20000, 1000, 0};
  static const int levels8[] = {127, 78, 3, 0};
  return bits == 8 ? levels8[pixel / 25] : levels16[pixel / 25];
}

static void case21_dat_peaks(void **state) {
  (void)state;
  for (int bits = 8; bits <= 16; bits += 8) {
    ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, bits, 441, 0, 0);
    size_t size = 0;
    unsigned char *bytes = build_waveform(AP_TEST_DATA_DIR "/cases/case-21.wav",
                                          &spec, &size, NULL);

    ap_waveform_t *waveform = NULL;
    ap_error_t error = {0};
    assert_int_equal(ap_waveform_parse_dat(bytes, size, &waveform, &error),
                     AP_OK);
    assert_int_equal(ap_waveform_version(waveform), 2);
    assert_int_equal(ap_waveform_channels(waveform), 1);
    assert_int_equal(ap_waveform_sample_rate(waveform), 44100);
    assert_int_equal(ap_waveform_samples_per_pixel(waveform), 441);
    assert_int_equal(ap_waveform_bits(waveform), bits);
    assert_int_equal(ap_waveform_length(waveform), 100);
    assert_int_equal(size, 24 + 100 * 2 * (size_t)(bits / 8));
    for (int pixel = 0; pixel < 100; pixel++) {
      int peak = case21_peak(pixel, bits);
      if (ap_waveform_min(waveform, pixel, 0) != -peak ||
          ap_waveform_max(waveform, pixel, 0) != peak) {
        fail_msg("%d-bit pixel %d: %d/%d, expected %d/%d", bits, pixel,
                 ap_waveform_min(waveform, pixel, 0),
                 ap_waveform_max(waveform, pixel, 0), -peak, peak);
      }
    }
    ap_waveform_free(waveform);
    free(bytes);
  }
}

static int json_int(json_object *object, const char *key) {
  json_object *value = NULL;
  if (!json_object_object_get_ex(object, key, &value)) {
    fail_msg("JSON key \"%s\" is missing", key);
  }
  assert_true(json_object_is_type(value, json_type_int));
  return json_object_get_int(value);
}

static void case21_json_peaks(void **state) {
  (void)state;
  const char *keys[] = {
      "version", "channels", "sample_rate", "samples_per_pixel",
      "bits",    "length",   "data"};
  for (int bits = 8; bits <= 16; bits += 8) {
    ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_JSON, bits, 441, 0, 0);
    size_t size = 0;
    char *text = (char *)build_waveform(AP_TEST_DATA_DIR "/cases/case-21.wav",
                                        &spec, &size, NULL);
    json_object *root = json_tokener_parse(text);
    assert_non_null(root);

    /* Keys in audiowaveform's order, as json-c keeps them. */
    int index = 0;
    json_object_object_foreach(root, key, value) {
      (void)value;
      assert_true(index < 7);
      assert_string_equal(key, keys[index]);
      index++;
    }
    assert_int_equal(index, 7);

    assert_int_equal(json_int(root, "version"), 2);
    assert_int_equal(json_int(root, "channels"), 1);
    assert_int_equal(json_int(root, "sample_rate"), 44100);
    assert_int_equal(json_int(root, "samples_per_pixel"), 441);
    assert_int_equal(json_int(root, "bits"), bits);
    assert_int_equal(json_int(root, "length"), 100);

    json_object *data = NULL;
    assert_true(json_object_object_get_ex(root, "data", &data));
    assert_true(json_object_is_type(data, json_type_array));
    assert_int_equal(json_object_array_length(data), 200);
    for (int pixel = 0; pixel < 100; pixel++) {
      json_object *low = json_object_array_get_idx(data, (size_t)pixel * 2);
      json_object *high =
          json_object_array_get_idx(data, (size_t)pixel * 2 + 1);
      assert_true(json_object_is_type(low, json_type_int));
      assert_true(json_object_is_type(high, json_type_int));
      int peak = case21_peak(pixel, bits);
      if (json_object_get_int(low) != -peak ||
          json_object_get_int(high) != peak) {
        fail_msg("%d-bit pixel %d: %d/%d, expected %d/%d", bits, pixel,
                 json_object_get_int(low), json_object_get_int(high), -peak,
                 peak);
      }
    }
    json_object_put(root);
    free(text);
  }
}

static void case03_bursts_on_pixels(void **state) {
  (void)state;
  ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_DAT, 16, 441, 0, 0);
  size_t size = 0;
  unsigned char *bytes =
      build_waveform(AP_TEST_DATA_DIR "/cases/case-03.mp3", &spec, &size, NULL);
  ap_waveform_t *waveform = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_waveform_parse_dat(bytes, size, &waveform, &error),
                   AP_OK);
  assert_int_equal(ap_waveform_sample_rate(waveform), 44100);
  /* 220500 frames after the delay and padding are trimmed. */
  assert_int_equal(ap_waveform_length(waveform), 500);

  /* A burst starts where the peak first rises above about -12 dBFS; the
   * bursts peak near 16000 and the gaps between them are silent. */
  int64_t onsets[8];
  int onset_count = 0;
  int previous = 0;
  for (int64_t pixel = 0; pixel < ap_waveform_length(waveform); pixel++) {
    int low = ap_waveform_min(waveform, pixel, 0);
    int high = ap_waveform_max(waveform, pixel, 0);
    int peak = -low > high ? -low : high;
    if (peak > 8000 && previous <= 8000 && onset_count < 8) {
      onsets[onset_count++] = pixel;
    }
    previous = peak;
  }
  assert_int_equal(onset_count, 4);
  for (int i = 0; i < onset_count; i++) {
    int64_t expected = 100 * (i + 1);
    if (llabs(onsets[i] - expected) > 1) {
      fail_msg("burst %d starts at pixel %lld, expected %lld +/- 1", i + 1,
               (long long)onsets[i], (long long)expected);
    }
  }
  ap_waveform_free(waveform);
  free(bytes);
}

/* Compares the sink's .dat output for `path` with the reference. */
static void compare_with_reference(const char *path,
                                   const reference_audio_t *audio,
                                   const ap_waveform_spec_t *spec) {
  size_t size = 0;
  int samples_per_pixel = 0;
  unsigned char *bytes = build_waveform(path, spec, &size, &samples_per_pixel);
  int expected_scale = spec->samples_per_pixel
                           ? spec->samples_per_pixel
                           : audio->sample_rate / spec->pixels_per_second;
  assert_int_equal(samples_per_pixel, expected_scale);

  int64_t pixels = 0;
  int *peaks = reference_peaks(audio, expected_scale, spec->split_channels,
                               spec->bits, &pixels);
  int channels = spec->split_channels ? audio->channels : 1;

  ap_waveform_t *waveform = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_waveform_parse_dat(bytes, size, &waveform, &error),
                   AP_OK);
  assert_int_equal(ap_waveform_sample_rate(waveform), audio->sample_rate);
  assert_int_equal(ap_waveform_samples_per_pixel(waveform), expected_scale);
  assert_int_equal(ap_waveform_channels(waveform), channels);
  assert_int_equal(ap_waveform_bits(waveform), spec->bits);
  if (ap_waveform_length(waveform) != pixels) {
    fail_msg("%s at %d samples per pixel: %lld pixels, expected %lld", path,
             expected_scale, (long long)ap_waveform_length(waveform),
             (long long)pixels);
  }
  for (int64_t pixel = 0; pixel < pixels; pixel++) {
    for (int c = 0; c < channels; c++) {
      const int *pair = peaks + (pixel * channels + c) * 2;
      int low = ap_waveform_min(waveform, pixel, c);
      int high = ap_waveform_max(waveform, pixel, c);
      if (low != pair[0] || high != pair[1]) {
        fail_msg("%s, %d samples per pixel, %d bits, split %d: pixel %lld "
                 "channel %d is %d/%d, expected %d/%d",
                 path, expected_scale, spec->bits, spec->split_channels,
                 (long long)pixel, c, low, high, pair[0], pair[1]);
      }
    }
  }
  ap_waveform_free(waveform);
  free(peaks);
  free(bytes);
}

/* Every scale, bit depth and channel layout for one file. */
static void compare_all_scales(const char *path) {
  reference_audio_t audio = {0};
  reference_load(path, &audio);
  const int samples_per_pixel[] = {1, 37, 256, 441, 4096};
  const int pixels_per_second[] = {7, 100, 1000};
  for (int split = 0; split <= 1; split++) {
    for (int bits = 8; bits <= 16; bits += 8) {
      for (size_t i = 0; i < sizeof samples_per_pixel / sizeof(int); i++) {
        ap_waveform_spec_t spec =
            spec_for(AP_WAVEFORM_DAT, bits, samples_per_pixel[i], 0, split);
        compare_with_reference(path, &audio, &spec);
      }
      for (size_t i = 0; i < sizeof pixels_per_second / sizeof(int); i++) {
        if (pixels_per_second[i] > audio.sample_rate) {
          continue;
        }
        ap_waveform_spec_t spec =
            spec_for(AP_WAVEFORM_DAT, bits, 0, pixels_per_second[i], split);
        compare_with_reference(path, &audio, &spec);
      }
    }
  }
  free(audio.samples);
}

static void wav_cases_match_libsndfile(void **state) {
  (void)state;
  /* The WAV cases that hold real audio: 24-bit extensible stereo, RF64,
   * odd-length 24-bit with a pad byte, mu-law, a short clip, a sine and
   * the square steps. */
  const char *files[] = {
      AP_TEST_DATA_DIR "/cases/case-08.wav",
      AP_TEST_DATA_DIR "/cases/case-09.wav",
      AP_TEST_DATA_DIR "/cases/case-11.wav",
      AP_TEST_DATA_DIR "/cases/case-13.wav",
      AP_TEST_DATA_DIR "/cases/case-18.wav",
      AP_TEST_DATA_DIR "/cases/case-19.wav",
      AP_TEST_DATA_DIR "/cases/case-21.wav",
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    compare_all_scales(files[i]);
  }
}

/* Runs the ffmpeg binary to convert `source` to 16-bit WAV at `target`. */
static int convert_with_ffmpeg(const char *source, const char *target) {
  char *arguments[] = {
      "ffmpeg",       "-nostdin", "-v",        "error",        "-y", "-i",
      (char *)source, "-c:a",     "pcm_s16le", (char *)target, NULL};
  pid_t pid = 0;
  if (posix_spawnp(&pid, "ffmpeg", NULL, NULL, arguments, environ) != 0) {
    return -1;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) {
    return -1;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void freedesktop_sounds_match_libsndfile(void **state) {
  (void)state;
  const char *folder = "/usr/share/sounds/freedesktop/stereo";
  struct stat info;
  if (stat(folder, &info) != 0) {
    skip(); /* the sound-theme-freedesktop package is not installed */
  }
  /* Stereo and mono at 8, 22.05, 44.1, 48 and 96 kHz. */
  const char *names[] = {"alarm-clock-elapsed",
                         "bell",
                         "camera-shutter",
                         "phone-outgoing-busy",
                         "service-login",
                         "suspend-error",
                         "complete"};
  const char *temporary = getenv("TMPDIR");
  if (!temporary || !*temporary) {
    temporary = "/tmp";
  }
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char source[512];
    char target[512];
    snprintf(source, sizeof source, "%s/%s.oga", folder, names[i]);
    snprintf(target, sizeof target, "%s/waveform-%s-%ld.wav", temporary,
             names[i], (long)getpid());
    if (convert_with_ffmpeg(source, target) != 0) {
      fail_msg("ffmpeg could not convert %s to %s", source, target);
    }
    compare_all_scales(target);
    assert_int_equal(unlink(target), 0);
  }
}

static void json_matches_libsndfile(void **state) {
  (void)state;
  const char *path = AP_TEST_DATA_DIR "/cases/case-08.wav";
  reference_audio_t audio = {0};
  reference_load(path, &audio);
  for (int split = 0; split <= 1; split++) {
    ap_waveform_spec_t spec = spec_for(AP_WAVEFORM_JSON, 16, 300, 0, split);
    size_t size = 0;
    char *text = (char *)build_waveform(path, &spec, &size, NULL);
    json_object *root = json_tokener_parse(text);
    assert_non_null(root);

    int64_t pixels = 0;
    int *peaks = reference_peaks(&audio, 300, split, 16, &pixels);
    int channels = split ? audio.channels : 1;
    assert_int_equal(json_int(root, "channels"), channels);
    assert_int_equal(json_int(root, "length"), pixels);
    json_object *data = NULL;
    assert_true(json_object_object_get_ex(root, "data", &data));
    size_t count = (size_t)pixels * (size_t)channels * 2;
    assert_int_equal(json_object_array_length(data), count);
    for (size_t i = 0; i < count; i++) {
      int value = json_object_get_int(json_object_array_get_idx(data, i));
      if (value != peaks[i]) {
        fail_msg("split %d: data[%zu] is %d, expected %d", split, i, value,
                 peaks[i]);
      }
    }
    free(peaks);
    json_object_put(root);
    free(text);
  }
  free(audio.samples);
}

static void process_writes_waveforms(void **state) {
  (void)state;
  const char *path = AP_TEST_DATA_DIR "/cases/case-21.wav";
  ap_error_t error = {0};
  const char *temporary = getenv("TMPDIR");
  if (!temporary || !*temporary) {
    temporary = "/tmp";
  }
  char json_path[512];
  snprintf(json_path, sizeof json_path, "%s/waveform-process-%ld.json",
           temporary, (long)getpid());

  /* Two waveforms in one pass: .dat in memory, 8-bit JSON to a file. */
  ap_output_t *dat_output = NULL;
  ap_output_t *json_output = NULL;
  assert_int_equal(ap_output_open_memory(&dat_output, &error), AP_OK);
  assert_int_equal(ap_output_open_file(json_path, &json_output, &error), AP_OK);
  ap_waveform_spec_t waveforms[2];
  waveforms[0] = spec_for(AP_WAVEFORM_DAT, 16, 441, 0, 0);
  waveforms[0].output = dat_output;
  waveforms[1] = spec_for(AP_WAVEFORM_JSON, 8, 0, 100, 0);
  waveforms[1].output = json_output;

  ap_process_options_t options;
  ap_process_options_init(&options);
  options.analyses = 0;
  options.waveforms = waveforms;
  options.waveform_count = 2;
  ap_io_t *input = NULL;
  assert_int_equal(ap_io_open_file(path, &input, &error), AP_OK);
  ap_process_result_t *result = NULL;
  if (ap_process(input, &options, &result, &error) != AP_OK) {
    fail_msg("ap_process failed: %s", error.message);
  }
  assert_int_equal(ap_process_result_waveform_count(result), 2);
  assert_int_equal(ap_process_result_waveform_pixels(result, 0), 100);
  assert_int_equal(ap_process_result_waveform_samples_per_pixel(result, 0),
                   441);
  assert_int_equal(ap_process_result_waveform_pixels(result, 1), 100);
  assert_int_equal(ap_process_result_waveform_samples_per_pixel(result, 1),
                   441);

  /* The pass writes what the sink writes on its own. */
  size_t dat_size = 0;
  const void *dat = ap_output_memory_data(dat_output, &dat_size);
  size_t direct_size = 0;
  unsigned char *direct =
      build_waveform(path, &waveforms[0], &direct_size, NULL);
  assert_int_equal(dat_size, direct_size);
  assert_memory_equal(dat, direct, dat_size);
  free(direct);

  /* ap_process finished the file output, so it is in place. */
  json_object *root = json_object_from_file(json_path);
  assert_non_null(root);
  assert_int_equal(json_int(root, "bits"), 8);
  assert_int_equal(json_int(root, "length"), 100);
  json_object *data = NULL;
  assert_true(json_object_object_get_ex(root, "data", &data));
  assert_int_equal(json_object_get_int(json_object_array_get_idx(data, 1)),
                   127);
  assert_int_equal(json_object_get_int(json_object_array_get_idx(data, 199)),
                   0);
  json_object_put(root);

  ap_process_result_free(result);
  ap_io_close(input);
  ap_output_close(dat_output);
  ap_output_close(json_output);
  assert_int_equal(unlink(json_path), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(case21_dat_peaks),
      cmocka_unit_test(case21_json_peaks),
      cmocka_unit_test(case03_bursts_on_pixels),
      cmocka_unit_test(wav_cases_match_libsndfile),
      cmocka_unit_test(freedesktop_sounds_match_libsndfile),
      cmocka_unit_test(json_matches_libsndfile),
      cmocka_unit_test(process_writes_waveforms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
