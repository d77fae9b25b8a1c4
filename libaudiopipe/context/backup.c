/*
 * Backup and restore of the embedded backends: the SQLite metadata file
 * through SQLite's online backup API, and the file object store as a
 * copy of its files with a manifest.
 *
 * A backup directory contains:
 *   meta.db    a self-contained SQLite file (journal_mode DELETE)
 *   objects/   every object file, at the same relative paths as the root
 *   MANIFEST   one line per copied object: "<size in bytes> <key>"
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "context/context_internal.h"
#include "core/error_internal.h"

/* Pages copied per sqlite3_backup_step, so writers get the lock back
 * between steps (4096-byte pages: 4 MiB per step). */
#define BACKUP_PAGES_PER_STEP 1024

/* Restarts tolerated before the rest is copied in one step. Each write by
 * another connection restarts a paged backup. One step of -1 copies
 * everything inside one read transaction, and in WAL mode a reader does
 * not block writers. */
#define BACKUP_MAX_RESTARTS 3

/* Milliseconds a step waits for a lock before retrying, and how many
 * retries make the backup fail with AP_ERR_UNAVAILABLE. */
#define BACKUP_BUSY_SLEEP_MS 20
#define BACKUP_BUSY_RETRIES 500

static void sleep_milliseconds(long milliseconds) {
  struct timespec pause = {milliseconds / 1000,
                           (milliseconds % 1000) * 1000000L};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
  }
}

/* Stores the path of a sqlite:// or file:// URI, or fails naming `key`. */
static ap_status_t uri_path(const char *uri, const char *scheme,
                            const char *key, const char **path,
                            ap_error_t *error) {
  size_t length = strlen(scheme);
  if (!uri || strncmp(uri, scheme, length) != 0 || uri[length] == '\0') {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_UNSUPPORTED,
                        "%s = %s: backup supports only %sPATH; back up other "
                        "backends with their own tools (docs/operations.md)",
                        key, uri ? uri : "(unset)", scheme);
  }
  *path = uri + length;
  return AP_OK;
}

static ap_status_t join_path(char *out, const char *directory, const char *name,
                             ap_error_t *error) {
  int written = snprintf(out, PATH_MAX, "%s/%s", directory, name);
  if (written < 0 || written >= PATH_MAX) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_INVALID_ARGUMENT,
                        "path \"%s/%s\" is longer than %d bytes", directory,
                        name, PATH_MAX - 1);
  }
  return AP_OK;
}

/* Copies the database `source` into the new file `destination` page by
 * page, reporting progress. `journal_mode` is set on the copy. */
