/*
 * The HTTP half of the S3 backend: libcurl easy handles that share one
 * connection cache and DNS cache (CURLSH, guarded by mutexes), SigV4 by
 * libcurl, retries with exponential backoff, and the mapping from S3 XML
 * errors to ap_error codes.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "core/error_internal.h"
#include "storage/s3_client.h"
#include "storage/storage_internal.h"

/* Wait before the second attempt. Each later attempt waits 4 times as
 * long (100 ms, 400 ms, 1.6 s). */
#define RETRY_BASE_MS 100

/* Largest response body kept in memory. A listing of 1000 keys is about
 * 300 KiB, and object bodies are bounded by the ranged reads. */
#define MAX_RESPONSE_BODY (64 * 1024 * 1024)

struct ap_s3_client {
  char *origin;
  char *bucket;
  int path_style;
  char *userpwd; /* "access key:secret key" for CURLOPT_USERPWD */
  char *sigv4;   /* "aws:amz:REGION:s3" for CURLOPT_AWS_SIGV4 */
  char *session_token;
  long connect_timeout_ms;
  long timeout_ms;
  int max_attempts;
  CURLSH *share;
  pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
  int locks_ready;
};

static void lock_share(CURL *handle, curl_lock_data data,
                       curl_lock_access access, void *user_data) {
  (void)handle;
  (void)access;
  ap_s3_client_t *client = user_data;
  pthread_mutex_lock(&client->locks[data]);
}

static void unlock_share(CURL *handle, curl_lock_data data, void *user_data) {
  (void)handle;
  ap_s3_client_t *client = user_data;
  pthread_mutex_unlock(&client->locks[data]);
}

void ap_s3_client_close(ap_s3_client_t *client) {
  if (!client) {
    return;
  }
  if (client->share) {
    curl_share_cleanup(client->share);
    curl_global_cleanup();
  }
  if (client->locks_ready) {
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
      pthread_mutex_destroy(&client->locks[i]);
    }
  }
  if (client->userpwd) {
    memset(client->userpwd, 0, strlen(client->userpwd));
  }
  free(client->origin);
  free(client->bucket);
  free(client->userpwd);
  free(client->sigv4);
  free(client->session_token);
  free(client);
}

