/* Tests for ap_sniff: every audio and non-audio signature, the multipart
 * envelope in several spellings, and near misses of each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <audiopipe/probe.h>

typedef struct sniff_case {
  const char *label;
  const unsigned char *data;
  size_t size;
  ap_sniff_result_t result;
  const char *kind; /* NULL: no kind expected */
} sniff_case_t;

#define BYTES(literal) (const unsigned char *)(literal), sizeof(literal) - 1

/* Two MPEG-1 layer III frames, 128 kb/s, 44.1 kHz: each 417 bytes. */
static unsigned char mpeg_frames[2 * 417 + 4];
/* An ADTS header for AAC-LC, 44.1 kHz, stereo, frame length 100. */
static const unsigned char adts[] = {0xFF, 0xF1, 0x50, 0x80,
                                     0x0C, 0x9F, 0xFC, 0x00};

static void fill_mpeg_frames(void) {
  memset(mpeg_frames, 0, sizeof mpeg_frames);
  static const unsigned char header[] = {0xFF, 0xFB, 0x90, 0x64};
  memcpy(mpeg_frames, header, 4);
  memcpy(mpeg_frames + 417, header, 4);
  memcpy(mpeg_frames + 834, header, 4);
}

static void check_cases(const sniff_case_t *cases, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const char *kind = NULL;
    ap_sniff_result_t result = ap_sniff(cases[i].data, cases[i].size, &kind);
    if (result != cases[i].result) {
      fail_msg("%s: result %d, expected %d", cases[i].label, result,
               cases[i].result);
    }
    if (cases[i].kind && (!kind || strcmp(kind, cases[i].kind) != 0)) {
      fail_msg("%s: kind \"%s\", expected \"%s\"", cases[i].label,
               kind ? kind : "(null)", cases[i].kind);
    }
  }
}

static void sniff_empty_input(void **state) {
  (void)state;
  const char *kind = "unset";
  assert_int_equal(ap_sniff("", 0, &kind), AP_SNIFF_EMPTY);
  assert_null(kind);
  assert_int_equal(ap_sniff(NULL, 0, NULL), AP_SNIFF_EMPTY);
}

static void sniff_audio_signatures(void **state) {
  (void)state;
  fill_mpeg_frames();
  const sniff_case_t cases[] = {
      {"riff", BYTES("RIFF\x24\x00\x00\x00WAVEfmt "), AP_SNIFF_AUDIO, "wav"},
      {"rf64", BYTES("RF64\xff\xff\xff\xffWAVEds64"), AP_SNIFF_AUDIO, "rf64"},
      {"bw64", BYTES("BW64\xff\xff\xff\xffWAVEds64"), AP_SNIFF_AUDIO, "bw64"},
      {"aiff",
       BYTES("FORM\x00\x00\x10\x00"
             "AIFFCOMM"),
       AP_SNIFF_AUDIO, "aiff"},
      {"aifc",
       BYTES("FORM\x00\x00\x10\x00"
             "AIFCFVER"),
       AP_SNIFF_AUDIO, "aiff"},
      {"id3", BYTES("ID3\x04\x00\x00\x00\x00\x00\x0a"), AP_SNIFF_AUDIO, "id3"},
      {"mpeg", mpeg_frames, sizeof mpeg_frames, AP_SNIFF_AUDIO, "mp3"},
      {"adts", adts, sizeof adts, AP_SNIFF_AUDIO, "aac"},
      {"flac", BYTES("fLaC\x00\x00\x00\x22"), AP_SNIFF_AUDIO, "flac"},
      {"ogg", BYTES("OggS\x00\x02\x00\x00"), AP_SNIFF_AUDIO, "ogg"},
      {"webm", BYTES("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm"),
       AP_SNIFF_AUDIO, "webm"},
      {"matroska",
       BYTES("\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska"),
       AP_SNIFF_AUDIO, "matroska"},
      {"m4a",
       BYTES("\x00\x00\x00\x1c"
             "ftypM4A \x00\x00\x02\x00"
             "M4A isom"),
       AP_SNIFF_AUDIO, "mp4"},
      {"m4a compatible brand",
       BYTES("\x00\x00\x00\x18"
             "ftypmp42\x00\x00\x00\x00"
             "M4A "),
       AP_SNIFF_AUDIO, "mp4"},
      {"caf",
       BYTES("caff\x00\x01\x00\x00"
             "desc"),
       AP_SNIFF_AUDIO, "caf"},
      {"wavpack",
       BYTES("wvpk\x20\x00\x00\x00\x10\x04\x00\x00"
             "\x00\x00\x00\x00\x00\x00\x00\x00"
             "\x00\x00\x00\x00\x00\x00\x00\x00"
             "\x00\x00\x00\x00"),
       AP_SNIFF_AUDIO, "wavpack"},
      {"au",
       BYTES(".snd\x00\x00\x00\x18\xff\xff\xff\xff\x00\x00\x00\x03"
             "\x00\x00\x1f\x40\x00\x00\x00\x01"),
       AP_SNIFF_AUDIO, "au"},
  };
  check_cases(cases, sizeof cases / sizeof cases[0]);
}