static ap_status_t copy_database(const char *source, const char *destination,
                                 const char *journal_mode,
                                 ap_backup_progress_fn progress,
                                 void *user_data, ap_error_t *error) {
  sqlite3 *from = NULL;
  sqlite3 *to = NULL;
  ap_status_t status = AP_OK;
  int rc = sqlite3_open_v2(source, &from, SQLITE_OPEN_READONLY, NULL);
  if (rc != SQLITE_OK) {
    status = ap_error_set(error, AP_DOMAIN_META, AP_ERR_IO,
                          "cannot open database \"%s\" to copy it: %s", source,
                          from ? sqlite3_errmsg(from) : sqlite3_errstr(rc));
    goto done;
  }
  sqlite3_busy_timeout(from, 5000);
  rc = sqlite3_open_v2(destination, &to,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) {
    status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                          "cannot create database \"%s\": %s", destination,
                          to ? sqlite3_errmsg(to) : sqlite3_errstr(rc));
    goto done;
  }

  sqlite3_backup *backup = sqlite3_backup_init(to, "main", from, "main");
  if (!backup) {
    status = ap_error_set(error, AP_DOMAIN_META, AP_ERR_IO,
                          "cannot start the backup of \"%s\": %s", source,
                          sqlite3_errmsg(to));
    goto done;
  }
  int restarts = 0;
  int busy = 0;
  int last_remaining = -1;
  int pages = BACKUP_PAGES_PER_STEP;
  for (;;) {
    rc = sqlite3_backup_step(backup, pages);
    int remaining = sqlite3_backup_remaining(backup);
    int total = sqlite3_backup_pagecount(backup);
    if (progress && (rc == SQLITE_OK || rc == SQLITE_DONE)) {
      progress(user_data, (int64_t)(total - remaining), (int64_t)total);
    }
    if (rc == SQLITE_DONE) {
      break;
    }
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      if (++busy > BACKUP_BUSY_RETRIES) {
        break;
      }
      sleep_milliseconds(BACKUP_BUSY_SLEEP_MS);
      continue;
    }
    if (rc != SQLITE_OK) {
      break;
    }
    /* A count that went up means a writer restarted the copy. */
    if (last_remaining >= 0 && remaining > last_remaining &&
        ++restarts >= BACKUP_MAX_RESTARTS) {
      pages = -1;
    }
    last_remaining = remaining;
  }
  sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    status = ap_error_set(error, AP_DOMAIN_META,
                          rc == SQLITE_BUSY || rc == SQLITE_LOCKED
                              ? AP_ERR_UNAVAILABLE
                              : AP_ERR_IO,
                          "copying database \"%s\" to \"%s\" failed: %s",
                          source, destination, sqlite3_errstr(rc));
    goto done;
  }

  char pragma[64];
  snprintf(pragma, sizeof pragma, "PRAGMA journal_mode=%s", journal_mode);
  char *message = NULL;
  if (sqlite3_exec(to, pragma, NULL, NULL, &message) != SQLITE_OK) {
    status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                          "setting journal_mode=%s on \"%s\" failed: %s",
                          journal_mode, destination,
                          message ? message : "unknown error");
    sqlite3_free(message);
    goto done;
  }

  sqlite3_stmt *check = NULL;
  if (sqlite3_prepare_v2(to, "PRAGMA integrity_check", -1, &check, NULL) !=
      SQLITE_OK) {
    status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                          "cannot check the integrity of \"%s\": %s",
                          destination, sqlite3_errmsg(to));
    goto done;
  }
  rc = sqlite3_step(check);
  const unsigned char *verdict =
      rc == SQLITE_ROW ? sqlite3_column_text(check, 0) : NULL;
  if (!verdict || strcmp((const char *)verdict, "ok") != 0) {
    status =
        ap_error_set(error, AP_DOMAIN_META, AP_ERR_IO,
                     "the copy \"%s\" fails integrity_check: %s", destination,
                     verdict ? (const char *)verdict : sqlite3_errmsg(to));
  }
  sqlite3_finalize(check);

done:
  sqlite3_close(to);
  sqlite3_close(from);
  return status;
}

static ap_status_t copy_file(int source_directory, const char *name,
                             const char *destination, int64_t *size,
                             int *vanished, ap_error_t *error) {
  *vanished = 0;
  int input = openat(source_directory, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (input < 0) {
    if (errno == ENOENT) {
      /* Deleted since the listing: not part of this backup. */
      *vanished = 1;
      return AP_OK;
    }
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                        "cannot open object \"%s\" to copy it: %s", destination,
                        strerror(errno));
  }
  int output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (output < 0) {
    int saved = errno;
    close(input);
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                        "cannot create \"%s\": %s", destination,
                        strerror(saved));
  }
  ap_status_t status = AP_OK;
  char buffer[65536];
  *size = 0;
  for (;;) {
    ssize_t got = read(input, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0) {
      status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                            "reading an object for \"%s\" failed: %s",
                            destination, strerror(errno));
      break;
    }
    if (got == 0) {
      break;
    }
    for (ssize_t offset = 0; offset < got;) {
      ssize_t put = write(output, buffer + offset, (size_t)(got - offset));
      if (put < 0 && errno == EINTR) {
        continue;
      }
      if (put < 0) {
        status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                              "writing \"%s\" failed: %s", destination,
                              strerror(errno));
        break;
      }
      offset += put;
    }
    if (status != AP_OK) {
      break;
    }
    *size += got;
  }
  if (status == AP_OK && fsync(output) != 0) {
    status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                          "fsync of \"%s\" failed: %s", destination,
                          strerror(errno));
  }
  close(input);
  if (close(output) != 0 && status == AP_OK) {
    status =
        ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                     "closing \"%s\" failed: %s", destination, strerror(errno));
  }
  return status;
}

