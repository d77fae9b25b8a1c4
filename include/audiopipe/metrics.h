/*
 * Metrics: a registry of counters, gauges and histograms with labels,
 * rendered in the Prometheus text exposition format, version 0.0.4.
 *
 * A metric family (name, help, type, label names) is registered once; each
 * combination of label values is a series, looked up with
 * ap_metrics_series and then updated without locks. Hot paths should keep
 * the series pointer: it stays valid until the registry is freed.
 *
 *   ap_metric_t *requests = NULL;
 *   const char *labels[] = {"route", "status"};
 *   ap_metrics_counter(registry, "audiopipe_http_requests_total",
 *                      "HTTP requests served.", labels, 2, &requests, &err);
 *   const char *values[] = {"/v1/jobs/{id}", "200"};
 *   ap_metrics_add(ap_metrics_series(requests, values), 1);
 *
 * Thread-safety: every function may be called from any thread. Updates
 * are atomic per value; a scrape that runs during updates may see a
 * histogram's buckets, sum and count from slightly different instants.
 */
#ifndef AUDIOPIPE_METRICS_H
#define AUDIOPIPE_METRICS_H

#include <audiopipe/common.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_metrics ap_metrics_t;
typedef struct ap_metric ap_metric_t;
typedef struct ap_metric_series ap_metric_series_t;

/* Most label names of one family, and most series in one family. A series
 * beyond the cap is not created: ap_metrics_series returns NULL and the
 * family's dropped-series count (audiopipe_metrics_series_dropped_total)
 * goes up, so a label with unbounded values cannot exhaust memory. */
#define AP_METRICS_MAX_LABELS 8
#define AP_METRICS_MAX_SERIES 2000

/* Most histogram buckets, the +Inf bucket excluded. */
#define AP_METRICS_MAX_BUCKETS 32

/* Creates an empty registry. Free it with ap_metrics_free. */
AP_EXPORT ap_status_t ap_metrics_new(ap_metrics_t **out, ap_error_t *error);

/* Frees a registry, its families and series. NULL is allowed. No other
 * thread may use the registry or its pointers during or after the call. */
AP_EXPORT void ap_metrics_free(ap_metrics_t *registry);

/*
 * Returns the process-wide registry that the library's own metrics use and
 * that servers render on /metrics. It lives until the process exits.
 * Returns NULL only when its first allocation fails.
 */
AP_EXPORT ap_metrics_t *ap_metrics_default(void);

/*
 * Registers a counter, a gauge or a histogram. `name` must match
 * [a-zA-Z_:][a-zA-Z0-9_:]*, each label name [a-zA-Z_][a-zA-Z0-9_]* and not
 * start with "__" ("le" is reserved for histograms). `label_names` may be
 * NULL when `label_count` is 0. Registering a name again with the same
 * type and label names returns the existing family, so independent
 * modules can share one; a different type or label set fails with
 * AP_ERR_CONFLICT. `help` is copied.
 */
AP_EXPORT ap_status_t ap_metrics_counter(ap_metrics_t *registry,
                                         const char *name, const char *help,
                                         const char *const *label_names,
                                         size_t label_count, ap_metric_t **out,
                                         ap_error_t *error);

AP_EXPORT ap_status_t ap_metrics_gauge(ap_metrics_t *registry, const char *name,
                                       const char *help,
                                       const char *const *label_names,
                                       size_t label_count, ap_metric_t **out,
                                       ap_error_t *error);

/*
 * `buckets` contains `bucket_count` strictly increasing, finite upper bounds
 * (the +Inf bucket is implied). Pass NULL and 0 for the latency buckets in
 * seconds: 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10.
 */
AP_EXPORT ap_status_t ap_metrics_histogram(
    ap_metrics_t *registry, const char *name, const char *help,
    const char *const *label_names, size_t label_count, const double *buckets,
    size_t bucket_count, ap_metric_t **out, ap_error_t *error);

/*
 * Returns the series of `metric` for `label_values` (one string per label
 * name, in order; NULL when the family has no labels), creating it at
 * zero. Returns NULL when `metric` is NULL, the series cap is reached or
 * memory runs out; every update function accepts NULL and does nothing.
 */
AP_EXPORT ap_metric_series_t *
ap_metrics_series(ap_metric_t *metric, const char *const *label_values);

/* Adds `value` to a counter (negative values are ignored, as counters
 * only go up) or to a gauge (any sign). Ignored for histograms. */
AP_EXPORT void ap_metrics_add(ap_metric_series_t *series, double value);

/* Sets a gauge. Ignored for counters and histograms. */
AP_EXPORT void ap_metrics_set(ap_metric_series_t *series, double value);

/* Records one observation in a histogram (seconds for latency). NaN is
 * ignored. Ignored for counters and gauges. */
AP_EXPORT void ap_metrics_observe(ap_metric_series_t *series, double value);

/* Returns the current value of a counter or gauge, or the observation
 * count of a histogram; 0 for NULL. */
AP_EXPORT double ap_metrics_value(const ap_metric_series_t *series);

/*
 * Renders every family of `registry` in the text exposition format 0.0.4
 * (Content-Type "text/plain; version=0.0.4"): HELP and TYPE lines, then
 * one line per series, label values escaped. Families appear in
 * registration order. `*out` is NUL-terminated and freed with ap_free;
 * `length` may be NULL.
 */
AP_EXPORT ap_status_t ap_metrics_render(ap_metrics_t *registry, char **out,
                                        size_t *length, ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
