/*
 * Replays every input saved in tests/data/fuzz-regressions (crashes and
 * hangs the fuzz_probe target found) through the fuzzing entry point, plus
 * a few hand-made hostile inputs, and asserts that each ends with a well
 * formed status. Under AP_SANITIZE a memory error fails the test too.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "probe_entry.h"

#define REGRESSION_DIR AP_TEST_DATA_DIR "/fuzz-regressions"

static unsigned char *read_whole_file(const char *path, size_t *size) {
  FILE *file = fopen(path, "rb");
  if (!file) {
    return NULL;
  }
  unsigned char *data = NULL;
  size_t used = 0;
  size_t capacity = 0;
  for (;;) {
    if (used == capacity) {
      capacity = capacity ? capacity * 2 : 65536;
      unsigned char *grown = realloc(data, capacity);
      if (!grown) {
        free(data);
        fclose(file);
        return NULL;
      }
      data = grown;
    }
    size_t count = fread(data + used, 1, capacity - used, file);
    used += count;
    if (count == 0) {
      break;
    }
  }
  fclose(file);
  *size = used;
  return data;
}

static void assert_input_survives(const char *name, const void *data,
                                  size_t size) {
  ap_fuzz_outcome_t outcome;
  int result = ap_fuzz_probe_input(data, size, &outcome);
  if (result != 0) {
    print_error("%s: probe %d (%s), process %d (%s)\n", name,
                outcome.probe_status, outcome.probe_error.message,
                outcome.process_status, outcome.process_error.message);
  }
  assert_int_equal(result, 0);
}

static void saved_inputs_end_cleanly(void **state) {
  (void)state;
  DIR *directory = opendir(REGRESSION_DIR);
  assert_non_null(directory);

  struct dirent *entry;
  int replayed = 0;
  while ((entry = readdir(directory)) != NULL) {
    if (entry->d_name[0] == '.' || strcmp(entry->d_name, "README.md") == 0) {
      continue;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", REGRESSION_DIR, entry->d_name);
    size_t size = 0;
    unsigned char *data = read_whole_file(path, &size);
    assert_non_null(data);
    assert_input_survives(entry->d_name, data, size);
    free(data);
    replayed++;
  }
  closedir(directory);
  print_message("replayed %d saved inputs\n", replayed);
}

static void empty_input_is_rejected(void **state) {
  (void)state;
  ap_fuzz_outcome_t outcome;
  assert_int_equal(ap_fuzz_probe_input((const uint8_t *)"", 0, &outcome), 0);
  assert_int_equal(outcome.sniff, AP_SNIFF_EMPTY);
  assert_int_equal(outcome.probe_status, AP_ERR_EMPTY_INPUT);
}

static void truncated_headers_end_cleanly(void **state) {
  (void)state;
  /* Each header stops right after its magic number or a size field. */
  static const struct {
    const char *name;
    const char *bytes;
    size_t size;
  } inputs[] = {
      {"riff only", "RIFF", 4},
      {"riff huge size", "RIFF\xff\xff\xff\xffWAVEfmt \xff\xff\xff\xff", 20},
      {"rf64 no ds64", "RF64\xff\xff\xff\xffWAVEdata", 16},
      {"id3 huge size", "ID3\x04\x00\x00\x7f\x7f\x7f\x7f", 10},
      {"ogg page", "OggS\x00\x02", 6},
      {"flac marker", "fLaC\x00\x00\x00\x22", 8},
      {"ebml header", "\x1a\x45\xdf\xa3\x01\xff\xff\xff\xff\xff\xff\xff", 12},
      {"mp4 ftyp",
       "\x00\x00\x00\x18"
       "ftypM4A ",
       12},
      {"multipart", "--boundary\r\nContent-Disposition: form-data", 42},
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    assert_input_survives(inputs[i].name, inputs[i].bytes, inputs[i].size);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(saved_inputs_end_cleanly),
      cmocka_unit_test(empty_input_is_rejected),
      cmocka_unit_test(truncated_headers_end_cleanly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
