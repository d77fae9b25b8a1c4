/*
 * Tests for the file object store against real directories under TMPDIR:
 * key rules, links planted in the root, atomic commits, stat, ranged
 * reads, delete, listing, and the streaming upload of signed PUT bodies.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include <audiopipe/config.h>
#include <audiopipe/io.h>
#include <audiopipe/probe.h>
#include <audiopipe/storage.h>

#include "storage/object_store.h"

/* A store in a fresh directory: TMPDIR/storage-XXXXXX/objects. */
typedef struct fixture {
  char directory[512];
  char root[600];
  ap_config_t *config;
  ap_object_store_t *store;
} fixture_t;

static int setup_store(void **state) {
  fixture_t *fixture = calloc(1, sizeof *fixture);
  assert_non_null(fixture);
  const char *temporary = getenv("TMPDIR");
  snprintf(fixture->directory, sizeof fixture->directory, "%s/storage-XXXXXX",
           temporary ? temporary : "/tmp");
  assert_non_null(mkdtemp(fixture->directory));
  snprintf(fixture->root, sizeof fixture->root, "%s/objects",
           fixture->directory);

  char uri[700];
  snprintf(uri, sizeof uri, "file://%s", fixture->root);
  ap_error_t error = {0};
  assert_int_equal(ap_config_new(&fixture->config, &error), AP_OK);
  assert_int_equal(ap_config_set(fixture->config, "objects.uri", uri, &error),
                   AP_OK);
  assert_int_equal(
      ap_object_store_open(fixture->config, &fixture->store, &error), AP_OK);
  *state = fixture;
  return 0;
}

static int teardown_store(void **state) {
  fixture_t *fixture = *state;
  ap_object_store_close(fixture->store);
  ap_config_free(fixture->config);
  char command[700];
  snprintf(command, sizeof command, "rm -rf '%s'", fixture->directory);
  assert_int_equal(system(command), 0);
  free(fixture);
  return 0;
}

static void put_text(ap_object_store_t *store, const char *key,
                     const char *content_type, const char *text) {
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_object_store_open_write(store, key, content_type, &output, &error),
      AP_OK);
  assert_int_equal(ap_output_write(output, text, strlen(text), &error), AP_OK);
  assert_int_equal(ap_output_finish(output, &error), AP_OK);
  ap_output_close(output);
}

/* Reads a whole object into a NUL-terminated buffer of `size` bytes. */
static int64_t read_text(ap_object_store_t *store, const char *key,
                         char *buffer, size_t size) {
  ap_io_t *io = NULL;
  ap_error_t error = {0};
  if (ap_object_store_open_read(store, key, &io, &error) != AP_OK) {
    return -1;
  }
  int64_t total = 0;
  for (;;) {
    int64_t count =
        ap_io_read(io, buffer + total, size - 1 - (size_t)total, &error);
    assert_true(count >= 0);
    if (count == 0) {
      break;
    }
    total += count;
  }
  buffer[total] = '\0';
  ap_io_close(io);
  return total;
}

/* Counts the entries of a directory other than "." and "..". */
static int count_entries(const char *path) {
  DIR *directory = opendir(path);
  if (!directory) {
    return -1;
  }
  int count = 0;
  struct dirent *entry;
  while ((entry = readdir(directory)) != NULL) {
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
      count++;
    }
  }
  closedir(directory);
  return count;
}

static void write_file(const char *path, const char *text) {
  FILE *file = fopen(path, "w");
  assert_non_null(file);
  assert_int_equal(fputs(text, file) >= 0, 1);
  assert_int_equal(fclose(file), 0);
}

typedef struct collected_keys {
  int count;
  size_t longest;
} collected_keys_t;

static int count_key(void *user_data, const char *key,
                     const ap_object_info_t *info) {
  (void)info;
  collected_keys_t *collected = user_data;
  collected->count++;
  if (strlen(key) > collected->longest) {
    collected->longest = strlen(key);
  }
  return 0;
}

/* ---- Keys ------------------------------------------------------------ */

static void key_validation_table(void **state) {
  (void)state;
  /* 512 bytes in segments of 255, 254 and 1 bytes: a longest key. */
  char longest[AP_OBJECT_KEY_MAX_LENGTH + 1];
  memset(longest, 'k', AP_OBJECT_KEY_MAX_LENGTH);
  longest[255] = '/';
  longest[510] = '/';
  longest[AP_OBJECT_KEY_MAX_LENGTH] = '\0';
  char too_long[AP_OBJECT_KEY_MAX_LENGTH + 2];
  memcpy(too_long, longest, AP_OBJECT_KEY_MAX_LENGTH);
  too_long[AP_OBJECT_KEY_MAX_LENGTH] = 'k';
  too_long[AP_OBJECT_KEY_MAX_LENGTH + 1] = '\0';
  char long_segment[AP_OBJECT_KEY_SEGMENT_MAX_LENGTH + 2];
  memset(long_segment, 's', AP_OBJECT_KEY_SEGMENT_MAX_LENGTH + 1);
  long_segment[AP_OBJECT_KEY_SEGMENT_MAX_LENGTH + 1] = '\0';

  const char *good[] = {
      "a",           "uploads/2026/abc.wav",
      "A-Z_a-z.0-9", "x/y/z",
      "a..b",        "a/b.c",
      "name.",       longest,
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    ap_error_t error = {0};
    if (ap_object_key_validate(good[i], &error) != AP_OK) {
      fail_msg("good key \"%s\" rejected: %s", good[i], error.message);
    }
  }

  const char *evil[] = {
      "",           "../x",
      "/abs",       "a//b",
      "a/./b",      "a/../b",
      "..",         ".",
      ".hidden",    "a/.tmp-0123456789abcdef",
      "a/",         "a b",
      "a\\b",       "a%2e%2e",
      "a\x01z",     "caf\xc3\xa9",
      "a?b",        "a#b",
      "a:b",        too_long,
      long_segment,
  };
  for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
    ap_error_t error = {0};
    if (ap_object_key_validate(evil[i], &error) != AP_ERR_INVALID_ARGUMENT) {
      fail_msg("evil key \"%s\" accepted", evil[i]);
    }
    assert_int_equal(error.domain, AP_DOMAIN_STORAGE);
  }
  assert_int_equal(ap_object_key_validate(NULL, NULL), AP_ERR_INVALID_ARGUMENT);
}

