/*
 * Tests of the post and multipart upload methods on the file store and
 * SQLite: method rules, the signed POST form (within the cap, past it,
 * tampered), and multipart uploads of a 12 MiB WAV in 5 MiB parts with a
 * dropped part sent again, listing, completion, abort and expiry.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include <audiopipe/meta.h>
#include <audiopipe/storage.h>
#include <audiopipe/upload.h>

#include "storage/object_store.h"
#include "test_meta_fixture.h"

#define CASES AP_TEST_DATA_DIR "/cases/"

/* 12 MiB of 16-bit stereo PCM at 44.1 kHz: three parts of 5 MiB. */
#define WAV_DATA_BYTES (12 * 1024 * 1024)
#define PART_SIZE (5 * 1024 * 1024)

typedef struct test_state {
  meta_fixture_t fixture;
  char wav_path[700];
} test_state_t;

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
  test_state_t *test = calloc(1, sizeof *test);
  assert_non_null(test);
  assert_int_equal(meta_fixture_prepare(&test->fixture), 0);
  assert_int_equal(
      ap_config_set(test->fixture.config, "uploads.part_size", "5M", NULL),
      AP_OK);
  assert_int_equal(meta_fixture_open(&test->fixture), 0);
  snprintf(test->wav_path, sizeof test->wav_path, "%s/tone.wav",
           test->fixture.directory);
  write_wav(test->wav_path, WAV_DATA_BYTES);
  *state = test;
  return 0;
}

static int teardown(void **state) {
  test_state_t *test = *state;
  meta_fixture_close(&test->fixture);
  free(test);
  return 0;
}

static int64_t file_size(const char *path) {
  FILE *file = fopen(path, "rb");
  assert_non_null(file);
  fseek(file, 0, SEEK_END);
  int64_t size = ftell(file);
  fclose(file);
  return size;
}

/* Reads `length` bytes at `offset` of `path` into a new buffer. */
static unsigned char *read_range(const char *path, int64_t offset,
                                 int64_t length) {
  FILE *file = fopen(path, "rb");
  assert_non_null(file);
  unsigned char *data = malloc((size_t)length);
  assert_non_null(data);
  assert_int_equal(fseek(file, (long)offset, SEEK_SET), 0);
  assert_int_equal(fread(data, 1, (size_t)length, file), (size_t)length);
  fclose(file);
  return data;
}

static void md5_etag(const unsigned char *data, size_t size, char *etag) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  assert_int_equal(EVP_Digest(data, size, digest, &length, EVP_md5(), NULL), 1);
  etag[0] = '"';
  for (unsigned int i = 0; i < length; i++) {
    snprintf(etag + 1 + 2 * i, 3, "%02x", digest[i]);
  }
  etag[1 + 2 * length] = '"';
  etag[2 + 2 * length] = '\0';
}

static ap_status_t create_upload(ap_context_t *context, const char *owner,
                                 ap_upload_method_t method, int64_t size,
                                 ap_upload_ticket_t **ticket,
                                 ap_error_t *error) {
  ap_upload_request_t request;
  ap_upload_request_init(&request);
  request.owner = owner;
  request.filename = "tone.wav";
  request.size_bytes = size;
  request.content_type = "audio/wav";
  request.method = method;
  return ap_upload_create(context, &request, ticket, error);
}

/* Extracts the object key from a file store URL ".../v1/objects/KEY?...". */
static void key_of_url(const char *url, char *key, size_t size) {
  const char *start = strstr(url, "/v1/objects/");
  assert_non_null(start);
  start += strlen("/v1/objects/");
  size_t length = strcspn(start, "?");
  assert_true(length < size);
  memcpy(key, start, length);
  key[length] = '\0';
}

/* Looks a ticket header up by name. */
static const char *ticket_header(const ap_upload_ticket_t *ticket,
                                 const char *name) {
  for (size_t i = 0; i < ap_upload_ticket_header_count(ticket); i++) {
    if (strcmp(ap_upload_ticket_header_name(ticket, i), name) == 0) {
      return ap_upload_ticket_header_value(ticket, i);
    }
  }
  return NULL;
}

