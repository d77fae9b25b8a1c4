/*
 * Server-sent event streams of job progress (GET /v1/jobs/{id}/events).
 *
 * One hub thread serves every stream: it polls each stream's job every
 * settings.sse_poll_ms, turns a change of state, progress or stage into
 * an event, and writes a ":" heartbeat comment when a stream was idle for
 * settings.heartbeat_ms. Between events a stream's connection is
 * suspended in libmicrohttpd, so open streams hold no pool thread and
 * cannot starve other requests.
 */
#ifndef HTTPD_SSE_H
#define HTTPD_SSE_H

#include "server.h"

/* Starts the hub thread. */
ap_status_t httpd_sse_hub_start(httpd_server_t *server, httpd_sse_hub_t **out,
                                ap_error_t *error);

/* Ends every stream after the events already queued (for draining), and
 * makes the hub refuse new ones. */
void httpd_sse_hub_finish_all(httpd_sse_hub_t *hub);

/* Stops the hub thread and frees the hub. Call after the daemon stopped. */
void httpd_sse_hub_stop(httpd_sse_hub_t *hub);

/* Returns the bytes a stream has handed to libmicrohttpd. */
uint64_t httpd_sse_stream_bytes(httpd_sse_stream_t *stream);

/* Drops the request's reference to its stream. */
void httpd_sse_stream_release(httpd_sse_stream_t *stream);

/*
 * Formats one event into `out` (`size` bytes): "id:", "event:" and one
 * "data:" line, then a blank line. Returns the length, or 0 when it does
 * not fit. `data` must not contain a newline.
 */
size_t httpd_sse_format_event(char *out, size_t size, int64_t sequence,
                              const char *event, const char *data);

#endif