static void sniff_audio_near_misses(void **state) {
  (void)state;
  fill_mpeg_frames();
  unsigned char broken_second[sizeof mpeg_frames];
  memcpy(broken_second, mpeg_frames, sizeof broken_second);
  broken_second[417] = 0x00; /* the second frame's sync is gone */
  unsigned char reserved_rate[4] = {0xFF, 0xFB, 0x9C, 0x64};
  unsigned char bad_bitrate[4] = {0xFF, 0xFB, 0xF0, 0x64};
  const sniff_case_t cases[] = {
      {"riff avi",
       BYTES("RIFF\x24\x00\x00\x00"
             "AVI LIST"),
       AP_SNIFF_UNKNOWN, NULL},
      {"riff short", BYTES("RIFF\x24\x00"), AP_SNIFF_UNKNOWN, NULL},
      {"form 8svx",
       BYTES("FORM\x00\x00\x10\x00"
             "8SVXVHDR"),
       AP_SNIFF_UNKNOWN, NULL},
      {"id3 bad version", BYTES("ID3\x09\x00\x00\x00\x00\x00\x0a"),
       AP_SNIFF_UNKNOWN, NULL},
      {"id3 not syncsafe", BYTES("ID3\x03\x00\x00\x80\x00\x00\x0a"),
       AP_SNIFF_UNKNOWN, NULL},
      {"mpeg no second frame", broken_second, sizeof broken_second,
       AP_SNIFF_UNKNOWN, NULL},
      {"mpeg reserved rate", reserved_rate, sizeof reserved_rate,
       AP_SNIFF_UNKNOWN, NULL},
      {"mpeg bad bitrate", bad_bitrate, sizeof bad_bitrate, AP_SNIFF_UNKNOWN,
       NULL},
      {"ogg bad version", BYTES("OggS\x01\x02\x00\x00"), AP_SNIFF_UNKNOWN,
       NULL},
      {"mp4 video brand",
       BYTES("\x00\x00\x00\x14"
             "ftypisom\x00\x00\x02\x00"
             "avc1"),
       AP_SNIFF_UNKNOWN, NULL},
      {"caf bad version",
       BYTES("caff\x00\x02\x00\x00"
             "desc"),
       AP_SNIFF_UNKNOWN, NULL},
      {"flac lower case", BYTES("flac\x00\x00\x00\x22"), AP_SNIFF_UNKNOWN,
       NULL},
  };
  check_cases(cases, sizeof cases / sizeof cases[0]);
}

static void sniff_multipart_envelopes(void **state) {
  (void)state;
  const sniff_case_t cases[] = {
      {"webkit",
       BYTES("------WebKitFormBoundaryCase22Tst\r\nContent-Disposition: "
             "form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: "
             "audio/wav\r\n\r\nRIFF"),
       AP_SNIFF_MULTIPART, "multipart"},
      {"firefox",
       BYTES("-----------------------------9051914041544843365972754266\r\n"
             "Content-Disposition: form-data; name=\"file\"; "
             "filename=\"a.mp3\"\r\n\r\nID3"),
       AP_SNIFF_MULTIPART, "multipart"},
      {"curl lower case",
       BYTES("--------------------------d74496d66958873e\r\ncontent-type: "
             "audio/mpeg\r\ncontent-disposition: form-data; name=\"f\"\r\n"
             "\r\n"),
       AP_SNIFF_MULTIPART, "multipart"},
      {"bare lf", BYTES("--boundary\nContent-Disposition: form-data\n\n"),
       AP_SNIFF_MULTIPART, "multipart"},
      {"leading crlf",
       BYTES("\r\n--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n"),
       AP_SNIFF_MULTIPART, "multipart"},
  };
  check_cases(cases, sizeof cases / sizeof cases[0]);
}

