/*
 * Client for the ClamAV daemon's INSTREAM command: streams an ap_io_t to
 * clamd and reports its verdict. A scan that cannot complete (clamd
 * unreachable, timed out, or refusing the stream) is always an error and
 * never a clean verdict.
 */
#ifndef AP_STORAGE_CLAMD_H
#define AP_STORAGE_CLAMD_H

#include <stddef.h>
#include <stdint.h>

#include <audiopipe/error.h>
#include <audiopipe/io.h>

typedef enum ap_clamd_verdict {
  AP_CLAMD_UNKNOWN = 0, /* the scan did not complete */
  AP_CLAMD_CLEAN = 1,
  AP_CLAMD_INFECTED = 2
} ap_clamd_verdict_t;

/*
 * Scans `input` from its current position to its end with the clamd at
 * `address`: "unix:/path/to/clamd.ctl" or "tcp:HOST:PORT" (HOST a numeric
 * IPv4 or IPv6 address, IPv6 in brackets). `timeout_ms` bounds the
 * connect and each send or receive, not the whole scan.
 *
 * Returns AP_OK with `*verdict` AP_CLAMD_CLEAN when clamd replied
 * "stream: OK". Returns AP_ERR_INFECTED with `*verdict` AP_CLAMD_INFECTED
 * when it found a signature, whose name is copied to `signature_name`
 * (may be NULL; truncated to `signature_name_size`) and named in the
 * message. Fails with AP_ERR_UNAVAILABLE when clamd cannot be reached,
 * times out or reports an error (retry later); AP_ERR_INPUT_TOO_LARGE when
 * the stream exceeds clamd's StreamMaxLength; AP_ERR_IO when `input`
 * fails; AP_ERR_INVALID_ARGUMENT for a malformed address.
 *
 * NOTE: ClamAV 1.4.6 recognises MP3 input and then scans none of its bytes
 * (`clamscan --debug` prints "Recognized MP3 file" and 0.00 MB scanned).
 * EICAR placed in the middle or at the end of tests/data/cases/case-03.mp3
 * was not found, while the same test found it in case-18.wav and
 * case-04.m4a.
 */
ap_status_t ap_clamd_scan(const char *address, ap_io_t *input,
                          int64_t timeout_ms, ap_clamd_verdict_t *verdict,
                          char *signature_name, size_t signature_name_size,
                          ap_error_t *error);

#endif
