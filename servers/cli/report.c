/*
 * Error lines and exit codes. Every failure prints exactly one line,
 * `audiopipe: <what failed>: <message> (<code name>)`, so scripts can
 * match the stable code name and people can read the message.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_usage_error(const char *format, ...) {
  va_list arguments;
  va_start(arguments, format);
  fprintf(stderr, "%s: ", CLI_PROGRAM);
  vfprintf(stderr, format, arguments);
  fprintf(stderr, " (%s)\n", ap_error_code_name(AP_ERR_INVALID_ARGUMENT));
  va_end(arguments);
  return CLI_EXIT_USAGE;
}

int cli_exit_code_for(const ap_error_t *error, int output_failed) {
  int code = (int)error->code;

  /* Codes 100-199 are about the media input itself. */
  if (code >= 100 && code < 200) {
    return code == AP_ERR_ENCODE ? CLI_EXIT_OUTPUT : CLI_EXIT_INPUT;
  }

  switch (code) {
  case AP_ERR_INVALID_ARGUMENT:
  case AP_ERR_INVALID_CONFIG:
    return CLI_EXIT_USAGE;
  case AP_ERR_IO:
  case AP_ERR_NOT_FOUND:
  case AP_ERR_PERMISSION:
    return output_failed ? CLI_EXIT_OUTPUT : CLI_EXIT_INPUT;
  case AP_ERR_UNSUPPORTED:
  case AP_ERR_CANCELLED:
  case AP_ERR_TIMED_OUT:
    return CLI_EXIT_INPUT;
  default:
    return CLI_EXIT_INTERNAL;
  }
}

int cli_report_error(const char *what, const ap_error_t *error,
                     int output_failed) {
  const char *message = error->message[0] != '\0'
                            ? error->message
                            : ap_error_code_description((int)error->code);
  fprintf(stderr, "%s: %s: %s (%s)\n", CLI_PROGRAM, what, message,
          ap_error_code_name((int)error->code));
  return cli_exit_code_for(error, output_failed);
}

int cli_print_json(const char *json) {
  errno = 0;
  if (fputs(json, stdout) == EOF || fputc('\n', stdout) == EOF ||
      fflush(stdout) == EOF) {
    fprintf(stderr, "%s: writing standard output failed: %s (io_error)\n",
            CLI_PROGRAM, errno != 0 ? strerror(errno) : "write error");
    return CLI_EXIT_OUTPUT;
  }
  return CLI_EXIT_OK;
}
