/*
 * `audiopipe probe FILE`: prints what the input is (container, codec,
 * sample rate, channels, measured duration, tags, cover art) as the JSON
 * of ap_media_info_to_json.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void print_probe_usage(FILE *stream) {
  fprintf(stream,
          "Usage: %s probe [OPTIONS] FILE\n\n"
          "Prints the media info of FILE as JSON on standard output. The\n"
          "container is identified from the bytes, not the file name.\n"
          "FILE may be - for standard input.\n\n"
          "Options:\n"
          "  %-26s %s\n"
          "  %-26s %s\n",
          CLI_PROGRAM, "--scan",
          "measure the duration by scanning every packet even when the "
          "headers state one (default: off)",
          "-h, --help", "show this help");
  fputs("\nLimits:\n", stream);
  cli_limit_options_print(stream);
}

int cli_probe_main(int argc, char **argv) {
  ap_probe_options_t options;
  ap_probe_options_init(&options);

  cli_limits_t limits;
  int status = cli_limits_init(&limits);
  if (status != CLI_EXIT_OK) {
    return status;
  }

  /* Parse the command line. */
  const char *path = NULL;
  for (int i = 1; i < argc && status == CLI_EXIT_OK; i++) {
    const char *argument = argv[i];
    if (strcmp(argument, "-h") == 0 || strcmp(argument, "--help") == 0) {
      print_probe_usage(stdout);
      cli_limits_free(&limits);
      return CLI_EXIT_OK;
    }
    if (strcmp(argument, "--scan") == 0) {
      options.always_scan = 1;
      continue;
    }

    if (cli_limits_match(&limits, argc, argv, &i, &status)) {
      continue;
    }

    if (argument[0] == '-' && argument[1] != '\0') {
      status = cli_usage_error("unknown option \"%s\" for probe: run `%s "
                               "probe --help`",
                               argument, CLI_PROGRAM);
    } else if (path) {
      status = cli_usage_error("probe takes one FILE, got \"%s\" and \"%s\"",
                               path, argument);
    } else {
      path = argument;
    }
  }
  if (status == CLI_EXIT_OK && !path) {
    status = cli_usage_error("probe needs a FILE: run `%s probe --help`",
                             CLI_PROGRAM);
  }
  if (status == CLI_EXIT_OK) {
    status = cli_limits_finish(&limits, &options.limits);
  }
  cli_limits_free(&limits);
  if (status != CLI_EXIT_OK) {
    return status;
  }

  /* Probe and print. */
  ap_error_t error = {0};
  cli_input_t input;
  if (cli_input_open(path, &input, &error) != AP_OK) {
    return cli_report_error("opening the input failed", &error, 0);
  }

  ap_media_info_t *info = NULL;
  char *json = NULL;
  if (ap_probe(input.io, &options, &info, &error) != AP_OK) {
    status = cli_report_error("probing the input failed", &error, 0);
  } else if (ap_media_info_to_json(info, &json, &error) != AP_OK) {
    status = cli_report_error("serialising the media info failed", &error, 0);
  } else {
    status = cli_print_json(json);
  }

  ap_free(json);
  ap_media_info_free(info);
  cli_input_close(&input);
  return status;
}
