/*
 * Configuration: a set of string keys and values, validated against the
 * library's table of known keys so that a misspelt key is an error rather
 * than a silently ignored setting. Every key has an environment variable:
 * "metadata.uri" is AUDIOPIPE_METADATA_URI (upper case, dots become
 * underscores). `audiopipe config` and docs/operations.md list every key
 * with its default and unit.
 *
 * Thread-safety: a configuration may be read from several threads at once
 * but must not be modified while it is read.
 */
#ifndef AUDIOPIPE_CONFIG_H
#define AUDIOPIPE_CONFIG_H

#include <audiopipe/common.h>
#include <audiopipe/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_config ap_config_t;

/* Creates an empty configuration: every key reads as its default. */
AP_EXPORT ap_status_t ap_config_new(ap_config_t **out, ap_error_t *error);

/*
 * Creates a configuration from the AUDIOPIPE_* variables of the process
 * environment. A variable whose value does not parse fails with
 * AP_ERR_INVALID_CONFIG naming it. Variables that name no key are left
 * alone, because other programs own some (AUDIOPIPE_LIBRARY for the
 * Python bindings, AUDIOPIPE_TEST_* for the test suite).
 */
AP_EXPORT ap_status_t ap_config_from_env(ap_config_t **out, ap_error_t *error);

/*
 * Sets `key` to `value` (copied). The value is checked against the key's
 * type (integer, size, duration, boolean, string) and range. Unknown keys
 * fail with AP_ERR_INVALID_CONFIG.
 */
AP_EXPORT ap_status_t ap_config_set(ap_config_t *config, const char *key,
                                    const char *value, ap_error_t *error);

/*
 * Returns the value of `key`: the one set, else the default, else NULL.
 * The string belongs to the configuration (or is static) and stays valid
 * until the key is set again or the configuration is freed.
 */
AP_EXPORT const char *ap_config_get(const ap_config_t *config,
                                    const char *key);

/*
 * Reads an integer key. Sizes accept the suffixes K, M, G (powers of 1024,
 * bytes); durations accept ms, s, m and h and are returned in milliseconds.
 */
AP_EXPORT ap_status_t ap_config_get_int64(const ap_config_t *config,
                                          const char *key, int64_t *value,
                                          ap_error_t *error);

/* Reads a boolean key: 1/0, true/false, yes/no, on/off. */
AP_EXPORT ap_status_t ap_config_get_bool(const ap_config_t *config,
                                         const char *key, int *value,
                                         ap_error_t *error);

/* Frees a configuration. NULL is allowed. */
AP_EXPORT void ap_config_free(ap_config_t *config);

/* Description of one known key, for help output and documentation. */
typedef struct ap_config_key_info {
  const char *key;           /* "limits.max_channels" */
  const char *type;          /* "integer", "size", "duration", "bool", "string" */
  const char *default_value; /* NULL when there is no default */
  const char *unit;          /* "bytes", "ms", "Hz", or "" */
  const char *description;   /* one sentence */
} ap_config_key_info_t;

/* Returns the number of known keys. */
AP_EXPORT size_t ap_config_key_count(void);

/* Returns the description of key number `index` (0-based), or NULL. */
AP_EXPORT const ap_config_key_info_t *ap_config_key_at(size_t index);

#ifdef __cplusplus
}
#endif

#endif
