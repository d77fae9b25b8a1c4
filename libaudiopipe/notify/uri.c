/*
 * Parsing and checking redis.uri. The messages quote the URI with its
 * password replaced by "***", because configuration errors end up in
 * logs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "notify/notify_internal.h"

#define DEFAULT_PORT 6379

/* Redis accepts up to `databases` (16 by default) but the server can be
 * configured for more, so only the type range is checked. */
#define MAX_DATABASE 1000000

/* Copies `text` with the password of a redis:// URI masked. */
static void mask_password(const char *text, char *out, size_t size) {
  const char *scheme_end = strstr(text, "://");
  const char *at = scheme_end ? strrchr(scheme_end, '@') : NULL;
  const char *colon =
      at ? memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3)) : NULL;
  if (!colon) {
    snprintf(out, size, "%s", text);
    return;
  }
  snprintf(out, size, "%.*s:***%s", (int)(colon - text), text, at);
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

/* Percent-decodes `length` bytes of `text` into `out`. Returns -1 for a
 * bad escape, a NUL byte or a result that does not fit. */
static int percent_decode(const char *text, size_t length, char *out,
                          size_t size) {
  size_t written = 0;
  for (size_t i = 0; i < length; i++) {
    int c = (unsigned char)text[i];
    if (c == '%') {
      if (i + 2 >= length) {
        return -1;
      }
      int high = hex_value(text[i + 1]);
      int low = hex_value(text[i + 2]);
      if (high < 0 || low < 0) {
        return -1;
      }
      c = high * 16 + low;
      i += 2;
    }
    if (c == 0 || written + 1 >= size) {
      return -1;
    }
    out[written++] = (char)c;
  }
  out[written] = '\0';
  return 0;
}

/* Parses a decimal integer of `length` bytes in [minimum, maximum]. */
static int parse_number(const char *text, size_t length, long minimum,
                        long maximum, int *out) {
  if (length == 0 || length > 9) {
    return -1;
  }
  long value = 0;
  for (size_t i = 0; i < length; i++) {
    if (text[i] < '0' || text[i] > '9') {
      return -1;
    }
    value = value * 10 + (text[i] - '0');
  }
  if (value < minimum || value > maximum) {
    return -1;
  }
  *out = (int)value;
  return 0;
}

static ap_status_t invalid(ap_error_t *error, const char *text,
                           const char *problem) {
  char masked[512];
  mask_password(text, masked, sizeof masked);
  return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                      "redis.uri (AUDIOPIPE_REDIS_URI) = \"%s\": %s; use "
                      "redis://[user:password@]host:port[/db] or "
                      "unix:///path[?db=N], or leave it empty to run "
                      "without Redis",
                      masked, problem);
}

/* Parses "user:password" or ":password" or "password-less user". */
static ap_status_t parse_credentials(const char *text, const char *start,
                                     const char *end, ap_redis_uri_t *out,
                                     ap_error_t *error) {
  const char *colon = memchr(start, ':', (size_t)(end - start));
  const char *user_end = colon ? colon : end;
  if (percent_decode(start, (size_t)(user_end - start), out->user,
                     sizeof out->user) != 0) {
    return invalid(error, text,
                   "the user name has a bad %-escape or is "
                   "too long");
  }
  if (colon && percent_decode(colon + 1, (size_t)(end - colon - 1),
                              out->password, sizeof out->password) != 0) {
    return invalid(error, text,
                   "the password has a bad %-escape or is too "
                   "long (percent-encode @, : and /)");
  }
  if (!colon) {
    /* "redis://secret@host" is the usual shorthand for a password. */
    snprintf(out->password, sizeof out->password, "%s", out->user);
    out->user[0] = '\0';
  }
  if (out->user[0] != '\0' && out->password[0] == '\0') {
    return invalid(error, text, "a user name needs a password");
  }
  return AP_OK;
}

