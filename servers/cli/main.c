/*
 * The audiopipe command-line tool: dispatches to one subcommand per file.
 * To add a subcommand, write its <name>.c with a cli_<name>_main function,
 * declare it in cli.h and add one line to the table below.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command_t commands[] = {
    {"probe", "describe an input: container, codec, duration, tags",
     cli_probe_main},
    {"process", "analyse an input and write waveforms and renditions",
     cli_process_main},
    {"config", "list every AUDIOPIPE_* setting with its default and unit",
     cli_config_main},
    {"backup", "back up the metadata database and object store online",
     cli_backup_main},
    {"restore", "restore a backup into empty data paths", cli_restore_main},
    {"migrate", "apply missing metadata schema migrations", cli_migrate_main},
};

static const size_t command_count = sizeof commands / sizeof commands[0];

static void print_usage(FILE *stream) {
  fprintf(stream, "Usage: %s COMMAND [OPTIONS] FILE\n\n", CLI_PROGRAM);
  fputs("Probe, analyse and transcode audio with libaudiopipe.\n\n"
        "Commands:\n",
        stream);
  for (size_t i = 0; i < command_count; i++) {
    fprintf(stream, "  %-10s %s\n", commands[i].name, commands[i].summary);
  }
  fprintf(stream,
          "\nOptions:\n"
          "  -h, --help     show this help; `%s COMMAND --help` for a "
          "command\n"
          "  --version      show the tool and library versions\n"
          "\nFILE may be - to read standard input (forward-only, so an M4A\n"
          "with its index at the end cannot be read that way).\n"
          "\nExit codes:\n"
          "  0  success\n"
          "  1  the input was rejected or failed to decode\n"
          "  2  usage error (unknown option, invalid value)\n"
          "  3  writing an output failed\n"
          "  4  internal error (out of memory, library bug)\n"
          "  130, 143  stopped by SIGINT or SIGTERM; outputs discarded\n"
          "\nResults are JSON on standard output; errors are one line on\n"
          "standard error: `%s: <what failed>: <message> (<code name>)`.\n",
          CLI_PROGRAM, CLI_PROGRAM);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return CLI_EXIT_USAGE;
  }

  const char *name = argv[1];
  if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 ||
      strcmp(name, "help") == 0) {
    print_usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(name, "--version") == 0) {
    printf("%s %s (libaudiopipe %s)\n", CLI_PROGRAM, AP_VERSION_STRING,
           ap_version_string());
    return CLI_EXIT_OK;
  }

  for (size_t i = 0; i < command_count; i++) {
    if (strcmp(commands[i].name, name) == 0) {
      return commands[i].run(argc - 1, argv + 1);
    }
  }

  return cli_usage_error("unknown command \"%s\": run `%s --help` for the "
                         "list",
                         name, CLI_PROGRAM);
}
