/*
 * What the notify area shares with the rest of the library. It contains
 * Redis connections that reconnect with backoff, the notifier a context
 * owns (publisher connection, counters, the shared job-event subscriber),
 * the publish calls made after a job change has committed, and subscriber
 * threads. Redis only shortens waits: the job records stay the source of
 * truth, and every caller falls back to polling when a call here fails.
 */
#ifndef AP_NOTIFY_NOTIFY_INTERNAL_H
#define AP_NOTIFY_NOTIFY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <audiopipe/config.h>
#include <audiopipe/error.h>
#include <audiopipe/job.h>
#include <audiopipe/metrics.h>

/* Maximum size, NUL included, of each part of redis.uri: host name,
 * socket path, user name and password. */
#define AP_REDIS_URI_PART_SIZE 256

/* A parsed redis.uri. */
typedef struct ap_redis_uri {
  int is_unix;                           /* unix:///path, else TCP */
  char host[AP_REDIS_URI_PART_SIZE];     /* TCP only */
  int port;                              /* TCP only; 6379 when omitted */
  char path[AP_REDIS_URI_PART_SIZE];     /* unix only */
  char user[AP_REDIS_URI_PART_SIZE];     /* "" for the default user */
  char password[AP_REDIS_URI_PART_SIZE]; /* "" for no AUTH */
  int database;                          /* SELECT index, 0 by default */
} ap_redis_uri_t;

/*
 * Parses `text`: redis://[[user]:password@]host[:port][/db] (host may be
 * an IPv6 address in brackets) or unix:///path[?db=N]. User and password
 * may be percent-encoded. Fails with AP_ERR_INVALID_CONFIG naming the
 * part at fault; the message never contains the password.
 */
ap_status_t ap_redis_uri_parse(const char *text, ap_redis_uri_t *out,
                               ap_error_t *error);

/* Settings of every connection of one context, from the redis.* keys. */
typedef struct ap_redis_settings {
  ap_redis_uri_t uri;
  char prefix[128];           /* redis.key_prefix, without the ':' */
  int64_t connect_timeout_ms; /* redis.connect_timeout */
  int64_t command_timeout_ms; /* redis.command_timeout */
  int64_t backoff_min_ms;     /* redis.reconnect_min */
  int64_t backoff_max_ms;     /* redis.reconnect_max */
} ap_redis_settings_t;

/*
 * Reads the redis.* keys. Stores 0 in `*enabled` when redis.uri is empty,
 * and leaves `settings` unset then. AP_ERR_INVALID_CONFIG for a bad value.
 */
ap_status_t ap_redis_settings_read(const ap_config_t *config,
                                   ap_redis_settings_t *settings, int *enabled,
                                   ap_error_t *error);

/* The counters of one context, in ap_metrics_default(). Any may be NULL
 * when registration failed; updates accept NULL. */
typedef struct ap_redis_counters {
  ap_metric_series_t *publishes;
  ap_metric_series_t *publish_failures;
  ap_metric_series_t *reconnects;
  ap_metric_series_t *rate_limit_fallbacks;
  ap_metric_series_t *up; /* gauge: the publisher connection works */
} ap_redis_counters_t;

/*
 * One Redis connection with its reconnect schedule. Not locked: the owner
 * serialises calls (the publisher and the rate limiter use a mutex, a
 * subscriber has its own thread).
 *
 * After the n-th failure in a row the connection is dropped, and no
 * attempt is made before a delay drawn uniformly from
 * [0, min(max, min * 2^(n - 1))] (full jitter). Callers fail at once
 * during that delay instead of waiting on a dead server, and many clients
 * do not reconnect in step.
 */
typedef struct ap_redis_connection {
  const ap_redis_settings_t *settings; /* owned by the notifier */
  const ap_redis_counters_t *counters;
  struct redisContext *redis; /* NULL while disconnected */
  int failures;               /* consecutive failed connects or commands */
  int64_t next_attempt_ms;    /* monotonic; no connect before it */
  char last_error[256];       /* "" when the last command succeeded */
} ap_redis_connection_t;