/* A key is a C string: bytes after a NUL are never part of it, so a
 * decoded "%00" cannot smuggle "/../" past the check. */
static void key_stops_at_nul_byte(void **state) {
  fixture_t *fixture = *state;
  const char key[] = "a\0/../../escaped";
  assert_int_equal(ap_object_key_validate(key, NULL), AP_OK);
  put_text(fixture->store, key, "text/plain", "x");

  char path[700];
  snprintf(path, sizeof path, "%s/a", fixture->root);
  assert_int_equal(access(path, F_OK), 0);
  snprintf(path, sizeof path, "%s/escaped", fixture->directory);
  assert_int_equal(access(path, F_OK), -1);
}

/* A key of the maximum length, with a 255-byte segment, fits the file
 * store. */
static void longest_key_round_trips(void **state) {
  fixture_t *fixture = *state;
  char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  memset(key, 'k', AP_OBJECT_KEY_MAX_LENGTH);
  key[255] = '/';
  key[510] = '/';
  key[AP_OBJECT_KEY_MAX_LENGTH] = '\0';
  put_text(fixture->store, key, "text/plain", "long");

  char text[16];
  assert_int_equal(read_text(fixture->store, key, text, sizeof text), 4);
  assert_string_equal(text, "long");
  collected_keys_t listed = {0};
  ap_error_t error = {0};
  assert_int_equal(
      ap_object_store_list(fixture->store, "", count_key, &listed, &error),
      AP_OK);
  assert_int_equal(listed.count, 1);
  assert_int_equal(listed.longest, AP_OBJECT_KEY_MAX_LENGTH);
}

static void evil_keys_rejected_by_every_call(void **state) {
  fixture_t *fixture = *state;
  const char *evil[] = {"../escaped", "/etc/passwd", "a//b", "a/./b"};
  for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
    ap_error_t error = {0};
    ap_object_info_t info;
    ap_io_t *io = NULL;
    ap_output_t *output = NULL;
    ap_object_upload_t *upload = NULL;
    assert_int_equal(
        ap_object_store_stat(fixture->store, evil[i], &info, &error),
        AP_ERR_INVALID_ARGUMENT);
    assert_int_equal(
        ap_object_store_open_read(fixture->store, evil[i], &io, &error),
        AP_ERR_INVALID_ARGUMENT);
    assert_int_equal(ap_object_store_open_write(fixture->store, evil[i],
                                                "audio/wav", &output, &error),
                     AP_ERR_INVALID_ARGUMENT);
    assert_int_equal(ap_object_store_delete(fixture->store, evil[i], &error),
                     AP_ERR_INVALID_ARGUMENT);
    assert_int_equal(ap_object_upload_begin(fixture->store, evil[i],
                                            "audio/wav", 1, &upload, &error),
                     AP_ERR_INVALID_ARGUMENT);
    assert_null(io);
    assert_null(output);
    assert_null(upload);
  }
  char escaped[700];
  snprintf(escaped, sizeof escaped, "%s/escaped", fixture->directory);
  assert_int_equal(access(escaped, F_OK), -1);
}

/* Links planted inside the root lead nowhere: reads, writes, deletes and
 * listings refuse or skip them. */
