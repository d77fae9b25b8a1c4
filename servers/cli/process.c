/*
 * `audiopipe process FILE`: one decode pass that measures loudness, peaks
 * and silence and writes the requested waveforms and renditions, then
 * prints ap_process_result_to_json on standard output. Outputs appear
 * under their names only when the whole run succeeds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Enough for any real use; the bound keeps the arrays fixed-size. */
#define MAX_REQUESTS 16

typedef struct process_command {
  ap_process_options_t options;
  cli_limits_t limits;
  const char *path;
  int quiet;
  int has_normalize;
  double normalize_lufs;
  int has_ceiling;
  double ceiling_dbtp;

  cli_waveform_request_t waveforms[MAX_REQUESTS];
  ap_waveform_spec_t waveform_specs[MAX_REQUESTS];
  size_t waveform_count;
  cli_rendition_request_t renditions[MAX_REQUESTS];
  ap_rendition_spec_t rendition_specs[MAX_REQUESTS];
  size_t rendition_count;
  ap_output_t *outputs[2 * MAX_REQUESTS];
  size_t output_count;
} process_command_t;

static void print_process_usage(FILE *stream) {
  fprintf(stream, "Usage: %s process [OPTIONS] FILE\n\n", CLI_PROGRAM);
  fputs("Decodes FILE once, measures it and writes the requested outputs;\n"
        "prints the result as JSON on standard output. FILE may be - for\n"
        "standard input. Outputs are written beside their final name and\n"
        "renamed into place only when everything succeeded.\n"
        "\n"
        "Outputs (each may be repeated, up to 16 of each):\n"
        "  --waveform FORMAT[,MOD...]:SCALE:OUT\n"
        "      FORMAT  dat (audiowaveform binary, version 2) or json\n"
        "      MOD     bits=8 or bits=16 (default 16); split for one track\n"
        "              per channel, mono to mix them (default mono)\n"
        "      SCALE   samples per pixel, 256 or 256spp (1 to 16777216),\n"
        "              or pixels per second, 100pps (1 to 48000);\n"
        "              empty for 256 samples per pixel\n"
        "      e.g.    --waveform dat:256:peaks.dat\n"
        "              --waveform json,bits=8,split:100pps:peaks.json\n"
        "  --rendition CODEC[,MOD...]:BITRATE:OUT\n"
        "      CODEC   opus (Ogg Opus, 48 kHz), mp3, aac (M4A), flac, wav\n"
        "      BITRATE bits per second with optional k or M: 64k, 128000;\n"
        "              empty for the codec default (opus 64k, mp3 128k,\n"
        "              aac 128k); must be empty for flac and wav\n"
        "      MOD     rate=HZ (default: source rate), channels=1 or 2\n"
        "              (default: source layout), bits=16 or 24 for flac and\n"
        "              wav (default 16), normalize=LUFS, ceiling=DBTP,\n"
        "              name=NAME (default: codec and bit rate, opus_64k)\n"
        "      e.g.    --rendition opus:64k:out.opus\n"
        "              --rendition mp3,rate=44100,channels=1:128k:out.mp3\n"
        "              --rendition flac::out.flac\n"
        "\n"
        "Options:\n",
        stream);
  static const char *const lines[][2] = {
      {"--normalize LUFS",
       "normalise every rendition to this integrated loudness in LUFS, "
       "such as -16 (default: off; costs a second decode pass)"},
      {"--true-peak-ceiling DBTP",
       "highest true peak after normalisation, in dBTP (default -1)"},
      {"--dual-mono",
       "measure mono as two identical channels, as ffmpeg's ebur128 "
       "dualmono does (default: one channel, as BS.1770 defines)"},
      {"--silence-threshold DBFS",
       "level below which audio counts as silence (default -60)"},
      {"--threads N",
       "worker threads for analysis and encoders, 0 to 256; 0 picks one "
       "per task up to the core count, 1 runs on one thread (default 0)"},
      {"--quiet", "no progress bar (errors are still printed)"},
      {"-h, --help", "show this help"},
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    fprintf(stream, "  %-26s %s\n", lines[i][0], lines[i][1]);
  }
  fputs("\nLimits:\n", stream);
  cli_limit_options_print(stream);
  fputs("\nThe progress bar is drawn on standard error only when it is a\n"
        "terminal.\n",
        stream);
}

