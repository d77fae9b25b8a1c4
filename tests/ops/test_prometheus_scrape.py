#!/usr/bin/env python3
"""Real Prometheus scraping audiopipe-httpd and audiopipe-worker on
loopback every second; checks through Prometheus's HTTP API that both
targets are up and that series of each server exist, and that the alert
rules load.

Usage: test_prometheus_scrape.py --httpd PATH [--worker PATH]
                                 --rules deploy/prometheus/alerts.yml
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ops_common as ops  # noqa: E402


def query(base, expression):
    url = base + "/api/v1/query?" + urllib.parse.urlencode(
        {"query": expression})
    status, _, body = ops.request(url, timeout=5)
    if status != 200:
        return []
    return json.loads(body)["data"]["result"]


def targets(base):
    status, _, body = ops.request(base + "/api/v1/targets", timeout=5)
    if status != 200:
        return []
    return json.loads(body)["data"]["activeTargets"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--worker")
    parser.add_argument("--rules", required=True)
    arguments = parser.parse_args()

    prometheus = ops.find_tool("prometheus")
    if not prometheus:
        ops.skip("prometheus is not installed (Debian package prometheus)")
    worker = arguments.worker if arguments.worker and os.access(
        arguments.worker, os.X_OK) else None
    if not worker:
        print("note: audiopipe-worker is not built in this tree, so only "
              "the httpd target is scraped")

    with tempfile.TemporaryDirectory(prefix="ops-scrape-") as root:
        deployment = ops.Deployment(os.path.join(root, "data"),
                                    arguments.httpd, worker)
        server = None
        prometheus_process = None
        try:
            server = deployment.start_httpd()
            ops.check("httpd starts", server is not None)
            worker_port = None
            if worker:
                _, worker_port = deployment.start_worker()
                ops.check("worker starts", worker_port is not None)

            port = ops.free_port()
            config = os.path.join(root, "prometheus.yml")
            scrape = [("audiopipe-httpd", deployment.port)]
            if worker_port:
                scrape.append(("audiopipe-worker", worker_port))
            with open(config, "w") as handle:
                handle.write("global:\n  scrape_interval: 1s\n"
                             "  evaluation_interval: 1s\n"
                             "rule_files:\n  - %s\n"
                             "scrape_configs:\n" % arguments.rules)
                for job, target_port in scrape:
                    handle.write("  - job_name: %s\n    static_configs:\n"
                                 "      - targets: ['127.0.0.1:%d']\n"
                                 % (job, target_port))
            log = open(os.path.join(root, "prometheus.log"), "wb")
            prometheus_process = subprocess.Popen(
                [prometheus, "--config.file=" + config,
                 "--storage.tsdb.path=" + os.path.join(root, "tsdb"),
                 "--web.listen-address=127.0.0.1:%d" % port],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
            base = "http://127.0.0.1:%d" % port
            ops.check("prometheus becomes ready",
                      ops.wait_for_status(base + "/-/ready", 200, 30,
                                          prometheus_process))

            # Traffic so the request counters have series.
            for _ in range(5):
                ops.request(deployment.base + "/healthz")
                ops.request(deployment.base + "/v1/assets", headers=ops.auth())

            wanted = [job for job, _ in scrape]
            deadline = time.time() + 30
            healthy = {}
            while time.time() < deadline:
                healthy = {t["labels"]["job"]: t["health"]
                           for t in targets(base)}
                if all(healthy.get(job) == "up" for job in wanted):
                    break
                time.sleep(0.5)
            for job in wanted:
                ops.check("target %s is up" % job, healthy.get(job) == "up",
                          healthy)

            expected = [
                'up{job="audiopipe-httpd"} == 1',
                'audiopipe_http_requests_total{route="/healthz",status="200"}',
                'audiopipe_http_request_duration_seconds_bucket',
                'audiopipe_jobs{state="queued"}',
            ]
            if worker_port:
                expected += ['up{job="audiopipe-worker"} == 1',
                             'audiopipe_worker_threads',
                             'audiopipe_worker_queue_depth']
            deadline = time.time() + 15
            results = {}
            while time.time() < deadline:
                results = {e: query(base, e) for e in expected}
                if all(results.values()):
                    break
                time.sleep(0.5)
            for expression in expected:
                ops.check("series exist: " + expression,
                          bool(results.get(expression)), results)

            status, _, body = ops.request(base + "/api/v1/rules", timeout=5)
            groups = json.loads(body)["data"]["groups"] if status == 200 \
                else []
            names = {r.get("name") for g in groups for r in g["rules"]}
            ops.check("alert rules are loaded",
                      "AudiopipeWorkerDown" in names, names)
        finally:
            ops.check("prometheus stops by PID",
                      ops.stop_process(prometheus_process) is not None)
            statuses = deployment.stop_all()
            ops.check("servers exit 0 on SIGTERM",
                      all(s == 0 for s in statuses), statuses)
    ops.finish()


if __name__ == "__main__":
    main()
