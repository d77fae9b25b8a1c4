#!/usr/bin/env bash
# Checks deploy/prometheus: the alert rules parse (promtool check rules),
# their unit tests pass (promtool test rules), and the scrape
# configuration parses once its rule file path points at the rules.
# Usage: test_alert_rules.sh DEPLOY_PROMETHEUS_DIR
set -uo pipefail
directory=$1
if ! command -v promtool >/dev/null; then
  echo "SKIP: promtool is not installed (Debian package prometheus)"
  exit 77
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
promtool check rules "$directory/alerts.yml" || status=1
(cd "$directory" && promtool test rules alerts_test.yml) || status=1
cp "$directory/alerts.yml" "$scratch/audiopipe-alerts.yml"
sed "s|/etc/prometheus/audiopipe-alerts.yml|$scratch/audiopipe-alerts.yml|" \
  "$directory/prometheus.yml" >"$scratch/prometheus.yml"
promtool check config "$scratch/prometheus.yml" || status=1
exit $status
