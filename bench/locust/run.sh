#!/usr/bin/env bash
# Runs bench/locust/locustfile.py headless against audiopipe-httpd and
# audiopipe-worker started here on loopback with a temporary data
# directory, then stops them by PID. Prints Locust's summary; the CSV
# statistics go to bench/results/locust_*.csv.
#
# Usage: bench/locust/run.sh [BUILD_DIR]   (default build-bench, Release)
# AP_LOCUST_USERS (500), AP_LOCUST_SPAWN_RATE (50 per second),
# AP_LOCUST_RUN_TIME (2m) and AP_LOCUST_WORKER_CONCURRENCY (nproc) set the
# run. Needs Debian's python3-locust (/usr/bin/locust).
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
build=${1:-$root/build-bench}
users=${AP_LOCUST_USERS:-500}
spawn_rate=${AP_LOCUST_SPAWN_RATE:-50}
run_time=${AP_LOCUST_RUN_TIME:-2m}
concurrency=${AP_LOCUST_WORKER_CONCURRENCY:-$(nproc)}
locust=/usr/bin/locust
results=$root/bench/results
mkdir -p "$results"

if [[ ! -x $locust ]]; then
  echo "run.sh: $locust is missing: apt-get install python3-locust" >&2
  exit 1
fi
if [[ ! -x $build/servers/httpd/audiopipe-httpd ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DAP_BUILD_TESTS=OFF
  cmake --build "$build" -j"$(nproc)"
fi

data=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$data"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
metrics_port=$(free_port)
key=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
echo "bench $("$build/servers/httpd/audiopipe-httpd" --hash-key "$key")" >"$data/keys"

AUDIOPIPE_SIGNING_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d " \n")
export AUDIOPIPE_SIGNING_SECRET
export AUDIOPIPE_PUBLIC_BASE_URL=http://127.0.0.1:$port
export AUDIOPIPE_METADATA_URI=sqlite://$data/meta.db
export AUDIOPIPE_OBJECTS_URI=file://$data/objects
export AUDIOPIPE_HTTP_API_KEYS_FILE=$data/keys
export AUDIOPIPE_HTTP_RATE_LIMIT=0
export AUDIOPIPE_LOG_LEVEL=warn

"$build/servers/httpd/audiopipe-httpd" --listen "127.0.0.1:$port" \
  >"$data/httpd.log" 2>&1 &
pids+=($!)
"$build/servers/worker/audiopipe-worker" --concurrency "$concurrency" \
  --metrics-listen "127.0.0.1:$metrics_port" >"$data/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break
  sleep 0.1
done

# The decodable case files (not the deliberately broken or non-audio
# ones) and the freedesktop sound theme.
files=()
for name in case-01.webm case-03.mp3 case-18.wav; do
  files+=("$root/tests/data/cases/$name")
done
for sound in /usr/share/sounds/freedesktop/stereo/*.oga; do
  [[ -f $sound ]] && files+=("$sound")
done
AUDIOPIPE_BENCH_FILES=$(IFS=:; echo "${files[*]}")
export AUDIOPIPE_BENCH_FILES AUDIOPIPE_BENCH_KEY=$key

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "command: locust --headless -u $users -r $spawn_rate --run-time $run_time (worker concurrency $concurrency)"
status=0
"$locust" -f "$root/bench/locust/locustfile.py" --headless -u "$users" \
  -r "$spawn_rate" --run-time "$run_time" --stop-timeout 35 \
  --host "http://127.0.0.1:$port" --csv "$results/locust" --only-summary ||
  status=$?

echo "worker jobs:"
curl -fs "http://127.0.0.1:$metrics_port/metrics" |
  grep -E '^audiopipe_worker_(jobs_total|stage_seconds_(sum|count))' || true
exit $status
