#!/usr/bin/env bash
# Compares the backends side by side in one run, against the embedded
# defaults (SQLite metadata, file object store, no Redis) measured in the
# same run:
#
#   (a) POST /v1/uploads through audiopipe-httpd with wrk, on each mix of
#       SQLite or MongoDB metadata, file or S3 objects, with or without
#       Redis (rows with Redis keep the per-key rate limit in Redis, set
#       so high that every request is admitted; other rows turn it off);
#   (b) no-op jobs (enqueue -> claim -> complete) on SQLite and MongoDB,
#       1 and 4 threads sharing a context;
#   (c) the cost of presigning one URL, GET and upload PUT, on the file
#       store (HMAC-SHA256) and on S3 (SigV4), in CPU and wall-clock time.
#
#   bench/backends.sh [BUILD_DIR] [SECONDS]
#
# BUILD_DIR must contain servers/httpd/audiopipe-httpd and libaudiopipe.a
# (default build-bench, built here in Release when missing); SECONDS is
# the length of each wrk run (default 5). Each job and HTTP row runs
# AP_BENCH_ROUNDS times (default 3, the rows alternating) and reports
# the median, because other load on the machine swings single runs.
# AP_BENCH_QUEUE_CYCLES (default 4000) and AP_BENCH_MONGO_CYCLES (default
# 1000) set the job cycles per run, AP_BENCH_MONGO_SECONDS (default 2)
# the length of each MongoDB HTTP run, and AP_BENCH_PRESIGN_URLS
# (default 100000) the URLs signed per store.
#
# The script starts every server itself on 127.0.0.1 with
# scripts/mongo-test-server.sh, scripts/redis-test-server.sh and
# scripts/ceph-rgw.sh, and stops each by its PID on exit. The MongoDB
# rows run on the Mongo-wire test server, which scans a whole collection
# per query: each run gets a fresh database and a few thousand requests,
# and its figures measure that server, not MongoDB.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-$root/build-bench}
seconds=${2:-5}
queue_cycles=${AP_BENCH_QUEUE_CYCLES:-4000}
mongo_cycles=${AP_BENCH_MONGO_CYCLES:-1000}
presign_urls=${AP_BENCH_PRESIGN_URLS:-100000}
mongo_seconds=${AP_BENCH_MONGO_SECONDS:-2}
rounds=${AP_BENCH_ROUNDS:-3}
httpd=$build/servers/httpd/audiopipe-httpd

