/*
 * The post and multipart upload methods of the upload API against a real
 * Ceph RADOS Gateway (the same fixture as test_s3_rgw): a POST over the
 * policy's cap answered 400 EntityTooLarge with nothing stored, a POST
 * within it completed into an asset, a 12 MiB WAV sent in 5 MiB parts
 * with part 2 sent again, and abort and expiry leaving no multipart
 * upload behind.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include <audiopipe/context.h>
#include <audiopipe/meta.h>
#include <audiopipe/upload.h>

#include "context/context_internal.h"
#include "meta/meta_internal.h"
#include "storage/s3_store.h"

#define CASES AP_TEST_DATA_DIR "/cases/"
#define SECRET "rgw-upload-test-secret-0123456789abcdef"

/* 12 MiB of 16-bit stereo PCM at 44.1 kHz: three parts of 5 MiB. */
#define WAV_DATA_BYTES (12 * 1024 * 1024)
#define PART_SIZE (5 * 1024 * 1024)

typedef struct fixture {
  char directory[512];
  ap_config_t *config;
  ap_context_t *context;
  char wav_path[600];
} fixture_t;

/* Reads DIR/s3.env, which the fixture writes, into the environment. */
static int load_environment(void) {
  FILE *file = fopen(AP_TEST_S3_DIR "/s3.env", "r");
  if (!file) {
    return -1;
  }
  char line[512];
  while (fgets(line, sizeof line, file)) {
    line[strcspn(line, "\n")] = '\0';
    char *equals = strchr(line, '=');
    if (!equals) {
      continue;
    }
    *equals = '\0';
    setenv(line, equals + 1, 1);
  }
  fclose(file);
  return 0;
}

static void put_le32(unsigned char *out, uint32_t value) {
  for (int i = 0; i < 4; i++) {
    out[i] = (unsigned char)(value >> (8 * i));
  }
}

/* Writes a WAV of a 440 Hz tone with `data_bytes` of samples. */
static void write_wav(const char *path, uint32_t data_bytes) {
  FILE *file = fopen(path, "wb");
  assert_non_null(file);
  unsigned char header[44] = "RIFF....WAVEfmt ";
  put_le32(header + 4, 36 + data_bytes);
  put_le32(header + 16, 16);
  header[20] = 1; /* PCM */
  header[22] = 2; /* channels */
  put_le32(header + 24, 44100);
  put_le32(header + 28, 44100 * 4);
  header[32] = 4;
  header[34] = 16;
  memcpy(header + 36, "data", 4);
  put_le32(header + 40, data_bytes);
  assert_int_equal(fwrite(header, 1, sizeof header, file), sizeof header);
  int16_t *samples = malloc(data_bytes);
  assert_non_null(samples);
  for (uint32_t i = 0; i < data_bytes / 4; i++) {
    double sample = 0.3 * sin(2.0 * M_PI * 440.0 * i / 44100.0);
    samples[2 * i] = samples[2 * i + 1] = (int16_t)(sample * 32767.0);
  }
  assert_int_equal(fwrite(samples, 1, data_bytes, file), data_bytes);
  free(samples);
  assert_int_equal(fclose(file), 0);
}

static int setup(void **state) {
  if (load_environment() != 0) {
    return -1;
  }
  fixture_t *fixture = calloc(1, sizeof *fixture);
  assert_non_null(fixture);
  const char *tmp = getenv("TMPDIR");
  snprintf(fixture->directory, sizeof fixture->directory, "%s/aprgwXXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(fixture->directory));
  char uri[700];
  assert_int_equal(ap_config_new(&fixture->config, NULL), AP_OK);
  ap_config_t *config = fixture->config;
  snprintf(uri, sizeof uri, "sqlite://%s/meta.db", fixture->directory);
  assert_int_equal(ap_config_set(config, "metadata.uri", uri, NULL), AP_OK);
  snprintf(uri, sizeof uri, "s3://%s?endpoint=%s&region=us-east-1&path_style=1",
           getenv("AP_TEST_S3_BUCKET"), getenv("AP_TEST_S3_ENDPOINT"));
  assert_int_equal(ap_config_set(config, "objects.uri", uri, NULL), AP_OK);
  assert_int_equal(ap_config_set(config, "signing.secret", SECRET, NULL),
                   AP_OK);
  assert_int_equal(
      ap_config_set(config, "public.base_url", "http://127.0.0.1:8080", NULL),
      AP_OK);
  assert_int_equal(ap_config_set(config, "uploads.part_size", "5M", NULL),
                   AP_OK);
  ap_error_t error = {0};
  if (ap_context_open(config, &fixture->context, &error) != AP_OK) {
    fprintf(stderr, "ap_context_open: %s\n", error.message);
    return -1;
  }
  snprintf(fixture->wav_path, sizeof fixture->wav_path, "%s/tone.wav",
           fixture->directory);
  write_wav(fixture->wav_path, WAV_DATA_BYTES);
  *state = fixture;
  return 0;
}

static int teardown(void **state) {
  fixture_t *fixture = *state;
  ap_context_close(fixture->context);
  ap_config_free(fixture->config);
  char command[600];
  snprintf(command, sizeof command, "rm -rf '%s'", fixture->directory);
  if (system(command) != 0) {
    fprintf(stderr, "could not remove %s\n", fixture->directory);
  }
  free(fixture);
  return 0;
}

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *file = fopen(path, "rb");
  assert_non_null(file);
  fseek(file, 0, SEEK_END);
  *size = (size_t)ftell(file);
  fseek(file, 0, SEEK_SET);
  unsigned char *data = malloc(*size);
  assert_non_null(data);
  assert_int_equal(fread(data, 1, *size, file), *size);
  fclose(file);
  return data;
}

