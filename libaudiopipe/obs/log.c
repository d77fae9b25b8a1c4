/*
 * Structured JSON logging: line building with JSON escaping and UTF-8
 * repair, the field-name denylist, the per-event repeat limit and the
 * replaceable sink.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <audiopipe/log.h>

#include "core/error_internal.h"
#include "obs/obs_internal.h"

/* Maximum line length, newline excluded. Longer lines are cut and marked. */
#define LINE_CAPACITY 16384

/* Room kept at the end of a line for `,"truncated":true}`. */
#define LINE_RESERVE 64

#define MESSAGE_CAPACITY 4096

/* Events tracked by the repeat limit. A new event name that finds the
 * table full is not rate-limited, which keeps logging working (and
 * bounded in memory) when callers invent many names. */
#define RATE_SLOTS 256
#define EVENT_NAME_CAPACITY 64

typedef struct rate_slot {
  char event[EVENT_NAME_CAPACITY];
  uint64_t window_start_ms;
  unsigned count;      /* lines seen in the current window */
  uint64_t suppressed; /* lines dropped and not yet reported */
} rate_slot_t;

static atomic_int current_level = AP_LOG_INFO;

static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static ap_log_sink_fn current_sink = NULL;
static void *current_sink_data = NULL;

static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;
static rate_slot_t rate_slots[RATE_SLOTS];
static unsigned rate_burst = 20;
static unsigned rate_interval_ms = 1000;

/* Words whose presence in a field key marks its value as a secret or as
 * personal data. */
static const char *const redacted_words[] = {
    "api_key",  "apikey", "signature", "secret",   "authorization",
    "password", "token",  "cookie",    "filename", "credential"};

static const char *const reserved_keys[] = {"ts",         "level",    "event",
                                            "request_id", "job_id",   "msg",
                                            "suppressed", "truncated"};

void ap_log_set_sink(ap_log_sink_fn sink, void *user_data) {
  pthread_rwlock_wrlock(&sink_lock);
  current_sink = sink;
  current_sink_data = user_data;
  pthread_rwlock_unlock(&sink_lock);
}

void ap_log_set_level(ap_log_level_t level) {
  atomic_store(&current_level, (int)level);
}

ap_log_level_t ap_log_get_level(void) {
  return (ap_log_level_t)atomic_load(&current_level);
}

int ap_log_enabled(ap_log_level_t level) {
  return (int)level >= atomic_load(&current_level);
}

void ap_log_set_rate_limit(unsigned burst, unsigned interval_ms) {
  pthread_mutex_lock(&rate_lock);
  rate_burst = burst;
  rate_interval_ms = interval_ms ? interval_ms : 1;
  pthread_mutex_unlock(&rate_lock);
}

int ap_log_level_parse(const char *text, ap_log_level_t *level) {
  static const struct {
    const char *name;
    ap_log_level_t level;
  } names[] = {{"debug", AP_LOG_DEBUG},
               {"info", AP_LOG_INFO},
               {"warn", AP_LOG_WARN},
               {"warning", AP_LOG_WARN},
               {"error", AP_LOG_ERROR}};
  if (!text || !level) {
    return -1;
  }
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strcasecmp(text, names[i].name) == 0) {
      *level = names[i].level;
      return 0;
    }
  }
  return -1;
}

const char *ap_log_level_name(ap_log_level_t level) {
  switch (level) {
  case AP_LOG_DEBUG:
    return "debug";
  case AP_LOG_INFO:
    return "info";
  case AP_LOG_WARN:
    return "warn";
  case AP_LOG_ERROR:
    return "error";
  }
  return level < AP_LOG_INFO ? "debug" : "error";
}

