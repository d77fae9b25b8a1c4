/*
 * ap_process: validates the options, opens the decoder, builds the sinks
 * (analysis, waveforms, renditions), runs one pass through the fan-out,
 * or two when a rendition is loudness-normalised, and finishes the
 * outputs only when everything succeeded.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/analysis_internal.h"
#include "analysis/analysis_sink.h"
#include "core/error_internal.h"
#include "probe/decoder.h"
#include "process/pipeline.h"
#include "process/process_internal.h"
#include "process/progress.h"
#include "rendition/rendition_sink.h"
#include "waveform/waveform_sink.h"

/* More worker threads than this is a mistake, not a tuning choice. */
#define MAX_THREADS_LIMIT 256

/* The gain range the rendition sink accepts. */
#define MIN_GAIN_DB -120.0
#define MAX_GAIN_DB 60.0

typedef enum sink_kind {
  SINK_ANALYSIS,
  SINK_WAVEFORM,
  SINK_RENDITION
} sink_kind_t;

/* The sinks of one pass, with what ap_process needs to read them back. */
typedef struct sink_set {
  ap_pipeline_sink_t *entries;
  sink_kind_t *kinds;
  size_t *indexes; /* into the options' waveforms or renditions */
  char (*labels)[96];
  size_t count;
  size_t capacity;
} sink_set_t;

void ap_process_options_init(ap_process_options_t *options) {
  if (!options) {
    return;
  }
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  ap_limits_init(&options->limits);
  options->analyses = AP_ANALYZE_ALL;
  options->mono_convention = AP_LOUDNESS_MONO_SINGLE;
  options->silence_threshold_dbfs = -60.0;
  options->max_threads = 0;
}

static ap_status_t validate_options(const ap_process_options_t *options,
                                    ap_error_t *error) {
  if (options->struct_size < sizeof(ap_process_options_t)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "process options struct_size %zu is smaller than "
                        "sizeof(ap_process_options_t) %zu: initialise them "
                        "with ap_process_options_init",
                        options->struct_size, sizeof(ap_process_options_t));
  }
  if (options->analyses & ~AP_ANALYZE_ALL) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "process analyses 0x%x has unknown bits: combine "
                        "AP_ANALYZE_* flags only",
                        options->analyses);
  }
  if (options->mono_convention != AP_LOUDNESS_MONO_SINGLE &&
      options->mono_convention != AP_LOUDNESS_DUAL_MONO) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "process mono_convention %d is invalid: use "
                        "AP_LOUDNESS_MONO_SINGLE or AP_LOUDNESS_DUAL_MONO",
                        (int)options->mono_convention);
  }
  if (!isfinite(options->silence_threshold_dbfs) ||
      options->silence_threshold_dbfs > 0.0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "process silence_threshold_dbfs %g is invalid: use a "
                        "finite level at or below 0 dBFS, such as -60",
                        options->silence_threshold_dbfs);
  }
  if (options->max_threads < 0 || options->max_threads > MAX_THREADS_LIMIT) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "process max_threads %d is out of range: use 0 "
                        "(automatic), 1 (calling thread only) or up to %d",
                        options->max_threads, MAX_THREADS_LIMIT);
  }

  if (options->waveform_count > 0 && !options->waveforms) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "process waveforms is NULL but waveform_count is "
                        "%zu: pass the array or set the count to 0",
                        options->waveform_count);
  }
  for (size_t i = 0; i < options->waveform_count; i++) {
    ap_status_t status =
        ap_waveform_spec_validate(&options->waveforms[i], error);
    if (status != AP_OK) {
      return ap_error_prefix(error, "waveform %zu", i);
    }
  }

  if (options->rendition_count > 0 && !options->renditions) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "process renditions is NULL but rendition_count is "
                        "%zu: pass the array or set the count to 0",
                        options->rendition_count);
  }
  for (size_t i = 0; i < options->rendition_count; i++) {
    ap_status_t status =
        ap_rendition_spec_validate(&options->renditions[i], error);
    if (status != AP_OK) {
      return ap_error_prefix(error, "rendition %zu", i);
    }
  }
  return AP_OK;
}

