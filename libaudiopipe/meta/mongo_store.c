/*
 * The MongoDB metadata backend: opening the store from metadata.uri, the
 * client pool, the ping, the migration (indexes and the schema document)
 * and the backend table that routes each operation to the asset, upload
 * and job files of the backend.
 *
 * The driver owns connections, server discovery, retries of retryable
 * reads and writes, and the URI's read and write concerns: this file only
 * checks the URI and passes it through, so production URIs choose
 * w=majority, retryWrites and readConcernLevel themselves.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <audiopipe/log.h>

#include "core/error_internal.h"
#include "meta/mongo_internal.h"

#define DEFAULT_DATABASE "audiopipe"
#define APPLICATION_NAME "audiopipe"

/* Server selection timeout when the URI sets none, in ms. The driver's
 * 30 s default blocks an HTTP request, and the server thread serving it,
 * for half a minute during an outage; 5 s still rides out an election. */
#define DEFAULT_SERVER_SELECTION_TIMEOUT_MS 5000

/* How long after its expiry the TTL index deletes a pending upload that
 * the expiry sweep never reached, in seconds (7 days). The sweep deletes
 * the upload's object and marks it expired. The TTL index is only a
 * backstop, so that a stopped sweep cannot grow the collection without
 * end. */
#define UPLOAD_TTL_GRACE_SECONDS (7 * 24 * 3600)

/* ---- Driver initialisation and its log messages. ---- */

static pthread_once_t driver_once = PTHREAD_ONCE_INIT;

/* While this thread parses a URI, the driver's warnings about it go here
 * instead of the log, so the open error can name the option at fault. */
static _Thread_local char *uri_warnings;
static _Thread_local size_t uri_warnings_size;

/* Sends the driver's warnings and errors to the library's log, so nothing
 * is printed behind the host's back. Debug and trace messages are
 * dropped. NOTE: libmongoc has one process-wide handler, so a host that
 * installs its own after this loses the unknown-option check of
 * parse_uri, and those options are then ignored. */
static void forward_driver_log(mongoc_log_level_t level, const char *domain,
                               const char *message, void *user_data) {
  (void)user_data;
  if (level > MONGOC_LOG_LEVEL_WARNING) {
    return;
  }
  if (uri_warnings) {
    size_t used = strlen(uri_warnings);
    if (used + 3 < uri_warnings_size) {
      snprintf(uri_warnings + used, uri_warnings_size - used, "%s%s",
               used ? "; " : "", message);
    }
    return;
  }
  ap_log_level_t ap_level =
      level == MONGOC_LOG_LEVEL_WARNING ? AP_LOG_WARN : AP_LOG_ERROR;
  ap_log_field_t fields[] = {AP_LOG_STRING("log_domain", domain)};
  ap_log_write(ap_level, "mongodb_driver_message", NULL, NULL, fields, 1, "%s",
               message);
}

static void initialise_driver(void) {
  mongoc_init();
  mongoc_log_set_handler(forward_driver_log, NULL);
}

/* ---- URI checks. ---- */

/* Writes `uri` to `out` with the password replaced by "***". The userinfo
 * ends at the last '@', because hosts and database names contain none and
 * an unescaped '@' in a password would otherwise show its tail. A query
 * value with '@' only makes it hide more than needed. */
static void redact_uri(const char *uri, char *out, size_t size) {
  const char *authority = strstr(uri, "://");
  const char *at = strrchr(uri, '@');
  if (!authority || !at || at < authority) {
    snprintf(out, size, "%s", uri);
    return;
  }
  authority += 3;
  const char *colon = memchr(authority, ':', (size_t)(at - authority));
  if (!colon) {
    snprintf(out, size, "%s", uri);
    return;
  }
  snprintf(out, size, "%.*s:***%s", (int)(colon - uri), uri, at);
}

