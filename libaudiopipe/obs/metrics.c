/*
 * Metrics registry: families with labels, series updated with atomics,
 * and rendering in the Prometheus text exposition format 0.0.4.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <audiopipe/metrics.h>

#include "core/error_internal.h"

/* Chains per family's series hash table. */
#define SERIES_TABLE_SIZE 64

typedef enum metric_type {
  METRIC_COUNTER,
  METRIC_GAUGE,
  METRIC_HISTOGRAM
} metric_type_t;

struct ap_metric_series {
  ap_metric_t *family;
  char **label_values; /* family->label_count strings */
  uint64_t hash;
  _Atomic uint64_t value_bits; /* counter or gauge, a double's bits */
  _Atomic uint64_t sum_bits;   /* histogram sum, a double's bits */
  _Atomic uint64_t count;      /* histogram observations */
  _Atomic uint64_t *buckets;   /* per bucket, not cumulative; +Inf last */
  ap_metric_series_t *hash_next;
  ap_metric_series_t *order_next;
};

struct ap_metric {
  char *name;
  char *help;
  metric_type_t type;
  char *label_names[AP_METRICS_MAX_LABELS];
  size_t label_count;
  double bounds[AP_METRICS_MAX_BUCKETS];
  size_t bound_count;

  pthread_mutex_t lock; /* guards the series lists */
  ap_metric_series_t *table[SERIES_TABLE_SIZE];
  ap_metric_series_t *first;
  ap_metric_series_t *last;
  size_t series_count;
  _Atomic uint64_t dropped_series;

  ap_metric_t *next;
};

struct ap_metrics {
  pthread_mutex_t lock; /* guards the family list */
  ap_metric_t *first;
  ap_metric_t *last;
};

static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,    2.5,   5,    10};

static uint64_t double_bits(double value) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}

static double bits_double(uint64_t bits) {
  double value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

/* Adds to a double stored as bits, retrying when another thread won. */
static void atomic_add_double(_Atomic uint64_t *target, double value) {
  uint64_t expected = atomic_load_explicit(target, memory_order_relaxed);
  uint64_t desired;
  do {
    desired = double_bits(bits_double(expected) + value);
  } while (!atomic_compare_exchange_weak_explicit(
      target, &expected, desired, memory_order_relaxed, memory_order_relaxed));
}

ap_status_t ap_metrics_new(ap_metrics_t **out, ap_error_t *error) {
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_metrics_new: out must not be NULL");
  }
  ap_metrics_t *registry = calloc(1, sizeof *registry);
  if (!registry) {
    return AP_NO_MEMORY(error);
  }
  pthread_mutex_init(&registry->lock, NULL);
  *out = registry;
  return AP_OK;
}

static void series_free(ap_metric_series_t *series, size_t label_count) {
  if (!series) {
    return;
  }
  for (size_t i = 0; series->label_values && i < label_count; i++) {
    free(series->label_values[i]);
  }
  free(series->label_values);
  free((void *)series->buckets);
  free(series);
}

static void family_free(ap_metric_t *family) {
  if (!family) {
    return;
  }
  ap_metric_series_t *series = family->first;
  while (series) {
    ap_metric_series_t *next = series->order_next;
    series_free(series, family->label_count);
    series = next;
  }
  for (size_t i = 0; i < family->label_count; i++) {
    free(family->label_names[i]);
  }
  pthread_mutex_destroy(&family->lock);
  free(family->name);
  free(family->help);
  free(family);
}

void ap_metrics_free(ap_metrics_t *registry) {
  if (!registry) {
    return;
  }
  ap_metric_t *family = registry->first;
  while (family) {
    ap_metric_t *next = family->next;
    family_free(family);
    family = next;
  }
  pthread_mutex_destroy(&registry->lock);
  free(registry);
}

static ap_metrics_t *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void create_default_registry(void) {
  ap_metrics_new(&default_registry, NULL);
}

ap_metrics_t *ap_metrics_default(void) {
  pthread_once(&default_once, create_default_registry);
  return default_registry;
}

static int valid_name(const char *name, int allow_colon) {
  if (!name || !*name) {
    return 0;
  }
  for (const char *c = name; *c; c++) {
    int letter = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                 *c == '_' || (allow_colon && *c == ':');
    int digit = *c >= '0' && *c <= '9';
    if (!letter && !(digit && c != name)) {
      return 0;
    }
  }
  return 1;
}