static ap_upload_ticket_t *create(fixture_t *fixture, ap_upload_method_t method,
                                  int64_t size, const char *type) {
  ap_upload_request_t request;
  ap_upload_request_init(&request);
  request.owner = "alice";
  request.filename = "take.wav";
  request.size_bytes = size;
  request.content_type = type;
  request.method = method;
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  ap_status_t status =
      ap_upload_create(fixture->context, &request, &ticket, &error);
  if (status != AP_OK) {
    fprintf(stderr, "ap_upload_create: %s\n", error.message);
  }
  assert_int_equal(status, AP_OK);
  return ticket;
}

static int object_exists(fixture_t *fixture, const char *key) {
  ap_object_info_t info;
  return ap_object_store_stat(ap_context_object_store(fixture->context), key,
                              &info, NULL) == AP_OK;
}

/* ---- HTTP ----------------------------------------------------------- */

typedef struct http_result {
  long status;
  char *body;
  size_t size;
  char etag[AP_UPLOAD_ETAG_SIZE];
} http_result_t;

static size_t collect(char *data, size_t size, size_t count, void *user) {
  http_result_t *result = user;
  size_t length = size * count;
  char *grown = realloc(result->body, result->size + length + 1);
  if (!grown) {
    return 0;
  }
  result->body = grown;
  memcpy(result->body + result->size, data, length);
  result->size += length;
  result->body[result->size] = '\0';
  return length;
}

static size_t capture_etag(char *data, size_t size, size_t count, void *user) {
  http_result_t *result = user;
  size_t length = size * count;
  if (length > 5 && strncasecmp(data, "ETag:", 5) == 0) {
    const char *value = data + 5;
    size_t value_length = length - 5;
    while (value_length && *value == ' ') {
      value++;
      value_length--;
    }
    while (value_length && (value[value_length - 1] == '\r' ||
                            value[value_length - 1] == '\n')) {
      value_length--;
    }
    if (value_length < sizeof result->etag) {
      memcpy(result->etag, value, value_length);
      result->etag[value_length] = '\0';
    }
  }
  return length;
}

/* POSTs the ticket's form with `data` as the file field. */
static http_result_t post_form(const ap_upload_ticket_t *ticket,
                               const unsigned char *data, size_t size) {
  http_result_t result = {0};
  CURL *handle = curl_easy_init();
  assert_non_null(handle);
  curl_mime *mime = curl_mime_init(handle);
  for (size_t i = 0; i < ap_upload_ticket_field_count(ticket); i++) {
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, ap_upload_ticket_field_name(ticket, i));
    curl_mime_data(part, ap_upload_ticket_field_value(ticket, i),
                   CURL_ZERO_TERMINATED);
  }
  curl_mimepart *file = curl_mime_addpart(mime);
  curl_mime_name(file, "file");
  curl_mime_filename(file, "take.mp3");
  curl_mime_data(file, (const char *)data, size);
  struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
  curl_easy_setopt(handle, CURLOPT_URL, ap_upload_ticket_url(ticket));
  curl_easy_setopt(handle, CURLOPT_MIMEPOST, mime);
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &result);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT, 60L);
  assert_int_equal(curl_easy_perform(handle), CURLE_OK);
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &result.status);
  curl_slist_free_all(headers);
  curl_mime_free(mime);
  curl_easy_cleanup(handle);
  return result;
}

