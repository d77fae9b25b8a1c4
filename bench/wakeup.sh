#!/usr/bin/env bash
# Measures job pickup latency (ap_job_enqueue -> the worker's claim) of an
# idle ap_worker_run, by polling alone and with Redis wake-ups, side by
# side in one run, on a fresh SQLite file each time. A private
# redis-server is started on 127.0.0.1:PORT and stopped at the end.
#
#   bench/wakeup.sh [BUILD_DIR] [JOBS] [POLL_MS] [PORT]
#
# BUILD_DIR is a configured and built tree (default build-redis-bench,
# built here in Release when missing); JOBS per setting (default 200);
# POLL_MS the worker's poll interval (default 500, the library default);
# PORT for redis-server (default 11500). Worker logs go to
# BUILD_DIR/bench-wakeup.log.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-$root/build-redis-bench}
jobs=${2:-200}
poll_ms=${3:-500}
port=${4:-11500}

if [[ ! -f $build/libaudiopipe.so ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DAP_BUILD_TESTS=OFF -DAP_BUILD_SERVERS=OFF -DAP_BUILD_EXAMPLES=OFF \
    >/dev/null
  cmake --build "$build" -j2 --target audiopipe >/dev/null
fi
cc -O2 -std=c11 -D_GNU_SOURCE -I"$root/include" -I"$build/include" \
  "$root/bench/wakeup.c" -L"$build" -laudiopipe -lpthread \
  -Wl,-rpath,"$build" -o "$build/bench-wakeup"

redis_dir=$(mktemp -d)
directory=""
cleanup() {
  "$root/scripts/redis-test-server.sh" stop "$redis_dir" "$port" || true
  rm -rf "$redis_dir" ${directory:+"$directory"}
}
trap cleanup EXIT
"$root/scripts/redis-test-server.sh" start "$redis_dir" "$port" >/dev/null

echo "nproc: $(nproc); CPU: $(lscpu | sed -n 's/^Model name: *//p')"
echo "redis-server: $(redis-server --version | awk '{print $3}')"
log=$build/bench-wakeup.log
: >"$log"
for uri in "" "redis://127.0.0.1:$port"; do
  directory=$(mktemp -d)
  "$build/bench-wakeup" "$directory" "$jobs" "$poll_ms" "$uri" 2>>"$log"
  rm -rf "$directory"
  directory=""
done