/* Copies the tree below `source` into `destination` (created), skipping
 * dot entries: the file store's ".tmp-" files are writes in progress.
 * `key` is the path relative to the root, "" at the top. Appends one
 * manifest line per copied file when `manifest` is not NULL. */
static ap_status_t copy_tree(const char *source, const char *destination,
                             const char *key, FILE *manifest, int64_t *objects,
                             ap_error_t *error) {
  if (mkdir(destination, 0750) != 0 && errno != EEXIST) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                        "cannot create directory \"%s\": %s", destination,
                        strerror(errno));
  }
  DIR *directory = opendir(source);
  if (!directory) {
    if (errno == ENOENT && *key != '\0') {
      return AP_OK; /* pruned since its parent was listed */
    }
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                        "cannot list \"%s\": %s", source, strerror(errno));
  }
  ap_status_t status = AP_OK;
  struct dirent *entry;
  char *from = malloc(PATH_MAX);
  char *to = malloc(PATH_MAX);
  char *child_key = malloc(PATH_MAX);
  if (!from || !to || !child_key) {
    status = AP_NO_MEMORY(error);
  }
  while (status == AP_OK && (entry = readdir(directory)) != NULL) {
    if (entry->d_name[0] == '.') {
      continue;
    }
    status = join_path(from, source, entry->d_name, error);
    if (status == AP_OK) {
      status = join_path(to, destination, entry->d_name, error);
    }
    if (status == AP_OK) {
      status = *key ? join_path(child_key, key, entry->d_name, error)
                    : join_path(child_key, ".", entry->d_name, error);
    }
    if (status != AP_OK) {
      break;
    }
    const char *relative = *key ? child_key : child_key + 2;
    struct stat info;
    if (fstatat(dirfd(directory), entry->d_name, &info, AT_SYMLINK_NOFOLLOW) !=
        0) {
      if (errno == ENOENT) {
        continue;
      }
      status = ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                            "cannot stat \"%s\": %s", from, strerror(errno));
      break;
    }
    if (S_ISDIR(info.st_mode)) {
      status = copy_tree(from, to, relative, manifest, objects, error);
    } else if (S_ISREG(info.st_mode)) {
      int64_t size = 0;
      int vanished = 0;
      status = copy_file(dirfd(directory), entry->d_name, to, &size, &vanished,
                         error);
      if (status == AP_OK && !vanished) {
        (*objects)++;
        if (manifest) {
          fprintf(manifest, "%lld %s\n", (long long)size, relative);
        }
      }
    }
    /* Anything else (a planted symbolic link, a socket) is not an object
     * the file store wrote, so it is left out. */
  }
  free(from);
  free(to);
  free(child_key);
  closedir(directory);
  return status;
}

/* Fails unless `path` is missing or an empty directory. */
static ap_status_t require_empty(const char *path, const char *what,
                                 ap_error_t *error) {
  DIR *directory = opendir(path);
  if (!directory) {
    if (errno == ENOENT) {
      return AP_OK;
    }
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_CONFLICT,
                        "%s \"%s\" exists and is not an empty directory: "
                        "choose a new path",
                        what, path);
  }
  struct dirent *entry;
  int empty = 1;
  while ((entry = readdir(directory)) != NULL) {
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
      empty = 0;
      break;
    }
  }
  closedir(directory);
  if (!empty) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_CONFLICT,
                        "%s \"%s\" is not empty: choose a new path", what,
                        path);
  }
  return AP_OK;
}

