/*
 * The backend conformance suite: one set of checks of uploads, assets and
 * jobs that every combination of backends must pass, run through the
 * public API only (the program links the shared library and includes
 * nothing but <audiopipe/...>).
 *
 * The backends come from the environment, each empty for the embedded
 * default:
 *   AP_CONFORMANCE_METADATA_URI  sqlite:// (a new file under TMPDIR) or
 *                                mongodb://HOST:PORT/?OPTIONS (the
 *                                database name is replaced)
 *   AP_CONFORMANCE_OBJECTS_URI   file:// (a new directory under TMPDIR) or
 *                                s3://BUCKET?endpoint=URL&... (a new
 *                                bucket named BUCKET-RUN-N is created)
 *   AP_CONFORMANCE_S3_ACCESS_KEY_ID, AP_CONFORMANCE_S3_SECRET_ACCESS_KEY
 *                                credentials of the S3 store
 *   AP_CONFORMANCE_REDIS_URI     redis://HOST:PORT; empty leaves Redis off
 *   AP_CONFORMANCE_MONGO_TEST_SERVER=1
 *                                the metadata URI names the Mongo-wire test
 *                                server of scripts/mongo-test-server.sh,
 *                                which ignores unique indexes and does not
 *                                roll back transactions: the checks that
 *                                need either print SKIP and pass.
 *
 * Every test opens its own namespace (a SQLite file, a Mongo database, a
 * directory or bucket), so queue statistics and claims of one test never
 * see the jobs of another.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include <audiopipe/config.h>
#include <audiopipe/context.h>
#include <audiopipe/error.h>
#include <audiopipe/io.h>
#include <audiopipe/job.h>
#include <audiopipe/meta.h>
#include <audiopipe/storage.h>
#include <audiopipe/upload.h>
#include <audiopipe/waveform.h>
#include <audiopipe/worker.h>

#define CASES AP_TEST_DATA_DIR "/cases/"

#define TEST_SECRET "conformance-secret-0123456789abcdef0123456789abcdef"

/* How long a test waits for a worker to finish a job: far above the few
 * seconds these inputs take, so only a hang fails it. */
#define JOB_WAIT_MS 120000

/* ---- Backends and namespaces ----------------------------------------- */

typedef enum metadata_kind { METADATA_SQLITE, METADATA_MONGO } metadata_kind_t;
typedef enum objects_kind { OBJECTS_FILE, OBJECTS_S3 } objects_kind_t;

/* What the environment selected, read once by main. */
static struct {
  metadata_kind_t metadata;
  objects_kind_t objects;
  char metadata_uri[1024];
  char objects_uri[1024];
  char s3_access_key_id[256];
  char s3_secret_access_key[256];
  char redis_uri[512];
  int mongo_test_server;
  char run_id[13];     /* random hex, names every namespace of the run */
  char directory[512]; /* the run's files under TMPDIR */
  int namespace_count; /* namespaces opened so far */
} backends;

/* One test's namespace and the context opened on it. */
typedef struct space {
  ap_config_t *config;
  ap_context_t *context;
  int number;
} space_t;

static void copy_environment(const char *name, char *value, size_t size) {
  const char *text = getenv(name);
  snprintf(value, size, "%s", text ? text : "");
}

static int64_t now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void sleep_ms(int64_t milliseconds) {
  struct timespec pause = {.tv_sec = (time_t)(milliseconds / 1000),
                           .tv_nsec = (long)(milliseconds % 1000) * 1000000L};
  nanosleep(&pause, NULL);
}

/* Prints a skipped check's reason in the form the suite's log is grepped
 * for, then ends the test as skipped. */
#define SKIP_BECAUSE(reason)                                                   \
  do {                                                                         \
    print_message("SKIP (%s)\n", reason);                                      \
    skip();                                                                    \
  } while (0)

static const char *const unique_index_gap =
    "the Mongo-wire test server accepts duplicates through a unique index";
static const char *const rollback_gap =
    "the Mongo-wire test server accepts duplicates through a unique index "
    "and does not roll back an aborted transaction";

/* Writes into `out` the Mongo URI of the environment with its database
 * replaced by `database`. */
static void mongo_uri_with_database(const char *uri, const char *database,
                                    char *out, size_t size) {
  const char *hosts = uri + strlen("mongodb://");
  const char *slash = strchr(hosts, '/');
  const char *query = strchr(hosts, '?');
  size_t host_length = slash   ? (size_t)(slash - uri)
                       : query ? (size_t)(query - uri)
                               : strlen(uri);
  snprintf(out, size, "%.*s/%s%s", (int)host_length, uri, database,
           query ? query : "");
}

/* Copies the value of query parameter `name` of `uri` into `value`. */
static int uri_parameter(const char *uri, const char *name, char *value,
                         size_t size) {
  const char *query = strchr(uri, '?');
  size_t name_length = strlen(name);
  for (const char *at = query; at && *at; at = strchr(at + 1, '&')) {
    const char *start = at + 1;
    if (strncmp(start, name, name_length) == 0 && start[name_length] == '=') {
      const char *begin = start + name_length + 1;
      size_t length = strcspn(begin, "&");
      snprintf(value, size, "%.*s", (int)length, begin);
      return 0;
    }
  }
  return -1;
}

/* Creates `bucket` on the S3 endpoint with a SigV4-signed PUT. The
 * library has no call for this: a bucket is provisioned, not used. */
static void create_bucket(const char *endpoint, const char *bucket) {
  char url[1024];
  snprintf(url, sizeof url, "%s/%s", endpoint, bucket);
  char credentials[600];
  snprintf(credentials, sizeof credentials, "%s:%s", backends.s3_access_key_id,
           backends.s3_secret_access_key);
  CURL *handle = curl_easy_init();
  assert_non_null(handle);
  struct curl_slist *headers =
      curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  curl_easy_setopt(handle, CURLOPT_URL, url);
  curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "PUT");
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(handle, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
  curl_easy_setopt(handle, CURLOPT_USERPWD, credentials);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(handle, CURLOPT_NOBODY, 0L);
  curl_easy_setopt(handle, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE, 0L);
  assert_int_equal(curl_easy_perform(handle), CURLE_OK);
  long status = 0;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(handle);
  if (status != 200) {
    fail_msg("creating bucket %s on %s returned HTTP %ld", bucket, endpoint,
             status);
  }
}

static void set_key(ap_config_t *config, const char *key, const char *value) {
  ap_error_t error = {0};
  ap_status_t status = ap_config_set(config, key, value, &error);
  if (status != AP_OK) {
    fail_msg("%s = %s: %s", key, value, error.message);
  }
}

/* Makes a new namespace on every configured backend and a configuration
 * naming it; `pairs` (key, value, ..., NULL) adds test-specific keys.
 * NOTE: buckets and Mongo databases are never dropped. The fixtures'
 * servers are discarded after the run, but a long-lived store keeps one
 * bucket or database per test of every run. */
static space_t *space_prepare(const char *const *pairs) {
  space_t *space = calloc(1, sizeof *space);
  assert_non_null(space);
  space->number = ++backends.namespace_count;
  assert_int_equal(ap_config_new(&space->config, NULL), AP_OK);
  ap_config_t *config = space->config;

  char uri[1400];
  char name[128];
  if (backends.metadata == METADATA_MONGO) {
    snprintf(name, sizeof name, "conformance_%s_%d", backends.run_id,
             space->number);
    mongo_uri_with_database(backends.metadata_uri, name, uri, sizeof uri);
  } else {
    snprintf(uri, sizeof uri, "sqlite://%s/meta-%d.db", backends.directory,
             space->number);
  }
  set_key(config, "metadata.uri", uri);

  if (backends.objects == OBJECTS_S3) {
    char endpoint[512];
    assert_int_equal(uri_parameter(backends.objects_uri, "endpoint", endpoint,
                                   sizeof endpoint),
                     0);
    const char *bucket = backends.objects_uri + strlen("s3://");
    size_t bucket_length = strcspn(bucket, "?");
    snprintf(name, sizeof name, "%.*s-%s-%d", (int)bucket_length, bucket,
             backends.run_id, space->number);
    create_bucket(endpoint, name);
    snprintf(uri, sizeof uri, "s3://%s%s", name, bucket + bucket_length);
    set_key(config, "objects.s3_access_key_id", backends.s3_access_key_id);
    set_key(config, "objects.s3_secret_access_key",
            backends.s3_secret_access_key);
  } else {
    snprintf(uri, sizeof uri, "file://%s/objects-%d", backends.directory,
             space->number);
  }
  set_key(config, "objects.uri", uri);

  if (backends.redis_uri[0]) {
    set_key(config, "redis.uri", backends.redis_uri);
    snprintf(name, sizeof name, "conformance:%s:%d", backends.run_id,
             space->number);
    set_key(config, "redis.key_prefix", name);
  }

  set_key(config, "signing.secret", TEST_SECRET);
  set_key(config, "public.base_url", "http://127.0.0.1:8080");
  /* Retries are due at once, so retry checks need no waiting. */
  set_key(config, "jobs.retry_base", "0ms");
  set_key(config, "jobs.watch_interval", "5ms");
  set_key(config, "metadata.busy_timeout", "30s");
  for (size_t i = 0; pairs && pairs[i]; i += 2) {
    set_key(config, pairs[i], pairs[i + 1]);
  }
  return space;
}

static void space_open(space_t *space) {
  ap_error_t error = {0};
  ap_status_t status = ap_context_open(space->config, &space->context, &error);
  if (status != AP_OK) {
    fail_msg("ap_context_open: %s", error.message);
  }
}

static space_t *space_new(const char *const *pairs) {
  space_t *space = space_prepare(pairs);
  space_open(space);
  return space;
}

/* Opens a second context on `space`'s namespace whose configuration adds
 * `pairs` (key, value, ..., NULL) to the space's. Close it with
 * ap_context_close before the space. */
static ap_context_t *space_open_twin(const space_t *space,
                                     const char *const *pairs) {
  ap_config_t *config = NULL;
  assert_int_equal(ap_config_new(&config, NULL), AP_OK);
  for (size_t i = 0; i < ap_config_key_count(); i++) {
    const ap_config_key_info_t *info = ap_config_key_at(i);
    const char *value = ap_config_get(space->config, info->key);
    if (value &&
        (!info->default_value || strcmp(value, info->default_value) != 0)) {
      set_key(config, info->key, value);
    }
  }
  for (size_t i = 0; pairs && pairs[i]; i += 2) {
    set_key(config, pairs[i], pairs[i + 1]);
  }
  ap_context_t *context = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_context_open(config, &context, &error);
  ap_config_free(config);
  if (status != AP_OK) {
    fail_msg("ap_context_open: %s", error.message);
  }
  return context;
}

