/*
 * Tests of the Redis notifications without a worker: redis.uri parsing,
 * publish and subscribe, the job events a watch turns into progress, the
 * shared rate limit of two audiopipe-httpd limiters, and the fallbacks
 * when Redis is unreachable or does not reply.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <audiopipe/job.h>

#include "context/context_internal.h"
#include "notify/notify_internal.h"
#include "rate_limit.h"
#include "redis/redis_fixture.h"

/* --- redis.uri --------------------------------------------------------- */

static void test_uri_parse_accepts(void **state) {
  (void)state;
  const struct {
    const char *text;
    int is_unix;
    const char *host;
    int port;
    const char *path;
    const char *user;
    const char *password;
    int database;
  } cases[] = {
      {"redis://127.0.0.1:6380", 0, "127.0.0.1", 6380, "", "", "", 0},
      {"redis://cache.internal", 0, "cache.internal", 6379, "", "", "", 0},
      {"redis://cache:7000/3", 0, "cache", 7000, "", "", "", 3},
      {"redis://:s3cret@cache:7000/", 0, "cache", 7000, "", "", "s3cret", 0},
      {"redis://s3cret@cache", 0, "cache", 6379, "", "", "s3cret", 0},
      {"redis://app:p%40ss%3Aword@10.0.0.5:6379/15", 0, "10.0.0.5", 6379, "",
       "app", "p@ss:word", 15},
      {"redis://[::1]:6390/2", 0, "::1", 6390, "", "", "", 2},
      {"redis://[fe80::1]", 0, "fe80::1", 6379, "", "", "", 0},
      {"unix:///run/redis/redis.sock", 1, "", 0, "/run/redis/redis.sock", "",
       "", 0},
      {"unix:///tmp/r.sock?db=4", 1, "", 0, "/tmp/r.sock", "", "", 4},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ap_redis_uri_t uri;
    ap_error_t error = {0};
    ap_status_t status = ap_redis_uri_parse(cases[i].text, &uri, &error);
    if (status != AP_OK) {
      fail_msg("%s: %s", cases[i].text, error.message);
    }
    assert_int_equal(uri.is_unix, cases[i].is_unix);
    assert_string_equal(uri.host, cases[i].host);
    assert_int_equal(uri.port, cases[i].port);
    assert_string_equal(uri.path, cases[i].path);
    assert_string_equal(uri.user, cases[i].user);
    assert_string_equal(uri.password, cases[i].password);
    assert_int_equal(uri.database, cases[i].database);
  }
}

static void test_uri_parse_rejects(void **state) {
  (void)state;
  const struct {
    const char *text;
    const char *expected; /* a part of the message */
  } cases[] = {
      {"", "empty"},
      {"http://cache:6379", "scheme"},
      {"rediss://cache:6379", "TLS"},
      {"redis://", "host is missing"},
      {"redis://:topsecret@", "host is missing"},
      {"redis://cache:0", "port"},
      {"redis://cache:65536", "port"},
      {"redis://cache:63x9", "port"},
      {"redis://cache:6379/x", "database"},
      {"redis://cache:6379/-1", "database"},
      {"redis://cache:6379?db=1", "query"},
      {"redis://[::1:6379", "']'"},
      {"redis://user:bad%zzescape@cache", "password"},
      {"redis://user:@cache", "needs a password"},
      {"unix://relative/path", "absolute"},
      {"unix:///tmp/r.sock?timeout=1", "db=N"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ap_redis_uri_t uri;
    ap_error_t error = {0};
    ap_status_t status = ap_redis_uri_parse(cases[i].text, &uri, &error);
    if (status != AP_ERR_INVALID_CONFIG) {
      fail_msg("%s: expected invalid_config, got %d", cases[i].text,
               (int)status);
    }
    if (!strstr(error.message, cases[i].expected)) {
      fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].text, error.message,
               cases[i].expected);
    }
    assert_non_null(strstr(error.message, "redis.uri"));
    assert_null(strstr(error.message, "topsecret"));
  }
}

