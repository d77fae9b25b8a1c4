/*
 * ap_upload_create_async: upload creation that returns before its
 * metadata write. A put upload on a store with asynchronous inserts is
 * prepared on the caller's thread and queued for the store's commit
 * thread. Any other creation is validated here too, then issued on the
 * context's pool of threads for blocking calls.
 */
#include <stdlib.h>
#include <string.h>

#include "context/context_internal.h"
#include "core/error_internal.h"
#include "core/task_pool.h"
#include "meta/meta_internal.h"
#include "upload/upload_internal.h"

/* One creation in progress. Owns copies of the caller's strings, since
 * the caller may free its request once ap_upload_create_async returns. */
typedef struct {
  ap_task_t task; /* first, so a task pointer converts back */
  ap_context_t *context;
  ap_upload_request_t request; /* its strings point to the fields below */
  char *owner;
  char *filename;
  char content_type[AP_CONTENT_TYPE_MAX_SIZE]; /* validated, lower case */
  ap_upload_ticket_t *ticket;
  ap_upload_record_t record; /* the pending row, pointing into the above */
  ap_upload_created_t on_created;
  void *user_data;
} creation_t;

static void free_creation(creation_t *creation) {
  ap_upload_ticket_free(creation->ticket);
  free(creation->owner);
  free(creation->filename);
  free(creation);
}

/* Hands the outcome to the caller's callback and frees the creation. The
 * ticket, on success, passes to the callback. */
static void deliver(creation_t *creation, ap_status_t status,
                    const ap_error_t *error) {
  ap_upload_created_t on_created = creation->on_created;
  void *user_data = creation->user_data;
  ap_upload_ticket_t *ticket = NULL;
  if (status == AP_OK) {
    ticket = creation->ticket;
    creation->ticket = NULL;
  }
  free_creation(creation);
  on_created(user_data, ticket, status == AP_OK ? NULL : error);
}

/* The store's commit thread calls this once the row is written. */
static void on_inserted(void *argument, ap_status_t status,
                        const ap_error_t *error) {
  deliver(argument, status, error);
}

/* Runs on a pool thread: the blocking part of the creation, which
 * ap_upload_create_async has already validated. */
static void run_creation(ap_task_t *task) {
  creation_t *creation = (creation_t *)task;
  ap_error_t error;
  ap_error_clear(&error);
  ap_status_t status =
      ap_upload_issue(creation->context, &creation->request,
                      creation->content_type, &creation->ticket, &error);
  deliver(creation, status, &error);
}

/* Copies the request's fields and strings into `creation`, whose
 * content_type is already set. */
static ap_status_t copy_request(creation_t *creation,
                                const ap_upload_request_t *request,
                                ap_error_t *error) {
  creation->owner = strdup(request->owner);
  creation->filename = strdup(request->filename);
  if (!creation->owner || !creation->filename) {
    return AP_NO_MEMORY(error);
  }
  ap_upload_request_init(&creation->request);
  creation->request.owner = creation->owner;
  creation->request.filename = creation->filename;
  creation->request.size_bytes = request->size_bytes;
  creation->request.content_type = creation->content_type;
  creation->request.method = ap_upload_request_method(request);
  return AP_OK;
}

/* Prepares the put ticket here and queues its row for the store's commit
 * thread. */
static ap_status_t queue_insert(creation_t *creation, ap_meta_store_t *meta,
                                ap_error_t *error) {
  creation->ticket = calloc(1, sizeof *creation->ticket);
  if (!creation->ticket) {
    return AP_NO_MEMORY(error);
  }
  ap_status_t status = ap_upload_prepare_put(
      creation->context, &creation->request, creation->content_type,
      creation->ticket, &creation->record, error);
  if (status != AP_OK) {
    return status;
  }
  return meta->backend->upload_insert_async(meta->state, &creation->record,
                                            on_inserted, creation, error);
}

ap_status_t ap_upload_create_async(ap_context_t *context,
                                   const ap_upload_request_t *request,
                                   ap_upload_created_t on_created,
                                   void *user_data, ap_error_t *error) {
  if (!context || !request || !on_created) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_upload_create_async: context, request and "
                        "on_created must not be NULL");
  }
  if (ap_context_is_closing(context)) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_UNAVAILABLE,
                        "ap_upload_create_async: the context is closing and "
                        "takes no new creations");
  }
  /* Validation errors return here, before anything is queued. */
  char content_type[AP_CONTENT_TYPE_MAX_SIZE];
  ap_status_t status = ap_upload_check_create(context, request, content_type,
                                              sizeof content_type, error);
  if (status != AP_OK) {
    return status;
  }

  creation_t *creation = calloc(1, sizeof *creation);
  if (!creation) {
    return AP_NO_MEMORY(error);
  }
  creation->context = context;
  creation->on_created = on_created;
  creation->user_data = user_data;
  memcpy(creation->content_type, content_type, sizeof content_type);
  status = copy_request(creation, request, error);
  if (status != AP_OK) {
    free_creation(creation);
    return status;
  }

  ap_meta_store_t *meta = ap_context_meta_store(context);
  if (creation->request.method == AP_UPLOAD_METHOD_PUT &&
      meta->backend->upload_insert_async) {
    status = queue_insert(creation, meta, error);
  } else {
    creation->task.run = run_creation;
    status = ap_task_pool_submit(ap_context_blocking_calls(context),
                                 &creation->task, error);
  }
  if (status != AP_OK) {
    free_creation(creation);
  }
  return status;
}
