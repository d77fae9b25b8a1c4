/*
 * Helpers shared by the MongoDB backend's files: turning driver errors
 * into ap_error_t, and reading fields of BSON documents.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_internal.h"
#include "meta/mongo_internal.h"

/* The hosts of the store whose client this thread popped last, for the
 * messages of unavailable errors (ap_mongo_error has no store argument). */
static _Thread_local char current_hosts[256];

void ap_mongo_note_hosts(const char *hosts) {
  snprintf(current_hosts, sizeof current_hosts, "%s", hosts ? hosts : "");
}

/* Server error codes that mean the request can succeed later against
 * another or a recovered member: shutdown, step-down, no primary, network
 * failures, and a write concern that was not satisfied in time. */
static int is_transient_server_code(uint32_t code) {
  switch (code) {
  case 6:     /* HostUnreachable */
  case 7:     /* HostNotFound */
  case 64:    /* WriteConcernFailed */
  case 89:    /* NetworkTimeout */
  case 91:    /* ShutdownInProgress */
  case 189:   /* PrimarySteppedDown */
  case 262:   /* ExceededTimeLimit */
  case 9001:  /* SocketException */
  case 10107: /* NotWritablePrimary */
  case 11600: /* InterruptedAtShutdown */
  case 11602: /* InterruptedDueToReplStateChange */
  case 13435: /* NotPrimaryNoSecondaryOk */
  case 13436: /* NotPrimaryOrSecondary */
    return 1;
  default:
    return 0;
  }
}

static int is_duplicate_key_code(uint32_t code) {
  return code == 11000 || code == 11001 || code == 12582;
}

static int is_permission_code(uint32_t code) {
  return code == 13 /* Unauthorized */ || code == 18 /* AuthenticationFailed */;
}

ap_status_t ap_mongo_error(const bson_error_t *driver_error, const char *what,
                           ap_error_t *error) {
  uint32_t domain = driver_error->domain;
  uint32_t code = driver_error->code;
  const char *message = driver_error->message;

  int unavailable = domain == MONGOC_ERROR_SERVER_SELECTION ||
                    domain == MONGOC_ERROR_STREAM ||
                    ((domain == MONGOC_ERROR_SERVER ||
                      domain == MONGOC_ERROR_WRITE_CONCERN) &&
                     is_transient_server_code(code));
  if (unavailable) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNAVAILABLE,
                        "%s: MongoDB at %s is unavailable: %s; retry later, "
                        "and check that the server runs and that "
                        "metadata.uri names it",
                        what, current_hosts[0] ? current_hosts : "?", message);
  }
  if ((domain == MONGOC_ERROR_SERVER || domain == MONGOC_ERROR_COLLECTION ||
       domain == MONGOC_ERROR_WRITE_CONCERN) &&
      is_duplicate_key_code(code)) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_CONFLICT,
                        "%s: duplicate key: %s", what, message);
  }
  if ((domain == MONGOC_ERROR_CLIENT &&
       code == MONGOC_ERROR_CLIENT_AUTHENTICATE) ||
      (domain == MONGOC_ERROR_SERVER && is_permission_code(code))) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_PERMISSION,
                        "%s: MongoDB rejected the credentials or the "
                        "request: %s; check the user, password and "
                        "authSource of metadata.uri",
                        what, message);
  }
  return ap_error_set(error, AP_DOMAIN_META, AP_ERR_IO, "%s failed: %s", what,
                      message);
}

int ap_mongo_get_string(const bson_t *document, const char *key, char **out) {
  *out = NULL;
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, document, key) ||
      !BSON_ITER_HOLDS_UTF8(&iter)) {
    return 0;
  }
  uint32_t length = 0;
  const char *text = bson_iter_utf8(&iter, &length);
  char *copy = malloc((size_t)length + 1);
  if (!copy) {
    return -1;
  }
  memcpy(copy, text, length);
  copy[length] = '\0';
  *out = copy;
  return 0;
}

int64_t ap_mongo_get_int64(const bson_t *document, const char *key) {
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, document, key)) {
    return 0;
  }
  /* bson_iter_as_int64 converts int32, double and bool too, because a
   * server may return an int64 we stored as one of those. */
  if (BSON_ITER_HOLDS_NUMBER(&iter) || BSON_ITER_HOLDS_BOOL(&iter)) {
    return bson_iter_as_int64(&iter);
  }
  return 0;
}

