/*
 * The server-sent events hub: streams, their buffers, the polling thread
 * and the handler of GET /v1/jobs/{id}/events.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include <audiopipe/job.h>
#include <audiopipe/log.h>
#include <audiopipe/meta.h>
#include <audiopipe/redis.h>

#include "sse.h"

/* Client reconnection delay announced in the stream's first line. */
#define RETRY_MS 3000

/* Largest backlog one stream may buffer; a client that stops reading
 * longer than that is cut off rather than growing memory. */
#define STREAM_BUFFER_MAX (256 * 1024)

struct httpd_sse_stream {
  pthread_mutex_t lock;
  int references; /* hub list, response, request */
  httpd_sse_hub_t *hub;
  struct MHD_Connection *connection;
  char owner[AP_OWNER_MAX_BYTES + 1];
  char job_id[AP_ID_SIZE];
  char request_id[65];

  char *buffer;
  size_t length; /* bytes buffered */
  size_t offset; /* bytes of the buffer already handed out */
  size_t capacity;
  int suspended; /* the reader suspended the connection */
  int finished;  /* no events after the buffered ones */
  int closed;    /* libmicrohttpd released the response */

  int64_t sequence; /* id of the last event */
  int have_last;
  ap_job_event_t last;
  int64_t next_poll_ms;
  int64_t next_heartbeat_ms;
  _Atomic uint64_t bytes;

  httpd_sse_stream_t *next; /* hub list, guarded by the hub lock */
};

/* Most job ids of Redis events remembered between two rounds of the
 * hub; past it every stream is polled. */
#define CHANGED_MAX 256

struct httpd_sse_hub {
  httpd_server_t *server;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  httpd_sse_stream_t *streams;
  size_t count;
  int finishing;
  int stopping;
  pthread_t thread;
  /* With Redis: jobs with an event since the last round, polled at once
   * instead of at their next poll time. Under lock. */
  ap_redis_job_listener_t *listener;
  char changed[CHANGED_MAX][AP_ID_SIZE];
  size_t changed_count;
  int all_changed;
  char round_changed[CHANGED_MAX][AP_ID_SIZE]; /* hub thread only */
};

static void stream_release(httpd_sse_stream_t *stream) {
  pthread_mutex_lock(&stream->lock);
  int remaining = --stream->references;
  pthread_mutex_unlock(&stream->lock);
  if (remaining == 0) {
    pthread_mutex_destroy(&stream->lock);
    free(stream->buffer);
    free(stream);
  }
}

void httpd_sse_stream_release(httpd_sse_stream_t *stream) {
  stream_release(stream);
}

uint64_t httpd_sse_stream_bytes(httpd_sse_stream_t *stream) {
  return atomic_load(&stream->bytes);
}

size_t httpd_sse_format_event(char *out, size_t size, int64_t sequence,
                              const char *event, const char *data) {
  int written = snprintf(out, size, "id: %" PRId64 "\nevent: %s\ndata: %s\n\n",
                         sequence, event, data);
  if (written < 0 || (size_t)written >= size) {
    return 0;
  }
  return (size_t)written;
}

/* Appends text to the stream buffer; the caller holds the stream lock.
 * Returns -1 when the backlog limit is reached. */
static int stream_append(httpd_sse_stream_t *stream, const char *text,
                         size_t length) {
  if (stream->offset > 0 && stream->offset == stream->length) {
    stream->offset = 0;
    stream->length = 0;
  }
  if (stream->length + length > STREAM_BUFFER_MAX) {
    return -1;
  }
  if (stream->length + length > stream->capacity) {
    size_t capacity = stream->capacity ? stream->capacity : 1024;
    while (capacity < stream->length + length) {
      capacity *= 2;
    }
    char *grown = realloc(stream->buffer, capacity);
    if (!grown) {
      return -1;
    }
    stream->buffer = grown;
    stream->capacity = capacity;
  }
  memcpy(stream->buffer + stream->length, text, length);
  stream->length += length;
  return 0;
}