static void symlink_in_root_not_followed(void **state) {
  fixture_t *fixture = *state;
  char outside[700];
  char secret_path[800];
  char link_path[800];
  snprintf(outside, sizeof outside, "%s/outside", fixture->directory);
  assert_int_equal(mkdir(outside, 0755), 0);
  snprintf(secret_path, sizeof secret_path, "%s/secret.txt", outside);
  write_file(secret_path, "secret");

  snprintf(link_path, sizeof link_path, "%s/linked-directory", fixture->root);
  assert_int_equal(symlink(outside, link_path), 0);
  snprintf(link_path, sizeof link_path, "%s/linked-file", fixture->root);
  assert_int_equal(symlink(secret_path, link_path), 0);

  ap_error_t error = {0};
  ap_object_info_t info;
  ap_io_t *io = NULL;
  assert_int_equal(ap_object_store_stat(fixture->store,
                                        "linked-directory/secret.txt", &info,
                                        &error),
                   AP_ERR_PERMISSION);
  assert_non_null(strstr(error.message, "symbolic link"));
  assert_int_equal(ap_object_store_open_read(fixture->store,
                                             "linked-directory/secret.txt", &io,
                                             &error),
                   AP_ERR_PERMISSION);
  assert_null(io);
  assert_int_equal(
      ap_object_store_stat(fixture->store, "linked-file", &info, &error),
      AP_ERR_PERMISSION);
  assert_int_equal(
      ap_object_store_open_read(fixture->store, "linked-file", &io, &error),
      AP_ERR_PERMISSION);

  ap_output_t *output = NULL;
  assert_int_equal(ap_object_store_open_write(fixture->store,
                                              "linked-directory/new.wav",
                                              "audio/wav", &output, &error),
                   AP_ERR_PERMISSION);
  assert_null(output);
  assert_int_equal(count_entries(outside), 1);

  assert_int_equal(ap_object_store_delete(
                       fixture->store, "linked-directory/secret.txt", &error),
                   AP_ERR_PERMISSION);
  assert_int_equal(access(secret_path, F_OK), 0);

  /* Writing the key of a link replaces the link, not its target. */
  put_text(fixture->store, "linked-file", "text/plain", "replaced");
  char text[64];
  FILE *file = fopen(secret_path, "r");
  assert_non_null(file);
  assert_non_null(fgets(text, sizeof text, file));
  fclose(file);
  assert_string_equal(text, "secret");
  struct stat link_info;
  assert_int_equal(lstat(link_path, &link_info), 0);
  assert_true(S_ISREG(link_info.st_mode));
}

static int collect_key(void *user_data, const char *key,
                       const ap_object_info_t *info) {
  (void)info;
  char *keys = user_data;
  strcat(keys, key);
  strcat(keys, ";");
  return 0;
}

static void listing_skips_links_and_fifos(void **state) {
  fixture_t *fixture = *state;
  put_text(fixture->store, "real/object", "text/plain", "x");
  char path[800];
  snprintf(path, sizeof path, "%s/real/link", fixture->root);
  assert_int_equal(symlink("/etc/passwd", path), 0);
  snprintf(path, sizeof path, "%s/fifo", fixture->root);
  assert_int_equal(mkfifo(path, 0644), 0);

  char keys[256] = "";
  ap_error_t error = {0};
  assert_int_equal(
      ap_object_store_list(fixture->store, "", collect_key, keys, &error),
      AP_OK);
  assert_string_equal(keys, "real/object;");

  /* Opening a FIFO would block a reader forever; it is refused at once. */
  ap_object_info_t info;
  assert_int_equal(ap_object_store_stat(fixture->store, "fifo", &info, &error),
                   AP_ERR_PERMISSION);
}

/* ---- Writing --------------------------------------------------------- */

static void abandoned_output_leaves_nothing(void **state) {
  fixture_t *fixture = *state;
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_object_store_open_write(fixture->store, "dir/abandoned",
                                              "audio/wav", &output, &error),
                   AP_OK);
  assert_int_equal(ap_output_write(output, "partial", 7, &error), AP_OK);

  ap_object_info_t info;
  assert_int_equal(
      ap_object_store_stat(fixture->store, "dir/abandoned", &info, &error),
      AP_ERR_NOT_FOUND);
  ap_output_close(output);

  assert_int_equal(
      ap_object_store_stat(fixture->store, "dir/abandoned", &info, &error),
      AP_ERR_NOT_FOUND);
  char directory[700];
  snprintf(directory, sizeof directory, "%s/dir", fixture->root);
  assert_int_equal(count_entries(directory), 0);
}

static void reader_never_sees_partial_object(void **state) {
  fixture_t *fixture = *state;
  put_text(fixture->store, "take", "text/plain", "old version");

  ap_io_t *early_reader = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_object_store_open_read(fixture->store, "take", &early_reader, &error),
      AP_OK);

  ap_output_t *output = NULL;
  assert_int_equal(ap_object_store_open_write(fixture->store, "take",
                                              "text/plain", &output, &error),
                   AP_OK);
  assert_int_equal(ap_output_write(output, "new ", 4, &error), AP_OK);

  char text[64];
  assert_int_equal(read_text(fixture->store, "take", text, sizeof text), 11);
  assert_string_equal(text, "old version");

  assert_int_equal(ap_output_write(output, "version, longer", 15, &error),
                   AP_OK);
  assert_int_equal(ap_output_finish(output, &error), AP_OK);
  ap_output_close(output);

  assert_int_equal(read_text(fixture->store, "take", text, sizeof text), 19);
  assert_string_equal(text, "new version, longer");

  /* A reader opened before the commit keeps the bytes it opened. */
  assert_int_equal(ap_io_size(early_reader), 11);
  assert_int_equal(ap_io_read(early_reader, text, sizeof text, &error), 11);
  assert_memory_equal(text, "old version", 11);
  ap_io_close(early_reader);

  assert_int_equal(count_entries(fixture->root), 1);
}

enum { RACE_VERSIONS = 60, RACE_BASE_SIZE = 1000 };