/* PUTs `size` bytes to the presigned URL of part `number`. */
static http_result_t put_part(fixture_t *fixture, const char *upload_id,
                              int number, const unsigned char *data,
                              size_t size) {
  ap_upload_ticket_t *part = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_part_presign(fixture->context, "alice", upload_id,
                                          number, &part, &error),
                   AP_OK);
  assert_string_equal(ap_upload_ticket_method(part), "PUT");
  http_result_t result = {0};
  CURL *handle = curl_easy_init();
  assert_non_null(handle);
  struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
  curl_easy_setopt(handle, CURLOPT_URL, ap_upload_ticket_url(part));
  curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "PUT");
  curl_easy_setopt(handle, CURLOPT_POSTFIELDS, (const char *)data);
  curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &result);
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, capture_etag);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &result);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT, 60L);
  assert_int_equal(curl_easy_perform(handle), CURLE_OK);
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &result.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(handle);
  ap_upload_ticket_free(part);
  return result;
}

/* Reads the store's multipart upload id of an upload, from its row. */
static char *storage_upload_id(fixture_t *fixture, const char *upload_id,
                               char *key, size_t key_size) {
  ap_meta_store_t *meta = ap_context_meta_store(fixture->context);
  ap_upload_record_t record;
  assert_int_equal(
      meta->backend->upload_get(meta->state, "alice", upload_id, &record, NULL),
      AP_OK);
  assert_non_null(record.storage_upload_id);
  char *id = strdup(record.storage_upload_id);
  snprintf(key, key_size, "%s", record.object_key);
  ap_upload_record_clear(&record);
  return id;
}

/* Returns the status of ListParts on the store's multipart upload. */
static ap_status_t list_store_parts(fixture_t *fixture, const char *key,
                                    const char *id) {
  ap_s3_part_t *parts = NULL;
  size_t count = 0;
  ap_status_t status = ap_s3_multipart_list_parts(
      ap_context_object_store(fixture->context), key, id, &parts, &count, NULL);
  free(parts);
  return status;
}

/* ---- Tests ---------------------------------------------------------- */

static void post_over_cap_entity_too_large(void **state) {
  fixture_t *fixture = *state;
  size_t size = 0;
  unsigned char *data = read_file(CASES "case-03.mp3", &size);
  /* Declared 1000 bytes short: the policy caps the body there. */
  ap_upload_ticket_t *ticket = create(fixture, AP_UPLOAD_METHOD_POST,
                                      (int64_t)size - 1000, "audio/mpeg");
  http_result_t result = post_form(ticket, data, size);
  assert_int_equal(result.status, 400);
  assert_non_null(result.body);
  assert_non_null(strstr(result.body, "EntityTooLarge"));
  assert_false(object_exists(fixture, ap_upload_ticket_object_key(ticket)));
  free(result.body);
  free(data);
  ap_upload_ticket_free(ticket);
}

static void post_within_cap_completes(void **state) {
  fixture_t *fixture = *state;
  size_t size = 0;
  unsigned char *data = read_file(CASES "case-03.mp3", &size);
  ap_upload_ticket_t *ticket =
      create(fixture, AP_UPLOAD_METHOD_POST, (int64_t)size, "audio/mpeg");
  assert_string_equal(ap_upload_ticket_method(ticket), "POST");
  http_result_t result = post_form(ticket, data, size);
  assert_true(result.status == 204 || result.status == 201 ||
              result.status == 200);
  free(result.body);

  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_complete(fixture->context, "alice",
                                      ap_upload_ticket_id(ticket), &asset,
                                      &error),
                   AP_OK);
  assert_int_equal(ap_asset_size_bytes(asset), (int64_t)size);
  assert_string_equal(ap_asset_content_type(asset), "audio/mpeg");
  ap_asset_free(asset);
  free(data);
  ap_upload_ticket_free(ticket);
}