static void test_context_rejects_bad_settings(void **state) {
  (void)state;
  const struct {
    const char *key;
    const char *value;
  } cases[] = {
      {"redis.uri", "redis://cache:99999"},
      {"redis.key_prefix", "two words"},
      {"redis.key_prefix", "jobs*"},
      {"redis.reconnect_max", "1ms"}, /* below reconnect_min */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    meta_fixture_t fixture;
    assert_int_equal(meta_fixture_prepare(&fixture), 0);
    assert_int_equal(redis_fixture_configure(fixture.config, "settings"), 0);
    assert_int_equal(
        ap_config_set(fixture.config, cases[i].key, cases[i].value, NULL),
        AP_OK);
    ap_error_t error = {0};
    ap_context_t *context = NULL;
    ap_status_t status = ap_context_open(fixture.config, &context, &error);
    if (status != AP_ERR_INVALID_CONFIG) {
      fail_msg("%s = %s: expected invalid_config, got %d", cases[i].key,
               cases[i].value, (int)status);
    }
    assert_non_null(strstr(error.message, cases[i].key));
    meta_fixture_close(&fixture);
  }
}

/* --- publish and subscribe --------------------------------------------- */

typedef struct received {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int count;
  char channel[256];
  char message[512];
} received_t;

static void on_message(void *user_data, const char *channel,
                       const char *message, size_t length) {
  received_t *received = user_data;
  pthread_mutex_lock(&received->lock);
  if (received->count == 0) {
    snprintf(received->channel, sizeof received->channel, "%s", channel);
    snprintf(received->message, sizeof received->message, "%.*s", (int)length,
             message);
  }
  received->count++;
  pthread_cond_broadcast(&received->changed);
  pthread_mutex_unlock(&received->lock);
}

/* Waits for the first message; returns 1 when it came. */
static int wait_for_message(received_t *received) {
  int64_t deadline = redis_test_now_ms() + REDIS_WAIT_MS;
  pthread_mutex_lock(&received->lock);
  while (received->count == 0 && redis_test_now_ms() < deadline) {
    pthread_mutex_unlock(&received->lock);
    redis_test_sleep_ms(5);
    pthread_mutex_lock(&received->lock);
  }
  int count = received->count;
  pthread_mutex_unlock(&received->lock);
  return count > 0;
}

static int setup(void **state) {
  meta_fixture_t *fixture = calloc(1, sizeof *fixture);
  if (!fixture || meta_fixture_prepare(fixture) != 0 ||
      redis_fixture_configure(fixture->config, "unit") != 0 ||
      meta_fixture_open(fixture) != 0) {
    return -1;
  }
  *state = fixture;
  return 0;
}

static int teardown(void **state) {
  meta_fixture_t *fixture = *state;
  meta_fixture_close(fixture);
  free(fixture);
  return 0;
}

static void test_publish_reaches_subscriber(void **state) {
  meta_fixture_t *fixture = *state;
  ap_notifier_t *notifier = ap_context_notifier(fixture->context);
  assert_non_null(notifier);
  assert_true(ap_redis_enabled(fixture->context));

  received_t received = {.count = 0};
  pthread_mutex_init(&received.lock, NULL);
  pthread_cond_init(&received.changed, NULL);
  char channel[256];
  ap_notify_wakeup_channel(notifier, "redis_test", channel, sizeof channel);
  ap_redis_subscriber_t *subscriber = NULL;
  assert_int_equal(ap_redis_subscriber_start(notifier, channel, 0, on_message,
                                             NULL, &received, &subscriber,
                                             NULL),
                   AP_OK);
  assert_int_equal(redis_fixture_wait_subscribers(fixture->context, 1), 0);

  /* An enqueue of that kind publishes its id on the channel. */
  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "redis_test";
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_enqueue(fixture->context, &options, &job, NULL),
                   AP_OK);
  assert_true(wait_for_message(&received));
  assert_string_equal(received.channel, channel);
  assert_string_equal(received.message, ap_job_id(job));
  assert_true(ap_redis_subscriber_connected(subscriber));

  ap_redis_subscriber_stop(subscriber);
  ap_job_free(job);
  pthread_cond_destroy(&received.changed);
  pthread_mutex_destroy(&received.lock);
}