/* Joins the URI's hosts as "host:port,host:port", or gives the SRV name. */
static char *describe_hosts(const mongoc_uri_t *uri) {
  const char *srv = mongoc_uri_get_srv_hostname(uri);
  if (srv) {
    return bson_strdup_printf("%s (SRV)", srv);
  }
  bson_string_t *text = bson_string_new(NULL);
  for (const mongoc_host_list_t *host = mongoc_uri_get_hosts(uri); host;
       host = host->next) {
    bson_string_append_printf(text, "%s%s", text->len ? "," : "",
                              host->host_and_port);
  }
  return bson_string_free(text, false);
}

/* Parses `uri`. An unknown option is only a warning to the driver, but it
 * is almost always a misspelt one, so it fails the open here. */
static ap_status_t parse_uri(const char *uri, const char *redacted,
                             mongoc_uri_t **out, ap_error_t *error) {
  char warnings[512] = "";
  bson_error_t driver_error;
  uri_warnings = warnings;
  uri_warnings_size = sizeof warnings;
  mongoc_uri_t *parsed = mongoc_uri_new_with_error(uri, &driver_error);
  uri_warnings = NULL;
  uri_warnings_size = 0;

  if (!parsed) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "metadata.uri = %s is not a valid MongoDB URI: "
                        "%s%s%s%s",
                        redacted, driver_error.message, warnings[0] ? " (" : "",
                        warnings, warnings[0] ? ")" : "");
  }
  if (warnings[0]) {
    mongoc_uri_destroy(parsed);
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "metadata.uri = %s: %s; fix or remove the option "
                        "(docs/operations.md lists the options that "
                        "matter)",
                        redacted, warnings);
  }
  *out = parsed;
  return AP_OK;
}

/* ---- Open, close and the pool. ---- */

static void mongo_close(void *state) {
  ap_mongo_store_t *store = state;
  if (!store) {
    return;
  }
  if (store->pool) {
    mongoc_client_pool_destroy(store->pool);
  }
  mongoc_uri_destroy(store->uri);
  bson_free(store->hosts);
  free(store->database);
  free(store);
}

mongoc_client_t *ap_mongo_client_pop(ap_mongo_store_t *store) {
  ap_mongo_note_hosts(store->hosts);
  return mongoc_client_pool_pop(store->pool);
}

void ap_mongo_client_push(ap_mongo_store_t *store, mongoc_client_t *client) {
  if (client) {
    mongoc_client_pool_push(store->pool, client);
  }
}

mongoc_collection_t *ap_mongo_collection(ap_mongo_store_t *store,
                                         mongoc_client_t *client,
                                         const char *name) {
  return mongoc_client_get_collection(client, store->database, name);
}

/* ---- Ping and the deployment check. ---- */

/* Runs `command` on the admin database and stores the reply in `reply`
 * (always initialised; the caller destroys it). */
static ap_status_t run_admin_command(ap_mongo_store_t *store,
                                     const bson_t *command, const char *what,
                                     bson_t *reply, ap_error_t *error) {
  mongoc_client_t *client = ap_mongo_client_pop(store);
  bson_error_t driver_error;
  bool ok = mongoc_client_command_simple(client, "admin", command, NULL, reply,
                                         &driver_error);
  ap_mongo_client_push(store, client);
  if (!ok) {
    return ap_mongo_error(&driver_error, what, error);
  }
  return AP_OK;
}

static ap_status_t mongo_ping(void *state, ap_error_t *error) {
  ap_mongo_store_t *store = state;
  bson_t command = BSON_INITIALIZER;
  bson_t reply;
  BSON_APPEND_INT32(&command, "ping", 1);
  ap_status_t status =
      run_admin_command(store, &command, "metadata store ping", &reply, error);
  bson_destroy(&command);
  bson_destroy(&reply);
  return status;
}

/* Fails unless the server is a replica-set member or a mongos, because
 * upload acceptance and asset deletion use multi-document transactions,
 * which a standalone mongod rejects. */
