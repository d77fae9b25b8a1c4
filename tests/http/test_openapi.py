#!/usr/bin/env python3
"""Checks docs/openapi.yaml against a running audiopipe-httpd.

Usage: test_openapi.py --httpd PATH --spec docs/openapi.yaml
                       --routes servers/httpd/router.c

Every route of the server's route table must be in the spec, and every
path and method of the spec must reach a route (no 405, no "no route"
404). The status of each call must be one the spec documents for that
operation. Needs PyYAML (Debian python3-yaml).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_http  # noqa: E402  (shares the server and curl helpers)

DUMMY_ID = "0" * 26


def server_routes(router_source):
    """Reads (method, template) pairs from the route table in router.c."""
    with open(router_source) as handle:
        text = handle.read()
    return set(re.findall(r'\{HTTPD_ROUTE_\w+,\s*"(\w+)",\s*"([^"]+)"', text))


def fill_path(template):
    return (template.replace("{id}", DUMMY_ID)
            .replace("{name}", "mp3_128k")
            .replace("{key}", "uploads/none/" + DUMMY_ID))


def call(server, method, template):
    """Makes a plausible request for one operation of the spec."""
    url = server.url(fill_path(template))
    headers = test_http.auth(test_http.ALICE_KEY)
    data = None
    if method == "OPTIONS":
        headers = {"Origin": test_http.ORIGIN,
                   "Access-Control-Request-Method": "POST"}
    elif template == "/v1/uploads":
        data = json.dumps({"filename": "a.wav", "size_bytes": 10,
                           "content_type": "audio/wav"})
    elif template == "/v1/objects/{key}":
        url += "?X-Ap-Expires=1&X-Ap-Signature=" + "0" * 64
        if method == "PUT":
            data = "0123456789"
    return test_http.curl(url, method, headers, data=data, timeout=5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--routes", required=True)
    arguments = parser.parse_args()
    check = test_http.check

    with open(arguments.spec) as handle:
        spec = yaml.safe_load(handle)
    check("spec is OpenAPI 3.0", str(spec.get("openapi", "")).startswith("3.0"))
    operations = {}
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "options"):
                operations[(method.upper(), path)] = operation

    routes = server_routes(arguments.routes)
    check("route table was read", len(routes) >= 14, routes)
    for method, template in sorted(routes):
        check("spec documents %s %s" % (method, template),
              (method, template) in operations)
    for method, path in sorted(operations):
        if method != "OPTIONS":
            check("server routes %s %s" % (method, path),
                  (method, path) in routes)

    root = tempfile.mkdtemp(prefix="audiopipe-openapi-")
    server = test_http.Server(arguments.httpd, root, "spec", {
        "AUDIOPIPE_HTTP_RATE_LIMIT": "10000",
        "AUDIOPIPE_HTTP_RATE_LIMIT_BURST": "10000"})
    try:
        if check("server starts", server.start(), server.log_path):
            for (method, path), operation in sorted(operations.items()):
                response = call(server, method, path)
                routed = response.status != 405 and not (
                    response.status == 404 and
                    test_http.error_message(response).startswith(
                        "no route matches"))
                check("%s %s reaches a route" % (method, path), routed,
                      response.status)
                documented = [str(code) for code in
                              operation.get("responses", {})]
                check("%s %s answers a documented status (%d)" %
                      (method, path, response.status),
                      str(response.status) in documented, documented)
            anonymous = test_http.curl(server.url("/v1/assets"))
            check("unauthenticated list answers a documented 401",
                  anonymous.status == 401 and "401" in
                  operations[("GET", "/v1/assets")]["responses"])
    finally:
        server.stop()
        if not test_http.failures:
            shutil.rmtree(root, ignore_errors=True)
    failed = test_http.failures
    print("%d check(s) failed" % len(failed) if failed else
          "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