static const char *ticket_field(const ap_upload_ticket_t *ticket,
                                const char *name) {
  for (size_t i = 0; i < ap_upload_ticket_field_count(ticket); i++) {
    if (strcmp(ap_upload_ticket_field_name(ticket, i), name) == 0) {
      return ap_upload_ticket_field_value(ticket, i);
    }
  }
  return NULL;
}

/* PUTs `length` bytes at `offset` of the file to part `number`, as a
 * client of the presigned URL would, and stores the part's ETag. With
 * `drop` set, the connection "drops" after half the bytes and nothing
 * is committed. */
static void put_part(test_state_t *test, const char *upload_id, int number,
                     int64_t offset, int64_t length, int drop, char *etag) {
  ap_context_t *context = test->fixture.context;
  ap_upload_ticket_t *part = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_part_presign(context, "alice", upload_id, number,
                                          &part, &error),
                   AP_OK);
  assert_int_equal(ap_upload_ticket_part_number(part), number);
  assert_string_equal(ap_upload_ticket_method(part), "PUT");
  char expected_length[32];
  snprintf(expected_length, sizeof expected_length, "%lld", (long long)length);
  assert_string_equal(ticket_header(part, "Content-Length"), expected_length);
  char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  key_of_url(ap_upload_ticket_url(part), key, sizeof key);
  ap_upload_ticket_free(part);

  unsigned char *data = read_range(test->wav_path, offset, length);
  ap_object_upload_t *upload = NULL;
  assert_int_equal(ap_object_upload_begin(ap_context_object_store(context), key,
                                          "application/octet-stream", length,
                                          &upload, &error),
                   AP_OK);
  size_t sent = drop ? (size_t)length / 2 : (size_t)length;
  assert_int_equal(ap_object_upload_write(upload, data, sent, &error), AP_OK);
  if (!drop) {
    assert_int_equal(ap_object_upload_finish(upload, &error), AP_OK);
    md5_etag(data, (size_t)length, etag);
  }
  ap_object_upload_close(upload);
  free(data);
}

static int count_callback(void *user_data, const char *key,
                          const ap_object_info_t *info) {
  (void)key;
  (void)info;
  (*(int *)user_data)++;
  return 0;
}

/* Counts the objects whose key starts with `prefix`. */
static int objects_under(ap_context_t *context, const char *prefix) {
  int count = 0;
  assert_int_equal(ap_object_store_list(ap_context_object_store(context),
                                        prefix, count_callback, &count, NULL),
                   AP_OK);
  return count;
}

static int object_exists(ap_context_t *context, const char *key) {
  ap_object_info_t info;
  return ap_object_store_stat(ap_context_object_store(context), key, &info,
                              NULL) == AP_OK;
}

/* ---- Method rules --------------------------------------------------- */

static void method_names_parse(void **state) {
  (void)state;
  ap_upload_method_t method = AP_UPLOAD_METHOD_PUT;
  assert_int_equal(ap_upload_method_parse("multipart", &method, NULL), AP_OK);
  assert_int_equal(method, AP_UPLOAD_METHOD_MULTIPART);
  assert_int_equal(ap_upload_method_parse("post", &method, NULL), AP_OK);
  assert_int_equal(method, AP_UPLOAD_METHOD_POST);
  assert_string_equal(ap_upload_method_name(AP_UPLOAD_METHOD_PUT), "put");
  ap_error_t error = {0};
  assert_int_equal(ap_upload_method_parse("chunked", &method, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "method:"));
}

static void put_over_threshold_rejected(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  int64_t over = 64LL * 1024 * 1024 + 1;
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_PUT, over,
                                 &ticket, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "method:"));
  assert_non_null(strstr(error.message, "multipart"));
  assert_null(ticket);
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_POST, over,
                                 &ticket, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_MULTIPART,
                                 over, &ticket, &error),
                   AP_OK);
  assert_int_equal(ap_upload_ticket_part_count(ticket), 13);
  ap_upload_ticket_free(ticket);
}