static const char *type_name(metric_type_t type) {
  switch (type) {
  case METRIC_COUNTER:
    return "counter";
  case METRIC_GAUGE:
    return "gauge";
  case METRIC_HISTOGRAM:
    return "histogram";
  }
  return "untyped";
}

/* Checks that an existing family matches a new registration. */
static ap_status_t check_same_family(const ap_metric_t *family,
                                     metric_type_t type,
                                     const char *const *label_names,
                                     size_t label_count, ap_error_t *error) {
  int same = family->type == type && family->label_count == label_count;
  for (size_t i = 0; same && i < label_count; i++) {
    same = strcmp(family->label_names[i], label_names[i]) == 0;
  }
  if (!same) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_CONFLICT,
                        "metric %s is already registered as a %s with %zu "
                        "labels: register it again with the same type and "
                        "label names, or choose another name",
                        family->name, type_name(family->type),
                        family->label_count);
  }
  return AP_OK;
}

static ap_status_t validate_registration(const char *name,
                                         const char *const *label_names,
                                         size_t label_count, metric_type_t type,
                                         ap_error_t *error) {
  if (!valid_name(name, 1)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "invalid metric name \"%s\": use letters, digits, "
                        "'_' and ':', not starting with a digit",
                        name ? name : "(null)");
  }
  if (label_count > AP_METRICS_MAX_LABELS ||
      (label_count > 0 && !label_names)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "metric %s: %zu label names given, at most %d are "
                        "allowed and the array must not be NULL",
                        name, label_count, AP_METRICS_MAX_LABELS);
  }
  for (size_t i = 0; i < label_count; i++) {
    const char *label = label_names[i];
    if (!valid_name(label, 0) || strncmp(label, "__", 2) == 0 ||
        (type == METRIC_HISTOGRAM && strcmp(label, "le") == 0)) {
      return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                          "metric %s: invalid label name \"%s\": use "
                          "letters, digits and '_', not starting with a "
                          "digit or \"__\" (\"le\" is reserved for "
                          "histograms)",
                          name, label ? label : "(null)");
    }
  }
  return AP_OK;
}

static ap_status_t register_family(ap_metrics_t *registry, const char *name,
                                   const char *help,
                                   const char *const *label_names,
                                   size_t label_count, metric_type_t type,
                                   const double *bounds, size_t bound_count,
                                   ap_metric_t **out, ap_error_t *error) {
  if (!registry || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "metric registration: registry and out are required");
  }
  ap_status_t status =
      validate_registration(name, label_names, label_count, type, error);
  if (status != AP_OK) {
    return status;
  }

  pthread_mutex_lock(&registry->lock);
  for (ap_metric_t *family = registry->first; family; family = family->next) {
    if (strcmp(family->name, name) == 0) {
      status = check_same_family(family, type, label_names, label_count, error);
      pthread_mutex_unlock(&registry->lock);
      if (status == AP_OK) {
        *out = family;
      }
      return status;
    }
  }

  ap_metric_t *family = calloc(1, sizeof *family);
  if (!family) {
    pthread_mutex_unlock(&registry->lock);
    return AP_NO_MEMORY(error);
  }
  pthread_mutex_init(&family->lock, NULL);
  family->type = type;
  family->name = strdup(name);
  family->help = strdup(help ? help : "");
  int failed = !family->name || !family->help;
  for (size_t i = 0; i < label_count && !failed; i++) {
    family->label_names[i] = strdup(label_names[i]);
    failed = !family->label_names[i];
    family->label_count = i + 1;
  }
  if (failed) {
    family_free(family);
    pthread_mutex_unlock(&registry->lock);
    return AP_NO_MEMORY(error);
  }
  if (bound_count > 0) {
    memcpy(family->bounds, bounds, bound_count * sizeof *bounds);
  }
  family->bound_count = bound_count;

  if (registry->last) {
    registry->last->next = family;
  } else {
    registry->first = family;
  }
  registry->last = family;
  pthread_mutex_unlock(&registry->lock);
  *out = family;
  return AP_OK;
}

ap_status_t ap_metrics_counter(ap_metrics_t *registry, const char *name,
                               const char *help, const char *const *label_names,
                               size_t label_count, ap_metric_t **out,
                               ap_error_t *error) {
  return register_family(registry, name, help, label_names, label_count,
                         METRIC_COUNTER, NULL, 0, out, error);
}

