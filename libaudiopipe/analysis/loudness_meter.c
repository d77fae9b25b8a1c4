/* One-pass EBU R128 loudness meter (see loudness_meter.h). */
#include <math.h>
#include <stdlib.h>

#include "analysis/loudness_meter.h"
#include "analysis/loudness_range.h"
#include "core/error_internal.h"

#define MOMENTARY_SUB_BLOCKS 4
#define SHORT_TERM_SUB_BLOCKS 30

/* BS.1770-4 loudness of a weighted mean-square energy: -0.691 + 10 lg E. */
#define LOUDNESS_OFFSET -0.691
#define ABSOLUTE_GATE_LUFS -70.0
#define RELATIVE_GATE_LU 10.0

/* Gating-block histogram: 0.01 LU bins from the absolute gate to +30
 * LUFS; louder blocks (possible only with samples beyond full scale) go
 * into the last bin, whose energy sum stays exact. */
#define HISTOGRAM_MAX_LUFS 30.0
#define HISTOGRAM_BINS_PER_LU 100
#define HISTOGRAM_BINS 10001

/* Filter state below this magnitude (about -400 dBFS) is set to zero
 * after each write. After the input falls silent the state decays
 * towards zero and would otherwise reach subnormal doubles, which are
 * slow to compute with on many CPUs. */
#define STATE_FLOOR 1e-20

/* Transposed direct form II biquad; a0 is 1. */
typedef struct biquad {
  double b0, b1, b2, a1, a2;
} biquad_t;

typedef struct channel_state {
  double weight;
  double shelf[2];
  double high_pass[2];
} channel_state_t;

struct ap_loudness_meter {
  int channels;
  int sub_block_frames;
  int sub_block_position; /* frames of the current sub-block so far */
  biquad_t shelf;
  biquad_t high_pass;
  channel_state_t *states;
  double current_energy; /* weighted sum of squares, current sub-block */

  /* Mean-square energies of the latest sub-blocks, a ring indexed by
   * sub_blocks modulo its size. */
  double recent[SHORT_TERM_SUB_BLOCKS];
  int64_t sub_blocks;
  double max_momentary_energy;
  double max_short_term_energy;
  ap_loudness_range_t *range;

  int64_t block_counts[HISTOGRAM_BINS];
  double block_energies[HISTOGRAM_BINS];
};

/* The BS.1770-4 pre-filter (high shelf) for `rate` Hz, from the analogue
 * parameters libebur128 uses; at 48 kHz it gives BS.1770-4's table. */
static biquad_t design_shelf(double rate) {
  double f0 = 1681.974450955533;
  double gain_db = 3.999843853973347;
  double q = 0.7071752369554196;

  double k = tan(M_PI * f0 / rate);
  double vh = pow(10.0, gain_db / 20.0);
  double vb = pow(vh, 0.4996667741545416);
  double a0 = 1.0 + k / q + k * k;

  biquad_t shelf = {
      .b0 = (vh + vb * k / q + k * k) / a0,
      .b1 = 2.0 * (k * k - vh) / a0,
      .b2 = (vh - vb * k / q + k * k) / a0,
      .a1 = 2.0 * (k * k - 1.0) / a0,
      .a2 = (1.0 - k / q + k * k) / a0,
  };
  return shelf;
}

/* The RLB high-pass for `rate` Hz; its numerator is 1, -2, 1 at every
 * rate, as in BS.1770-4's table. */
static biquad_t design_high_pass(double rate) {
  double f0 = 38.13547087602444;
  double q = 0.5003270373238773;

  double k = tan(M_PI * f0 / rate);
  double a0 = 1.0 + k / q + k * k;

  biquad_t high_pass = {
      .b0 = 1.0,
      .b1 = -2.0,
      .b2 = 1.0,
      .a1 = 2.0 * (k * k - 1.0) / a0,
      .a2 = (1.0 - k / q + k * k) / a0,
  };
  return high_pass;
}