static ap_status_t sink_set_init(sink_set_t *set, size_t capacity,
                                 ap_error_t *error) {
  memset(set, 0, sizeof *set);
  set->capacity = capacity;
  set->entries = calloc(capacity, sizeof *set->entries);
  set->kinds = calloc(capacity, sizeof *set->kinds);
  set->indexes = calloc(capacity, sizeof *set->indexes);
  set->labels = calloc(capacity, sizeof *set->labels);
  if (!set->entries || !set->kinds || !set->indexes || !set->labels) {
    return AP_NO_MEMORY(error);
  }
  return AP_OK;
}

static void sink_set_add(sink_set_t *set, ap_sink_t *sink, sink_kind_t kind,
                         size_t index, const char *label) {
  size_t i = set->count++;
  set->kinds[i] = kind;
  set->indexes[i] = index;
  snprintf(set->labels[i], sizeof set->labels[i], "%s", label);
  set->entries[i].sink = sink;
  set->entries[i].label = set->labels[i];
}

static void sink_set_release(sink_set_t *set) {
  for (size_t i = 0; i < set->count; i++) {
    set->entries[i].sink->ops->destroy(set->entries[i].sink);
  }
  free(set->entries);
  free(set->kinds);
  free(set->indexes);
  free(set->labels);
  memset(set, 0, sizeof *set);
}

/* Adds the analysis sink, or two when true peak runs on its own. */
static ap_status_t add_analysis_sinks(sink_set_t *set, unsigned analyses,
                                      const ap_process_options_t *options,
                                      int split_true_peak, ap_error_t *error) {
  ap_analysis_settings_t settings = {
      .analyses = analyses,
      .mono_convention = options->mono_convention,
      .silence_threshold_dbfs = options->silence_threshold_dbfs,
  };
  int split = split_true_peak && (analyses & AP_ANALYZE_TRUE_PEAK) &&
              (analyses & ~AP_ANALYZE_TRUE_PEAK);
  if (split) {
    settings.analyses = analyses & ~AP_ANALYZE_TRUE_PEAK;
  }

  ap_sink_t *sink = NULL;
  ap_status_t status = ap_analysis_sink_create(&settings, &sink, error);
  if (status != AP_OK) {
    return ap_error_prefix(error, "analysis");
  }
  sink_set_add(set, sink, SINK_ANALYSIS, 0, "analysis");

  if (split) {
    settings.analyses = AP_ANALYZE_TRUE_PEAK;
    status = ap_analysis_sink_create(&settings, &sink, error);
    if (status != AP_OK) {
      return ap_error_prefix(error, "true peak");
    }
    sink_set_add(set, sink, SINK_ANALYSIS, 1, "true peak");
  }
  return AP_OK;
}

static ap_status_t add_output_sinks(sink_set_t *set,
                                    const ap_process_options_t *options,
                                    const ap_process_result_t *result,
                                    ap_error_t *error) {
  for (size_t i = 0; i < options->waveform_count; i++) {
    ap_sink_t *sink = NULL;
    ap_status_t status =
        ap_waveform_sink_create(&options->waveforms[i], &sink, error);
    if (status != AP_OK) {
      return ap_error_prefix(error, "waveform %zu", i);
    }
    char label[96];
    snprintf(label, sizeof label, "waveform %zu", i);
    sink_set_add(set, sink, SINK_WAVEFORM, i, label);
  }

  for (size_t i = 0; i < options->rendition_count; i++) {
    ap_sink_t *sink = NULL;
    ap_status_t status = ap_rendition_sink_create(
        &options->renditions[i], result->renditions[i].gain_db, &sink, error);
    if (status != AP_OK) {
      return ap_error_prefix(error, "rendition %zu", i);
    }
    char label[96];
    const char *name = ap_rendition_sink_name(sink);
    if (name && name[0]) {
      snprintf(label, sizeof label, "rendition %s", name);
    } else {
      snprintf(label, sizeof label, "rendition %zu", i);
    }
    sink_set_add(set, sink, SINK_RENDITION, i, label);
  }
  return AP_OK;
}

static ap_status_t decoder_read(void *user_data, const float *const **planes,
                                int *frames, ap_error_t *error) {
  return ap_decoder_read(user_data, planes, frames, error);
}

static double decoder_progress(void *user_data) {
  return ap_decoder_progress(user_data);
}