ap_status_t ap_metrics_gauge(ap_metrics_t *registry, const char *name,
                             const char *help, const char *const *label_names,
                             size_t label_count, ap_metric_t **out,
                             ap_error_t *error) {
  return register_family(registry, name, help, label_names, label_count,
                         METRIC_GAUGE, NULL, 0, out, error);
}

ap_status_t ap_metrics_histogram(ap_metrics_t *registry, const char *name,
                                 const char *help,
                                 const char *const *label_names,
                                 size_t label_count, const double *buckets,
                                 size_t bucket_count, ap_metric_t **out,
                                 ap_error_t *error) {
  if (!buckets) {
    buckets = latency_bounds;
    bucket_count = sizeof latency_bounds / sizeof latency_bounds[0];
  }
  if (bucket_count == 0 || bucket_count > AP_METRICS_MAX_BUCKETS) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "histogram %s: %zu buckets given, use 1 to %d",
                        name ? name : "(null)", bucket_count,
                        AP_METRICS_MAX_BUCKETS);
  }
  for (size_t i = 0; i < bucket_count; i++) {
    if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
      return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                          "histogram %s: bucket %zu (%g) must be finite and "
                          "greater than the one before it",
                          name ? name : "(null)", i, buckets[i]);
    }
  }
  return register_family(registry, name, help, label_names, label_count,
                         METRIC_HISTOGRAM, buckets, bucket_count, out, error);
}

static uint64_t hash_values(const char *const *values, size_t count) {
  uint64_t hash = 1469598103934665603ull;
  for (size_t i = 0; i < count; i++) {
    for (const char *c = values[i]; *c; c++) {
      hash = (hash ^ (unsigned char)*c) * 1099511628211ull;
    }
    /* Separator, so ("ab","c") and ("a","bc") differ. */
    hash = (hash ^ 0xFFu) * 1099511628211ull;
  }
  return hash;
}

static int series_matches(const ap_metric_series_t *series, uint64_t hash,
                          const char *const *values, size_t count) {
  if (series->hash != hash) {
    return 0;
  }
  for (size_t i = 0; i < count; i++) {
    if (strcmp(series->label_values[i], values[i]) != 0) {
      return 0;
    }
  }
  return 1;
}

static ap_metric_series_t *series_create(ap_metric_t *family, uint64_t hash,
                                         const char *const *values) {
  ap_metric_series_t *series = calloc(1, sizeof *series);
  if (!series) {
    return NULL;
  }
  series->family = family;
  series->hash = hash;
  if (family->label_count > 0) {
    series->label_values = calloc(family->label_count, sizeof(char *));
    if (!series->label_values) {
      series_free(series, 0);
      return NULL;
    }
    for (size_t i = 0; i < family->label_count; i++) {
      series->label_values[i] = strdup(values[i]);
      if (!series->label_values[i]) {
        series_free(series, family->label_count);
        return NULL;
      }
    }
  }
  if (family->type == METRIC_HISTOGRAM) {
    series->buckets = calloc(family->bound_count + 1, sizeof(_Atomic uint64_t));
    if (!series->buckets) {
      series_free(series, family->label_count);
      return NULL;
    }
  }
  return series;
}

ap_metric_series_t *ap_metrics_series(ap_metric_t *metric,
                                      const char *const *label_values) {
  if (!metric || (metric->label_count > 0 && !label_values)) {
    return NULL;
  }
  for (size_t i = 0; i < metric->label_count; i++) {
    if (!label_values[i]) {
      return NULL;
    }
  }

  uint64_t hash = hash_values(label_values, metric->label_count);
  size_t slot = hash % SERIES_TABLE_SIZE;

  pthread_mutex_lock(&metric->lock);
  for (ap_metric_series_t *series = metric->table[slot]; series;
       series = series->hash_next) {
    if (series_matches(series, hash, label_values, metric->label_count)) {
      pthread_mutex_unlock(&metric->lock);
      return series;
    }
  }

  ap_metric_series_t *series = NULL;
  if (metric->series_count < AP_METRICS_MAX_SERIES) {
    series = series_create(metric, hash, label_values);
  }
  if (!series) {
    atomic_fetch_add(&metric->dropped_series, 1);
    pthread_mutex_unlock(&metric->lock);
    return NULL;
  }
  series->hash_next = metric->table[slot];
  metric->table[slot] = series;
  if (metric->last) {
    metric->last->order_next = series;
  } else {
    metric->first = series;
  }
  metric->last = series;
  metric->series_count++;
  pthread_mutex_unlock(&metric->lock);
  return series;
}

