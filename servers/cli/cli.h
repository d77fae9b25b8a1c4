/*
 * Shared declarations of the audiopipe command-line tool: the subcommand
 * table entry, exit codes, strict parsing of user numbers, error reporting,
 * input opening and the terminal progress bar. Each subcommand lives in
 * its own file and is listed once in main.c.
 */
#ifndef AUDIOPIPE_CLI_H
#define AUDIOPIPE_CLI_H

#include <stdint.h>
#include <stdio.h>

#include <audiopipe/audiopipe.h>

/* Exit codes, documented in `audiopipe --help`. */
enum cli_exit_code {
  CLI_EXIT_OK = 0,
  CLI_EXIT_INPUT = 1,   /* the input was rejected or failed to decode */
  CLI_EXIT_USAGE = 2,   /* bad command line */
  CLI_EXIT_OUTPUT = 3,  /* writing an output failed */
  CLI_EXIT_INTERNAL = 4 /* out of memory or a library bug */
};

/* A run stopped by SIGINT or SIGTERM exits with 128 plus the signal
 * number (130, 143), as shells report it, after discarding its outputs. */
#define CLI_EXIT_SIGNAL_BASE 128

/* One subcommand: `run` receives argv with argv[0] set to the subcommand
 * name and returns an exit code. */
typedef struct cli_command {
  const char *name;
  const char *summary; /* one line for `audiopipe --help` */
  int (*run)(int argc, char **argv);
} cli_command_t;

int cli_probe_main(int argc, char **argv);
int cli_process_main(int argc, char **argv);
int cli_config_main(int argc, char **argv);
int cli_backup_main(int argc, char **argv);
int cli_migrate_main(int argc, char **argv);
int cli_restore_main(int argc, char **argv);

/* Program name used as the prefix of every error line. */
#define CLI_PROGRAM "audiopipe"

/*
 * Strict number parsing. Each function accepts the whole string or fails,
 * printing one usage error line that names `option` and `text`, and
 * returns 0 on success or -1 on failure. No leading or trailing spaces,
 * no empty strings, no overflow.
 */
int cli_parse_int(const char *option, const char *text, int64_t min,
                  int64_t max, int64_t *value);
int cli_parse_double(const char *option, const char *text, double min,
                     double max, double *value);
/* A bit rate in bits per second with an optional k (1000) or M (1000000)
 * suffix: "64k", "128000", "1.5M". */
int cli_parse_bitrate(const char *option, const char *text, int64_t *value);

/*
 * Matches argv[*index] against the option `name` that takes a value,
 * written either as `--name VALUE` or `--name=VALUE`. Returns 1 and stores
 * the value (advancing *index past it), 0 when the argument is another
 * option, or -1 after printing a usage error when the value is missing.
 */
int cli_option_value(int argc, char **argv, int *index, const char *name,
                     const char **value);

/* Prints `audiopipe: <what> (invalid_argument)` as a usage error and
 * returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *format, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * Prints `audiopipe: <what>: <message> (<code name>)` for a library error
 * and returns the exit code for it. `output_failed` is non-zero when the
 * failure is known to come from writing an output rather than from the
 * input, which decides between CLI_EXIT_OUTPUT and CLI_EXIT_INPUT for
 * I/O errors.
 */
int cli_report_error(const char *what, const ap_error_t *error,
                     int output_failed);

/* Maps a library error to an exit code, as cli_report_error does. */
int cli_exit_code_for(const ap_error_t *error, int output_failed);

/*
 * An input opened from a path, or from standard input when the path is
 * "-" (then forward-only). `read_failed` becomes non-zero when a read of
 * the input itself failed, so a later I/O error can be attributed to the
 * input or to an output.
 */
typedef struct cli_input {
  ap_io_t *io;   /* owned; close with cli_input_close */
  ap_io_t *file; /* the underlying file stream, NULL for stdin */
  int read_failed;
} cli_input_t;

ap_status_t cli_input_open(const char *path, cli_input_t *input,
                           ap_error_t *error);
void cli_input_close(cli_input_t *input);

