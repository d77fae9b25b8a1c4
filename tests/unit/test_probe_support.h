/* Helpers shared by the probe and decoder tests: whole-file reads and a
 * forward-only callback input that behaves like a pipe. */
#ifndef AP_TEST_PROBE_SUPPORT_H
#define AP_TEST_PROBE_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>

#include <audiopipe/io.h>

#define CASE(name) AP_TEST_DATA_DIR "/cases/" name

/* Reads a whole file into a new buffer; fails the test on error. */
static inline unsigned char *read_whole_file(const char *path, size_t *size) {
  FILE *file = fopen(path, "rb");
  if (!file) {
    fail_msg("cannot open %s", path);
  }
  fseek(file, 0, SEEK_END);
  long length = ftell(file);
  fseek(file, 0, SEEK_SET);
  unsigned char *data = malloc(length > 0 ? (size_t)length : 1);
  assert_non_null(data);
  assert_int_equal(fread(data, 1, (size_t)length, file), (size_t)length);
  fclose(file);
  *size = (size_t)length;
  return data;
}

static inline int64_t pipe_read(void *user_data, void *buffer, size_t size,
                                ap_error_t *error) {
  (void)error;
  FILE *file = user_data;
  /* Short reads, as a pipe gives them. */
  size_t want = size > 1000 ? 1000 : size;
  size_t got = fread(buffer, 1, want, file);
  return ferror(file) ? -1 : (int64_t)got;
}

static inline void pipe_close(void *user_data) { fclose(user_data); }

/* Opens `path` as a forward-only input with no size, like a pipe. */
static inline ap_io_t *open_pipe_input(const char *path) {
  FILE *file = fopen(path, "rb");
  assert_non_null(file);
  ap_io_callbacks_t callbacks = {0};
  callbacks.struct_size = sizeof callbacks;
  callbacks.read = pipe_read;
  callbacks.close = pipe_close;
  ap_io_t *io = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_callbacks(&callbacks, file, &io, &error), AP_OK);
  return io;
}

#endif