void ap_metrics_add(ap_metric_series_t *series, double value) {
  if (!series || isnan(value)) {
    return;
  }
  if (series->family->type == METRIC_COUNTER && value >= 0) {
    atomic_add_double(&series->value_bits, value);
  } else if (series->family->type == METRIC_GAUGE) {
    atomic_add_double(&series->value_bits, value);
  }
}

void ap_metrics_set(ap_metric_series_t *series, double value) {
  if (series && series->family->type == METRIC_GAUGE) {
    atomic_store_explicit(&series->value_bits, double_bits(value),
                          memory_order_relaxed);
  }
}

void ap_metrics_observe(ap_metric_series_t *series, double value) {
  if (!series || series->family->type != METRIC_HISTOGRAM || isnan(value)) {
    return;
  }
  const ap_metric_t *family = series->family;
  size_t bucket = 0;
  while (bucket < family->bound_count && value > family->bounds[bucket]) {
    bucket++;
  }
  atomic_fetch_add_explicit(&series->buckets[bucket], 1, memory_order_relaxed);
  atomic_add_double(&series->sum_bits, value);
  atomic_fetch_add_explicit(&series->count, 1, memory_order_relaxed);
}

double ap_metrics_value(const ap_metric_series_t *series) {
  if (!series) {
    return 0;
  }
  if (series->family->type == METRIC_HISTOGRAM) {
    return (double)atomic_load(&((ap_metric_series_t *)series)->count);
  }
  return bits_double(atomic_load(&((ap_metric_series_t *)series)->value_bits));
}

/* Growable text buffer for rendering. */
typedef struct text_buffer {
  char *data;
  size_t length;
  size_t capacity;
  int failed;
} text_buffer_t;

static void text_append(text_buffer_t *text, const char *data, size_t length) {
  if (text->failed) {
    return;
  }
  if (text->length + length + 1 > text->capacity) {
    size_t capacity = text->capacity ? text->capacity : 4096;
    while (text->length + length + 1 > capacity) {
      capacity *= 2;
    }
    char *grown = realloc(text->data, capacity);
    if (!grown) {
      text->failed = 1;
      return;
    }
    text->data = grown;
    text->capacity = capacity;
  }
  memcpy(text->data + text->length, data, length);
  text->length += length;
  text->data[text->length] = '\0';
}

static void text_append_string(text_buffer_t *text, const char *data) {
  text_append(text, data, strlen(data));
}

/* Escapes HELP text (backslash, newline) or, with `quote` set, a label
 * value (backslash, double quote, newline), as format 0.0.4 requires. */
static void text_append_escaped(text_buffer_t *text, const char *data,
                                int quote) {
  for (const char *c = data; *c; c++) {
    if (*c == '\\') {
      text_append(text, "\\\\", 2);
    } else if (*c == '\n') {
      text_append(text, "\\n", 2);
    } else if (quote && *c == '"') {
      text_append(text, "\\\"", 2);
    } else {
      text_append(text, c, 1);
    }
  }
}

/* Formats a sample value: the shortest of %.15g and %.17g that reads back
 * exactly, and +Inf, -Inf, NaN as the format spells them. */
static void format_number(double value, char *buffer, size_t size) {
  if (isnan(value)) {
    snprintf(buffer, size, "NaN");
  } else if (isinf(value)) {
    snprintf(buffer, size, value > 0 ? "+Inf" : "-Inf");
  } else {
    snprintf(buffer, size, "%.15g", value);
    if (strtod(buffer, NULL) != value) {
      snprintf(buffer, size, "%.17g", value);
    }
  }
}

