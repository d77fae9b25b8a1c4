/*
 * Strict parsing of numbers typed by users. atoi and friends accept "12x"
 * as 12 and "x" as 0, which turns typos into silent settings. These
 * functions accept a value only when every character belongs to it.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* strtoll and strtod skip leading white space, which a strict parser must
 * reject itself. */
static int starts_with_space(const char *text) {
  return isspace((unsigned char)text[0]) != 0;
}

int cli_parse_int(const char *option, const char *text, int64_t min,
                  int64_t max, int64_t *value) {
  if (text[0] == '\0' || starts_with_space(text)) {
    cli_usage_error("invalid value \"%s\" for %s: expected an integer", text,
                    option);
    return -1;
  }

  errno = 0;
  char *end = NULL;
  long long parsed = strtoll(text, &end, 10);
  if (*end != '\0') {
    cli_usage_error("invalid value \"%s\" for %s: expected an integer", text,
                    option);
    return -1;
  }
  if (errno == ERANGE || parsed < min || parsed > max) {
    cli_usage_error("value \"%s\" for %s is out of range: expected %lld to "
                    "%lld",
                    text, option, (long long)min, (long long)max);
    return -1;
  }

  *value = (int64_t)parsed;
  return 0;
}

int cli_parse_double(const char *option, const char *text, double min,
                     double max, double *value) {
  if (text[0] == '\0' || starts_with_space(text)) {
    cli_usage_error("invalid value \"%s\" for %s: expected a number", text,
                    option);
    return -1;
  }

  errno = 0;
  char *end = NULL;
  double parsed = strtod(text, &end);
  if (*end != '\0' || !isfinite(parsed)) {
    cli_usage_error("invalid value \"%s\" for %s: expected a finite number",
                    text, option);
    return -1;
  }
  if (errno == ERANGE || parsed < min || parsed > max) {
    cli_usage_error("value \"%s\" for %s is out of range: expected %g to %g",
                    text, option, min, max);
    return -1;
  }

  *value = parsed;
  return 0;
}

int cli_parse_bitrate(const char *option, const char *text, int64_t *value) {
  size_t length = strlen(text);
  double multiplier = 1.0;
  if (length > 0 && (text[length - 1] == 'k' || text[length - 1] == 'K')) {
    multiplier = 1000.0;
    length--;
  } else if (length > 0 && text[length - 1] == 'M') {
    multiplier = 1000000.0;
    length--;
  }

  /* Parse the digits without the suffix from a bounded copy. */
  char digits[32];
  if (length == 0 || length >= sizeof digits) {
    cli_usage_error("invalid bit rate \"%s\" for %s: expected bits per second "
                    "such as 64k or 128000",
                    text, option);
    return -1;
  }
  memcpy(digits, text, length);
  digits[length] = '\0';

  char *end = NULL;
  double number = strtod(digits, &end);
  if (starts_with_space(digits) || *end != '\0' || !isfinite(number)) {
    cli_usage_error("invalid bit rate \"%s\" for %s: expected bits per second "
                    "such as 64k or 128000",
                    text, option);
    return -1;
  }
  double bits_per_second = number * multiplier;
  if (bits_per_second < 1000.0 || bits_per_second > 10000000.0) {
    cli_usage_error("bit rate \"%s\" for %s is out of range: expected 1k to "
                    "10M bits per second",
                    text, option);
    return -1;
  }

  *value = (int64_t)llround(bits_per_second);
  return 0;
}

int cli_option_value(int argc, char **argv, int *index, const char *name,
                     const char **value) {
  const char *argument = argv[*index];
  size_t length = strlen(name);
  if (strncmp(argument, name, length) != 0) {
    return 0;
  }

  if (argument[length] == '=') {
    *value = argument + length + 1;
    return 1;
  }
  if (argument[length] != '\0') {
    return 0;
  }
  if (*index + 1 >= argc) {
    cli_usage_error("option %s needs a value: run with --help for its "
                    "format",
                    name);
    return -1;
  }
  *index += 1;
  *value = argv[*index];
  return 1;
}