static void multipart_below_minimum_rejected(void **state) {
  test_state_t *test = *state;
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  assert_int_equal(create_upload(test->fixture.context, "alice",
                                 AP_UPLOAD_METHOD_MULTIPART, 1024 * 1024,
                                 &ticket, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "method:"));
  assert_null(ticket);
}

static void old_request_struct_means_put(void **state) {
  test_state_t *test = *state;
  ap_upload_request_t request;
  ap_upload_request_init(&request);
  request.struct_size = offsetof(ap_upload_request_t, method);
  request.owner = "alice";
  request.filename = "tone.wav";
  request.size_bytes = 1000;
  request.content_type = "audio/wav";
  request.method = (ap_upload_method_t)77; /* beyond the caller's struct */
  ap_upload_ticket_t *ticket = NULL;
  assert_int_equal(
      ap_upload_create(test->fixture.context, &request, &ticket, NULL), AP_OK);
  assert_int_equal(ap_upload_ticket_upload_method(ticket),
                   AP_UPLOAD_METHOD_PUT);
  assert_string_equal(ap_upload_ticket_method(ticket), "PUT");
  ap_upload_ticket_free(ticket);
}

static void init_symbol_fills_first_version(void **state) {
  (void)state;
  ap_upload_request_t request;
  memset(&request, 0xab, sizeof request);
  request.method = (ap_upload_method_t)77;
  /* The parenthesised name calls the exported function, as an old binary
   * or a binding does, not the header's macro. */
  (ap_upload_request_init)(&request);
  assert_int_equal(request.struct_size, offsetof(ap_upload_request_t, method));
  assert_null(request.owner);
  assert_int_equal(request.size_bytes, 0);
  assert_int_equal((int)request.method, 77);

  ap_upload_request_init(&request);
  assert_int_equal(request.struct_size, sizeof request);
  assert_int_equal(request.method, AP_UPLOAD_METHOD_PUT);
}

/* ---- POST form ------------------------------------------------------ */

static void fields_of(const ap_upload_ticket_t *ticket,
                      ap_upload_form_fields_t *fields) {
  ap_upload_form_fields_init(fields);
  fields->key = ticket_field(ticket, "key");
  fields->content_type = ticket_field(ticket, "Content-Type");
  fields->policy = ticket_field(ticket, "policy");
  fields->signature = ticket_field(ticket, "x-ap-signature");
}

static void post_form_completes(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  const char *path = CASES "case-03.mp3";
  int64_t size = file_size(path);
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_POST, size,
                                 &ticket, &error),
                   AP_OK);
  assert_string_equal(ap_upload_ticket_method(ticket), "POST");
  assert_string_equal(ap_upload_ticket_url(ticket),
                      "http://127.0.0.1:8080/v1/objects");
  assert_int_equal(ap_upload_ticket_field_count(ticket), 4);
  assert_string_equal(ticket_field(ticket, "key"),
                      ap_upload_ticket_object_key(ticket));
  assert_string_equal(ticket_field(ticket, "Content-Type"), "audio/wav");

  char *json = NULL;
  assert_int_equal(ap_upload_ticket_to_json(ticket, &json, NULL), AP_OK);
  assert_non_null(strstr(json, "\"upload_method\":\"post\""));
  assert_non_null(strstr(json, "\"fields\":{"));
  ap_free(json);

  ap_upload_form_fields_t fields;
  fields_of(ticket, &fields);
  ap_upload_form_t *form = NULL;
  assert_int_equal(ap_upload_form_begin(context, &fields, &form, &error),
                   AP_OK);
  unsigned char *data = read_range(path, 0, size);
  assert_int_equal(ap_upload_form_write(form, data, (size_t)size, &error),
                   AP_OK);
  free(data);
  assert_int_equal(ap_upload_form_finish(form, &error), AP_OK);
  ap_upload_form_close(form);

  ap_asset_t *asset = NULL;
  assert_int_equal(ap_upload_complete(context, "alice",
                                      ap_upload_ticket_id(ticket), &asset,
                                      &error),
                   AP_OK);
  assert_int_equal(ap_asset_size_bytes(asset), size);
  ap_asset_free(asset);
  ap_upload_ticket_free(ticket);
}

