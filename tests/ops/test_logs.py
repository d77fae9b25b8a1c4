#!/usr/bin/env python3
"""Log hygiene over a full flow: create an upload, PUT it, complete it,
follow its job (processed by audiopipe-worker when it is built), plus a
wrong key and a tampered signature. Every line that httpd and worker
write must be one JSON object that starts with the stable keys ts, level
and event; the API key, the signing secret, the URL signatures and the
filename must appear in no line.

Usage: test_logs.py --httpd PATH [--worker PATH] --cases DIR
"""

import argparse
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ops_common as ops  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--worker")
    parser.add_argument("--cases", required=True)
    arguments = parser.parse_args()
    worker = arguments.worker if arguments.worker and os.access(
        arguments.worker, os.X_OK) else None

    with tempfile.TemporaryDirectory(prefix="ops-logs-") as root:
        deployment = ops.Deployment(os.path.join(root, "data"),
                                    arguments.httpd, worker)
        signatures = []
        try:
            ops.check("httpd starts", deployment.start_httpd() is not None)
            if worker:
                ops.check("worker starts",
                          deployment.start_worker()[0] is not None)
            else:
                print("note: audiopipe-worker is not built in this tree, so "
                      "only httpd logs are checked")
            ticket, asset = ops.upload_file(
                deployment.base, os.path.join(arguments.cases, "case-03.mp3"))
            if ticket:
                signatures += re.findall(r"X-Ap-Signature=([0-9a-fA-F]+)",
                                         ticket["url"])
                ops.check("ticket URL carries a signature", bool(signatures),
                          ticket["url"])
            if asset and worker:
                job = ops.wait_for_job(deployment.base, asset["job_id"])
                ops.check("job succeeds", job.get("state") == "succeeded",
                          job)
            elif asset:
                ops.request(deployment.base + "/v1/jobs/" + asset["job_id"],
                            headers=ops.auth())

            # Failures log too, and must not echo what they reject.
            wrong = ops.request(deployment.base + "/v1/assets",
                                headers={"Authorization": "Bearer " +
                                         ops.API_KEY + "-wrong"})
            ops.check("wrong key is 401", wrong[0] == 401, wrong[0])
            if ticket and signatures:
                tampered = ticket["url"].replace(signatures[0],
                                                 "0" * len(signatures[0]))
                status, _, _ = ops.request(tampered, "PUT",
                                           dict(ticket["headers"]), b"x")
                ops.check("tampered signature is rejected", status in
                          (400, 401, 403), status)
        finally:
            statuses = deployment.stop_all()
            ops.check("servers exit 0 on SIGTERM",
                      all(s == 0 for s in statuses), statuses)

        for name, path in sorted(deployment.logs.items()):
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
            lines = [l for l in text.splitlines() if l.strip()]
            ops.check("%s wrote log lines" % name, len(lines) > 1, len(lines))
            not_json = []
            unstable = []
            for line in lines:
                try:
                    document = json.loads(line)
                except ValueError:
                    not_json.append(line)
                    continue
                if not isinstance(document, dict) or \
                        list(document)[:3] != ["ts", "level", "event"]:
                    unstable.append(line)
                    continue
                if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                                    str(document["ts"])) or \
                        document["level"] not in ("debug", "info", "warn",
                                                  "error") or \
                        not re.fullmatch(r"[a-z][a-z0-9_]*",
                                         str(document["event"])):
                    unstable.append(line)
            ops.check("%s: every line is one JSON object" % name,
                      not not_json, not_json[:3])
            ops.check("%s: every line starts with ts, level, event" % name,
                      not unstable, unstable[:3])
            ops.check("%s: no API key" % name, ops.API_KEY not in text)
            ops.check("%s: no signing secret" % name, ops.SECRET not in text)
            ops.check("%s: no signature" % name,
                      signatures and not any(s in text for s in signatures))
            ops.check("%s: no filename" % name, ops.FILENAME not in text)
            ops.check("%s: no filename stem" % name,
                      ops.FILENAME.split(".")[0] not in text)
    ops.finish()


if __name__ == "__main__":
    main()
