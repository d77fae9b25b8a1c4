#!/bin/sh
# Starts, stops or checks a single-node Ceph cluster (one monitor, one
# in-memory OSD, one RADOS Gateway) on 127.0.0.1 for the S3 tests.
#
#   scripts/ceph-rgw.sh start|stop|status DIR PORT
#
# Everything lives in DIR: ceph.conf, keyrings, monitor and OSD data,
# logs, PID files and DIR/s3.env, which `start` writes with the endpoint,
# credentials and bucket (AP_TEST_S3_*). The gateway listens on
# 127.0.0.1:PORT, the monitor on 127.0.0.1:PORT+1. `start` installs the
# Debian packages radosgw, ceph-mon, ceph-osd and ceph-common when they
# are missing. Each daemon is stopped by the PID it was started with.
set -eu

command=${1:-}
dir=${2:-}
port=${3:-}
if [ -z "$command" ] || [ -z "$dir" ] || [ -z "$port" ]; then
  echo "usage: $0 start|stop|status DIR PORT" >&2
  exit 2
fi
mon_port=$((port + 1))
access_key=AUDIOPIPETESTKEY
secret_key=audiopipe-test-secret-key-0123456789
bucket=audiopipe-test

stop_daemon() {
  pid_file="$dir/$1.pid"
  [ -f "$pid_file" ] || return 0
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    # SIGTERM lets the OSD flush memstore when osd fast shutdown is off.
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pid_file"
}

stop_all() {
  stop_daemon radosgw
  stop_daemon osd
  stop_daemon mon
}

# Runs a daemon in the foreground of a background shell and records its
# PID, so `stop` can signal exactly that process.
start_daemon() {
  name=$1
  shift
  "$@" >"$dir/log/$name.out" 2>&1 &
  echo $! >"$dir/$name.pid"
}

write_config() {
  mkdir -p "$dir/run" "$dir/log" "$dir/mon" "$dir/osd" "$dir/rgw"
  cat >"$dir/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public network = 127.0.0.0/8
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
keyring = $dir/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false

[mon.a]
mon data = $dir/mon
mon addr = v2:127.0.0.1:$mon_port

[osd]
osd objectstore = memstore
memstore device bytes = 3221225472
osd data = $dir/osd
osd fast shutdown = false

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $dir/rgw
rgw dns name = localhost
CONF
}

ensure_packages() {
  if command -v radosgw >/dev/null && command -v ceph-mon >/dev/null &&
    command -v ceph-osd >/dev/null && command -v ceph >/dev/null; then
    return 0
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y radosgw ceph-mon \
    ceph-osd ceph-common >"$dir/log/apt.out" 2>&1
}

# Succeeds once an authenticated ListBuckets returns 200.
gateway_ready() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access_key:$secret_key" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://127.0.0.1:$port/" 2>/dev/null | grep -q '^200$'
}

start() {
  stop_all
  conf="$dir/ceph.conf"
  if [ ! -f "$dir/mon/done" ]; then
    # Only the cluster's own folders are cleared, never DIR itself.
    rm -rf "$dir/mon" "$dir/osd" "$dir/rgw" "$dir/run"
    mkdir -p "$dir/log"
    ensure_packages
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_config
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" \
      "$dir/monmap" >"$dir/log/monmaptool.out" 2>&1
    ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. \
      --cap mon 'allow *' >"$dir/log/authtool.out" 2>&1
    ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" \
      --keyring "$dir/keyring" >"$dir/log/mon-mkfs.out" 2>&1
    touch "$dir/mon/done"
    first_start=1
  else
    first_start=0
  fi

  start_daemon mon ceph-mon -c "$conf" -f -i a
  if [ "$first_start" = 1 ]; then
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(timeout 60 ceph -c "$conf" osd new "$osd_uuid")
    echo "$osd_id" >"$dir/osd-id"
    ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" \
      >"$dir/log/osd-mkfs.out" 2>&1
  fi
  osd_id=$(cat "$dir/osd-id")
  start_daemon osd ceph-osd -c "$conf" -f -i "$osd_id"
  start_daemon radosgw radosgw -c "$conf" -f -n client.rgw

  # Creating the user on every start also recovers a cluster whose OSD
  # was killed without flushing memstore. When the user exists, the
  # command fails and the start goes on.
  timeout 120 radosgw-admin -c "$conf" -n client.rgw user create \
    --uid=audiopipe --display-name=audiopipe --access-key="$access_key" \
    --secret-key="$secret_key" >"$dir/log/user.out" 2>&1 || true

  for _ in $(seq 1 600); do
    if gateway_ready; then
      break
    fi
    sleep 0.2
  done
  if ! gateway_ready; then
    echo "radosgw did not respond on 127.0.0.1:$port: see $dir/log" >&2
    stop_all
    exit 1
  fi
  curl -s -o /dev/null --max-time 10 -X PUT \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access_key:$secret_key" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://127.0.0.1:$port/$bucket"

  cat >"$dir/s3.env" <<ENV
AP_TEST_S3_ENDPOINT=http://127.0.0.1:$port
AP_TEST_S3_REGION=us-east-1
AP_TEST_S3_BUCKET=$bucket
AWS_ACCESS_KEY_ID=$access_key
AWS_SECRET_ACCESS_KEY=$secret_key
ENV
  cat "$dir/s3.env"
}

status() {
  for name in mon osd radosgw; do
    pid_file="$dir/$name.pid"
    if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      echo "$name running, PID $(cat "$pid_file")"
    else
      echo "$name stopped"
    fi
  done
  gateway_ready
}

case "$command" in
start) start ;;
stop) stop_all ;;
status) status ;;
*)
  echo "unknown command \"$command\": use start, stop or status" >&2
  exit 2
  ;;
esac
