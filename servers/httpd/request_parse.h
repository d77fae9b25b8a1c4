/*
 * Pure parsers for what a client sends: query strings, the JSON bodies of
 * the upload routes, bearer credentials, the parameters of a presigned
 * URL, and small header values. None of them touches server state, so
 * fuzz/fuzz_http_request.c calls them directly.
 *
 * Errors are reported through an ap_error_t in the HTTP domain whose
 * message starts with the name of the field at fault ("limit: ...").
 */
#ifndef HTTPD_REQUEST_PARSE_H
#define HTTPD_REQUEST_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include <audiopipe/error.h>
#include <audiopipe/storage.h>

/* Fills `error` in the HTTP domain and returns `code`. */
ap_status_t httpd_error_set(ap_error_t *error, ap_error_code_t code,
                            const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Limits of a query string: longer or fuller ones are rejected (400). */
#define HTTPD_QUERY_MAX_BYTES 4096
#define HTTPD_QUERY_MAX_PAIRS 32

/* A decoded query string. Names and values point into `storage`. */
typedef struct httpd_query {
  size_t count;
  const char *names[HTTPD_QUERY_MAX_PAIRS];
  const char *values[HTTPD_QUERY_MAX_PAIRS];
  char storage[HTTPD_QUERY_MAX_BYTES + HTTPD_QUERY_MAX_PAIRS + 2];
} httpd_query_t;

/*
 * Splits `query` (the text after '?', `length` bytes, may be empty) into
 * name=value pairs and percent-decodes them ('+' is a space). A pair
 * without '=' has the value "". Fails with AP_ERR_INVALID_ARGUMENT for a
 * query over the limits above, a malformed %-escape or a decoded NUL.
 */
ap_status_t httpd_query_parse(const char *query, size_t length,
                              httpd_query_t *out, ap_error_t *error);

/* Returns the value of the first pair named `name`, or NULL. */
const char *httpd_query_get(const httpd_query_t *query, const char *name);

/* Returns how many pairs are named `name`. */
size_t httpd_query_count(const httpd_query_t *query, const char *name);

/*
 * Parses the `limit` of a list request: NULL gives `default_limit`,
 * otherwise a decimal integer from 1 to `max_limit`.
 */
ap_status_t httpd_parse_limit(const char *text, int default_limit,
                              int max_limit, int *limit, ap_error_t *error);

/* Maximum filename and content type sizes the JSON parser keeps (the library
 * applies the real limits and names the field when they are exceeded). */
#define HTTPD_FILENAME_SIZE 1024
#define HTTPD_CONTENT_TYPE_SIZE 256

/* The body of POST /v1/uploads. */
typedef struct httpd_upload_body {
  char filename[HTTPD_FILENAME_SIZE];
  char content_type[HTTPD_CONTENT_TYPE_SIZE];
  int64_t size_bytes;
  char method[16]; /* "put", "post", "multipart"; "" when absent */
} httpd_upload_body_t;

/*
 * Parses and checks the body of POST /v1/uploads: a JSON object with
 * exactly the fields "filename" (string), "size_bytes" (integer) and
 * "content_type" (string). Fails with AP_ERR_INVALID_ARGUMENT naming the
 * missing, mistyped or unknown field, or saying the body is not a JSON
 * object.
 */
ap_status_t httpd_upload_body_parse(const char *body, size_t length,
                                    httpd_upload_body_t *out,
                                    ap_error_t *error);

/* Checks the body of POST /v1/uploads/{id}/complete: empty, or a JSON
 * object with no fields. */
ap_status_t httpd_complete_body_parse(const char *body, size_t length,
                                      ap_error_t *error);

/*
 * Finds the credential in an Authorization header of the form
 * "Bearer <token>" (scheme case-insensitive, token of 1 to 512 visible
 * ASCII characters). Stores its start and length and returns 1, or
 * returns 0 when the header is missing or malformed.
 */
int httpd_bearer_parse(const char *header, const char **token, size_t *length);

/*
 * Fills `request` for ap_signed_request_verify from the parts of a
 * received request. `content_length_header` is the raw header (NULL when
 * absent). The strings stay owned by the caller and `query`. Fails with
 * AP_ERR_SIGNATURE when a signed parameter appears more than once, or
 * when Content-Length is not a plain decimal number.
 */
ap_status_t
httpd_signed_request_fill(ap_signed_request_t *request, const char *method,
                          const char *host, const char *path,
                          const httpd_query_t *query, const char *content_type,
                          const char *content_length_header, ap_error_t *error);

/* Returns 1 when `query` carries any presigned URL parameter. */
int httpd_query_has_signature(const httpd_query_t *query);

typedef enum httpd_waveform_format {
  HTTPD_WAVEFORM_DAT = 1,
  HTTPD_WAVEFORM_JSON = 2
} httpd_waveform_format_t;

/*
 * Chooses the waveform representation: `format` ("dat" or "json") wins
 * when given; otherwise an Accept header naming application/json before
 * any binary type gives JSON, and anything else the .dat file.
 */
ap_status_t httpd_waveform_format_parse(const char *format, const char *accept,
                                        httpd_waveform_format_t *out,
                                        ap_error_t *error);

/* Returns 1 when `text` may be echoed as a request id: 1 to 64
 * characters of [A-Za-z0-9._-]. */
int httpd_request_id_is_valid(const char *text);

/* Parses a Last-Event-ID header: a decimal sequence number from 0 to
 * 2^53. Returns 0 on success, -1 otherwise. */
int httpd_last_event_id_parse(const char *text, int64_t *sequence);

#endif