typedef struct race {
  ap_object_store_t *store;
  int done;
  int reads;
  int torn; /* reads whose bytes or size did not match one version */
  pthread_mutex_t lock;
} race_t;

/* Version v of the object is RACE_BASE_SIZE + v bytes, all equal to v. */
static void *race_writer(void *user_data) {
  race_t *race = user_data;
  unsigned char buffer[RACE_BASE_SIZE + RACE_VERSIONS];
  for (int version = 1; version <= RACE_VERSIONS; version++) {
    memset(buffer, version, sizeof buffer);
    ap_output_t *output = NULL;
    ap_error_t error = {0};
    if (ap_object_store_open_write(race->store, "race", "text/plain", &output,
                                   &error) != AP_OK) {
      break;
    }
    /* Two writes, so a reader of the temporary file would see half. */
    size_t size = RACE_BASE_SIZE + (size_t)version;
    ap_output_write(output, buffer, size / 2, &error);
    ap_output_write(output, buffer + size / 2, size - size / 2, &error);
    ap_output_finish(output, &error);
    ap_output_close(output);
  }
  pthread_mutex_lock(&race->lock);
  race->done = 1;
  pthread_mutex_unlock(&race->lock);
  return NULL;
}

static void *race_reader(void *user_data) {
  race_t *race = user_data;
  unsigned char buffer[RACE_BASE_SIZE + RACE_VERSIONS + 1];
  /* Each reader reads at least once, even if the writer is already done. */
  int done = 0;
  while (!done) {
    pthread_mutex_lock(&race->lock);
    done = race->done;
    pthread_mutex_unlock(&race->lock);

    ap_io_t *io = NULL;
    ap_error_t error = {0};
    if (ap_object_store_open_read(race->store, "race", &io, &error) != AP_OK) {
      continue;
    }
    int64_t total = 0;
    int64_t count;
    while ((count = ap_io_read(io, buffer + total,
                               sizeof buffer - (size_t)total, &error)) > 0) {
      total += count;
    }
    int64_t size = ap_io_size(io);
    ap_io_close(io);

    int consistent = total == size && total > RACE_BASE_SIZE &&
                     total - RACE_BASE_SIZE == buffer[0];
    for (int64_t i = 1; consistent && i < total; i++) {
      consistent = buffer[i] == buffer[0];
    }
    pthread_mutex_lock(&race->lock);
    race->reads++;
    race->torn += !consistent;
    pthread_mutex_unlock(&race->lock);
  }
  return NULL;
}

/* Readers racing a writer that replaces the object many times each get
 * one whole version, never a mix or a prefix. */
static void concurrent_readers_see_whole_versions(void **state) {
  fixture_t *fixture = *state;
  race_t race = {.store = fixture->store};
  pthread_mutex_init(&race.lock, NULL);
  /* Readers start after version 1 exists, so every open succeeds. */
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  unsigned char initial[RACE_BASE_SIZE + 1];
  memset(initial, 1, sizeof initial);
  assert_int_equal(ap_object_store_open_write(fixture->store, "race",
                                              "text/plain", &output, &error),
                   AP_OK);
  assert_int_equal(ap_output_write(output, initial, sizeof initial, &error),
                   AP_OK);
  assert_int_equal(ap_output_finish(output, &error), AP_OK);
  ap_output_close(output);

  pthread_t writer;
  pthread_t readers[2];
  assert_int_equal(pthread_create(&readers[0], NULL, race_reader, &race), 0);
  assert_int_equal(pthread_create(&readers[1], NULL, race_reader, &race), 0);
  assert_int_equal(pthread_create(&writer, NULL, race_writer, &race), 0);
  pthread_join(writer, NULL);
  pthread_join(readers[0], NULL);
  pthread_join(readers[1], NULL);
  pthread_mutex_destroy(&race.lock);

  assert_true(race.reads > 0);
  assert_int_equal(race.torn, 0);
  char text[RACE_BASE_SIZE + RACE_VERSIONS + 1];
  assert_int_equal(read_text(fixture->store, "race", text, sizeof text),
                   RACE_BASE_SIZE + RACE_VERSIONS);
}

static void output_can_seek_to_rewrite_header(void **state) {
  fixture_t *fixture = *state;
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_object_store_open_write(fixture->store, "header",
                                              "audio/wav", &output, &error),
                   AP_OK);
  assert_true(ap_output_is_seekable(output));
  assert_int_equal(ap_output_write(output, "XXXXbody", 8, &error), AP_OK);
  assert_int_equal(ap_output_seek(output, 0, AP_SEEK_SET, &error), 0);
  assert_int_equal(ap_output_write(output, "HEAD", 4, &error), AP_OK);
  assert_int_equal(ap_output_finish(output, &error), AP_OK);
  ap_output_close(output);

  char text[32];
  assert_int_equal(read_text(fixture->store, "header", text, sizeof text), 8);
  assert_string_equal(text, "HEADbody");
}

static void write_conflicts_reported(void **state) {
  fixture_t *fixture = *state;
  put_text(fixture->store, "parent/child", "text/plain", "x");
  put_text(fixture->store, "file", "text/plain", "x");

  ap_output_t *output = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_object_store_open_write(fixture->store, "parent",
                                              "text/plain", &output, &error),
                   AP_ERR_CONFLICT);
  assert_null(output);
  assert_int_equal(ap_object_store_open_write(fixture->store, "file/below",
                                              "text/plain", &output, &error),
                   AP_ERR_CONFLICT);
  assert_null(output);
}

