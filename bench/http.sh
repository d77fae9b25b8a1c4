#!/usr/bin/env bash
# Load test of audiopipe-httpd on embedded defaults (SQLite metadata, file
# object store) with wrk: POST /v1/uploads at 64 connections, GET /healthz,
# and POST /v1/uploads again while 500 server-sent event streams are held
# open by bench/sse_streams.py, which reports any stream that fails.
#
#   bench/http.sh [BUILD_DIR] [SECONDS]
#
# BUILD_DIR must contain servers/httpd/audiopipe-httpd (default
# build-bench, built here in Release when missing). wrk runs with 2
# threads; the server with http.threads from AP_BENCH_HTTP_THREADS (0:
# twice the CPUs).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-$root/build-bench}
seconds=${2:-10}
httpd=$build/servers/httpd/audiopipe-httpd

if [[ ! -x $httpd ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DAP_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target audiopipe_httpd >/dev/null
fi

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

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
key=ak-bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
echo "bench $("$httpd" --hash-key "$key")" >"$data/keys"

export AUDIOPIPE_METADATA_URI=sqlite://$data/meta.db
export AUDIOPIPE_OBJECTS_URI=file://$data/objects
export AUDIOPIPE_SIGNING_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export AUDIOPIPE_PUBLIC_BASE_URL=$base
export AUDIOPIPE_HTTP_API_KEYS_FILE=$data/keys
export AUDIOPIPE_HTTP_RATE_LIMIT=0
export AUDIOPIPE_LOG_LEVEL=warn

"$httpd" --listen "127.0.0.1:$port" --threads "${AP_BENCH_HTTP_THREADS:-0}" \
  2>"$data/httpd.log" &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "$base/healthz" >/dev/null && break
  sleep 0.1
done

cat >"$data/uploads.lua" <<LUA
-- POST /v1/uploads with a JSON body and the API key.
wrk.method = "POST"
wrk.body = '{"filename":"take.wav","size_bytes":1048576,"content_type":"audio/wav"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA

echo "nproc: $(nproc); CPU: $(lscpu | sed -n 's/^Model name: *//p')"
echo "== POST /v1/uploads, 64 connections, ${seconds}s"
wrk -t2 -c64 -d"${seconds}s" --latency -s "$data/uploads.lua" \
  "$base/v1/uploads"
echo "== GET /healthz, 64 connections, ${seconds}s"
wrk -t2 -c64 -d"${seconds}s" --latency "$base/healthz"

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
wrk -t2 -c64 -d"${seconds}s" --latency -s "$data/uploads.lua" \
  "$base/v1/uploads"
wait "$sse" || true
cat "$data/sse.txt"