/*
 * Progress bar on standard error. It draws only when standard error is a
 * terminal and `enabled` is non-zero, so redirected output never contains
 * control characters. Use cli_progress_update as the ap_progress_fn with
 * the bar as user data.
 */
typedef struct cli_progress {
  int active;        /* drawing is allowed */
  int drawn;         /* a bar is on the screen */
  int last_permille; /* last value drawn, to redraw only on change */
  const char *last_stage;
} cli_progress_t;

void cli_progress_init(cli_progress_t *progress, int enabled);
/* Draws the bar, and returns non-zero (cancelling the operation) once
 * SIGINT or SIGTERM arrived after cli_progress_catch_signals. */
int cli_progress_update(void *user_data, double fraction, const char *stage);
/* Erases the bar so the terminal is left as it was. */
void cli_progress_finish(cli_progress_t *progress);

/* Installs SIGINT and SIGTERM handlers that make cli_progress_update
 * cancel the running operation, so its outputs are discarded instead of
 * left half-written. */
void cli_progress_catch_signals(void);
/* Returns the signal that cancelled the run, or 0. */
int cli_progress_caught_signal(void);

/*
 * Rejects, as a usage error, an output path that names the input file or
 * another output. Returns an exit code. `input` is a path or "-".
 */
int cli_check_output_paths(const char *input, const char *const *outputs,
                           size_t output_count);

/*
 * Limit options shared by the subcommands that read media. Each option
 * maps to a limits.* configuration key, so values take the same units and
 * suffixes as AUDIOPIPE_LIMITS_* variables, which give the defaults.
 */
typedef struct cli_limit_option {
  const char *option; /* "--max-duration" */
  const char *key;    /* "limits.max_duration" */
  const char *help;   /* unit and default for --help */
} cli_limit_option_t;

extern const cli_limit_option_t cli_limit_options[];
extern const size_t cli_limit_option_count;

/* Returns the entry for `option`, or NULL when it is not a limit option. */
const cli_limit_option_t *cli_limit_option_find(const char *option);
/* Prints the limit options' help lines to `stream`. */
void cli_limit_options_print(FILE *stream);

/*
 * Limits under construction: starts from the AUDIOPIPE_LIMITS_*
 * environment, takes command-line values with cli_limits_set and produces
 * an ap_limits_t with cli_limits_finish.
 */
typedef struct cli_limits {
  ap_config_t *config;
} cli_limits_t;

/* Returns an exit code: CLI_EXIT_OK or the failure's. */
int cli_limits_init(cli_limits_t *limits);
int cli_limits_set(cli_limits_t *limits, const cli_limit_option_t *option,
                   const char *value);
/*
 * Consumes argv[*index] when it is a limit option (with its value) and
 * returns 1, or returns 0 when it is not one. On a bad value it stores
 * CLI_EXIT_USAGE in *status and returns 1.
 */
int cli_limits_match(cli_limits_t *limits, int argc, char **argv, int *index,
                     int *status);
int cli_limits_finish(cli_limits_t *limits, ap_limits_t *out);
void cli_limits_free(cli_limits_t *limits);

/*
 * Output specifications of `audiopipe process`, parsed from
 * `FORMAT[,MODIFIER...]:SCALE:OUT` and `CODEC[,MODIFIER...]:BITRATE:OUT`.
 * `text` is modified in place and must outlive the spec, whose path
 * points into it. Each returns 0, or -1 after printing a usage error.
 */
typedef struct cli_waveform_request {
  ap_waveform_spec_t spec;
  const char *path;
} cli_waveform_request_t;

typedef struct cli_rendition_request {
  ap_rendition_spec_t spec;
  const char *path;
  int has_normalize; /* normalize= given: the global --normalize yields */
  int has_ceiling;   /* ceiling= given: --true-peak-ceiling yields */
} cli_rendition_request_t;

int cli_parse_waveform_request(char *text, cli_waveform_request_t *request);
int cli_parse_rendition_request(char *text, cli_rendition_request_t *request);

/* Writes `json` and a newline to standard output; returns an exit code. */
int cli_print_json(const char *json);

#endif