static void content_type_checked_and_defaulted(void **state) {
  fixture_t *fixture = *state;
  ap_output_t *output = NULL;
  ap_error_t error = {0};
  const char *invalid[] = {"",     "audio",          "audio/",
                           "/wav", "audio/wav; x=1", "audio/w\nav"};
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    assert_int_equal(ap_object_store_open_write(fixture->store, "typed",
                                                invalid[i], &output, &error),
                     AP_ERR_INVALID_ARGUMENT);
    assert_null(output);
  }

  put_text(fixture->store, "untyped", NULL, "x");
  ap_object_info_t info;
  assert_int_equal(
      ap_object_store_stat(fixture->store, "untyped", &info, &error), AP_OK);
  assert_string_equal(info.content_type, "application/octet-stream");
}

/* ---- Reading --------------------------------------------------------- */

static int64_t now_ms(void) {
  struct timeval now;
  gettimeofday(&now, NULL);
  return (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
}

static void stat_reports_size_type_time(void **state) {
  fixture_t *fixture = *state;
  ap_error_t error = {0};
  ap_object_info_t info;
  assert_int_equal(
      ap_object_store_stat(fixture->store, "missing/key", &info, &error),
      AP_ERR_NOT_FOUND);
  assert_non_null(strstr(error.message, "missing/key"));

  int64_t before = now_ms();
  put_text(fixture->store, "uploads/one.wav", "audio/wav", "0123456789");
  int64_t after = now_ms();

  assert_int_equal(
      ap_object_store_stat(fixture->store, "uploads/one.wav", &info, &error),
      AP_OK);
  assert_int_equal(info.size, 10);
  assert_string_equal(info.content_type, "audio/wav");
  /* File times come from a coarser kernel clock: allow 2 s either way. */
  assert_true(info.last_modified_ms >= before - 2000);
  assert_true(info.last_modified_ms <= after + 2000);

  /* A directory of objects is not itself an object. */
  assert_int_equal(
      ap_object_store_stat(fixture->store, "uploads", &info, &error),
      AP_ERR_NOT_FOUND);
}

/* case-04.m4a has its moov atom last, at byte 91770 of 94376 (ftyp@0
 * free@28 mdat@36 moov@91770): reading it needs the tail of the object. */
static void ranged_read_of_tail(void **state) {
  fixture_t *fixture = *state;
  ap_io_t *source = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_io_open_file(AP_TEST_DATA_DIR "/cases/case-04.m4a", &source, &error),
      AP_OK);
  assert_int_equal(ap_object_store_put_from_io(fixture->store,
                                               "uploads/case-04.m4a",
                                               "audio/mp4", source, &error),
                   AP_OK);
  ap_io_close(source);

  ap_io_t *io = NULL;
  assert_int_equal(ap_object_store_open_read(
                       fixture->store, "uploads/case-04.m4a", &io, &error),
                   AP_OK);
  assert_true(ap_io_is_seekable(io));
  assert_int_equal(ap_io_size(io), 94376);

  unsigned char header[8];
  assert_int_equal(ap_io_seek(io, 91770, AP_SEEK_SET, &error), 91770);
  assert_int_equal(ap_io_read(io, header, sizeof header, &error), 8);
  assert_memory_equal(header + 4, "moov", 4);
  uint32_t moov_size = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 |
                       (uint32_t)header[2] << 8 | header[3];
  assert_int_equal(moov_size, 94376 - 91770);

  assert_int_equal(ap_io_seek(io, -4, AP_SEEK_END, &error), 94372);
  assert_int_equal(ap_io_read(io, header, sizeof header, &error), 4);
  assert_int_equal(ap_io_read(io, header, sizeof header, &error), 0);

  assert_int_equal(ap_io_seek(io, 4, AP_SEEK_SET, &error), 4);
  assert_int_equal(ap_io_read(io, header, 4, &error), 4);
  assert_memory_equal(header, "ftyp", 4);

  assert_int_equal(ap_io_seek(io, -1, AP_SEEK_SET, &error), -1);
  ap_io_close(io);
}

/* The prober reads case-04.m4a (10.000 s of AAC, 480000 samples at
 * 48 kHz, moov last) straight from the store's reader, seeking to the
 * tail for moov. */
static void probe_reads_moov_through_store(void **state) {
  fixture_t *fixture = *state;
  ap_io_t *source = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_io_open_file(AP_TEST_DATA_DIR "/cases/case-04.m4a", &source, &error),
      AP_OK);
  assert_int_equal(ap_object_store_put_from_io(fixture->store, "case-04.m4a",
                                               "audio/mp4", source, &error),
                   AP_OK);
  ap_io_close(source);

  ap_io_t *io = NULL;
  assert_int_equal(
      ap_object_store_open_read(fixture->store, "case-04.m4a", &io, &error),
      AP_OK);
  ap_media_info_t *info = NULL;
  ap_status_t status = ap_probe(io, NULL, &info, &error);
  if (status != AP_OK) {
    fail_msg("probe through the store failed: %s", error.message);
  }
  assert_true(ap_media_info_duration(info) > 9.99);
  assert_true(ap_media_info_duration(info) < 10.03);
  ap_media_info_free(info);
  ap_io_close(io);
}

