#!/usr/bin/env bash
# Blue/green switch of audiopipe-httpd behind nginx (nginx/audiopipe.conf):
#   1. start the new colour's httpd on its port,
#   2. wait until its /healthz and /readyz return 200,
#   3. rewrite the nginx upstream file to the new port, check the nginx
#      configuration and `nginx -s reload`,
#   4. send SIGTERM to the old colour, which drains: its /healthz returns
#      503 for http.drain_grace, in-flight requests finish, it exits 0.
# Usage: switch-colour.sh blue|green
#
# Settings, from the environment:
#   AUDIOPIPE_HTTPD      httpd binary (/usr/local/bin/audiopipe-httpd)
#   AUDIOPIPE_ENV_FILE   file of AUDIOPIPE_* settings read before starting
#                        (/etc/audiopipe/audiopipe.env when it exists)
#   BLUE_PORT, GREEN_PORT  loopback ports of the colours (8081, 8082)
#   UPSTREAM_FILE        upstream file nginx includes
#                        (/etc/nginx/audiopipe-upstream.conf)
#   NGINX_BINARY         nginx binary (nginx); NGINX_OPTIONS extra options
#                        for `nginx -t` and `nginx -s reload`, such as
#                        "-p PREFIX -c CONF" for a private instance
#   STATE_DIR            PID and log files of the colours (/run/audiopipe)
#   READY_TIMEOUT        seconds to wait for the new colour (30)
#   SETTLE_SECONDS       seconds between the reload and SIGTERM, so old
#                        nginx workers finish requests to the old colour (2)
#   STOP_TIMEOUT         seconds to wait for the old colour to exit (60)
# Exits 0 after the switch, 1 when the new colour does not become ready or
# nginx rejects the configuration (the old colour then keeps serving), 2
# on a usage error.
#
# NOTE: the colours run as detached processes tracked by PID files, not as
# systemd units, so systemd does not restart a crashed colour. There is no
# audiopipe-httpd@.service template yet.
set -euo pipefail

colour=${1:-}
case $colour in
blue) old=green ;;
green) old=blue ;;
*)
  echo "usage: $0 blue|green" >&2
  exit 2
  ;;
esac

httpd=${AUDIOPIPE_HTTPD:-/usr/local/bin/audiopipe-httpd}
env_file=${AUDIOPIPE_ENV_FILE:-/etc/audiopipe/audiopipe.env}
upstream_file=${UPSTREAM_FILE:-/etc/nginx/audiopipe-upstream.conf}
nginx=${NGINX_BINARY:-nginx}
read -r -a nginx_options <<<"${NGINX_OPTIONS:-}"
state_dir=${STATE_DIR:-/run/audiopipe}
ready_timeout=${READY_TIMEOUT:-30}
settle_seconds=${SETTLE_SECONDS:-2}
stop_timeout=${STOP_TIMEOUT:-60}
declare -A ports=([blue]=${BLUE_PORT:-8081} [green]=${GREEN_PORT:-8082})
port=${ports[$colour]}

log() { echo "switch-colour: $*" >&2; }

mkdir -p "$state_dir"
if [[ -f $env_file ]]; then
  set -a
  # shellcheck disable=SC1090
  . "$env_file"
  set +a
fi

# Returns 0 when the PID in file $1 is a running process.
running() {
  [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

if running "$state_dir/$colour.pid"; then
  log "$colour is already running (PID $(cat "$state_dir/$colour.pid"))"
  exit 1
fi

# 1. Start the new colour, detached from this shell.
setsid "$httpd" --listen "127.0.0.1:$port" \
  >>"$state_dir/$colour.log" 2>&1 </dev/null &
new_pid=$!
echo "$new_pid" >"$state_dir/$colour.pid"
log "started $colour on 127.0.0.1:$port (PID $new_pid)"

stop_new() {
  kill -TERM "$new_pid" 2>/dev/null || true
  rm -f "$state_dir/$colour.pid"
}

# 2. Wait for liveness and readiness.
deadline=$((SECONDS + ready_timeout))
ready=0
while ((SECONDS < deadline)); do
  if ! kill -0 "$new_pid" 2>/dev/null; then
    break
  fi
  if curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz" &&
    curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz"; then
    ready=1
    break
  fi
  sleep 0.1
done
if ((!ready)); then
  log "$colour did not become ready within ${ready_timeout}s; see $state_dir/$colour.log"
  stop_new
  exit 1
fi

# 3. Point nginx at the new colour. The file is replaced by rename so
# nginx never reads half of it; the old one comes back if nginx rejects
# the result.
previous=""
if [[ -f $upstream_file ]]; then
  previous=$(cat "$upstream_file")
fi
cat >"$upstream_file.tmp" <<UPSTREAM
# The active colour, written by switch-colour.sh: $colour.
upstream audiopipe {
    server 127.0.0.1:$port;
    keepalive 32;
}
UPSTREAM
mv "$upstream_file.tmp" "$upstream_file"
if ! "$nginx" "${nginx_options[@]}" -t -q ||
  ! "$nginx" "${nginx_options[@]}" -s reload; then
  log "nginx rejected the configuration; keeping $old"
  if [[ -n $previous ]]; then
    printf '%s\n' "$previous" >"$upstream_file"
  fi
  stop_new
  exit 1
fi
echo "$colour" >"$state_dir/active"
log "nginx now sends requests to $colour"

# 4. Drain the old colour.
sleep "$settle_seconds"
if running "$state_dir/$old.pid"; then
  old_pid=$(cat "$state_dir/$old.pid")
  log "stopping $old (PID $old_pid)"
  kill -TERM "$old_pid"
  deadline=$((SECONDS + stop_timeout))
  while kill -0 "$old_pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
  done
  if kill -0 "$old_pid" 2>/dev/null; then
    log "$old (PID $old_pid) did not exit within ${stop_timeout}s"
    exit 1
  fi
  rm -f "$state_dir/$old.pid"
  log "$old stopped"
fi
