/*
 * The local-directory backend: the object "a/b.wav" is the file
 * ROOT/a/b.wav, its content type an extended attribute of that file.
 *
 * Every path is walked one segment at a time with openat(O_NOFOLLOW) from
 * a descriptor of the root. A symbolic link planted inside the root, by a
 * bug or by an attacker with write access to it, is therefore rejected
 * rather than followed out of the root.
 *
 * Writers fill ".tmp-<random>" in the object's directory and rename it
 * over the key once it is complete and fsynced. Keys cannot start a
 * segment with ".", so readers and listings never see a temporary file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/error_internal.h"
#include "storage/storage_internal.h"

/* Extended attribute that stores an object's content type. */
#define CONTENT_TYPE_ATTRIBUTE "user.audiopipe.content_type"

#define DIRECTORY_MODE 0755
#define OBJECT_MODE 0644

typedef struct file_store {
  int root_fd;
  char *root; /* as configured, for messages */
  ap_base_url_t base_url;
  int has_base_url;
  char *secret; /* NULL when signing.secret is unset */
} file_store_t;

/* Builds the error for a segment that cannot be entered: a symbolic link
 * (refused), a file where a directory is needed, or a missing entry. */
static ap_status_t segment_error(const file_store_t *store, int directory_fd,
                                 const char *key, size_t segment_end,
                                 int saved_errno, int creating,
                                 ap_error_t *error) {
  char name[AP_OBJECT_KEY_MAX_LENGTH + 1];
  size_t start = segment_end;
  while (start > 0 && key[start - 1] != '/') {
    start--;
  }
  memcpy(name, key + start, segment_end - start);
  name[segment_end - start] = '\0';

  struct stat info;
  int exists = fstatat(directory_fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && S_ISLNK(info.st_mode)) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_PERMISSION,
                        "\"%.*s\" in object store \"%s\" is a symbolic link, "
                        "which the store never follows: remove it",
                        (int)segment_end, key, store->root);
  }
  if (exists && creating) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_CONFLICT,
                        "cannot store \"%s\": \"%.*s\" in object store "
                        "\"%s\" is not a directory",
                        key, (int)segment_end, key, store->root);
  }
  if (saved_errno == ENOENT || exists) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_NOT_FOUND,
                        "no object \"%s\" in object store \"%s\"", key,
                        store->root);
  }
  return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                      "cannot open \"%.*s\" in object store \"%s\": %s",
                      (int)segment_end, key, store->root,
                      strerror(saved_errno));
}

/*
 * Opens the directory holding the last segment of `key` (the root for
 * a key without "/"), creating missing directories when `create` is set.
 * Stores a descriptor the caller closes and a pointer to the last segment
 * inside `key`; for a prefix ending in "/" that segment is "".
 */
static ap_status_t open_parent(const file_store_t *store, const char *key,
                               int create, int *directory_fd, const char **leaf,
                               ap_error_t *error) {
  /* A new open file description, not a dup: listings read directories
   * through it, and a dup would share the root's read offset. */
  int current = openat(store->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (current < 0) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                        "cannot open the root of object store \"%s\": %s",
                        store->root, strerror(errno));
  }

  const char *segment = key;
  char name[AP_OBJECT_KEY_MAX_LENGTH + 1];
  for (const char *slash = strchr(segment, '/'); slash;
       slash = strchr(segment, '/')) {
    size_t length = (size_t)(slash - segment);
    memcpy(name, segment, length);
    name[length] = '\0';

    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int next = openat(current, name, flags);
    if (next < 0 && errno == ENOENT && create) {
      if (mkdirat(current, name, DIRECTORY_MODE) == 0) {
        /* Make the new entry durable with the object renamed into it. */
        (void)fsync(current);
      } else if (errno != EEXIST) {
        /* ENOENT: a delete removed the directory `current` meanwhile. */
        int saved = errno;
        close(current);
        return ap_error_set(error, AP_DOMAIN_STORAGE,
                            saved == ENOENT ? AP_ERR_NOT_FOUND : AP_ERR_IO,
                            "cannot create directory \"%.*s\" in object "
                            "store \"%s\": %s",
                            (int)(slash - key), key, store->root,
                            strerror(saved));
      }
      next = openat(current, name, flags);
    }
    if (next < 0) {
      ap_status_t status = segment_error(
          store, current, key, (size_t)(slash - key), errno, create, error);
      close(current);
      return status;
    }
    close(current);
    current = next;
    segment = slash + 1;
  }

  *directory_fd = current;
  *leaf = segment;
  return AP_OK;
}