/* Appends the busy time of every sink of `set` to the result. */
static ap_status_t record_stage_timings(ap_process_result_t *result,
                                        const sink_set_t *set,
                                        ap_error_t *error) {
  ap_stage_timing_t *stages =
      realloc(result->stages,
              (result->stage_count + set->count) * sizeof *result->stages);
  if (!stages && result->stage_count + set->count > 0) {
    return AP_NO_MEMORY(error);
  }
  result->stages = stages;
  for (size_t i = 0; i < set->count; i++) {
    ap_stage_timing_t *stage = &result->stages[result->stage_count++];
    snprintf(stage->label, sizeof stage->label, "%s", set->labels[i]);
    stage->seconds = set->entries[i].busy_seconds;
  }
  return AP_OK;
}

/* Runs one pass of `set` over the decoder. */
static ap_status_t run_pass(ap_decoder_t *decoder, sink_set_t *set,
                            const ap_process_options_t *options,
                            ap_progress_t *progress, const char *stage,
                            double progress_start, double progress_end,
                            ap_process_result_t *result, ap_error_t *error) {
  ap_block_source_t source = {
      .read = decoder_read,
      .progress = decoder_progress,
      .user_data = decoder,
  };
  ap_pipeline_options_t pipeline_options = {
      .max_threads = options->max_threads,
      .progress = progress,
      .stage = stage,
      .progress_start = progress_start,
      .progress_end = progress_end,
  };
  ap_pipeline_stats_t stats;
  ap_status_t status =
      ap_pipeline_run(&source, ap_decoder_format(decoder), set->entries,
                      set->count, &pipeline_options, &stats, error);

  result->decode_seconds += stats.read_seconds;
  result->decoded_frames = stats.frames;
  result->passes++;
  if (stats.worker_threads > result->worker_threads) {
    result->worker_threads = stats.worker_threads;
  }
  if (status != AP_OK) {
    return status;
  }
  return record_stage_timings(result, set, error);
}

/* Merges what the analysis sinks of `set` measured into one analysis. */
static ap_status_t collect_analysis(const sink_set_t *set,
                                    const ap_process_options_t *options,
                                    ap_analysis_t **out, ap_error_t *error) {
  ap_analysis_t *analysis = ap_analysis_create(options->mono_convention,
                                               options->silence_threshold_dbfs);
  if (!analysis) {
    return AP_NO_MEMORY(error);
  }
  for (size_t i = 0; i < set->count; i++) {
    if (set->kinds[i] == SINK_ANALYSIS) {
      ap_analysis_sink_collect(set->entries[i].sink, analysis);
    }
  }
  *out = analysis;
  return AP_OK;
}

/* Sets a normalised rendition's gain from the first pass: the target
 * minus the integrated loudness, lowered so the true peak stays at or
 * below the ceiling. */
static void compute_gain(const ap_rendition_spec_t *spec,
                         const ap_analysis_t *analysis,
                         ap_rendition_result_t *rendition) {
  rendition->target_lufs = spec->target_lufs;
  rendition->true_peak_ceiling_dbtp = spec->true_peak_ceiling_dbtp;

  double lufs;
  if (!ap_analysis_integrated_lufs(analysis, &lufs)) {
    rendition->normalization = AP_NORMALIZATION_UNDEFINED;
    rendition->normalization_reason =
        ap_analysis_loudness_undefined_reason(analysis);
    rendition->gain_db = 0.0;
    return;
  }

  double gain = spec->target_lufs - lufs;
  rendition->normalization = AP_NORMALIZATION_TARGET;
  double peak = ap_analysis_true_peak_dbtp(analysis);
  if (isfinite(peak) && peak + gain > spec->true_peak_ceiling_dbtp) {
    gain = spec->true_peak_ceiling_dbtp - peak;
    rendition->normalization = AP_NORMALIZATION_CEILING;
  }
  /* NOTE: the gain is clamped to the sink's -120..+60 dB; integrated
   * loudness is at least -70 LUFS, so only targets above -10 LUFS can
   * reach the upper bound. */
  if (gain > MAX_GAIN_DB) {
    gain = MAX_GAIN_DB;
  }
  if (gain < MIN_GAIN_DB) {
    gain = MIN_GAIN_DB;
  }
  rendition->gain_db = gain;
}

