/* Tests for ap_probe on the hard real-world inputs in tests/data/cases:
 * container, codec, format, exact durations and the errors for inputs
 * that must be rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/probe.h>

#define CASE(name) AP_TEST_DATA_DIR "/cases/" name

static ap_media_info_t *probe_case(const char *path) {
  ap_media_info_t *info = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_probe_file(path, NULL, &info, &error);
  if (status != AP_OK) {
    fail_msg("%s: status %d: %s", path, status, error.message);
  }
  return info;
}

static ap_status_t probe_error(const char *path, ap_error_t *error) {
  ap_media_info_t *info = NULL;
  ap_status_t status = ap_probe_file(path, NULL, &info, error);
  assert_null(info);
  return status;
}

static void assert_duration_ms(const ap_media_info_t *info,
                               double expected_seconds) {
  double duration = ap_media_info_duration(info);
  if (duration < expected_seconds - 0.0005 ||
      duration > expected_seconds + 0.0005) {
    fail_msg("duration %.6f s, expected %.3f s", duration, expected_seconds);
  }
}

static void probe_case01_webm_without_duration(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-01.webm"));
  assert_string_equal(ap_media_info_container(info), "webm");
  assert_string_equal(ap_media_info_codec(info), "opus");
  assert_int_equal(ap_media_info_sample_rate(info), 48000);
  assert_int_equal(ap_media_info_channels(info), 1);
  double duration = ap_media_info_duration(info);
  assert_true(duration >= 9.99);
  assert_true(duration <= 10.03);
  assert_int_equal(ap_media_info_duration_method(info),
                   AP_DURATION_PACKET_SCAN);
  assert_int_equal(ap_media_info_encoder_delay(info), 312);
  assert_false(ap_media_info_is_truncated(info));
  ap_media_info_free(info);
}

static void probe_case03_mp3_info_frame(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-03.mp3"));
  assert_string_equal(ap_media_info_container(info), "mp3");
  assert_string_equal(ap_media_info_codec(info), "mp3");
  assert_int_equal(ap_media_info_sample_rate(info), 44100);
  assert_int_equal(ap_media_info_channels(info), 1);
  assert_int_equal(ap_media_info_bitrate(info), 128000);
  assert_false(ap_media_info_is_vbr(info));
  assert_int_equal(ap_media_info_duration_frames(info), 220500);
  assert_duration_ms(info, 5.000);
  assert_int_equal(ap_media_info_duration_method(info),
                   AP_DURATION_FRAME_COUNT);
  /* LAME tag: 576 samples of encoder delay, 1260 of padding. */
  assert_int_equal(ap_media_info_encoder_delay(info), 576);
  assert_int_equal(ap_media_info_encoder_padding(info), 1260);
  assert_int_equal(ap_media_info_bits_per_sample(info), 0);
  ap_media_info_free(info);
}

static void probe_case04_m4a_moov_at_end(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-04.m4a"));
  assert_string_equal(ap_media_info_container(info), "mp4");
  assert_string_equal(ap_media_info_codec(info), "aac");
  assert_string_equal(ap_media_info_codec_profile(info), "LC");
  assert_int_equal(ap_media_info_sample_rate(info), 48000);
  assert_int_equal(ap_media_info_channels(info), 1);
  assert_int_equal(ap_media_info_duration_frames(info), 480000);
  assert_duration_ms(info, 10.000);
  assert_int_equal(ap_media_info_duration_method(info),
                   AP_DURATION_FRAME_COUNT);
  assert_int_equal(ap_media_info_encoder_delay(info), 1024);
  assert_int_equal(ap_media_info_encoder_padding(info), 256);
  assert_false(ap_media_info_is_truncated(info));
  ap_media_info_free(info);
}

