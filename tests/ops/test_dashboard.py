#!/usr/bin/env python3
"""Structural check of deploy/grafana/audiopipe.json and the metric names
of deploy/prometheus/alerts.yml: the dashboard is valid JSON, every panel
has a query, and every metric name in every query is one a running
audiopipe-httpd or audiopipe-worker exports on /metrics (read from their
# TYPE lines after a scrape, not from a hand-kept list).

Names Prometheus makes itself (up) and node_exporter's node_* series in
the disk alert are allowed; recording rules (audiopipe:...) must be
defined in alerts.yml.

Usage: test_dashboard.py --httpd PATH [--worker PATH] --deploy DIR
"""

import argparse
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ops_common as ops  # noqa: E402

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
            "bool", "and", "or", "unless", "offset", "inf", "nan"}
GENERATED = {"up"}


def metric_names(expression):
    """Returns the metric names an expression selects. Strings, label
    matchers, ranges and grouping clauses are removed first, so what
    remains outside function calls are metric names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*"
                  r"\([^)]*\)", " ", text)
    text = re.sub(r"\{\{[^}]*\}\}", " ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        name = match.group(0)
        following = text[match.end():].lstrip()
        if following.startswith("(") or name.lower() in KEYWORDS:
            continue
        if re.fullmatch(r"[0-9.e+-]+", name):
            continue
        names.add(name)
    return names


def exported_names(metrics_text):
    """Families from # TYPE lines, with a histogram's _bucket, _sum and
    _count series."""
    names = set()
    for line in metrics_text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            names.add(parts[2])
            if parts[3] == "histogram":
                names.update(parts[2] + s for s in ("_bucket", "_sum",
                                                     "_count"))
    return names


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--worker")
    parser.add_argument("--deploy", required=True)
    arguments = parser.parse_args()
    worker = arguments.worker if arguments.worker and os.access(
        arguments.worker, os.X_OK) else None

    path = os.path.join(arguments.deploy, "grafana", "audiopipe.json")
    try:
        with open(path) as handle:
            dashboard = json.load(handle)
        ops.check("dashboard is valid JSON", True)
    except ValueError as failure:
        ops.check("dashboard is valid JSON", False, failure)
        ops.finish()
    panels = dashboard.get("panels", [])
    ops.check("dashboard has panels", len(panels) >= 8, len(panels))
    ops.check("panel ids are unique",
              len({p.get("id") for p in panels}) == len(panels))
    queries = []
    for panel in panels:
        targets = panel.get("targets") or []
        expressions = [t.get("expr", "").strip() for t in targets]
        ops.check("panel '%s' has a query" % panel.get("title"),
                  bool(expressions) and all(expressions), targets)
        queries += [(panel.get("title"), e) for e in expressions]
    text = " ".join(e for _, e in queries)
    for needed in ("histogram_quantile", "audiopipe_http_requests_total",
                   "audiopipe_jobs", "audiopipe_worker_jobs_total", "up{"):
        ops.check("dashboard queries use " + needed, needed in text)

    # Scrape the servers after one request, so every family is present.
    exported = set()
    with tempfile.TemporaryDirectory(prefix="ops-dashboard-") as root:
        deployment = ops.Deployment(os.path.join(root, "data"),
                                    arguments.httpd, worker)
        try:
            ops.check("httpd starts", deployment.start_httpd() is not None)
            ops.request(deployment.base + "/healthz")
            status, _, body = ops.request(deployment.base + "/metrics")
            ops.check("httpd /metrics is 200", status == 200, status)
            exported |= exported_names(body.decode())
            if worker:
                _, port = deployment.start_worker()
                status, _, body = ops.request(
                    "http://127.0.0.1:%d/metrics" % port)
                ops.check("worker /metrics is 200", status == 200, status)
                exported |= exported_names(body.decode())
        finally:
            deployment.stop_all()
    if not worker:
        print("note: audiopipe-worker is not built in this tree, so its "
              "names cannot be confirmed and count as missing")

    for title, expression in queries:
        for name in sorted(metric_names(expression)):
            ops.check("dashboard '%s' metric %s is exported" % (title, name),
                      name in exported or name in GENERATED, expression)

    # The alert rules name the same metrics.
    with open(os.path.join(arguments.deploy, "prometheus",
                           "alerts.yml")) as handle:
        rules = handle.read()
    recorded = set(re.findall(r"^\s*- record:\s*(\S+)", rules, re.M))
    expressions = re.findall(r"expr:\s*>-\n((?:\s{10,}.*\n)+)|expr:\s*(.+)",
                             rules)
    alert_names = set()
    for folded, single in expressions:
        alert_names |= metric_names(folded or single)
    ops.check("alert rules name metrics", len(alert_names) > 5, alert_names)
    for name in sorted(alert_names):
        allowed = (name in exported or name in GENERATED or
                   name in recorded or name.startswith("node_"))
        ops.check("alert metric %s is exported" % name, allowed)
    ops.finish()


if __name__ == "__main__":
    main()
