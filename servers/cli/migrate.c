/*
 * `audiopipe migrate`: applies the missing schema migrations of the
 * metadata store named by the AUDIOPIPE_* environment (ap_context_migrate),
 * for deployments that run with metadata.auto_migrate off.
 */
#include <stdio.h>
#include <string.h>

#include <audiopipe/context.h>

#include "cli.h"

static void print_usage(FILE *stream) {
  fputs("Usage: audiopipe migrate\n"
        "\n"
        "Brings the metadata store of metadata.uri (SQLite or MongoDB, from\n"
        "the AUDIOPIPE_* environment, as for the servers) to the schema\n"
        "version of this build, one migration per transaction, and prints\n"
        "the version before and after. Running it on an up-to-date store\n"
        "changes nothing, and servers may keep running meanwhile.\n"
        "\n"
        "  --help   show this help\n",
        stream);
}

int cli_migrate_main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_usage(stdout);
      return CLI_EXIT_OK;
    }
    cli_usage_error("migrate takes no arguments, got \"%s\"", argv[i]);
    return CLI_EXIT_USAGE;
  }

  ap_error_t error = {0};
  ap_config_t *config = NULL;
  if (ap_config_from_env(&config, &error) != AP_OK) {
    return cli_report_error("reading the configuration failed", &error, 0);
  }

  /* Opening must not migrate by itself, or the version before would
   * always read as current. */
  ap_context_t *context = NULL;
  ap_status_t status =
      ap_config_set(config, "metadata.auto_migrate", "false", &error);
  if (status == AP_OK) {
    status = ap_context_open(config, &context, &error);
  }
  ap_config_free(config);
  if (status != AP_OK) {
    return cli_report_error("opening the metadata store failed", &error, 0);
  }

  int before = 0;
  int after = 0;
  status = ap_context_schema_version(context, &before, &error);
  if (status == AP_OK) {
    status = ap_context_migrate(context, &after, &error);
  }
  ap_context_close(context);
  if (status != AP_OK) {
    return cli_report_error("migrating the metadata store failed", &error, 1);
  }
  if (before == after) {
    printf("metadata schema is at version %d: nothing to do\n", after);
  } else {
    printf("metadata schema migrated from version %d to %d\n", before, after);
  }
  return CLI_EXIT_OK;
}