ap_status_t ap_log_configure(const ap_config_t *config, ap_error_t *error) {
  const char *level_text = ap_config_get(config, "log.level");
  ap_log_level_t level = AP_LOG_INFO;
  if (level_text && ap_log_level_parse(level_text, &level) != 0) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "invalid value \"%s\" for log.level: expected debug, "
                        "info, warn or error",
                        level_text);
  }

  int64_t burst = 0;
  int64_t interval_ms = 0;
  ap_status_t status =
      ap_config_get_int64(config, "log.rate_limit_burst", &burst, error);
  if (status != AP_OK) {
    return status;
  }
  status = ap_config_get_int64(config, "log.rate_limit_interval", &interval_ms,
                               error);
  if (status != AP_OK) {
    return status;
  }
  if (burst < 0 || burst > 1000000) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "log.rate_limit_burst %lld is out of range: use 0 "
                        "(no limit) to 1000000 lines",
                        (long long)burst);
  }
  if (interval_ms < 1 || interval_ms > 3600000) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_CONFIG,
                        "log.rate_limit_interval %lld ms is out of range: use "
                        "1ms to 1h",
                        (long long)interval_ms);
  }

  ap_log_set_level(level);
  ap_log_set_rate_limit((unsigned)burst, (unsigned)interval_ms);
  return AP_OK;
}

int ap_log_key_is_redacted(const char *key) {
  if (!key) {
    return 0;
  }
  char lowered[128];
  size_t length = 0;
  for (; key[length] && length < sizeof lowered - 1; length++) {
    char c = key[length];
    /* "X-Amz-Signature" and "x_amz_signature" both match "signature". */
    lowered[length] =
        c == '-' ? '_' : (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  }
  lowered[length] = '\0';
  for (size_t i = 0; i < sizeof redacted_words / sizeof redacted_words[0];
       i++) {
    if (strstr(lowered, redacted_words[i])) {
      return 1;
    }
  }
  return 0;
}

static int key_is_reserved(const char *key) {
  for (size_t i = 0; i < sizeof reserved_keys / sizeof reserved_keys[0]; i++) {
    if (strcmp(key, reserved_keys[i]) == 0) {
      return 1;
    }
  }
  return 0;
}

/* Line builder: appends stop once the line is full, and `truncated`
 * records that something was left out. */
typedef struct line_builder {
  char data[LINE_CAPACITY + 1];
  size_t length;
  int truncated;
} line_builder_t;

static size_t builder_room(const line_builder_t *builder) {
  return LINE_CAPACITY - LINE_RESERVE - builder->length;
}

static void builder_append(line_builder_t *builder, const char *text,
                           size_t length) {
  if (builder->truncated || length > builder_room(builder)) {
    builder->truncated = 1;
    return;
  }
  memcpy(builder->data + builder->length, text, length);
  builder->length += length;
}

static void builder_append_text(line_builder_t *builder, const char *text) {
  builder_append(builder, text, strlen(text));
}

/* Appends the quoted, escaped form of `text`. Once the opening quote is
 * in, the closing quote is always written (the reserve keeps room for it),
 * so a value cut short at a character boundary is still a JSON string. */
static void builder_append_string(line_builder_t *builder, const char *text) {
  if (builder->truncated || builder_room(builder) < 2) {
    builder->truncated = 1;
    return;
  }
  builder->data[builder->length++] = '"';
  char escaped[16];
  size_t length = strlen(text);
  for (size_t i = 0; i < length && !builder->truncated;) {
    size_t consumed = 0;
    size_t escaped_length =
        ap_obs_json_escape_char(text + i, length - i, escaped, &consumed);
    builder_append(builder, escaped, escaped_length);
    i += consumed;
  }
  builder->data[builder->length++] = '"';
}

/* Appends `,"key":`. Returns 0 and leaves the line as it was when the key
 * does not fit whole. */
static int builder_append_key(line_builder_t *builder, const char *key) {
  size_t start = builder->length;
  builder_append(builder, ",", 1);
  builder_append_string(builder, key);
  builder_append(builder, ":", 1);
  if (builder->truncated) {
    builder->length = start;
    return 0;
  }
  return 1;
}

static void builder_append_value(line_builder_t *builder,
                                 const ap_log_field_t *field) {
  char number[64];
  if (ap_log_key_is_redacted(field->key)) {
    builder_append_text(builder, "\"[redacted]\"");
    return;
  }

  switch (field->type) {
  case AP_LOG_FIELD_STRING:
    if (field->value.string) {
      builder_append_string(builder, field->value.string);
    } else {
      builder_append_text(builder, "null");
    }
    break;
  case AP_LOG_FIELD_INT:
    snprintf(number, sizeof number, "%lld", (long long)field->value.integer);
    builder_append_text(builder, number);
    break;
  case AP_LOG_FIELD_DOUBLE:
    if (isfinite(field->value.number)) {
      snprintf(number, sizeof number, "%.15g", field->value.number);
      builder_append_text(builder, number);
    } else {
      builder_append_text(builder, "null");
    }
    break;
  case AP_LOG_FIELD_BOOL:
    builder_append_text(builder, field->value.boolean ? "true" : "false");
    break;
  default:
    builder_append_text(builder, "null");
    break;
  }
}

/* Appends one key and value, or nothing when not even the start of the
 * value fits; a string value may be cut short. */
static void builder_append_field(line_builder_t *builder,
                                 const ap_log_field_t *field) {
  size_t start = builder->length;
  if (!builder_append_key(builder, field->key)) {
    return;
  }
  size_t value_start = builder->length;
  builder_append_value(builder, field);
  if (builder->length == value_start) {
    builder->length = start;
  }
}

/* Appends one standard string key, which the same rules cover. */
static void builder_append_pair(line_builder_t *builder, const char *key,
                                const char *value) {
  ap_log_field_t field = AP_LOG_STRING(key, value);
  builder_append_field(builder, &field);
}

static uint64_t monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

size_t ap_obs_format_timestamp(char *buffer, size_t size) {
  struct timespec now;
  struct tm utc;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &utc);
  size_t length = strftime(buffer, size, "%Y-%m-%dT%H:%M:%S", &utc);
  if (length == 0) {
    buffer[0] = '\0';
    return 0;
  }
  int written = snprintf(buffer + length, size - length, ".%03ldZ",
                         (long)(now.tv_nsec / 1000000));
  return written > 0 ? length + (size_t)written : length;
}

