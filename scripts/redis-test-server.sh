#!/bin/sh
# Starts or stops a private redis-server for the test suite, listening
# only on 127.0.0.1:PORT, with persistence off (no RDB snapshots, no
# append-only file), so every start is an empty Redis.
#
# Usage: redis-test-server.sh start|stop|restart DIR PORT
#   start    starts redis-server in the background with its PID file and
#            log in DIR and returns once it replies PONG to PING.
#   stop     stops the redis-server whose PID is in DIR/redis.pid and
#            waits for it to exit. Stopping one that is not running
#            succeeds.
#   restart  stop, then start.
set -eu

usage() {
  echo "usage: $0 start|stop|restart DIR PORT" >&2
  exit 2
}

[ $# -eq 3 ] || usage
action=$1
directory=$2
port=$3
case $port in
  '' | *[!0-9]*) echo "$0: PORT must be a number, got \"$port\"" >&2; exit 2 ;;
esac

redis_binary=${REDIS_SERVER:-redis-server}
ready_timeout_tenths=${REDIS_READY_TIMEOUT_TENTHS:-100}

# Sends an inline PING over TCP and prints the first reply line, with
# bash's /dev/tcp so that no redis-cli is needed.
ping_redis() {
  bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$port"' || exit 1
    printf "PING\r\n" >&3
    IFS= read -r -t 2 reply <&3 || true
    printf "%s" "$reply" | tr -d "\r"' 2>/dev/null || true
}

running_pid() {
  [ -f "$pid_file" ] || return 1
  pid=$(cat "$pid_file")
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  if pid=$(running_pid); then
    echo "$0: redis-server already running with PID $pid" >&2
    exit 1
  fi
  # Another process on the port would reply in this server's place.
  if bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$port" 2>/dev/null; then
    echo "$0: 127.0.0.1:$port is already in use; pass a free PORT" \
      "(for ctest, set -DAP_TEST_REDIS_PORT=...)" >&2
    exit 1
  fi
  rm -f "$pid_file"
  "$redis_binary" --bind 127.0.0.1 --port "$port" --save '' \
    --appendonly no --daemonize yes --pidfile "$pid_file" \
    --dir "$directory" --logfile "$log_file"

  waited=0
  while [ "$waited" -lt "$ready_timeout_tenths" ]; do
    # PONG alone could come from another server on the port, so the PID
    # this one wrote must be alive too.
    if [ "$(ping_redis)" = +PONG ] && running_pid >/dev/null; then
      echo "redis-server ready on 127.0.0.1:$port (PID $(cat "$pid_file"))"
      return 0
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "$0: redis-server did not reply to PING in time; log follows" >&2
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
      echo "$0: redis-server PID $pid ignored SIGTERM for 10 s;" \
        "sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$pid_file"
}

mkdir -p "$directory"
directory=$(cd "$directory" && pwd)
pid_file=$directory/redis.pid
log_file=$directory/redis.log

case $action in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) usage ;;
esac