/* A delayed job is not claimable yet, so it publishes no wake-up. */
static void test_delayed_job_publishes_nothing(void **state) {
  meta_fixture_t *fixture = *state;
  const ap_redis_counters_t *counters =
      ap_notifier_counters(ap_context_notifier(fixture->context));
  double before = ap_metrics_value(counters->publishes);

  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "redis_test";
  options.delay_ms = 60000;
  assert_int_equal(ap_job_enqueue(fixture->context, &options, NULL, NULL),
                   AP_OK);
  assert_true(ap_metrics_value(counters->publishes) == before);
}

/*
 * With jobs.watch_interval at one hour, a watch that gets its events in
 * time can only have received them through Redis. Each step waits for
 * its event, so the order of the fractions is the order of the calls.
 */
static void test_watch_receives_progress(void **state) {
  meta_fixture_t *fixture = *state;
  ap_context_t *context = NULL;
  assert_int_equal(
      ap_config_set(fixture->config, "jobs.watch_interval", "1h", NULL), AP_OK);
  assert_int_equal(ap_context_open(fixture->config, &context, NULL), AP_OK);

  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "redis_watch";
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_enqueue(context, &options, &job, NULL), AP_OK);
  ap_job_watch_t *watch = NULL;
  assert_int_equal(
      ap_job_watch_open(context, NULL, ap_job_id(job), &watch, NULL), AP_OK);
  assert_int_equal(redis_fixture_wait_subscribers(context, 1), 0);

  ap_job_event_t event;
  ap_error_t error = {0};
  assert_int_equal(ap_job_watch_next(watch, REDIS_WAIT_MS, &event, &error),
                   AP_OK);
  assert_int_equal(event.state, AP_JOB_QUEUED);

  const char *kinds[] = {"redis_watch"};
  ap_job_t *claimed = NULL;
  assert_int_equal(
      ap_job_claim(context, "tester", 60000, kinds, 1, &claimed, NULL), AP_OK);
  assert_non_null(claimed);
  const char *token = ap_job_claim_token(claimed);
  assert_int_equal(ap_job_watch_next(watch, REDIS_WAIT_MS, &event, &error),
                   AP_OK);
  assert_int_equal(event.state, AP_JOB_RUNNING);

  const double fractions[] = {0.25, 0.5, 0.75};
  const char *stages[] = {"decode", "decode", "encode"};
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(ap_job_progress(context, ap_job_id(job), token,
                                     fractions[i], stages[i], NULL),
                     AP_OK);
    ap_status_t status =
        ap_job_watch_next(watch, REDIS_WAIT_MS, &event, &error);
    if (status != AP_OK) {
      fail_msg("progress %.2f: %s", fractions[i], error.message);
    }
    assert_int_equal(event.state, AP_JOB_RUNNING);
    assert_true(event.fraction == fractions[i]);
    assert_string_equal(event.stage, stages[i]);
  }

  assert_int_equal(
      ap_job_complete(context, ap_job_id(job), token, "{\"ok\":1}", NULL),
      AP_OK);
  assert_int_equal(ap_job_watch_next(watch, REDIS_WAIT_MS, &event, &error),
                   AP_OK);
  assert_int_equal(event.state, AP_JOB_SUCCEEDED);
  assert_int_equal(ap_job_watch_next(watch, 0, &event, &error),
                   AP_ERR_JOB_STATE);

  ap_job_watch_close(watch);
  ap_job_free(claimed);
  ap_job_free(job);
  ap_context_close(context);
  assert_int_equal(
      ap_config_set(fixture->config, "jobs.watch_interval", "5ms", NULL),
      AP_OK);
}

