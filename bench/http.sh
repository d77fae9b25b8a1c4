#!/usr/bin/env bash
# Load test of audiopipe-httpd on embedded defaults (SQLite metadata, file
# object store) with wrk: POST /v1/uploads at 64 connections, GET /healthz,
# and POST /v1/uploads again while 500 server-sent event streams are held
# open by bench/sse_streams.py, which reports any stream that fails.
#
#   bench/http.sh [BUILD_DIR] [SECONDS]
#   AP_BENCH_COMPARE="BUILD_A BUILD_B" AP_BENCH_ROUNDS=3 bench/http.sh - 10
#
# BUILD_DIR must contain servers/httpd/audiopipe-httpd (default
# build-bench, built here in Release when missing). wrk runs with 2
# threads; the server with http.threads from AP_BENCH_HTTP_THREADS (0:
# twice the CPUs). Each wrk row also prints the CPU seconds the server
# and wrk used, since they share the machine's CPUs.
#
# With AP_BENCH_COMPARE, only the POST /v1/uploads row runs, once per
# build per round (AP_BENCH_ROUNDS, default 2), alternating between the
# builds, each against a fresh server and database, so every build sees
# the same machine load.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-$root/build-bench}
seconds=${2:-10}

data=$(mktemp -d -t audiopipe-bench-http.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$data"
}
trap cleanup EXIT

# Builds audiopipe-httpd in BUILD_DIR when it is missing.
ensure_built() {
  if [[ ! -x $1/servers/httpd/audiopipe-httpd ]]; then
    cmake -S "$root" -B "$1" -DCMAKE_BUILD_TYPE=Release \
      -DAP_BUILD_TESTS=OFF >/dev/null
    cmake --build "$1" -j"$(nproc)" --target audiopipe_httpd >/dev/null
  fi
}

# CPU seconds (user + system) a process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' \
    "/proc/$1/stat"
}

# Starts BUILD_DIR's server on a fresh data directory under $data/NAME and
# sets port, base, key, server_pid and lua.
start_server() {
  local httpd=$1/servers/httpd/audiopipe-httpd directory=$data/$2
  mkdir -p "$directory"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  base=http://127.0.0.1:$port
  key=ak-bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  echo "bench $("$httpd" --hash-key "$key")" >"$directory/keys"

  AUDIOPIPE_METADATA_URI=sqlite://$directory/meta.db \
    AUDIOPIPE_OBJECTS_URI=file://$directory/objects \
    AUDIOPIPE_SIGNING_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n') \
    AUDIOPIPE_PUBLIC_BASE_URL=$base \
    AUDIOPIPE_HTTP_API_KEYS_FILE=$directory/keys \
    AUDIOPIPE_HTTP_RATE_LIMIT=0 \
    AUDIOPIPE_LOG_LEVEL=warn \
    "$httpd" --listen "127.0.0.1:$port" \
    --threads "${AP_BENCH_HTTP_THREADS:-0}" 2>"$directory/httpd.log" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 100); do
    curl -sf "$base/healthz" >/dev/null && break
    sleep 0.1
  done

  lua=$directory/uploads.lua
  cat >"$lua" <<LUA
-- POST /v1/uploads with a JSON body and the API key.
wrk.method = "POST"
wrk.body = '{"filename":"take.wav","size_bytes":1048576,"content_type":"audio/wav"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  pids=()
}

# Runs wrk with the given arguments, then prints the CPU seconds the
# server and wrk used during the run.
run_wrk() {
  local before
  before=$(cpu_seconds "$server_pid")
  /usr/bin/time -f "%U %S" -o "$data/wrk-cpu" wrk -t2 -c64 -d"${seconds}s" \
    --latency "$@"
  local after
  after=$(cpu_seconds "$server_pid")
  awk -v before="$before" -v after="$after" -v s="$seconds" \
    '{printf "CPU seconds: server %.2f (%.2f CPUs), wrk %.2f (%.2f CPUs)\n",
      after - before, (after - before) / s, $1 + $2, ($1 + $2) / s}' \
    "$data/wrk-cpu"
}

echo "nproc: $(nproc); CPU: $(lscpu | sed -n 's/^Model name: *//p')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ -n ${AP_BENCH_COMPARE:-} ]]; then
  read -r -a builds <<<"$AP_BENCH_COMPARE"
  for candidate in "${builds[@]}"; do
    ensure_built "$candidate"
  done
  for round in $(seq "${AP_BENCH_ROUNDS:-2}"); do
    for index in "${!builds[@]}"; do
      start_server "${builds[$index]}" "round$round-build$index"
      echo "== round $round, ${builds[$index]}: POST /v1/uploads," \
        "64 connections, ${seconds}s"
      run_wrk -s "$lua" "$base/v1/uploads"
      echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
      stop_server
    done
  done
  exit 0
fi

ensure_built "$build"
start_server "$build" server

echo "== POST /v1/uploads, 64 connections, ${seconds}s"
run_wrk -s "$lua" "$base/v1/uploads"
echo "== GET /healthz, 64 connections, ${seconds}s"
run_wrk "$base/healthz"

# A job that stays queued (no worker runs), so its streams stay open.
ffmpeg -v error -y -f lavfi -i anullsrc=r=8000:cl=mono -t 1 "$data/a.wav"
size=$(stat -c %s "$data/a.wav")
ticket=$(curl -sfS -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' \
  -d "{\"filename\":\"a.wav\",\"size_bytes\":$size,\"content_type\":\"audio/wav\"}" \
  "$base/v1/uploads")
upload_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["upload_id"])' <<<"$ticket")
url=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])' <<<"$ticket")
curl -sfS -X PUT -H 'Content-Type: audio/wav' --data-binary "@$data/a.wav" \
  "$url" >/dev/null
job_id=$(curl -sfS -X POST -H "Authorization: Bearer $key" \
  "$base/v1/uploads/$upload_id/complete" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')

echo "== POST /v1/uploads, 64 connections, ${seconds}s, 500 SSE streams open"
python3 "$root/bench/sse_streams.py" "127.0.0.1" "$port" "$key" "$job_id" \
  500 $((seconds + 10)) >"$data/sse.txt" &
sse=$!
sleep 4
run_wrk -s "$lua" "$base/v1/uploads"
wait "$sse" || true
cat "$data/sse.txt"
