/*
 * Opening the input named on the command line. Both a file and standard
 * input are wrapped in the same callbacks so that a read failure is
 * recorded here: the library reports input and output failures with the
 * same AP_ERR_IO code, and the exit code must tell them apart.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int64_t file_read(void *user_data, void *buffer, size_t size,
                         ap_error_t *error) {
  cli_input_t *input = user_data;
  int64_t count = ap_io_read(input->file, buffer, size, error);
  if (count < 0) {
    input->read_failed = 1;
  }
  return count;
}

static int64_t file_seek(void *user_data, int64_t offset, int whence,
                         ap_error_t *error) {
  cli_input_t *input = user_data;
  return ap_io_seek(input->file, offset, whence, error);
}

static int64_t file_size(void *user_data) {
  cli_input_t *input = user_data;
  return ap_io_size(input->file);
}

static int64_t stdin_read(void *user_data, void *buffer, size_t size,
                          ap_error_t *error) {
  cli_input_t *input = user_data;
  for (;;) {
    ssize_t count = read(STDIN_FILENO, buffer, size);
    if (count >= 0) {
      return (int64_t)count;
    }
    if (errno == EINTR) {
      continue;
    }
    input->read_failed = 1;
    if (error) {
      error->domain = AP_DOMAIN_IO;
      error->code = AP_ERR_IO;
      snprintf(error->message, sizeof error->message,
               "reading standard input failed: %s", strerror(errno));
    }
    return -1;
  }
}

ap_status_t cli_input_open(const char *path, cli_input_t *input,
                           ap_error_t *error) {
  memset(input, 0, sizeof *input);

  ap_io_callbacks_t callbacks;
  memset(&callbacks, 0, sizeof callbacks);
  callbacks.struct_size = sizeof callbacks;

  /* Standard input is treated as a pipe even when it is a redirected
   * file, so "-" behaves the same wherever the bytes come from. */
  if (strcmp(path, "-") == 0) {
    callbacks.read = stdin_read;
    return ap_io_open_callbacks(&callbacks, input, &input->io, error);
  }

  ap_status_t status = ap_io_open_file(path, &input->file, error);
  if (status != AP_OK) {
    return status;
  }
  callbacks.read = file_read;
  callbacks.size = file_size;
  if (ap_io_is_seekable(input->file)) {
    callbacks.seek = file_seek;
  }
  status = ap_io_open_callbacks(&callbacks, input, &input->io, error);
  if (status != AP_OK) {
    ap_io_close(input->file);
    input->file = NULL;
  }
  return status;
}

void cli_input_close(cli_input_t *input) {
  ap_io_close(input->io);
  ap_io_close(input->file);
  input->io = NULL;
  input->file = NULL;
}