static ap_status_t check_deployment(ap_mongo_store_t *store,
                                    ap_error_t *error) {
  bson_t command = BSON_INITIALIZER;
  bson_t reply;
  BSON_APPEND_INT32(&command, "hello", 1);
  ap_status_t status = run_admin_command(
      store, &command, "checking the MongoDB deployment", &reply, error);
  bson_destroy(&command);
  if (status != AP_OK) {
    bson_destroy(&reply);
    return status;
  }

  char *set_name = NULL;
  char *message = NULL;
  int failed = ap_mongo_get_string(&reply, "setName", &set_name);
  failed |= ap_mongo_get_string(&reply, "msg", &message);
  bson_destroy(&reply);
  int router = message && strcmp(message, "isdbgrid") == 0;
  int member = set_name != NULL;
  free(set_name);
  free(message);
  if (failed) {
    return AP_NO_MEMORY(error);
  }
  if (!member && !router) {
    return ap_error_set(
        error, AP_DOMAIN_META, AP_ERR_UNSUPPORTED,
        "MongoDB at %s is a standalone server, but the metadata store "
        "needs multi-document transactions, which only a replica set or a "
        "sharded cluster provides: start mongod with --replSet NAME, run "
        "rs.initiate() once in mongosh, and add replicaSet=NAME to "
        "metadata.uri",
        store->hosts);
  }
  return AP_OK;
}

/* ---- Migration. ---- */

/* Appends one index specification to the array `indexes`. `partial` and
 * `ttl_seconds` (0 for none) are optional. */
static void append_index(bson_t *indexes, uint32_t position, const char *name,
                         const bson_t *keys, int unique, const bson_t *partial,
                         int32_t ttl_seconds) {
  char key[16];
  const char *array_key = NULL;
  bson_uint32_to_string(position, &array_key, key, sizeof key);
  bson_t index;
  bson_append_document_begin(indexes, array_key, -1, &index);
  BSON_APPEND_DOCUMENT(&index, "key", keys);
  BSON_APPEND_UTF8(&index, "name", name);
  if (unique) {
    BSON_APPEND_BOOL(&index, "unique", true);
  }
  if (partial) {
    BSON_APPEND_DOCUMENT(&index, "partialFilterExpression", partial);
  }
  if (ttl_seconds > 0) {
    BSON_APPEND_INT32(&index, "expireAfterSeconds", ttl_seconds);
  }
  bson_append_document_end(indexes, &index);
}

/* Builds the index list of `collection` into `indexes` (an array). */
static void build_indexes(const char *collection, bson_t *indexes) {
  bson_t *id_keys = BCON_NEW("id", BCON_INT32(1));
  append_index(indexes, 0, AP_MONGO_INDEX_ID, id_keys, 1, NULL, 0);
  bson_destroy(id_keys);

  if (strcmp(collection, AP_MONGO_ASSETS) == 0) {
    bson_t *keys = BCON_NEW("owner", BCON_INT32(1), "created_at",
                            BCON_INT32(-1), "id", BCON_INT32(-1));
    append_index(indexes, 1, AP_MONGO_INDEX_ASSETS_OWNER, keys, 0, NULL, 0);
    bson_destroy(keys);
  } else if (strcmp(collection, AP_MONGO_UPLOADS) == 0) {
    bson_t *keys =
        BCON_NEW("state", BCON_INT32(1), "expires_at", BCON_INT32(1));
    append_index(indexes, 1, AP_MONGO_INDEX_UPLOADS_EXPIRY, keys, 0, NULL, 0);
    bson_destroy(keys);
    keys = BCON_NEW("expires_at_date", BCON_INT32(1));
    append_index(indexes, 2, AP_MONGO_INDEX_UPLOADS_TTL, keys, 0, NULL,
                 UPLOAD_TTL_GRACE_SECONDS);
    bson_destroy(keys);
  } else if (strcmp(collection, AP_MONGO_JOBS) == 0) {
    /* The claim's whole sort order, so a claim walks the index to its
     * first match instead of sorting the due jobs. */
    bson_t *keys = BCON_NEW("state", BCON_INT32(1), "due_at", BCON_INT32(1),
                            "created_at", BCON_INT32(1), "id", BCON_INT32(1));
    append_index(indexes, 1, AP_MONGO_INDEX_JOBS_DUE, keys, 0, NULL, 0);
    bson_destroy(keys);
    keys = BCON_NEW("state", BCON_INT32(1), "lease_expires_at", BCON_INT32(1));
    append_index(indexes, 2, AP_MONGO_INDEX_JOBS_LEASE, keys, 0, NULL, 0);
    bson_destroy(keys);
    keys = BCON_NEW("idempotency_key", BCON_INT32(1));
    bson_t *partial =
        BCON_NEW("idempotency_key", "{", "$exists", BCON_BOOL(true), "}");
    append_index(indexes, 3, AP_MONGO_INDEX_JOBS_IDEMPOTENCY, keys, 1, partial,
                 0);
    bson_destroy(partial);
    bson_destroy(keys);
    keys = BCON_NEW("asset_id", BCON_INT32(1));
    append_index(indexes, 4, AP_MONGO_INDEX_JOBS_ASSET, keys, 0, NULL, 0);
    bson_destroy(keys);
  }
}

