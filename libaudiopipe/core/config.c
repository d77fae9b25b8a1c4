/*
 * Configuration objects: a small array of key/value pairs validated
 * against the key table, plus the parsers for sizes, durations and
 * booleans shared by every area.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config_keys.h"
#include "core/error_internal.h"

/* Environment variables are read from the process environment. */
extern char **environ;

#define ENV_PREFIX "AUDIOPIPE_"

typedef struct config_entry {
  const ap_config_key_info_t *info;
  char *value;
} config_entry_t;

struct ap_config {
  config_entry_t *entries;
  size_t count;
  size_t capacity;
};

ap_status_t ap_config_new(ap_config_t **out, ap_error_t *error) {
  if (!out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_config_new: out must not be NULL");
  }
  *out = calloc(1, sizeof **out);
  return *out ? AP_OK : AP_NO_MEMORY(error);
}

void ap_config_free(ap_config_t *config) {
  if (!config) {
    return;
  }
  for (size_t i = 0; i < config->count; i++) {
    free(config->entries[i].value);
  }
  free(config->entries);
  free(config);
}

/* Parses a signed decimal integer that must fill the whole string. */
static int parse_integer(const char *text, int64_t *value) {
  if (!*text || isspace((unsigned char)*text)) {
    return -1;
  }
  errno = 0;
  char *end = NULL;
  long long parsed = strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') {
    return -1;
  }
  *value = (int64_t)parsed;
  return 0;
}

/* Parses "123", "64K", "512M", "2G" (binary multiples) into bytes. */
static int parse_size(const char *text, int64_t *value) {
  char digits[32];
  size_t length = strlen(text);
  if (length == 0 || length >= sizeof digits) {
    return -1;
  }
  memcpy(digits, text, length + 1);

  int64_t multiplier = 1;
  char suffix = (char)toupper((unsigned char)digits[length - 1]);
  if (suffix == 'K' || suffix == 'M' || suffix == 'G' || suffix == 'T') {
    multiplier = suffix == 'K'   ? 1024LL
                 : suffix == 'M' ? 1024LL * 1024
                 : suffix == 'G' ? 1024LL * 1024 * 1024
                                 : 1024LL * 1024 * 1024 * 1024;
    digits[length - 1] = '\0';
  }

  int64_t number = 0;
  if (parse_integer(digits, &number) != 0 || number < 0 ||
      number > INT64_MAX / multiplier) {
    return -1;
  }
  *value = number * multiplier;
  return 0;
}

/* Parses "250ms", "30s", "5m", "2h" or a bare number of milliseconds. */
static int parse_duration_ms(const char *text, int64_t *value) {
  static const struct {
    const char *suffix;
    int64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};

  size_t length = strlen(text);
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    size_t suffix_length = strlen(units[i].suffix);
    if (length > suffix_length &&
        strcmp(text + length - suffix_length, units[i].suffix) == 0) {
      /* "5ms" ends with "s" too: only accept a digit before the suffix. */
      if (!isdigit((unsigned char)text[length - suffix_length - 1])) {
        continue;
      }
      char digits[32];
      if (length - suffix_length >= sizeof digits) {
        return -1;
      }
      memcpy(digits, text, length - suffix_length);
      digits[length - suffix_length] = '\0';

      int64_t number = 0;
      if (parse_integer(digits, &number) != 0 || number < 0 ||
          number > INT64_MAX / units[i].ms) {
        return -1;
      }
      *value = number * units[i].ms;
      return 0;
    }
  }

  int64_t number = 0;
  if (parse_integer(text, &number) != 0 || number < 0) {
    return -1;
  }
  *value = number;
  return 0;
}

static int parse_bool(const char *text, int *value) {
  static const char *const true_words[] = {"1", "true", "yes", "on"};
  static const char *const false_words[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(text, true_words[i]) == 0) {
      *value = 1;
      return 0;
    }
    if (strcasecmp(text, false_words[i]) == 0) {
      *value = 0;
      return 0;
    }
  }
  return -1;
}

/* Checks that `value` parses as the key's type. */
static ap_status_t validate_value(const ap_config_key_info_t *info,
                                  const char *value, ap_error_t *error) {
  int64_t number = 0;
  int flag = 0;
  int failed = 0;
  const char *expected = "";

  if (strcmp(info->type, "integer") == 0) {
    failed = parse_integer(value, &number) != 0;
    expected = "a decimal integer";
  } else if (strcmp(info->type, "size") == 0) {
    failed = parse_size(value, &number) != 0;
    expected = "a byte count such as 1048576, 512K, 64M or 2G";
  } else if (strcmp(info->type, "duration") == 0) {
    failed = parse_duration_ms(value, &number) != 0;
    expected = "a duration such as 250ms, 30s, 5m or 2h";
  } else if (strcmp(info->type, "bool") == 0) {
    failed = parse_bool(value, &flag) != 0;
    expected = "true or false";
  }

  if (failed) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "invalid value \"%s\" for %s: expected %s", value,
                        info->key, expected);
  }
  return AP_OK;
}