/* Writes `name{labels}` with an optional extra label (the histogram's le). */
static void render_series_name(text_buffer_t *text, const ap_metric_t *family,
                               const ap_metric_series_t *series,
                               const char *suffix, const char *extra_name,
                               const char *extra_value) {
  text_append_string(text, family->name);
  text_append_string(text, suffix);
  if (family->label_count == 0 && !extra_name) {
    return;
  }
  text_append(text, "{", 1);
  for (size_t i = 0; i < family->label_count; i++) {
    if (i > 0) {
      text_append(text, ",", 1);
    }
    text_append_string(text, family->label_names[i]);
    text_append(text, "=\"", 2);
    text_append_escaped(text, series->label_values[i], 1);
    text_append(text, "\"", 1);
  }
  if (extra_name) {
    if (family->label_count > 0) {
      text_append(text, ",", 1);
    }
    text_append_string(text, extra_name);
    text_append(text, "=\"", 2);
    text_append_string(text, extra_value);
    text_append(text, "\"", 1);
  }
  text_append(text, "}", 1);
}

static void render_sample(text_buffer_t *text, double value) {
  char number[48];
  format_number(value, number, sizeof number);
  text_append(text, " ", 1);
  text_append_string(text, number);
  text_append(text, "\n", 1);
}

static void render_histogram(text_buffer_t *text, const ap_metric_t *family,
                             ap_metric_series_t *series) {
  char bound[48];
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= family->bound_count; i++) {
    cumulative +=
        atomic_load_explicit(&series->buckets[i], memory_order_relaxed);
    if (i < family->bound_count) {
      format_number(family->bounds[i], bound, sizeof bound);
    } else {
      snprintf(bound, sizeof bound, "+Inf");
    }
    render_series_name(text, family, series, "_bucket", "le", bound);
    render_sample(text, (double)cumulative);
  }
  render_series_name(text, family, series, "_sum", NULL, NULL);
  render_sample(text, bits_double(atomic_load(&series->sum_bits)));
  render_series_name(text, family, series, "_count", NULL, NULL);
  /* The +Inf bucket and _count must agree, so reuse the bucket total. */
  render_sample(text, (double)cumulative);
}

static void render_family(text_buffer_t *text, ap_metric_t *family) {
  text_append_string(text, "# HELP ");
  text_append_string(text, family->name);
  text_append(text, " ", 1);
  text_append_escaped(text, family->help, 0);
  text_append_string(text, "\n# TYPE ");
  text_append_string(text, family->name);
  text_append(text, " ", 1);
  text_append_string(text, type_name(family->type));
  text_append(text, "\n", 1);

  pthread_mutex_lock(&family->lock);
  for (ap_metric_series_t *series = family->first; series;
       series = series->order_next) {
    if (family->type == METRIC_HISTOGRAM) {
      render_histogram(text, family, series);
    } else {
      render_series_name(text, family, series, "", NULL, NULL);
      render_sample(text, bits_double(atomic_load(&series->value_bits)));
    }
  }
  pthread_mutex_unlock(&family->lock);
}

ap_status_t ap_metrics_render(ap_metrics_t *registry, char **out,
                              size_t *length, ap_error_t *error) {
  if (!registry || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_metrics_render: registry and out are required");
  }
  text_buffer_t text = {0};
  text_append(&text, "", 0);

  pthread_mutex_lock(&registry->lock);
  uint64_t dropped_any = 0;
  for (ap_metric_t *family = registry->first; family; family = family->next) {
    render_family(&text, family);
    dropped_any += atomic_load(&family->dropped_series);
  }

  /* Series refused by the cap are reported, so a label explosion shows up
   * on dashboards instead of as silently missing data. */
  if (dropped_any > 0) {
    text_append_string(
        &text, "# HELP audiopipe_metrics_series_dropped_total Series not "
               "created because a family reached its series cap.\n"
               "# TYPE audiopipe_metrics_series_dropped_total counter\n");
    for (ap_metric_t *family = registry->first; family; family = family->next) {
      uint64_t dropped = atomic_load(&family->dropped_series);
      if (dropped == 0) {
        continue;
      }
      text_append_string(&text,
                         "audiopipe_metrics_series_dropped_total{metric=\"");
      text_append_string(&text, family->name);
      text_append_string(&text, "\"}");
      render_sample(&text, (double)dropped);
    }
  }
  pthread_mutex_unlock(&registry->lock);

  if (text.failed) {
    free(text.data);
    return AP_NO_MEMORY(error);
  }
  *out = text.data;
  if (length) {
    *length = text.length;
  }
  return AP_OK;
}