/* Creates the indexes of `collection`. createIndexes succeeds without
 * change when an index of the same name and specification exists, so
 * this runs on every migration. */
static ap_status_t create_indexes(ap_mongo_store_t *store,
                                  mongoc_client_t *client,
                                  const char *collection_name,
                                  ap_error_t *error) {
  bson_t command = BSON_INITIALIZER;
  bson_t indexes;
  BSON_APPEND_UTF8(&command, "createIndexes", collection_name);
  BSON_APPEND_ARRAY_BEGIN(&command, "indexes", &indexes);
  build_indexes(collection_name, &indexes);
  bson_append_array_end(&command, &indexes);

  mongoc_collection_t *collection =
      ap_mongo_collection(store, client, collection_name);
  bson_t reply;
  bson_error_t driver_error;
  bool ok = mongoc_collection_write_command_with_opts(
      collection, &command, NULL, &reply, &driver_error);
  mongoc_collection_destroy(collection);
  bson_destroy(&command);
  bson_destroy(&reply);
  if (ok) {
    return AP_OK;
  }

  /* 85 IndexOptionsConflict, 86 IndexKeySpecsConflict: an index of the
   * same name exists with another specification. */
  if (driver_error.domain == MONGOC_ERROR_SERVER &&
      (driver_error.code == 85 || driver_error.code == 86)) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_CONFLICT,
                        "creating the indexes of %s.%s: an existing index "
                        "differs from this build's (%s): drop it with "
                        "db.%s.dropIndex(NAME) and migrate again",
                        store->database, collection_name, driver_error.message,
                        collection_name);
  }
  char what[96];
  snprintf(what, sizeof what, "creating the indexes of %s", collection_name);
  return ap_mongo_error(&driver_error, what, error);
}

/* Reads the schema document's version into `*version` (0 when absent). */
static ap_status_t read_schema_version(ap_mongo_store_t *store,
                                       mongoc_client_t *client, int *version,
                                       ap_error_t *error) {
  mongoc_collection_t *collection =
      ap_mongo_collection(store, client, AP_MONGO_META);
  bson_t *filter = BCON_NEW("id", BCON_UTF8("schema"));
  bson_t *options = BCON_NEW("limit", BCON_INT64(1));
  mongoc_cursor_t *cursor =
      mongoc_collection_find_with_opts(collection, filter, options, NULL);
  const bson_t *document = NULL;
  *version = 0;
  if (mongoc_cursor_next(cursor, &document)) {
    *version = (int)ap_mongo_get_int64(document, "version");
  }
  bson_error_t driver_error;
  ap_status_t status = AP_OK;
  if (mongoc_cursor_error(cursor, &driver_error)) {
    status = ap_mongo_error(&driver_error, "reading the schema version", error);
  }
  mongoc_cursor_destroy(cursor);
  bson_destroy(options);
  bson_destroy(filter);
  mongoc_collection_destroy(collection);
  return status;
}

