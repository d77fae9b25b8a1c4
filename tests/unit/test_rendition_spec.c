/* Tests for rendition codec names, spec defaults and spec checks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/rendition.h>

#include "rendition/rendition_internal.h"

static void codec_names_round_trip(void **state) {
  (void)state;
  const ap_rendition_codec_t codecs[] = {AP_RENDITION_OPUS, AP_RENDITION_MP3,
                                         AP_RENDITION_AAC, AP_RENDITION_FLAC,
                                         AP_RENDITION_WAV};
  const char *names[] = {"opus", "mp3", "aac", "flac", "wav"};
  for (size_t i = 0; i < 5; i++) {
    ap_rendition_codec_t parsed = AP_RENDITION_OPUS;
    ap_error_t error = {0};
    assert_string_equal(ap_rendition_codec_name(codecs[i]), names[i]);
    assert_int_equal(ap_rendition_codec_parse(names[i], &parsed, &error),
                     AP_OK);
    assert_int_equal(parsed, codecs[i]);
  }
  assert_null(ap_rendition_codec_name((ap_rendition_codec_t)99));
}

static void codec_parse_rejects_unknown_name(void **state) {
  (void)state;
  ap_rendition_codec_t parsed = AP_RENDITION_MP3;
  ap_error_t error = {0};
  assert_int_equal(ap_rendition_codec_parse("vorbis", &parsed, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "\"vorbis\""));
  assert_non_null(strstr(error.message, "opus, mp3, aac, flac, wav"));
  assert_int_equal(parsed, AP_RENDITION_MP3);
}

static void spec_init_sets_defaults(void **state) {
  (void)state;
  ap_rendition_spec_t spec;
  memset(&spec, 0xab, sizeof spec);
  ap_rendition_spec_init(&spec);
  assert_int_equal(spec.struct_size, sizeof spec);
  assert_int_equal(spec.codec, AP_RENDITION_OPUS);
  assert_int_equal(spec.bitrate, 0);
  assert_int_equal(spec.sample_rate, 0);
  assert_int_equal(spec.channels, 0);
  assert_int_equal(spec.bits_per_sample, 0);
  assert_int_equal(spec.normalize, 0);
  assert_true(spec.target_lufs == -16.0);
  assert_true(spec.true_peak_ceiling_dbtp == -1.0);
  assert_null(spec.name);
  assert_null(spec.output);
}

/* A stand-in output pointer: validation only checks that one is set. */
static ap_output_t *fake_output(void) {
  static char placeholder;
  return (ap_output_t *)(void *)&placeholder;
}

static void spec_validate_accepts_each_codec(void **state) {
  (void)state;
  const ap_rendition_codec_t codecs[] = {AP_RENDITION_OPUS, AP_RENDITION_MP3,
                                         AP_RENDITION_AAC, AP_RENDITION_FLAC,
                                         AP_RENDITION_WAV};
  for (size_t i = 0; i < 5; i++) {
    ap_rendition_spec_t spec;
    ap_error_t error = {0};
    ap_rendition_spec_init(&spec);
    spec.codec = codecs[i];
    spec.output = fake_output();
    assert_int_equal(ap_rendition_spec_validate(&spec, &error), AP_OK);
  }
}

typedef struct invalid_case {
  const char *label;
  ap_rendition_codec_t codec;
  int64_t bitrate;
  int sample_rate;
  int channels;
  int bits_per_sample;
  int normalize;
  double target_lufs;
  double ceiling_dbtp;
  const char *name;
  int no_output;
  const char *field; /* must appear in the message */
  const char *value; /* must appear in the message */
  const char *range; /* must appear in the message */
} invalid_case_t;