/* Copies the facts of finished sinks into the result. */
static ap_status_t collect_outputs(const sink_set_t *set,
                                   ap_process_result_t *result,
                                   ap_error_t *error) {
  for (size_t i = 0; i < set->count; i++) {
    const ap_sink_t *sink = set->entries[i].sink;
    size_t index = set->indexes[i];
    if (set->kinds[i] == SINK_WAVEFORM) {
      result->waveforms[index].pixels = ap_waveform_sink_pixels(sink);
      result->waveforms[index].samples_per_pixel =
          ap_waveform_sink_samples_per_pixel(sink);
    } else if (set->kinds[i] == SINK_RENDITION) {
      ap_rendition_result_t *rendition = &result->renditions[index];
      rendition->bytes = ap_rendition_sink_bytes(sink);
      const char *name = ap_rendition_sink_name(sink);
      rendition->name = strdup(name ? name : "");
      if (!rendition->name) {
        return AP_NO_MEMORY(error);
      }
    }
  }
  return AP_OK;
}

/* Finishes every output, in the order of the options.
 * NOTE: when finishing one output fails, the outputs before it stay
 * finished; an output cannot be taken back once it is in place. */
static ap_status_t finish_outputs(const ap_process_options_t *options,
                                  const ap_process_result_t *result,
                                  ap_error_t *error) {
  for (size_t i = 0; i < options->waveform_count; i++) {
    if (ap_output_finish(options->waveforms[i].output, error) != AP_OK) {
      return ap_error_prefix(error, "waveform %zu", i);
    }
  }
  for (size_t i = 0; i < options->rendition_count; i++) {
    if (ap_output_finish(options->renditions[i].output, error) != AP_OK) {
      return ap_error_prefix(error, "rendition %s", result->renditions[i].name);
    }
  }
  return AP_OK;
}

static ap_process_result_t *result_create(const ap_process_options_t *options) {
  ap_process_result_t *result = calloc(1, sizeof *result);
  if (!result) {
    return NULL;
  }
  result->rendition_count = options->rendition_count;
  result->waveform_count = options->waveform_count;
  result->renditions =
      calloc(options->rendition_count + 1, sizeof *result->renditions);
  result->waveforms =
      calloc(options->waveform_count + 1, sizeof *result->waveforms);
  if (!result->renditions || !result->waveforms) {
    ap_process_result_free(result);
    return NULL;
  }
  for (size_t i = 0; i < options->rendition_count; i++) {
    result->renditions[i].normalization = AP_NORMALIZATION_OFF;
  }
  return result;
}

static int needs_normalization(const ap_process_options_t *options,
                               size_t *first) {
  for (size_t i = 0; i < options->rendition_count; i++) {
    if (options->renditions[i].normalize) {
      *first = i;
      return 1;
    }
  }
  return 0;
}

/* The first pass of normalisation: measures loudness and true peak (and
 * the other requested analyses), then rewinds the decoder. */
static ap_status_t measure_pass(ap_decoder_t *decoder,
                                const ap_process_options_t *options,
                                const ap_process_tuning_t *tuning,
                                ap_progress_t *progress,
                                ap_process_result_t *result,
                                ap_analysis_t **analysis, ap_error_t *error) {
  double begin = ap_monotonic_seconds();
  sink_set_t set;
  ap_status_t status = sink_set_init(&set, 2, error);
  if (status == AP_OK) {
    status = add_analysis_sinks(
        &set, options->analyses | AP_ANALYZE_LOUDNESS | AP_ANALYZE_TRUE_PEAK,
        options, tuning->split_true_peak, error);
  }
  if (status == AP_OK) {
    status = run_pass(decoder, &set, options, progress, "measure", 0.0, 0.5,
                      result, error);
  }
  if (status == AP_OK) {
    status = collect_analysis(&set, options, analysis, error);
  }
  sink_set_release(&set);
  result->measure_seconds = ap_monotonic_seconds() - begin;
  if (status != AP_OK) {
    return status;
  }

  for (size_t i = 0; i < options->rendition_count; i++) {
    if (options->renditions[i].normalize) {
      compute_gain(&options->renditions[i], *analysis, &result->renditions[i]);
    }
  }

  status = ap_decoder_rewind(decoder, error);
  if (status != AP_OK) {
    return ap_error_prefix(error, "loudness normalisation needs a second "
                                  "decode pass");
  }
  return AP_OK;
}

/* Runs the analysis sinks of `set` on the decoding thread when automatic
 * threading (max_threads 0) has no core to spare for them: with as many
 * renditions as cores minus one, a separate analysis thread would only
 * take turns with an encoder on its core, while the decoding thread has
 * time left (on 2 cores with one Opus rendition, decoding, analysis and
 * the waveform take less than half as long as the encoder). */