/* Reads the content type attribute of an open object. */
static void read_content_type(int fd, char *type, size_t size) {
  ssize_t length = fgetxattr(fd, CONTENT_TYPE_ATTRIBUTE, type, size - 1);
  if (length <= 0) {
    snprintf(type, size, "%s", AP_DEFAULT_CONTENT_TYPE);
    return;
  }
  type[length] = '\0';
}

static void fill_info(int fd, const struct stat *status_info,
                      ap_object_info_t *info) {
  info->size = (int64_t)status_info->st_size;
  info->last_modified_ms = (int64_t)status_info->st_mtim.tv_sec * 1000 +
                           status_info->st_mtim.tv_nsec / 1000000;
  read_content_type(fd, info->content_type, sizeof info->content_type);
}

/*
 * Opens the object `key` read-only. O_NONBLOCK keeps a FIFO planted in
 * the root from blocking the open; anything but a regular file is then
 * refused.
 */
static ap_status_t open_object(const file_store_t *store, const char *key,
                               int *fd_out, struct stat *status_info,
                               ap_error_t *error) {
  int directory_fd = -1;
  const char *leaf = NULL;
  ap_status_t status = open_parent(store, key, 0, &directory_fd, &leaf, error);
  if (status != AP_OK) {
    return status;
  }

  int fd = openat(directory_fd, leaf,
                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    status =
        segment_error(store, directory_fd, key, strlen(key), errno, 0, error);
    close(directory_fd);
    return status;
  }
  close(directory_fd);

  if (fstat(fd, status_info) != 0) {
    int saved = errno;
    close(fd);
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                        "cannot stat object \"%s\" in \"%s\": %s", key,
                        store->root, strerror(saved));
  }
  if (S_ISDIR(status_info->st_mode)) {
    close(fd);
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_NOT_FOUND,
                        "no object \"%s\" in object store \"%s\" (only a "
                        "directory of objects below it)",
                        key, store->root);
  }
  if (!S_ISREG(status_info->st_mode)) {
    close(fd);
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_PERMISSION,
                        "\"%s\" in object store \"%s\" is not a regular file: "
                        "remove it",
                        key, store->root);
  }
  *fd_out = fd;
  return AP_OK;
}

static ap_status_t file_stat(void *state, const char *key,
                             ap_object_info_t *info, ap_error_t *error) {
  int fd = -1;
  struct stat status_info;
  ap_status_t status = open_object(state, key, &fd, &status_info, error);
  if (status != AP_OK) {
    return status;
  }
  fill_info(fd, &status_info, info);
  close(fd);
  return AP_OK;
}

/* ---- Reading -------------------------------------------------------- */

/* A reader keeps its own offset and uses pread, and its size is fixed at
 * open: a rename over the key later leaves this inode unchanged. */
typedef struct file_reader {
  int fd;
  int64_t size;
  int64_t position;
} file_reader_t;

static int64_t reader_read(void *user_data, void *buffer, size_t size,
                           ap_error_t *error) {
  file_reader_t *reader = user_data;
  if (reader->position >= reader->size) {
    return 0;
  }
  uint64_t left = (uint64_t)(reader->size - reader->position);
  size_t take = (uint64_t)size < left ? size : (size_t)left;
  ssize_t count;
  do {
    count = pread(reader->fd, buffer, take, (off_t)reader->position);
  } while (count < 0 && errno == EINTR);
  if (count < 0) {
    ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                 "reading an object at byte %lld failed: %s",
                 (long long)reader->position, strerror(errno));
    return -1;
  }
  reader->position += count;
  return count;
}

static int64_t reader_seek(void *user_data, int64_t offset, int whence,
                           ap_error_t *error) {
  file_reader_t *reader = user_data;
  int64_t base = whence == AP_SEEK_SET   ? 0
                 : whence == AP_SEEK_CUR ? reader->position
                                         : reader->size;
  if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0) {
    ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_ARGUMENT,
                 "seek to offset %lld from byte %lld is out of range",
                 (long long)offset, (long long)base);
    return -1;
  }
  reader->position = base + offset;
  return reader->position;
}