static const invalid_case_t invalid_cases[] = {
    {"opus bitrate low", AP_RENDITION_OPUS, 5000, 0, 0, 0, 0, -16, -1, NULL, 0,
     "bitrate", "5000", "6000 to 510000"},
    {"opus bitrate high", AP_RENDITION_OPUS, 511000, 0, 0, 0, 0, -16, -1, NULL,
     0, "bitrate", "511000", "6000 to 510000"},
    {"mp3 bitrate high", AP_RENDITION_MP3, 321000, 0, 0, 0, 0, -16, -1, NULL, 0,
     "bitrate", "321000", "32000 to 320000"},
    {"mp3 bitrate low", AP_RENDITION_MP3, 31999, 0, 0, 0, 0, -16, -1, NULL, 0,
     "bitrate", "31999", "32000 to 320000"},
    {"aac bitrate high", AP_RENDITION_AAC, 513000, 0, 0, 0, 0, -16, -1, NULL, 0,
     "bitrate", "513000", "32000 to 512000"},
    {"opus rate", AP_RENDITION_OPUS, 0, 44100, 0, 0, 0, -16, -1, NULL, 0,
     "sample_rate", "44100", "48000"},
    {"mp3 rate", AP_RENDITION_MP3, 0, 96000, 0, 0, 0, -16, -1, NULL, 0,
     "sample_rate", "96000", "8000, 11025"},
    {"aac rate", AP_RENDITION_AAC, 0, 44000, 0, 0, 0, -16, -1, NULL, 0,
     "sample_rate", "44000", "7350"},
    {"flac rate", AP_RENDITION_FLAC, 0, 700000, 0, 0, 0, -16, -1, NULL, 0,
     "sample_rate", "700000", "1 to 655340"},
    {"flac rate odd", AP_RENDITION_FLAC, 0, 96001, 0, 0, 0, -16, -1, NULL, 0,
     "sample_rate", "96001", "multiple of 10 Hz"},
    {"wav rate negative", AP_RENDITION_WAV, 0, -8000, 0, 0, 0, -16, -1, NULL, 0,
     "sample_rate", "-8000", "1 to 768000"},
    {"mp3 mpeg-2 bitrate", AP_RENDITION_MP3, 192000, 22050, 0, 0, 0, -16, -1,
     NULL, 0, "bitrate", "192000", "32000 to 160000"},
    {"mp3 mpeg-2.5 bitrate", AP_RENDITION_MP3, 96000, 8000, 0, 0, 0, -16, -1,
     NULL, 0, "bitrate", "96000", "32000 to 64000"},
    {"opus mono bitrate", AP_RENDITION_OPUS, 320000, 0, 1, 0, 0, -16, -1, NULL,
     0, "bitrate", "320000", "6000 to 256000"},
    {"channels six", AP_RENDITION_AAC, 0, 0, 6, 0, 0, -16, -1, NULL, 0,
     "channels", "6", "0 (source layout), 1 (mono) or 2 (stereo)"},
    {"channels negative", AP_RENDITION_WAV, 0, 0, -1, 0, 0, -16, -1, NULL, 0,
     "channels", "-1", "1 (mono) or 2"},
    {"bits 20", AP_RENDITION_FLAC, 0, 0, 0, 20, 0, -16, -1, NULL, 0,
     "bits_per_sample", "20", "16 for 16-bit, or 24"},
    {"target high", AP_RENDITION_OPUS, 0, 0, 0, 0, 1, 1.0, -1, NULL, 0,
     "target_lufs", "1", "-70 to 0 LUFS"},
    {"target low", AP_RENDITION_OPUS, 0, 0, 0, 0, 1, -71.0, -1, NULL, 0,
     "target_lufs", "-71", "-70 to 0 LUFS"},
    {"target nan", AP_RENDITION_OPUS, 0, 0, 0, 0, 1, NAN, -1, NULL, 0,
     "target_lufs", "nan", "-70 to 0 LUFS"},
    {"ceiling high", AP_RENDITION_MP3, 0, 0, 0, 0, 1, -16, 0.5, NULL, 0,
     "true_peak_ceiling_dbtp", "0.5", "-20 to 0 dBTP"},
    {"ceiling low", AP_RENDITION_MP3, 0, 0, 0, 0, 1, -16, -21, NULL, 0,
     "true_peak_ceiling_dbtp", "-21", "-20 to 0 dBTP"},
    {"name empty", AP_RENDITION_WAV, 0, 0, 0, 0, 0, -16, -1, "", 0, "name",
     "0 characters", "1 to 64"},
    {"name slash", AP_RENDITION_WAV, 0, 0, 0, 0, 0, -16, -1, "../etc", 0,
     "name", "\"../etc\"", "letters, digits"},
    {"output missing", AP_RENDITION_WAV, 0, 0, 0, 0, 0, -16, -1, NULL, 1,
     "output", "missing", "ap_output_open_file"},
};

static void spec_validate_names_field(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
    const invalid_case_t *c = &invalid_cases[i];
    ap_rendition_spec_t spec;
    ap_error_t error = {0};
    ap_rendition_spec_init(&spec);
    spec.codec = c->codec;
    spec.bitrate = c->bitrate;
    spec.sample_rate = c->sample_rate;
    spec.channels = c->channels;
    spec.bits_per_sample = c->bits_per_sample;
    spec.normalize = c->normalize;
    spec.target_lufs = c->target_lufs;
    spec.true_peak_ceiling_dbtp = c->ceiling_dbtp;
    spec.name = c->name;
    spec.output = c->no_output ? NULL : fake_output();

    print_message("case: %s\n", c->label);
    assert_int_equal(ap_rendition_spec_validate(&spec, &error),
                     AP_ERR_INVALID_ARGUMENT);
    assert_int_equal(error.code, AP_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(error.message, c->field));
    assert_non_null(strstr(error.message, c->value));
    assert_non_null(strstr(error.message, c->range));
  }
}