ap_status_t ap_loudness_meter_create(int channels, int sample_rate,
                                     const double *weights,
                                     ap_loudness_meter_t **out,
                                     ap_error_t *error) {
  if (channels <= 0 || sample_rate <= 0 || !weights || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "loudness meter: %d channels at %d Hz is invalid: "
                        "both must be positive, with one weight per channel",
                        channels, sample_rate);
  }

  ap_loudness_meter_t *meter = calloc(1, sizeof *meter);
  if (!meter) {
    return AP_NO_MEMORY(error);
  }
  meter->states = calloc((size_t)channels, sizeof *meter->states);
  meter->range = ap_loudness_range_create();
  if (!meter->states || !meter->range) {
    ap_loudness_meter_free(meter);
    return AP_NO_MEMORY(error);
  }

  meter->channels = channels;
  for (int c = 0; c < channels; c++) {
    meter->states[c].weight = weights[c];
  }
  meter->sub_block_frames = (sample_rate + 5) / 10;
  meter->shelf = design_shelf(sample_rate);
  meter->high_pass = design_high_pass(sample_rate);
  *out = meter;
  return AP_OK;
}

/* K-weights `count` samples of one channel and returns the sum of the
 * squares of the filtered samples. */
static double filter_channel(const biquad_t *shelf, const biquad_t *high_pass,
                             channel_state_t *state,
                             const float *restrict samples, int count) {
  const double b0 = shelf->b0, b1 = shelf->b1, b2 = shelf->b2;
  const double a1 = shelf->a1, a2 = shelf->a2;
  const double c1 = high_pass->a1, c2 = high_pass->a2;
  double s1 = state->shelf[0], s2 = state->shelf[1];
  double h1 = state->high_pass[0], h2 = state->high_pass[1];
  double sum = 0.0;

  for (int i = 0; i < count; i++) {
    double x = samples[i];
    double y = b0 * x + s1;
    s1 = b1 * x - a1 * y + s2;
    s2 = b2 * x - a2 * y;

    /* The high-pass numerator 1, -2, 1 written out. */
    double z = y + h1;
    h1 = -2.0 * y - c1 * z + h2;
    h2 = y - c2 * z;

    sum += z * z;
  }

  state->shelf[0] = s1;
  state->shelf[1] = s2;
  state->high_pass[0] = h1;
  state->high_pass[1] = h2;
  return sum;
}

static double energy_to_lufs(double energy) {
  return energy > 0.0 ? LOUDNESS_OFFSET + 10.0 * log10(energy) : -INFINITY;
}

/* Mean energy of the latest `count` sub-blocks; count <= sub_blocks. */
static double recent_mean(const ap_loudness_meter_t *meter, int count) {
  double sum = 0.0;
  for (int i = 1; i <= count; i++) {
    sum += meter->recent[(meter->sub_blocks - i) % SHORT_TERM_SUB_BLOCKS];
  }
  return sum / count;
}

static void add_gating_block(ap_loudness_meter_t *meter, double energy) {
  /* A block with an infinite or NaN sample carries no loudness. */
  double lufs = energy_to_lufs(energy);
  if (!isfinite(lufs) || lufs < ABSOLUTE_GATE_LUFS) {
    return;
  }
  int bin = HISTOGRAM_BINS - 1;
  if (lufs < HISTOGRAM_MAX_LUFS) {
    bin = (int)((lufs - ABSOLUTE_GATE_LUFS) * HISTOGRAM_BINS_PER_LU);
  }
  meter->block_counts[bin]++;
  meter->block_energies[bin] += energy;
}

static void complete_sub_block(ap_loudness_meter_t *meter) {
  meter->recent[meter->sub_blocks % SHORT_TERM_SUB_BLOCKS] =
      meter->current_energy / meter->sub_block_frames;
  meter->sub_blocks++;
  meter->current_energy = 0.0;
  meter->sub_block_position = 0;

  if (meter->sub_blocks >= MOMENTARY_SUB_BLOCKS) {
    double energy = recent_mean(meter, MOMENTARY_SUB_BLOCKS);
    add_gating_block(meter, energy);
    if (energy > meter->max_momentary_energy) {
      meter->max_momentary_energy = energy;
    }
  }

  if (meter->sub_blocks >= SHORT_TERM_SUB_BLOCKS) {
    double energy = recent_mean(meter, SHORT_TERM_SUB_BLOCKS);
    if (energy > meter->max_short_term_energy) {
      meter->max_short_term_energy = energy;
    }
    ap_loudness_range_add(meter->range, energy_to_lufs(energy));
  }
}

