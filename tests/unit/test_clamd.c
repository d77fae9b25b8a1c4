/*
 * Tests for the clamd INSTREAM client against a real clamd. The ctest
 * fixture starts it with scripts/clamd-test-server.sh (StreamMaxLength
 * 1 MiB, signatures Audiopipe.Test.EICAR and Audiopipe.Test.Pattern).
 * This program also starts and stops a second clamd itself, to show that
 * a stopped scanner is an error and never a pass.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <audiopipe/io.h>

#include "storage/clamd.h"

#ifndef AP_TEST_CLAMD_DIR
#error "AP_TEST_CLAMD_DIR must name the fixture's clamd directory"
#endif

#define STRINGIFY(x) #x
#define TO_STRING(x) STRINGIFY(x)

#define TCP_ADDRESS "tcp:127.0.0.1:" TO_STRING(AP_TEST_CLAMD_PORT)
#define UNIX_ADDRESS "unix:" AP_TEST_CLAMD_DIR "/clamd.ctl"

/* Built from two halves so this source file is not itself detected. */
#define EICAR_FIRST_HALF "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-"
#define EICAR_SECOND_HALF "STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

enum { TIMEOUT_MS = 30000 };

static ap_status_t scan_memory(const char *address, const void *data,
                               size_t size, int64_t timeout_ms,
                               ap_clamd_verdict_t *verdict, char *name,
                               size_t name_size, ap_error_t *error) {
  ap_io_t *io = NULL;
  assert_int_equal(ap_io_open_memory(data, size, &io, error), AP_OK);
  ap_status_t status =
      ap_clamd_scan(address, io, timeout_ms, verdict, name, name_size, error);
  ap_io_close(io);
  return status;
}

static void clean_file_passes(void **state) {
  (void)state;
  ap_io_t *io = NULL;
  ap_error_t error = {0};
  assert_int_equal(
      ap_io_open_file(AP_TEST_DATA_DIR "/cases/case-03.mp3", &io, &error),
      AP_OK);
  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  char name[128] = "unchanged";
  assert_int_equal(ap_clamd_scan(TCP_ADDRESS, io, TIMEOUT_MS, &verdict, name,
                                 sizeof name, &error),
                   AP_OK);
  assert_int_equal(verdict, AP_CLAMD_CLEAN);
  assert_string_equal(name, "");
  ap_io_close(io);
}

static void clean_bytes_pass_over_unix_socket(void **state) {
  (void)state;
  const char text[] = "an ordinary recording, no signature here";
  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  ap_error_t error = {0};
  assert_int_equal(scan_memory(UNIX_ADDRESS, text, sizeof text - 1, TIMEOUT_MS,
                               &verdict, NULL, 0, &error),
                   AP_OK);
  assert_int_equal(verdict, AP_CLAMD_CLEAN);
}

static void empty_input_passes(void **state) {
  (void)state;
  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  ap_error_t error = {0};
  assert_int_equal(
      scan_memory(TCP_ADDRESS, "", 0, TIMEOUT_MS, &verdict, NULL, 0, &error),
      AP_OK);
  assert_int_equal(verdict, AP_CLAMD_CLEAN);
}

/* The EICAR string straddles the first 64 KiB chunk boundary, so the
 * match depends on the chunks arriving intact and in order. */
static void eicar_found_with_name(void **state) {
  (void)state;
  const char eicar[] = EICAR_FIRST_HALF EICAR_SECOND_HALF;
  size_t size = 200 * 1024;
  char *data = calloc(1, size);
  assert_non_null(data);
  memcpy(data + 64 * 1024 - 20, eicar, sizeof eicar - 1);

  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  char name[128] = "";
  ap_error_t error = {0};
  assert_int_equal(scan_memory(TCP_ADDRESS, data, size, TIMEOUT_MS, &verdict,
                               name, sizeof name, &error),
                   AP_ERR_INFECTED);
  assert_int_equal(verdict, AP_CLAMD_INFECTED);
  assert_string_equal(name, "Audiopipe.Test.EICAR.UNOFFICIAL");
  assert_non_null(strstr(error.message, "Audiopipe.Test.EICAR.UNOFFICIAL"));
  free(data);
}

static void test_pattern_found_over_unix_socket(void **state) {
  (void)state;
  const char text[] = "header AUDIOPIPE-CLAMD-TEST-PATTERN trailer";
  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  char name[16] = "";
  ap_error_t error = {0};
  assert_int_equal(scan_memory(UNIX_ADDRESS, text, sizeof text - 1, TIMEOUT_MS,
                               &verdict, name, sizeof name, &error),
                   AP_ERR_INFECTED);
  assert_int_equal(verdict, AP_CLAMD_INFECTED);
  /* The name is truncated to the buffer, the message keeps it whole. */
  assert_string_equal(name, "Audiopipe.Test.");
  assert_non_null(strstr(error.message, "Audiopipe.Test.Pattern.UNOFFICIAL"));
}

/* The fixture's clamd has StreamMaxLength 1M: a longer stream is refused
 * and must not read as clean. */
static void stream_over_limit_is_error(void **state) {
  (void)state;
  size_t size = 3 * 1024 * 1024;
  char *data = calloc(1, size);
  assert_non_null(data);
  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  ap_error_t error = {0};
  assert_int_equal(scan_memory(TCP_ADDRESS, data, size, TIMEOUT_MS, &verdict,
                               NULL, 0, &error),
                   AP_ERR_INPUT_TOO_LARGE);
  assert_int_equal(verdict, AP_CLAMD_UNKNOWN);
  assert_non_null(strstr(error.message, "StreamMaxLength"));
  free(data);
}