/*
 * Applies the repeat limit to one line of `event`. Returns 1 when the line
 * may be written and stores in `suppressed` the count of earlier dropped
 * lines it must report; returns 0 when the line is dropped.
 */
static int rate_limit_admit(const char *event, uint64_t *suppressed) {
  *suppressed = 0;
  uint64_t hash = 1469598103934665603ull;
  for (const char *c = event; *c; c++) {
    hash = (hash ^ (unsigned char)*c) * 1099511628211ull;
  }

  pthread_mutex_lock(&rate_lock);
  if (rate_burst == 0) {
    pthread_mutex_unlock(&rate_lock);
    return 1;
  }

  /* Open addressing: probe until the event's slot or a free slot. */
  rate_slot_t *slot = NULL;
  for (size_t probe = 0; probe < RATE_SLOTS; probe++) {
    rate_slot_t *candidate = &rate_slots[(hash + probe) % RATE_SLOTS];
    if (candidate->event[0] == '\0') {
      snprintf(candidate->event, sizeof candidate->event, "%s", event);
      slot = candidate;
      break;
    }
    if (strncmp(candidate->event, event, EVENT_NAME_CAPACITY - 1) == 0) {
      slot = candidate;
      break;
    }
  }
  if (!slot) {
    pthread_mutex_unlock(&rate_lock);
    return 1;
  }

  uint64_t now = monotonic_ms();
  if (slot->count == 0 || now - slot->window_start_ms >= rate_interval_ms) {
    slot->window_start_ms = now;
    slot->count = 0;
  }
  slot->count++;
  int admitted = slot->count <= rate_burst;
  if (admitted) {
    *suppressed = slot->suppressed;
    slot->suppressed = 0;
  } else {
    slot->suppressed++;
  }
  pthread_mutex_unlock(&rate_lock);
  return admitted;
}

static void default_sink(const char *line, size_t length) {
  struct iovec parts[2] = {{(void *)line, length}, {(void *)"\n", 1}};
  /* One writev keeps lines from interleaving on a pipe up to PIPE_BUF;
   * a failed log write has nowhere to be reported. */
  ssize_t written = writev(STDERR_FILENO, parts, 2);
  (void)written;
}

