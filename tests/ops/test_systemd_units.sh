#!/usr/bin/env bash
# Verifies deploy/systemd with `systemd-analyze verify` and checks that
# each unit carries the hardening settings docs/operations.md promises.
#
# The units name the installed paths (/usr/local/bin/audiopipe-httpd,
# /etc/audiopipe/audiopipe.env). verify needs those to exist, so the test
# builds a root of its own: the units in etc/systemd/system, stub
# executables (copies of true) at usr/local/bin, the example environment
# file, and a copy of the host's usr/lib/systemd/system for the targets
# the units order against; then runs `systemd-analyze verify --root`.
# Usage: test_systemd_units.sh DEPLOY_SYSTEMD_DIR
set -uo pipefail
directory=$1
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
  exit 77
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc/audiopipe" \
  "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp /bin/true "$root/usr/local/bin/audiopipe-httpd"
cp /bin/true "$root/usr/local/bin/audiopipe-worker"
cp "$directory/audiopipe.env.example" "$root/etc/audiopipe/audiopipe.env"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$directory"/*.service "$root/etc/systemd/system/"

status=0
units=(audiopipe-httpd.service audiopipe-worker.service)
output=$(cd "$root/etc/systemd/system" &&
  systemd-analyze verify --root="$root" "${units[@]/#/$root/etc/systemd/system/}" 2>&1)
verify_status=$?
echo "$output"
if ((verify_status != 0)); then
  echo "FAIL systemd-analyze verify exited $verify_status"
  status=1
elif grep -q 'audiopipe' <<<"$output"; then
  echo "FAIL systemd-analyze verify printed warnings about the units"
  status=1
else
  echo "ok   systemd-analyze verify accepts both units"
fi

required=(NoNewPrivileges=yes ProtectSystem=strict
  ReadWritePaths=/var/lib/audiopipe ProtectHome=yes PrivateTmp=yes
  PrivateDevices=yes ProtectKernelTunables=yes ProtectKernelModules=yes
  ProtectKernelLogs=yes ProtectControlGroups=yes RestrictAddressFamilies=
  RestrictNamespaces=yes LockPersonality=yes MemoryDenyWriteExecute=yes
  SystemCallFilter=@system-service 'CapabilityBoundingSet=$' User=audiopipe
  KillSignal=SIGTERM Restart=on-failure
  EnvironmentFile=/etc/audiopipe/audiopipe.env)
for unit in "${units[@]}"; do
  for setting in "${required[@]}"; do
    if grep -q "^$setting" "$directory/$unit"; then
      echo "ok   $unit has $setting"
    else
      echo "FAIL $unit lacks $setting"
      status=1
    fi
  done

  # The stop timeout must exceed the drain the service is given (30 s
  # by default for both http.drain_timeout and worker.drain_timeout).
  timeout=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$directory/$unit")
  if [[ -n $timeout ]] && ((timeout > 30)); then
    echo "ok   $unit TimeoutStopSec ${timeout}s is above the 30 s drain"
  else
    echo "FAIL $unit TimeoutStopSec '${timeout}' is not above 30 s"
    status=1
  fi
done
exit $status