static void place_analysis(sink_set_t *set,
                           const ap_process_options_t *options) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (options->max_threads != 0 || options->rendition_count == 0 ||
      cores > (long)options->rendition_count + 1) {
    return;
  }
  for (size_t i = 0; i < set->count; i++) {
    if (set->kinds[i] == SINK_ANALYSIS) {
      set->entries[i].sink->wants_thread = 0;
    }
  }
}

/* The main pass: waveforms, renditions, and the analysis unless the
 * first pass already measured it. */
static ap_status_t main_pass(ap_decoder_t *decoder,
                             const ap_process_options_t *options,
                             const ap_process_tuning_t *tuning,
                             ap_progress_t *progress, int measured,
                             ap_process_result_t *result,
                             ap_analysis_t **analysis, ap_error_t *error) {
  sink_set_t set;
  ap_status_t status = sink_set_init(
      &set, 2 + options->waveform_count + options->rendition_count, error);
  if (status == AP_OK && !measured && options->analyses != 0) {
    status = add_analysis_sinks(&set, options->analyses, options,
                                tuning->split_true_peak, error);
  }
  if (status == AP_OK) {
    status = add_output_sinks(&set, options, result, error);
  }
  if (status == AP_OK) {
    place_analysis(&set, options);
    status = run_pass(decoder, &set, options, progress, "decode",
                      measured ? 0.5 : 0.0, 1.0, result, error);
  }
  if (status == AP_OK && !measured && options->analyses != 0) {
    status = collect_analysis(&set, options, analysis, error);
  }
  if (status == AP_OK) {
    status = collect_outputs(&set, result, error);
  }
  sink_set_release(&set);
  return status;
}

ap_status_t ap_process_tuned(ap_io_t *input,
                             const ap_process_options_t *options,
                             const ap_process_tuning_t *tuning,
                             ap_process_result_t **out, ap_error_t *error) {
  double begin = ap_monotonic_seconds();
  if (out) {
    *out = NULL;
  }
  if (!input || !options || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_process: input, options and out are required");
  }
  ap_process_tuning_t default_tuning = {0};
  if (!tuning) {
    tuning = &default_tuning;
  }

  ap_status_t status = validate_options(options, error);
  if (status != AP_OK) {
    return status;
  }

  size_t first_normalized = 0;
  int normalize = needs_normalization(options, &first_normalized);
  if (normalize && !ap_io_is_seekable(input)) {
    return ap_error_set(
        error, AP_DOMAIN_CORE, AP_ERR_UNSUPPORTED,
        "rendition %zu requests loudness normalisation, which decodes the "
        "input twice, but the input cannot seek: pass a seekable input (a "
        "file or memory buffer) or set normalize to 0",
        first_normalized);
  }

  ap_process_result_t *result = result_create(options);
  if (!result) {
    return AP_NO_MEMORY(error);
  }

  ap_decoder_t *decoder = NULL;
  status = ap_decoder_open(input, &options->limits, &decoder, error);

  ap_progress_t progress;
  ap_progress_init(&progress, options->progress, options->progress_user_data);
  ap_analysis_t *analysis = NULL;
  if (status == AP_OK && normalize) {
    status = measure_pass(decoder, options, tuning, &progress, result,
                          &analysis, error);
  }
  if (status == AP_OK) {
    status = main_pass(decoder, options, tuning, &progress, normalize, result,
                       &analysis, error);
  }

  /* The last report comes before the outputs are finished, so a cancel
   * at 100% still leaves nothing behind. */
  if (status == AP_OK && ap_progress_report(&progress, 1.0, "decode", 1) != 0) {
    status = ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_CANCELLED,
                          "cancelled by the progress callback at 100%%");
  }
  if (status == AP_OK) {
    result->corrupt_packets = ap_decoder_corrupt_packets(decoder);
    status = ap_decoder_final_media_info(decoder, &result->media_info, error);
  }
  if (status == AP_OK) {
    status = finish_outputs(options, result, error);
  }
  ap_decoder_close(decoder);

  if (status != AP_OK) {
    ap_analysis_free(analysis);
    ap_process_result_free(result);
    return status;
  }

  if (options->analyses != 0) {
    result->analysis = analysis;
  } else {
    ap_analysis_free(analysis);
  }
  result->total_seconds = ap_monotonic_seconds() - begin;
  *out = result;
  return AP_OK;
}

ap_status_t ap_process(ap_io_t *input, const ap_process_options_t *options,
                       ap_process_result_t **out, ap_error_t *error) {
  return ap_process_tuned(input, options, NULL, out, error);
}
