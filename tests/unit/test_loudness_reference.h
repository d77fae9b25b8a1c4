/*
 * Test helper: the loudness reference from ffmpeg's ebur128 filter,
 * computed by running /usr/bin/ffmpeg on a file and parsing the Summary it
 * prints on stderr, so the expected values come from an independent
 * implementation rather than from numbers pasted into the tests.
 *
 * ffmpeg prints one decimal, so a reference value is within 0.05 of
 * ffmpeg's own.
 */
#ifndef TEST_LOUDNESS_REFERENCE_H
#define TEST_LOUDNESS_REFERENCE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FFMPEG_PATH "/usr/bin/ffmpeg"

typedef struct loudness_reference {
  double integrated_lufs; /* -70.0 when ffmpeg had no gating block */
  double range_lu;
  double sample_peak_dbfs;
  double true_peak_dbtp;
  int parsed; /* bit 0 I, bit 1 LRA, bit 2 sample peak, bit 3 true peak */
} loudness_reference_t;

/* Returns the number after `label` on `line`, or NAN. */
static inline double reference_value_after(const char *line,
                                           const char *label) {
  const char *found = strstr(line, label);
  if (!found) {
    return NAN;
  }
  return strtod(found + strlen(label), NULL);
}

/*
 * Runs ffmpeg's ebur128 filter (peak=true+sample, plus dualmono=true when
 * `dual_mono` is set) on `path`. Returns 0 when all four values were
 * parsed, -1 otherwise.
 */
static inline int loudness_reference_measure(const char *path, int dual_mono,
                                             loudness_reference_t *out) {
  char command[4096];
  snprintf(command, sizeof command,
           FFMPEG_PATH " -nostdin -nostats -hide_banner -i '%s' -af "
                       "ebur128=peak=true+sample%s -f null - 2>&1",
           path, dual_mono ? ":dualmono=true" : "");

  FILE *pipe = popen(command, "r");
  if (!pipe) {
    return -1;
  }

  memset(out, 0, sizeof *out);
  char line[1024];
  int in_summary = 0;
  int section = 0; /* 1 integrated, 2 range, 3 sample peak, 4 true peak */
  while (fgets(line, sizeof line, pipe)) {
    if (strstr(line, "Summary:")) {
      in_summary = 1;
      continue;
    }
    if (!in_summary) {
      continue;
    }
    if (strstr(line, "Integrated loudness:")) {
      section = 1;
    } else if (strstr(line, "Loudness range:")) {
      section = 2;
    } else if (strstr(line, "Sample peak:")) {
      section = 3;
    } else if (strstr(line, "True peak:")) {
      section = 4;
    } else if (section == 1 && strstr(line, "I:")) {
      out->integrated_lufs = reference_value_after(line, "I:");
      out->parsed |= 1;
    } else if (section == 2 && strstr(line, "LRA:")) {
      out->range_lu = reference_value_after(line, "LRA:");
      out->parsed |= 2;
    } else if (section == 3 && strstr(line, "Peak:")) {
      out->sample_peak_dbfs = reference_value_after(line, "Peak:");
      out->parsed |= 4;
    } else if (section == 4 && strstr(line, "Peak:")) {
      out->true_peak_dbtp = reference_value_after(line, "Peak:");
      out->parsed |= 8;
    }
  }

  int status = pclose(pipe);
  return status == 0 && out->parsed == 15 ? 0 : -1;
}

#endif
