/*
 * POST /v1/uploads (issue a presigned PUT) and
 * POST /v1/uploads/{id}/complete (validate what arrived, create the asset).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <audiopipe/meta.h>
#include <audiopipe/upload.h>

#include "server.h"

/* Upload and backend counters. httpd_upload_metrics_register sets them
 * once before the daemon starts, so they read 0 on /metrics until the
 * first upload; the handler threads only update them afterwards. */
static ap_metric_series_t *uploads_created;
static ap_metric_series_t *uploads_completed;
static ap_metric_t *uploads_rejected; /* by stage and reason (code name) */
static ap_metric_t *backend_errors;   /* by backend */

ap_status_t httpd_upload_metrics_register(ap_error_t *error) {
  ap_metrics_t *registry = ap_metrics_default();
  const char *rejected_labels[] = {"stage", "reason"};
  const char *backend_labels[] = {"backend"};
  ap_metric_t *created = NULL;
  ap_metric_t *completed = NULL;
  ap_status_t status = ap_metrics_counter(
      registry, "audiopipe_uploads_created_total",
      "Upload tickets issued by POST /v1/uploads.", NULL, 0, &created, error);
  if (status == AP_OK) {
    status = ap_metrics_counter(
        registry, "audiopipe_uploads_completed_total",
        "Uploads completed into an asset by POST /v1/uploads/{id}/complete.",
        NULL, 0, &completed, error);
  }
  if (status == AP_OK) {
    status = ap_metrics_counter(
        registry, "audiopipe_uploads_rejected_total",
        "Uploads rejected with a 4xx, by stage (create, complete) and "
        "reason (the error code).",
        rejected_labels, 2, &uploads_rejected, error);
  }
  if (status == AP_OK) {
    status = ap_metrics_counter(
        registry, "audiopipe_backend_errors_total",
        "Requests that failed with a 5xx because of a backend, by backend "
        "(metadata, objects, queue, or the error domain).",
        backend_labels, 1, &backend_errors, error);
  }
  if (status == AP_OK) {
    uploads_created = ap_metrics_series(created, NULL);
    uploads_completed = ap_metrics_series(completed, NULL);
  }
  return status;
}

void httpd_count_backend_error(const ap_error_t *error) {
  const char *backend = ap_error_domain_name((int)error->domain);
  if (error->domain == AP_DOMAIN_META) {
    backend = "metadata";
  } else if (error->domain == AP_DOMAIN_STORAGE) {
    backend = "objects";
  }
  const char *values[] = {backend};
  ap_metrics_add(ap_metrics_series(backend_errors, values), 1);
}

/* Counts a 4xx failure of `stage` as a rejection, then responds. Backend
 * failures (5xx) are counted by httpd_respond_ap_error instead. */
static enum MHD_Result reject(httpd_request_t *request,
                              struct MHD_Connection *connection,
                              const char *stage, const ap_error_t *error) {
  if (httpd_status_for_code((int)error->code) < 500) {
    const char *values[] = {stage, ap_error_code_name((int)error->code)};
    ap_metrics_add(ap_metrics_series(uploads_rejected, values), 1);
  }
  return httpd_respond_ap_error(request, connection, error);
}

/* Creates the upload the request's body describes and stores the
 * ticket's JSON in `*json`, or fails with the error to send. */
static ap_status_t create_upload(httpd_request_t *request, char **json,
                                 ap_error_t *error) {
  httpd_upload_body_t body;
  ap_status_t status = httpd_upload_body_parse(
      request->body ? request->body : "", request->body_length, &body, error);
  if (status != AP_OK) {
    return status;
  }

  ap_upload_request_t upload;
  ap_upload_request_init(&upload);
  upload.owner = request->owner;
  upload.filename = body.filename;
  upload.size_bytes = body.size_bytes;
  upload.content_type = body.content_type;
  if (body.method[0]) {
    status = ap_upload_method_parse(body.method, &upload.method, error);
    if (status != AP_OK) {
      return status;
    }
  }

  ap_upload_ticket_t *ticket = NULL;
  status = ap_upload_create(request->server->context, &upload, &ticket, error);
  if (status != AP_OK) {
    return status;
  }
  status = ap_upload_ticket_to_json(ticket, json, error);
  ap_upload_ticket_free(ticket);
  return status;
}

/* Sends the outcome of create_upload; takes ownership of `json`. */
static enum MHD_Result send_created(httpd_request_t *request,
                                    struct MHD_Connection *connection,
                                    char *json, const ap_error_t *error) {
  if (!json) {
    return reject(request, connection, "create", error);
  }
  ap_metrics_add(uploads_created, 1);
  enum MHD_Result result =
      httpd_respond_json(request, connection, MHD_HTTP_CREATED, json);
  ap_free(json);
  return result;
}

/*
 * Upload creation blocks until its row is committed, and the group
 * commit (libaudiopipe/meta/sqlite_group.c) shares one commit among the
 * creations that wait at the same time. Run on the few libmicrohttpd
 * threads, a creation would stall every other connection of its thread
 * and no more than one creation per thread could share a commit. So the
 * handler suspends the connection and queues the request to these
 * threads, which only wait, and the connection resumes with the outcome.
 * CREATION_THREADS bounds the creations that can share one commit; it
 * matches the group commit's batch limit of 64.
 */
#define CREATION_THREADS 64

static struct {
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  httpd_request_t *head; /* under mutex */
  httpd_request_t *tail; /* under mutex */
  int accepting;         /* under mutex: 0 before start and once stopping */
  pthread_t threads[CREATION_THREADS];
  int started; /* threads running; written only by start and stop */
} creations = {.mutex = PTHREAD_MUTEX_INITIALIZER,
               .wake = PTHREAD_COND_INITIALIZER};