/* Parses one option or the FILE argument; returns an exit code. */
static int parse_argument(process_command_t *command, int argc, char **argv,
                          int *index) {
  const char *argument = argv[*index];
  const char *value = NULL;
  int matched = 0;
  int status = CLI_EXIT_OK;

  if (strcmp(argument, "--dual-mono") == 0) {
    command->options.mono_convention = AP_LOUDNESS_DUAL_MONO;
    return CLI_EXIT_OK;
  }
  if (strcmp(argument, "--quiet") == 0) {
    command->quiet = 1;
    return CLI_EXIT_OK;
  }
  if (cli_limits_match(&command->limits, argc, argv, index, &status)) {
    return status;
  }

  if ((matched = cli_option_value(argc, argv, index, "--waveform", &value))) {
    if (matched < 0) {
      return CLI_EXIT_USAGE;
    }
    if (command->waveform_count == MAX_REQUESTS) {
      return cli_usage_error("too many --waveform options: at most %d",
                             MAX_REQUESTS);
    }
    /* argv strings are writable and live until exit, so the request may
     * split this one in place and keep pointers into it. */
    cli_waveform_request_t *request =
        &command->waveforms[command->waveform_count];
    if (cli_parse_waveform_request((char *)value, request) != 0) {
      return CLI_EXIT_USAGE;
    }
    command->waveform_count++;
    return CLI_EXIT_OK;
  }
  if ((matched = cli_option_value(argc, argv, index, "--rendition", &value))) {
    if (matched < 0) {
      return CLI_EXIT_USAGE;
    }
    if (command->rendition_count == MAX_REQUESTS) {
      return cli_usage_error("too many --rendition options: at most %d",
                             MAX_REQUESTS);
    }
    cli_rendition_request_t *request =
        &command->renditions[command->rendition_count];
    if (cli_parse_rendition_request((char *)value, request) != 0) {
      return CLI_EXIT_USAGE;
    }
    command->rendition_count++;
    return CLI_EXIT_OK;
  }
  if ((matched = cli_option_value(argc, argv, index, "--normalize", &value))) {
    if (matched < 0 || cli_parse_double("--normalize", value, -70.0, 0.0,
                                        &command->normalize_lufs) != 0) {
      return CLI_EXIT_USAGE;
    }
    command->has_normalize = 1;
    return CLI_EXIT_OK;
  }
  if ((matched = cli_option_value(argc, argv, index, "--true-peak-ceiling",
                                  &value))) {
    if (matched < 0 || cli_parse_double("--true-peak-ceiling", value, -70.0,
                                        0.0, &command->ceiling_dbtp) != 0) {
      return CLI_EXIT_USAGE;
    }
    command->has_ceiling = 1;
    return CLI_EXIT_OK;
  }
  if ((matched = cli_option_value(argc, argv, index, "--silence-threshold",
                                  &value))) {
    if (matched < 0 ||
        cli_parse_double("--silence-threshold", value, -200.0, 0.0,
                         &command->options.silence_threshold_dbfs) != 0) {
      return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
  }
  if ((matched = cli_option_value(argc, argv, index, "--threads", &value))) {
    int64_t threads = 0;
    if (matched < 0 ||
        cli_parse_int("--threads", value, 0, 256, &threads) != 0) {
      return CLI_EXIT_USAGE;
    }
    command->options.max_threads = (int)threads;
    return CLI_EXIT_OK;
  }

  if (argument[0] == '-' && argument[1] != '\0') {
    return cli_usage_error("unknown option \"%s\" for process: run `%s "
                           "process --help`",
                           argument, CLI_PROGRAM);
  }
  if (command->path) {
    return cli_usage_error("process takes one FILE, got \"%s\" and \"%s\"",
                           command->path, argument);
  }
  command->path = argument;
  return CLI_EXIT_OK;
}

/* Opens every output and checks every spec; returns an exit code. */
static int prepare_outputs(process_command_t *command) {
  ap_error_t error = {0};
  char what[256];

  const char *paths[2 * MAX_REQUESTS];
  size_t path_count = 0;
  for (size_t i = 0; i < command->waveform_count; i++) {
    paths[path_count++] = command->waveforms[i].path;
  }
  for (size_t i = 0; i < command->rendition_count; i++) {
    paths[path_count++] = command->renditions[i].path;
  }
  int status = cli_check_output_paths(command->path, paths, path_count);
  if (status != CLI_EXIT_OK) {
    return status;
  }

  for (size_t i = 0; i < command->waveform_count; i++) {
    cli_waveform_request_t *request = &command->waveforms[i];
    ap_output_t **output = &command->outputs[command->output_count];
    if (ap_output_open_file(request->path, output, &error) != AP_OK) {
      snprintf(what, sizeof what, "opening waveform output \"%s\" failed",
               request->path);
      return cli_report_error(what, &error, 1);
    }
    command->output_count++;
    request->spec.output = *output;
    if (ap_waveform_spec_validate(&request->spec, &error) != AP_OK) {
      snprintf(what, sizeof what, "invalid --waveform for \"%s\"",
               request->path);
      cli_report_error(what, &error, 0);
      return CLI_EXIT_USAGE;
    }
    command->waveform_specs[i] = request->spec;
  }

  for (size_t i = 0; i < command->rendition_count; i++) {
    cli_rendition_request_t *request = &command->renditions[i];
    ap_rendition_spec_t *spec = &request->spec;
    if (command->has_normalize && !request->has_normalize) {
      spec->normalize = 1;
      spec->target_lufs = command->normalize_lufs;
    }
    if (command->has_ceiling && !request->has_ceiling) {
      spec->true_peak_ceiling_dbtp = command->ceiling_dbtp;
    }

    ap_output_t **output = &command->outputs[command->output_count];
    if (ap_output_open_file(request->path, output, &error) != AP_OK) {
      snprintf(what, sizeof what, "opening rendition output \"%s\" failed",
               request->path);
      return cli_report_error(what, &error, 1);
    }
    command->output_count++;
    spec->output = *output;
    if (ap_rendition_spec_validate(spec, &error) != AP_OK) {
      snprintf(what, sizeof what, "invalid --rendition for \"%s\"",
               request->path);
      cli_report_error(what, &error, 0);
      return CLI_EXIT_USAGE;
    }
    command->rendition_specs[i] = *spec;
  }

  command->options.waveforms = command->waveform_specs;
  command->options.waveform_count = command->waveform_count;
  command->options.renditions = command->rendition_specs;
  command->options.rendition_count = command->rendition_count;
  return CLI_EXIT_OK;
}

/* Runs the pipeline and prints the result; returns an exit code. */
static int run_process(process_command_t *command) {
  ap_error_t error = {0};
  cli_input_t input;
  if (cli_input_open(command->path, &input, &error) != AP_OK) {
    return cli_report_error("opening the input failed", &error, 0);
  }

  cli_progress_t progress;
  cli_progress_init(&progress, !command->quiet);
  cli_progress_catch_signals();
  command->options.progress = cli_progress_update;
  command->options.progress_user_data = &progress;

  ap_process_result_t *result = NULL;
  ap_status_t status = ap_process(input.io, &command->options, &result, &error);
  cli_progress_finish(&progress);

  int exit_code = CLI_EXIT_OK;
  int signal_number = cli_progress_caught_signal();
  if (status == AP_ERR_CANCELLED && signal_number) {
    fprintf(stderr, "%s: stopped by signal %d: no output was written\n",
            CLI_PROGRAM, signal_number);
    exit_code = CLI_EXIT_SIGNAL_BASE + signal_number;
  } else if (status != AP_OK) {
    /* An I/O error that no input read reported came from an output. */
    int output_failed = (error.code == AP_ERR_IO && !input.read_failed) ||
                        error.code == AP_ERR_ENCODE;
    exit_code =
        cli_report_error("processing the input failed", &error, output_failed);
  } else {
    char *json = NULL;
    if (ap_process_result_to_json(result, &json, &error) != AP_OK) {
      exit_code = cli_report_error("serialising the result failed", &error, 0);
    } else {
      exit_code = cli_print_json(json);
    }
    ap_free(json);
  }

  ap_process_result_free(result);
  cli_input_close(&input);
  return exit_code;
}

int cli_process_main(int argc, char **argv) {
  process_command_t *command = calloc(1, sizeof *command);
  if (!command) {
    fprintf(stderr, "%s: starting process failed: out of memory (no_memory)\n",
            CLI_PROGRAM);
    return CLI_EXIT_INTERNAL;
  }
  ap_process_options_init(&command->options);

  int status = cli_limits_init(&command->limits);
  for (int i = 1; i < argc && status == CLI_EXIT_OK; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      print_process_usage(stdout);
      cli_limits_free(&command->limits);
      free(command);
      return CLI_EXIT_OK;
    }
    status = parse_argument(command, argc, argv, &i);
  }
  if (status == CLI_EXIT_OK && !command->path) {
    status = cli_usage_error("process needs a FILE: run `%s process --help`",
                             CLI_PROGRAM);
  }
  if (status == CLI_EXIT_OK) {
    status = cli_limits_finish(&command->limits, &command->options.limits);
  }
  if (status == CLI_EXIT_OK) {
    status = prepare_outputs(command);
  }
  if (status == CLI_EXIT_OK) {
    status = run_process(command);
  }

  /* ap_process finished the outputs on success; closing an unfinished
   * one removes its temporary file. */
  for (size_t i = 0; i < command->output_count; i++) {
    ap_output_close(command->outputs[i]);
  }
  cli_limits_free(&command->limits);
  free(command);
  return status;
}