ap_status_t ap_config_set(ap_config_t *config, const char *key,
                          const char *value, ap_error_t *error) {
  if (!config || !key || !value) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_config_set: config, key and value are required");
  }

  const ap_config_key_info_t *info = ap_config_key_find(key);
  if (!info) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "unknown configuration key \"%s\": run `audiopipe "
                        "config` to list the known keys",
                        key);
  }

  ap_status_t status = validate_value(info, value, error);
  if (status != AP_OK) {
    return status;
  }

  char *copy = strdup(value);
  if (!copy) {
    return AP_NO_MEMORY(error);
  }

  for (size_t i = 0; i < config->count; i++) {
    if (config->entries[i].info == info) {
      free(config->entries[i].value);
      config->entries[i].value = copy;
      return AP_OK;
    }
  }

  if (config->count == config->capacity) {
    size_t capacity = config->capacity ? config->capacity * 2 : 16;
    config_entry_t *grown =
        realloc(config->entries, capacity * sizeof *config->entries);
    if (!grown) {
      free(copy);
      return AP_NO_MEMORY(error);
    }
    config->entries = grown;
    config->capacity = capacity;
  }
  config->entries[config->count].info = info;
  config->entries[config->count].value = copy;
  config->count++;
  return AP_OK;
}

const char *ap_config_get(const ap_config_t *config, const char *key) {
  const ap_config_key_info_t *info = key ? ap_config_key_find(key) : NULL;
  if (!info) {
    return NULL;
  }
  if (config) {
    for (size_t i = 0; i < config->count; i++) {
      if (config->entries[i].info == info) {
        return config->entries[i].value;
      }
    }
  }
  return info->default_value;
}

ap_status_t ap_config_get_int64(const ap_config_t *config, const char *key,
                                int64_t *value, ap_error_t *error) {
  const ap_config_key_info_t *info = key ? ap_config_key_find(key) : NULL;
  if (!info || !value) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "unknown configuration key \"%s\"",
                        key ? key : "(null)");
  }

  const char *text = ap_config_get(config, key);
  if (!text) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "%s is not set and has no default", key);
  }

  int failed;
  if (strcmp(info->type, "size") == 0) {
    failed = parse_size(text, value);
  } else if (strcmp(info->type, "duration") == 0) {
    failed = parse_duration_ms(text, value);
  } else if (strcmp(info->type, "integer") == 0) {
    failed = parse_integer(text, value);
  } else {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "%s is a %s key, not a number", key, info->type);
  }
  if (failed) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "invalid value \"%s\" for %s", text, key);
  }
  return AP_OK;
}

ap_status_t ap_config_get_bool(const ap_config_t *config, const char *key,
                               int *value, ap_error_t *error) {
  const char *text = ap_config_get(config, key);
  if (!text || !value || parse_bool(text, value) != 0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "%s must be true or false (value \"%s\")",
                        key ? key : "(null)", text ? text : "(unset)");
  }
  return AP_OK;
}

/* Turns "AUDIOPIPE_LIMITS_MAX_CHANNELS" into a key by matching it against
 * the table, because underscores inside key names ("max_channels") make
 * the mapping ambiguous in the other direction. */
static const ap_config_key_info_t *key_for_variable(const char *name,
                                                    size_t name_length) {
  for (size_t i = 0; i < ap_config_key_count(); i++) {
    const char *key = ap_config_key_at(i)->key;
    size_t key_length = strlen(key);
    if (key_length != name_length) {
      continue;
    }
    size_t j = 0;
    for (; j < key_length; j++) {
      char expected = key[j] == '.' ? '_' : (char)toupper((unsigned char)key[j]);
      if (name[j] != expected) {
        break;
      }
    }
    if (j == key_length) {
      return ap_config_key_at(i);
    }
  }
  return NULL;
}

ap_status_t ap_config_from_env(ap_config_t **out, ap_error_t *error) {
  ap_config_t *config = NULL;
  ap_status_t status = ap_config_new(&config, error);
  if (status != AP_OK) {
    return status;
  }

  const size_t prefix_length = strlen(ENV_PREFIX);
  for (char **variable = environ; variable && *variable; variable++) {
    if (strncmp(*variable, ENV_PREFIX, prefix_length) != 0) {
      continue;
    }
    const char *name = *variable + prefix_length;
    const char *equals = strchr(name, '=');
    if (!equals) {
      continue;
    }

    const ap_config_key_info_t *info =
        key_for_variable(name, (size_t)(equals - name));
    if (!info) {
      /* Variables the library does not own (AUDIOPIPE_TEST_*, the
       * bindings' AUDIOPIPE_LIBRARY) are left to their readers. */
      continue;
    }

    status = ap_config_set(config, info->key, equals + 1, error);
    if (status != AP_OK) {
      ap_error_prefix(error, "environment variable %.*s",
                      (int)(equals - *variable), *variable);
      ap_config_free(config);
      return status;
    }
  }

  *out = config;
  return AP_OK;
}
