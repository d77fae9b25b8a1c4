/* Histogram-based loudness range, EBU Tech 3342. */
#include <math.h>
#include <stdlib.h>

#include "analysis/loudness_range.h"

#define RANGE_MIN_LUFS -70.0
#define RANGE_MAX_LUFS 10.0
#define BINS_PER_LU 100
/* (10 - -70) LU x 100 bins per LU, plus the bin at +10 LUFS */
#define BIN_COUNT 8001
#define RELATIVE_GATE_LU 20.0
#define LOWER_PERCENTILE 10.0
#define UPPER_PERCENTILE 95.0

struct ap_loudness_range {
  int64_t counts[BIN_COUNT];
  int64_t total;     /* values above the absolute gate */
  double energy_sum; /* their summed energies, for the relative gate */
};

ap_loudness_range_t *ap_loudness_range_create(void) {
  return calloc(1, sizeof(ap_loudness_range_t));
}

static int bin_of(double lufs) {
  int bin = (int)lround((lufs - RANGE_MIN_LUFS) * BINS_PER_LU);
  if (bin < 0) {
    return 0;
  }
  return bin >= BIN_COUNT ? BIN_COUNT - 1 : bin;
}

static double lufs_of_bin(int bin) {
  return RANGE_MIN_LUFS + (double)bin / BINS_PER_LU;
}

void ap_loudness_range_add(ap_loudness_range_t *range, double lufs) {
  if (!(lufs >= RANGE_MIN_LUFS) || isinf(lufs)) {
    return;
  }

  range->counts[bin_of(lufs)]++;
  range->total++;
  /* BS.1770 energy: 10^((L + 0.691) / 10); the offset cancels in the
   * gate, so the plain power of ten is enough. */
  range->energy_sum += pow(10.0, lufs / 10.0);
}

int ap_loudness_range_compute(const ap_loudness_range_t *range, double *lu) {
  if (range->total == 0) {
    return 0;
  }

  double mean_lufs = 10.0 * log10(range->energy_sum / (double)range->total);
  double gate_lufs = mean_lufs - RELATIVE_GATE_LU;
  int gate_bin = gate_lufs <= RANGE_MIN_LUFS ? 0 : bin_of(gate_lufs);

  int64_t kept = 0;
  for (int bin = gate_bin; bin < BIN_COUNT; bin++) {
    kept += range->counts[bin];
  }
  if (kept == 0) {
    return 0;
  }

  /* The percentiles are the values at ranks round(p * kept / 100),
   * counted from the quietest kept value. */
  int64_t lower_rank = llround(LOWER_PERCENTILE * (double)kept / 100.0);
  int64_t upper_rank = llround(UPPER_PERCENTILE * (double)kept / 100.0);
  if (lower_rank < 1) {
    lower_rank = 1;
  }
  if (upper_rank < 1) {
    upper_rank = 1;
  }

  double lower = lufs_of_bin(gate_bin);
  double upper = lower;
  int64_t seen = 0;
  int lower_found = 0;
  for (int bin = gate_bin; bin < BIN_COUNT; bin++) {
    seen += range->counts[bin];
    if (!lower_found && seen >= lower_rank) {
      lower = lufs_of_bin(bin);
      lower_found = 1;
    }
    if (seen >= upper_rank) {
      upper = lufs_of_bin(bin);
      break;
    }
  }

  *lu = upper - lower;
  return 1;
}

void ap_loudness_range_free(ap_loudness_range_t *range) { free(range); }