static void probe_case05_mp3_cover_art(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-05.mp3"));
  assert_string_equal(ap_media_info_container(info), "mp3");
  assert_string_equal(ap_media_info_codec(info), "mp3");
  assert_int_equal(ap_media_info_sample_rate(info), 22050);
  assert_int_equal(ap_media_info_channels(info), 1);
  assert_int_equal(ap_media_info_bitrate(info), 64000);
  assert_int_equal(ap_media_info_audio_stream_count(info), 1);
  assert_int_equal(ap_media_info_duration_frames(info), 110250);
  assert_duration_ms(info, 5.000);
  assert_int_equal(ap_media_info_picture_count(info), 1);
  assert_string_equal(ap_media_info_picture_mime(info, 0), "image/jpeg");
  assert_int_equal(ap_media_info_picture_bytes(info, 0), 1672735);
  assert_int_equal(ap_media_info_picture_width(info, 0), 1000);
  assert_int_equal(ap_media_info_picture_height(info, 0), 1000);
  assert_int_equal(ap_media_info_input_bytes(info), 1713540);
  ap_media_info_free(info);
}

static void probe_case08_wave_extensible(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-08.wav"));
  assert_string_equal(ap_media_info_container(info), "wav");
  assert_string_equal(ap_media_info_codec(info), "pcm_s24le");
  assert_int_equal(ap_media_info_sample_rate(info), 48000);
  assert_int_equal(ap_media_info_channels(info), 2);
  assert_int_equal(ap_media_info_bits_per_sample(info), 24);
  assert_int_equal(ap_media_info_channel_mask(info), 0x3);
  assert_string_equal(ap_media_info_channel_layout(info), "stereo");
  assert_int_equal(ap_media_info_duration_frames(info), 192000);
  assert_duration_ms(info, 4.000);
  assert_int_equal(ap_media_info_duration_method(info), AP_DURATION_HEADER);
  ap_media_info_free(info);
}

static void probe_case09_rf64(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-09.wav"));
  assert_string_equal(ap_media_info_container(info), "rf64");
  assert_string_equal(ap_media_info_codec(info), "pcm_s16le");
  assert_int_equal(ap_media_info_sample_rate(info), 48000);
  assert_int_equal(ap_media_info_channels(info), 1);
  assert_int_equal(ap_media_info_duration_frames(info), 480000);
  assert_duration_ms(info, 10.000);
  assert_int_equal(ap_media_info_duration_method(info), AP_DURATION_HEADER);
  ap_media_info_free(info);
}

static void probe_case10_streaming_sizes(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-10.wav"));
  assert_string_equal(ap_media_info_container(info), "wav");
  assert_int_equal(ap_media_info_duration_frames(info), 480000);
  assert_duration_ms(info, 10.000);
  /* 0xFFFFFFFF is a streaming marker, not a claim. */
  assert_true(ap_media_info_header_duration(info) < 0.0);
  assert_false(ap_media_info_is_truncated(info));
  ap_media_info_free(info);
}

static void probe_case11_odd_chunk_and_list(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-11.wav"));
  assert_string_equal(ap_media_info_codec(info), "pcm_s24le");
  assert_int_equal(ap_media_info_sample_rate(info), 44100);
  assert_int_equal(ap_media_info_bits_per_sample(info), 24);
  assert_int_equal(ap_media_info_duration_frames(info), 44101);
  double duration = ap_media_info_duration(info);
  assert_true(duration > 1.0000225);
  assert_true(duration < 1.0000235);
  assert_false(ap_media_info_is_truncated(info));
  ap_media_info_free(info);
}

static void probe_case13_mulaw(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-13.wav"));
  assert_string_equal(ap_media_info_codec(info), "pcm_mulaw");
  assert_int_equal(ap_media_info_sample_rate(info), 8000);
  assert_int_equal(ap_media_info_channels(info), 1);
  assert_int_equal(ap_media_info_bits_per_sample(info), 8);
  assert_int_equal(ap_media_info_duration_frames(info), 23078);
  double duration = ap_media_info_duration(info);
  assert_true(duration > 2.884749);
  assert_true(duration < 2.884751);
  ap_media_info_free(info);
}

static void probe_case14_empty(void **state) {
  (void)state;
  ap_error_t error = {0};
  assert_int_equal(probe_error(CASE("case-14.mp3"), &error),
                   AP_ERR_EMPTY_INPUT);
  assert_int_equal(error.code, AP_ERR_EMPTY_INPUT);
  assert_int_equal(error.domain, AP_DOMAIN_MEDIA);
  assert_non_null(strstr(error.message, "empty (0 bytes)"));
}

