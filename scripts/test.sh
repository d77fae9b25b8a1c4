#!/usr/bin/env bash
# Runs the whole test suite: installs missing dependencies, then
#   1. a warnings-as-errors build (build-test/) and every ctest test,
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build
#      (build-test-asan/) and every ctest test again, with leak detection,
#   3. a ThreadSanitizer build (build-test-tsan/) and the tests that run
#      the most threads,
#   4. the libFuzzer build (build-test-fuzz/) running fuzz_probe for 60 s
#      and fuzz_http_request for 30 s (AP_FUZZ_HTTP_SECONDS).
# Prints a summary and exits non-zero when any stage fails. Run as root on
# a fresh machine so missing packages can be installed (`sudo
# scripts/test.sh`); as another user it only checks that they are present.
set -uo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${AP_TEST_JOBS:-2}
fuzz_seconds=${AP_FUZZ_SECONDS:-60}
# libmongoc's load-time initialisation keeps its counters in a shared
# memory segment named after the PID. A process killed with SIGKILL leaves
# its segment behind, and a later process that gets the same PID prints
# "Falling back to malloc for counters" on standard error. Nothing here
# reads those counters, so they stay in private memory.
export MONGOC_DISABLE_SHM=1

scripts/install-deps.sh || exit 1

declare -a names=() results=() durations=()
failed=0

# Runs one stage, recording its result and wall-clock time.
stage() {
  local name=$1
  shift
  local start=$SECONDS
  echo
  echo "=== $name"
  if "$@"; then
    results+=("passed")
  else
    results+=("FAILED")
    failed=1
  fi
  names+=("$name")
  durations+=($((SECONDS - start)))
}

# Configures DIR with the given options and warnings as errors, then
# builds it.
configure_and_build() {
  local dir=$1
  shift
  cmake -S "$root" -B "$dir" -DAP_WERROR=ON "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j"$jobs"
}

build_and_test() {
  configure_and_build "$@" || return 1
  ctest --test-dir "$1" -j"$jobs" --output-on-failure
}

release_build() {
  build_and_test "$root/build-test" -DCMAKE_BUILD_TYPE=RelWithDebInfo
}

sanitizer_build() {
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build_and_test "$root/build-test-asan" -DCMAKE_BUILD_TYPE=Debug \
    -DAP_SANITIZE=ON
}

# The tests whose threads share the most state: the pool of blocking calls,
# group commit and asynchronous upload creation, the job queue's claims and
# reaper, the worker, and audiopipe-httpd end to end. ThreadSanitizer
# stops a program at its first report (halt_on_error), so a race fails
# the test that hit it.
tsan_tests='^(test_task_pool|test_meta_group|test_upload_async|test_job|test_worker|conformance_sqlite_file|http_uploads|http_end_to_end)$'

thread_sanitizer_build() {
  local dir=$root/build-test-tsan
  configure_and_build "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAP_TSAN=ON \
    -DAP_BUILD_EXAMPLES=OFF || return 1
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir "$dir" -j"$jobs" -R "$tsan_tests" --output-on-failure
}

fuzz_build() {
  AP_FUZZ_BUILD_DIR=$root/build-test-fuzz scripts/fuzz.sh "$fuzz_seconds"
}

mkdir -p "$root/build-test" "$root/build-test-asan" "$root/build-test-tsan"
stage "build and unit tests (-DAP_WERROR=ON)" release_build
stage "ASan+UBSan build and tests (-DAP_SANITIZE=ON)" sanitizer_build
stage "TSan build and threaded tests (-DAP_TSAN=ON)" thread_sanitizer_build
stage "fuzz_probe for ${fuzz_seconds} s, fuzz_http_request for ${AP_FUZZ_HTTP_SECONDS:-30} s (-DAP_FUZZ=ON)" fuzz_build

echo
echo "=== summary"
for i in "${!names[@]}"; do
  printf '%-8s %5d s  %s\n' "${results[$i]}" "${durations[$i]}" "${names[$i]}"
done
printf 'total    %5d s\n' "$SECONDS"
if ((failed)); then
  echo "some stages failed"
  exit 1
fi
echo "all stages passed"