static int64_t reader_size(void *user_data) {
  return ((file_reader_t *)user_data)->size;
}

static void reader_close(void *user_data) {
  file_reader_t *reader = user_data;
  close(reader->fd);
  free(reader);
}

static ap_status_t file_open_read(void *state, const char *key, ap_io_t **out,
                                  ap_error_t *error) {
  int fd = -1;
  struct stat status_info;
  ap_status_t status = open_object(state, key, &fd, &status_info, error);
  if (status != AP_OK) {
    return status;
  }
  file_reader_t *reader = calloc(1, sizeof *reader);
  if (!reader) {
    close(fd);
    return AP_NO_MEMORY(error);
  }
  reader->fd = fd;
  reader->size = (int64_t)status_info.st_size;

  ap_io_callbacks_t callbacks = {
      .struct_size = sizeof callbacks,
      .read = reader_read,
      .seek = reader_seek,
      .size = reader_size,
      .close = reader_close,
  };
  status = ap_io_open_callbacks(&callbacks, reader, out, error);
  if (status != AP_OK) {
    reader_close(reader);
  }
  return status;
}

/* ---- Writing -------------------------------------------------------- */

typedef struct file_writer {
  const file_store_t *store;
  int directory_fd;
  int fd;             /* -1 once closed */
  int done;           /* committed or discarded */
  int exclusive;      /* commit only if no object exists under the key */
  char temporary[32]; /* ".tmp-" and 16 hex digits */
  char *key;
  const char *leaf; /* inside `key` */
} file_writer_t;

static void writer_discard(file_writer_t *writer) {
  if (writer->done) {
    return;
  }
  if (writer->fd >= 0) {
    close(writer->fd);
    writer->fd = -1;
  }
  (void)unlinkat(writer->directory_fd, writer->temporary, 0);
  writer->done = 1;
}

static void writer_free(file_writer_t *writer) {
  writer_discard(writer);
  if (writer->directory_fd >= 0) {
    close(writer->directory_fd);
  }
  free(writer->key);
  free(writer);
}

static int writer_write(void *user_data, const void *data, size_t size,
                        ap_error_t *error) {
  file_writer_t *writer = user_data;
  const unsigned char *cursor = data;
  while (size > 0) {
    ssize_t written = write(writer->fd, cursor, size);
    if (written < 0 && errno == EINTR) {
      continue;
    }
    if (written < 0) {
      ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                   "writing object \"%s\" in \"%s\" failed: %s", writer->key,
                   writer->store->root, strerror(errno));
      return -1;
    }
    cursor += written;
    size -= (size_t)written;
  }
  return 0;
}

static int64_t writer_seek(void *user_data, int64_t offset, int whence,
                           ap_error_t *error) {
  file_writer_t *writer = user_data;
  off_t moved = lseek(writer->fd, (off_t)offset, whence);
  if (moved < 0) {
    ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                 "seeking in object \"%s\" failed: %s", writer->key,
                 strerror(errno));
    return -1;
  }
  return (int64_t)moved;
}

/* Moves the finished temporary file to the key. An exclusive writer never
 * replaces an existing object and fails with errno EEXIST instead. It
 * uses RENAME_NOREPLACE, or a hard link and an unlink on a file system
 * without it, because a link also fails when the name exists. */
static int publish(file_writer_t *writer) {
  if (!writer->exclusive) {
    return renameat(writer->directory_fd, writer->temporary,
                    writer->directory_fd, writer->leaf);
  }
  if (renameat2(writer->directory_fd, writer->temporary, writer->directory_fd,
                writer->leaf, RENAME_NOREPLACE) == 0) {
    return 0;
  }
  if (errno != EINVAL && errno != ENOSYS) {
    return -1;
  }
  if (linkat(writer->directory_fd, writer->temporary, writer->directory_fd,
             writer->leaf, 0) != 0) {
    return -1;
  }
  (void)unlinkat(writer->directory_fd, writer->temporary, 0);
  return 0;
}

/* Makes the object durable and visible: fsync, rename, fsync of the
 * directory, so after a crash the key names the old or the new object. */