static void post_form_over_cap_stores_nothing(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  ap_upload_ticket_t *ticket = NULL;
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_POST, 1000,
                                 &ticket, NULL),
                   AP_OK);
  ap_upload_form_fields_t fields;
  fields_of(ticket, &fields);
  ap_upload_form_t *form = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_form_begin(context, &fields, &form, &error),
                   AP_OK);
  unsigned char data[600] = {0};
  assert_int_equal(ap_upload_form_write(form, data, sizeof data, &error),
                   AP_OK);
  assert_int_equal(ap_upload_form_write(form, data, sizeof data, &error),
                   AP_ERR_UPLOAD_TOO_LARGE);
  assert_non_null(strstr(error.message, "EntityTooLarge"));
  assert_int_equal(ap_upload_form_finish(form, &error),
                   AP_ERR_UPLOAD_TOO_LARGE);
  ap_upload_form_close(form);
  assert_false(object_exists(context, ap_upload_ticket_object_key(ticket)));
  ap_upload_ticket_free(ticket);
}

static void post_form_tampering_rejected(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  ap_upload_ticket_t *ticket = NULL;
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_POST, 1000,
                                 &ticket, NULL),
                   AP_OK);
  ap_upload_form_fields_t fields;
  ap_upload_form_t *form = NULL;
  ap_error_t error = {0};

  fields_of(ticket, &fields);
  fields.content_type = "audio/mpeg";
  assert_int_equal(ap_upload_form_begin(context, &fields, &form, &error),
                   AP_ERR_SIGNATURE);
  assert_non_null(strstr(error.message, "Content-Type"));

  fields_of(ticket, &fields);
  fields.key = "uploads/someone/else";
  assert_int_equal(ap_upload_form_begin(context, &fields, &form, &error),
                   AP_ERR_SIGNATURE);

  fields_of(ticket, &fields);
  char signature[80];
  snprintf(signature, sizeof signature, "%s", fields.signature);
  signature[0] = signature[0] == '0' ? '1' : '0';
  fields.signature = signature;
  assert_int_equal(ap_upload_form_begin(context, &fields, &form, &error),
                   AP_ERR_SIGNATURE);

  fields_of(ticket, &fields);
  fields.policy = NULL;
  assert_int_equal(ap_upload_form_begin(context, &fields, &form, &error),
                   AP_ERR_SIGNATURE);
  assert_null(form);
  ap_upload_ticket_free(ticket);
}

/* ---- Multipart ------------------------------------------------------ */

