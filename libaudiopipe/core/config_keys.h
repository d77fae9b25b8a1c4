/*
 * The table of known configuration keys. Each area of the library lists
 * its keys in config_keys.c; ap_config_set validates against this table.
 */
#ifndef AP_CORE_CONFIG_KEYS_H
#define AP_CORE_CONFIG_KEYS_H

#include <stddef.h>

#include <audiopipe/config.h>

/* Returns the entry for `key`, or NULL when the key is unknown. */
const ap_config_key_info_t *ap_config_key_find(const char *key);

#endif
