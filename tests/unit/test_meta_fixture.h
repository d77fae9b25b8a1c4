/*
 * Shared setup of the context, metadata, job and upload tests: a fresh
 * directory under TMPDIR holding a SQLite database and a file object
 * store, and a configuration that points at them.
 */
#ifndef AP_TEST_META_FIXTURE_H
#define AP_TEST_META_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include <audiopipe/config.h>
#include <audiopipe/context.h>

#define TEST_SECRET "test-secret-0123456789abcdef0123456789abcdef"

typedef struct meta_fixture {
  char directory[512];
  char database[600];
  ap_config_t *config;
  ap_context_t *context;
} meta_fixture_t;

/* Creates the directory and configuration; does not open a context. */
static inline int meta_fixture_prepare(meta_fixture_t *fixture) {
  memset(fixture, 0, sizeof *fixture);
  const char *tmp = getenv("TMPDIR");
  snprintf(fixture->directory, sizeof fixture->directory, "%s/apmetaXXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(fixture->directory)) {
    return -1;
  }
  snprintf(fixture->database, sizeof fixture->database, "%s/meta.db",
           fixture->directory);
  char uri[700];
  if (ap_config_new(&fixture->config, NULL) != AP_OK) {
    return -1;
  }
  snprintf(uri, sizeof uri, "sqlite://%s", fixture->database);
  int failed = ap_config_set(fixture->config, "metadata.uri", uri, NULL);
  snprintf(uri, sizeof uri, "file://%s/objects", fixture->directory);
  failed |= ap_config_set(fixture->config, "objects.uri", uri, NULL);
  failed |= ap_config_set(fixture->config, "signing.secret", TEST_SECRET, NULL);
  failed |= ap_config_set(fixture->config, "public.base_url",
                          "http://127.0.0.1:8080", NULL);
  failed |= ap_config_set(fixture->config, "jobs.retry_base", "0ms", NULL);
  failed |= ap_config_set(fixture->config, "jobs.watch_interval", "5ms", NULL);
  return failed ? -1 : 0;
}

static inline int meta_fixture_open(meta_fixture_t *fixture) {
  ap_error_t error;
  ap_error_clear(&error);
  if (ap_context_open(fixture->config, &fixture->context, &error) != AP_OK) {
    fprintf(stderr, "ap_context_open: %s\n", error.message);
    return -1;
  }
  return 0;
}

/* Counts the rows of `table` in the SQLite file `database` on a
 * connection of its own; -1 when the query fails. */
static inline int meta_fixture_count_rows(const char *database,
                                          const char *table) {
  sqlite3 *db = NULL;
  if (sqlite3_open(database, &db) != SQLITE_OK) {
    sqlite3_close(db);
    return -1;
  }
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
  sqlite3_stmt *statement = NULL;
  int count = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &statement, NULL) == SQLITE_OK &&
      sqlite3_step(statement) == SQLITE_ROW) {
    count = sqlite3_column_int(statement, 0);
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return count;
}

static inline void meta_fixture_close(meta_fixture_t *fixture) {
  ap_context_close(fixture->context);
  fixture->context = NULL;
  ap_config_free(fixture->config);
  fixture->config = NULL;
  char command[600];
  snprintf(command, sizeof command, "rm -rf '%s'", fixture->directory);
  if (system(command) != 0) {
    fprintf(stderr, "could not remove %s\n", fixture->directory);
  }
}

#endif