static void multipart_resumes_and_completes(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  int64_t size = file_size(test->wav_path);
  ap_upload_ticket_t *ticket = NULL;
  ap_error_t error = {0};
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_MULTIPART,
                                 size, &ticket, &error),
                   AP_OK);
  assert_int_equal(ap_upload_ticket_part_size_bytes(ticket), PART_SIZE);
  assert_int_equal(ap_upload_ticket_part_count(ticket), 3);
  char *json = NULL;
  assert_int_equal(ap_upload_ticket_to_json(ticket, &json, NULL), AP_OK);
  assert_non_null(strstr(json, "\"part_count\":3"));
  assert_null(strstr(json, "\"url\""));
  ap_free(json);
  const char *id = ap_upload_ticket_id(ticket);

  /* Part 2's connection drops; the client lists, then sends it again. */
  char etags[3][AP_UPLOAD_ETAG_SIZE] = {{0}};
  put_part(test, id, 1, 0, PART_SIZE, 0, etags[0]);
  put_part(test, id, 2, PART_SIZE, PART_SIZE, 1, etags[1]);
  put_part(test, id, 3, 2 * PART_SIZE, size - 2 * PART_SIZE, 0, etags[2]);
  ap_upload_part_t *parts = NULL;
  size_t count = 0;
  assert_int_equal(
      ap_upload_parts_list(context, "alice", id, &parts, &count, &error),
      AP_OK);
  assert_int_equal(count, 2);
  assert_int_equal(parts[0].number, 1);
  assert_string_equal(parts[0].etag, etags[0]);
  assert_int_equal(parts[0].size_bytes, PART_SIZE);
  assert_int_equal(parts[1].number, 3);
  ap_free(parts);

  ap_upload_part_t sent[3];
  for (int i = 0; i < 3; i++) {
    sent[i].number = i + 1;
    sent[i].size_bytes = -1;
  }
  snprintf(sent[0].etag, sizeof sent[0].etag, "%s", etags[0]);
  snprintf(sent[1].etag, sizeof sent[1].etag, "\"00\"");
  snprintf(sent[2].etag, sizeof sent[2].etag, "%s", etags[2]);
  assert_int_equal(
      ap_upload_multipart_complete(context, "alice", id, sent, 3, NULL, &error),
      AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "parts:"));
  assert_non_null(strstr(error.message, "part 2"));

  put_part(test, id, 2, PART_SIZE, PART_SIZE, 0, etags[1]);
  assert_int_equal(
      ap_upload_parts_list(context, "alice", id, &parts, &count, &error),
      AP_OK);
  assert_int_equal(count, 3);
  assert_string_equal(parts[1].etag, etags[1]);
  assert_int_equal(parts[2].size_bytes, size - 2 * PART_SIZE);
  ap_free(parts);

  /* A plain completion of a multipart upload names the missing parts. */
  assert_int_equal(ap_upload_complete(context, "alice", id, NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "parts:"));

  /* A wrong ETag of the last part is found while assembling: nothing
   * appears and the parts stay for another try. */
  ap_upload_part_t wrong[3] = {sent[0], sent[1], sent[2]};
  snprintf(wrong[1].etag, sizeof wrong[1].etag, "%s", etags[1]);
  snprintf(wrong[2].etag, sizeof wrong[2].etag, "\"%032d\"", 0);
  assert_int_equal(ap_upload_multipart_complete(context, "alice", id, wrong, 3,
                                                NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "does not match"));
  assert_non_null(strstr(error.message, "part 3"));
  assert_false(object_exists(context, ap_upload_ticket_object_key(ticket)));
  assert_int_equal(
      ap_upload_parts_list(context, "alice", id, &parts, &count, &error),
      AP_OK);
  assert_int_equal(count, 3);
  ap_free(parts);

  /* Wrong order is rejected before anything is assembled. */
  ap_upload_part_t swapped[3] = {sent[1], sent[0], sent[2]};
  snprintf(sent[1].etag, sizeof sent[1].etag, "%s", etags[1]);
  assert_int_equal(ap_upload_multipart_complete(context, "alice", id, swapped,
                                                3, NULL, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_false(object_exists(context, ap_upload_ticket_object_key(ticket)));

  ap_asset_t *asset = NULL;
  assert_int_equal(ap_upload_multipart_complete(context, "alice", id, sent, 3,
                                                &asset, &error),
                   AP_OK);
  assert_int_equal(ap_asset_size_bytes(asset), size);
  assert_non_null(strstr(ap_asset_probe_json(asset), "\"channels\":2"));
  assert_non_null(strstr(ap_asset_probe_json(asset), "44100"));
  ap_asset_free(asset);

  /* The object is the file byte for byte, and the parts are gone. */
  char object_etag[AP_UPLOAD_ETAG_SIZE];
  char file_etag[AP_UPLOAD_ETAG_SIZE];
  ap_io_t *input = NULL;
  assert_int_equal(ap_object_store_open_read(
                       ap_context_object_store(context),
                       ap_upload_ticket_object_key(ticket), &input, NULL),
                   AP_OK);
  unsigned char *stored = malloc((size_t)size);
  assert_non_null(stored);
  int64_t filled = 0;
  while (filled < size) {
    int64_t got =
        ap_io_read(input, stored + filled, (size_t)(size - filled), NULL);
    assert_true(got > 0);
    filled += got;
  }
  ap_io_close(input);
  md5_etag(stored, (size_t)size, object_etag);
  free(stored);
  unsigned char *original = read_range(test->wav_path, 0, size);
  md5_etag(original, (size_t)size, file_etag);
  free(original);
  assert_string_equal(object_etag, file_etag);
  char prefix[AP_OBJECT_KEY_MAX_LENGTH + 1];
  snprintf(prefix, sizeof prefix, "%s.parts/",
           ap_upload_ticket_object_key(ticket));
  assert_int_equal(objects_under(context, prefix), 0);

  /* Completing again returns the same asset. */
  assert_int_equal(ap_upload_multipart_complete(context, "alice", id, sent, 3,
                                                &asset, &error),
                   AP_OK);
  assert_int_equal(ap_asset_size_bytes(asset), size);
  ap_asset_free(asset);
  ap_upload_ticket_free(ticket);
}

static void multipart_retry_after_assembly(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  int64_t size = file_size(test->wav_path);
  ap_upload_ticket_t *ticket = NULL;
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_MULTIPART,
                                 size, &ticket, NULL),
                   AP_OK);
  const char *id = ap_upload_ticket_id(ticket);
  ap_upload_part_t sent[3];
  for (int i = 0; i < 3; i++) {
    int64_t offset = (int64_t)i * PART_SIZE;
    int64_t length = i < 2 ? PART_SIZE : size - offset;
    sent[i].number = i + 1;
    sent[i].size_bytes = -1;
    put_part(test, id, i + 1, offset, length, 0, sent[i].etag);
  }

  /* A second context on the same stores whose scanner cannot be reached:
   * the object is assembled, then the scan fails retryably. */
  assert_int_equal(ap_config_set(test->fixture.config, "uploads.clamd_address",
                                 "tcp:127.0.0.1:1", NULL),
                   AP_OK);
  ap_context_t *scanning = NULL;
  assert_int_equal(ap_context_open(test->fixture.config, &scanning, NULL),
                   AP_OK);
  ap_error_t error = {0};
  assert_int_equal(ap_upload_multipart_complete(scanning, "alice", id, sent, 3,
                                                NULL, &error),
                   AP_ERR_UNAVAILABLE);
  ap_context_close(scanning);
  assert_true(object_exists(context, ap_upload_ticket_object_key(ticket)));

  /* The retry finds the parts consumed and validates the object. */
  ap_asset_t *asset = NULL;
  assert_int_equal(ap_upload_multipart_complete(context, "alice", id, sent, 3,
                                                &asset, &error),
                   AP_OK);
  assert_int_equal(ap_asset_size_bytes(asset), size);
  ap_asset_free(asset);
  ap_upload_ticket_free(ticket);
}