static void flush_tiny_state(double *state) {
  for (int i = 0; i < 2; i++) {
    if (fabs(state[i]) < STATE_FLOOR) {
      state[i] = 0.0;
    }
  }
}

void ap_loudness_meter_write(ap_loudness_meter_t *meter,
                             const float *const *planes, int frames) {
  int offset = 0;
  while (offset < frames) {
    int count = meter->sub_block_frames - meter->sub_block_position;
    if (count > frames - offset) {
      count = frames - offset;
    }

    double energy = 0.0;
    for (int c = 0; c < meter->channels; c++) {
      channel_state_t *state = &meter->states[c];
      if (state->weight == 0.0) {
        continue;
      }
      energy +=
          state->weight * filter_channel(&meter->shelf, &meter->high_pass,
                                         state, planes[c] + offset, count);
    }
    meter->current_energy += energy;
    meter->sub_block_position += count;
    offset += count;

    if (meter->sub_block_position == meter->sub_block_frames) {
      complete_sub_block(meter);
    }
  }

  for (int c = 0; c < meter->channels; c++) {
    flush_tiny_state(meter->states[c].shelf);
    flush_tiny_state(meter->states[c].high_pass);
  }
}

/* Integrated loudness from the histogram; returns 0 when no block passed
 * the absolute gate. */
static int compute_integrated(const ap_loudness_meter_t *meter, double *lufs) {
  int64_t count = 0;
  double energy = 0.0;
  for (int bin = 0; bin < HISTOGRAM_BINS; bin++) {
    count += meter->block_counts[bin];
    energy += meter->block_energies[bin];
  }
  if (count == 0) {
    return 0;
  }

  /* A bin is kept when its centre is at or above the relative gate. */
  double gate_lufs = energy_to_lufs(energy / (double)count) - RELATIVE_GATE_LU;
  double first = (gate_lufs - ABSOLUTE_GATE_LUFS) * HISTOGRAM_BINS_PER_LU;
  int first_bin = HISTOGRAM_BINS - 1;
  if (first <= 0.5) {
    first_bin = 0;
  } else if (first < HISTOGRAM_BINS - 1) {
    first_bin = (int)ceil(first - 0.5);
  }

  int64_t kept = 0;
  double kept_energy = 0.0;
  for (int bin = first_bin; bin < HISTOGRAM_BINS; bin++) {
    kept += meter->block_counts[bin];
    kept_energy += meter->block_energies[bin];
  }
  if (kept == 0) {
    return 0;
  }
  *lufs = energy_to_lufs(kept_energy / (double)kept);
  return 1;
}

void ap_loudness_meter_summarize(const ap_loudness_meter_t *meter,
                                 ap_loudness_summary_t *summary) {
  summary->sub_blocks = meter->sub_blocks;

  summary->integrated_defined =
      compute_integrated(meter, &summary->integrated_lufs);
  if (!summary->integrated_defined) {
    summary->integrated_lufs = -INFINITY;
  }

  summary->max_momentary_lufs = energy_to_lufs(meter->max_momentary_energy);
  summary->max_short_term_lufs = energy_to_lufs(meter->max_short_term_energy);

  summary->range_defined =
      meter->sub_blocks >= SHORT_TERM_SUB_BLOCKS &&
      ap_loudness_range_compute(meter->range, &summary->range_lu);
  if (!summary->range_defined) {
    summary->range_lu = 0.0;
  }
}

void ap_loudness_meter_free(ap_loudness_meter_t *meter) {
  if (!meter) {
    return;
  }
  ap_loudness_range_free(meter->range);
  free(meter->states);
  free(meter);
}
