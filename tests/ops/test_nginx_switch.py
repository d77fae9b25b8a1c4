#!/usr/bin/env python3
"""deploy/nginx/audiopipe.conf on a real nginx with TLS, and a blue/green
switch with deploy/switch-colour.sh under load: no request may fail
(non-2xx or connection error), the old colour drains and exits 0, and a
server-sent event stream through nginx receives its events unbuffered.

nginx runs with its own prefix, configuration, PID file and temporary
paths in the test directory, on loopback ports, with a certificate made
here by openssl. The load is a bounded loop of requests from four
threads, each on a new connection.

Usage: test_nginx_switch.py --httpd PATH [--worker PATH] --deploy DIR
                            --cases DIR
"""

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ops_common as ops  # noqa: E402

LOAD_SECONDS = 8
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Makes the httpd processes the switch script detaches with setsid
    children of this test once the script exits, so the test can read
    their exit status with waitpid."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def write_config(prefix, deploy, tls_port, http_port, upstream_port):
    """Writes nginx.conf around deploy/nginx/audiopipe.conf with the
    production paths and ports replaced by the test's."""
    with open(os.path.join(deploy, "nginx", "audiopipe.conf")) as handle:
        site = handle.read()
    replacements = [
        ("/etc/nginx/audiopipe-upstream.conf",
         os.path.join(prefix, "upstream.conf")),
        ("/etc/ssl/certs/audiopipe.pem", os.path.join(prefix, "cert.pem")),
        ("/etc/ssl/private/audiopipe.key", os.path.join(prefix, "key.pem")),
        ("listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % tls_port),
        ("listen 80;", "listen 127.0.0.1:%d;" % http_port),
    ]
    for old, new in replacements:
        ops.check("nginx config contains " + old, old in site)
        site = site.replace(old, new)
    with open(os.path.join(prefix, "audiopipe.conf"), "w") as handle:
        handle.write(site)
    with open(os.path.join(deploy, "nginx", "audiopipe-upstream.conf")) as f:
        upstream = f.read().replace("127.0.0.1:8081",
                                    "127.0.0.1:%d" % upstream_port)
    with open(os.path.join(prefix, "upstream.conf"), "w") as handle:
        handle.write(upstream)
    main = """daemon off;
worker_processes 2;
pid %(p)s/nginx.pid;
error_log %(p)s/error.log warn;
events { worker_connections 1024; }
http {
  access_log %(p)s/access.log;
  client_body_temp_path %(p)s/client_body;
  proxy_temp_path %(p)s/proxy;
  fastcgi_temp_path %(p)s/fastcgi;
  uwsgi_temp_path %(p)s/uwsgi;
  scgi_temp_path %(p)s/scgi;
  include %(p)s/audiopipe.conf;
}
""" % {"p": prefix}
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as handle:
        handle.write(main)
    return path


def run_load(base, stop, results):
    """Sends GET /v1/assets and /healthz until `stop` is set; appends each
    status (0 for a connection error) to `results`."""
    while not stop.is_set():
        for path, headers in (("/v1/assets?limit=5", ops.auth()),
                              ("/healthz", {})):
            status, _, _ = ops.request(base + path,
                                       headers=dict(headers,
                                                    Connection="close"),
                                       timeout=10)
            results.append((path, status))


def read_pid(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--worker")
    parser.add_argument("--deploy", required=True)
    parser.add_argument("--cases", required=True)
    arguments = parser.parse_args()
    nginx = ops.find_tool("nginx")
    if not nginx:
        ops.skip("nginx is not installed (Debian package nginx)")
    if not ops.find_tool("openssl"):
        ops.skip("openssl is not installed (Debian package openssl)")
    if not become_subreaper():
        ops.skip("prctl(PR_SET_CHILD_SUBREAPER) failed, so the old colour's "
                 "exit status cannot be read")
    worker = arguments.worker if arguments.worker and os.access(
        arguments.worker, os.X_OK) else None

    with tempfile.TemporaryDirectory(prefix="ops-nginx-") as root:
        prefix = os.path.join(root, "nginx")
        os.makedirs(prefix)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-keyout", os.path.join(prefix, "key.pem"),
                        "-out", os.path.join(prefix, "cert.pem")],
                       check=True, capture_output=True)
        tls_port = ops.free_port()
        http_port = ops.free_port()
        ports = {"blue": ops.free_port(), "green": ops.free_port()}
        base = "https://127.0.0.1:%d" % tls_port
        deployment = ops.Deployment(os.path.join(root, "data"),
                                    arguments.httpd, worker, {
                                        "AUDIOPIPE_PUBLIC_BASE_URL": base,
                                        "AUDIOPIPE_HTTP_DRAIN_GRACE": "1s",
                                        "AUDIOPIPE_HTTP_SSE_HEARTBEAT": "1s",
                                        "AUDIOPIPE_HTTP_CORS_ORIGINS":
                                            "https://app.example.com",
                                        # The load loop outruns the per-key
                                        # limit on an idle machine, and a
                                        # 429 is not a switch failure.
                                        "AUDIOPIPE_HTTP_RATE_LIMIT": "0",
                                    })
        config = write_config(prefix, arguments.deploy, tls_port, http_port,
                              ports["blue"])
        state = os.path.join(root, "state")
        switch_env = dict(deployment.env)
        switch_env.update({
            "AUDIOPIPE_HTTPD": arguments.httpd,
            "AUDIOPIPE_ENV_FILE": os.path.join(root, "no-env-file"),
            "BLUE_PORT": str(ports["blue"]),
            "GREEN_PORT": str(ports["green"]),
            "UPSTREAM_FILE": os.path.join(prefix, "upstream.conf"),
            "NGINX_BINARY": nginx,
            "NGINX_OPTIONS": "-p %s -c %s" % (prefix, config),
            "STATE_DIR": state,
        })
        script = os.path.join(arguments.deploy, "switch-colour.sh")

        def switch(colour):
            return subprocess.run([script, colour], env=switch_env,
                                  capture_output=True, text=True,
                                  timeout=120)

        proxy = None
        stream = None
        colour_pids = []
        try:
            test_run = subprocess.run([nginx, "-p", prefix, "-c", config,
                                       "-t"], capture_output=True, text=True)
            ops.check("nginx -t accepts the configuration",
                      test_run.returncode == 0, test_run.stderr)
            proxy = subprocess.Popen([nginx, "-p", prefix, "-c", config],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            first = switch("blue")
            ops.check("switch to blue exits 0", first.returncode == 0,
                      first.stderr)
            blue_pid = read_pid(os.path.join(state, "blue.pid"))
            colour_pids.append(blue_pid)

            # Blue is this test's child now: reap it as soon as it exits,
            # so the switch script's kill -0 sees it gone.
            blue_exit = []

            def reap_blue():
                try:
                    _, wait_status = os.waitpid(blue_pid, 0)
                    blue_exit.append(os.waitstatus_to_exitcode(wait_status))
                except ChildProcessError:
                    blue_exit.append("not a child")

            reaper = threading.Thread(target=reap_blue, daemon=True)
            reaper.start()
            ops.check("https through nginx reaches blue",
                      ops.wait_for_status(base + "/healthz", 200, 10))
            redirect = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 "http://127.0.0.1:%d/healthz" % http_port],
                capture_output=True, text=True).stdout
            ops.check("plain http redirects to https", redirect == "301",
                      redirect)
            hidden = ops.request(base + "/metrics")
            ops.check("/metrics is not served through nginx",
                      hidden[0] == 404, hidden[0])

            # CORS headers pass through from the httpd untouched.
            status, headers, _ = ops.request(
                base + "/v1/uploads", "OPTIONS",
                {"Origin": "https://app.example.com",
                 "Access-Control-Request-Method": "POST"})
            lowered = {k.lower(): v for k, v in headers.items()}
            ops.check("CORS preflight through nginx is answered by httpd",
                      status in (200, 204) and
                      "access-control-allow-methods" in lowered,
                      (status, headers))

            # Load across the switch.
            stop = threading.Event()
            results = []
            threads = [threading.Thread(target=run_load,
                                        args=(base, stop, results))
                       for _ in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(2)
            second = switch("green")
            time.sleep(max(0, LOAD_SECONDS - 2))
            stop.set()
            for thread in threads:
                thread.join()
            ops.check("switch to green exits 0", second.returncode == 0,
                      second.stderr)
            print("     switch log:\n" + second.stderr.rstrip())
            colour_pids.append(read_pid(os.path.join(state, "green.pid")))
            failed = [r for r in results if not 200 <= r[1] < 300]
            print("     %d requests through nginx across the switch, %d "
                  "failed" % (len(results), len(failed)))
            ops.check("requests ran during the switch", len(results) > 50,
                      len(results))
            ops.check("no request failed across the switch", not failed,
                      failed[:10])
            reaper.join(timeout=30)
            ops.check("blue drained and exited 0", blue_exit == [0],
                      blue_exit)
            blue_log = open(os.path.join(state, "blue.log")).read()
            ops.check("blue logged the drain", "drain_started" in blue_log,
                      blue_log[-500:])
            ops.check("nginx sends requests to green",
                      open(os.path.join(prefix, "upstream.conf")).read()
                      .count("127.0.0.1:%d" % ports["green"]) == 1)

            # A server-sent event stream through nginx.
            if worker:
                ops.check("worker starts",
                          deployment.start_worker()[0] is not None)
            ticket, asset = ops.upload_file(
                base, os.path.join(arguments.cases, "case-03.mp3"))
            if asset:
                stream = subprocess.Popen(
                    ["curl", "-s", "-N", "-k", "--max-time", "20", "-H",
                     "Authorization: Bearer " + ops.API_KEY,
                     base + "/v1/jobs/%s/events" % asset["job_id"]],
                    stdout=subprocess.PIPE, text=True)
                lines = []
                deadline = time.time() + 20
                wanted = "event: end" if worker else ": heartbeat"
                # With a worker the stream ends after its end event; without
                # one it stays open, so stop at the first heartbeat.
                for line in stream.stdout:
                    lines.append(line.rstrip("\n"))
                    if (not worker and lines[-1].startswith(wanted)) or \
                            time.time() > deadline:
                        break
                text = "\n".join(lines)
                ops.check("event stream through nginx has a data event",
                          any(l.startswith("data:") for l in lines), text)
                ops.check("event stream through nginx reaches " + wanted,
                          any(l.startswith(wanted) for l in lines), text)
                if worker:
                    states = [json.loads(l[5:]).get("state") for l in lines
                              if l.startswith("data:")]
                    ops.check("stream shows the job succeeding",
                              "succeeded" in states, states)
        finally:
            if stream and stream.poll() is None:
                stream.terminate()
                stream.wait()
            for pid in colour_pids[1:]:
                if pid:
                    try:
                        os.kill(pid, 15)
                        os.waitpid(pid, 0)
                    except (ProcessLookupError, ChildProcessError):
                        pass
            deployment.stop_all()
            ops.check("nginx stops by PID",
                      ops.stop_process(proxy, 20) is not None)
    ops.finish()


if __name__ == "__main__":
    main()
