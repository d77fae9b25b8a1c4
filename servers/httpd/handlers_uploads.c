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

/* Parses the request's body into `upload`, whose strings point into
 * `body`, or fails with the error to send. */
static ap_status_t read_upload_request(httpd_request_t *request,
                                       httpd_upload_body_t *body,
                                       ap_upload_request_t *upload,
                                       ap_error_t *error) {
  ap_status_t status = httpd_upload_body_parse(
      request->body ? request->body : "", request->body_length, body, error);
  if (status != AP_OK) {
    return status;
  }
  ap_upload_request_init(upload);
  upload->owner = request->owner;
  upload->filename = body->filename;
  upload->size_bytes = body->size_bytes;
  upload->content_type = body->content_type;
  if (body->method[0]) {
    status = ap_upload_method_parse(body->method, &upload->method, error);
  }
  return status;
}

/* Sends the outcome of a creation: the ticket as JSON with 201, or the
 * error. Takes ownership of `ticket`. */
static enum MHD_Result send_created(httpd_request_t *request,
                                    struct MHD_Connection *connection,
                                    ap_upload_ticket_t *ticket,
                                    const ap_error_t *failure) {
  if (!ticket) {
    return reject(request, connection, "create", failure);
  }
  char *json = NULL;
  ap_error_t error;
  ap_error_clear(&error);
  ap_status_t status = ap_upload_ticket_to_json(ticket, &json, &error);
  ap_upload_ticket_free(ticket);
  if (status != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  ap_metrics_add(uploads_created, 1);
  enum MHD_Result result =
      httpd_respond_json(request, connection, MHD_HTTP_CREATED, json);
  ap_free(json);
  return result;
}

/*
 * Creations in progress. A creation resumes its suspended connection from
 * a library thread when it ends, which must happen before the daemon
 * stops, so httpd_upload_creations_stop waits for the count to drop to 0.
 */
static struct {
  pthread_mutex_t mutex;
  pthread_cond_t idle; /* signalled when running drops to 0 */
  int running;         /* under mutex */
  int accepting;       /* under mutex: 0 before start and once stopping */
} creations = {.mutex = PTHREAD_MUTEX_INITIALIZER,
               .idle = PTHREAD_COND_INITIALIZER};

void httpd_upload_creations_start(void) {
  pthread_mutex_lock(&creations.mutex);
  creations.accepting = 1;
  pthread_mutex_unlock(&creations.mutex);
}

void httpd_upload_creations_stop(void) {
  pthread_mutex_lock(&creations.mutex);
  creations.accepting = 0;
  while (creations.running > 0) {
    pthread_cond_wait(&creations.idle, &creations.mutex);
  }
  pthread_mutex_unlock(&creations.mutex);
}

/* Counts a creation in; returns 0 when creations are stopping. */
static int creation_begin(void) {
  pthread_mutex_lock(&creations.mutex);
  int accepted = creations.accepting;
  if (accepted) {
    creations.running++;
  }
  pthread_mutex_unlock(&creations.mutex);
  return accepted;
}

static void creation_end(void) {
  pthread_mutex_lock(&creations.mutex);
  if (--creations.running == 0) {
    pthread_cond_broadcast(&creations.idle);
  }
  pthread_mutex_unlock(&creations.mutex);
}

/* Stores a creation's outcome in `request` and resumes its connection,
 * whose handler then sends it. */
static void resume_with(httpd_request_t *request, ap_upload_ticket_t *ticket,
                        const ap_error_t *error) {
  request->deferred_ticket = ticket;
  if (!ticket) {
    request->deferred_error = malloc(sizeof *request->deferred_error);
    if (request->deferred_error) {
      *request->deferred_error = *error;
    }
  }
  /* The connection may be completed and the request freed as soon as
   * it resumes, so this is the last access to it. */
  MHD_resume_connection(request->connection);
}

/* ap_upload_create_async's callback, on a library thread. The ticket is
 * converted to JSON later, on the handler's thread, so the store's commit
 * thread moves on to the next creation at once. */
static void on_created(void *user_data, ap_upload_ticket_t *ticket,
                       const ap_error_t *error) {
  resume_with(user_data, ticket, error);
  creation_end();
}

enum MHD_Result httpd_handle_upload_create(httpd_request_t *request,
                                           struct MHD_Connection *connection) {
  if (request->deferred) {
    /* Resumed: the creation stored its outcome. */
    ap_upload_ticket_t *ticket = request->deferred_ticket;
    ap_error_t *failure = request->deferred_error;
    request->deferred_ticket = NULL;
    request->deferred_error = NULL;
    ap_error_t error;
    ap_error_clear(&error);
    if (failure) {
      error = *failure;
      free(failure);
    } else if (!ticket) {
      httpd_error_set(&error, AP_ERR_NO_MEMORY,
                      "out of memory storing the upload creation's error");
    }
    return send_created(request, connection, ticket, &error);
  }

  ap_error_t error;
  ap_error_clear(&error);
  httpd_upload_body_t body;
  ap_upload_request_t upload;
  if (read_upload_request(request, &body, &upload, &error) != AP_OK) {
    return send_created(request, connection, NULL, &error);
  }

  if (!creation_begin()) {
    /* Stopping: the daemon may stop before a library thread could resume
     * this connection, so the creation runs here. */
    ap_upload_ticket_t *ticket = NULL;
    ap_upload_create(request->server->context, &upload, &ticket, &error);
    return send_created(request, connection, ticket, &error);
  }

  /* Suspended before the creation starts, because its callback may run
   * on another thread before ap_upload_create_async returns to us. */
  request->deferred = 1;
  request->connection = connection;
  MHD_suspend_connection(connection);
  if (ap_upload_create_async(request->server->context, &upload, on_created,
                             request, &error) != AP_OK) {
    /* The callback will not run, so send the error through the same
     * resume path. */
    resume_with(request, NULL, &error);
    creation_end();
  }
  return MHD_YES;
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