static int writer_commit(file_writer_t *writer, ap_error_t *error) {
  const char *step = "fsync";
  int failed = fsync(writer->fd) != 0;
  if (!failed) {
    step = "close";
    failed = close(writer->fd) != 0;
    writer->fd = -1;
  }
  if (!failed) {
    step = "rename";
    failed = publish(writer) != 0;
  }
  if (failed) {
    int saved = errno;
    writer_discard(writer);
    if (saved == EEXIST && writer->exclusive) {
      ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_CONFLICT,
                   "object \"%s\" already exists and a presigned upload "
                   "stores one object: create a new upload to send another "
                   "file",
                   writer->key);
      return -1;
    }
    ap_status_t code =
        saved == EISDIR || saved == ENOTEMPTY ? AP_ERR_CONFLICT : AP_ERR_IO;
    ap_error_set(error, AP_DOMAIN_STORAGE, (ap_error_code_t)code,
                 "committing object \"%s\" in \"%s\" failed at %s: %s",
                 writer->key, writer->store->root, step, strerror(saved));
    return -1;
  }
  writer->done = 1;
  if (fsync(writer->directory_fd) != 0) {
    ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                 "object \"%s\" is in place but fsync of its directory in "
                 "\"%s\" failed: %s",
                 writer->key, writer->store->root, strerror(errno));
    return -1;
  }
  return 0;
}

/*
 * ap_output_finish calls this with failed = 0. When the commit fails,
 * ap_output_close calls it again with failed = 1, so the writer is freed
 * only on a successful commit or on the abandoning call.
 */
static int writer_close(void *user_data, int failed, ap_error_t *error) {
  file_writer_t *writer = user_data;
  if (failed) {
    writer_free(writer);
    return 0;
  }
  if (writer_commit(writer, error) != 0) {
    return -1;
  }
  writer_free(writer);
  return 0;
}

/* NOTE: a process killed while writing leaves its ".tmp-" file behind.
 * Nothing removes such files yet; they are invisible to keys and
 * listings but use disk space. */
static ap_status_t create_temporary(file_writer_t *writer, ap_error_t *error) {
  for (int attempt = 0; attempt < 8; attempt++) {
    unsigned char random[8];
    if (RAND_bytes(random, sizeof random) != 1) {
      return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INTERNAL,
                          "OpenSSL RAND_bytes failed");
    }
    static const char digits[] = "0123456789abcdef";
    memcpy(writer->temporary, ".tmp-", 5);
    for (size_t i = 0; i < sizeof random; i++) {
      writer->temporary[5 + 2 * i] = digits[random[i] >> 4];
      writer->temporary[6 + 2 * i] = digits[random[i] & 0x0f];
    }
    writer->temporary[5 + 2 * sizeof random] = '\0';

    writer->fd = openat(writer->directory_fd, writer->temporary,
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        OBJECT_MODE);
    if (writer->fd >= 0) {
      /* The umask may have removed bits; objects are 0644 regardless. */
      (void)fchmod(writer->fd, OBJECT_MODE);
      return AP_OK;
    }
    if (errno != EEXIST) {
      break;
    }
  }
  int saved = errno;
  return ap_error_set(error, AP_DOMAIN_STORAGE,
                      saved == ENOENT ? AP_ERR_NOT_FOUND : AP_ERR_IO,
                      "cannot create a temporary file for \"%s\" in object "
                      "store \"%s\": %s",
                      writer->key, writer->store->root, strerror(saved));
}

/*
 * Opens the key's directory, creating it as needed, and creates the
 * temporary file in it. A delete that empties the directory removes it,
 * which may happen between the two steps, so the pair is retried then.
 */
static ap_status_t open_directory_and_temporary(file_writer_t *writer,
                                                ap_error_t *error) {
  enum { ATTEMPTS = 4 };
  ap_status_t status = AP_OK;
  for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
    status = open_parent(writer->store, writer->key, 1, &writer->directory_fd,
                         &writer->leaf, error);
    if (status == AP_OK) {
      struct stat existing;
      if (fstatat(writer->directory_fd, writer->leaf, &existing,
                  AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISDIR(existing.st_mode)) {
        return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_CONFLICT,
                            "cannot store \"%s\" in object store \"%s\": "
                            "keys below \"%s/\" exist, so it is a directory",
                            writer->key, writer->store->root, writer->key);
      }
      status = create_temporary(writer, error);
      if (status == AP_OK) {
        return AP_OK;
      }
      close(writer->directory_fd);
      writer->directory_fd = -1;
    }
    if (status != AP_ERR_NOT_FOUND) {
      return status;
    }
  }
  return status;
}