/* ---- Delete and list ------------------------------------------------- */

static void delete_is_idempotent(void **state) {
  fixture_t *fixture = *state;
  ap_error_t error = {0};
  ap_object_info_t info;
  put_text(fixture->store, "a/b/c", "text/plain", "x");
  assert_int_equal(ap_object_store_delete(fixture->store, "a/b/c", &error),
                   AP_OK);
  assert_int_equal(ap_object_store_stat(fixture->store, "a/b/c", &info, &error),
                   AP_ERR_NOT_FOUND);
  assert_int_equal(ap_object_store_delete(fixture->store, "a/b/c", &error),
                   AP_OK);
  assert_int_equal(
      ap_object_store_delete(fixture->store, "never/was/here", &error), AP_OK);
  assert_int_equal(ap_object_store_delete(fixture->store, "a/b", &error),
                   AP_OK);
}

/* Deleting the last object of a directory removes the directories it
 * leaves empty, up to the first one that still has entries. */
static void delete_prunes_empty_directories(void **state) {
  fixture_t *fixture = *state;
  ap_error_t error = {0};
  put_text(fixture->store, "assets/one/waveform.json", "text/plain", "x");
  put_text(fixture->store, "assets/one/deep/rendition.opus", "audio/ogg", "x");
  put_text(fixture->store, "assets/two/original.wav", "audio/wav", "x");

  assert_int_equal(ap_object_store_delete(fixture->store,
                                          "assets/one/deep/rendition.opus",
                                          &error),
                   AP_OK);
  char path[700];
  snprintf(path, sizeof path, "%s/assets/one/deep", fixture->root);
  assert_int_equal(access(path, F_OK), -1);
  snprintf(path, sizeof path, "%s/assets/one", fixture->root);
  assert_int_equal(count_entries(path), 1);

  assert_int_equal(ap_object_store_delete(fixture->store,
                                          "assets/one/waveform.json", &error),
                   AP_OK);
  assert_int_equal(access(path, F_OK), -1);
  snprintf(path, sizeof path, "%s/assets", fixture->root);
  assert_int_equal(count_entries(path), 1);

  /* Writing below a pruned directory creates it again. */
  put_text(fixture->store, "assets/one/again", "text/plain", "y");
  char text[8];
  assert_int_equal(
      read_text(fixture->store, "assets/one/again", text, sizeof text), 1);
  assert_string_equal(text, "y");
}

typedef struct churn {
  ap_object_store_t *store;
  int failures;
} churn_t;

/* Writes and deletes the only object of one directory, over and over. */
static void *churn_objects(void *user_data) {
  churn_t *churn = user_data;
  for (int i = 0; i < 40; i++) {
    ap_output_t *output = NULL;
    ap_error_t error = {0};
    if (ap_object_store_open_write(churn->store, "churn/dir/object",
                                   "text/plain", &output, &error) != AP_OK ||
        ap_output_write(output, "x", 1, &error) != AP_OK ||
        ap_output_finish(output, &error) != AP_OK) {
      churn->failures++;
    }
    ap_output_close(output);
    if (ap_object_store_delete(churn->store, "churn/dir/object", &error) !=
        AP_OK) {
      churn->failures++;
    }
  }
  return NULL;
}

/* Two threads write and delete the only object of one directory, so the
 * directory is pruned and created again while the other thread uses it.
 * No call may fail. The window between a writer opening the directory
 * and creating its file is microseconds wide, so this run rarely lands
 * in it: it shows churn is safe, not that the retry there works. */
static void write_delete_churn_never_fails(void **state) {
  fixture_t *fixture = *state;
  churn_t first = {.store = fixture->store};
  churn_t second = {.store = fixture->store};
  pthread_t threads[2];
  assert_int_equal(pthread_create(&threads[0], NULL, churn_objects, &first), 0);
  assert_int_equal(pthread_create(&threads[1], NULL, churn_objects, &second),
                   0);
  pthread_join(threads[0], NULL);
  pthread_join(threads[1], NULL);
  assert_int_equal(first.failures, 0);
  assert_int_equal(second.failures, 0);
}

typedef struct collected {
  char keys[1024];
  int64_t total_size;
  int count;
  int stop_after;
} collected_t;

static int collect(void *user_data, const char *key,
                   const ap_object_info_t *info) {
  collected_t *collected = user_data;
  strcat(collected->keys, key);
  strcat(collected->keys, ";");
  collected->total_size += info->size;
  collected->count++;
  return collected->stop_after > 0 && collected->count >= collected->stop_after;
}