/* Raises the stored version to `target`, never lowering it. The schema
 * document is created at version 0 if missing, then updated only while
 * its version is below `target`. Two processes migrating at once to
 * different versions therefore keep the higher one. */
static ap_status_t raise_schema_version(ap_mongo_store_t *store,
                                        mongoc_client_t *client, int target,
                                        ap_error_t *error) {
  mongoc_collection_t *collection =
      ap_mongo_collection(store, client, AP_MONGO_META);
  bson_error_t driver_error;
  int64_t now_ms = ap_time_now_ms();

  bson_t *filter = BCON_NEW("id", BCON_UTF8("schema"));
  bson_t *update = BCON_NEW("$setOnInsert", "{", "version", BCON_INT64(0),
                            "created_at", BCON_INT64(now_ms), "}");
  bson_t *options = BCON_NEW("upsert", BCON_BOOL(true));
  bool ok = mongoc_collection_update_one(collection, filter, update, options,
                                         NULL, &driver_error);
  bson_destroy(options);
  bson_destroy(update);
  bson_destroy(filter);

  if (ok) {
    filter = BCON_NEW("id", BCON_UTF8("schema"), "version", "{", "$lt",
                      BCON_INT64(target), "}");
    update = BCON_NEW("$set", "{", "version", BCON_INT64(target), "updated_at",
                      BCON_INT64(now_ms), "}");
    ok = mongoc_collection_update_one(collection, filter, update, NULL, NULL,
                                      &driver_error);
    bson_destroy(update);
    bson_destroy(filter);
  }
  mongoc_collection_destroy(collection);
  if (!ok) {
    return ap_mongo_error(&driver_error, "storing the schema version", error);
  }
  return AP_OK;
}

static const char *const indexed_collections[] = {
    AP_MONGO_META, AP_MONGO_ASSETS, AP_MONGO_UPLOADS, AP_MONGO_JOBS};

/*
 * The MongoDB layout has one index set, which every schema version from 1
 * up creates. The stored version records which library version wrote the
 * documents, so ap_context_check_ready treats both backends alike.
 * NOTE: no step rewrites existing documents yet. A schema change that
 * needs one must add it here, keyed by the stored version.
 */
static ap_status_t mongo_migrate(void *state, int target_version, int *version,
                                 ap_error_t *error) {
  ap_mongo_store_t *store = state;
  if (target_version < 0 || target_version > AP_SCHEMA_VERSION) {
    return ap_error_set(error, AP_DOMAIN_META, AP_ERR_INVALID_ARGUMENT,
                        "schema version %d does not exist: use 0 to %d",
                        target_version, AP_SCHEMA_VERSION);
  }
  ap_status_t status = check_deployment(store, error);
  if (status != AP_OK) {
    return status;
  }

  mongoc_client_t *client = ap_mongo_client_pop(store);
  int current = 0;
  status = read_schema_version(store, client, &current, error);
  if (status == AP_OK && current > AP_SCHEMA_VERSION) {
    status = ap_error_set(error, AP_DOMAIN_META, AP_ERR_UNSUPPORTED,
                          "the MongoDB database %s has schema version %d, "
                          "newer than this build's %d: upgrade libaudiopipe",
                          store->database, current, AP_SCHEMA_VERSION);
  }
  size_t collection_count =
      sizeof indexed_collections / sizeof indexed_collections[0];
  for (size_t i = 0;
       status == AP_OK && target_version > 0 && i < collection_count; i++) {
    status = create_indexes(store, client, indexed_collections[i], error);
  }
  if (status == AP_OK && target_version > current) {
    status = raise_schema_version(store, client, target_version, error);
  }
  if (status == AP_OK) {
    status = read_schema_version(store, client, &current, error);
  }
  ap_mongo_client_push(store, client);

  if (status == AP_OK && version) {
    *version = current;
  }
  return status;
}

static ap_status_t mongo_schema_version(void *state, int *version,
                                        ap_error_t *error) {
  ap_mongo_store_t *store = state;
  mongoc_client_t *client = ap_mongo_client_pop(store);
  ap_status_t status = read_schema_version(store, client, version, error);
  ap_mongo_client_push(store, client);
  return status;
}