static ap_status_t open_writer(void *state, const char *key,
                               const char *content_type, int exclusive,
                               ap_output_t **out, ap_error_t *error) {
  const file_store_t *store = state;
  file_writer_t *writer = calloc(1, sizeof *writer);
  char *key_copy = strdup(key);
  if (!writer || !key_copy) {
    free(writer);
    free(key_copy);
    return AP_NO_MEMORY(error);
  }
  writer->store = store;
  writer->key = key_copy;
  writer->fd = -1;
  writer->directory_fd = -1;
  writer->done = 1; /* nothing to discard until the temporary exists */
  writer->exclusive = exclusive;

  ap_status_t status = open_directory_and_temporary(writer, error);
  if (status != AP_OK) {
    writer_free(writer);
    return status;
  }
  writer->done = 0;

  if (fsetxattr(writer->fd, CONTENT_TYPE_ATTRIBUTE, content_type,
                strlen(content_type), 0) != 0) {
    int saved = errno;
    writer_free(writer);
    if (saved == ENOTSUP) {
      return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_UNSUPPORTED,
                          "the filesystem of object store \"%s\" does not "
                          "support user extended attributes, where content "
                          "types are kept: use ext4, XFS, Btrfs or tmpfs",
                          store->root);
    }
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                        "cannot record the content type of \"%s\" in \"%s\": "
                        "%s",
                        key, store->root, strerror(saved));
  }

  ap_output_callbacks_t callbacks = {
      .struct_size = sizeof callbacks,
      .write = writer_write,
      .seek = writer_seek,
      .close = writer_close,
  };
  status = ap_output_open_callbacks(&callbacks, writer, out, error);
  if (status != AP_OK) {
    writer_free(writer);
  }
  return status;
}

static ap_status_t file_open_write(void *state, const char *key,
                                   const char *content_type, ap_output_t **out,
                                   ap_error_t *error) {
  return open_writer(state, key, content_type, 0, out, error);
}

static ap_status_t file_open_write_exclusive(void *state, const char *key,
                                             const char *content_type,
                                             ap_output_t **out,
                                             ap_error_t *error) {
  return open_writer(state, key, content_type, 1, out, error);
}

/* ---- Deleting and listing ------------------------------------------ */

/*
 * Removes the directories of `key` that a delete left empty, deepest
 * first, and stops at the first one that is not empty. Each is reached
 * through open_parent, so no link is followed. A writer whose directory
 * vanishes this way retries (see open_directory_and_temporary).
 */
static void prune_empty_directories(const file_store_t *store,
                                    const char *key) {
  char path[AP_OBJECT_KEY_MAX_LENGTH + 1];
  snprintf(path, sizeof path, "%s", key);
  for (char *slash = strrchr(path, '/'); slash; slash = strrchr(path, '/')) {
    *slash = '\0';
    int directory_fd = -1;
    const char *leaf = NULL;
    if (open_parent(store, path, 0, &directory_fd, &leaf, NULL) != AP_OK) {
      return;
    }
    int removed = unlinkat(directory_fd, leaf, AT_REMOVEDIR) == 0;
    close(directory_fd);
    if (!removed) {
      return;
    }
  }
}

static ap_status_t file_remove(void *state, const char *key,
                               ap_error_t *error) {
  const file_store_t *store = state;
  int directory_fd = -1;
  const char *leaf = NULL;
  ap_error_t local = {0};
  ap_status_t status = open_parent(store, key, 0, &directory_fd, &leaf, &local);
  if (status == AP_ERR_NOT_FOUND) {
    return AP_OK;
  }
  if (status != AP_OK) {
    if (error) {
      *error = local;
    }
    return status;
  }

  int removed = unlinkat(directory_fd, leaf, 0) == 0;
  int saved = errno;
  close(directory_fd);
  if (removed) {
    prune_empty_directories(store, key);
  }
  if (removed || saved == ENOENT || saved == EISDIR) {
    return AP_OK;
  }
  return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                      "cannot delete object \"%s\" in \"%s\": %s", key,
                      store->root, strerror(saved));
}

typedef struct listed_object {
  char *key;
  ap_object_info_t info;
} listed_object_t;