static void multipart_abort_leaves_nothing(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  int64_t size = file_size(test->wav_path);
  ap_upload_ticket_t *ticket = NULL;
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_MULTIPART,
                                 size, &ticket, NULL),
                   AP_OK);
  const char *id = ap_upload_ticket_id(ticket);
  char etag[AP_UPLOAD_ETAG_SIZE];
  put_part(test, id, 1, 0, PART_SIZE, 0, etag);
  char prefix[AP_OBJECT_KEY_MAX_LENGTH + 1];
  snprintf(prefix, sizeof prefix, "%s", ap_upload_ticket_object_key(ticket));
  assert_int_equal(objects_under(context, prefix), 1);

  ap_error_t error = {0};
  assert_int_equal(ap_upload_abort(context, "bob", id, &error),
                   AP_ERR_NOT_FOUND);
  assert_int_equal(ap_upload_abort(context, "alice", id, &error), AP_OK);
  assert_int_equal(objects_under(context, prefix), 0);
  ap_upload_state_t upload_state = AP_UPLOAD_PENDING;
  assert_int_equal(
      ap_upload_get_state(context, "alice", id, &upload_state, NULL, NULL),
      AP_OK);
  assert_int_equal(upload_state, AP_UPLOAD_ABORTED);
  assert_string_equal(ap_upload_state_name(upload_state), "aborted");
  assert_int_equal(ap_upload_abort(context, "alice", id, &error), AP_OK);

  ap_upload_ticket_t *part = NULL;
  assert_int_equal(
      ap_upload_part_presign(context, "alice", id, 1, &part, &error),
      AP_ERR_UPLOAD_STATE);
  assert_null(part);
  ap_upload_ticket_free(ticket);
}