/* ---- The backend table. ---- */

static const ap_meta_backend_t mongo_backend = {
    .name = "mongodb",
    .close = mongo_close,
    .ping = mongo_ping,
    .migrate = mongo_migrate,
    .schema_version = mongo_schema_version,
    .asset_get = ap_mongo_asset_get,
    .asset_list = ap_mongo_asset_list,
    .asset_delete = ap_mongo_asset_delete,
    .asset_set_status = ap_mongo_asset_set_status,
    .asset_set_analysis = ap_mongo_asset_set_analysis,
    .asset_put_object = ap_mongo_asset_put_object,
    .upload_insert = ap_mongo_upload_insert,
    .upload_get = ap_mongo_upload_get,
    .upload_finish_pending = ap_mongo_upload_finish_pending,
    .upload_accept = ap_mongo_upload_accept,
    .upload_list_expired = ap_mongo_upload_list_expired,
    .job_enqueue = ap_mongo_job_enqueue,
    .job_claim = ap_mongo_job_claim,
    .job_heartbeat = ap_mongo_job_heartbeat,
    .job_progress = ap_mongo_job_progress,
    .job_complete = ap_mongo_job_complete,
    .job_fail = ap_mongo_job_fail,
    .job_cancel = ap_mongo_job_cancel,
    .job_reap = ap_mongo_job_reap,
    .job_get = ap_mongo_job_get,
    .job_stats = ap_mongo_job_stats,
};

ap_status_t ap_mongo_store_open(const char *uri, const ap_config_t *config,
                                const ap_meta_settings_t *settings,
                                ap_meta_store_t **out, ap_error_t *error) {
  (void)config; /* every MongoDB setting is a URI option */
  pthread_once(&driver_once, initialise_driver);

  char redacted[1024];
  redact_uri(uri, redacted, sizeof redacted);
  mongoc_uri_t *parsed = NULL;
  ap_status_t status = parse_uri(uri, redacted, &parsed, error);
  if (status != AP_OK) {
    return status;
  }

  ap_meta_store_t *meta = calloc(1, sizeof *meta);
  ap_mongo_store_t *store = calloc(1, sizeof *store);
  const char *database = mongoc_uri_get_database(parsed);
  if (store) {
    store->uri = parsed;
    store->settings = *settings;
    store->database = strdup(database ? database : DEFAULT_DATABASE);
    store->hosts = describe_hosts(parsed);
  } else {
    mongoc_uri_destroy(parsed);
  }
  if (!meta || !store || !store->database || !store->hosts) {
    mongo_close(store);
    free(meta);
    return AP_NO_MEMORY(error);
  }

  if (!mongoc_uri_has_option(store->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS)) {
    mongoc_uri_set_option_as_int32(store->uri,
                                   MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                   DEFAULT_SERVER_SELECTION_TIMEOUT_MS);
  }

  bson_error_t driver_error;
  store->pool = mongoc_client_pool_new_with_error(store->uri, &driver_error);
  if (!store->pool) {
    /* A mongodb+srv:// URI is resolved here, so a DNS failure is an
     * outage rather than a bad setting. */
    if (driver_error.domain == MONGOC_ERROR_STREAM) {
      ap_mongo_note_hosts(store->hosts);
      status = ap_mongo_error(&driver_error,
                              "metadata.uri: resolving the "
                              "SRV records",
                              error);
    } else {
      status = ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                            "metadata.uri = %s: cannot create the client "
                            "pool: %s",
                            redacted, driver_error.message);
    }
    mongo_close(store);
    free(meta);
    return status;
  }
  mongoc_client_pool_set_error_api(store->pool, MONGOC_ERROR_API_VERSION_2);
  if (!mongoc_uri_get_appname(store->uri)) {
    mongoc_client_pool_set_appname(store->pool, APPLICATION_NAME);
  }

  meta->backend = &mongo_backend;
  meta->state = store;
  *out = meta;
  return AP_OK;
}