typedef struct listing {
  listed_object_t *objects;
  size_t count;
  size_t capacity;
} listing_t;

static ap_status_t listing_add(listing_t *listing, const char *key,
                               const ap_object_info_t *info,
                               ap_error_t *error) {
  if (listing->count == listing->capacity) {
    size_t capacity = listing->capacity ? listing->capacity * 2 : 64;
    listed_object_t *grown =
        realloc(listing->objects, capacity * sizeof *listing->objects);
    if (!grown) {
      return AP_NO_MEMORY(error);
    }
    listing->objects = grown;
    listing->capacity = capacity;
  }
  char *copy = strdup(key);
  if (!copy) {
    return AP_NO_MEMORY(error);
  }
  listing->objects[listing->count].key = copy;
  listing->objects[listing->count].info = *info;
  listing->count++;
  return AP_OK;
}

/*
 * Adds every object below `directory_fd`, whose key prefix is the first
 * `key_length` bytes of `key` (a buffer of AP_OBJECT_KEY_MAX_LENGTH + 1
 * bytes). `name_prefix` filters the names of this level only. Entries
 * that vanish while the walk runs, links, and names that are not valid
 * key segments are skipped. Takes ownership of `directory_fd`.
 */
static ap_status_t walk_directory(const file_store_t *store, int directory_fd,
                                  char *key, size_t key_length,
                                  const char *name_prefix, listing_t *listing,
                                  ap_error_t *error) {
  DIR *directory = fdopendir(directory_fd);
  if (!directory) {
    int saved = errno;
    close(directory_fd);
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_IO,
                        "cannot list \"%.*s\" in object store \"%s\": %s",
                        (int)key_length, key, store->root, strerror(saved));
  }

  size_t name_prefix_length = strlen(name_prefix);
  ap_status_t status = AP_OK;
  struct dirent *entry;
  while (status == AP_OK && (entry = readdir(directory)) != NULL) {
    const char *name = entry->d_name;
    size_t name_length = strlen(name);
    if (name[0] == '.' || strncmp(name, name_prefix, name_prefix_length) != 0 ||
        ap_object_key_validate(name, NULL) != AP_OK ||
        key_length + name_length > AP_OBJECT_KEY_MAX_LENGTH) {
      continue;
    }
    struct stat info;
    if (fstatat(dirfd(directory), name, &info, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;
    }
    memcpy(key + key_length, name, name_length + 1);

    if (S_ISDIR(info.st_mode)) {
      if (key_length + name_length + 1 > AP_OBJECT_KEY_MAX_LENGTH) {
        continue;
      }
      int child = openat(dirfd(directory), name,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) {
        continue;
      }
      key[key_length + name_length] = '/';
      key[key_length + name_length + 1] = '\0';
      status = walk_directory(store, child, key, key_length + name_length + 1,
                              "", listing, error);
    } else if (S_ISREG(info.st_mode)) {
      int fd = openat(dirfd(directory), name,
                      O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      ap_object_info_t object;
      struct stat opened;
      if (fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode)) {
        fill_info(fd, &opened, &object);
        status = listing_add(listing, key, &object, error);
      }
      close(fd);
    }
  }
  closedir(directory);
  return status;
}

static int compare_listed(const void *left, const void *right) {
  return strcmp(((const listed_object_t *)left)->key,
                ((const listed_object_t *)right)->key);
}

static ap_status_t file_list(void *state, const char *prefix,
                             ap_object_list_fn callback, void *user_data,
                             ap_error_t *error) {
  const file_store_t *store = state;
  int directory_fd = -1;
  const char *name_prefix = NULL;
  ap_error_t local = {0};
  ap_status_t status =
      open_parent(store, prefix, 0, &directory_fd, &name_prefix, &local);
  if (status == AP_ERR_NOT_FOUND) {
    return AP_OK;
  }
  if (status != AP_OK) {
    if (error) {
      *error = local;
    }
    return status;
  }

  char key[AP_OBJECT_KEY_MAX_LENGTH + 1];
  size_t key_length = (size_t)(name_prefix - prefix);
  memcpy(key, prefix, key_length);
  key[key_length] = '\0';

  listing_t listing = {0};
  /* fdopendir takes over the descriptor; a directory removed while the
   * walk runs then reads as empty rather than failing. */
  status = walk_directory(store, directory_fd, key, key_length, name_prefix,
                          &listing, error);

  if (status == AP_OK) {
    qsort(listing.objects, listing.count, sizeof *listing.objects,
          compare_listed);
    for (size_t i = 0; i < listing.count; i++) {
      if (callback(user_data, listing.objects[i].key,
                   &listing.objects[i].info) != 0) {
        break;
      }
    }
  }
  for (size_t i = 0; i < listing.count; i++) {
    free(listing.objects[i].key);
  }
  free(listing.objects);
  return status;
}

