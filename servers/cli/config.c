/*
 * `audiopipe config`: lists every configuration key of the library with
 * its AUDIOPIPE_* variable, type, default and unit, from the library's own
 * key table (ap_config_key_at). `--markdown` prints the table that
 * docs/operations.md contains; the ops tests fail when the two differ.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void print_config_usage(FILE *stream) {
  fputs("Usage: audiopipe config [--markdown]\n"
        "\n"
        "Lists every configuration key with its environment variable, type,\n"
        "default and unit. Durations accept ms, s, m and h suffixes, sizes\n"
        "K, M and G (powers of 1024).\n"
        "\n"
        "  --markdown  print a Markdown table, as in docs/operations.md\n"
        "  --help      show this help\n",
        stream);
}

/* Writes AUDIOPIPE_ and the key in capitals with dots as underscores. */
static void print_variable(const char *key) {
  fputs("AUDIOPIPE_", stdout);
  for (const char *c = key; *c; c++) {
    putchar(*c == '.' ? '_' : toupper((unsigned char)*c));
  }
}

/* Writes `text` for a Markdown table cell: a pipe would end the cell. */
static void print_cell(const char *text) {
  for (const char *c = text; *c; c++) {
    if (*c == '|') {
      fputs("\\|", stdout);
    } else {
      putchar(*c);
    }
  }
}

int cli_config_main(int argc, char **argv) {
  int markdown = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_config_usage(stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(argv[i], "--markdown") == 0) {
      markdown = 1;
    } else {
      return cli_usage_error("unknown argument \"%s\" for config", argv[i]);
    }
  }

  size_t count = ap_config_key_count();
  if (markdown) {
    puts("| Variable | Key | Type | Default | Unit | Meaning |");
    puts("|---|---|---|---|---|---|");
  }
  for (size_t i = 0; i < count; i++) {
    const ap_config_key_info_t *info = ap_config_key_at(i);
    const char *fallback = info->default_value ? info->default_value : "";
    if (markdown) {
      fputs("| `", stdout);
      print_variable(info->key);
      printf("` | `%s` | %s | ", info->key, info->type);
      if (info->default_value && *info->default_value) {
        fputs("`", stdout);
        print_cell(fallback);
        fputs("`", stdout);
      } else {
        fputs(info->default_value ? "(empty)" : "(unset)", stdout);
      }
      fputs(" | ", stdout);
      print_cell(info->unit);
      fputs(" | ", stdout);
      print_cell(info->description);
      puts(" |");
    } else {
      print_variable(info->key);
      printf("\n  key %s, %s, default %s%s%s\n  %s\n", info->key, info->type,
             info->default_value ? fallback : "(unset)",
             *info->unit ? ", unit " : "", info->unit, info->description);
    }
  }
  return CLI_EXIT_OK;
}