/* Many watches of one context share a single subscriber connection. */
static void test_watches_share_subscriber(void **state) {
  meta_fixture_t *fixture = *state;
  enum { WATCHES = 50 };
  ap_job_watch_t *watches[WATCHES];
  ap_job_t *jobs[WATCHES];
  for (int i = 0; i < WATCHES; i++) {
    ap_job_enqueue_options_t options;
    ap_job_enqueue_options_init(&options);
    options.kind = "redis_fanout";
    assert_int_equal(ap_job_enqueue(fixture->context, &options, &jobs[i], NULL),
                     AP_OK);
    assert_int_equal(ap_job_watch_open(fixture->context, NULL,
                                       ap_job_id(jobs[i]), &watches[i], NULL),
                     AP_OK);
  }
  assert_int_equal(redis_fixture_wait_subscribers(fixture->context, 1), 0);
  ap_redis_health_t health = {.struct_size = sizeof health};
  assert_int_equal(ap_redis_check(fixture->context, &health, NULL), AP_OK);
  assert_int_equal(health.subscribers_connected, 1);
  for (int i = 0; i < WATCHES; i++) {
    ap_job_watch_close(watches[i]);
    ap_job_free(jobs[i]);
  }
}

static void on_job_changed(void *user_data, const char *job_id) {
  received_t *received = user_data;
  on_message(received, job_id ? job_id : "(all)", "", 0);
}

/* A listener, as audiopipe-httpd's event-stream hub uses, receives the
 * id of a job whose claim was published, and nothing after it is closed. */
static void test_listener_sees_job_events(void **state) {
  meta_fixture_t *fixture = *state;
  received_t received = {.count = 0};
  pthread_mutex_init(&received.lock, NULL);
  pthread_cond_init(&received.changed, NULL);
  ap_redis_job_listener_t *listener = NULL;
  assert_int_equal(ap_redis_job_listener_open(fixture->context, on_job_changed,
                                              &received, &listener, NULL),
                   AP_OK);
  assert_int_equal(redis_fixture_wait_subscribers(fixture->context, 1), 0);
  pthread_mutex_lock(&received.lock);
  received.count = 0; /* drops the "(all)" of the first subscription */
  pthread_mutex_unlock(&received.lock);

  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "redis_listen";
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_enqueue(fixture->context, &options, &job, NULL),
                   AP_OK);
  const char *kinds[] = {"redis_listen"};
  ap_job_t *claimed = NULL;
  assert_int_equal(
      ap_job_claim(fixture->context, "tester", 60000, kinds, 1, &claimed, NULL),
      AP_OK);
  assert_non_null(claimed);
  assert_true(wait_for_message(&received));
  assert_string_equal(received.channel, ap_job_id(job));

  ap_redis_job_listener_close(listener);
  pthread_mutex_lock(&received.lock);
  int count = received.count;
  pthread_mutex_unlock(&received.lock);
  assert_int_equal(ap_job_complete(fixture->context, ap_job_id(claimed),
                                   ap_job_claim_token(claimed), NULL, NULL),
                   AP_OK);
  redis_test_sleep_ms(200);
  pthread_mutex_lock(&received.lock);
  assert_int_equal(received.count, count);
  pthread_mutex_unlock(&received.lock);

  ap_job_free(claimed);
  ap_job_free(job);
  pthread_cond_destroy(&received.changed);
  pthread_mutex_destroy(&received.lock);
}

/* --- shared rate limit ------------------------------------------------- */

/*
 * Two limiters, as in two audiopipe-httpd processes, each with its own
 * context and connection. Between them they may admit at most the burst
 * plus the rate times the elapsed time (plus one for rounding). A SCRIPT
 * FLUSH halfway makes the next EVALSHA fail with NOSCRIPT, which must
 * reload the script rather than fall back.
 */
