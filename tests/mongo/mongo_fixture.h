/*
 * Shared setup of the MongoDB backend tests: which server to use, a
 * database of the test's own in it, and the skip message for the checks
 * the MongoDB-wire test server cannot pass.
 *
 * The server is AUDIOPIPE_TEST_MONGODB_URI when set (a real MongoDB
 * replica set or sharded cluster), else the fixture's test server at
 * AP_TEST_MONGO_URI.
 */
#ifndef AP_TESTS_MONGO_FIXTURE_H
#define AP_TESTS_MONGO_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

/* Returns 1 when the tests run against a real MongoDB. */
static inline int mongo_fixture_is_real(void) {
  const char *uri = getenv("AUDIOPIPE_TEST_MONGODB_URI");
  return uri && *uri;
}

/* Returns the base URI of the server under test. */
static inline const char *mongo_fixture_base_uri(void) {
  return mongo_fixture_is_real() ? getenv("AUDIOPIPE_TEST_MONGODB_URI")
                                 : AP_TEST_MONGO_URI;
}

/*
 * Returns a newly allocated URI (free with free()) for the database
 * `<prefix>_<pid>_<counter>` on the server under test, so tests and runs
 * never share data; NULL when out of memory. The base URI's own database,
 * if any, is replaced, so a base URI with credentials must name its
 * authSource.
 */
static inline char *mongo_fixture_uri(const char *prefix) {
  static int counter;
  const char *base = mongo_fixture_base_uri();
  const char *hosts = strstr(base, "://");
  hosts = hosts ? hosts + 3 : base;
  const char *slash = strchr(hosts, '/');
  const char *query = slash ? strchr(slash, '?') : NULL;
  size_t host_length = slash ? (size_t)(slash - base) : strlen(base);

  size_t size = strlen(base) + strlen(prefix) + 64;
  char *uri = malloc(size);
  if (uri) {
    snprintf(uri, size, "%.*s/%s_%ld_%d%s", (int)host_length, base, prefix,
             (long)getpid(), ++counter, query ? query : "");
  }
  return uri;
}

/* Drops the database of `uri_text`; failures are ignored because the test
 * server forgets everything when it stops anyway. */
static inline void mongo_fixture_drop(const char *uri_text) {
  mongoc_uri_t *uri = mongoc_uri_new(uri_text);
  if (!uri) {
    return;
  }
  mongoc_client_t *client = mongoc_client_new_from_uri(uri);
  if (client) {
    mongoc_database_t *database =
        mongoc_client_get_database(client, mongoc_uri_get_database(uri));
    mongoc_database_drop(database, NULL);
    mongoc_database_destroy(database);
    mongoc_client_destroy(client);
  }
  mongoc_uri_destroy(uri);
}

/* Prints why a check is skipped on the test server; returns 1 when the
 * caller should skip it. */
static inline int mongo_fixture_skip(const char *reason) {
  if (mongo_fixture_is_real()) {
    return 0;
  }
  printf("SKIP (mongo-wire test server): %s\n", reason);
  fflush(stdout);
  return 1;
}

#endif
