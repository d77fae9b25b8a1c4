/*
 * Identifiers, randomness and time for the metadata store. Identifiers are
 * 128 random bits written as 26 Crockford base32 characters, most
 * significant bits first, so two bits of the first character are always
 * zero (it is one of 0-7).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/error_internal.h"
#include "meta/meta_internal.h"

static const char crockford_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

ap_status_t ap_random_bytes(void *buffer, size_t size, ap_error_t *error) {
  unsigned char *bytes = buffer;
  size_t filled = 0;

  while (filled < size) {
    ssize_t count = getrandom(bytes + filled, size - filled, 0);
    if (count < 0) {
      if (errno == EINTR) {
        continue;
      }
      return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_IO,
                          "getrandom failed: %s", strerror(errno));
    }
    filled += (size_t)count;
  }
  return AP_OK;
}

double ap_random_unit(void) {
  uint64_t value = 0;
  if (ap_random_bytes(&value, sizeof value, NULL) != AP_OK) {
    return 0.5;
  }
  /* The top 53 bits fill a double's mantissa exactly. */
  return (double)(value >> 11) / 9007199254740992.0;
}

ap_status_t ap_id_generate(char id[AP_ID_SIZE], ap_error_t *error) {
  if (!id) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_id_generate: id must not be NULL");
  }
  unsigned char bytes[16];
  ap_status_t status = ap_random_bytes(bytes, sizeof bytes, error);
  if (status != AP_OK) {
    return status;
  }

  /* Character i contains bits [130 - 5(i+1), 130 - 5i) of the value padded
   * to 130 bits with two leading zeros. */
  for (int i = 0; i < AP_ID_LENGTH; i++) {
    int value = 0;
    for (int bit = 0; bit < 5; bit++) {
      int position = i * 5 + bit - 2; /* bit index from the top */
      int set = 0;
      if (position >= 0) {
        set = (bytes[position / 8] >> (7 - position % 8)) & 1;
      }
      value = (value << 1) | set;
    }
    id[i] = crockford_alphabet[value];
  }
  id[AP_ID_LENGTH] = '\0';
  return AP_OK;
}

int ap_id_is_valid(const char *text) {
  if (!text || strlen(text) != AP_ID_LENGTH) {
    return 0;
  }
  if (text[0] < '0' || text[0] > '7') {
    return 0;
  }
  for (size_t i = 0; i < AP_ID_LENGTH; i++) {
    if (!strchr(crockford_alphabet, text[i]) || text[i] == '\0') {
      return 0;
    }
  }
  return 1;
}

int64_t ap_time_now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int ap_meta_strdup(const char *text, char **out) {
  *out = NULL;
  if (!text) {
    return 0;
  }
  *out = strdup(text);
  return *out ? 0 : -1;
}