static void space_free(space_t *space) {
  ap_context_close(space->context);
  ap_config_free(space->config);
  free(space);
}

/* ---- Objects and uploads --------------------------------------------- */

typedef struct bytes {
  unsigned char *data;
  size_t size;
} bytes_t;

static bytes_t read_case(const char *path) {
  FILE *file = fopen(path, "rb");
  if (!file) {
    fail_msg("cannot open %s", path);
  }
  assert_int_equal(fseek(file, 0, SEEK_END), 0);
  long length = ftell(file);
  assert_true(length >= 0);
  assert_int_equal(fseek(file, 0, SEEK_SET), 0);
  bytes_t bytes = {malloc((size_t)length + 1), (size_t)length};
  assert_non_null(bytes.data);
  assert_int_equal(fread(bytes.data, 1, bytes.size, file), bytes.size);
  fclose(file);
  return bytes;
}

static void put_le16(unsigned char *at, unsigned value) {
  at[0] = (unsigned char)(value & 0xff);
  at[1] = (unsigned char)(value >> 8);
}

static void put_le32(unsigned char *at, uint32_t value) {
  put_le16(at, value & 0xffff);
  put_le16(at + 2, value >> 16);
}

/* Builds a 0.25 s mono 16-bit 8 kHz WAV of a triangle wave whose period
 * depends on `seed`: a small, valid recording for tests that need many
 * assets. */
static bytes_t make_wav(int seed) {
  enum { RATE = 8000, FRAMES = RATE / 4, HEADER = 44 };
  bytes_t bytes = {calloc(1, HEADER + FRAMES * 2), HEADER + FRAMES * 2};
  assert_non_null(bytes.data);
  unsigned char *header = bytes.data;
  memcpy(header, "RIFF", 4);
  put_le32(header + 4, (uint32_t)(bytes.size - 8));
  memcpy(header + 8, "WAVEfmt ", 8);
  put_le32(header + 16, 16);
  put_le16(header + 20, 1); /* PCM */
  put_le16(header + 22, 1); /* channels */
  put_le32(header + 24, RATE);
  put_le32(header + 28, RATE * 2);
  put_le16(header + 32, 2);
  put_le16(header + 34, 16);
  memcpy(header + 36, "data", 4);
  put_le32(header + 40, FRAMES * 2);
  int period = 20 + seed % 17;
  for (int i = 0; i < FRAMES; i++) {
    int phase = i % period;
    int level = (phase < period / 2 ? phase : period - phase) * 16000 / period;
    put_le16(header + HEADER + 2 * i, (unsigned)(int16_t)(level - 4000));
  }
  return bytes;
}

/* Writes `size` bytes to `key` through the object store, as the client's
 * PUT to the presigned URL would. */
static void put_object(ap_context_t *context, const char *key,
                       const char *content_type, const void *data,
                       size_t size) {
  ap_object_upload_t *upload = NULL;
  ap_error_t error = {0};
  ap_status_t status =
      ap_object_upload_begin(ap_context_object_store(context), key,
                             content_type, (int64_t)size, &upload, &error);
  if (status != AP_OK) {
    fail_msg("ap_object_upload_begin %s: %s", key, error.message);
  }
  const unsigned char *at = data;
  size_t left = size;
  while (status == AP_OK && left > 0) {
    size_t chunk = left < 65536 ? left : 65536;
    status = ap_object_upload_write(upload, at, chunk, &error);
    at += chunk;
    left -= chunk;
  }
  if (status == AP_OK) {
    status = ap_object_upload_finish(upload, &error);
  }
  ap_object_upload_close(upload);
  if (status != AP_OK) {
    fail_msg("writing %s: %s", key, error.message);
  }
}

static int object_exists(ap_context_t *context, const char *key) {
  ap_object_info_t info;
  ap_error_t error = {0};
  ap_status_t status = ap_object_store_stat(ap_context_object_store(context),
                                            key, &info, &error);
  if (status != AP_OK && status != AP_ERR_NOT_FOUND) {
    fail_msg("stat %s: %s", key, error.message);
  }
  return status == AP_OK;
}

/* Reads a whole object back through the store. */
static bytes_t read_object(ap_context_t *context, const char *key) {
  ap_io_t *io = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_object_store_open_read(
      ap_context_object_store(context), key, &io, &error);
  if (status != AP_OK) {
    fail_msg("open_read %s: %s", key, error.message);
  }
  int64_t total = ap_io_size(io);
  assert_true(total >= 0);
  bytes_t bytes = {malloc((size_t)total + 1), 0};
  assert_non_null(bytes.data);
  for (;;) {
    int64_t count = ap_io_read(io, bytes.data + bytes.size,
                               (size_t)total + 1 - bytes.size, &error);
    assert_true(count >= 0);
    if (count == 0) {
      break;
    }
    bytes.size += (size_t)count;
    assert_true(bytes.size <= (size_t)total);
  }
  ap_io_close(io);
  assert_int_equal(bytes.size, (size_t)total);
  return bytes;
}

static ap_upload_ticket_t *create_ticket(ap_context_t *context,
                                         const char *owner, int64_t size,
                                         const char *content_type) {
  ap_upload_request_t request;
  ap_upload_request_init(&request);
  request.owner = owner;
  request.filename = "Take 1.wav";
  request.size_bytes = size;
  request.content_type = content_type;
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_upload_create(context, &request, &ticket, &error);
  if (status != AP_OK) {
    fail_msg("ap_upload_create: %s", error.message);
  }
  return ticket;
}

/* Uploads `bytes` for `owner` and completes the upload. */
static ap_asset_t *upload_asset(ap_context_t *context, const char *owner,
                                const bytes_t *bytes,
                                const char *content_type) {
  ap_upload_ticket_t *ticket =
      create_ticket(context, owner, (int64_t)bytes->size, content_type);
  put_object(context, ap_upload_ticket_object_key(ticket), content_type,
             bytes->data, bytes->size);
  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_upload_complete(
      context, owner, ap_upload_ticket_id(ticket), &asset, &error);
  if (status != AP_OK) {
    fail_msg("ap_upload_complete: %s", error.message);
  }
  ap_upload_ticket_free(ticket);
  return asset;
}

/* Counts every asset of `owner`, following the cursors. */
static size_t asset_count(ap_context_t *context, const char *owner) {
  size_t count = 0;
  char *cursor = NULL;
  do {
    ap_asset_list_t *list = NULL;
    assert_int_equal(ap_asset_list(context, owner, cursor, 100, &list, NULL),
                     AP_OK);
    count += ap_asset_list_count(list);
    free(cursor);
    const char *next = ap_asset_list_next_cursor(list);
    cursor = next ? strdup(next) : NULL;
    ap_asset_list_free(list);
  } while (cursor);
  return count;
}

static ap_job_stats_t job_stats(ap_context_t *context) {
  ap_job_stats_t stats;
  memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  assert_int_equal(ap_job_stats(context, &stats, NULL), AP_OK);
  return stats;
}

static ap_upload_state_t upload_state(ap_context_t *context, const char *owner,
                                      const char *upload_id,
                                      int *rejection_code) {
  ap_upload_state_t state = AP_UPLOAD_PENDING;
  ap_error_t error = {0};
  ap_status_t status = ap_upload_get_state(context, owner, upload_id, &state,
                                           rejection_code, &error);
  if (status != AP_OK) {
    fail_msg("ap_upload_get_state %s: %s", upload_id, error.message);
  }
  return state;
}

/* ---- Uploads ---------------------------------------------------------- */

static void upload_create_issues_distinct_ids(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  enum { COUNT = 20 };
  ap_upload_ticket_t *tickets[COUNT];
  int64_t before = now_ms();
  for (int i = 0; i < COUNT; i++) {
    tickets[i] = create_ticket(space->context, "alice", 1000, "audio/wav");
  }

  for (int i = 0; i < COUNT; i++) {
    const char *id = ap_upload_ticket_id(tickets[i]);
    const char *key = ap_upload_ticket_object_key(tickets[i]);
    assert_true(ap_id_is_valid(id));
    assert_int_equal(ap_object_key_validate(key, NULL), AP_OK);
    /* The key never carries the client's file name or the owner. */
    assert_null(strstr(key, "Take"));
    assert_null(strstr(key, "alice"));
    assert_string_equal(ap_upload_ticket_method(tickets[i]), "PUT");
    assert_non_null(ap_upload_ticket_url(tickets[i]));
    assert_true(ap_upload_ticket_expires_at_ms(tickets[i]) > before);
    for (int j = 0; j < i; j++) {
      assert_string_not_equal(id, ap_upload_ticket_id(tickets[j]));
      assert_string_not_equal(key, ap_upload_ticket_object_key(tickets[j]));
      /* A time-ordered scheme gives ids made in one millisecond the same
       * first 10 characters (48 bits of clock). Random ids differ there
       * except with probability 2^-50. */
      assert_int_not_equal(strncmp(id, ap_upload_ticket_id(tickets[j]), 10), 0);
    }
    assert_int_equal(upload_state(space->context, "alice", id, NULL),
                     AP_UPLOAD_PENDING);
  }
  for (int i = 0; i < COUNT; i++) {
    ap_upload_ticket_free(tickets[i]);
  }
  space_free(space);
}

/* Outcomes of ap_upload_create_async, gathered under a mutex. */
typedef struct async_tickets {
  pthread_mutex_t mutex;
  pthread_cond_t changed;
  int count;
  ap_upload_ticket_t *tickets[32];
  char errors[32][AP_ERROR_MESSAGE_SIZE];
} async_tickets_t;

static void store_async_ticket(void *user_data, ap_upload_ticket_t *ticket,
                               const ap_error_t *error) {
  async_tickets_t *outcomes = user_data;
  pthread_mutex_lock(&outcomes->mutex);
  int slot = outcomes->count++;
  outcomes->tickets[slot] = ticket;
  snprintf(outcomes->errors[slot], sizeof outcomes->errors[slot], "%s",
           error ? error->message : "");
  pthread_cond_broadcast(&outcomes->changed);
  pthread_mutex_unlock(&outcomes->mutex);
}

/* Every backend's asynchronous creation calls back once per upload with
 * a distinct pending upload, whether it batches inserts or runs them on
 * the context's threads. */