static void *run_creations(void *argument) {
  (void)argument;
  pthread_mutex_lock(&creations.mutex);
  for (;;) {
    while (!creations.head && creations.accepting) {
      pthread_cond_wait(&creations.wake, &creations.mutex);
    }
    httpd_request_t *request = creations.head;
    if (!request) {
      break; /* stopping, and the queue is empty */
    }
    creations.head = request->deferred_next;
    if (!creations.head) {
      creations.tail = NULL;
    }
    pthread_mutex_unlock(&creations.mutex);

    ap_error_t error;
    ap_error_clear(&error);
    char *json = NULL;
    if (create_upload(request, &json, &error) != AP_OK) {
      ap_free(json);
      json = NULL;
      request->deferred_error = malloc(sizeof error);
      if (request->deferred_error) {
        *request->deferred_error = error;
      }
    }
    request->deferred_json = json;
    /* The connection may be completed and the request freed as soon as
     * it resumes, so this is the last access to it. */
    MHD_resume_connection(request->connection);

    pthread_mutex_lock(&creations.mutex);
  }
  pthread_mutex_unlock(&creations.mutex);
  return NULL;
}

/* Queues `request` and suspends its connection. Returns 0, with nothing
 * done, when the threads are not running. */
static int defer_creation(httpd_request_t *request,
                          struct MHD_Connection *connection) {
  pthread_mutex_lock(&creations.mutex);
  if (!creations.accepting) {
    pthread_mutex_unlock(&creations.mutex);
    return 0;
  }
  request->deferred = 1;
  request->connection = connection;
  request->deferred_next = NULL;
  /* Suspended before a thread can see the request, so its resume never
   * comes first. */
  MHD_suspend_connection(connection);
  if (creations.tail) {
    creations.tail->deferred_next = request;
  } else {
    creations.head = request;
  }
  creations.tail = request;
  pthread_cond_signal(&creations.wake);
  pthread_mutex_unlock(&creations.mutex);
  return 1;
}

ap_status_t httpd_upload_threads_start(httpd_server_t *server,
                                       ap_error_t *error) {
  (void)server;
  pthread_mutex_lock(&creations.mutex);
  creations.accepting = 1;
  pthread_mutex_unlock(&creations.mutex);
  for (int i = 0; i < CREATION_THREADS; i++) {
    if (pthread_create(&creations.threads[i], NULL, run_creations, NULL) != 0) {
      httpd_upload_threads_stop();
      return httpd_error_set(error, AP_ERR_UNAVAILABLE,
                             "cannot start upload creation thread %d of %d",
                             i + 1, CREATION_THREADS);
    }
    creations.started = i + 1;
  }
  return AP_OK;
}

void httpd_upload_threads_stop(void) {
  pthread_mutex_lock(&creations.mutex);
  creations.accepting = 0;
  pthread_cond_broadcast(&creations.wake);
  pthread_mutex_unlock(&creations.mutex);
  for (int i = 0; i < creations.started; i++) {
    pthread_join(creations.threads[i], NULL);
  }
  creations.started = 0;
}

enum MHD_Result httpd_handle_upload_create(httpd_request_t *request,
                                           struct MHD_Connection *connection) {
  if (request->deferred) {
    /* Resumed: a creation thread stored the outcome. */
    char *json = request->deferred_json;
    ap_error_t *failure = request->deferred_error;
    request->deferred_json = NULL;
    request->deferred_error = NULL;
    ap_error_t error;
    ap_error_clear(&error);
    if (failure) {
      error = *failure;
      free(failure);
    } else if (!json) {
      httpd_error_set(&error, AP_ERR_NO_MEMORY,
                      "out of memory storing the upload ticket");
    }
    return send_created(request, connection, json, &error);
  }
  if (defer_creation(request, connection)) {
    return MHD_YES;
  }

  ap_error_t error;
  ap_error_clear(&error);
  char *json = NULL;
  if (create_upload(request, &json, &error) != AP_OK) {
    ap_free(json);
    json = NULL;
  }
  return send_created(request, connection, json, &error);
}

enum MHD_Result
httpd_handle_upload_complete(httpd_request_t *request,
                             struct MHD_Connection *connection) {
  ap_error_t error = {0};
  const char *text = request->body ? request->body : "";
  ap_upload_part_t *parts = NULL;
  size_t part_count = 0;
  if (httpd_complete_parts_parse(text, request->body_length, &parts,
                                 &part_count, &error) != AP_OK ||
      (!parts && httpd_complete_body_parse(text, request->body_length,
                                           &error) != AP_OK)) {
    return reject(request, connection, "complete", &error);
  }
  if (!ap_id_is_valid(request->match.id)) {
    free(parts);
    return httpd_respond_error(request, connection, 0, AP_ERR_NOT_FOUND,
                               "upload not found");
  }

  /* A multipart upload is completed with its part list. */
  ap_asset_t *asset = NULL;
  ap_status_t completed =
      parts ? ap_upload_multipart_complete(request->server->context,
                                           request->owner, request->match.id,
                                           parts, part_count, &asset, &error)
            : ap_upload_complete(request->server->context, request->owner,
                                 request->match.id, &asset, &error);
  free(parts);
  if (completed != AP_OK) {
    return reject(request, connection, "complete", &error);
  }
  char *json = NULL;
  ap_status_t status = ap_asset_to_json(asset, &json, &error);
  ap_asset_free(asset);
  if (status != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  ap_metrics_add(uploads_completed, 1);
  enum MHD_Result result =
      httpd_respond_json(request, connection, MHD_HTTP_OK, json);
  ap_free(json);
  return result;
}