static void spec_validate_rejects_old_struct(void **state) {
  (void)state;
  ap_rendition_spec_t spec;
  ap_error_t error = {0};
  ap_rendition_spec_init(&spec);
  spec.output = fake_output();
  spec.struct_size = sizeof spec - 8;
  assert_int_equal(ap_rendition_spec_validate(&spec, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "struct_size"));
  assert_int_equal(ap_rendition_spec_validate(NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
}

static void spec_validate_ignores_unused_fields(void **state) {
  (void)state;
  ap_rendition_spec_t spec;
  ap_error_t error = {0};
  ap_rendition_spec_init(&spec);
  spec.output = fake_output();

  /* Lossless codecs have no bit rate, and the loudness fields matter only
   * when normalisation is on. */
  spec.codec = AP_RENDITION_FLAC;
  spec.bitrate = 1;
  spec.target_lufs = 10.0;
  assert_int_equal(ap_rendition_spec_validate(&spec, &error), AP_OK);
}

static void pick_sample_rate_finds_nearest(void **state) {
  (void)state;
  const ap_rendition_codec_info_t *mp3 =
      ap_rendition_codec_info(AP_RENDITION_MP3);
  const ap_rendition_codec_info_t *aac =
      ap_rendition_codec_info(AP_RENDITION_AAC);
  const ap_rendition_codec_info_t *opus =
      ap_rendition_codec_info(AP_RENDITION_OPUS);
  const ap_rendition_codec_info_t *flac =
      ap_rendition_codec_info(AP_RENDITION_FLAC);

  assert_int_equal(ap_rendition_pick_sample_rate(mp3, 0, 96000, 128000, 2),
                   48000);
  /* 8 kHz at 192 kb/s needs MPEG-1, whose lowest rate is 32 kHz, and
   * 128 kb/s needs MPEG-2, whose lowest rate is 16 kHz. */
  assert_int_equal(ap_rendition_pick_sample_rate(mp3, 0, 8000, 192000, 2),
                   32000);
  assert_int_equal(ap_rendition_pick_sample_rate(mp3, 0, 8000, 128000, 2),
                   16000);
  assert_int_equal(ap_rendition_pick_sample_rate(mp3, 0, 8000, 64000, 2), 8000);
  assert_int_equal(ap_rendition_pick_sample_rate(aac, 0, 192000, 128000, 2),
                   96000);
  assert_int_equal(ap_rendition_pick_sample_rate(aac, 0, 44100, 128000, 2),
                   44100);
  assert_int_equal(ap_rendition_pick_sample_rate(aac, 22050, 44100, 128000, 2),
                   22050);
  /* Mono AAC at 128 kb/s needs 21.3 kHz (6144 bits per 1024 frames). */
  assert_int_equal(ap_rendition_pick_sample_rate(aac, 0, 8000, 128000, 1),
                   22050);
  assert_int_equal(ap_rendition_pick_sample_rate(aac, 0, 8000, 128000, 2),
                   11025);
  assert_int_equal(ap_rendition_pick_sample_rate(opus, 0, 8000, 64000, 2),
                   48000);
  assert_int_equal(ap_rendition_pick_sample_rate(flac, 0, 192000, 0, 2),
                   192000);
  assert_int_equal(ap_rendition_pick_sample_rate(flac, 0, 96001, 0, 2), 96000);
  assert_int_equal(ap_rendition_pick_sample_rate(flac, 0, 44101, 0, 2), 44101);
}

static void derive_name_uses_codec(void **state) {
  (void)state;
  ap_rendition_spec_t spec;
  char name[AP_RENDITION_NAME_MAX + 1];
  ap_rendition_spec_init(&spec);

  ap_rendition_derive_name(&spec, name, sizeof name);
  assert_string_equal(name, "opus_64k");
  spec.codec = AP_RENDITION_MP3;
  spec.bitrate = 192000;
  ap_rendition_derive_name(&spec, name, sizeof name);
  assert_string_equal(name, "mp3_192k");
  spec.codec = AP_RENDITION_FLAC;
  spec.bits_per_sample = 24;
  ap_rendition_derive_name(&spec, name, sizeof name);
  assert_string_equal(name, "flac_24bit");
  spec.bitrate = 0;
  spec.codec = AP_RENDITION_MP3;
  spec.sample_rate = 8000;
  ap_rendition_derive_name(&spec, name, sizeof name);
  assert_string_equal(name, "mp3_64k");
  spec.name = "preview";
  ap_rendition_derive_name(&spec, name, sizeof name);
  assert_string_equal(name, "preview");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(codec_names_round_trip),
      cmocka_unit_test(codec_parse_rejects_unknown_name),
      cmocka_unit_test(spec_init_sets_defaults),
      cmocka_unit_test(spec_validate_accepts_each_codec),
      cmocka_unit_test(spec_validate_names_field),
      cmocka_unit_test(spec_validate_rejects_old_struct),
      cmocka_unit_test(spec_validate_ignores_unused_fields),
      cmocka_unit_test(pick_sample_rate_finds_nearest),
      cmocka_unit_test(derive_name_uses_codec),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
