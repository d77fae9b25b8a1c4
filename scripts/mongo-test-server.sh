#!/bin/sh
# Starts or stops a private MongoDB-wire server for the test suite: the
# TypeScript server of npm @push.rocks/smartmongo 2.2.0 with in-memory
# storage, listening only on 127.0.0.1:PORT. It presents itself as the
# primary of a one-member replica set named rs0 (see launch.mjs), so test
# URIs look like mongodb://127.0.0.1:PORT/?replicaSet=rs0.
#
# No mongod can be installed from Debian, and the npm packages that ship
# one download it at run time, which these machines cannot. This server is
# a stand-in with known gaps (it accepts duplicates through a unique index,
# does not roll back an aborted transaction, stores int64 as double, scans
# a whole collection per query): the Mongo tests skip exactly those checks
# on it and run them all when AUDIOPIPE_TEST_MONGODB_URI names a real
# MongoDB.
#
# Usage: mongo-test-server.sh start|stop DIR PORT
#   start  installs the server once into the cache folder (below), starts
#          it in the background with its PID in DIR/mongo.pid and its output
#          in DIR/mongo.log, and returns once it answers on PORT.
#   stop   stops the server whose PID is in DIR/mongo.pid (SIGTERM, then
#          SIGKILL after 10 s). Stopping a server that is not running
#          succeeds.
# AP_MONGO_TEST_SET_NAME names the replica set (default rs0); set it empty
# for a server that presents itself as a standalone mongod.
# AP_MONGO_TEST_MODULES overrides the cache folder, by default
# ${XDG_CACHE_HOME:-$HOME/.cache}/audiopipe/smartmongo-2.2.0.
set -eu

usage() {
  echo "usage: $0 start|stop DIR PORT" >&2
  exit 2
}

[ $# -eq 3 ] || usage
action=$1
directory=$2
port=$3
case $port in
  '' | *[!0-9]*) echo "$0: PORT must be a number, got \"$port\"" >&2; exit 2 ;;
esac

script_dir=$(cd "$(dirname "$0")" && pwd)
cache=${AP_MONGO_TEST_MODULES:-${XDG_CACHE_HOME:-$HOME/.cache}/audiopipe/smartmongo-2.2.0}
pid_file=$directory/mongo.pid
log_file=$directory/mongo.log
ready_timeout_seconds=${MONGO_READY_TIMEOUT:-30}

# The package's own dependency ranges no longer resolve on the registry;
# these exact versions are the set that installs and runs.
dependencies='bson@6.10.4 mingo@7.2.7 @push.rocks/smartfs@1.5.0
  @push.rocks/smartpath@6.0.0 @push.rocks/smartpromise@4.2.3
  @push.rocks/smartrx@3.0.10'

install_server() {
  marker=$cache/node_modules/@push.rocks/smartmongo/package.json
  [ -f "$marker" ] && return 0
  command -v npm >/dev/null || {
    echo "$0: npm is missing: run scripts/install-deps.sh as root" >&2
    exit 1
  }
  mkdir -p "$cache"
  (
    # Two test runs may start at once; one installs, the other waits.
    flock 9
    [ -f "$marker" ] && exit 0
    cd "$cache"
    [ -f package.json ] || echo '{"private": true}' >package.json
    # shellcheck disable=SC2086 # the list is split on purpose
    npm install --no-audit --no-fund --loglevel=error $dependencies
    tarball=$(npm pack --silent @push.rocks/smartmongo@2.2.0)
    mkdir -p node_modules/@push.rocks/smartmongo
    tar -xzf "$tarball" -C node_modules/@push.rocks/smartmongo \
      --strip-components=1
    rm -f "$tarball"
  ) 9>"$cache.lock"
}

running_pid() {
  [ -f "$pid_file" ] || return 1
  pid=$(cat "$pid_file")
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

port_answers() {
  bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$port" 2>/dev/null
}

start() {
  if pid=$(running_pid); then
    echo "$0: server already running with PID $pid" >&2
    exit 1
  fi
  if port_answers; then
    echo "$0: 127.0.0.1:$port is already in use; pass a free PORT" \
      "(for ctest, set -DAP_TEST_MONGO_PORT=...)" >&2
    exit 1
  fi
  install_server
  mkdir -p "$directory"

  AP_MONGO_TEST_SET_NAME=${AP_MONGO_TEST_SET_NAME-rs0} nohup node "$script_dir/mongo-test-server/launch.mjs" \
    "$port" "$cache/node_modules" >"$log_file" 2>&1 &
  echo $! >"$pid_file"

  waited=0
  while [ "$waited" -lt "$((ready_timeout_seconds * 10))" ]; do
    if ! running_pid >/dev/null; then
      echo "$0: the server exited during start-up; log follows" >&2
      tail -n 20 "$log_file" >&2 || true
      exit 1
    fi
    if port_answers; then
      echo "mongo-wire test server ready on 127.0.0.1:$port" \
        "(PID $(cat "$pid_file"))"
      return 0
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "$0: the server did not listen within $ready_timeout_seconds s;" \
    "log follows" >&2
  tail -n 20 "$log_file" >&2 || true
  stop
  exit 1
}

stop() {
  pid=$(running_pid) || { rm -f "$pid_file"; return 0; }
  kill "$pid"
  waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 100 ]; then
      echo "$0: PID $pid ignored SIGTERM for 10 s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$pid_file"
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