static void emit_line(ap_log_level_t level, const char *event,
                      const char *request_id, const char *job_id,
                      const ap_log_field_t *fields, size_t field_count,
                      const char *message, uint64_t suppressed) {
  line_builder_t local;
  line_builder_t *builder = &local;
  builder->length = 0;
  builder->truncated = 0;

  char timestamp[40];
  ap_obs_format_timestamp(timestamp, sizeof timestamp);
  builder_append_text(builder, "{\"ts\":");
  builder_append_string(builder, timestamp);
  builder_append_pair(builder, "level", ap_log_level_name(level));
  builder_append_pair(builder, "event", event);
  if (request_id) {
    builder_append_pair(builder, "request_id", request_id);
  }
  if (job_id) {
    builder_append_pair(builder, "job_id", job_id);
  }
  if (message) {
    builder_append_pair(builder, "msg", message);
  }
  if (suppressed > 0 && !builder->truncated) {
    char count[48];
    snprintf(count, sizeof count, ",\"suppressed\":%llu",
             (unsigned long long)suppressed);
    builder_append_text(builder, count);
  }
  for (size_t i = 0; i < field_count && fields; i++) {
    if (!fields[i].key || key_is_reserved(fields[i].key)) {
      continue;
    }
    builder_append_field(builder, &fields[i]);
  }

  /* The reserve always has room for the closing text. */
  const char *closing = builder->truncated ? ",\"truncated\":true}" : "}";
  size_t closing_length = strlen(closing);
  memcpy(builder->data + builder->length, closing, closing_length);
  builder->length += closing_length;
  builder->data[builder->length] = '\0';

  pthread_rwlock_rdlock(&sink_lock);
  if (current_sink) {
    current_sink(current_sink_data, level, builder->data, builder->length);
  } else {
    default_sink(builder->data, builder->length);
  }
  pthread_rwlock_unlock(&sink_lock);
}

void ap_log_write(ap_log_level_t level, const char *event,
                  const char *request_id, const char *job_id,
                  const ap_log_field_t *fields, size_t field_count,
                  const char *message_format, ...) {
  if (!ap_log_enabled(level) || !event) {
    return;
  }

  /* Only warnings and errors are rate-limited: they are what floods a log
   * when a backend fails, while info lines such as the one access-log line
   * per request must all be written. */
  uint64_t suppressed = 0;
  if (level >= AP_LOG_WARN && !rate_limit_admit(event, &suppressed)) {
    return;
  }

  char message[MESSAGE_CAPACITY];
  const char *message_text = NULL;
  if (message_format) {
    va_list arguments;
    va_start(arguments, message_format);
    vsnprintf(message, sizeof message, message_format, arguments);
    va_end(arguments);
    message_text = message;
  }

  emit_line(level, event, request_id, job_id, fields, field_count, message_text,
            suppressed);
}

void ap_log_flush_suppressed(void) {
  /* Collect under the lock, write after it, because writing takes the
   * sink lock and a sink may be slow. */
  struct {
    char event[EVENT_NAME_CAPACITY];
    uint64_t count;
  } pending[RATE_SLOTS];
  size_t pending_count = 0;

  pthread_mutex_lock(&rate_lock);
  for (size_t i = 0; i < RATE_SLOTS; i++) {
    if (rate_slots[i].event[0] && rate_slots[i].suppressed > 0) {
      memcpy(pending[pending_count].event, rate_slots[i].event,
             EVENT_NAME_CAPACITY);
      pending[pending_count].count = rate_slots[i].suppressed;
      rate_slots[i].suppressed = 0;
      pending_count++;
    }
  }
  pthread_mutex_unlock(&rate_lock);

  for (size_t i = 0; i < pending_count; i++) {
    ap_log_field_t fields[] = {
        AP_LOG_STRING("suppressed_event", pending[i].event),
        AP_LOG_INT("count", pending[i].count)};
    if (ap_log_enabled(AP_LOG_WARN)) {
      emit_line(AP_LOG_WARN, "log_suppressed", NULL, NULL, fields, 2,
                "repeated lines were dropped by the log rate limit", 0);
    }
  }
}