static void sniff_multipart_near_misses(void **state) {
  (void)state;
  const sniff_case_t cases[] = {
      {"dashes then text", BYTES("-- \r\nnot a header\r\n"), AP_SNIFF_NOT_AUDIO,
       "text"},
      {"boundary without headers", BYTES("--abc\r\nhello\r\n"),
       AP_SNIFF_NOT_AUDIO, "text"},
      {"boundary too long",
       BYTES("--0123456789012345678901234567890123456789012345678901234567"
             "890123456789x\r\nContent-Type: audio/wav\r\n"),
       AP_SNIFF_NOT_AUDIO, "text"},
      {"markdown rule", BYTES("---\ntitle: notes\n---\n"), AP_SNIFF_NOT_AUDIO,
       "text"},
  };
  check_cases(cases, sizeof cases / sizeof cases[0]);
}

static void sniff_non_audio_signatures(void **state) {
  (void)state;
  unsigned char pe[64] = {'M', 'Z'};
  const sniff_case_t cases[] = {
      {"html doctype", BYTES("<!DOCTYPE html><html>"), AP_SNIFF_NOT_AUDIO,
       "html"},
      {"html bom", BYTES("\xef\xbb\xbf  <HTML><body>"), AP_SNIFF_NOT_AUDIO,
       "html"},
      {"xml", BYTES("<?xml version=\"1.0\"?><Error>"), AP_SNIFF_NOT_AUDIO,
       "xml"},
      {"json object", BYTES("{\"error\": \"AccessDenied\"}"),
       AP_SNIFF_NOT_AUDIO, "json"},
      {"json array", BYTES("[1, 2, 3]"), AP_SNIFF_NOT_AUDIO, "json"},
      {"pdf", BYTES("%PDF-1.7\n%\xe2\xe3\xcf\xd3"), AP_SNIFF_NOT_AUDIO, "pdf"},
      {"zip", BYTES("PK\x03\x04\x14\x00\x00\x00"), AP_SNIFF_NOT_AUDIO, "zip"},
      {"png", BYTES("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"),
       AP_SNIFF_NOT_AUDIO, "png"},
      {"jpeg", BYTES("\xff\xd8\xff\xe0\x00\x10JFIF"), AP_SNIFF_NOT_AUDIO,
       "jpeg"},
      {"gif", BYTES("GIF89a\x01\x00\x01\x00"), AP_SNIFF_NOT_AUDIO, "gif"},
      {"elf",
       BYTES("\x7f"
             "ELF\x02\x01\x01\x00"),
       AP_SNIFF_NOT_AUDIO, "elf"},
      {"pe", pe, sizeof pe, AP_SNIFF_NOT_AUDIO, "pe"},
      {"shell script", BYTES("#!/bin/sh\nrm -rf /\n"), AP_SNIFF_NOT_AUDIO,
       "script"},
      {"plain text", BYTES("Hello, this is a note.\n"), AP_SNIFF_NOT_AUDIO,
       "text"},
      {"utf-8 text",
       BYTES("Gr\xc3\xbc\xc3\x9f"
             "e aus K\xc3\xb6ln\n"),
       AP_SNIFF_NOT_AUDIO, "text"},
  };
  check_cases(cases, sizeof cases / sizeof cases[0]);
}

static void sniff_non_audio_near_misses(void **state) {
  (void)state;
  unsigned char short_pe[8] = {'M', 'Z', 0x90, 0};
  const sniff_case_t cases[] = {
      {"invalid utf-8", BYTES("abc\xff\xfe def"), AP_SNIFF_UNKNOWN, NULL},
      {"control bytes", BYTES("abc\x01\x02\x03"), AP_SNIFF_UNKNOWN, NULL},
      {"pdf lower case", BYTES("%pdf-1.7\x00\x01"), AP_SNIFF_UNKNOWN, NULL},
      {"short pe", short_pe, sizeof short_pe, AP_SNIFF_UNKNOWN, NULL},
      {"png cut", BYTES("\x89PNG\r\n"), AP_SNIFF_UNKNOWN, NULL},
  };
  check_cases(cases, sizeof cases / sizeof cases[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sniff_empty_input),
      cmocka_unit_test(sniff_audio_signatures),
      cmocka_unit_test(sniff_audio_near_misses),
      cmocka_unit_test(sniff_multipart_envelopes),
      cmocka_unit_test(sniff_multipart_near_misses),
      cmocka_unit_test(sniff_non_audio_signatures),
      cmocka_unit_test(sniff_non_audio_near_misses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