static int run_script(const char *action, const char *directory, int port) {
  char command[1024];
  snprintf(command, sizeof command, "'%s' %s '%s' %d >/dev/null",
           AP_TEST_CLAMD_SCRIPT, action, directory, port);
  return system(command);
}

/* Starts a second clamd, scans through it, stops it, scans again. */
static void stopped_clamd_is_unavailable(void **state) {
  (void)state;
  const char *directory = AP_TEST_CLAMD_DIR "-stopped";
  int port = AP_TEST_CLAMD_PORT + 1;
  char tcp_address[64];
  char unix_address[512];
  snprintf(tcp_address, sizeof tcp_address, "tcp:127.0.0.1:%d", port);
  snprintf(unix_address, sizeof unix_address, "unix:%s/clamd.ctl", directory);

  assert_int_equal(run_script("start", directory, port), 0);
  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  ap_error_t error = {0};
  ap_status_t running =
      scan_memory(tcp_address, "x", 1, TIMEOUT_MS, &verdict, NULL, 0, &error);
  assert_int_equal(run_script("stop", directory, port), 0);
  assert_int_equal(running, AP_OK);
  assert_int_equal(verdict, AP_CLAMD_CLEAN);

  verdict = AP_CLAMD_UNKNOWN;
  assert_int_equal(
      scan_memory(tcp_address, "x", 1, TIMEOUT_MS, &verdict, NULL, 0, &error),
      AP_ERR_UNAVAILABLE);
  assert_int_equal(verdict, AP_CLAMD_UNKNOWN);
  assert_non_null(strstr(error.message, tcp_address));
  assert_true(ap_error_is_retryable(AP_ERR_UNAVAILABLE));

  assert_int_equal(
      scan_memory(unix_address, "x", 1, TIMEOUT_MS, &verdict, NULL, 0, &error),
      AP_ERR_UNAVAILABLE);
  assert_int_equal(verdict, AP_CLAMD_UNKNOWN);
}

/* A peer that accepts the connection but never replies: the scan ends
 * with a timeout error instead of waiting forever. */
static void silent_peer_times_out(void **state) {
  (void)state;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(listener >= 0);
  struct sockaddr_in address = {.sin_family = AF_INET};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(listener, (struct sockaddr *)&address, sizeof address),
                   0);
  assert_int_equal(listen(listener, 4), 0);
  socklen_t length = sizeof address;
  assert_int_equal(getsockname(listener, (struct sockaddr *)&address, &length),
                   0);
  char tcp_address[64];
  snprintf(tcp_address, sizeof tcp_address, "tcp:127.0.0.1:%d",
           ntohs(address.sin_port));

  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  ap_error_t error = {0};
  assert_int_equal(
      scan_memory(tcp_address, "x", 1, 200, &verdict, NULL, 0, &error),
      AP_ERR_UNAVAILABLE);
  assert_int_equal(verdict, AP_CLAMD_UNKNOWN);
  assert_non_null(strstr(error.message, "timed out"));
  close(listener);
}

static void malformed_addresses_rejected(void **state) {
  (void)state;
  const char *addresses[] = {
      "http://127.0.0.1:3310", "tcp:127.0.0.1", "tcp:127.0.0.1:", "tcp::3310",
      "tcp:127.0.0.1:33x",     "unix:",         "127.0.0.1:3310"};
  for (size_t i = 0; i < sizeof addresses / sizeof addresses[0]; i++) {
    ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
    ap_error_t error = {0};
    if (scan_memory(addresses[i], "x", 1, TIMEOUT_MS, &verdict, NULL, 0,
                    &error) != AP_ERR_INVALID_ARGUMENT) {
      fail_msg("address \"%s\" was not rejected: %s", addresses[i],
               error.message);
    }
  }
  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  ap_error_t error = {0};
  assert_int_equal(
      scan_memory(TCP_ADDRESS, "x", 1, 0, &verdict, NULL, 0, &error),
      AP_ERR_INVALID_ARGUMENT);
}

static int64_t failing_read(void *user_data, void *buffer, size_t size,
                            ap_error_t *error) {
  (void)user_data;
  (void)buffer;
  (void)size;
  (void)error;
  return -1;
}

static void input_failure_is_io_error(void **state) {
  (void)state;
  ap_io_callbacks_t callbacks = {.struct_size = sizeof callbacks,
                                 .read = failing_read};
  ap_io_t *io = NULL;
  ap_error_t error = {0};
  assert_int_equal(ap_io_open_callbacks(&callbacks, NULL, &io, &error), AP_OK);
  ap_clamd_verdict_t verdict = AP_CLAMD_UNKNOWN;
  assert_int_equal(
      ap_clamd_scan(TCP_ADDRESS, io, TIMEOUT_MS, &verdict, NULL, 0, &error),
      AP_ERR_IO);
  assert_int_equal(verdict, AP_CLAMD_UNKNOWN);
  assert_non_null(strstr(error.message, "clamd"));
  ap_io_close(io);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(clean_file_passes),
      cmocka_unit_test(clean_bytes_pass_over_unix_socket),
      cmocka_unit_test(empty_input_passes),
      cmocka_unit_test(eicar_found_with_name),
      cmocka_unit_test(test_pattern_found_over_unix_socket),
      cmocka_unit_test(stream_over_limit_is_error),
      cmocka_unit_test(stopped_clamd_is_unavailable),
      cmocka_unit_test(silent_peer_times_out),
      cmocka_unit_test(malformed_addresses_rejected),
      cmocka_unit_test(input_failure_is_io_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