static void upload_create_async_calls_back(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  enum { COUNT = 16 };
  static async_tickets_t outcomes;
  memset(&outcomes, 0, sizeof outcomes);
  pthread_mutex_init(&outcomes.mutex, NULL);
  pthread_cond_init(&outcomes.changed, NULL);

  pthread_mutex_lock(&outcomes.mutex);
  for (int i = 0; i < COUNT; i++) {
    ap_upload_request_t request;
    ap_upload_request_init(&request);
    request.owner = "alice";
    request.filename = "Take 1.wav";
    request.size_bytes = 1000;
    request.content_type = "audio/wav";
    ap_error_t error = {0};
    if (ap_upload_create_async(space->context, &request, store_async_ticket,
                               &outcomes, &error) != AP_OK) {
      fail_msg("ap_upload_create_async: %s", error.message);
    }
  }
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 30;
  while (outcomes.count < COUNT &&
         pthread_cond_timedwait(&outcomes.changed, &outcomes.mutex,
                                &deadline) == 0) {
  }
  int count = outcomes.count;
  pthread_mutex_unlock(&outcomes.mutex);
  assert_int_equal(count, COUNT);

  for (int i = 0; i < COUNT; i++) {
    if (!outcomes.tickets[i]) {
      fail_msg("creation %d failed: %s", i, outcomes.errors[i]);
    }
    const char *id = ap_upload_ticket_id(outcomes.tickets[i]);
    assert_true(ap_id_is_valid(id));
    assert_string_equal(ap_upload_ticket_method(outcomes.tickets[i]), "PUT");
    assert_int_equal(upload_state(space->context, "alice", id, NULL),
                     AP_UPLOAD_PENDING);
    for (int j = 0; j < i; j++) {
      assert_string_not_equal(id, ap_upload_ticket_id(outcomes.tickets[j]));
    }
  }
  space_free(space);

  /* Nothing is called back after the close. */
  assert_int_equal(outcomes.count, COUNT);
  for (int i = 0; i < COUNT; i++) {
    ap_upload_ticket_free(outcomes.tickets[i]);
  }
  pthread_mutex_destroy(&outcomes.mutex);
  pthread_cond_destroy(&outcomes.changed);
}

static void upload_complete_creates_asset_and_job(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  bytes_t mp3 = read_case(CASES "case-03.mp3");
  ap_upload_ticket_t *ticket =
      create_ticket(context, "alice", (int64_t)mp3.size, "audio/mpeg");
  const char *upload_id = ap_upload_ticket_id(ticket);
  const char *key = ap_upload_ticket_object_key(ticket);
  put_object(context, key, "audio/mpeg", mp3.data, mp3.size);

  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_upload_complete(context, "alice", upload_id, &asset, &error), AP_OK);
  assert_non_null(asset);
  assert_true(ap_id_is_valid(ap_asset_id(asset)));
  assert_string_equal(ap_asset_owner(asset), "alice");
  assert_string_equal(ap_asset_filename(asset), "Take 1.wav");
  assert_string_equal(ap_asset_content_type(asset), "audio/mpeg");
  assert_int_equal(ap_asset_size_bytes(asset), (int64_t)mp3.size);
  assert_string_equal(ap_asset_object_key(asset), key);
  assert_int_equal(ap_asset_status(asset), AP_ASSET_PENDING);
  assert_non_null(ap_asset_probe_json(asset));
  assert_non_null(strstr(ap_asset_probe_json(asset), "mp3"));
  assert_null(ap_asset_analysis_json(asset));
  assert_int_equal(ap_asset_schema_version(asset), AP_SCHEMA_VERSION);
  assert_true(object_exists(context, key));
  assert_int_equal(upload_state(context, "alice", upload_id, NULL),
                   AP_UPLOAD_COMPLETED);

  /* The processing job was created with the asset. */
  ap_job_t *job = NULL;
  assert_int_equal(
      ap_job_get(context, "alice", ap_asset_job_id(asset), &job, &error),
      AP_OK);
  assert_string_equal(ap_job_kind(job), AP_JOB_KIND_PROCESS_ASSET);
  assert_string_equal(ap_job_asset_id(job), ap_asset_id(asset));
  assert_string_equal(ap_job_owner(job), "alice");
  assert_int_equal(ap_job_state(job), AP_JOB_QUEUED);
  assert_string_equal(ap_job_idempotency_key(job), upload_id);
  ap_job_free(job);
  assert_int_equal(job_stats(context).queued, 1);

  ap_asset_t *stored = NULL;
  assert_int_equal(
      ap_asset_get(context, "alice", ap_asset_id(asset), &stored, &error),
      AP_OK);
  assert_string_equal(ap_asset_job_id(stored), ap_asset_job_id(asset));
  assert_string_equal(ap_asset_probe_json(stored), ap_asset_probe_json(asset));
  assert_int_equal(ap_asset_created_at_ms(stored),
                   ap_asset_created_at_ms(asset));
  ap_asset_free(stored);

  /* Completing again returns the same asset and adds no job. */
  ap_asset_t *again = NULL;
  assert_int_equal(
      ap_upload_complete(context, "alice", upload_id, &again, &error), AP_OK);
  assert_string_equal(ap_asset_id(again), ap_asset_id(asset));
  assert_string_equal(ap_asset_job_id(again), ap_asset_job_id(asset));
  assert_int_equal(asset_count(context, "alice"), 1);
  assert_int_equal(job_stats(context).queued, 1);
  ap_asset_free(again);

  ap_asset_free(asset);
  ap_upload_ticket_free(ticket);
  free(mp3.data);
  space_free(space);
}

typedef struct rejection_case {
  const char *name;
  const char *path; /* NULL: `text` is the object */
  const char *text;
  int64_t extra_declared_bytes; /* added to the declared size */
  int64_t declared_size;        /* used instead when non-zero */
  ap_status_t code;
} rejection_case_t;

static void upload_rejections_delete_object(void **state) {
  (void)state;
  /* A 1 MiB limit lets case-05.mp3 (1.7 MB) stand for an oversized
   * object: a presigned PUT cannot cap the size, so completion must. */
  static const char *const keys[] = {"uploads.max_bytes", "1M", NULL};
  space_t *space = space_new(keys);
  ap_context_t *context = space->context;
  static const char notes[] =
      "Meeting notes: the recording is attached separately.\n"
      "Meeting notes: the recording is attached separately.\n"
      "Meeting notes: the recording is attached separately.\n";
  const rejection_case_t cases[] = {
      {"empty object", CASES "case-14.mp3", NULL, 0, 1, AP_ERR_EMPTY_INPUT},
      {"too large", CASES "case-05.mp3", NULL, 0, 1000,
       AP_ERR_UPLOAD_TOO_LARGE},
      {"size mismatch", CASES "case-03.mp3", NULL, 1, 0, AP_ERR_SIZE_MISMATCH},
      {"not audio", NULL, notes, 0, 0, AP_ERR_NOT_AUDIO},
      {"multipart form body", CASES "case-22.wav", NULL, 0, 0,
       AP_ERR_MULTIPART_BODY},
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const rejection_case_t *rejection = &cases[i];
    print_message("rejection: %s\n", rejection->name);
    bytes_t bytes;
    if (rejection->path) {
      bytes = read_case(rejection->path);
    } else {
      bytes.size = strlen(rejection->text);
      bytes.data = malloc(bytes.size + 1);
      assert_non_null(bytes.data);
      memcpy(bytes.data, rejection->text, bytes.size + 1);
    }
    int64_t declared =
        rejection->declared_size
            ? rejection->declared_size
            : (int64_t)bytes.size + rejection->extra_declared_bytes;
    ap_upload_ticket_t *ticket =
        create_ticket(context, "alice", declared, "audio/wav");
    const char *upload_id = ap_upload_ticket_id(ticket);
    const char *key = ap_upload_ticket_object_key(ticket);
    put_object(context, key, "audio/wav", bytes.data, bytes.size);
    assert_true(object_exists(context, key));

    ap_asset_t *asset = NULL;
    ap_error_t error = {0};
    assert_int_equal(
        ap_upload_complete(context, "alice", upload_id, &asset, &error),
        rejection->code);
    assert_null(asset);
    assert_false(object_exists(context, key));
    assert_int_equal(asset_count(context, "alice"), 0);
    assert_int_equal(job_stats(context).queued, 0);
    int rejection_code = 0;
    assert_int_equal(upload_state(context, "alice", upload_id, &rejection_code),
                     AP_UPLOAD_REJECTED);
    assert_int_equal(rejection_code, rejection->code);

    /* A rejected upload stays rejected. */
    assert_int_equal(
        ap_upload_complete(context, "alice", upload_id, &asset, &error),
        AP_ERR_UPLOAD_STATE);
    assert_null(asset);
    ap_upload_ticket_free(ticket);
    free(bytes.data);
  }

  /* No object at all: the upload stays pending so the client can still
   * PUT it. */
  ap_upload_ticket_t *ticket =
      create_ticket(context, "alice", 100, "audio/wav");
  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), &asset,
                                      &error),
                   AP_ERR_OBJECT_MISSING);
  assert_null(asset);
  assert_false(object_exists(context, ap_upload_ticket_object_key(ticket)));
  assert_int_equal(asset_count(context, "alice"), 0);
  assert_int_equal(job_stats(context).queued, 0);
  assert_int_equal(
      upload_state(context, "alice", ap_upload_ticket_id(ticket), NULL),
      AP_UPLOAD_PENDING);
  ap_upload_ticket_free(ticket);
  space_free(space);
}

static void upload_completion_is_atomic(void **state) {
  (void)state;
  if (backends.mongo_test_server) {
    SKIP_BECAUSE(rollback_gap);
  }
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  bytes_t wav = make_wav(1);
  ap_upload_ticket_t *ticket =
      create_ticket(context, "alice", (int64_t)wav.size, "audio/wav");
  put_object(context, ap_upload_ticket_object_key(ticket), "audio/wav",
             wav.data, wav.size);

  /* The processing job's idempotency key is the upload id (checked in
   * upload_complete_creates_asset_and_job). A job already holding it
   * makes the job insert fail after the asset was written, inside the
   * completion's transaction, which must then leave no asset. */
  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "blocker";
  options.idempotency_key = ap_upload_ticket_id(ticket);
  ap_job_t *blocker = NULL;
  assert_int_equal(ap_job_enqueue(context, &options, &blocker, NULL), AP_OK);

  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_upload_complete(
      context, "alice", ap_upload_ticket_id(ticket), &asset, &error);
  assert_int_equal(status, AP_ERR_CONFLICT);
  assert_null(asset);
  assert_int_equal(asset_count(context, "alice"), 0);
  assert_int_equal(job_stats(context).queued, 1);
  assert_int_equal(
      upload_state(context, "alice", ap_upload_ticket_id(ticket), NULL),
      AP_UPLOAD_PENDING);
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_get(context, NULL, ap_job_id(blocker), &job, NULL),
                   AP_OK);
  assert_string_equal(ap_job_kind(job), "blocker");
  ap_job_free(job);
  ap_job_free(blocker);
  ap_upload_ticket_free(ticket);
  free(wav.data);
  space_free(space);
}