static void probe_case15_aac_named_mp3(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-15.mp3"));
  assert_string_equal(ap_media_info_container(info), "mp4");
  assert_string_equal(ap_media_info_codec(info), "aac");
  assert_int_equal(ap_media_info_sample_rate(info), 44100);
  assert_int_equal(ap_media_info_channels(info), 2);
  assert_int_equal(ap_media_info_duration_frames(info), 220500);
  assert_duration_ms(info, 5.000);
  ap_media_info_free(info);
}

static void probe_case16_channel_count(void **state) {
  (void)state;
  ap_error_t error = {0};
  assert_int_equal(probe_error(CASE("case-16.wav"), &error),
                   AP_ERR_CHANNELS_UNSUPPORTED);
  assert_non_null(strstr(error.message, "unsupported channel count 65535"));
  assert_non_null(strstr(error.message, "maximum is 32"));
}

static void probe_case18_short_clip(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-18.wav"));
  assert_int_equal(ap_media_info_sample_rate(info), 44100);
  assert_int_equal(ap_media_info_channels(info), 2);
  assert_int_equal(ap_media_info_duration_frames(info), 13728);
  ap_media_info_free(info);
}

static void probe_case19_mono_sine(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-19.wav"));
  assert_int_equal(ap_media_info_sample_rate(info), 48000);
  assert_int_equal(ap_media_info_channels(info), 1);
  assert_string_equal(ap_media_info_channel_layout(info), "mono");
  assert_int_equal(ap_media_info_duration_frames(info), 480000);
  ap_media_info_free(info);
}

static void probe_case21_square_steps(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-21.wav"));
  assert_int_equal(ap_media_info_sample_rate(info), 44100);
  assert_int_equal(ap_media_info_channels(info), 1);
  assert_int_equal(ap_media_info_duration_frames(info), 44100);
  ap_media_info_free(info);
}

static void probe_case22_multipart(void **state) {
  (void)state;
  ap_error_t error = {0};
  assert_int_equal(probe_error(CASE("case-22.wav"), &error),
                   AP_ERR_MULTIPART_BODY);
  assert_non_null(strstr(error.message, "multipart/form-data"));
}

static void probe_json_has_fields(void **state) {
  (void)state;
  ap_media_info_t *info = probe_case(CASE("case-05.mp3"));
  char *json = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_media_info_to_json(info, &json, &error), AP_OK);
  assert_non_null(strstr(json, "\"container\":\"mp3\""));
  assert_non_null(strstr(json, "\"duration_frames\":110250"));
  assert_non_null(strstr(json, "\"duration_method\":\"frame_count\""));
  assert_non_null(strstr(json, "\"mime\":\"image/jpeg\""));
  assert_non_null(strstr(json, "\"width\":1000"));
  ap_free(json);
  ap_media_info_free(info);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(probe_case01_webm_without_duration),
      cmocka_unit_test(probe_case03_mp3_info_frame),
      cmocka_unit_test(probe_case04_m4a_moov_at_end),
      cmocka_unit_test(probe_case05_mp3_cover_art),
      cmocka_unit_test(probe_case08_wave_extensible),
      cmocka_unit_test(probe_case09_rf64),
      cmocka_unit_test(probe_case10_streaming_sizes),
      cmocka_unit_test(probe_case11_odd_chunk_and_list),
      cmocka_unit_test(probe_case13_mulaw),
      cmocka_unit_test(probe_case14_empty),
      cmocka_unit_test(probe_case15_aac_named_mp3),
      cmocka_unit_test(probe_case16_channel_count),
      cmocka_unit_test(probe_case18_short_clip),
      cmocka_unit_test(probe_case19_mono_sine),
      cmocka_unit_test(probe_case21_square_steps),
      cmocka_unit_test(probe_case22_multipart),
      cmocka_unit_test(probe_json_has_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
