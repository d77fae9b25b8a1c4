/*
 * Helpers shared by the logging and metrics files of the obs area.
 */
#ifndef AP_OBS_OBS_INTERNAL_H
#define AP_OBS_OBS_INTERNAL_H

#include <stddef.h>

/*
 * Escapes the character at the start of `text` (`length` bytes available)
 * for a JSON string: quotes, backslashes and control characters become
 * escapes, a valid UTF-8 sequence is copied whole, and an invalid byte
 * becomes \ufffd. Writes at most 12 bytes to `out`, stores in `consumed`
 * how many input bytes were used (at least 1) and returns the output
 * length.
 */
size_t ap_obs_json_escape_char(const char *text, size_t length, char *out,
                               size_t *consumed);

/* Writes the current UTC time as RFC 3339 with milliseconds
 * ("2026-12-04T16:07:48.123Z") and returns its length. `size` must be at
 * least 32. */
size_t ap_obs_format_timestamp(char *buffer, size_t size);

#endif