ap_status_t ap_s3_client_open(const ap_s3_client_options_t *options,
                              ap_s3_client_t **out, ap_error_t *error) {
  *out = NULL;
  ap_s3_client_t *client = calloc(1, sizeof *client);
  if (!client) {
    return AP_NO_MEMORY(error);
  }
  const ap_s3_credentials_t *credentials = &options->credentials;
  client->origin = strdup(options->origin);
  client->bucket = strdup(options->bucket);
  client->path_style = options->path_style;
  client->connect_timeout_ms = options->connect_timeout_ms;
  client->timeout_ms = options->timeout_ms;
  client->max_attempts = options->max_attempts < 1 ? 1 : options->max_attempts;
  size_t userpwd_size = strlen(credentials->access_key_id) +
                        strlen(credentials->secret_access_key) + 2;
  client->userpwd = malloc(userpwd_size);
  size_t sigv4_size = strlen(credentials->region) + 16;
  client->sigv4 = malloc(sigv4_size);
  if (credentials->session_token && *credentials->session_token) {
    client->session_token = strdup(credentials->session_token);
  }
  if (!client->origin || !client->bucket || !client->userpwd ||
      !client->sigv4 ||
      (credentials->session_token && *credentials->session_token &&
       !client->session_token)) {
    ap_s3_client_close(client);
    return AP_NO_MEMORY(error);
  }
  snprintf(client->userpwd, userpwd_size, "%s:%s", credentials->access_key_id,
           credentials->secret_access_key);
  snprintf(client->sigv4, sigv4_size, "aws:amz:%s:s3", credentials->region);

  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
    pthread_mutex_init(&client->locks[i], NULL);
  }
  client->locks_ready = 1;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    ap_s3_client_close(client);
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INTERNAL,
                        "libcurl global initialisation failed");
  }
  client->share = curl_share_init();
  if (!client->share) {
    curl_global_cleanup();
    ap_s3_client_close(client);
    return AP_NO_MEMORY(error);
  }
  curl_share_setopt(client->share, CURLSHOPT_LOCKFUNC, lock_share);
  curl_share_setopt(client->share, CURLSHOPT_UNLOCKFUNC, unlock_share);
  curl_share_setopt(client->share, CURLSHOPT_USERDATA, client);
  curl_share_setopt(client->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(client->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  *out = client;
  return AP_OK;
}

void ap_s3_request_init(ap_s3_request_t *request, const char *method) {
  memset(request, 0, sizeof *request);
  request->method = method;
  request->range_first = -1;
  request->range_last = -1;
  request->idempotent = strcmp(method, "POST") != 0;
}

void ap_s3_response_free(ap_s3_response_t *response) {
  if (!response) {
    return;
  }
  free(response->body);
  memset(response, 0, sizeof *response);
  response->content_length = -1;
}

ap_status_t ap_s3_object_url(const char *origin, const char *bucket,
                             int path_style, const char *key, char **url,
                             char **host, char **encoded_path,
                             ap_error_t *error) {
  *url = NULL;
  *host = NULL;
  *encoded_path = NULL;
  const char *separator = strstr(origin, "://");
  if (!separator) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "S3 endpoint \"%s\" has no scheme: use "
                        "http://HOST:PORT or https://HOST",
                        origin);
  }
  const char *authority = separator + 3;
  char *encoded_key = NULL;
  ap_status_t status = ap_s3_uri_encode(key ? key : "", 1, &encoded_key, error);
  if (status != AP_OK) {
    return status;
  }

  size_t size = strlen(origin) + strlen(bucket) + strlen(encoded_key) + 8;
  char *path = malloc(size);
  char *full = malloc(size + strlen(bucket) + 8);
  char *host_value = malloc(strlen(authority) + strlen(bucket) + 2);
  if (!path || !full || !host_value) {
    free(encoded_key);
    free(path);
    free(full);
    free(host_value);
    return AP_NO_MEMORY(error);
  }
  if (path_style) {
    snprintf(path, size, "/%s%s%s", bucket, key ? "/" : "", encoded_key);
    snprintf(full, size + strlen(bucket) + 8, "%s%s", origin, path);
    strcpy(host_value, authority);
  } else {
    snprintf(path, size, "/%s", encoded_key);
    snprintf(full, size + strlen(bucket) + 8, "%.*s%s.%s%s",
             (int)(authority - origin), origin, bucket, authority, path);
    sprintf(host_value, "%s.%s", bucket, authority);
  }
  free(encoded_key);
  *url = full;
  *host = host_value;
  *encoded_path = path;
  return AP_OK;
}

int ap_s3_xml_find(const char *xml, const char **cursor, const char *tag,
                   char *value, size_t size) {
  char open[64];
  char close[64];
  snprintf(open, sizeof open, "<%s>", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  const char *start = strstr(cursor && *cursor ? *cursor : xml, open);
  if (!start) {
    return 0;
  }
  start += strlen(open);
  const char *end = strstr(start, close);
  if (!end) {
    return 0;
  }

  static const struct {
    const char *entity;
    char character;
  } entities[] = {{"&amp;", '&'},
                  {"&lt;", '<'},
                  {"&gt;", '>'},
                  {"&quot;", '"'},
                  {"&apos;", '\''}};
  size_t used = 0;
  for (const char *c = start; c < end;) {
    char character = *c;
    size_t advance = 1;
    if (*c == '&') {
      for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
        size_t length = strlen(entities[i].entity);
        if ((size_t)(end - c) >= length &&
            strncmp(c, entities[i].entity, length) == 0) {
          character = entities[i].character;
          advance = length;
          break;
        }
      }
    }
    if (used + 1 >= size) {
      return 0;
    }
    value[used++] = character;
    c += advance;
  }
  value[used] = '\0';
  if (cursor) {
    *cursor = end + strlen(close);
  }
  return 1;
}

