#!/usr/bin/env python3
"""docs/operations.md against the code: the settings table between the
"BEGIN audiopipe config --markdown" and "END" markers must equal the
output of `audiopipe config --markdown` (generated from the library's
key table), and every alert of deploy/prometheus/alerts.yml must have a
runbook section.

Usage: test_operations_doc.py --cli PATH --doc docs/operations.md
                              --rules deploy/prometheus/alerts.yml
"""

import argparse
import difflib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ops_common as ops  # noqa: E402

BEGIN = "<!-- BEGIN audiopipe config --markdown -->"
END = "<!-- END audiopipe config --markdown -->"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cli", required=True)
    parser.add_argument("--doc", required=True)
    parser.add_argument("--rules", required=True)
    arguments = parser.parse_args()

    generated = subprocess.run([arguments.cli, "config", "--markdown"],
                               capture_output=True, text=True)
    ops.check("audiopipe config --markdown exits 0",
              generated.returncode == 0, generated.stderr)
    with open(arguments.doc) as handle:
        document = handle.read()
    ops.check("document has the table markers",
              BEGIN in document and END in document)
    table = document.split(BEGIN, 1)[-1].split(END, 1)[0].strip("\n")
    expected = generated.stdout.strip("\n")
    difference = "\n".join(difflib.unified_diff(
        expected.splitlines(), table.splitlines(), "audiopipe config",
        "docs/operations.md", lineterm=""))
    ops.check("settings table matches audiopipe config --markdown "
              "(regenerate it with that command)", table == expected,
              difference)
    rows = [l for l in expected.splitlines() if l.startswith("| `AUDIOPIPE_")]
    ops.check("table lists every key", len(rows) > 30, len(rows))

    with open(arguments.rules) as handle:
        alerts = re.findall(r"^\s*- alert:\s*(\S+)", handle.read(), re.M)
    ops.check("alert rules found", len(alerts) >= 8, alerts)
    headings = set(re.findall(r"^### (\S+)\s*$", document, re.M))
    for alert in alerts:
        ops.check("runbook for " + alert, alert in headings)
    ops.finish()


if __name__ == "__main__":
    main()