static void upload_expired_at_completion(void **state) {
  (void)state;
  static const char *const keys[] = {"uploads.url_ttl", "1s", NULL};
  space_t *space = space_new(keys);
  ap_context_t *context = space->context;
  bytes_t wav = make_wav(2);
  ap_upload_ticket_t *ticket =
      create_ticket(context, "alice", (int64_t)wav.size, "audio/wav");
  const char *key = ap_upload_ticket_object_key(ticket);
  put_object(context, key, "audio/wav", wav.data, wav.size);
  while (now_ms() <= ap_upload_ticket_expires_at_ms(ticket) + 50) {
    sleep_ms(50);
  }

  ap_error_t error = {0};
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), NULL,
                                      &error),
                   AP_ERR_EXPIRED);
  assert_false(object_exists(context, key));
  assert_int_equal(asset_count(context, "alice"), 0);
  assert_int_equal(job_stats(context).queued, 0);
  assert_int_equal(
      upload_state(context, "alice", ap_upload_ticket_id(ticket), NULL),
      AP_UPLOAD_EXPIRED);
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), NULL,
                                      &error),
                   AP_ERR_UPLOAD_STATE);
  ap_upload_ticket_free(ticket);
  free(wav.data);
  space_free(space);
}

static void upload_cleanup_expires_old_uploads(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  /* A second context on the same namespace issues 1 s tickets, so one
   * cleanup time lies between the two expiries. */
  static const char *const short_ttl[] = {"uploads.url_ttl", "1s", NULL};
  ap_context_t *short_context = space_open_twin(space, short_ttl);
  bytes_t wav = make_wav(3);
  ap_upload_ticket_t *old_ticket =
      create_ticket(short_context, "alice", (int64_t)wav.size, "audio/wav");
  ap_upload_ticket_t *fresh_ticket =
      create_ticket(context, "alice", (int64_t)wav.size, "audio/wav");
  const char *old_key = ap_upload_ticket_object_key(old_ticket);
  const char *fresh_key = ap_upload_ticket_object_key(fresh_ticket);
  put_object(context, old_key, "audio/wav", wav.data, wav.size);
  put_object(context, fresh_key, "audio/wav", wav.data, wav.size);
  int64_t old_expiry = ap_upload_ticket_expires_at_ms(old_ticket);
  int64_t cleanup_time = old_expiry + 1000;
  assert_true(ap_upload_ticket_expires_at_ms(fresh_ticket) > cleanup_time);

  /* At the current time neither has expired. */
  int64_t count = -1;
  assert_int_equal(ap_upload_cleanup_expired(context, 0, &count, NULL), AP_OK);
  assert_int_equal(count, 0);

  assert_int_equal(
      ap_upload_cleanup_expired(context, cleanup_time, &count, NULL), AP_OK);
  assert_int_equal(count, 1);
  assert_false(object_exists(context, old_key));
  assert_true(object_exists(context, fresh_key));
  assert_int_equal(
      upload_state(context, "alice", ap_upload_ticket_id(old_ticket), NULL),
      AP_UPLOAD_EXPIRED);
  assert_int_equal(
      upload_state(context, "alice", ap_upload_ticket_id(fresh_ticket), NULL),
      AP_UPLOAD_PENDING);
  ap_error_t error = {0};
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(old_ticket), NULL,
                                      &error),
                   AP_ERR_UPLOAD_STATE);

  /* A second pass finds nothing more at the same time. */
  assert_int_equal(
      ap_upload_cleanup_expired(context, cleanup_time, &count, NULL), AP_OK);
  assert_int_equal(count, 0);

  /* The fresh upload still completes. */
  ap_asset_t *asset = NULL;
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(fresh_ticket), &asset,
                                      &error),
                   AP_OK);
  assert_non_null(asset);
  ap_asset_free(asset);
  ap_upload_ticket_free(old_ticket);
  ap_upload_ticket_free(fresh_ticket);
  free(wav.data);
  ap_context_close(short_context);
  space_free(space);
}

/* ---- Owners and listing ----------------------------------------------- */

static void other_owner_gets_not_found(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  bytes_t wav = make_wav(4);
  ap_asset_t *asset = upload_asset(context, "alice", &wav, "audio/wav");
  const char *asset_id = ap_asset_id(asset);
  const char *job_id = ap_asset_job_id(asset);
  ap_upload_ticket_t *pending =
      create_ticket(context, "alice", (int64_t)wav.size, "audio/wav");
  const char *upload_id = ap_upload_ticket_id(pending);
  put_object(context, ap_upload_ticket_object_key(pending), "audio/wav",
             wav.data, wav.size);

  ap_error_t error = {0};
  ap_asset_t *seen = NULL;
  assert_int_equal(ap_asset_get(context, "bob", asset_id, &seen, &error),
                   AP_ERR_NOT_FOUND);
  assert_null(seen);
  assert_int_equal(ap_asset_delete(context, "bob", asset_id, &error),
                   AP_ERR_NOT_FOUND);
  assert_int_equal(asset_count(context, "bob"), 0);

  ap_upload_state_t upload = AP_UPLOAD_PENDING;
  assert_int_equal(
      ap_upload_get_state(context, "bob", upload_id, &upload, NULL, &error),
      AP_ERR_NOT_FOUND);
  assert_int_equal(ap_upload_complete(context, "bob", upload_id, &seen, &error),
                   AP_ERR_NOT_FOUND);
  assert_null(seen);
  assert_int_equal(ap_upload_abort(context, "bob", upload_id, &error),
                   AP_ERR_NOT_FOUND);

  ap_job_t *job = NULL;
  assert_int_equal(ap_job_get(context, "bob", job_id, &job, &error),
                   AP_ERR_NOT_FOUND);
  assert_null(job);
  assert_int_equal(ap_job_cancel(context, "bob", job_id, &error),
                   AP_ERR_NOT_FOUND);
  ap_job_watch_t *watch = NULL;
  assert_int_equal(ap_job_watch_open(context, "bob", job_id, &watch, &error),
                   AP_ERR_NOT_FOUND);
  assert_null(watch);

  /* An unknown id looks exactly the same. */
  char unknown[AP_ID_SIZE];
  assert_int_equal(ap_id_generate(unknown, NULL), AP_OK);
  assert_int_equal(ap_asset_get(context, "alice", unknown, &seen, &error),
                   AP_ERR_NOT_FOUND);
  assert_int_equal(ap_job_get(context, "alice", unknown, &job, &error),
                   AP_ERR_NOT_FOUND);
  assert_int_equal(
      ap_upload_get_state(context, "alice", unknown, &upload, NULL, &error),
      AP_ERR_NOT_FOUND);

  /* Nothing of alice's changed. */
  assert_int_equal(ap_asset_get(context, "alice", asset_id, &seen, &error),
                   AP_OK);
  ap_asset_free(seen);
  assert_int_equal(ap_job_get(context, "alice", job_id, &job, &error), AP_OK);
  assert_int_equal(ap_job_state(job), AP_JOB_QUEUED);
  ap_job_free(job);
  assert_int_equal(upload_state(context, "alice", upload_id, NULL),
                   AP_UPLOAD_PENDING);
  assert_true(object_exists(context, ap_upload_ticket_object_key(pending)));
  assert_true(object_exists(context, ap_asset_object_key(asset)));

  ap_upload_ticket_free(pending);
  ap_asset_free(asset);
  free(wav.data);
  space_free(space);
}