/* ---- One transfer -------------------------------------------------- */

typedef struct transfer {
  const ap_s3_request_t *request;
  size_t body_sent;
  ap_s3_response_t *response;
  size_t body_capacity;
  int body_too_large;
} transfer_t;

static size_t read_body(char *buffer, size_t size, size_t count,
                        void *user_data) {
  transfer_t *transfer = user_data;
  size_t room = size * count;
  size_t left = transfer->request->body_size - transfer->body_sent;
  size_t copy = left < room ? left : room;
  if (copy) {
    memcpy(buffer, (const char *)transfer->request->body + transfer->body_sent,
           copy);
    transfer->body_sent += copy;
  }
  return copy;
}

static size_t write_body(char *data, size_t size, size_t count,
                         void *user_data) {
  transfer_t *transfer = user_data;
  ap_s3_response_t *response = transfer->response;
  size_t length = size * count;
  if (response->body_size + length + 1 > transfer->body_capacity) {
    size_t capacity = transfer->body_capacity ? transfer->body_capacity : 4096;
    while (capacity < response->body_size + length + 1) {
      capacity *= 2;
    }
    if (capacity > MAX_RESPONSE_BODY) {
      transfer->body_too_large = 1;
      return 0;
    }
    char *grown = realloc(response->body, capacity);
    if (!grown) {
      transfer->body_too_large = 1;
      return 0;
    }
    response->body = grown;
    transfer->body_capacity = capacity;
  }
  memcpy(response->body + response->body_size, data, length);
  response->body_size += length;
  response->body[response->body_size] = '\0';
  return length;
}

/* Copies a header value without the line end into `value`. */
static void copy_header_value(const char *data, size_t length, char *value,
                              size_t size) {
  while (length && (data[length - 1] == '\r' || data[length - 1] == '\n' ||
                    data[length - 1] == ' ')) {
    length--;
  }
  while (length && *data == ' ') {
    data++;
    length--;
  }
  if (length >= size) {
    length = size - 1;
  }
  memcpy(value, data, length);
  value[length] = '\0';
}

static size_t read_header(char *data, size_t size, size_t count,
                          void *user_data) {
  transfer_t *transfer = user_data;
  ap_s3_response_t *response = transfer->response;
  size_t length = size * count;
  const char *colon = memchr(data, ':', length);
  if (!colon) {
    return length;
  }
  size_t name_length = (size_t)(colon - data);
  const char *value = colon + 1;
  size_t value_length = length - name_length - 1;
  if (name_length == 4 && strncasecmp(data, "ETag", 4) == 0) {
    copy_header_value(value, value_length, response->etag,
                      sizeof response->etag);
  } else if (name_length == 12 && strncasecmp(data, "Content-Type", 12) == 0) {
    copy_header_value(value, value_length, response->content_type,
                      sizeof response->content_type);
  } else if (name_length == 14 &&
             strncasecmp(data, "Content-Length", 14) == 0) {
    char text[32];
    copy_header_value(value, value_length, text, sizeof text);
    response->content_length = strtoll(text, NULL, 10);
  } else if (name_length == 13 && strncasecmp(data, "Last-Modified", 13) == 0) {
    char text[64];
    copy_header_value(value, value_length, text, sizeof text);
    time_t seconds = curl_getdate(text, NULL);
    response->last_modified_ms = seconds > 0 ? (int64_t)seconds * 1000 : 0;
  }
  return length;
}

static void sleep_ms(long milliseconds) {
  struct timespec delay = {milliseconds / 1000,
                           (milliseconds % 1000) * 1000000L};
  while (nanosleep(&delay, &delay) != 0) {
  }
}

/* Returns 1 for libcurl failures a later attempt may not meet. */
static int is_transient(CURLcode code) {
  switch (code) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
    return 1;
  default:
    return 0;
  }
}