static void multipart_wav_resumes(void **state) {
  fixture_t *fixture = *state;
  size_t size = 0;
  unsigned char *data = read_file(fixture->wav_path, &size);
  ap_upload_ticket_t *ticket =
      create(fixture, AP_UPLOAD_METHOD_MULTIPART, (int64_t)size, "audio/wav");
  assert_int_equal(ap_upload_ticket_part_count(ticket), 3);
  assert_int_equal(ap_upload_ticket_part_size_bytes(ticket), PART_SIZE);
  const char *id = ap_upload_ticket_id(ticket);
  ap_error_t error = {0};

  /* Part 2's first PUT drops after half its bytes, which the gateway
   * stores as a short part. */
  http_result_t results[3];
  results[0] = put_part(fixture, id, 1, data, PART_SIZE);
  results[1] = put_part(fixture, id, 2, data + PART_SIZE, PART_SIZE / 2);
  results[2] =
      put_part(fixture, id, 3, data + 2 * PART_SIZE, size - 2 * PART_SIZE);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(results[i].status, 200);
    assert_true(results[i].etag[0] != '\0');
    free(results[i].body);
  }
  ap_upload_part_t *parts = NULL;
  size_t count = 0;
  assert_int_equal(ap_upload_parts_list(fixture->context, "alice", id, &parts,
                                        &count, &error),
                   AP_OK);
  assert_int_equal(count, 3);
  assert_int_equal(parts[1].number, 2);
  assert_int_equal(parts[1].size_bytes, PART_SIZE / 2);
  ap_free(parts);

  ap_upload_part_t sent[3];
  for (int i = 0; i < 3; i++) {
    sent[i].number = i + 1;
    sent[i].size_bytes = -1;
    snprintf(sent[i].etag, sizeof sent[i].etag, "%s", results[i].etag);
  }
  assert_int_equal(ap_upload_multipart_complete(fixture->context, "alice", id,
                                                sent, 3, NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "part 2"));
  assert_false(object_exists(fixture, ap_upload_ticket_object_key(ticket)));

  /* The client resumes: part 2 again, whole. */
  http_result_t again = put_part(fixture, id, 2, data + PART_SIZE, PART_SIZE);
  assert_int_equal(again.status, 200);
  free(again.body);
  snprintf(sent[1].etag, sizeof sent[1].etag, "%s", again.etag);
  assert_int_equal(ap_upload_parts_list(fixture->context, "alice", id, &parts,
                                        &count, &error),
                   AP_OK);
  assert_int_equal(count, 3);
  assert_int_equal(parts[1].size_bytes, PART_SIZE);
  ap_free(parts);

  ap_asset_t *asset = NULL;
  assert_int_equal(ap_upload_multipart_complete(fixture->context, "alice", id,
                                                sent, 3, &asset, &error),
                   AP_OK);
  assert_int_equal(ap_asset_size_bytes(asset), (int64_t)size);
  assert_non_null(strstr(ap_asset_probe_json(asset), "\"channels\":2"));
  assert_non_null(strstr(ap_asset_probe_json(asset), "44100"));
  ap_asset_free(asset);
  ap_object_info_t info;
  assert_int_equal(
      ap_object_store_stat(ap_context_object_store(fixture->context),
                           ap_upload_ticket_object_key(ticket), &info, NULL),
      AP_OK);
  assert_int_equal(info.size, (int64_t)size);
  free(data);
  ap_upload_ticket_free(ticket);
}

static void multipart_abort_leaves_nothing(void **state) {
  fixture_t *fixture = *state;
  size_t size = 0;
  unsigned char *data = read_file(fixture->wav_path, &size);
  ap_upload_ticket_t *ticket =
      create(fixture, AP_UPLOAD_METHOD_MULTIPART, (int64_t)size, "audio/wav");
  const char *id = ap_upload_ticket_id(ticket);
  http_result_t result = put_part(fixture, id, 1, data, PART_SIZE);
  assert_int_equal(result.status, 200);
  free(result.body);
  char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  char *store_id = storage_upload_id(fixture, id, key, sizeof key);
  assert_int_equal(list_store_parts(fixture, key, store_id), AP_OK);

  ap_error_t error = {0};
  assert_int_equal(ap_upload_abort(fixture->context, "alice", id, &error),
                   AP_OK);
  assert_int_equal(list_store_parts(fixture, key, store_id), AP_ERR_NOT_FOUND);
  assert_false(object_exists(fixture, key));
  ap_upload_state_t upload_state = AP_UPLOAD_PENDING;
  assert_int_equal(ap_upload_get_state(fixture->context, "alice", id,
                                       &upload_state, NULL, NULL),
                   AP_OK);
  assert_int_equal(upload_state, AP_UPLOAD_ABORTED);
  free(store_id);
  free(data);
  ap_upload_ticket_free(ticket);
}

static void expired_multipart_aborted(void **state) {
  fixture_t *fixture = *state;
  ap_upload_ticket_t *ticket =
      create(fixture, AP_UPLOAD_METHOD_MULTIPART, 2 * PART_SIZE, "audio/wav");
  const char *id = ap_upload_ticket_id(ticket);
  char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  char *store_id = storage_upload_id(fixture, id, key, sizeof key);
  assert_int_equal(list_store_parts(fixture, key, store_id), AP_OK);

  int64_t count = 0;
  int64_t later = ap_upload_ticket_expires_at_ms(ticket) + 1000;
  assert_int_equal(
      ap_upload_cleanup_expired(fixture->context, later, &count, NULL), AP_OK);
  assert_true(count >= 1);
  assert_int_equal(list_store_parts(fixture, key, store_id), AP_ERR_NOT_FOUND);
  free(store_id);
  ap_upload_ticket_free(ticket);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(post_over_cap_entity_too_large),
      cmocka_unit_test(post_within_cap_completes),
      cmocka_unit_test(multipart_wav_resumes),
      cmocka_unit_test(multipart_abort_leaves_nothing),
      cmocka_unit_test(expired_multipart_aborted),
  };
  int failed = cmocka_run_group_tests(tests, setup, teardown);
  curl_global_cleanup();
  return failed;
}