static void test_rate_limiters_share_bucket(void **state) {
  meta_fixture_t *fixture = *state;
  const double rate = 20;
  const double burst = 10;
  ap_context_t *second = NULL;
  assert_int_equal(ap_context_open(fixture->config, &second, NULL), AP_OK);
  httpd_rate_limiter_t *limiters[2] = {httpd_rate_limiter_new(rate, burst),
                                       httpd_rate_limiter_new(rate, burst)};
  assert_non_null(limiters[0]);
  assert_non_null(limiters[1]);
  httpd_rate_limiter_share(limiters[0], fixture->context);
  httpd_rate_limiter_share(limiters[1], second);
  const ap_redis_counters_t *counters =
      ap_notifier_counters(ap_context_notifier(fixture->context));
  double fallbacks = ap_metrics_value(counters->rate_limit_fallbacks);

  char owner[64];
  snprintf(owner, sizeof owner, "owner-%ld", (long)getpid());
  int admitted = 0;
  int rejected = 0;
  int flushed = 0;
  int64_t start = redis_test_now_ms();
  int64_t end = start;
  for (int i = 0; end - start < 1500; i++) {
    if (!flushed && end - start >= 750) {
      assert_int_equal(redis_fixture_command("SCRIPT FLUSH"), 0);
      flushed = 1;
    }
    unsigned retry_after_s = 0;
    if (httpd_rate_limiter_admit(limiters[i % 2], owner, end, &retry_after_s)) {
      admitted++;
    } else {
      rejected++;
      assert_true(retry_after_s >= 1);
    }
    redis_test_sleep_ms(2);
    end = redis_test_now_ms();
  }
  double elapsed_s = (double)(end - start) / 1000.0;
  assert_true(flushed);
  assert_true(admitted >= (int)burst);
  assert_true((double)admitted <= burst + rate * elapsed_s + 1);
  assert_true(rejected > 0);
  assert_true(ap_metrics_value(counters->rate_limit_fallbacks) == fallbacks);

  httpd_rate_limiter_free(limiters[0]);
  httpd_rate_limiter_free(limiters[1]);
  ap_context_close(second);
}

/* --- Redis unreachable ------------------------------------------------- */

/* Returns a loopback port nothing listens on (bound, then closed). */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in address = {.sin_family = AF_INET};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&address, sizeof address), 0);
  socklen_t length = sizeof address;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&address, &length), 0);
  close(fd);
  return ntohs(address.sin_port);
}

/* Opens a context whose redis.uri is `uri` with short timeouts. */
static ap_context_t *open_with_uri(meta_fixture_t *fixture, const char *uri) {
  assert_int_equal(ap_config_set(fixture->config, "redis.uri", uri, NULL),
                   AP_OK);
  assert_int_equal(
      ap_config_set(fixture->config, "redis.connect_timeout", "200ms", NULL),
      AP_OK);
  assert_int_equal(
      ap_config_set(fixture->config, "redis.command_timeout", "200ms", NULL),
      AP_OK);
  ap_context_t *context = NULL;
  ap_error_t error = {0};
  ap_status_t status = ap_context_open(fixture->config, &context, &error);
  if (status != AP_OK) {
    fail_msg("ap_context_open with %s: %s", uri, error.message);
  }
  return context;
}

/* Everything still works through the records, and each failure is
 * counted. */
