/*
 * Times ap_probe_file on one file N times, for bench/python_bindings.py to
 * compare with the same loop through the Python bindings. Prints the mean
 * wall-clock time per call in microseconds.
 *
 * Usage: probe_loop FILE COUNT
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <audiopipe/audiopipe.h>

static double clock_seconds(clockid_t clock) {
  struct timespec now;
  clock_gettime(clock, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: probe_loop FILE COUNT\n");
    return 2;
  }
  const char *path = argv[1];
  long count = strtol(argv[2], NULL, 10);
  if (count <= 0) {
    fprintf(stderr, "probe_loop: COUNT must be a positive integer\n");
    return 2;
  }

  double start = clock_seconds(CLOCK_MONOTONIC);
  double cpu_start = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
  for (long i = 0; i < count; i++) {
    ap_error_t error = {0};
    ap_media_info_t *info = NULL;
    if (ap_probe_file(path, NULL, &info, &error) != AP_OK) {
      fprintf(stderr, "probe_loop: %s\n", error.message);
      return 1;
    }
    ap_media_info_free(info);
  }
  double elapsed = clock_seconds(CLOCK_MONOTONIC) - start;
  double cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;

  printf("%.3f %.3f\n", elapsed / (double)count * 1e6,
         cpu / (double)count * 1e6);
  return 0;
}
