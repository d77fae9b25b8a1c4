/* Getters of ap_process_result_t and its JSON form. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "analysis/analysis_internal.h"
#include "core/error_internal.h"
#include "process/process_internal.h"

void ap_process_result_free(ap_process_result_t *result) {
  if (!result) {
    return;
  }
  ap_media_info_free(result->media_info);
  ap_analysis_free(result->analysis);
  for (size_t i = 0; i < result->rendition_count; i++) {
    free(result->renditions[i].name);
  }
  free(result->renditions);
  free(result->waveforms);
  free(result->stages);
  free(result);
}

const ap_media_info_t *
ap_process_result_media_info(const ap_process_result_t *result) {
  return result ? result->media_info : NULL;
}

const ap_analysis_t *
ap_process_result_analysis(const ap_process_result_t *result) {
  return result ? result->analysis : NULL;
}

int64_t ap_process_result_decoded_frames(const ap_process_result_t *result) {
  return result ? result->decoded_frames : 0;
}

size_t ap_process_result_rendition_count(const ap_process_result_t *result) {
  return result ? result->rendition_count : 0;
}

const char *ap_process_result_rendition_name(const ap_process_result_t *result,
                                             size_t index) {
  if (!result || index >= result->rendition_count) {
    return NULL;
  }
  return result->renditions[index].name;
}

int64_t ap_process_result_rendition_bytes(const ap_process_result_t *result,
                                          size_t index) {
  if (!result || index >= result->rendition_count) {
    return 0;
  }
  return result->renditions[index].bytes;
}

double ap_process_result_rendition_gain_db(const ap_process_result_t *result,
                                           size_t index) {
  if (!result || index >= result->rendition_count) {
    return 0.0;
  }
  return result->renditions[index].gain_db;
}

const char *
ap_process_result_rendition_normalization(const ap_process_result_t *result,
                                          size_t index) {
  if (!result || index >= result->rendition_count) {
    return NULL;
  }
  return result->renditions[index].normalization;
}

size_t ap_process_result_waveform_count(const ap_process_result_t *result) {
  return result ? result->waveform_count : 0;
}

int64_t ap_process_result_waveform_pixels(const ap_process_result_t *result,
                                          size_t index) {
  if (!result || index >= result->waveform_count) {
    return 0;
  }
  return result->waveforms[index].pixels;
}

int ap_process_result_waveform_samples_per_pixel(
    const ap_process_result_t *result, size_t index) {
  if (!result || index >= result->waveform_count) {
    return 0;
  }
  return result->waveforms[index].samples_per_pixel;
}

double ap_process_result_decode_seconds(const ap_process_result_t *result) {
  return result ? result->decode_seconds : 0.0;
}

double ap_process_result_total_seconds(const ap_process_result_t *result) {
  return result ? result->total_seconds : 0.0;
}

/* Adds `key` as a number, or as null when `value` is not finite. */
static int add_number(json_object *object, const char *key, double value) {
  json_object *number = isfinite(value) ? json_object_new_double(value) : NULL;
  if (isfinite(value) && !number) {
    return -1;
  }
  return json_object_object_add(object, key, number);
}

static int add_string(json_object *object, const char *key, const char *value) {
  json_object *string = value ? json_object_new_string(value) : NULL;
  if (value && !string) {
    return -1;
  }
  return json_object_object_add(object, key, string);
}

static int add_int(json_object *object, const char *key, int64_t value) {
  json_object *number = json_object_new_int64(value);
  if (!number) {
    return -1;
  }
  return json_object_object_add(object, key, number);
}

/* Adds `key` (null when undefined) and `key_undefined_reason`. */
static int add_optional(json_object *object, const char *key, int defined,
                        double value, const char *reason) {
  char reason_key[96];
  snprintf(reason_key, sizeof reason_key, "%s_undefined_reason", key);
  if (add_number(object, key, defined ? value : NAN) != 0) {
    return -1;
  }
  return add_string(object, reason_key, defined ? NULL : reason);
}

static int add_peak(json_object *object, const char *key, double value) {
  return add_optional(object, key, isfinite(value), value,
                      AP_REASON_DIGITAL_SILENCE);
}

static json_object *analysis_to_json(const ap_analysis_t *analysis) {
  json_object *object = json_object_new_object();
  if (!object) {
    return NULL;
  }

  int failed = add_string(object, "mono_convention",
                          analysis->mono_convention == AP_LOUDNESS_DUAL_MONO
                              ? "dual_mono"
                              : "single_channel");
  unsigned analyses = analysis->analyses;
  if (analyses & AP_ANALYZE_LOUDNESS) {
    failed |= add_optional(
        object, "integrated_lufs", analysis->integrated_defined,
        analysis->integrated_lufs, analysis->integrated_undefined_reason);
    failed |=
        add_optional(object, "loudness_range_lu", analysis->range_defined,
                     analysis->range_lu, analysis->range_undefined_reason);
    failed |=
        add_optional(object, "max_momentary_lufs", analysis->momentary_defined,
                     analysis->max_momentary_lufs,
                     analysis->integrated_undefined_reason
                         ? analysis->integrated_undefined_reason
                         : AP_REASON_BELOW_ABSOLUTE_GATE);
    failed |= add_optional(
        object, "max_short_term_lufs", analysis->short_term_defined,
        analysis->max_short_term_lufs,
        analysis->range_undefined_reason ? analysis->range_undefined_reason
                                         : AP_REASON_BELOW_ABSOLUTE_GATE);
  }
  if (analyses & AP_ANALYZE_TRUE_PEAK) {
    failed |= add_peak(object, "true_peak_dbtp", analysis->true_peak_dbtp);
  }
  if (analyses & AP_ANALYZE_LEVELS) {
    failed |= add_peak(object, "sample_peak_dbfs", analysis->sample_peak_dbfs);
    failed |= add_peak(object, "rms_dbfs", analysis->rms_dbfs);
    failed |= add_int(object, "clipped_samples", analysis->clipped_samples);
  }
  if (analyses & AP_ANALYZE_SILENCE) {
    failed |= add_number(object, "silence_threshold_dbfs",
                         analysis->silence_threshold_dbfs);
    failed |= add_number(object, "leading_silence_seconds",
                         analysis->leading_silence);
    failed |= add_number(object, "trailing_silence_seconds",
                         analysis->trailing_silence);
  }

  if (failed) {
    json_object_put(object);
    return NULL;
  }
  return object;
}