ap_status_t ap_context_backup(ap_context_t *context, const char *destination,
                              ap_backup_progress_fn progress, void *user_data,
                              ap_backup_summary_t *summary, ap_error_t *error) {
  if (!context || !destination || !*destination) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_context_backup: context and destination are "
                        "required");
  }
  const ap_config_t *config = ap_context_config(context);
  const char *database = NULL;
  const char *objects_root = NULL;
  ap_status_t status = uri_path(ap_config_get(config, "metadata.uri"),
                                "sqlite://", "metadata.uri", &database, error);
  if (status == AP_OK) {
    status = uri_path(ap_config_get(config, "objects.uri"), "file://",
                      "objects.uri", &objects_root, error);
  }
  if (status == AP_OK) {
    status = require_empty(destination, "backup destination", error);
  }
  if (status != AP_OK) {
    return status;
  }
  if (mkdir(destination, 0750) != 0 && errno != EEXIST) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                        "cannot create backup destination \"%s\": %s",
                        destination, strerror(errno));
  }

  /* The database first: objects are written before the rows that name
   * them, so every object the copied rows reference is already on disk
   * when the object copy starts.
   * NOTE: an object deleted between the snapshot and its copy is missing
   * from the backup although its row is present. */
  char path[PATH_MAX];
  status = join_path(path, destination, "meta.db", error);
  if (status == AP_OK) {
    status =
        copy_database(database, path, "DELETE", progress, user_data, error);
  }
  if (status != AP_OK) {
    return status;
  }

  status = join_path(path, destination, "MANIFEST", error);
  if (status != AP_OK) {
    return status;
  }
  FILE *manifest = fopen(path, "we");
  if (!manifest) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                        "cannot create \"%s\": %s", path, strerror(errno));
  }
  int64_t objects = 0;
  status = join_path(path, destination, "objects", error);
  if (status == AP_OK) {
    status = copy_tree(objects_root, path, "", manifest, &objects, error);
  }
  if (fclose(manifest) != 0 && status == AP_OK) {
    status = ap_error_set(error, AP_DOMAIN_IO, AP_ERR_IO,
                          "writing the manifest of \"%s\" failed: %s",
                          destination, strerror(errno));
  }
  if (status == AP_OK && summary) {
    summary->objects = objects;
  }
  return status;
}

ap_status_t ap_context_restore(const ap_config_t *config, const char *source,
                               ap_backup_progress_fn progress, void *user_data,
                               ap_error_t *error) {
  if (!config || !source || !*source) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_context_restore: config and source are required");
  }
  const char *database = NULL;
  const char *objects_root = NULL;
  ap_status_t status = uri_path(ap_config_get(config, "metadata.uri"),
                                "sqlite://", "metadata.uri", &database, error);
  if (status == AP_OK) {
    status = uri_path(ap_config_get(config, "objects.uri"), "file://",
                      "objects.uri", &objects_root, error);
  }
  if (status != AP_OK) {
    return status;
  }

  /* Restoring never overwrites: a live database or store is moved aside
   * by the operator first. */
  struct stat info;
  if (stat(database, &info) == 0) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_CONFLICT,
                        "metadata database \"%s\" already exists: restore "
                        "into a new path or move it aside",
                        database);
  }
  status = require_empty(objects_root, "object store root", error);
  if (status != AP_OK) {
    return status;
  }

  char path[PATH_MAX];
  status = join_path(path, source, "meta.db", error);
  if (status != AP_OK) {
    return status;
  }
  if (stat(path, &info) != 0) {
    return ap_error_set(error, AP_DOMAIN_IO, AP_ERR_NOT_FOUND,
                        "\"%s\" is not a backup: %s is missing", source, path);
  }
  status = copy_database(path, database, "WAL", progress, user_data, error);
  if (status != AP_OK) {
    return status;
  }
  int64_t objects = 0;
  status = join_path(path, source, "objects", error);
  if (status == AP_OK) {
    status = copy_tree(path, objects_root, "", NULL, &objects, error);
  }
  return status;
}
