/*
 * Loading the keys file and mapping bearer tokens to owners.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <audiopipe/meta.h>

#include "auth.h"
#include "request_parse.h"

typedef struct key_entry {
  char owner[AP_OWNER_MAX_BYTES + 1];
  unsigned char hash[SHA256_DIGEST_LENGTH];
} key_entry_t;

struct httpd_keys {
  key_entry_t *entries;
  size_t count;
  /* SHA-256 fetched once: OpenSSL 3's SHA256() fetches it from the
   * provider tables under a lock on every call, which cost more than
   * hashing a key. NULL when the fetch failed, and SHA256() is used. */
  EVP_MD *sha256;
};

static int parse_hex_digest(const char *hex,
                            unsigned char out[SHA256_DIGEST_LENGTH]) {
  if (strlen(hex) != 2 * SHA256_DIGEST_LENGTH) {
    return -1;
  }
  for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
    unsigned value = 0;
    for (size_t j = 0; j < 2; j++) {
      char c = hex[2 * i + j];
      unsigned digit;
      if (c >= '0' && c <= '9') {
        digit = (unsigned)(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = (unsigned)(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = (unsigned)(c - 'A' + 10);
      } else {
        return -1;
      }
      value = value * 16 + digit;
    }
    out[i] = (unsigned char)value;
  }
  return 0;
}

static ap_status_t add_entry(httpd_keys_t *keys, size_t *capacity,
                             const char *owner, const char *hex,
                             const char *path, unsigned line_number,
                             ap_error_t *error) {
  if (strlen(owner) > AP_OWNER_MAX_BYTES) {
    return httpd_error_set(error, AP_ERR_INVALID_CONFIG,
                           "%s line %u: owner longer than %d bytes", path,
                           line_number, AP_OWNER_MAX_BYTES);
  }
  if (keys->count == *capacity) {
    size_t grown_capacity = *capacity ? *capacity * 2 : 16;
    key_entry_t *grown =
        realloc(keys->entries, grown_capacity * sizeof *keys->entries);
    if (!grown) {
      return httpd_error_set(error, AP_ERR_NO_MEMORY,
                             "out of memory reading %s", path);
    }
    keys->entries = grown;
    *capacity = grown_capacity;
  }
  key_entry_t *entry = &keys->entries[keys->count];
  if (parse_hex_digest(hex, entry->hash) != 0) {
    return httpd_error_set(error, AP_ERR_INVALID_CONFIG,
                           "%s line %u: expected \"owner sha256hex\" with "
                           "64 hex digits; make one with "
                           "audiopipe-httpd --hash-key",
                           path, line_number);
  }
  snprintf(entry->owner, sizeof entry->owner, "%s", owner);
  keys->count++;
  return AP_OK;
}

ap_status_t httpd_keys_load(const char *path, httpd_keys_t **out,
                            ap_error_t *error) {
  FILE *file = fopen(path, "r");
  if (!file) {
    return httpd_error_set(error, AP_ERR_IO,
                           "cannot open http.api_keys_file %s: %s", path,
                           strerror(errno));
  }
  httpd_keys_t *keys = calloc(1, sizeof *keys);
  if (!keys) {
    fclose(file);
    return httpd_error_set(error, AP_ERR_NO_MEMORY, "out of memory");
  }

  size_t capacity = 0;
  char line[1024];
  unsigned line_number = 0;
  ap_status_t status = AP_OK;
  while (status == AP_OK && fgets(line, sizeof line, file)) {
    line_number++;
    char *cursor = line;
    char *owner = strtok_r(cursor, " \t\r\n", &cursor);
    if (!owner || owner[0] == '#') {
      continue;
    }
    char *hex = strtok_r(NULL, " \t\r\n", &cursor);
    char *extra = strtok_r(NULL, " \t\r\n", &cursor);
    if (!hex || extra) {
      status = httpd_error_set(error, AP_ERR_INVALID_CONFIG,
                               "%s line %u: expected two fields, \"owner "
                               "sha256hex\"",
                               path, line_number);
      break;
    }
    status = add_entry(keys, &capacity, owner, hex, path, line_number, error);
  }
  fclose(file);
  if (status != AP_OK) {
    httpd_keys_free(keys);
    return status;
  }
  keys->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  *out = keys;
  return AP_OK;
}

void httpd_keys_free(httpd_keys_t *keys) {
  if (!keys) {
    return;
  }
  OPENSSL_cleanse(keys->entries, keys->count * sizeof *keys->entries);
  free(keys->entries);
  EVP_MD_free(keys->sha256);
  free(keys);
}

size_t httpd_keys_count(const httpd_keys_t *keys) {
  return keys ? keys->count : 0;
}

const char *httpd_keys_lookup(const httpd_keys_t *keys, const char *token,
                              size_t length) {
  if (!keys || !token) {
    return NULL;
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  if (!keys->sha256 ||
      !EVP_Digest(token, length, digest, NULL, keys->sha256, NULL)) {
    SHA256((const unsigned char *)token, length, digest);
  }

  /* Visit every entry whatever matches, so timing reveals nothing. */
  const char *owner = NULL;
  for (size_t i = 0; i < keys->count; i++) {
    int equal =
        CRYPTO_memcmp(digest, keys->entries[i].hash, sizeof digest) == 0;
    if (equal && !owner) {
      owner = keys->entries[i].owner;
    }
  }
  OPENSSL_cleanse(digest, sizeof digest);
  return owner;
}

void httpd_key_hash_hex(const char *key, size_t length, char hex[65]) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)key, length, digest);
  for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
    snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  }
  hex[64] = '\0';
}