double ap_mongo_get_double(const bson_t *document, const char *key) {
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, document, key)) {
    return 0.0;
  }
  if (BSON_ITER_HOLDS_DOUBLE(&iter)) {
    return bson_iter_double(&iter);
  }
  if (BSON_ITER_HOLDS_NUMBER(&iter)) {
    return (double)bson_iter_as_int64(&iter);
  }
  return 0.0;
}

int ap_mongo_append_string(bson_t *document, const char *key,
                           const char *value) {
  if (!value) {
    return bson_append_null(document, key, -1) ? 0 : -1;
  }
  return bson_append_utf8(document, key, -1, value, -1) ? 0 : -1;
}

int ap_mongo_get_document(const bson_t *document, const char *key,
                          bson_t *out) {
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, document, key) ||
      !BSON_ITER_HOLDS_DOCUMENT(&iter)) {
    return -1;
  }
  uint32_t length = 0;
  const uint8_t *data = NULL;
  bson_iter_document(&iter, &length, &data);
  return bson_init_static(out, data, length) ? 0 : -1;
}

bson_t *ap_mongo_transaction_reply(ap_mongo_transaction_t *transaction) {
  bson_destroy(&transaction->reply);
  bson_init(&transaction->reply);
  return &transaction->reply;
}

/* NOTE: no test produces a transient read failure inside a transaction,
 * so this retry path has not run. */
void ap_mongo_transaction_note_cursor(ap_mongo_transaction_t *transaction,
                                      mongoc_cursor_t *cursor) {
  if (!transaction) {
    return;
  }
  const bson_t *document = NULL;
  bson_error_t driver_error;
  if (mongoc_cursor_error_document(cursor, &driver_error, &document) &&
      document) {
    bson_t *reply = ap_mongo_transaction_reply(transaction);
    bson_concat(reply, document);
  }
}

/* State of one ap_mongo_run_transaction call, shared with its callback. */
typedef struct transaction_call {
  ap_mongo_transaction_t transaction;
  ap_mongo_transaction_function_t function;
  void *argument;
  ap_status_t status;
  ap_error_t error;
} transaction_call_t;

/* The with_transaction callback. It may run several times: the driver
 * retries the whole callback when an operation fails with the
 * TransientTransactionError label (a write conflict, a failover), which
 * it finds in the reply handed back here. */
static bool run_attempt(mongoc_client_session_t *session, void *context,
                        bson_t **reply, bson_error_t *driver_error) {
  transaction_call_t *call = context;
  (void)session;
  ap_error_clear(&call->error);
  ap_mongo_transaction_reply(&call->transaction);
  call->status =
      call->function(&call->transaction, call->argument, &call->error);
  if (call->status == AP_OK) {
    return true;
  }
  *reply = bson_copy(&call->transaction.reply);
  bson_set_error(driver_error, MONGOC_ERROR_TRANSACTION,
                 MONGOC_ERROR_TRANSACTION_INVALID_STATE, "%s",
                 call->error.message);
  return false;
}

ap_status_t ap_mongo_run_transaction(ap_mongo_store_t *store,
                                     mongoc_client_t *client, const char *what,
                                     ap_mongo_transaction_function_t function,
                                     void *argument, ap_error_t *error) {
  bson_error_t driver_error;
  mongoc_client_session_t *session =
      mongoc_client_start_session(client, NULL, &driver_error);
  if (!session) {
    return ap_mongo_error(&driver_error, what, error);
  }

  transaction_call_t call;
  memset(&call, 0, sizeof call);
  call.transaction.store = store;
  call.transaction.session = session;
  call.transaction.client = client;
  bson_init(&call.transaction.options);
  bson_init(&call.transaction.reply);
  call.function = function;
  call.argument = argument;
  if (!mongoc_client_session_append(session, &call.transaction.options,
                                    &driver_error)) {
    bson_destroy(&call.transaction.options);
    bson_destroy(&call.transaction.reply);
    mongoc_client_session_destroy(session);
    return ap_mongo_error(&driver_error, what, error);
  }

  bson_t reply;
  bool committed = mongoc_client_session_with_transaction(
      session, run_attempt, NULL, &call, &reply, &driver_error);
  bson_destroy(&reply);
  bson_destroy(&call.transaction.options);
  bson_destroy(&call.transaction.reply);
  mongoc_client_session_destroy(session);

  if (committed) {
    return AP_OK;
  }
  if (call.status != AP_OK) {
    /* The operation's own failure, already worded for the caller. */
    if (error) {
      *error = call.error;
    }
    return call.status;
  }
  return ap_mongo_error(&driver_error, what, error);
}