void ap_redis_connection_init(ap_redis_connection_t *connection,
                              const ap_redis_settings_t *settings,
                              const ap_redis_counters_t *counters);

/*
 * Returns the connected context, connecting first when needed (AUTH and
 * SELECT included, with the connect timeout and then the command timeout
 * on the socket). Returns NULL during the backoff delay or when the
 * connect fails, and `last_error` then contains the reason.
 */
struct redisContext *ap_redis_connection_get(ap_redis_connection_t *connection);

/*
 * Runs one command on the connection and returns its reply, which the
 * caller frees with freeReplyObject. An I/O error, a timeout or a reply
 * of type REDIS_REPLY_ERROR is recorded in `last_error`. After an I/O
 * error or a timeout the connection is dropped and NULL is returned.
 */
struct redisReply *
ap_redis_connection_command(ap_redis_connection_t *connection, int argc,
                            const char **argv, const size_t *lengths);

/* Records a failure: closes the socket and schedules the next attempt. */
void ap_redis_connection_fail(ap_redis_connection_t *connection,
                              const char *reason);

/* Closes the socket. Safe on a closed connection. */
void ap_redis_connection_close(ap_redis_connection_t *connection);

/* Monotonic time in ms (CLOCK_MONOTONIC). */
int64_t ap_redis_monotonic_ms(void);

/*
 * A subscriber: a thread with one connection that sends SUBSCRIBE or
 * PSUBSCRIBE for its channels and calls `on_message` for each message.
 * It reconnects with the same backoff as other connections and calls
 * `on_connected` (may be NULL) after every successful subscription,
 * because messages published while it was away are lost and the owner
 * must look at the records again.
 */
typedef void (*ap_redis_message_fn)(void *user_data, const char *channel,
                                    const char *message, size_t length);
typedef void (*ap_redis_connected_fn)(void *user_data);

typedef struct ap_redis_subscriber ap_redis_subscriber_t;

typedef struct ap_notify_hub ap_notify_hub_t;

/* The Redis state of one context. */
typedef struct ap_notifier {
  ap_redis_settings_t settings;
  ap_redis_counters_t counters;

  /* The publisher connection, shared by every thread of the context. */
  pthread_mutex_t publisher_lock;
  ap_redis_connection_t publisher;
  int outage_logged; /* under publisher_lock */

  /* The rate limiter's connection and its script's SHA1. */
  pthread_mutex_t rate_lock;
  ap_redis_connection_t rate;
  char script_sha[41]; /* "" until SCRIPT LOAD succeeded */

  /* The shared job-event subscriber, started by the first watch. */
  pthread_mutex_t hub_lock;
  ap_notify_hub_t *hub;

  _Atomic int subscribers_connected;
} ap_notifier_t;

/*
 * Starts a subscriber for `channel` (a pattern when `is_pattern`).
 * AP_ERR_NO_MEMORY or AP_ERR_INTERNAL when the thread cannot start;
 * an unreachable Redis is not an error.
 */
ap_status_t
ap_redis_subscriber_start(ap_notifier_t *notifier, const char *channel,
                          int is_pattern, ap_redis_message_fn on_message,
                          ap_redis_connected_fn on_connected, void *user_data,
                          ap_redis_subscriber_t **out, ap_error_t *error);

/* Returns 1 while the subscription is confirmed and the socket is open. */
int ap_redis_subscriber_connected(ap_redis_subscriber_t *subscriber);

/* Stops the thread (within the connect timeout) and frees the subscriber.
 * No callback runs after it returns. NULL is allowed. */
void ap_redis_subscriber_stop(ap_redis_subscriber_t *subscriber);

/*
 * Opens the notifier of a context: NULL in `*out` when redis.uri is
 * empty. One connect attempt is made at once so that an unreachable Redis
 * is logged at start-up, but it never makes the open fail: only a bad
 * redis.* value does (AP_ERR_INVALID_CONFIG).
 */