/* Formats the event for a job snapshot's state into `out`. */
static size_t format_job_event(httpd_sse_stream_t *stream,
                               const ap_job_event_t *event, char *out,
                               size_t size) {
  json_object *data = json_object_new_object();
  if (!data) {
    return 0;
  }
  json_object_object_add(data, "job_id",
                         json_object_new_string(stream->job_id));
  json_object_object_add(
      data, "state", json_object_new_string(ap_job_state_name(event->state)));
  json_object_object_add(data, "progress",
                         json_object_new_double(event->fraction));
  json_object_object_add(data, "stage", json_object_new_string(event->stage));
  json_object_object_add(data, "attempts",
                         json_object_new_int(event->attempts));
  json_object_object_add(
      data, "error_code",
      event->error_code
          ? json_object_new_string(ap_error_code_name(event->error_code))
          : NULL);
  json_object_object_add(data, "updated_at",
                         json_object_new_int64(event->updated_at_ms));

  const char *name =
      ap_job_state_is_terminal(event->state) ? "end" : "progress";
  stream->sequence++;
  size_t length = httpd_sse_format_event(
      out, size, stream->sequence, name,
      json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(data);
  return length;
}

static void event_from_job(const ap_job_t *job, ap_job_event_t *event) {
  memset(event, 0, sizeof *event);
  event->struct_size = sizeof *event;
  event->state = ap_job_state(job);
  event->fraction = ap_job_progress_fraction(job);
  const char *stage = ap_job_stage(job);
  snprintf(event->stage, sizeof event->stage, "%s", stage ? stage : "");
  event->attempts = ap_job_attempts(job);
  event->error_code = ap_job_error_code(job);
  event->updated_at_ms = ap_job_updated_at_ms(job);
}

static int event_changed(const ap_job_event_t *a, const ap_job_event_t *b) {
  return a->state != b->state || a->fraction != b->fraction ||
         strcmp(a->stage, b->stage) != 0 || a->attempts != b->attempts ||
         a->error_code != b->error_code;
}

/* Queues an event for `event` when it differs from the last one sent;
 * the caller holds the stream lock. */
static void stream_offer_event(httpd_sse_stream_t *stream,
                               const ap_job_event_t *event, int64_t now_ms) {
  if (stream->finished ||
      (stream->have_last && !event_changed(&stream->last, event))) {
    return;
  }
  char text[2048];
  size_t length = format_job_event(stream, event, text, sizeof text);
  if (length == 0 || stream_append(stream, text, length) != 0) {
    stream->finished = 1;
    return;
  }
  stream->last = *event;
  stream->have_last = 1;
  stream->next_heartbeat_ms =
      now_ms + stream->hub->server->settings.heartbeat_ms;
  if (ap_job_state_is_terminal(event->state)) {
    stream->finished = 1;
  }
}

/* Wakes a suspended connection that has something to send. The caller
 * holds the stream lock. */
static void stream_wake(httpd_sse_stream_t *stream) {
  if (stream->suspended && !stream->closed &&
      (stream->offset < stream->length || stream->finished)) {
    stream->suspended = 0;
    MHD_resume_connection(stream->connection);
  }
}

static ssize_t stream_read(void *cls, uint64_t position, char *buffer,
                           size_t max) {
  (void)position;
  httpd_sse_stream_t *stream = cls;
  pthread_mutex_lock(&stream->lock);
  if (stream->offset < stream->length) {
    size_t size = stream->length - stream->offset;
    if (size > max) {
      size = max;
    }
    memcpy(buffer, stream->buffer + stream->offset, size);
    stream->offset += size;
    pthread_mutex_unlock(&stream->lock);
    atomic_fetch_add(&stream->bytes, size);
    return (ssize_t)size;
  }
  if (stream->finished) {
    pthread_mutex_unlock(&stream->lock);
    return MHD_CONTENT_READER_END_OF_STREAM;
  }
  /* Nothing to send: park the connection until the hub resumes it. */
  stream->suspended = 1;
  MHD_suspend_connection(stream->connection);
  pthread_mutex_unlock(&stream->lock);
  return 0;
}

static void stream_response_freed(void *cls) {
  httpd_sse_stream_t *stream = cls;
  pthread_mutex_lock(&stream->lock);
  stream->closed = 1;
  pthread_mutex_unlock(&stream->lock);
  httpd_sse_hub_t *hub = stream->hub;
  pthread_mutex_lock(&hub->lock);
  pthread_cond_signal(&hub->wake);
  pthread_mutex_unlock(&hub->lock);
  stream_release(stream);
}

/* Polls one stream's job and queues what changed, then wakes it.
 * `changed` makes it poll now, after a Redis event for its job. */
static void stream_service(httpd_sse_stream_t *stream, int64_t now_ms,
                           int finishing, int changed) {
  httpd_server_t *server = stream->hub->server;
  ap_job_event_t event;
  int have_event = 0;
  int gone = 0;

  pthread_mutex_lock(&stream->lock);
  int due = !stream->finished && !stream->closed &&
            (changed || now_ms >= stream->next_poll_ms);
  pthread_mutex_unlock(&stream->lock);

  if (due && !finishing) {
    /* The job is read without the stream lock, so a slow store never
     * blocks the connection's reader. */
    ap_job_t *job = NULL;
    ap_error_t error = {0};
    ap_status_t status = ap_job_get(server->context, stream->owner,
                                    stream->job_id, &job, &error);
    if (status == AP_OK) {
      event_from_job(job, &event);
      have_event = 1;
      ap_job_free(job);
    } else if (status == AP_ERR_NOT_FOUND) {
      gone = 1;
    } else {
      ap_log_field_t fields[] = {
          AP_LOG_STRING("code", ap_error_code_name(status))};
      ap_log_write(AP_LOG_WARN, "sse_poll_failed", stream->request_id,
                   stream->job_id, fields, 1, "%s", error.message);
    }
  }

  pthread_mutex_lock(&stream->lock);
  if (due) {
    stream->next_poll_ms = now_ms + server->settings.sse_poll_ms;
  }
  if (have_event) {
    stream_offer_event(stream, &event, now_ms);
  }
  if (gone && !stream->finished) {
    char text[256];
    stream->sequence++;
    size_t length = httpd_sse_format_event(
        text, sizeof text, stream->sequence, "end",
        "{\"state\":\"deleted\",\"error_code\":\"not_found\"}");
    if (length > 0) {
      stream_append(stream, text, length);
    }
    stream->finished = 1;
  }
  if (finishing) {
    stream->finished = 1;
  }
  if (!stream->finished && now_ms >= stream->next_heartbeat_ms) {
    static const char heartbeat[] = ": heartbeat\n\n";
    if (stream_append(stream, heartbeat, sizeof heartbeat - 1) != 0) {
      stream->finished = 1;
    }
    stream->next_heartbeat_ms = now_ms + server->settings.heartbeat_ms;
  }
  stream_wake(stream);
  pthread_mutex_unlock(&stream->lock);
}

/* Records a job's Redis event and wakes the hub thread; runs on the
 * library's subscriber thread. */
static void on_job_changed(void *user_data, const char *job_id) {
  httpd_sse_hub_t *hub = user_data;
  pthread_mutex_lock(&hub->lock);
  if (!job_id || hub->changed_count == CHANGED_MAX) {
    hub->all_changed = 1;
  } else {
    snprintf(hub->changed[hub->changed_count++], AP_ID_SIZE, "%s", job_id);
  }
  pthread_cond_signal(&hub->wake);
  pthread_mutex_unlock(&hub->lock);
}

static int job_changed(char (*changed)[AP_ID_SIZE], size_t count,
                       int all_changed, const char *job_id) {
  for (size_t i = 0; i < count && !all_changed; i++) {
    if (strcmp(changed[i], job_id) == 0) {
      return 1;
    }
  }
  return all_changed;
}

static void *hub_main(void *argument) {
  httpd_sse_hub_t *hub = argument;
  httpd_server_t *server = hub->server;
  httpd_sse_stream_t **batch = NULL;
  size_t batch_capacity = 0;

  pthread_mutex_lock(&hub->lock);
  while (!hub->stopping) {
    /* Take a reference to each stream, then serve them unlocked, so
     * polling the store never blocks new streams from joining. */
    if (hub->count > batch_capacity) {
      size_t capacity = hub->count * 2;
      httpd_sse_stream_t **grown = realloc(batch, capacity * sizeof *batch);
      if (grown) {
        batch = grown;
        batch_capacity = capacity;
      }
    }
    size_t batch_count = 0;
    for (httpd_sse_stream_t *stream = hub->streams;
         stream && batch_count < batch_capacity; stream = stream->next) {
      pthread_mutex_lock(&stream->lock);
      stream->references++;
      pthread_mutex_unlock(&stream->lock);
      batch[batch_count++] = stream;
    }
    int finishing = hub->finishing;
    size_t changed_count = hub->changed_count;
    int all_changed = hub->all_changed;
    memcpy(hub->round_changed, hub->changed,
           changed_count * sizeof hub->changed[0]);
    hub->changed_count = 0;
    hub->all_changed = 0;
    pthread_mutex_unlock(&hub->lock);

    int64_t now_ms = httpd_monotonic_ms();
    for (size_t i = 0; i < batch_count; i++) {
      stream_service(batch[i], now_ms, finishing,
                     job_changed(hub->round_changed, changed_count, all_changed,
                                 batch[i]->job_id));
    }

    pthread_mutex_lock(&hub->lock);
    httpd_sse_stream_t **link = &hub->streams;
    while (*link) {
      httpd_sse_stream_t *stream = *link;
      pthread_mutex_lock(&stream->lock);
      int closed = stream->closed;
      pthread_mutex_unlock(&stream->lock);
      if (closed) {
        *link = stream->next;
        hub->count--;
        ap_metrics_add(server->sse_streams_gauge, -1);
        stream_release(stream);
      } else {
        link = &stream->next;
      }
    }
    pthread_mutex_unlock(&hub->lock);
    for (size_t i = 0; i < batch_count; i++) {
      stream_release(batch[i]);
    }

    pthread_mutex_lock(&hub->lock);
    if (!hub->stopping && hub->changed_count == 0 && !hub->all_changed) {
      struct timespec deadline;
      clock_gettime(CLOCK_REALTIME, &deadline);
      int64_t wait_ms = server->settings.sse_poll_ms;
      if (wait_ms > 100) {
        wait_ms = 100;
      }
      deadline.tv_nsec += (long)(wait_ms * 1000000);
      deadline.tv_sec += deadline.tv_nsec / 1000000000;
      deadline.tv_nsec %= 1000000000;
      pthread_cond_timedwait(&hub->wake, &hub->lock, &deadline);
    }
  }
  pthread_mutex_unlock(&hub->lock);
  free(batch);
  return NULL;
}

ap_status_t httpd_sse_hub_start(httpd_server_t *server, httpd_sse_hub_t **out,
                                ap_error_t *error) {
  httpd_sse_hub_t *hub = calloc(1, sizeof *hub);
  if (!hub) {
    return httpd_error_set(error, AP_ERR_NO_MEMORY, "out of memory");
  }
  hub->server = server;
  pthread_mutex_init(&hub->lock, NULL);
  pthread_cond_init(&hub->wake, NULL);
  /* Without Redis (or when this fails) streams poll their job only. */
  if (ap_redis_enabled(server->context)) {
    ap_redis_job_listener_open(server->context, on_job_changed, hub,
                               &hub->listener, NULL);
  }
  if (pthread_create(&hub->thread, NULL, hub_main, hub) != 0) {
    ap_redis_job_listener_close(hub->listener);
    pthread_cond_destroy(&hub->wake);
    pthread_mutex_destroy(&hub->lock);
    free(hub);
    return httpd_error_set(error, AP_ERR_INTERNAL,
                           "cannot start the event stream thread");
  }
  *out = hub;
  return AP_OK;
}

void httpd_sse_hub_finish_all(httpd_sse_hub_t *hub) {
  if (!hub) {
    return;
  }
  pthread_mutex_lock(&hub->lock);
  hub->finishing = 1;
  pthread_cond_signal(&hub->wake);
  pthread_mutex_unlock(&hub->lock);
}

void httpd_sse_hub_stop(httpd_sse_hub_t *hub) {
  if (!hub) {
    return;
  }
  /* Before taking the hub lock, which on_job_changed takes under the
   * library's lock. */
  ap_redis_job_listener_close(hub->listener);
  pthread_mutex_lock(&hub->lock);
  hub->stopping = 1;
  pthread_cond_signal(&hub->wake);
  pthread_mutex_unlock(&hub->lock);
  pthread_join(hub->thread, NULL);

  httpd_sse_stream_t *stream = hub->streams;
  while (stream) {
    httpd_sse_stream_t *next = stream->next;
    stream_release(stream);
    stream = next;
  }
  pthread_cond_destroy(&hub->wake);
  pthread_mutex_destroy(&hub->lock);
  free(hub);
}

enum MHD_Result httpd_handle_job_events(httpd_request_t *request,
                                        struct MHD_Connection *connection) {
  httpd_server_t *server = request->server;
  httpd_sse_hub_t *hub = server->sse;
  const char *job_id = request->match.id;
  if (!ap_id_is_valid(job_id)) {
    return httpd_respond_error(request, connection, 0, AP_ERR_NOT_FOUND,
                               "job not found");
  }

  ap_job_t *job = NULL;
  ap_error_t error = {0};
  if (ap_job_get(server->context, request->owner, job_id, &job, &error) !=
      AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  ap_job_event_t event;
  event_from_job(job, &event);
  ap_job_free(job);

  int64_t last_sequence = 0;
  const char *last_event_id = httpd_header(connection, "Last-Event-ID");
  if (last_event_id &&
      httpd_last_event_id_parse(last_event_id, &last_sequence) != 0) {
    return httpd_respond_error(request, connection, 0, AP_ERR_INVALID_ARGUMENT,
                               "Last-Event-ID: must be a decimal event id "
                               "from this stream");
  }

  pthread_mutex_lock(&hub->lock);
  int refused = hub->finishing || atomic_load(&server->draining) ||
                hub->count >= server->settings.sse_max_streams;
  pthread_mutex_unlock(&hub->lock);
  if (refused) {
    return httpd_respond_error(request, connection,
                               MHD_HTTP_SERVICE_UNAVAILABLE, AP_ERR_UNAVAILABLE,
                               "too many event streams open, or the server "
                               "is shutting down: retry later");
  }

  httpd_sse_stream_t *stream = calloc(1, sizeof *stream);
  if (!stream) {
    return httpd_respond_error(request, connection, 0, AP_ERR_NO_MEMORY,
                               "out of memory");
  }
  pthread_mutex_init(&stream->lock, NULL);
  stream->references = 3;
  stream->hub = hub;
  stream->connection = connection;
  snprintf(stream->owner, sizeof stream->owner, "%s", request->owner);
  /* ap_id_is_valid checked that the id is AP_ID_LENGTH characters. */
  memcpy(stream->job_id, job_id, AP_ID_SIZE);
  snprintf(stream->request_id, sizeof stream->request_id, "%s",
           request->request_id);
  /* After a reconnect the ids continue from the client's last one, and
   * the first event is the job's current state. */
  stream->sequence = last_sequence;
  int64_t now_ms = httpd_monotonic_ms();
  stream->next_poll_ms = now_ms + server->settings.sse_poll_ms;

  char retry[32];
  int retry_length = snprintf(retry, sizeof retry, "retry: %d\n\n", RETRY_MS);
  stream_append(stream, retry, (size_t)retry_length);
  stream_offer_event(stream, &event, now_ms);

  struct MHD_Response *response = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 4096, stream_read, stream, stream_response_freed);
  if (!response) {
    pthread_mutex_destroy(&stream->lock);
    free(stream->buffer);
    free(stream);
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/event-stream");
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  MHD_add_response_header(response, "X-Accel-Buffering", "no");

  request->stream = stream;
  pthread_mutex_lock(&hub->lock);
  stream->next = hub->streams;
  hub->streams = stream;
  hub->count++;
  pthread_mutex_unlock(&hub->lock);
  ap_metrics_add(server->sse_streams_gauge, 1);
  return httpd_queue(request, connection, MHD_HTTP_OK, response);
}