static void multipart_other_owner_not_found(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  ap_upload_ticket_t *ticket = NULL;
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_MULTIPART,
                                 file_size(test->wav_path), &ticket, NULL),
                   AP_OK);
  const char *id = ap_upload_ticket_id(ticket);
  ap_upload_ticket_t *part = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_upload_part_presign(context, "bob", id, 1, &part, &error),
                   AP_ERR_NOT_FOUND);
  ap_upload_part_t *parts = NULL;
  size_t count = 0;
  assert_int_equal(
      ap_upload_parts_list(context, "bob", id, &parts, &count, &error),
      AP_ERR_NOT_FOUND);
  assert_int_equal(
      ap_upload_part_presign(context, "alice", id, 4, &part, &error),
      AP_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(error.message, "part_number:"));
  ap_upload_ticket_free(ticket);
}

static void multipart_calls_refuse_put_upload(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  ap_upload_ticket_t *ticket = NULL;
  assert_int_equal(create_upload(context, "alice", AP_UPLOAD_METHOD_PUT, 1000,
                                 &ticket, NULL),
                   AP_OK);
  ap_upload_part_t part = {.number = 1, .etag = "\"00\"", .size_bytes = -1};
  ap_error_t error = {0};
  assert_int_equal(ap_upload_multipart_complete(context, "alice",
                                                ap_upload_ticket_id(ticket),
                                                &part, 1, NULL, &error),
                   AP_ERR_UPLOAD_STATE);
  assert_non_null(strstr(error.message, "put"));
  ap_upload_ticket_t *part_ticket = NULL;
  assert_int_equal(ap_upload_part_presign(context, "alice",
                                          ap_upload_ticket_id(ticket), 1,
                                          &part_ticket, &error),
                   AP_ERR_UPLOAD_STATE);
  ap_upload_ticket_free(ticket);
}

static void expired_multipart_parts_removed(void **state) {
  test_state_t *test = *state;
  ap_context_t *context = test->fixture.context;
  ap_upload_ticket_t *ticket = NULL;
  assert_int_equal(create_upload(context, "carol", AP_UPLOAD_METHOD_MULTIPART,
                                 file_size(test->wav_path), &ticket, NULL),
                   AP_OK);
  const char *id = ap_upload_ticket_id(ticket);
  ap_upload_ticket_t *part = NULL;
  assert_int_equal(ap_upload_part_presign(context, "carol", id, 1, &part, NULL),
                   AP_OK);
  char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  key_of_url(ap_upload_ticket_url(part), key, sizeof key);
  ap_upload_ticket_free(part);
  unsigned char data[16] = {0};
  ap_io_t *input = NULL;
  assert_int_equal(ap_io_open_memory(data, sizeof data, &input, NULL), AP_OK);
  assert_int_equal(ap_object_store_put_from_io(ap_context_object_store(context),
                                               key, "application/octet-stream",
                                               input, NULL),
                   AP_OK);
  ap_io_close(input);
  assert_true(object_exists(context, key));

  int64_t count = 0;
  int64_t later = ap_upload_ticket_expires_at_ms(ticket) + 1000;
  assert_int_equal(ap_upload_cleanup_expired(context, later, &count, NULL),
                   AP_OK);
  assert_true(count >= 1);
  assert_false(object_exists(context, key));
  ap_upload_state_t upload_state = AP_UPLOAD_PENDING;
  assert_int_equal(
      ap_upload_get_state(context, "carol", id, &upload_state, NULL, NULL),
      AP_OK);
  assert_int_equal(upload_state, AP_UPLOAD_EXPIRED);
  ap_upload_ticket_free(ticket);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(method_names_parse),
      cmocka_unit_test_setup_teardown(put_over_threshold_rejected, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(multipart_below_minimum_rejected, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(old_request_struct_means_put, setup,
                                      teardown),
      cmocka_unit_test(init_symbol_fills_first_version),
      cmocka_unit_test_setup_teardown(post_form_completes, setup, teardown),
      cmocka_unit_test_setup_teardown(post_form_over_cap_stores_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(post_form_tampering_rejected, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(multipart_resumes_and_completes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(multipart_retry_after_assembly, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(multipart_abort_leaves_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(multipart_other_owner_not_found, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(multipart_calls_refuse_put_upload, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(expired_multipart_parts_removed, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
