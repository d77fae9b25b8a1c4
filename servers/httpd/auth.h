/*
 * API keys: a keys file maps SHA-256 hashes of keys to owners, so the
 * server never stores a key itself. Lines are "owner sha256hex"; blank
 * lines and lines starting with '#' are skipped.
 */
#ifndef HTTPD_AUTH_H
#define HTTPD_AUTH_H

#include <stddef.h>

#include <audiopipe/error.h>

typedef struct httpd_keys httpd_keys_t;

/* Reads the keys file at `path`. Fails with AP_ERR_INVALID_CONFIG naming
 * the line at fault, or AP_ERR_IO when the file cannot be read. */
ap_status_t httpd_keys_load(const char *path, httpd_keys_t **out,
                            ap_error_t *error);

void httpd_keys_free(httpd_keys_t *keys);

/* Returns the number of keys loaded. */
size_t httpd_keys_count(const httpd_keys_t *keys);

/*
 * Returns the owner of the key `token` (`length` bytes), or NULL. The
 * hash of the token is compared with every entry in constant time, so
 * the answer's timing does not depend on which entry matched or how much
 * of a hash matched. The string belongs to `keys`.
 */
const char *httpd_keys_lookup(const httpd_keys_t *keys, const char *token,
                              size_t length);

/* Writes the lowercase hex SHA-256 of `key` into `hex` (65 bytes). */
void httpd_key_hash_hex(const char *key, size_t length, char hex[65]);

#endif
