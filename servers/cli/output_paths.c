/*
 * Checks the output paths of `audiopipe process` before anything is
 * opened. An output that names the input file would replace the input
 * with its own rendition, and two outputs with one path would race for
 * the same file, so both are usage errors.
 */
/* realpath is an X/Open function. */
#define _XOPEN_SOURCE 700

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/*
 * Resolves `path` to an absolute path without requiring the file itself
 * to exist: the directory is resolved with realpath and the last
 * component appended. Returns 0, or -1 when the directory does not exist
 * (opening the output then reports that).
 */
static int resolve_output_path(const char *path, char *resolved, size_t size) {
  char directory_copy[PATH_MAX];
  char base_copy[PATH_MAX];
  if (strlen(path) >= sizeof directory_copy) {
    return -1;
  }
  strcpy(directory_copy, path);
  strcpy(base_copy, path);

  char directory[PATH_MAX];
  if (!realpath(dirname(directory_copy), directory)) {
    return -1;
  }
  int written =
      snprintf(resolved, size, "%s/%s", directory, basename(base_copy));
  return written > 0 && (size_t)written < size ? 0 : -1;
}

/* Returns 1 when `output` is the same file as the input `input_info`. */
static int is_input_file(const char *output, const struct stat *input_info) {
  struct stat output_info;
  if (stat(output, &output_info) != 0) {
    return 0;
  }
  return output_info.st_dev == input_info->st_dev &&
         output_info.st_ino == input_info->st_ino;
}

int cli_check_output_paths(const char *input, const char *const *outputs,
                           size_t output_count) {
  struct stat input_info;
  int input_is_file = strcmp(input, "-") != 0 && stat(input, &input_info) == 0;

  char(*resolved)[PATH_MAX] =
      calloc(output_count ? output_count : 1, sizeof *resolved);
  if (!resolved) {
    fprintf(stderr,
            "%s: checking output paths failed: out of memory "
            "(no_memory)\n",
            CLI_PROGRAM);
    return CLI_EXIT_INTERNAL;
  }

  int status = CLI_EXIT_OK;
  for (size_t i = 0; i < output_count && status == CLI_EXIT_OK; i++) {
    if (input_is_file && is_input_file(outputs[i], &input_info)) {
      status = cli_usage_error("output \"%s\" is the input file: write the "
                               "output to another path",
                               outputs[i]);
      break;
    }
    if (resolve_output_path(outputs[i], resolved[i], sizeof resolved[i]) != 0) {
      resolved[i][0] = '\0';
      continue;
    }
    for (size_t j = 0; j < i; j++) {
      if (resolved[j][0] && strcmp(resolved[i], resolved[j]) == 0) {
        status = cli_usage_error("outputs \"%s\" and \"%s\" are the same "
                                 "file: give each output its own path",
                                 outputs[j], outputs[i]);
        break;
      }
    }
  }

  free(resolved);
  return status;
}