/* ---- Presigning and lifetime ---------------------------------------- */

static ap_status_t file_presign(void *state, const char *method,
                                const char *key, const char *content_type,
                                int64_t content_length, int64_t expires_at,
                                ap_presigned_request_t *out,
                                ap_error_t *error) {
  const file_store_t *store = state;
  ap_status_t status = ap_signing_secret_check(store->secret, error);
  if (status != AP_OK) {
    return status;
  }
  if (!store->has_base_url) {
    return ap_error_set(error, AP_DOMAIN_STORAGE, AP_ERR_INVALID_CONFIG,
                        "public.base_url is not set: set it to the URL "
                        "clients use to reach audiopipe-httpd, such as "
                        "http://localhost:8080");
  }
  return ap_signing_presign_url(&store->base_url, store->secret, method, key,
                                content_type, content_length, expires_at, out,
                                error);
}

static void file_close(void *state) {
  file_store_t *store = state;
  if (store->root_fd >= 0) {
    close(store->root_fd);
  }
  free(store->root);
  ap_base_url_free(&store->base_url);
  if (store->secret) {
    OPENSSL_cleanse(store->secret, strlen(store->secret));
  }
  free(store->secret);
  free(store);
}

static const ap_object_store_backend_t file_backend = {
    .name = "file",
    .stat = file_stat,
    .open_read = file_open_read,
    .open_write = file_open_write,
    .open_write_exclusive = file_open_write_exclusive,
    .remove = file_remove,
    .list = file_list,
    .presign = file_presign,
    .close = file_close,
};

/* Creates `path` and its missing parents, as `mkdir -p` does. */
static int make_directories(const char *path) {
  char *copy = strdup(path);
  if (!copy) {
    errno = ENOMEM;
    return -1;
  }
  for (char *cursor = copy + 1; *cursor; cursor++) {
    if (*cursor != '/') {
      continue;
    }
    *cursor = '\0';
    if (mkdir(copy, DIRECTORY_MODE) != 0 && errno != EEXIST) {
      free(copy);
      return -1;
    }
    *cursor = '/';
  }
  int result = mkdir(copy, DIRECTORY_MODE) != 0 && errno != EEXIST ? -1 : 0;
  free(copy);
  return result;
}

ap_status_t ap_file_store_open(const char *root, const char *base_url,
                               const char *secret,
                               const ap_object_store_backend_t **backend,
                               void **state, ap_error_t *error) {
  file_store_t *store = calloc(1, sizeof *store);
  if (!store) {
    return AP_NO_MEMORY(error);
  }
  store->root_fd = -1;
  store->root = strdup(root);
  store->secret = secret ? strdup(secret) : NULL;
  if (!store->root || (secret && !store->secret)) {
    file_close(store);
    return AP_NO_MEMORY(error);
  }

  if (base_url) {
    ap_status_t status = ap_base_url_parse(base_url, &store->base_url, error);
    if (status != AP_OK) {
      file_close(store);
      return status;
    }
    store->has_base_url = 1;
  }

  if (make_directories(root) != 0) {
    int saved = errno;
    file_close(store);
    return ap_error_set(error, AP_DOMAIN_STORAGE,
                        saved == EACCES ? AP_ERR_PERMISSION : AP_ERR_IO,
                        "cannot create object store directory \"%s\": %s "
                        "(check objects.uri)",
                        root, strerror(saved));
  }
  store->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (store->root_fd < 0) {
    int saved = errno;
    file_close(store);
    return ap_error_set(error, AP_DOMAIN_STORAGE,
                        saved == EACCES ? AP_ERR_PERMISSION : AP_ERR_IO,
                        "cannot open object store directory \"%s\": %s "
                        "(check objects.uri)",
                        root, strerror(saved));
  }

  *backend = &file_backend;
  *state = store;
  return AP_OK;
}
