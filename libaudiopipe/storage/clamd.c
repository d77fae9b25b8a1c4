/*
 * clamd INSTREAM client. The protocol, as clamd(8) of ClamAV 1.x documents
 * it: send "zINSTREAM\0", then chunks each preceded by its length as a
 * 4-byte big-endian integer, then a zero length. clamd replies with one
 * NUL-terminated line: "stream: OK", "stream: <signature> FOUND" or
 * "<reason> ERROR".
 *
 * clamd closes the connection early when the stream passes its
 * StreamMaxLength, so a failed send is followed by an attempt to read that
 * reply before the scan is reported as unavailable.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/error_internal.h"
#include "storage/clamd.h"

enum {
  CHUNK_SIZE = 64 * 1024,
  REPLY_SIZE = 1024,
};

typedef struct clamd_connection {
  const char *address; /* for messages */
  int fd;
  int timeout_ms;
} clamd_connection_t;

static ap_status_t unavailable(const clamd_connection_t *connection,
                               const char *what, int saved_errno,
                               ap_error_t *error) {
  if (saved_errno == ETIMEDOUT) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNAVAILABLE,
                        "clamd at %s timed out after %d ms while %s: the "
                        "upload was not scanned; retry later",
                        connection->address, connection->timeout_ms, what);
  }
  return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNAVAILABLE,
                      "clamd at %s is unavailable (%s failed: %s): the "
                      "upload was not scanned; retry later",
                      connection->address, what, strerror(saved_errno));
}

/* Waits until the socket is ready for `events`; sets errno to ETIMEDOUT
 * when the timeout passes. Returns 0 or -1. */
static int wait_ready(int fd, short events, int timeout_ms) {
  struct pollfd entry = {.fd = fd, .events = events};
  for (;;) {
    int ready = poll(&entry, 1, timeout_ms);
    if (ready > 0) {
      return 0;
    }
    if (ready == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    if (errno != EINTR) {
      return -1;
    }
  }
}

/* Connects a non-blocking socket within the timeout. */
static int connect_with_timeout(int fd, const struct sockaddr *address,
                                socklen_t length, int timeout_ms) {
  if (connect(fd, address, length) == 0) {
    return 0;
  }
  if (errno != EINPROGRESS && errno != EAGAIN) {
    return -1;
  }
  if (wait_ready(fd, POLLOUT, timeout_ms) != 0) {
    return -1;
  }
  int failure = 0;
  socklen_t failure_length = sizeof failure;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &failure_length) != 0) {
    return -1;
  }
  if (failure != 0) {
    errno = failure;
    return -1;
  }
  return 0;
}

static ap_status_t open_unix(clamd_connection_t *connection, const char *path,
                             ap_error_t *error) {
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  if (!*path || strlen(path) >= sizeof address.sun_path) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "clamd socket path in \"%s\" is empty or longer than "
                        "%zu bytes",
                        connection->address, sizeof address.sun_path - 1);
  }
  memcpy(address.sun_path, path, strlen(path) + 1);

  connection->fd =
      socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (connection->fd < 0) {
    return unavailable(connection, "socket", errno, error);
  }
  if (connect_with_timeout(connection->fd, (struct sockaddr *)&address,
                           sizeof address, connection->timeout_ms) != 0) {
    return unavailable(connection, "connect", errno, error);
  }
  return AP_OK;
}

/* Splits "HOST:PORT" or "[V6]:PORT" and connects to the first address
 * that accepts. */
