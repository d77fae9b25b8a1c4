#!/usr/bin/env bash
# Measures no-op jobs through the embedded queue (enqueue -> claim ->
# complete cycles per second) with synchronous=FULL and NORMAL side by
# side, on a fresh SQLite file in a temporary directory each run.
#
#   bench/queue.sh [BUILD_DIR] [CYCLES]
#
# BUILD_DIR is a configured and built tree (default build-bench, built
# here in Release when missing). Runs 1 and 4 threads sharing a context.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-$root/build-bench}
cycles=${2:-4000}

if [[ ! -f $build/libaudiopipe.so ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DAP_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target audiopipe >/dev/null
fi
cc -O2 -std=c11 -D_GNU_SOURCE -I"$root/include" -I"$build/include" \
  "$root/bench/queue.c" -L"$build" -laudiopipe -lpthread \
  -Wl,-rpath,"$build" -o "$build/bench-queue"

echo "nproc: $(nproc); CPU: $(lscpu | sed -n 's/^Model name: *//p')"
echo "filesystem of TMPDIR: $(df -T "${TMPDIR:-/tmp}" | awk 'NR==2 {print $2}')"
for synchronous in FULL NORMAL; do
  for threads in 1 4; do
    directory=$(mktemp -d)
    "$build/bench-queue" "$directory" "$cycles" "$threads" "$synchronous"
    rm -rf "$directory"
  done
done