/* Runs one attempt into `response` and returns libcurl's result. */
static CURLcode run_transfer(ap_s3_client_t *client,
                             const ap_s3_request_t *request, const char *url,
                             ap_s3_response_t *response, ap_error_t *error,
                             ap_status_t *status) {
  *status = AP_OK;
  CURL *handle = curl_easy_init();
  if (!handle) {
    *status = AP_NO_MEMORY(error);
    return CURLE_OUT_OF_MEMORY;
  }

  transfer_t transfer = {request, 0, response, 0, 0};
  struct curl_slist *headers = NULL;
  struct curl_slist *next = NULL;
  char line[AP_CONTENT_TYPE_MAX_SIZE + AP_S3_ETAG_SIZE + 64];
  int header_failed = 0;

  /* libcurl 7.88 signs the payload hash this header gives and does not
   * add one itself, but S3 servers require it. */
  next = curl_slist_append(headers, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  header_failed |= !next;
  headers = next ? next : headers;
  if (request->content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", request->content_type);
    next = curl_slist_append(headers, line);
    header_failed |= !next;
    headers = next ? next : headers;
  }
  if (request->if_match) {
    snprintf(line, sizeof line, "If-Match: %s", request->if_match);
    next = curl_slist_append(headers, line);
    header_failed |= !next;
    headers = next ? next : headers;
  }
  /* NOTE: temporary credentials are built to the SigV4 rules but have not
   * been sent to a server, because the Ceph RGW of the tests has no STS. */
  if (client->session_token) {
    size_t size = strlen(client->session_token) + 32;
    char *token_line = malloc(size);
    if (token_line) {
      snprintf(token_line, size, "x-amz-security-token: %s",
               client->session_token);
      next = curl_slist_append(headers, token_line);
      free(token_line);
    } else {
      next = NULL;
    }
    header_failed |= !next;
    headers = next ? next : headers;
  }
  if (header_failed) {
    curl_slist_free_all(headers);
    curl_easy_cleanup(handle);
    *status = AP_NO_MEMORY(error);
    return CURLE_OUT_OF_MEMORY;
  }

  curl_easy_setopt(handle, CURLOPT_URL, url);
  curl_easy_setopt(handle, CURLOPT_SHARE, client->share);
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(handle, CURLOPT_AWS_SIGV4, client->sigv4);
  curl_easy_setopt(handle, CURLOPT_USERPWD, client->userpwd);
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS,
                   client->connect_timeout_ms);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, client->timeout_ms);
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, read_header);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &transfer);

  if (strcmp(request->method, "HEAD") == 0) {
    curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
  } else if (strcmp(request->method, "PUT") == 0) {
    curl_easy_setopt(handle, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(handle, CURLOPT_READFUNCTION, read_body);
    curl_easy_setopt(handle, CURLOPT_READDATA, &transfer);
    curl_easy_setopt(handle, CURLOPT_INFILESIZE_LARGE,
                     (curl_off_t)request->body_size);
  } else if (strcmp(request->method, "POST") == 0) {
    curl_easy_setopt(handle, CURLOPT_POST, 1L);
    curl_easy_setopt(handle, CURLOPT_POSTFIELDS,
                     request->body ? request->body : "");
    curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)request->body_size);
  } else if (strcmp(request->method, "GET") != 0) {
    curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request->method);
  }
  char range[64];
  if (request->range_first >= 0) {
    snprintf(range, sizeof range, "%" PRId64 "-%" PRId64, request->range_first,
             request->range_last);
    curl_easy_setopt(handle, CURLOPT_RANGE, range);
  }

  CURLcode code = curl_easy_perform(handle);
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response->status);
  if (transfer.body_too_large) {
    *status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                           "S3 response body exceeds %d bytes or memory ran "
                           "out: request a smaller range",
                           MAX_RESPONSE_BODY);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(handle);
  return code;
}