static ap_status_t open_tcp(clamd_connection_t *connection,
                            const char *host_port, ap_error_t *error) {
  char host[256];
  const char *port = NULL;
  if (host_port[0] == '[') {
    const char *close_bracket = strchr(host_port, ']');
    if (close_bracket && close_bracket[1] == ':') {
      size_t length = (size_t)(close_bracket - host_port - 1);
      if (length < sizeof host) {
        memcpy(host, host_port + 1, length);
        host[length] = '\0';
        port = close_bracket + 2;
      }
    }
  } else {
    const char *colon = strrchr(host_port, ':');
    size_t length = colon ? (size_t)(colon - host_port) : 0;
    if (colon && length > 0 && length < sizeof host) {
      memcpy(host, host_port, length);
      host[length] = '\0';
      port = colon + 1;
    }
  }
  if (!port || !*port || strspn(port, "0123456789") != strlen(port)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "clamd address \"%s\" is not tcp:HOST:PORT, such as "
                        "tcp:127.0.0.1:3310",
                        connection->address);
  }

  /* NOTE: a host name is resolved with getaddrinfo, which the timeout does
   * not bound; numeric addresses avoid the lookup. */
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV};
  struct addrinfo *addresses = NULL;
  int resolved = getaddrinfo(host, port, &hints, &addresses);
  if (resolved != 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNAVAILABLE,
                        "cannot resolve the clamd host in \"%s\": %s",
                        connection->address, gai_strerror(resolved));
  }

  int saved = ECONNREFUSED;
  for (struct addrinfo *entry = addresses; entry; entry = entry->ai_next) {
    int fd = socket(entry->ai_family,
                    entry->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    entry->ai_protocol);
    if (fd < 0) {
      saved = errno;
      continue;
    }
    if (connect_with_timeout(fd, entry->ai_addr, entry->ai_addrlen,
                             connection->timeout_ms) == 0) {
      connection->fd = fd;
      break;
    }
    saved = errno;
    close(fd);
  }
  freeaddrinfo(addresses);
  if (connection->fd < 0) {
    return unavailable(connection, "connect", saved, error);
  }
  return AP_OK;
}

/* Sends all bytes; returns 0, or -1 with errno set. */
static int send_all(const clamd_connection_t *connection, const void *data,
                    size_t size) {
  const unsigned char *cursor = data;
  while (size > 0) {
    if (wait_ready(connection->fd, POLLOUT, connection->timeout_ms) != 0) {
      return -1;
    }
    ssize_t sent = send(connection->fd, cursor, size, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
        continue;
      }
      return -1;
    }
    cursor += sent;
    size -= (size_t)sent;
  }
  return 0;
}

/* Reads the reply up to its NUL or the end of the connection. Returns
 * its length, or -1 with errno set when nothing arrived. */
static ssize_t receive_reply(const clamd_connection_t *connection, char *reply,
                             size_t size) {
  size_t length = 0;
  while (length + 1 < size) {
    if (wait_ready(connection->fd, POLLIN, connection->timeout_ms) != 0) {
      return length > 0 ? (ssize_t)length : -1;
    }
    ssize_t count = recv(connection->fd, reply + length, size - 1 - length, 0);
    if (count < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
        continue;
      }
      return length > 0 ? (ssize_t)length : -1;
    }
    if (count == 0) {
      break;
    }
    length += (size_t)count;
    if (memchr(reply + length - (size_t)count, '\0', (size_t)count)) {
      break;
    }
  }
  reply[length] = '\0';
  return (ssize_t)length;
}

/* Streams the input as INSTREAM chunks. Returns AP_OK, AP_ERR_IO for an
 * input failure, or AP_ERR_UNAVAILABLE with `*send_errno` set when the
 * socket failed. */
static ap_status_t send_stream(const clamd_connection_t *connection,
                               ap_io_t *input, unsigned char *buffer,
                               int *send_errno, ap_error_t *error) {
  static const char command[] = "zINSTREAM";
  if (send_all(connection, command, sizeof command) != 0) {
    *send_errno = errno;
    return AP_ERR_UNAVAILABLE;
  }
  for (;;) {
    int64_t count = ap_io_read(input, buffer + 4, CHUNK_SIZE, error);
    if (count < 0) {
      ap_status_t code =
          error && error->code ? (ap_status_t)error->code : AP_ERR_IO;
      ap_error_prefix(error, "reading the input for clamd");
      return code;
    }
    buffer[0] = (unsigned char)((uint64_t)count >> 24);
    buffer[1] = (unsigned char)((uint64_t)count >> 16);
    buffer[2] = (unsigned char)((uint64_t)count >> 8);
    buffer[3] = (unsigned char)count;
    if (send_all(connection, buffer, 4 + (size_t)count) != 0) {
      *send_errno = errno;
      return AP_ERR_UNAVAILABLE;
    }
    if (count == 0) {
      return AP_OK;
    }
  }
}

