/*
 * Starting and stopping the server, for main.c.
 */
#ifndef HTTPD_HTTPD_H
#define HTTPD_HTTPD_H

#include "server.h"

/* Registers the metrics and starts the daemon on settings.listen_*. */
ap_status_t httpd_server_start(httpd_server_t *server, ap_error_t *error);

/* Closes the listening socket: new connections are refused, open ones
 * are still served. */
void httpd_server_stop_accepting(httpd_server_t *server);

/* Stops the daemon, closing every connection. */
void httpd_server_stop(httpd_server_t *server);

#endif
