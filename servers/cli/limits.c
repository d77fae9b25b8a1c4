/*
 * Limit options (--max-duration and the rest). Each one sets a limits.*
 * configuration key, so the command line, the AUDIOPIPE_LIMITS_*
 * environment and embedding programs share one parser, one set of units
 * and one set of ranges.
 */
#include <string.h>

#include "cli.h"

const cli_limit_option_t cli_limit_options[] = {
    {"--max-input-bytes", "limits.max_input_bytes",
     "largest input in bytes; suffixes K, M, G (default 2G)"},
    {"--max-duration", "limits.max_duration",
     "longest audio; units ms, s, m, h (default 6h)"},
    {"--max-channels", "limits.max_channels",
     "most channels, 1 to 255 (default 32)"},
    {"--max-sample-rate", "limits.max_sample_rate",
     "highest sample rate in Hz (default 384000)"},
    {"--max-decode-time", "limits.max_decode_time",
     "wall-clock decoding budget; units ms, s, m, h (default 30m)"},
    {"--max-decoded-samples", "limits.max_decoded_samples",
     "decoded samples budget, frames times channels (default 16588800000)"},
};

const size_t cli_limit_option_count =
    sizeof cli_limit_options / sizeof cli_limit_options[0];

const cli_limit_option_t *cli_limit_option_find(const char *option) {
  for (size_t i = 0; i < cli_limit_option_count; i++) {
    if (strcmp(cli_limit_options[i].option, option) == 0) {
      return &cli_limit_options[i];
    }
  }
  return NULL;
}

void cli_limit_options_print(FILE *stream) {
  for (size_t i = 0; i < cli_limit_option_count; i++) {
    fprintf(stream, "  %-26s %s\n", cli_limit_options[i].option,
            cli_limit_options[i].help);
  }
  fprintf(stream, "  %-26s %s\n", "",
          "Unset limits come from AUDIOPIPE_LIMITS_* variables, such as");
  fprintf(stream, "  %-26s %s\n", "",
          "AUDIOPIPE_LIMITS_MAX_DURATION=2h; 0 means no limit.");
}

int cli_limits_init(cli_limits_t *limits) {
  ap_error_t error = {0};
  limits->config = NULL;
  if (ap_config_from_env(&limits->config, &error) != AP_OK) {
    return cli_report_error("reading AUDIOPIPE_* variables failed", &error, 0);
  }
  return CLI_EXIT_OK;
}

int cli_limits_set(cli_limits_t *limits, const cli_limit_option_t *option,
                   const char *value) {
  ap_error_t error = {0};
  if (ap_config_set(limits->config, option->key, value, &error) != AP_OK) {
    char what[64];
    snprintf(what, sizeof what, "invalid %s", option->option);
    cli_report_error(what, &error, 0);
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

int cli_limits_match(cli_limits_t *limits, int argc, char **argv, int *index,
                     int *status) {
  for (size_t i = 0; i < cli_limit_option_count; i++) {
    const char *value = NULL;
    int matched = cli_option_value(argc, argv, index,
                                   cli_limit_options[i].option, &value);
    if (matched < 0) {
      *status = CLI_EXIT_USAGE;
      return 1;
    }
    if (matched > 0) {
      *status = cli_limits_set(limits, &cli_limit_options[i], value);
      return 1;
    }
  }
  return 0;
}

int cli_limits_finish(cli_limits_t *limits, ap_limits_t *out) {
  ap_error_t error = {0};
  if (ap_limits_from_config(limits->config, out, &error) != AP_OK) {
    /* The message names the configuration key; name the option too. */
    char what[64] = "invalid limit";
    for (size_t i = 0; i < cli_limit_option_count; i++) {
      if (strstr(error.message, cli_limit_options[i].key)) {
        snprintf(what, sizeof what, "invalid %s", cli_limit_options[i].option);
        break;
      }
    }
    cli_report_error(what, &error, 0);
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

void cli_limits_free(cli_limits_t *limits) {
  ap_config_free(limits->config);
  limits->config = NULL;
}