static ap_status_t parse_tcp(const char *text, const char *rest,
                             ap_redis_uri_t *out, ap_error_t *error) {
  const char *slash = strchr(rest, '/');
  const char *authority_end = slash ? slash : rest + strlen(rest);
  if (strchr(rest, '?') || strchr(rest, '#')) {
    return invalid(error, text,
                   "query strings and fragments are not "
                   "accepted in redis:// URIs");
  }

  /* The last '@' ends the credentials, since a password may contain '@'
   * only percent-encoded but users often forget. */
  const char *host_start = rest;
  for (const char *c = rest; c < authority_end; c++) {
    if (*c == '@') {
      host_start = c + 1;
    }
  }
  if (host_start != rest) {
    ap_status_t status =
        parse_credentials(text, rest, host_start - 1, out, error);
    if (status != AP_OK) {
      return status;
    }
  }

  const char *host_end = NULL;
  const char *port_start = NULL;
  if (*host_start == '[') {
    const char *close =
        memchr(host_start, ']', (size_t)(authority_end - host_start));
    if (!close) {
      return invalid(error, text, "an IPv6 address needs a closing ']'");
    }
    host_end = close + 1;
    if (host_end < authority_end && *host_end != ':') {
      return invalid(error, text, "expected ':' and a port after ']'");
    }
    port_start = host_end < authority_end ? host_end + 1 : NULL;
    host_start++;
    host_end = close;
  } else {
    const char *colon =
        memchr(host_start, ':', (size_t)(authority_end - host_start));
    host_end = colon ? colon : authority_end;
    port_start = colon ? colon + 1 : NULL;
  }
  size_t host_length = (size_t)(host_end - host_start);
  if (host_length == 0) {
    return invalid(error, text, "the host is missing");
  }
  if (host_length >= sizeof out->host) {
    return invalid(error, text, "the host is too long");
  }
  memcpy(out->host, host_start, host_length);
  out->host[host_length] = '\0';

  out->port = DEFAULT_PORT;
  if (port_start &&
      parse_number(port_start, (size_t)(authority_end - port_start), 1, 65535,
                   &out->port) != 0) {
    return invalid(error, text, "the port must be a number from 1 to 65535");
  }

  if (slash && slash[1] != '\0' &&
      parse_number(slash + 1, strlen(slash + 1), 0, MAX_DATABASE,
                   &out->database) != 0) {
    return invalid(error, text,
                   "the database after '/' must be a number "
                   "such as 0");
  }
  return AP_OK;
}

static ap_status_t parse_unix(const char *text, const char *rest,
                              ap_redis_uri_t *out, ap_error_t *error) {
  out->is_unix = 1;
  if (rest[0] != '/') {
    return invalid(error, text,
                   "a unix socket path must be absolute "
                   "(unix:///run/redis/redis.sock)");
  }
  const char *query = strchr(rest, '?');
  size_t path_length = query ? (size_t)(query - rest) : strlen(rest);
  if (path_length >= sizeof out->path) {
    return invalid(error, text, "the socket path is too long");
  }
  memcpy(out->path, rest, path_length);
  out->path[path_length] = '\0';
  if (query) {
    if (strncmp(query, "?db=", 4) != 0 ||
        parse_number(query + 4, strlen(query + 4), 0, MAX_DATABASE,
                     &out->database) != 0) {
      return invalid(error, text,
                     "the only query accepted is ?db=N with a "
                     "number N");
    }
  }
  return AP_OK;
}

ap_status_t ap_redis_uri_parse(const char *text, ap_redis_uri_t *out,
                               ap_error_t *error) {
  memset(out, 0, sizeof *out);
  if (!text || text[0] == '\0') {
    return invalid(error, "", "the URI is empty");
  }
  if (strncmp(text, "redis://", 8) == 0) {
    return parse_tcp(text, text + 8, out, error);
  }
  if (strncmp(text, "unix://", 7) == 0) {
    return parse_unix(text, text + 7, out, error);
  }
  if (strncmp(text, "rediss://", 9) == 0) {
    return invalid(error, text,
                   "TLS (rediss://) is not supported by this "
                   "build's hiredis 0.14");
  }
  return invalid(error, text, "the scheme must be redis:// or unix://");
}