static void list_by_prefix(void **state) {
  fixture_t *fixture = *state;
  put_text(fixture->store, "uploads/b/1.wav", "audio/wav", "333");
  put_text(fixture->store, "uploads/a/2.wav", "audio/wav", "22");
  put_text(fixture->store, "uploads/a/1.wav", "audio/wav", "1");
  put_text(fixture->store, "uploads-x", "text/plain", "4444");
  put_text(fixture->store, "renditions/a.opus", "audio/ogg", "55555");

  /* An unfinished writer's temporary file is never listed. */
  ap_output_t *pending = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_object_store_open_write(fixture->store, "uploads/a/3.wav",
                                              "audio/wav", &pending, &error),
                   AP_OK);
  assert_int_equal(ap_output_write(pending, "x", 1, &error), AP_OK);

  collected_t all = {0};
  assert_int_equal(
      ap_object_store_list(fixture->store, "", collect, &all, &error), AP_OK);
  assert_string_equal(all.keys, "renditions/a.opus;uploads-x;uploads/a/1.wav;"
                                "uploads/a/2.wav;uploads/b/1.wav;");
  assert_int_equal(all.total_size, 15);

  collected_t directory = {0};
  assert_int_equal(ap_object_store_list(fixture->store, "uploads/", collect,
                                        &directory, &error),
                   AP_OK);
  assert_string_equal(directory.keys,
                      "uploads/a/1.wav;uploads/a/2.wav;uploads/b/1.wav;");

  collected_t partial = {0};
  assert_int_equal(ap_object_store_list(fixture->store, "uploads", collect,
                                        &partial, &error),
                   AP_OK);
  assert_int_equal(partial.count, 4);

  collected_t name_part = {0};
  assert_int_equal(ap_object_store_list(fixture->store, "uploads/a/2", collect,
                                        &name_part, &error),
                   AP_OK);
  assert_string_equal(name_part.keys, "uploads/a/2.wav;");

  collected_t none = {0};
  assert_int_equal(ap_object_store_list(fixture->store, "nothing/here/",
                                        collect, &none, &error),
                   AP_OK);
  assert_int_equal(none.count, 0);

  collected_t first = {.stop_after = 1};
  assert_int_equal(
      ap_object_store_list(fixture->store, "", collect, &first, &error), AP_OK);
  assert_string_equal(first.keys, "renditions/a.opus;");

  collected_t invalid = {0};
  assert_int_equal(
      ap_object_store_list(fixture->store, "../", collect, &invalid, &error),
      AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(ap_object_store_list(fixture->store, "/uploads", collect,
                                        &invalid, &error),
                   AP_ERR_INVALID_ARGUMENT);
  assert_int_equal(invalid.count, 0);

  ap_output_close(pending);
}

/* ---- Streaming upload ------------------------------------------------ */

static void upload_exact_body_commits(void **state) {
  fixture_t *fixture = *state;
  ap_object_upload_t *upload = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_object_upload_begin(fixture->store, "uploads/exact",
                                          "audio/wav", 10, &upload, &error),
                   AP_OK);
  assert_int_equal(ap_object_upload_write(upload, "012", 3, &error), AP_OK);
  assert_int_equal(ap_object_upload_write(upload, "345", 3, &error), AP_OK);
  assert_int_equal(ap_object_upload_write(upload, "6789", 4, &error), AP_OK);
  assert_int_equal(ap_object_upload_received(upload), 10);
  assert_int_equal(ap_object_upload_finish(upload, &error), AP_OK);
  ap_object_upload_close(upload);

  char text[32];
  assert_int_equal(
      read_text(fixture->store, "uploads/exact", text, sizeof text), 10);
  assert_string_equal(text, "0123456789");
  ap_object_info_t info;
  assert_int_equal(
      ap_object_store_stat(fixture->store, "uploads/exact", &info, &error),
      AP_OK);
  assert_string_equal(info.content_type, "audio/wav");
}

static void upload_oversized_body_rejected(void **state) {
  fixture_t *fixture = *state;
  put_text(fixture->store, "uploads/kept", "audio/wav", "previous");

  ap_object_upload_t *upload = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_object_upload_begin(fixture->store, "uploads/kept",
                                          "audio/wav", 10, &upload, &error),
                   AP_OK);
  assert_int_equal(ap_object_upload_write(upload, "012345", 6, &error), AP_OK);
  assert_int_equal(ap_object_upload_write(upload, "6789X", 5, &error),
                   AP_ERR_UPLOAD_TOO_LARGE);
  assert_non_null(strstr(error.message, "10 bytes"));
  ap_error_t later = {0};
  assert_int_equal(ap_object_upload_write(upload, "", 0, &later),
                   AP_ERR_UPLOAD_TOO_LARGE);
  assert_int_equal(ap_object_upload_finish(upload, &later),
                   AP_ERR_UPLOAD_TOO_LARGE);
  ap_object_upload_close(upload);

  char text[32];
  assert_int_equal(read_text(fixture->store, "uploads/kept", text, sizeof text),
                   8);
  assert_string_equal(text, "previous");
  char directory[700];
  snprintf(directory, sizeof directory, "%s/uploads", fixture->root);
  assert_int_equal(count_entries(directory), 1);
}