static json_object *rendition_to_json(const ap_rendition_result_t *rendition) {
  json_object *object = json_object_new_object();
  json_object *normalization = json_object_new_object();
  if (!object || !normalization) {
    json_object_put(object);
    json_object_put(normalization);
    return NULL;
  }

  int failed = add_string(object, "name", rendition->name);
  failed |= add_int(object, "bytes", rendition->bytes);
  failed |= add_number(object, "gain_db", rendition->gain_db);

  failed |= add_string(normalization, "status", rendition->normalization);
  if (strcmp(rendition->normalization, AP_NORMALIZATION_OFF) != 0) {
    failed |= add_number(normalization, "target_lufs", rendition->target_lufs);
    failed |= add_number(normalization, "true_peak_ceiling_dbtp",
                         rendition->true_peak_ceiling_dbtp);
    failed |=
        add_string(normalization, "reason", rendition->normalization_reason);
  }
  failed |= json_object_object_add(object, "normalization", normalization);

  if (failed) {
    json_object_put(object);
    return NULL;
  }
  return object;
}

static json_object *timings_to_json(const ap_process_result_t *result) {
  json_object *object = json_object_new_object();
  json_object *stages = json_object_new_array();
  if (!object || !stages) {
    json_object_put(object);
    json_object_put(stages);
    return NULL;
  }

  int failed = add_number(object, "decode_seconds", result->decode_seconds);
  failed |= add_number(object, "measure_seconds", result->measure_seconds);
  failed |= add_number(object, "total_seconds", result->total_seconds);
  for (size_t i = 0; i < result->stage_count && !failed; i++) {
    json_object *stage = json_object_new_object();
    failed |= !stage || add_string(stage, "name", result->stages[i].label) ||
              add_number(stage, "seconds", result->stages[i].seconds) ||
              json_object_array_add(stages, stage);
  }
  failed |= json_object_object_add(object, "stages", stages);

  if (failed) {
    json_object_put(object);
    return NULL;
  }
  return object;
}

/* Builds the whole result object; NULL when out of memory or when the
 * media info cannot be serialised (then `error` describes the failure). */
static json_object *result_to_json(const ap_process_result_t *result,
                                   ap_error_t *error) {
  json_object *root = json_object_new_object();
  if (!root) {
    AP_NO_MEMORY(error);
    return NULL;
  }

  char *media_text = NULL;
  if (ap_media_info_to_json(result->media_info, &media_text, error) != AP_OK) {
    json_object_put(root);
    return NULL;
  }
  json_object *media = json_tokener_parse(media_text);
  ap_free(media_text);
  int failed = !media || json_object_object_add(root, "media", media);

  failed |= add_int(root, "decoded_frames", result->decoded_frames);
  failed |= add_int(root, "corrupt_packets", result->corrupt_packets);
  failed |= add_int(root, "passes", result->passes);
  failed |= add_int(root, "worker_threads", result->worker_threads);

  json_object *analysis = NULL;
  if (result->analysis) {
    analysis = analysis_to_json(result->analysis);
    failed |= !analysis;
  }
  failed |= json_object_object_add(root, "analysis", analysis);

  json_object *renditions = json_object_new_array();
  failed |= !renditions;
  for (size_t i = 0; i < result->rendition_count && !failed; i++) {
    json_object *rendition = rendition_to_json(&result->renditions[i]);
    failed |= !rendition || json_object_array_add(renditions, rendition);
  }
  failed |= json_object_object_add(root, "renditions", renditions);

  json_object *waveforms = json_object_new_array();
  failed |= !waveforms;
  for (size_t i = 0; i < result->waveform_count && !failed; i++) {
    json_object *waveform = json_object_new_object();
    failed |= !waveform ||
              add_int(waveform, "pixels", result->waveforms[i].pixels) ||
              add_int(waveform, "samples_per_pixel",
                      result->waveforms[i].samples_per_pixel) ||
              json_object_array_add(waveforms, waveform);
  }
  failed |= json_object_object_add(root, "waveforms", waveforms);

  json_object *timings = timings_to_json(result);
  failed |= !timings || json_object_object_add(root, "timings", timings);

  if (failed) {
    json_object_put(root);
    AP_NO_MEMORY(error);
    return NULL;
  }
  return root;
}

ap_status_t ap_process_result_to_json(const ap_process_result_t *result,
                                      char **json, ap_error_t *error) {
  if (!result || !json) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_process_result_to_json: result and json are "
                        "required");
  }
  *json = NULL;

  ap_error_t local = {0};
  json_object *root = result_to_json(result, &local);
  if (!root) {
    if (error) {
      *error = local;
    }
    return local.code ? (ap_status_t)local.code : AP_ERR_NO_MEMORY;
  }

  const char *text =
      json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
  *json = text ? strdup(text) : NULL;
  json_object_put(root);
  if (!*json) {
    return AP_NO_MEMORY(error);
  }
  return AP_OK;
}