ap_status_t ap_notifier_open(const ap_config_t *config, ap_notifier_t **out,
                             ap_error_t *error);

/* Stops the shared subscriber and closes every connection. NULL is
 * allowed. */
void ap_notifier_close(ap_notifier_t *notifier);

const ap_redis_settings_t *ap_notifier_settings(const ap_notifier_t *notifier);
const ap_redis_counters_t *ap_notifier_counters(const ap_notifier_t *notifier);

/* Tracks the subscribers that are connected, for the health report. */
void ap_notifier_subscriber_connected(ap_notifier_t *notifier, int delta);

/*
 * Publishes `message` on `<prefix>:<suffix>` through the shared publisher
 * connection. Returns 1 when Redis accepted it, else 0. A failure is
 * counted and logged once per outage, and the caller, whose change has
 * already committed, ignores the result.
 */
int ap_notifier_publish(ap_notifier_t *notifier, const char *suffix,
                        const char *message);

/* The channel of wake-ups for `kind`: "<prefix>:jobs:<kind>". */
void ap_notify_wakeup_channel(const ap_notifier_t *notifier, const char *kind,
                              char *channel, size_t size);

/* Publishes a wake-up on the channel of `kind`; `message` is for people
 * reading the channel (a job or asset id), workers ignore it. NULL
 * notifier: nothing. */
void ap_notify_wakeup(ap_notifier_t *notifier, const char *kind,
                      const char *message);

/* Publishes a wake-up for a job of `kind` that is queued and due. The
 * message is the job id. NULL notifier: nothing. */
void ap_notify_job_enqueued(ap_notifier_t *notifier, const ap_job_t *job);

/*
 * Publishes a job event on "<prefix>:job:<id>", after the change has
 * committed: JSON {"state":"running","fraction":0.5,"stage":"decode",
 * "updated_at_ms":...}. `state` NULL means "changed, read the record"
 * (the outcome of ap_job_fail depends on the attempts left); `fraction`
 * below 0 leaves it out.
 */
void ap_notify_job_event(ap_notifier_t *notifier, const char *job_id,
                         const char *state, double fraction, const char *stage,
                         int64_t updated_at_ms);

/*
 * A job's subscription on the shared subscriber ("<prefix>:job:*", one
 * connection per context however many watches are open). Messages for
 * the job are queued on the subscription; ap_job_watch_next waits for
 * them with ap_notify_watch_wait.
 */
typedef struct ap_notify_watch ap_notify_watch_t;

/* A message taken from a subscription. */
typedef struct ap_notify_job_message {
  int has_state; /* 0: "read the record" */
  ap_job_state_t state;
  int has_fraction;
  double fraction;
  char stage[64];
  int64_t updated_at_ms;
} ap_notify_job_message_t;

/* Registers a subscription for `job_id`, starting the shared subscriber
 * on first use. */
ap_status_t ap_notify_watch_open(ap_notifier_t *notifier, const char *job_id,
                                 ap_notify_watch_t **out, ap_error_t *error);

/*
 * Waits until `deadline_ms` (monotonic) for a message. Returns 1 with
 * `*message` filled, 0 on timeout. Sets `*resync` to 1 (and returns 0
 * at once) when messages may have been lost (the subscriber reconnected
 * or the queue overflowed), so the caller reads the record.
 */
int ap_notify_watch_wait(ap_notify_watch_t *watch, int64_t deadline_ms,
                         ap_notify_job_message_t *message, int *resync);

/* Returns 1 while the shared subscriber is connected, so messages can be
 * expected; otherwise the caller polls the record. */
int ap_notify_watch_live(ap_notify_watch_t *watch);

void ap_notify_watch_close(ap_notify_watch_t *watch);

/* Stops the shared subscriber; every watch must be closed. NULL is
 * allowed. */
void ap_notify_hub_free(ap_notify_hub_t *hub);

#endif