/* Turns clamd's reply into the verdict. */
static ap_status_t parse_reply(const clamd_connection_t *connection,
                               char *reply, ap_clamd_verdict_t *verdict,
                               char *signature_name, size_t signature_name_size,
                               ap_error_t *error) {
  size_t length = strlen(reply);
  while (length > 0 &&
         (reply[length - 1] == '\n' || reply[length - 1] == ' ')) {
    reply[--length] = '\0';
  }

  static const char found_suffix[] = " FOUND";
  static const char error_suffix[] = " ERROR";
  static const char stream_prefix[] = "stream: ";
  size_t prefix_length = sizeof stream_prefix - 1;
  size_t found_length = sizeof found_suffix - 1;

  if (strcmp(reply, "stream: OK") == 0) {
    *verdict = AP_CLAMD_CLEAN;
    return AP_OK;
  }
  if (length > prefix_length + found_length &&
      strncmp(reply, stream_prefix, prefix_length) == 0 &&
      strcmp(reply + length - found_length, found_suffix) == 0) {
    const char *name = reply + prefix_length;
    int name_length = (int)(length - prefix_length - found_length);
    if (signature_name && signature_name_size > 0) {
      snprintf(signature_name, signature_name_size, "%.*s", name_length, name);
    }
    *verdict = AP_CLAMD_INFECTED;
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INFECTED,
                        "the virus scanner found %.*s in the upload: it is "
                        "rejected",
                        name_length, name);
  }
  size_t error_length = sizeof error_suffix - 1;
  if (length >= error_length &&
      strcmp(reply + length - error_length, error_suffix) == 0) {
    if (strstr(reply, "size limit exceeded")) {
      return ap_error_set(
          error, AP_DOMAIN_STORAGE, AP_ERR_INPUT_TOO_LARGE,
          "clamd at %s rejected the upload as too large (\"%s\"): raise "
          "StreamMaxLength in clamd.conf to at least "
          "limits.max_input_bytes",
          connection->address, reply);
    }
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNAVAILABLE,
                        "clamd at %s could not scan the upload: \"%.200s\"; "
                        "retry later",
                        connection->address, reply);
  }
  return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNAVAILABLE,
                      "clamd at %s sent an unexpected reply \"%.200s\": the "
                      "upload was not scanned",
                      connection->address, reply);
}

ap_status_t ap_clamd_scan(const char *address, ap_io_t *input,
                          int64_t timeout_ms, ap_clamd_verdict_t *verdict,
                          char *signature_name, size_t signature_name_size,
                          ap_error_t *error) {
  if (verdict) {
    *verdict = AP_CLAMD_UNKNOWN;
  }
  if (signature_name && signature_name_size > 0) {
    signature_name[0] = '\0';
  }
  if (!address || !input || !verdict) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "ap_clamd_scan: address, input and verdict are "
                        "required");
  }
  if (timeout_ms <= 0 || timeout_ms > INT32_MAX) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                        "clamd timeout of %lld ms is out of range: use 1 ms "
                        "to 24 days, such as 60000",
                        (long long)timeout_ms);
  }

  clamd_connection_t connection = {
      .address = address, .fd = -1, .timeout_ms = (int)timeout_ms};
  ap_status_t status;
  if (strncmp(address, "unix:", 5) == 0) {
    status = open_unix(&connection, address + 5, error);
  } else if (strncmp(address, "tcp:", 4) == 0) {
    status = open_tcp(&connection, address + 4, error);
  } else {
    status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                          "clamd address \"%s\" must start with unix: or "
                          "tcp:, such as unix:/run/clamav/clamd.ctl or "
                          "tcp:127.0.0.1:3310",
                          address);
  }
  if (status != AP_OK) {
    if (connection.fd >= 0) {
      close(connection.fd);
    }
    return status;
  }

  unsigned char *buffer = malloc(4 + CHUNK_SIZE);
  if (!buffer) {
    close(connection.fd);
    return AP_NO_MEMORY(error);
  }
  int send_errno = 0;
  status = send_stream(&connection, input, buffer, &send_errno, error);
  free(buffer);
  if (status != AP_OK && status != AP_ERR_UNAVAILABLE) {
    close(connection.fd);
    return status;
  }

  /* After a failed send, clamd may have explained why before closing. */
  char reply[REPLY_SIZE];
  ssize_t reply_length = receive_reply(&connection, reply, sizeof reply);
  int receive_errno = errno;
  close(connection.fd);
  if (reply_length <= 0) {
    if (status == AP_ERR_UNAVAILABLE) {
      return unavailable(&connection, "sending the stream", send_errno, error);
    }
    return unavailable(&connection, "reading the reply",
                       reply_length == 0 ? ECONNRESET : receive_errno, error);
  }
  return parse_reply(&connection, reply, verdict, signature_name,
                     signature_name_size, error);
}
