#!/bin/sh
# Starts or stops a private clamd for the test suite, listening only on
# 127.0.0.1:PORT and on DIR/clamd.ctl, with a tiny signature database this
# script writes itself (freshclam needs the network, so the official
# databases are not used). The database detects:
#   Audiopipe.Test.EICAR    the standard EICAR anti-virus test string
#   Audiopipe.Test.Pattern  the ASCII text AUDIOPIPE-CLAMD-TEST-PATTERN
# clamd reports both with ".UNOFFICIAL" appended, as for every database
# that is not signed by ClamAV.
#
# Usage: clamd-test-server.sh start|stop DIR PORT
#   start  writes DIR/clamd.conf and DIR/db/, starts clamd in the
#          background and returns once it replies PONG to PING.
#   stop   stops the clamd whose PID is in DIR/clamd.pid and waits for it
#          to exit. Stopping a clamd that is not running succeeds.
# StreamMaxLength is 1 MiB so the tests can exceed it cheaply.
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

clamd_binary=${CLAMD:-/usr/sbin/clamd}
pid_file=$directory/clamd.pid
log_file=$directory/clamd.log
ready_timeout_seconds=${CLAMD_READY_TIMEOUT:-120}

# Sends zPING\0 over TCP and prints the reply, using bash's /dev/tcp
# because Debian's clamav-daemon package installs no command-line client.
ping_clamd() {
  bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$port"' || exit 1
    printf "zPING\0" >&3
    IFS= read -r -d "" -t 5 reply <&3 || true
    printf "%s" "$reply"' 2>/dev/null || true
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
    echo "$0: clamd already running with PID $pid" >&2
    exit 1
  fi
  mkdir -p "$directory/db"
  absolute=$(cd "$directory" && pwd)
  rm -f "$absolute/clamd.ctl" "$absolute/clamd.pid"

  # .ndb lines are Name:TargetType:Offset:HexSignature; target type 0 is
  # any file and offset * is anywhere in it.
  eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
  eicar_hex=$(printf '%s' "$eicar" | od -An -tx1 | tr -d ' \n')
  pattern_hex=$(printf '%s' 'AUDIOPIPE-CLAMD-TEST-PATTERN' | od -An -tx1 | tr -d ' \n')
  {
    echo "Audiopipe.Test.EICAR:0:*:$eicar_hex"
    echo "Audiopipe.Test.Pattern:0:*:$pattern_hex"
  } >"$absolute/db/audiopipe-test.ndb"

  cat >"$absolute/clamd.conf" <<CONF
LocalSocket $absolute/clamd.ctl
LocalSocketMode 600
FixStaleSocket yes
TCPSocket $port
TCPAddr 127.0.0.1
Foreground no
PidFile $absolute/clamd.pid
LogFile $absolute/clamd.log
LogTime yes
DatabaseDirectory $absolute/db
OfficialDatabaseOnly no
Bytecode no
SelfCheck 0
StreamMaxLength 1M
MaxThreads 4
CONF

  # A process already listening on the port would answer in clamd's place
  # or make clamd fail to bind; either way the fixture cannot work.
  if bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$port" 2>/dev/null; then
    echo "$0: 127.0.0.1:$port is already in use; pass a free PORT" \
      "(for ctest, set -DAP_TEST_CLAMD_PORT=...)" >&2
    exit 1
  fi

  "$clamd_binary" --config-file="$absolute/clamd.conf"

  waited=0
  while [ "$waited" -lt "$ready_timeout_seconds" ]; do
    # clamd forks, writes its PID file, loads the database and only then
    # binds; a PID file whose process is gone means it gave up.
    if [ -f "$pid_file" ] && ! running_pid >/dev/null; then
      echo "$0: clamd exited during start-up; log follows" >&2
      tail -n 20 "$log_file" >&2 || true
      exit 1
    fi
    # PONG alone could come from another clamd on the same port, so the
    # PID this clamd wrote must be alive too.
    if [ "$(ping_clamd)" = PONG ] && running_pid >/dev/null; then
      echo "clamd ready on 127.0.0.1:$port and $absolute/clamd.ctl" \
        "(PID $(cat "$absolute/clamd.pid"))"
      return 0
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "$0: clamd did not answer PING within $ready_timeout_seconds s;" \
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
    if [ "$waited" -ge 300 ]; then
      echo "$0: clamd PID $pid ignored SIGTERM for 30 s; sending SIGKILL" >&2
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