if [[ ! -x $httpd || ! -f $build/libaudiopipe.a ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DAP_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" \
    --target audiopipe_httpd audiopipe_static >/dev/null
fi
# The static library needs the modules libaudiopipe.pc names as private.
modules=$(sed -n 's/^Requires.private: //p' "$build/libaudiopipe.pc" | tr -d ,)
# shellcheck disable=SC2046,SC2086 # one module or flag per word
cc -O2 -std=c11 -D_GNU_SOURCE -I"$root/include" -I"$build/include" \
  -I"$root/libaudiopipe" "$root/bench/backends.c" "$build/libaudiopipe.a" \
  $(pkg-config --libs $modules) -lpthread -lm -o "$build/bench-backends"
bench=$build/bench-backends

data=$(mktemp -d -t audiopipe-bench-backends.XXXXXX)
httpd_pid=
mongo_port=
redis_port=
rgw_port=
stop_httpd() {
  if [[ -n $httpd_pid ]]; then
    kill -TERM "$httpd_pid" 2>/dev/null || true
    wait "$httpd_pid" 2>/dev/null || true
    httpd_pid=
  fi
}
cleanup() {
  stop_httpd
  if [[ -n $mongo_port ]]; then
    "$root/scripts/mongo-test-server.sh" stop "$data/mongo" "$mongo_port" || true
  fi
  if [[ -n $redis_port ]]; then
    "$root/scripts/redis-test-server.sh" stop "$data/redis" "$redis_port" || true
  fi
  if [[ -n $rgw_port ]]; then
    "$root/scripts/ceph-rgw.sh" stop "$data/rgw" "$rgw_port" >/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

# Prints a free loopback port; with an argument N, the first of N free
# consecutive ports in 12000-19999 (the Ceph gateway and its monitor).
free_port() {
  python3 - "${1:-1}" <<'PY'
import random, socket, sys
count = int(sys.argv[1])
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
if count == 1:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    sys.exit(0)
for _ in range(1000):
    port = random.randrange(12000, 20000 - count)
    if all(free(port + i) for i in range(count)):
        print(port)
        sys.exit(0)
sys.exit("no free ports")
PY
}

mongo_port=$(free_port)
redis_port=$(free_port)
rgw_port=$(free_port 2)
mkdir -p "$data/mongo" "$data/redis" "$data/rgw"
"$root/scripts/mongo-test-server.sh" start "$data/mongo" "$mongo_port" >/dev/null
"$root/scripts/redis-test-server.sh" start "$data/redis" "$redis_port" >/dev/null
"$root/scripts/ceph-rgw.sh" start "$data/rgw" "$rgw_port" >/dev/null
# shellcheck disable=SC1091 # written by ceph-rgw.sh start
. "$data/rgw/s3.env"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
s3_uri="s3://$AP_TEST_S3_BUCKET?endpoint=$AP_TEST_S3_ENDPOINT&region=us-east-1&path_style=1"
redis_uri=redis://127.0.0.1:$redis_port
mongo_database=0
# Prints the URI of a fresh database on the Mongo-wire test server.
mongo_uri() {
  mongo_database=$((mongo_database + 1))
  echo "mongodb://127.0.0.1:$mongo_port/bench_$mongo_database?replicaSet=rs0"
}

echo "command: bench/backends.sh $* (wrk ${seconds}s per row)"
echo "machine: nproc $(nproc); CPU $(lscpu | sed -n 's/^Model name: *//p');" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git -C "$root" describe --always --dirty)"

# ---- (c) presigning ---------------------------------------------------
echo
echo "== presign, $presign_urls URLs per store and method"
presign_file=$("$bench" presign "file://$data/objects" "$presign_urls")
presign_s3=$("$bench" presign "$s3_uri" "$presign_urls")
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "| store | GET CPU ns/URL | PUT CPU ns/URL | GET wall ns/URL | PUT wall ns/URL | GET CPU vs file | PUT CPU vs file |"
echo "|---|---:|---:|---:|---:|---:|---:|"
file_get=$(field get_cpu_ns "$presign_file")
file_put=$(field put_cpu_ns "$presign_file")
s3_get=$(field get_cpu_ns "$presign_s3")
s3_put=$(field put_cpu_ns "$presign_s3")
echo "| file (HMAC-SHA256) | $file_get | $file_put |" \
  "$(field get_wall_ns "$presign_file") | $(field put_wall_ns "$presign_file") |" \
  "1.00 | 1.00 |"
echo "| s3 (SigV4) | $s3_get | $s3_put |" \
  "$(field get_wall_ns "$presign_s3") | $(field put_wall_ns "$presign_s3") |" \
  "$(ratio "$s3_get" "$file_get") | $(ratio "$s3_put" "$file_put") |"

# Prints the median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---- (b) no-op jobs ---------------------------------------------------
echo
echo "== no-op jobs (enqueue -> claim -> complete), median of $rounds rounds"
echo "| metadata | threads | cycles | cycles/s | p50 ms | p99 ms | vs sqlite |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for threads in 1 4; do
  declare -A queue_rates=() queue_p50=() queue_p99=()
  for round in $(seq "$rounds"); do
    # Rounds alternate the backends, so a burst of load elsewhere on the
    # machine falls on both.
    sqlite=$("$bench" queue "sqlite://$data/queue-$threads-$round.db" \
      "$queue_cycles" "$threads" || true)
    mongo=$("$bench" queue "$(mongo_uri)" "$mongo_cycles" "$threads" || true)
    for row in "sqlite|$sqlite" "mongo|$mongo"; do
      name=${row%%|*}
      line=${row#*|}
      queue_rates[$name]+=" $(field cycles_per_second "$line")"
      queue_p50[$name]+=" $(field p50_ms "$line")"
      queue_p99[$name]+=" $(field p99_ms "$line")"
    done
  done
  # shellcheck disable=SC2086 # the lists are split on purpose
  base=$(median ${queue_rates[sqlite]})
  for name in sqlite mongo; do
    cycles=$queue_cycles label=sqlite
    [[ $name == mongo ]] && cycles=$mongo_cycles label=mongo-test-server
    # shellcheck disable=SC2086
    if [[ $(wc -w <<<"${queue_rates[$name]}") -lt $rounds ]]; then
      echo "| $label | $threads | $cycles | failed | - | - | - |"
      continue
    fi
    # shellcheck disable=SC2086
    rate=$(median ${queue_rates[$name]})
    # shellcheck disable=SC2086
    echo "| $label | $threads | $cycles | $(printf %.0f "$rate") |" \
      "$(printf %.2f "$(median ${queue_p50[$name]})") |" \
      "$(printf %.1f "$(median ${queue_p99[$name]})") |" \
      "$(ratio "$rate" "$base") |"
  done
  unset queue_rates queue_p50 queue_p99
done

# ---- (a) POST /v1/uploads ---------------------------------------------
key=ak-bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
echo "bench $("$httpd" --hash-key "$key")" >"$data/keys"
cat >"$data/uploads.lua" <<LUA
-- POST /v1/uploads with a JSON body and the API key.
wrk.method = "POST"
wrk.body = '{"filename":"take.wav","size_bytes":1048576,"content_type":"audio/wav"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA

# Runs wrk for DURATION seconds against a fresh audiopipe-httpd on
# METADATA OBJECTS REDIS and prints "requests_per_second p50_ms p99_ms
# errors".
measure_uploads() {
  local metadata=$1 objects=$2 redis=$3 duration=$4 port
  local limits=(AUDIOPIPE_HTTP_RATE_LIMIT=0)
  if [[ -n $redis ]]; then
    limits=(AUDIOPIPE_HTTP_RATE_LIMIT=10000000
      AUDIOPIPE_HTTP_RATE_LIMIT_BURST=10000000)
  fi
  port=$(free_port)
  env AUDIOPIPE_METADATA_URI="$metadata" AUDIOPIPE_OBJECTS_URI="$objects" \
    AUDIOPIPE_REDIS_URI="$redis" \
    AUDIOPIPE_SIGNING_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" \
    AUDIOPIPE_PUBLIC_BASE_URL="http://127.0.0.1:$port" \
    AUDIOPIPE_HTTP_API_KEYS_FILE="$data/keys" "${limits[@]}" \
    AUDIOPIPE_LOG_LEVEL=warn \
    "$httpd" --listen "127.0.0.1:$port" --threads "${AP_BENCH_HTTP_THREADS:-0}" \
    2>>"$data/httpd.log" &
  httpd_pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
  wrk -t2 -c16 -d"${duration}s" --latency -s "$data/uploads.lua" \
    "http://127.0.0.1:$port/v1/uploads" >"$data/wrk.txt" 2>&1 || true
  stop_httpd
  awk '
    function ms(text) {
      if (text ~ /us$/) return text * 0.001
      if (text ~ /ms$/) return text + 0
      if (text ~ /s$/) return text * 1000
      return text
    }
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { errors = $5 }
    /Socket errors:/ { errors += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.2f %.1f %d\n", rps, p50, p99, errors }
  ' "$data/wrk.txt"
}

echo
echo "== POST /v1/uploads, wrk 2 threads, 16 connections, ${seconds}s per" \
  "run (${mongo_seconds}s on MongoDB), median of $rounds rounds"
echo "| metadata | objects | redis | requests/s | p50 ms | p99 ms | errors | vs sqlite+file |"
echo "|---|---|---|---:|---:|---:|---:|---:|"
rows=(
  "sqlite|file|"
  "sqlite|s3|"
  "sqlite|file|redis"
  "mongo-test-server|file|"
  "mongo-test-server|s3|"
  "mongo-test-server|s3|redis"
)
declare -A http_rps=() http_p50=() http_p99=() http_errors=()
run=0
for round in $(seq "$rounds"); do
  for row in "${rows[@]}"; do
    IFS='|' read -r metadata objects redis <<<"$row"
    run=$((run + 1))
    duration=$seconds
    if [[ $metadata == sqlite ]]; then
      metadata_uri=sqlite://$data/http-$run.db
    else
      metadata_uri=$(mongo_uri)
      duration=$mongo_seconds
    fi
    objects_uri=$s3_uri
    [[ $objects == file ]] && objects_uri=file://$data/http-objects-$run
    redis_value=
    [[ -n $redis ]] && redis_value=$redis_uri
    read -r rps p50 p99 errors < <(measure_uploads "$metadata_uri" \
      "$objects_uri" "$redis_value" "$duration")
    http_rps[$row]+=" $rps"
    http_p50[$row]+=" $p50"
    http_p99[$row]+=" $p99"
    http_errors[$row]=$((${http_errors[$row]:-0} + errors))
  done
done
base=
for row in "${rows[@]}"; do
  IFS='|' read -r metadata objects redis <<<"$row"
  # shellcheck disable=SC2086 # the lists are split on purpose
  rps=$(median ${http_rps[$row]})
  [[ -z $base ]] && base=$rps
  errors=${http_errors[$row]}
  # A row with failed requests measures failures, so it gets no ratio.
  versus=$(ratio "$rps" "$base")
  [[ $errors != 0 ]] && versus="- (errors)"
  # shellcheck disable=SC2086
  echo "| $metadata | $objects | ${redis:-off} | $(printf %.0f "$rps") |" \
    "$(printf %.2f "$(median ${http_p50[$row]})") |" \
    "$(printf %.1f "$(median ${http_p99[$row]})") |" \
    "$errors | $versus |"
done