static void check_fallbacks(ap_context_t *context) {
  const ap_redis_counters_t *counters =
      ap_notifier_counters(ap_context_notifier(context));
  double publish_failures = ap_metrics_value(counters->publish_failures);
  double fallbacks = ap_metrics_value(counters->rate_limit_fallbacks);

  ap_redis_health_t health = {.struct_size = sizeof health};
  ap_error_t error = {0};
  assert_int_equal(ap_redis_check(context, &health, &error),
                   AP_ERR_UNAVAILABLE);
  assert_true(health.enabled);
  assert_false(health.connected);
  assert_true(health.error[0] != '\0');

  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = "redis_down";
  ap_job_t *job = NULL;
  assert_int_equal(ap_job_enqueue(context, &options, &job, NULL), AP_OK);
  assert_true(ap_metrics_value(counters->publish_failures) > publish_failures);

  int admitted = 0;
  int64_t retry_after_ms = 0;
  assert_int_equal(ap_redis_rate_limit(context, "alice", 10, 10, &admitted,
                                       &retry_after_ms, NULL),
                   AP_ERR_UNAVAILABLE);
  assert_true(ap_metrics_value(counters->rate_limit_fallbacks) > fallbacks);
  httpd_rate_limiter_t *limiter = httpd_rate_limiter_new(10, 10);
  assert_non_null(limiter);
  httpd_rate_limiter_share(limiter, context);
  unsigned retry_after_s = 0;
  assert_int_equal(httpd_rate_limiter_admit(
                       limiter, "alice", redis_test_now_ms(), &retry_after_s),
                   1);
  httpd_rate_limiter_free(limiter);

  ap_job_watch_t *watch = NULL;
  assert_int_equal(
      ap_job_watch_open(context, NULL, ap_job_id(job), &watch, NULL), AP_OK);
  ap_job_event_t event;
  assert_int_equal(ap_job_watch_next(watch, 1000, &event, NULL), AP_OK);
  assert_int_equal(event.state, AP_JOB_QUEUED);
  ap_job_watch_close(watch);
  ap_job_free(job);
}

static void test_closed_port_falls_back(void **state) {
  meta_fixture_t *fixture = *state;
  char uri[64];
  snprintf(uri, sizeof uri, "redis://127.0.0.1:%d", closed_port());
  ap_context_t *context = open_with_uri(fixture, uri);
  check_fallbacks(context);
  ap_context_close(context);
}

/*
 * A listening socket that never accepts completes TCP handshakes in the
 * kernel but never replies, like a hung Redis: every call must give up
 * after the command timeout. The bound of 10 s is 50 times the timeout,
 * so only a call that waits without a timeout fails it.
 */
static void test_silent_server_times_out(void **state) {
  meta_fixture_t *fixture = *state;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(listener >= 0);
  struct sockaddr_in address = {.sin_family = AF_INET};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(listener, (struct sockaddr *)&address, sizeof address),
                   0);
  assert_int_equal(listen(listener, 64), 0);
  socklen_t length = sizeof address;
  assert_int_equal(getsockname(listener, (struct sockaddr *)&address, &length),
                   0);
  char uri[64];
  snprintf(uri, sizeof uri, "redis://127.0.0.1:%d", ntohs(address.sin_port));

  int64_t start = redis_test_now_ms();
  ap_context_t *context = open_with_uri(fixture, uri);
  check_fallbacks(context);
  ap_context_close(context);
  assert_true(redis_test_now_ms() - start < 10000);
  close(listener);
}

/* A password the server rejects: the context opens, and the error names
 * AUTH but never the password. */
static void test_rejected_password_reported(void **state) {
  meta_fixture_t *fixture = *state;
  char uri[128];
  snprintf(uri, sizeof uri, "redis://:wrong-horse@127.0.0.1:%d",
           AP_TEST_REDIS_PORT);
  ap_context_t *context = open_with_uri(fixture, uri);
  ap_redis_health_t health = {.struct_size = sizeof health};
  ap_error_t error = {0};
  assert_int_equal(ap_redis_check(context, &health, &error),
                   AP_ERR_UNAVAILABLE);
  assert_non_null(strstr(error.message, "AUTH"));
  assert_null(strstr(error.message, "wrong-horse"));
  assert_null(strstr(health.error, "wrong-horse"));
  ap_context_close(context);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_uri_parse_accepts),
      cmocka_unit_test(test_uri_parse_rejects),
      cmocka_unit_test(test_context_rejects_bad_settings),
      cmocka_unit_test_setup_teardown(test_publish_reaches_subscriber, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_delayed_job_publishes_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_watch_receives_progress, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_watches_share_subscriber, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_listener_sees_job_events, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_rate_limiters_share_bucket, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_closed_port_falls_back, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_silent_server_times_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_rejected_password_reported, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