/* Maps an S3 error response to our code, keeping S3's code and message. */
static ap_status_t map_s3_error(const ap_s3_request_t *request,
                                const ap_s3_response_t *response,
                                ap_error_t *error) {
  char code[64] = "";
  char message[256] = "";
  if (response->body) {
    ap_s3_xml_find(response->body, NULL, "Code", code, sizeof code);
    ap_s3_xml_find(response->body, NULL, "Message", message, sizeof message);
  }
  long http = response->status;
  ap_error_code_t mapped;
  const char *advice;
  if (strcmp(code, "NoSuchKey") == 0 || strcmp(code, "NoSuchUpload") == 0 ||
      strcmp(code, "NoSuchBucket") == 0 || (http == 404 && !*code)) {
    mapped = AP_ERR_NOT_FOUND;
    advice = "check the key, upload id and bucket";
  } else if (strcmp(code, "RequestTimeTooSkewed") == 0) {
    mapped = AP_ERR_PERMISSION;
    advice = "set this machine's clock to UTC within 15 minutes of the server";
  } else if (http == 403 || http == 401) {
    mapped = AP_ERR_PERMISSION;
    advice = "check the access key, secret key, region and bucket policy";
  } else if (strcmp(code, "EntityTooLarge") == 0) {
    mapped = AP_ERR_UPLOAD_TOO_LARGE;
    advice = "send a smaller object";
  } else if (http == 412 || http == 409) {
    mapped = AP_ERR_CONFLICT;
    advice = "the object changed: open it again";
  } else if (http >= 500) {
    mapped = AP_ERR_UNAVAILABLE;
    advice = "the server failed: retry later";
  } else {
    mapped = AP_ERR_INVALID_ARGUMENT;
    advice = "check the request";
  }
  return ap_error_set(error, AP_DOMAIN_STORAGE, mapped,
                      "S3 %s of \"%.200s\" failed with HTTP %ld %s%s%s%s: %s",
                      request->method, request->key ? request->key : "(bucket)",
                      http, *code ? code : "", *message ? " (" : "", message,
                      *message ? ")" : "", advice);
}

ap_status_t ap_s3_client_perform(ap_s3_client_t *client,
                                 const ap_s3_request_t *request,
                                 ap_s3_response_t *response,
                                 ap_error_t *error) {
  memset(response, 0, sizeof *response);
  response->content_length = -1;

  char *url = NULL;
  char *host = NULL;
  char *path = NULL;
  ap_status_t status =
      ap_s3_object_url(client->origin, client->bucket, client->path_style,
                       request->key, &url, &host, &path, error);
  free(host);
  free(path);
  if (status != AP_OK) {
    return status;
  }
  if (request->query_count) {
    char *query = NULL;
    status = ap_s3_canonical_query(request->query, request->query_count, &query,
                                   error);
    char *full = NULL;
    if (status == AP_OK) {
      size_t size = strlen(url) + strlen(query) + 2;
      full = malloc(size);
      if (full) {
        snprintf(full, size, "%s?%s", url, query);
      } else {
        status = AP_NO_MEMORY(error);
      }
    }
    free(query);
    free(url);
    url = full;
    if (status != AP_OK) {
      return status;
    }
  }

  int attempts = request->idempotent ? client->max_attempts : 1;
  for (int attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) {
      sleep_ms((long)RETRY_BASE_MS << (2 * (attempt - 1)));
      ap_s3_response_free(response);
    }
    CURLcode code =
        run_transfer(client, request, url, response, error, &status);
    if (status != AP_OK) {
      break;
    }
    if (code != CURLE_OK) {
      if (is_transient(code) && attempt + 1 < attempts) {
        continue;
      }
      status = ap_error_set(
          error, AP_DOMAIN_STORAGE,
          code == CURLE_OPERATION_TIMEDOUT ? AP_ERR_TIMED_OUT
                                           : AP_ERR_UNAVAILABLE,
          "S3 %s of \"%.200s\" at %s failed after %d attempts: %s",
          request->method, request->key ? request->key : "(bucket)",
          client->origin, attempt + 1, curl_easy_strerror(code));
      break;
    }
    if (response->status >= 200 && response->status < 300) {
      status = AP_OK;
      break;
    }
    if (response->status >= 500 && attempt + 1 < attempts) {
      continue;
    }
    status = map_s3_error(request, response, error);
    break;
  }
  free(url);
  return status;
}
