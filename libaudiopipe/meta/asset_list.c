/*
 * Paging through an owner's assets. A cursor is 74 characters: the
 * position's created_at as 16 hexadecimal digits, its asset id (26
 * characters), then the first 128 bits of HMAC-SHA256 over the owner and
 * the position, keyed with signing.secret, as 32 hexadecimal digits. The
 * MAC makes the cursor tamper-proof and binds it to its owner.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "meta/meta_internal.h"

#define TIME_DIGITS 16
#define MAC_DIGITS 32
#define CURSOR_LENGTH (TIME_DIGITS + AP_ID_LENGTH + MAC_DIGITS)

struct ap_asset_list {
  ap_asset_t **assets;
  size_t count;
  char next_cursor[CURSOR_LENGTH + 1]; /* "" on the last page */
};

/* Writes the MAC of (owner, created_at, id) as MAC_DIGITS hex digits. */
static ap_status_t cursor_mac(const ap_context_t *context, const char *owner,
                              int64_t created_at_ms, const char *id,
                              char mac_hex[MAC_DIGITS + 1], ap_error_t *error) {
  size_t secret_size = 0;
  const unsigned char *secret =
      ap_context_signing_secret(context, &secret_size);

  char *message = NULL;
  if (asprintf(&message, "ap-cursor-1\n%s\n%" PRId64 "\n%s", owner,
               created_at_ms, id) < 0) {
    return AP_NO_MEMORY(error);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  unsigned char *result = HMAC(EVP_sha256(), secret, (int)secret_size,
                               (const unsigned char *)message, strlen(message),
                               digest, &digest_size);
  free(message);
  if (!result || digest_size < MAC_DIGITS / 2) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INTERNAL,
                        "HMAC-SHA256 of the list cursor failed");
  }
  for (int i = 0; i < MAC_DIGITS / 2; i++) {
    snprintf(mac_hex + 2 * i, 3, "%02x", digest[i]);
  }
  return AP_OK;
}

static ap_status_t invalid_cursor(ap_error_t *error) {
  return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                      "cursor is invalid: pass the next_cursor value of the "
                      "previous page unchanged, or none for the first page");
}

/* Checks `cursor` and extracts its position. */
static ap_status_t decode_cursor(const ap_context_t *context, const char *owner,
                                 const char *cursor, int64_t *created_at_ms,
                                 char id[AP_ID_SIZE], ap_error_t *error) {
  if (strlen(cursor) != CURSOR_LENGTH) {
    return invalid_cursor(error);
  }
  char digits[TIME_DIGITS + 1];
  memcpy(digits, cursor, TIME_DIGITS);
  digits[TIME_DIGITS] = '\0';
  uint64_t time_value = 0;
  for (int i = 0; i < TIME_DIGITS; i++) {
    char c = digits[i];
    int nibble = c >= '0' && c <= '9'   ? c - '0'
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : -1;
    if (nibble < 0) {
      return invalid_cursor(error);
    }
    time_value = time_value << 4 | (uint64_t)nibble;
  }
  memcpy(id, cursor + TIME_DIGITS, AP_ID_LENGTH);
  id[AP_ID_LENGTH] = '\0';
  if (!ap_id_is_valid(id) || time_value > INT64_MAX) {
    return invalid_cursor(error);
  }

  char expected[MAC_DIGITS + 1];
  ap_status_t status =
      cursor_mac(context, owner, (int64_t)time_value, id, expected, error);
  if (status != AP_OK) {
    return status;
  }
  if (CRYPTO_memcmp(expected, cursor + TIME_DIGITS + AP_ID_LENGTH,
                    MAC_DIGITS) != 0) {
    return invalid_cursor(error);
  }
  *created_at_ms = (int64_t)time_value;
  return AP_OK;
}

static ap_status_t encode_cursor(const ap_context_t *context, const char *owner,
                                 const ap_asset_t *last,
                                 char cursor[CURSOR_LENGTH + 1],
                                 ap_error_t *error) {
  char mac[MAC_DIGITS + 1];
  ap_status_t status =
      cursor_mac(context, owner, last->created_at_ms, last->id, mac, error);
  if (status != AP_OK) {
    return status;
  }
  snprintf(cursor, CURSOR_LENGTH + 1, "%016" PRIx64 "%s%s",
           (uint64_t)last->created_at_ms, last->id, mac);
  return AP_OK;
}

ap_status_t ap_asset_list(ap_context_t *context, const char *owner,
                          const char *cursor, int limit, ap_asset_list_t **out,
                          ap_error_t *error) {
  if (!context || !owner || !out) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_asset_list: context, owner and out must not be "
                        "NULL");
  }
  if (limit < 1 || limit > AP_ASSET_LIST_MAX_LIMIT) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "limit = %d is out of range: use 1 to %d", limit,
                        AP_ASSET_LIST_MAX_LIMIT);
  }

  int64_t after_created_at_ms = 0;
  char after_id[AP_ID_SIZE] = "";
  if (cursor && *cursor) {
    ap_status_t status = decode_cursor(context, owner, cursor,
                                       &after_created_at_ms, after_id, error);
    if (status != AP_OK) {
      return status;
    }
  }

  ap_asset_list_t *list = calloc(1, sizeof *list);
  if (!list) {
    return AP_NO_MEMORY(error);
  }
  /* Reading one row more than the page shows whether another page follows. */
  ap_meta_store_t *meta = ap_context_meta_store(context);
  ap_status_t status = meta->backend->asset_list(
      meta->state, owner, after_created_at_ms, after_id[0] ? after_id : NULL,
      limit + 1, &list->assets, &list->count, error);
  if (status != AP_OK) {
    free(list);
    return status;
  }
  if (list->count > (size_t)limit) {
    ap_asset_free(list->assets[limit]);
    list->count = (size_t)limit;
    status = encode_cursor(context, owner, list->assets[limit - 1],
                           list->next_cursor, error);
    if (status != AP_OK) {
      ap_asset_list_free(list);
      return status;
    }
  }
  *out = list;
  return AP_OK;
}

size_t ap_asset_list_count(const ap_asset_list_t *list) {
  return list ? list->count : 0;
}

const ap_asset_t *ap_asset_list_at(const ap_asset_list_t *list, size_t index) {
  return list && index < list->count ? list->assets[index] : NULL;
}

const char *ap_asset_list_next_cursor(const ap_asset_list_t *list) {
  return list && list->next_cursor[0] ? list->next_cursor : NULL;
}

void ap_asset_list_free(ap_asset_list_t *list) {
  if (!list) {
    return;
  }
  for (size_t i = 0; i < list->count; i++) {
    ap_asset_free(list->assets[i]);
  }
  free(list->assets);
  free(list);
}
