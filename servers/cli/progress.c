/*
 * A one-line progress bar on standard error, redrawn in place with a
 * carriage return. It is drawn only on a terminal: when standard error is
 * a file or a pipe nothing is written, so logs never collect control
 * characters.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define BAR_WIDTH 30

/* The signal that asked the run to stop; written only by the handler. */
static volatile sig_atomic_t caught_signal;

static void catch_signal(int signal_number) { caught_signal = signal_number; }

void cli_progress_catch_signals(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = catch_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGTERM, &action, NULL);
}

int cli_progress_caught_signal(void) { return (int)caught_signal; }

void cli_progress_init(cli_progress_t *progress, int enabled) {
  memset(progress, 0, sizeof *progress);
  progress->active = enabled && isatty(STDERR_FILENO);
  progress->last_permille = -1;
}

int cli_progress_update(void *user_data, double fraction, const char *stage) {
  cli_progress_t *progress = user_data;
  if (caught_signal) {
    return 1;
  }
  if (!progress->active) {
    return 0;
  }

  if (fraction < 0.0 || fraction != fraction) {
    fraction = 0.0;
  }
  if (fraction > 1.0) {
    fraction = 1.0;
  }
  if (!stage) {
    stage = "";
  }

  /* Redraw only when the shown value or the stage changes: the library
   * may call back for every decoded block. */
  int permille = (int)(fraction * 1000.0);
  if (permille == progress->last_permille && progress->last_stage &&
      strcmp(progress->last_stage, stage) == 0) {
    return 0;
  }
  progress->last_permille = permille;
  progress->last_stage = stage;

  char bar[BAR_WIDTH + 1];
  int filled = (int)(fraction * BAR_WIDTH);
  for (int i = 0; i < BAR_WIDTH; i++) {
    bar[i] = i < filled ? '#' : '.';
  }
  bar[BAR_WIDTH] = '\0';

  /* \033[K clears what a longer stage name left on the line. */
  fprintf(stderr, "\r[%s] %5.1f%% %-8s\033[K", bar, permille / 10.0, stage);
  fflush(stderr);
  progress->drawn = 1;
  return 0;
}

void cli_progress_finish(cli_progress_t *progress) {
  if (progress->drawn) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
    progress->drawn = 0;
  }
}
