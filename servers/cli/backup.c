/*
 * `audiopipe backup DEST` and `audiopipe restore SOURCE`: online backup
 * of the embedded metadata database and file object store named by the
 * AUDIOPIPE_* environment, and restore into fresh paths
 * (ap_context_backup, ap_context_restore).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <audiopipe/context.h>

#include "cli.h"

static void print_backup_usage(FILE *stream) {
  fputs("Usage: audiopipe backup [--quiet] DEST\n"
        "\n"
        "Copies the SQLite metadata database (metadata.uri) with SQLite's\n"
        "online backup API into DEST/meta.db, then the files of the object\n"
        "store (objects.uri) into DEST/objects, listed in DEST/MANIFEST.\n"
        "Safe while audiopipe-httpd and audiopipe-worker are writing. DEST\n"
        "must be missing or empty. Backends come from the AUDIOPIPE_*\n"
        "environment, as for the servers. Exits 3 when DEST is not empty.\n"
        "\n"
        "  --quiet  print no progress on standard error\n"
        "  --help   show this help\n",
        stream);
}

static void print_restore_usage(FILE *stream) {
  fputs("Usage: audiopipe restore SOURCE\n"
        "\n"
        "Restores a directory written by `audiopipe backup` into the paths\n"
        "of metadata.uri and objects.uri from the AUDIOPIPE_* environment.\n"
        "The database file must not exist and the object store root must\n"
        "be missing or empty: nothing is overwritten, and the command exits\n"
        "3 instead. Stop the servers first.\n"
        "\n"
        "  --help   show this help\n",
        stream);
}

/* A destination that is not empty is an output that cannot be written
 * (exit 3), not an internal error. */
static int exit_code_for(int reported, const ap_error_t *error) {
  return error->code == AP_ERR_CONFLICT ? CLI_EXIT_OUTPUT : reported;
}

static void print_progress(void *user_data, int64_t pages_done,
                           int64_t pages_total) {
  (void)user_data;
  fprintf(stderr, "\rdatabase: %lld of %lld pages", (long long)pages_done,
          (long long)pages_total);
  if (pages_done == pages_total) {
    fputc('\n', stderr);
  }
}

/* Parses "[--quiet] PATH"; returns 0, 1 after --help, or -1 on a usage
 * error (printed). */
static int parse_arguments(int argc, char **argv, int allow_quiet,
                           void (*usage)(FILE *), int *quiet,
                           const char **path) {
  *path = NULL;
  for (int i = 1; i < argc; i++) {
    const char *argument = argv[i];
    if (strcmp(argument, "--help") == 0 || strcmp(argument, "-h") == 0) {
      usage(stdout);
      return 1;
    }
    if (allow_quiet && strcmp(argument, "--quiet") == 0) {
      *quiet = 1;
    } else if (argument[0] == '-' && argument[1] != '\0') {
      cli_usage_error("unknown option \"%s\" for %s", argument, argv[0]);
      return -1;
    } else if (*path) {
      cli_usage_error("%s takes one path, got \"%s\" and \"%s\"", argv[0],
                      *path, argument);
      return -1;
    } else {
      *path = argument;
    }
  }
  if (!*path) {
    cli_usage_error("%s: missing the directory path", argv[0]);
    return -1;
  }
  return 0;
}

int cli_backup_main(int argc, char **argv) {
  int quiet = 0;
  const char *destination = NULL;
  int parsed =
      parse_arguments(argc, argv, 1, print_backup_usage, &quiet, &destination);
  if (parsed != 0) {
    return parsed > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
  }

  ap_error_t error = {0};
  ap_config_t *config = NULL;
  if (ap_config_from_env(&config, &error) != AP_OK) {
    return cli_report_error("reading the configuration failed", &error, 0);
  }
  ap_context_t *context = NULL;
  if (ap_context_open(config, &context, &error) != AP_OK) {
    ap_config_free(config);
    return cli_report_error("opening the backends failed", &error, 0);
  }
  int show = !quiet && isatty(STDERR_FILENO);
  ap_backup_summary_t summary = {0};
  ap_status_t status =
      ap_context_backup(context, destination, show ? print_progress : NULL,
                        NULL, &summary, &error);
  ap_context_close(context);
  ap_config_free(config);
  if (status != AP_OK) {
    return exit_code_for(cli_report_error("backup failed", &error, 1), &error);
  }
  printf("backed up the database and %lld objects to %s\n",
         (long long)summary.objects, destination);
  return CLI_EXIT_OK;
}

int cli_restore_main(int argc, char **argv) {
  int quiet = 0;
  const char *source = NULL;
  int parsed =
      parse_arguments(argc, argv, 0, print_restore_usage, &quiet, &source);
  if (parsed != 0) {
    return parsed > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
  }

  ap_error_t error = {0};
  ap_config_t *config = NULL;
  if (ap_config_from_env(&config, &error) != AP_OK) {
    return cli_report_error("reading the configuration failed", &error, 0);
  }
  ap_status_t status = ap_context_restore(config, source, NULL, NULL, &error);
  ap_config_free(config);
  if (status != AP_OK) {
    return exit_code_for(cli_report_error("restore failed", &error, 1), &error);
  }
  return CLI_EXIT_OK;
}