static void asset_list_pages_with_cursors(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  enum { TOTAL = 7, PAGE = 3 };
  char ids[TOTAL][AP_ID_SIZE];
  for (int i = 0; i < TOTAL; i++) {
    bytes_t wav = make_wav(10 + i);
    ap_asset_t *asset = upload_asset(context, "alice", &wav, "audio/wav");
    snprintf(ids[i], AP_ID_SIZE, "%s", ap_asset_id(asset));
    ap_asset_free(asset);
    free(wav.data);
  }
  bytes_t wav = make_wav(30);
  ap_asset_free(upload_asset(context, "bob", &wav, "audio/wav"));

  char seen[TOTAL][AP_ID_SIZE];
  size_t seen_count = 0;
  char *cursor = NULL;
  char *second_cursor = NULL;
  int pages = 0;
  int64_t previous_time = INT64_MAX;
  char previous_id[AP_ID_SIZE] = "~";
  do {
    ap_asset_list_t *list = NULL;
    ap_error_t error = {0};
    assert_int_equal(
        ap_asset_list(context, "alice", cursor, PAGE, &list, &error), AP_OK);
    pages++;
    assert_true(ap_asset_list_count(list) <= PAGE);
    for (size_t i = 0; i < ap_asset_list_count(list); i++) {
      const ap_asset_t *asset = ap_asset_list_at(list, i);
      assert_string_equal(ap_asset_owner(asset), "alice");
      /* Newest first, ties broken by descending id. */
      int64_t time = ap_asset_created_at_ms(asset);
      assert_true(time <= previous_time);
      if (time == previous_time) {
        assert_true(strcmp(ap_asset_id(asset), previous_id) < 0);
      }
      previous_time = time;
      snprintf(previous_id, sizeof previous_id, "%s", ap_asset_id(asset));
      assert_true(seen_count < TOTAL);
      snprintf(seen[seen_count++], AP_ID_SIZE, "%s", ap_asset_id(asset));
    }
    free(cursor);
    const char *next = ap_asset_list_next_cursor(list);
    cursor = next ? strdup(next) : NULL;
    if (pages == 1) {
      assert_non_null(cursor);
      second_cursor = strdup(cursor);
      /* An asset added while paging is newer than the position the
       * cursor names, so it appears on no later page. */
      ap_asset_free(upload_asset(context, "alice", &wav, "audio/wav"));
    }
    ap_asset_list_free(list);
  } while (cursor);

  assert_int_equal(pages, 3);
  assert_int_equal(seen_count, TOTAL);
  for (int i = 0; i < TOTAL; i++) {
    int found = 0;
    for (size_t j = 0; j < seen_count; j++) {
      found += strcmp(ids[i], seen[j]) == 0;
    }
    assert_int_equal(found, 1);
  }
  /* Creation order is the reverse of the listing order. */
  assert_string_equal(seen[0], ids[TOTAL - 1]);
  assert_string_equal(seen[TOTAL - 1], ids[0]);

  /* A cursor is bound to its owner and to its position. */
  ap_asset_list_t *list = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_asset_list(context, "bob", second_cursor, PAGE, &list, &error),
      AP_ERR_INVALID_ARGUMENT);
  char tampered[512];
  snprintf(tampered, sizeof tampered, "%s", second_cursor);
  size_t middle = strlen(tampered) / 2;
  tampered[middle] = tampered[middle] == 'A' ? 'B' : 'A';
  assert_int_equal(
      ap_asset_list(context, "alice", tampered, PAGE, &list, &error),
      AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(ap_asset_list(context, "alice", NULL, 0, &list, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(ap_asset_list(context, "alice", NULL,
                                 AP_ASSET_LIST_MAX_LIMIT + 1, &list, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(asset_count(context, "alice"), TOTAL + 1);
  assert_int_equal(asset_count(context, "bob"), 1);
  assert_int_equal(asset_count(context, "carol"), 0);

  free(second_cursor);
  free(wav.data);
  space_free(space);
}

/* ---- Jobs --------------------------------------------------------------- */

#define NOOP_KIND "conformance_noop"

static ap_job_t *enqueue(ap_context_t *context, const char *key,
                         int max_attempts) {
  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = NOOP_KIND;
  options.owner = "alice";
  options.payload_json = "{\"n\":1}";
  options.idempotency_key = key;
  options.max_attempts = max_attempts;
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_job_enqueue(context, &options, &job, &error);
  if (status != AP_OK) {
    fail_msg("ap_job_enqueue: %s", error.message);
  }
  return job;
}

static ap_job_t *claim(ap_context_t *context, int64_t lease_ms) {
  static const char *const kinds[] = {NOOP_KIND};
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  ap_status_t status =
      ap_job_claim(context, "worker-1", lease_ms, kinds, 1, &job, &error);
  if (status != AP_OK) {
    fail_msg("ap_job_claim: %s", error.message);
  }
  return job;
}

static ap_job_t *get_job(ap_context_t *context, const char *id) {
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_job_get(context, NULL, id, &job, &error);
  if (status != AP_OK) {
    fail_msg("ap_job_get %s: %s", id, error.message);
  }
  return job;
}

static ap_job_state_t job_state(ap_context_t *context, const char *id) {
  ap_job_t *job = get_job(context, id);
  ap_job_state_t state = ap_job_state(job);
  ap_job_free(job);
  return state;
}

static void job_lifecycle_succeeds(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  ap_job_t *queued = enqueue(context, NULL, 0);
  assert_int_equal(ap_job_state(queued), AP_JOB_QUEUED);
  assert_int_equal(ap_job_attempts(queued), 0);
  assert_int_equal(ap_job_max_attempts(queued), AP_JOB_DEFAULT_MAX_ATTEMPTS);
  assert_string_equal(ap_job_payload_json(queued), "{\"n\":1}");
  assert_null(ap_job_claim_token(queued));
  const char *id = ap_job_id(queued);
  assert_true(ap_id_is_valid(id));

  ap_job_watch_t *watch = NULL;
  assert_int_equal(ap_job_watch_open(context, "alice", id, &watch, NULL),
                   AP_OK);
  ap_job_event_t event;
  assert_int_equal(ap_job_watch_next(watch, 0, &event, NULL), AP_OK);
  assert_int_equal(event.state, AP_JOB_QUEUED);

  /* Another kind's claim leaves the job alone. */
  static const char *const other_kinds[] = {"conformance_other"};
  ap_job_t *other = NULL;
  assert_int_equal(
      ap_job_claim(context, "worker-2", 60000, other_kinds, 1, &other, NULL),
      AP_OK);
  assert_null(other);

  ap_job_t *running = claim(context, 60000);
  assert_non_null(running);
  assert_string_equal(ap_job_id(running), id);
  assert_int_equal(ap_job_state(running), AP_JOB_RUNNING);
  assert_int_equal(ap_job_attempts(running), 1);
  assert_string_equal(ap_job_lease_owner(running), "worker-1");
  assert_true(ap_job_lease_expires_at_ms(running) > now_ms());
  const char *token = ap_job_claim_token(running);
  assert_non_null(token);
  assert_null(claim(context, 60000));

  assert_int_equal(ap_job_watch_next(watch, 5000, &event, NULL), AP_OK);
  assert_int_equal(event.state, AP_JOB_RUNNING);
  assert_int_equal(event.attempts, 1);

  int64_t first_expiry = ap_job_lease_expires_at_ms(running);
  sleep_ms(5);
  assert_int_equal(ap_job_heartbeat(context, id, token, 120000, NULL), AP_OK);
  ap_job_t *snapshot = get_job(context, id);
  assert_true(ap_job_lease_expires_at_ms(snapshot) > first_expiry);
  ap_job_free(snapshot);

  assert_int_equal(ap_job_progress(context, id, token, 0.5, "decode", NULL),
                   AP_OK);
  assert_int_equal(ap_job_watch_next(watch, 5000, &event, NULL), AP_OK);
  assert_true(event.fraction == 0.5);
  assert_string_equal(event.stage, "decode");
  snapshot = NULL;
  assert_int_equal(ap_job_get(context, "alice", id, &snapshot, NULL), AP_OK);
  assert_true(ap_job_progress_fraction(snapshot) == 0.5);
  assert_string_equal(ap_job_stage(snapshot), "decode");
  assert_null(ap_job_claim_token(snapshot));
  ap_job_free(snapshot);
  /* Fractions are clamped to 0..1. */
  assert_int_equal(ap_job_progress(context, id, token, 7.0, "encode", NULL),
                   AP_OK);
  snapshot = get_job(context, id);
  assert_true(ap_job_progress_fraction(snapshot) == 1.0);
  ap_job_free(snapshot);

  ap_job_stats_t stats = job_stats(context);
  assert_int_equal(stats.queued, 0);
  assert_int_equal(stats.running, 1);

  assert_int_equal(ap_job_complete(context, id, token, "{\"ok\":true}", NULL),
                   AP_OK);
  snapshot = get_job(context, id);
  assert_int_equal(ap_job_state(snapshot), AP_JOB_SUCCEEDED);
  assert_string_equal(ap_job_result_json(snapshot), "{\"ok\":true}");
  ap_job_free(snapshot);
  ap_error_t error = {0};
  assert_int_equal(ap_job_complete(context, id, token, NULL, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_job_heartbeat(context, id, token, 1000, &error),
                   AP_ERR_LEASE_LOST);

  /* The watch ends with the terminal state. */
  for (;;) {
    assert_int_equal(ap_job_watch_next(watch, 5000, &event, NULL), AP_OK);
    if (event.state != AP_JOB_RUNNING) {
      break;
    }
  }
  assert_int_equal(event.state, AP_JOB_SUCCEEDED);
  assert_int_equal(ap_job_watch_next(watch, 100, &event, &error),
                   AP_ERR_JOB_STATE);
  ap_job_watch_close(watch);

  stats = job_stats(context);
  assert_int_equal(stats.queued, 0);
  assert_int_equal(stats.running, 0);
  ap_job_free(queued);
  ap_job_free(running);
  space_free(space);
}

static void job_idempotency_key_returns_job(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  ap_job_t *first = enqueue(context, "key-1", 0);
  ap_job_t *second = enqueue(context, "key-1", 0);
  ap_job_t *other = enqueue(context, "key-2", 0);
  assert_string_equal(ap_job_id(first), ap_job_id(second));
  assert_string_not_equal(ap_job_id(first), ap_job_id(other));
  assert_string_equal(ap_job_idempotency_key(second), "key-1");
  assert_int_equal(job_stats(context).queued, 2);

  /* The key keeps returning the job once it has finished. */
  ap_job_t *running = claim(context, 60000);
  assert_non_null(running);
  assert_int_equal(ap_job_complete(context, ap_job_id(running),
                                   ap_job_claim_token(running), NULL, NULL),
                   AP_OK);
  ap_job_t *finished = enqueue(context, ap_job_idempotency_key(running), 0);
  assert_string_equal(ap_job_id(finished), ap_job_id(running));
  assert_int_equal(ap_job_state(finished), AP_JOB_SUCCEEDED);
  assert_int_equal(job_stats(context).queued, 1);

  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "Bad Kind";
  ap_error_t error = {0};
  assert_int_equal(ap_job_enqueue(context, &options, NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
  options.kind = NOOP_KIND;
  options.payload_json = "{not json";
  assert_int_equal(ap_job_enqueue(context, &options, NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(job_stats(context).queued, 1);

  ap_job_free(first);
  ap_job_free(second);
  ap_job_free(other);
  ap_job_free(running);
  ap_job_free(finished);
  space_free(space);
}

enum { RACE_KEYS = 40, RACE_THREADS = 2 };

typedef struct enqueue_racer {
  ap_context_t *context;
  pthread_barrier_t *barrier;
  char ids[RACE_KEYS][AP_ID_SIZE];
  int failures;
} enqueue_racer_t;

static void *race_enqueues(void *argument) {
  enqueue_racer_t *racer = argument;
  for (int i = 0; i < RACE_KEYS; i++) {
    char key[32];
    snprintf(key, sizeof key, "race-%d", i);
    ap_job_enqueue_options_t options;
    ap_job_enqueue_options_init(&options);
    options.kind = NOOP_KIND;
    options.idempotency_key = key;
    pthread_barrier_wait(racer->barrier);
    ap_job_t *job = NULL;
    ap_status_t status;
    do {
      status = ap_job_enqueue(racer->context, &options, &job, NULL);
    } while (status == AP_ERR_UNAVAILABLE);
    if (status == AP_OK && job) {
      snprintf(racer->ids[i], AP_ID_SIZE, "%s", ap_job_id(job));
    } else {
      racer->failures++;
    }
    ap_job_free(job);
  }
  return NULL;
}

static void job_idempotency_key_under_race(void **state) {
  (void)state;
  if (backends.mongo_test_server) {
    SKIP_BECAUSE(unique_index_gap);
  }
  space_t *space = space_new(NULL);

  pthread_barrier_t barrier;
  assert_int_equal(pthread_barrier_init(&barrier, NULL, RACE_THREADS), 0);
  enqueue_racer_t *racers = calloc(RACE_THREADS, sizeof *racers);
  assert_non_null(racers);
  pthread_t threads[RACE_THREADS];
  for (int t = 0; t < RACE_THREADS; t++) {
    racers[t].context = space->context;
    racers[t].barrier = &barrier;
    assert_int_equal(
        pthread_create(&threads[t], NULL, race_enqueues, &racers[t]), 0);
  }
  for (int t = 0; t < RACE_THREADS; t++) {
    assert_int_equal(pthread_join(threads[t], NULL), 0);
  }

  /* Both threads enqueued each key at the same moment; both got the one
   * job the key names. */
  for (int t = 0; t < RACE_THREADS; t++) {
    assert_int_equal(racers[t].failures, 0);
  }
  for (int i = 0; i < RACE_KEYS; i++) {
    for (int t = 1; t < RACE_THREADS; t++) {
      assert_string_equal(racers[t].ids[i], racers[0].ids[i]);
    }
  }
  assert_int_equal(job_stats(space->context).queued, RACE_KEYS);
  pthread_barrier_destroy(&barrier);
  free(racers);
  space_free(space);
}

static void job_retries_then_dead(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  ap_job_t *queued = enqueue(context, NULL, 3);
  const char *messages[] = {"first outage", "second outage", "third outage"};
  for (int attempt = 1; attempt <= 3; attempt++) {
    ap_job_t *job = claim(context, 60000);
    assert_non_null(job);
    assert_int_equal(ap_job_attempts(job), attempt);
    assert_int_equal(ap_job_fail(context, ap_job_id(job),
                                 ap_job_claim_token(job), AP_ERR_UNAVAILABLE,
                                 messages[attempt - 1], 1, NULL),
                     AP_OK);
    ap_job_t *after = get_job(context, ap_job_id(job));
    assert_int_equal(ap_job_state(after),
                     attempt < 3 ? AP_JOB_QUEUED : AP_JOB_DEAD);
    assert_int_equal(ap_job_error_code(after), AP_ERR_UNAVAILABLE);
    assert_string_equal(ap_job_error_message(after), messages[attempt - 1]);
    ap_job_free(after);
    /* A report with the used token changes nothing. */
    ap_error_t error = {0};
    assert_int_equal(ap_job_complete(context, ap_job_id(job),
                                     ap_job_claim_token(job), NULL, &error),
                     AP_ERR_LEASE_LOST);
    ap_job_free(job);
  }
  assert_null(claim(context, 1000));
  ap_job_t *job = get_job(context, ap_job_id(queued));
  assert_int_equal(ap_job_state(job), AP_JOB_DEAD);
  assert_int_equal(ap_job_attempts(job), 3);
  ap_job_free(job);
  ap_job_stats_t stats = job_stats(context);
  assert_int_equal(stats.dead, 1);
  assert_int_equal(stats.queued, 0);

  /* A non-retryable error fails the job at once, retryable or not. */
  ap_job_t *second = enqueue(context, NULL, 3);
  ap_job_t *running = claim(context, 60000);
  assert_non_null(running);
  assert_string_equal(ap_job_id(running), ap_job_id(second));
  assert_int_equal(ap_job_fail(context, ap_job_id(running),
                               ap_job_claim_token(running), AP_ERR_EMPTY_INPUT,
                               "input is empty", 1, NULL),
                   AP_OK);
  assert_int_equal(job_state(context, ap_job_id(running)), AP_JOB_FAILED);
  ap_job_free(running);

  /* So does a retryable error reported as final. */
  ap_job_t *third = enqueue(context, NULL, 3);
  running = claim(context, 60000);
  assert_non_null(running);
  assert_int_equal(ap_job_fail(context, ap_job_id(running),
                               ap_job_claim_token(running), AP_ERR_UNAVAILABLE,
                               "gave up", 0, NULL),
                   AP_OK);
  assert_int_equal(job_state(context, ap_job_id(running)), AP_JOB_FAILED);
  assert_null(claim(context, 1000));
  stats = job_stats(context);
  assert_int_equal(stats.failed, 2);
  assert_int_equal(stats.dead, 1);
  ap_job_free(running);
  ap_job_free(third);
  ap_job_free(second);
  ap_job_free(queued);
  space_free(space);
}

static void job_retry_waits_for_backoff(void **state) {
  (void)state;
  static const char *const keys[] = {"jobs.retry_base", "1h", "jobs.retry_max",
                                     "1h", NULL};
  space_t *space = space_new(keys);
  ap_context_t *context = space->context;
  ap_job_t *queued = enqueue(context, NULL, 3);
  ap_job_t *running = claim(context, 60000);
  assert_non_null(running);
  int64_t before = now_ms();
  assert_int_equal(ap_job_fail(context, ap_job_id(running),
                               ap_job_claim_token(running), AP_ERR_UNAVAILABLE,
                               "outage", 1, NULL),
                   AP_OK);
  ap_job_t *job = get_job(context, ap_job_id(queued));
  assert_int_equal(ap_job_state(job), AP_JOB_QUEUED);
  /* The delay is drawn from [0, 1 h]. */
  assert_true(ap_job_due_at_ms(job) >= before);
  assert_true(ap_job_due_at_ms(job) <= now_ms() + 3600 * 1000);
  int due_later = ap_job_due_at_ms(job) > now_ms() + 1000;
  ap_job_free(job);
  if (due_later) {
    assert_null(claim(context, 1000));
  }
  ap_job_free(running);
  ap_job_free(queued);
  space_free(space);
}

static void job_cancel_stops_job(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  ap_job_t *first = enqueue(context, "first", 0);
  ap_job_t *second = enqueue(context, "second", 0);
  ap_job_t *running = claim(context, 60000);
  assert_non_null(running);
  /* Both were enqueued in the same millisecond, so either may be the
   * oldest. */
  ap_job_t *queued =
      strcmp(ap_job_id(running), ap_job_id(first)) == 0 ? second : first;
  assert_string_not_equal(ap_job_id(running), ap_job_id(queued));

  assert_int_equal(ap_job_cancel(context, "alice", ap_job_id(running), NULL),
                   AP_OK);
  assert_int_equal(job_state(context, ap_job_id(running)), AP_JOB_CANCELLED);
  ap_error_t error = {0};
  assert_int_equal(ap_job_heartbeat(context, ap_job_id(running),
                                    ap_job_claim_token(running), 1000, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_job_progress(context, ap_job_id(running),
                                   ap_job_claim_token(running), 0.5, "x",
                                   &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_job_complete(context, ap_job_id(running),
                                   ap_job_claim_token(running), NULL, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_job_cancel(context, "alice", ap_job_id(running), &error),
                   AP_ERR_JOB_STATE);

  /* A queued job is cancelled before any claim. */
  assert_int_equal(ap_job_cancel(context, "alice", ap_job_id(queued), NULL),
                   AP_OK);
  assert_int_equal(job_state(context, ap_job_id(queued)), AP_JOB_CANCELLED);
  assert_null(claim(context, 1000));
  ap_job_stats_t stats = job_stats(context);
  assert_int_equal(stats.queued, 0);
  assert_int_equal(stats.running, 0);
  ap_job_free(first);
  ap_job_free(second);
  ap_job_free(running);
  space_free(space);
}

/* Waits past a 1 ms lease, so the reaper at the current time finds it
 * expired. */
static void wait_past_lease(void) { sleep_ms(5); }

static void job_reap_requeues_lost_lease(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  ap_job_t *queued = enqueue(context, NULL, 3);

  /* Worker A's lease expires and the reaper re-queues the job. */
  ap_job_t *first = claim(context, 1);
  assert_non_null(first);
  wait_past_lease();
  int64_t count = -1;
  assert_int_equal(ap_job_reap(context, 0, &count, NULL), AP_OK);
  assert_int_equal(count, 1);
  assert_int_equal(job_state(context, ap_job_id(first)), AP_JOB_QUEUED);
  assert_int_equal(ap_job_reap(context, 0, &count, NULL), AP_OK);
  assert_int_equal(count, 0);

  /* Worker B claims it: attempt 2, new token; A's token is dead. */
  ap_job_t *second = claim(context, 60000);
  assert_non_null(second);
  assert_int_equal(ap_job_attempts(second), 2);
  assert_string_not_equal(ap_job_claim_token(first),
                          ap_job_claim_token(second));
  const char *id = ap_job_id(first);
  const char *stale = ap_job_claim_token(first);
  ap_error_t error = {0};
  assert_int_equal(ap_job_heartbeat(context, id, stale, 1000, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_job_progress(context, id, stale, 0.9, "x", &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(ap_job_complete(context, id, stale, NULL, &error),
                   AP_ERR_LEASE_LOST);
  assert_int_equal(
      ap_job_fail(context, id, stale, AP_ERR_IO, "disk", 1, &error),
      AP_ERR_LEASE_LOST);
  assert_int_equal(job_state(context, id), AP_JOB_RUNNING);

  /* B loses its lease too; a claim re-queues it without the reaper. */
  assert_int_equal(
      ap_job_heartbeat(context, id, ap_job_claim_token(second), 1, NULL),
      AP_OK);
  wait_past_lease();
  ap_job_t *third = claim(context, 1);
  assert_non_null(third);
  assert_string_equal(ap_job_id(third), id);
  assert_int_equal(ap_job_attempts(third), 3);

  /* The last attempt is lost as well: the job becomes dead. */
  wait_past_lease();
  assert_int_equal(ap_job_reap(context, 0, &count, NULL), AP_OK);
  assert_int_equal(count, 1);
  ap_job_t *job = get_job(context, id);
  assert_int_equal(ap_job_state(job), AP_JOB_DEAD);
  assert_int_equal(ap_job_attempts(job), 3);
  assert_string_equal(ap_job_error_message(job), "worker lost");
  ap_job_free(job);
  assert_null(claim(context, 1000));

  ap_job_free(queued);
  ap_job_free(first);
  ap_job_free(second);
  ap_job_free(third);
  space_free(space);
}

enum { CLAIM_JOBS = 100 };

typedef struct claim_racer {
  ap_context_t *context;
  char ids[CLAIM_JOBS][AP_ID_SIZE];
  size_t count;
  int failures;
} claim_racer_t;

/* Claims and completes jobs until none is left. */
static void *race_claims(void *argument) {
  claim_racer_t *racer = argument;
  static const char *const kinds[] = {NOOP_KIND};
  for (;;) {
    ap_job_t *job = NULL;
    ap_status_t status =
        ap_job_claim(racer->context, "racer", 60000, kinds, 1, &job, NULL);
    if (status == AP_ERR_UNAVAILABLE) {
      continue; /* lock contention beyond the busy timeout: try again */
    }
    if (status != AP_OK) {
      racer->failures++;
      break;
    }
    if (!job) {
      break;
    }
    if (racer->count < CLAIM_JOBS) {
      snprintf(racer->ids[racer->count], AP_ID_SIZE, "%s", ap_job_id(job));
    }
    racer->count++;
    do {
      status = ap_job_complete(racer->context, ap_job_id(job),
                               ap_job_claim_token(job), NULL, NULL);
    } while (status == AP_ERR_UNAVAILABLE);
    racer->failures += status != AP_OK;
    ap_job_free(job);
  }
  return NULL;
}

static int compare_ids(const void *a, const void *b) { return strcmp(a, b); }

static void job_claims_are_exclusive(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  for (int i = 0; i < CLAIM_JOBS; i++) {
    ap_job_free(enqueue(context, NULL, 0));
  }
  claim_racer_t *racers = calloc(2, sizeof *racers);
  assert_non_null(racers);
  pthread_t threads[2];
  for (int t = 0; t < 2; t++) {
    racers[t].context = context;
    assert_int_equal(pthread_create(&threads[t], NULL, race_claims, &racers[t]),
                     0);
  }
  for (int t = 0; t < 2; t++) {
    assert_int_equal(pthread_join(threads[t], NULL), 0);
    assert_int_equal(racers[t].failures, 0);
  }
  print_message("claims per thread: %zu, %zu\n", racers[0].count,
                racers[1].count);

  /* Every job was claimed once, by one thread or the other. */
  assert_int_equal(racers[0].count + racers[1].count, CLAIM_JOBS);
  char(*ids)[AP_ID_SIZE] = calloc(CLAIM_JOBS, AP_ID_SIZE);
  assert_non_null(ids);
  size_t count = 0;
  for (int t = 0; t < 2; t++) {
    for (size_t i = 0; i < racers[t].count; i++) {
      memcpy(ids[count++], racers[t].ids[i], AP_ID_SIZE);
    }
  }
  qsort(ids, count, AP_ID_SIZE, compare_ids);
  for (size_t i = 1; i < count; i++) {
    assert_string_not_equal(ids[i - 1], ids[i]);
  }
  for (size_t i = 0; i < count; i++) {
    ap_job_t *job = get_job(context, ids[i]);
    assert_int_equal(ap_job_state(job), AP_JOB_SUCCEEDED);
    assert_int_equal(ap_job_attempts(job), 1);
    ap_job_free(job);
  }
  ap_job_stats_t stats = job_stats(context);
  assert_int_equal(stats.queued, 0);
  assert_int_equal(stats.running, 0);
  free(ids);
  free(racers);
  space_free(space);
}

/* ---- The worker ------------------------------------------------------- */

typedef struct worker_run {
  ap_context_t *context;
  ap_worker_t *handle;
  ap_worker_options_t options;
  pthread_t thread;
  ap_status_t status;
  char message[AP_ERROR_MESSAGE_SIZE];
} worker_run_t;

static void *run_worker(void *argument) {
  worker_run_t *run = argument;
  ap_error_t error = {0};
  run->status = ap_worker_run(run->context, &run->options, &error);
  snprintf(run->message, sizeof run->message, "%s", error.message);
  return NULL;
}

static void worker_start(worker_run_t *run, ap_context_t *context,
                         int64_t poll_interval_ms) {
  memset(run, 0, sizeof *run);
  run->context = context;
  assert_int_equal(ap_worker_new(&run->handle, NULL), AP_OK);
  ap_worker_options_init(&run->options);
  run->options.threads = 2;
  run->options.poll_interval_ms = poll_interval_ms;
  run->options.lease_ms = 30000;
  run->options.profile = AP_WORKER_DEFAULT_PROFILE;
  run->options.handle = run->handle;
  assert_int_equal(pthread_create(&run->thread, NULL, run_worker, run), 0);
}

static void worker_stop(worker_run_t *run) {
  ap_worker_request_stop(run->handle);
  assert_int_equal(pthread_join(run->thread, NULL), 0);
  if (run->status != AP_OK) {
    fail_msg("ap_worker_run: %s", run->message);
  }
  ap_worker_free(run->handle);
}

/* Waits until the job is in a terminal state and returns it. */
static ap_job_t *wait_for_job(ap_context_t *context, const char *job_id) {
  for (int64_t waited = 0; waited < JOB_WAIT_MS; waited += 20) {
    ap_job_t *job = get_job(context, job_id);
    if (ap_job_state_is_terminal(ap_job_state(job))) {
      return job;
    }
    ap_job_free(job);
    sleep_ms(20);
  }
  fail_msg("job %s did not end within %d ms", job_id, JOB_WAIT_MS);
  return NULL;
}

typedef struct worker_case {
  const char *path;
  const char *content_type;
  const char *duration; /* as the analysis JSON writes it */
  int sample_rate;
  int channels;
  int64_t dat_pixels; /* of the 256 samples-per-pixel waveform */
} worker_case_t;

/* Checks one processed asset and its stored objects, then deletes it and
 * checks that every object went with it. */
static void check_processed(ap_context_t *context, const worker_case_t *input,
                            const ap_asset_t *uploaded) {
  ap_job_t *job = wait_for_job(context, ap_asset_job_id(uploaded));
  if (ap_job_state(job) != AP_JOB_SUCCEEDED) {
    fail_msg("%s: job ended %s: %s", input->path,
             ap_job_state_name(ap_job_state(job)),
             ap_job_error_message(job) ? ap_job_error_message(job) : "");
  }
  assert_int_equal(ap_job_attempts(job), 1);
  ap_job_free(job);

  ap_asset_t *asset = NULL;
  assert_int_equal(
      ap_asset_get(context, "alice", ap_asset_id(uploaded), &asset, NULL),
      AP_OK);
  assert_int_equal(ap_asset_status(asset), AP_ASSET_READY);
  const char *analysis = ap_asset_analysis_json(asset);
  assert_non_null(analysis);
  assert_non_null(strstr(analysis, "integrated_lufs"));
  assert_non_null(strstr(analysis, input->duration));
  const char *probe = ap_asset_probe_json(asset);
  assert_non_null(probe);
  char expected[64];
  snprintf(expected, sizeof expected, "\"sample_rate\":%d", input->sample_rate);
  assert_non_null(strstr(probe, expected));
  snprintf(expected, sizeof expected, "\"channels\":%d", input->channels);
  assert_non_null(strstr(probe, expected));

  assert_int_equal(ap_asset_rendition_count(asset), 2);
  assert_string_equal(ap_asset_rendition_name(asset, 0), "mp3_128k");
  assert_string_equal(ap_asset_rendition_name(asset, 1), "opus_64k");
  static const char *const magic[] = {NULL, "OggS"};
  for (size_t i = 0; i < ap_asset_rendition_count(asset); i++) {
    const char *key = ap_asset_rendition_key(asset, i);
    assert_non_null(strstr(key, ap_asset_id(asset)));
    bytes_t bytes = read_object(context, key);
    assert_true(bytes.size > 1000);
    assert_int_equal((int64_t)bytes.size,
                     ap_asset_rendition_size_bytes(asset, i));
    if (magic[i]) {
      assert_memory_equal(bytes.data, magic[i], strlen(magic[i]));
    } else {
      /* An MP3 starts with an ID3v2 tag or a frame sync. */
      assert_true(memcmp(bytes.data, "ID3", 3) == 0 ||
                  (bytes.data[0] == 0xff && (bytes.data[1] & 0xe0) == 0xe0));
    }
    free(bytes.data);
  }

  assert_int_equal(ap_asset_waveform_count(asset), 2);
  assert_string_equal(ap_asset_waveform_name(asset, 0), "dat_16bit_256spp");
  assert_string_equal(ap_asset_waveform_name(asset, 1), "json_8bit_20pps");
  bytes_t dat = read_object(context, ap_asset_waveform_key(asset, 0));
  assert_int_equal((int64_t)dat.size, ap_asset_waveform_size_bytes(asset, 0));
  ap_waveform_t *waveform = NULL;
  assert_int_equal(ap_waveform_parse_dat(dat.data, dat.size, &waveform, NULL),
                   AP_OK);
  assert_int_equal(ap_waveform_sample_rate(waveform), input->sample_rate);
  assert_int_equal(ap_waveform_samples_per_pixel(waveform), 256);
  assert_int_equal(ap_waveform_bits(waveform), 16);
  assert_int_equal(ap_waveform_length(waveform), input->dat_pixels);
  ap_waveform_free(waveform);
  free(dat.data);
  bytes_t json = read_object(context, ap_asset_waveform_key(asset, 1));
  assert_int_equal((int64_t)json.size, ap_asset_waveform_size_bytes(asset, 1));
  assert_true(json.size > 2);
  assert_int_equal(json.data[0], '{');
  free(json.data);

  /* Deleting the asset deletes every object it names. */
  const char *keys[5];
  size_t key_count = 0;
  keys[key_count++] = ap_asset_object_key(asset);
  for (size_t i = 0; i < 2; i++) {
    keys[key_count++] = ap_asset_rendition_key(asset, i);
    keys[key_count++] = ap_asset_waveform_key(asset, i);
  }
  assert_int_equal(ap_asset_delete(context, "alice", ap_asset_id(asset), NULL),
                   AP_OK);
  for (size_t i = 0; i < key_count; i++) {
    assert_false(object_exists(context, keys[i]));
  }
  ap_asset_t *deleted = NULL;
  assert_int_equal(
      ap_asset_get(context, "alice", ap_asset_id(asset), &deleted, NULL),
      AP_ERR_NOT_FOUND);
  ap_asset_free(asset);
}

static void worker_processes_cases(void **state) {
  (void)state;
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;
  /* case-03.mp3: 5.000 s of 44.1 kHz mono after the LAME delays are
   * trimmed (220500 samples, 862 pixels of 256). case-08.wav: 4.000 s of
   * 48 kHz stereo 24-bit WAVE_FORMAT_EXTENSIBLE (192000 frames, 750
   * pixels). */
  const worker_case_t inputs[] = {
      {CASES "case-03.mp3", "audio/mpeg", "\"duration\":5", 44100, 1, 862},
      {CASES "case-08.wav", "audio/wav", "\"duration\":4", 48000, 2, 750},
  };
  enum { INPUTS = sizeof inputs / sizeof inputs[0] };
  ap_asset_t *assets[INPUTS];
  for (size_t i = 0; i < INPUTS; i++) {
    bytes_t bytes = read_case(inputs[i].path);
    assets[i] = upload_asset(context, "alice", &bytes, inputs[i].content_type);
    free(bytes.data);
  }

  worker_run_t run;
  worker_start(&run, context, 10);
  for (size_t i = 0; i < INPUTS; i++) {
    ap_job_free(wait_for_job(context, ap_asset_job_id(assets[i])));
  }
  worker_stop(&run);

  for (size_t i = 0; i < INPUTS; i++) {
    print_message("worker: %s\n", inputs[i].path);
    check_processed(context, &inputs[i], assets[i]);
    ap_asset_free(assets[i]);
  }
  ap_job_stats_t stats = job_stats(context);
  assert_int_equal(stats.queued, 0);
  assert_int_equal(stats.running, 0);
  space_free(space);
}

/* ---- Redis ---------------------------------------------------------- */

static const char *const redis_off = "AP_CONFORMANCE_REDIS_URI is empty";

static void redis_watch_receives_progress(void **state) {
  (void)state;
  if (!backends.redis_uri[0]) {
    SKIP_BECAUSE(redis_off);
  }
  /* The record is polled every 10 minutes, so an event that arrives
   * within the short waits below came through Redis. */
  static const char *const keys[] = {"jobs.watch_interval", "10m", NULL};
  space_t *space = space_new(keys);
  ap_context_t *context = space->context;
  ap_job_t *queued = enqueue(context, NULL, 0);
  ap_job_t *running = claim(context, 60000);
  assert_non_null(running);
  const char *id = ap_job_id(running);
  const char *token = ap_job_claim_token(running);
  ap_job_watch_t *watch = NULL;
  assert_int_equal(ap_job_watch_open(context, "alice", id, &watch, NULL),
                   AP_OK);
  ap_job_event_t event;
  assert_int_equal(ap_job_watch_next(watch, 0, &event, NULL), AP_OK);
  assert_int_equal(event.state, AP_JOB_RUNNING);

  /* The subscription may go live after the first publication, so
   * progress is reported until one event arrives. */
  int received = 0;
  for (int attempt = 1; attempt <= 30 && !received; attempt++) {
    assert_int_equal(
        ap_job_progress(context, id, token, attempt / 100.0, "decode", NULL),
        AP_OK);
    ap_error_t error = {0};
    ap_status_t status = ap_job_watch_next(watch, 1000, &event, &error);
    if (status == AP_OK) {
      received = 1;
    } else {
      assert_int_equal(status, AP_ERR_TIMED_OUT);
    }
  }
  assert_true(received);
  assert_int_equal(event.state, AP_JOB_RUNNING);
  assert_true(event.fraction > 0.0);
  assert_string_equal(event.stage, "decode");

  assert_int_equal(ap_job_complete(context, id, token, NULL, NULL), AP_OK);
  for (;;) {
    assert_int_equal(ap_job_watch_next(watch, 30000, &event, NULL), AP_OK);
    if (event.state != AP_JOB_RUNNING) {
      break;
    }
  }
  assert_int_equal(event.state, AP_JOB_SUCCEEDED);
  ap_job_watch_close(watch);
  ap_job_free(running);
  ap_job_free(queued);
  space_free(space);
}

static void redis_wakes_idle_worker(void **state) {
  (void)state;
  if (!backends.redis_uri[0]) {
    SKIP_BECAUSE(redis_off);
  }
  space_t *space = space_new(NULL);
  ap_context_t *context = space->context;

  /* The worker polls every 10 minutes, so it claims within the test's
   * wait only when an enqueue wakes it. It is given time to find the
   * queue empty and go idle first. */
  worker_run_t run;
  worker_start(&run, context, 600000);
  sleep_ms(300);
  bytes_t wav = make_wav(40);
  ap_asset_t *asset = upload_asset(context, "alice", &wav, "audio/wav");

  /* A job enqueued before the worker's subscription goes live is still
   * found: the worker also wakes when its subscription starts. */
  ap_job_state_t state_now = AP_JOB_QUEUED;
  for (int waited = 0; waited < 60000; waited += 500) {
    state_now = job_state(context, ap_asset_job_id(asset));
    if (ap_job_state_is_terminal(state_now)) {
      break;
    }
    sleep_ms(500);
  }
  worker_stop(&run);
  if (state_now != AP_JOB_SUCCEEDED) {
    fail_msg("the job is %s after 60 s: no wake-up reached the idle worker",
             ap_job_state_name(state_now));
  }
  ap_asset_t *done = NULL;
  assert_int_equal(
      ap_asset_get(context, "alice", ap_asset_id(asset), &done, NULL), AP_OK);
  assert_int_equal(ap_asset_status(done), AP_ASSET_READY);
  ap_asset_free(done);
  ap_asset_free(asset);
  free(wav.data);
  space_free(space);
}

/* ---- Main --------------------------------------------------------------- */

static int read_backends(void) {
  copy_environment("AP_CONFORMANCE_METADATA_URI", backends.metadata_uri,
                   sizeof backends.metadata_uri);
  copy_environment("AP_CONFORMANCE_OBJECTS_URI", backends.objects_uri,
                   sizeof backends.objects_uri);
  copy_environment("AP_CONFORMANCE_S3_ACCESS_KEY_ID", backends.s3_access_key_id,
                   sizeof backends.s3_access_key_id);
  copy_environment("AP_CONFORMANCE_S3_SECRET_ACCESS_KEY",
                   backends.s3_secret_access_key,
                   sizeof backends.s3_secret_access_key);
  copy_environment("AP_CONFORMANCE_REDIS_URI", backends.redis_uri,
                   sizeof backends.redis_uri);
  const char *test_server = getenv("AP_CONFORMANCE_MONGO_TEST_SERVER");
  backends.mongo_test_server = test_server && strcmp(test_server, "1") == 0;

  const char *metadata = backends.metadata_uri;
  if (strncmp(metadata, "mongodb://", 10) == 0) {
    backends.metadata = METADATA_MONGO;
  } else if (*metadata == '\0' || strncmp(metadata, "sqlite://", 9) == 0) {
    backends.metadata = METADATA_SQLITE;
  } else {
    fprintf(stderr,
            "AP_CONFORMANCE_METADATA_URI = %s: use sqlite:// or "
            "mongodb://HOST:PORT/?OPTIONS\n",
            metadata);
    return -1;
  }
  const char *objects = backends.objects_uri;
  if (strncmp(objects, "s3://", 5) == 0) {
    backends.objects = OBJECTS_S3;
    char endpoint[512];
    if (uri_parameter(objects, "endpoint", endpoint, sizeof endpoint) != 0 ||
        !backends.s3_access_key_id[0] || !backends.s3_secret_access_key[0]) {
      fprintf(stderr,
              "AP_CONFORMANCE_OBJECTS_URI = %s needs an endpoint parameter "
              "and AP_CONFORMANCE_S3_ACCESS_KEY_ID and "
              "AP_CONFORMANCE_S3_SECRET_ACCESS_KEY\n",
              objects);
      return -1;
    }
  } else if (*objects == '\0' || strncmp(objects, "file://", 7) == 0) {
    backends.objects = OBJECTS_FILE;
  } else {
    fprintf(stderr,
            "AP_CONFORMANCE_OBJECTS_URI = %s: use file:// or s3://BUCKET?...\n",
            objects);
    return -1;
  }

  unsigned char random[6];
  FILE *source = fopen("/dev/urandom", "rb");
  if (!source || fread(random, 1, sizeof random, source) != sizeof random) {
    fprintf(stderr, "cannot read /dev/urandom\n");
    if (source) {
      fclose(source);
    }
    return -1;
  }
  fclose(source);
  for (size_t i = 0; i < sizeof random; i++) {
    snprintf(backends.run_id + 2 * i, 3, "%02x", random[i]);
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(backends.directory, sizeof backends.directory,
           "%s/conformance-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(backends.directory)) {
    fprintf(stderr, "cannot create %s\n", backends.directory);
    return -1;
  }
  printf("conformance run %s: metadata %s, objects %s, redis %s%s\n",
         backends.run_id,
         backends.metadata == METADATA_MONGO ? "mongodb" : "sqlite",
         backends.objects == OBJECTS_S3 ? "s3" : "file",
         backends.redis_uri[0] ? "on" : "off",
         backends.mongo_test_server ? " (Mongo-wire test server)" : "");
  return 0;
}

static void remove_directory(void) {
  char command[700];
  snprintf(command, sizeof command, "rm -rf '%s'", backends.directory);
  if (system(command) != 0) {
    fprintf(stderr, "could not remove %s\n", backends.directory);
  }
}

int main(void) {
  if (read_backends() != 0) {
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(upload_create_issues_distinct_ids),
      cmocka_unit_test(upload_create_async_calls_back),
      cmocka_unit_test(upload_complete_creates_asset_and_job),
      cmocka_unit_test(upload_rejections_delete_object),
      cmocka_unit_test(upload_completion_is_atomic),
      cmocka_unit_test(upload_expired_at_completion),
      cmocka_unit_test(upload_cleanup_expires_old_uploads),
      cmocka_unit_test(other_owner_gets_not_found),
      cmocka_unit_test(asset_list_pages_with_cursors),
      cmocka_unit_test(job_lifecycle_succeeds),
      cmocka_unit_test(job_idempotency_key_returns_job),
      cmocka_unit_test(job_idempotency_key_under_race),
      cmocka_unit_test(job_retries_then_dead),
      cmocka_unit_test(job_retry_waits_for_backoff),
      cmocka_unit_test(job_cancel_stops_job),
      cmocka_unit_test(job_reap_requeues_lost_lease),
      cmocka_unit_test(job_claims_are_exclusive),
      cmocka_unit_test(worker_processes_cases),
      cmocka_unit_test(redis_watch_receives_progress),
      cmocka_unit_test(redis_wakes_idle_worker),
  };
  int failures = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  remove_directory();
  return failures;
}