static void upload_short_body_rejected(void **state) {
  fixture_t *fixture = *state;
  ap_object_upload_t *upload = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_object_upload_begin(fixture->store, "uploads/short",
                                          "audio/wav", 10, &upload, &error),
                   AP_OK);
  assert_int_equal(ap_object_upload_write(upload, "01234", 5, &error), AP_OK);
  assert_int_equal(ap_object_upload_finish(upload, &error),
                   AP_ERR_SIZE_MISMATCH);
  assert_non_null(strstr(error.message, "5 of the 10"));
  ap_object_upload_close(upload);

  ap_object_info_t info;
  assert_int_equal(
      ap_object_store_stat(fixture->store, "uploads/short", &info, &error),
      AP_ERR_NOT_FOUND);
  char directory[700];
  snprintf(directory, sizeof directory, "%s/uploads", fixture->root);
  assert_int_equal(count_entries(directory), 0);
}

static void upload_closed_unfinished_discarded(void **state) {
  fixture_t *fixture = *state;
  ap_object_upload_t *upload = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_object_upload_begin(fixture->store, "uploads/dropped",
                                          "audio/wav", 4, &upload, &error),
                   AP_OK);
  assert_int_equal(ap_object_upload_write(upload, "0123", 4, &error), AP_OK);
  ap_object_upload_close(upload);

  ap_object_info_t info;
  assert_int_equal(
      ap_object_store_stat(fixture->store, "uploads/dropped", &info, &error),
      AP_ERR_NOT_FOUND);
  assert_int_equal(ap_object_upload_begin(fixture->store, "uploads/negative",
                                          "audio/wav", -1, &upload, &error),
                   AP_ERR_INVALID_ARGUMENT);
}

/* ---- Opening --------------------------------------------------------- */

static ap_status_t open_with_uri(const char *uri, ap_error_t *error) {
  ap_config_t *config = NULL;
  assert_int_equal(ap_config_new(&config, error), AP_OK);
  assert_int_equal(ap_config_set(config, "objects.uri", uri, error), AP_OK);
  ap_object_store_t *store = NULL;
  ap_status_t status = ap_object_store_open(config, &store, error);
  if (status == AP_OK) {
    assert_non_null(store);
  } else {
    assert_null(store);
  }
  ap_object_store_close(store);
  ap_config_free(config);
  return status;
}

static void store_open_checks_uri(void **state) {
  fixture_t *fixture = *state;
  ap_error_t error = {0};
  /* s3:// opens the S3 backend, which rejects "bucket/prefix" as a
   * bucket name before sending any request. */
  assert_int_equal(open_with_uri("s3://bucket/prefix", &error),
                   AP_ERR_INVALID_CONFIG);
  assert_non_null(strstr(error.message, "\"bucket/prefix\""));
  assert_int_equal(open_with_uri("ftp://host/x", &error), AP_ERR_UNSUPPORTED);
  assert_non_null(strstr(error.message, "\"ftp\""));
  assert_int_equal(open_with_uri("no-scheme", &error), AP_ERR_INVALID_CONFIG);
  assert_int_equal(open_with_uri("file://", &error), AP_ERR_INVALID_CONFIG);

  /* A relative PATH is relative to the working directory. */
  char previous[1024];
  assert_non_null(getcwd(previous, sizeof previous));
  assert_int_equal(chdir(fixture->directory), 0);
  assert_int_equal(open_with_uri("file://relative/objects", &error), AP_OK);
  assert_int_equal(chdir(previous), 0);
  char created[700];
  snprintf(created, sizeof created, "%s/relative/objects", fixture->directory);
  struct stat info;
  assert_int_equal(stat(created, &info), 0);
  assert_true(S_ISDIR(info.st_mode));
}

static void objects_and_directories_have_modes(void **state) {
  fixture_t *fixture = *state;
  mode_t previous = umask(077);
  put_text(fixture->store, "mode/check", "text/plain", "x");
  umask(previous);

  char path[700];
  struct stat info;
  snprintf(path, sizeof path, "%s/mode/check", fixture->root);
  assert_int_equal(stat(path, &info), 0);
  assert_int_equal(info.st_mode & 0777, 0644);
}

#define STORE_TEST(name)                                                       \
  cmocka_unit_test_setup_teardown(name, setup_store, teardown_store)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(key_validation_table),
      STORE_TEST(key_stops_at_nul_byte),
      STORE_TEST(longest_key_round_trips),
      STORE_TEST(evil_keys_rejected_by_every_call),
      STORE_TEST(symlink_in_root_not_followed),
      STORE_TEST(listing_skips_links_and_fifos),
      STORE_TEST(abandoned_output_leaves_nothing),
      STORE_TEST(reader_never_sees_partial_object),
      STORE_TEST(concurrent_readers_see_whole_versions),
      STORE_TEST(output_can_seek_to_rewrite_header),
      STORE_TEST(write_conflicts_reported),
      STORE_TEST(content_type_checked_and_defaulted),
      STORE_TEST(stat_reports_size_type_time),
      STORE_TEST(ranged_read_of_tail),
      STORE_TEST(probe_reads_moov_through_store),
      STORE_TEST(delete_is_idempotent),
      STORE_TEST(delete_prunes_empty_directories),
      STORE_TEST(write_delete_churn_never_fails),
      STORE_TEST(list_by_prefix),
      STORE_TEST(upload_exact_body_commits),
      STORE_TEST(upload_oversized_body_rejected),
      STORE_TEST(upload_short_body_rejected),
      STORE_TEST(upload_closed_unfinished_discarded),
      STORE_TEST(store_open_checks_uri),
      STORE_TEST(objects_and_directories_have_modes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
