/* Tests for input and output streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <audiopipe/io.h>

static void memory_input_reads_and_seeks(void **state) {
  (void)state;
  const char data[] = "0123456789";
  ap_io_t *io = NULL;
  ap_error_t error = {0};
  char buffer[8];

  assert_int_equal(ap_io_open_memory(data, 10, &io, &error), AP_OK);
  assert_int_equal(ap_io_size(io), 10);
  assert_true(ap_io_is_seekable(io));
  assert_int_equal(ap_io_read(io, buffer, 4, &error), 4);
  assert_memory_equal(buffer, "0123", 4);
  assert_int_equal(ap_io_tell(io), 4);
  assert_int_equal(ap_io_seek(io, -2, AP_SEEK_END, &error), 8);
  assert_int_equal(ap_io_read(io, buffer, 8, &error), 2);
  assert_memory_equal(buffer, "89", 2);
  assert_int_equal(ap_io_read(io, buffer, 8, &error), 0);
  assert_int_equal(ap_io_seek(io, -1, AP_SEEK_SET, &error), -1);
  assert_int_equal(error.code, AP_ERR_INVALID_ARGUMENT);
  ap_io_close(io);
}

static void file_input_reports_missing_path(void **state) {
  (void)state;
  ap_io_t *io = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_file("/nonexistent/audio.wav", &io, &error),
                   AP_ERR_NOT_FOUND);
  assert_non_null(strstr(error.message, "/nonexistent/audio.wav"));
  assert_null(io);
}

typedef struct counting_source {
  int reads;
  int closed;
} counting_source_t;

static int64_t counting_read(void *user_data, void *buffer, size_t size,
                             ap_error_t *error) {
  (void)error;
  counting_source_t *source = user_data;
  if (source->reads++ >= 3) {
    return 0;
  }
  size_t take = size < 5 ? size : 5;
  memset(buffer, 'a', take);
  return (int64_t)take;
}

static void counting_close(void *user_data) {
  ((counting_source_t *)user_data)->closed = 1;
}

static void callback_input_is_forward_only(void **state) {
  (void)state;
  counting_source_t source = {0};
  ap_io_callbacks_t callbacks = {
      .struct_size = sizeof callbacks,
      .read = counting_read,
      .close = counting_close,
  };
  ap_io_t *io = NULL;
  ap_error_t error = {0};
  char buffer[16];

  assert_int_equal(ap_io_open_callbacks(&callbacks, &source, &io, &error),
                   AP_OK);
  assert_false(ap_io_is_seekable(io));
  assert_int_equal(ap_io_size(io), -1);
  assert_int_equal(ap_io_read(io, buffer, sizeof buffer, &error), 5);
  assert_int_equal(ap_io_seek(io, 0, AP_SEEK_SET, &error), -1);
  assert_int_equal(error.code, AP_ERR_UNSUPPORTED);
  ap_io_close(io);
  assert_true(source.closed);
}

static void file_output_appears_only_when_finished(void **state) {
  (void)state;
  char directory[] = "/tmp/ap-test-XXXXXX";
  assert_non_null(mkdtemp(directory));
  char path[256];
  snprintf(path, sizeof path, "%s/out.bin", directory);

  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_output_open_file(path, &output, &error), AP_OK);
  assert_int_equal(ap_output_write(output, "abcd", 4, &error), AP_OK);
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(ap_output_finish(output, &error), AP_OK);
  ap_output_close(output);
  assert_int_equal(access(path, F_OK), 0);

  /* An abandoned output leaves nothing behind. */
  char abandoned[256];
  snprintf(abandoned, sizeof abandoned, "%s/abandoned.bin", directory);
  assert_int_equal(ap_output_open_file(abandoned, &output, &error), AP_OK);
  assert_int_equal(ap_output_write(output, "abcd", 4, &error), AP_OK);
  ap_output_close(output);
  assert_int_equal(access(abandoned, F_OK), -1);

  unlink(path);
  assert_int_equal(rmdir(directory), 0);
}

static void memory_output_rewrites_header(void **state) {
  (void)state;
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  size_t size = 0;

  assert_int_equal(ap_output_open_memory(&output, &error), AP_OK);
  assert_int_equal(ap_output_write(output, "XXXXbody", 8, &error), AP_OK);
  assert_int_equal(ap_output_seek(output, 0, AP_SEEK_SET, &error), 0);
  assert_int_equal(ap_output_write(output, "HEAD", 4, &error), AP_OK);
  assert_int_equal(ap_output_finish(output, &error), AP_OK);
  const char *data = ap_output_memory_data(output, &size);
  assert_int_equal(size, 8);
  assert_memory_equal(data, "HEADbody", 8);
  ap_output_close(output);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(memory_input_reads_and_seeks),
      cmocka_unit_test(file_input_reports_missing_path),
      cmocka_unit_test(callback_input_is_forward_only),
      cmocka_unit_test(file_output_appears_only_when_finished),
      cmocka_unit_test(memory_output_rewrites_header),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
