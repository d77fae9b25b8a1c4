#!/usr/bin/env python3
"""A whole deployment on loopback with faults injected: a MongoDB-wire
server, a Ceph RADOS Gateway, Redis, nginx in front of two audiopipe-httpd,
and two audiopipe-worker processes, all sharing one metadata store, one S3
bucket and one Redis.

Phases, each on the same processes:
  flow    uploads of real case files through nginx. The client follows each
          job's server-sent events to the end event, then reads the asset
          and fetches every rendition through its presigned GET URL.
  drain   uploads and event streams run while one httpd gets SIGTERM (it
          drains) and is started again. The drain contract allows one
          client-visible effect, event streams that end early and resume
          with Last-Event-ID, so every failed request fails the test.
  kill    one worker gets SIGKILL in the middle of a long job and a
          replacement starts; the lease expires and the job is retried.
  redis   Redis is stopped during uploads, started again and flushed; jobs
          keep completing because clients and servers fall back to polling.
  verify  every job succeeded once, with the expected attempts, every asset
          has exactly the profile's renditions and waveforms (in its record
          and in the bucket), the asset list paged through both httpd shows
          each asset once, every server exits 0 on SIGTERM, and the
          workers' logs show one completion per job.

Backends that this build does not support are replaced (MongoDB by a shared
SQLite file) or their phase is skipped (Redis), with a line starting with
"SKIP" that names the reason. Every server is started on 127.0.0.1 on a
free port and stopped by its PID at the end, whatever happened.

Usage: test_deployment.py --httpd PATH --worker PATH --cli PATH
                          --cases DIR --scripts DIR
                          [--metadata auto|mongo|sqlite] [--keep-logs]

Exits 0 when every check passed, 1 when one failed, and 77 (ctest's
SKIP_RETURN_CODE) when a tool the deployment needs is missing.
"""

import argparse
import collections
import http.client
import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import wave

API_KEY = "ak-deploy-test-3c61f0a9e2b4"
OWNER = "deploy"
SECRET = "deploy-test-signing-secret-9a7c5e3b1d2f4a6c8e0b"
BUCKET = "audiopipe-test"
SKIP = 77


def is_ogg(data):
    return data.startswith(b"OggS")


def is_mp3(data):
    """An ID3v2 tag or an MPEG audio frame sync (11 set bits)."""
    return data.startswith(b"ID3") or \
        (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


# Every job gets these outputs; the verify phase checks each asset has
# exactly these names. Each rendition maps to a check of its first bytes.
PROFILE = "waveform=dat:16:256,rendition=opus:64k,rendition=mp3:128k"
RENDITIONS = {"opus_64k": is_ogg, "mp3_128k": is_mp3}
WAVEFORMS = {"dat_16bit_256spp"}

# Case files that process successfully, with the content type they are
# uploaded as. The others are rejected on purpose (empty, 65 535
# channels, a multipart body, AAC named .mp3).
CASES = [("case-01.webm", "audio/webm"), ("case-03.mp3", "audio/mpeg"),
         ("case-04.m4a", "audio/mp4"), ("case-05.mp3", "audio/mpeg"),
         ("case-08.wav", "audio/wav"), ("case-09.wav", "audio/wav"),
         ("case-10.wav", "audio/wav"), ("case-11.wav", "audio/wav"),
         ("case-13.wav", "audio/wav"), ("case-18.wav", "audio/wav"),
         ("case-19.wav", "audio/wav"), ("case-21.wav", "audio/wav")]

FLOW_UPLOADS = 16
DRAIN_CLIENTS = 3
DRAIN_WATCHERS = 4
REDIS_UPLOADS_PER_STEP = 3
LONG_INPUT_SECONDS = 60
WORKER_LEASE = "3s"

failures = []


def check(name, condition, detail=""):
    """Records and prints one named check."""
    print(("ok   " if condition else "FAIL ") + name +
          ("" if condition else "  (" + str(detail)[:600] + ")"))
    sys.stdout.flush()
    if not condition:
        failures.append(name)
    return condition


def note(text):
    print("     " + text)
    sys.stdout.flush()


def free_port(also_next=False):
    """Returns a loopback port nothing listens on; with `also_next`, one
    whose successor is free too (the Ceph monitor takes PORT+1)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not also_next:
            return port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


def port_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def find_tool(name):
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin"):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


# ---------------------------------------------------------------- HTTP


class Reply:
    def __init__(self, status, headers, body, error=""):
        self.status = status
        self.headers = headers
        self.body = body
        self.error = error

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def describe(self):
        if self.status == 0:
            return "connection failed: " + self.error
        return "%d %s" % (self.status, self.body[:200])


def send(url, method="GET", headers=None, body=None, timeout=30):
    """Sends one request on a new connection, follows no redirect, and
    returns a Reply; status 0 means the connection or the transfer
    failed."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                            timeout=timeout)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return Reply(response.status,
                     {k.lower(): v for k, v in response.getheaders()}, data)
    except (OSError, http.client.HTTPException) as failed:
        return Reply(0, {}, b"", repr(failed))
    finally:
        connection.close()


def auth(extra=None):
    headers = {"Authorization": "Bearer " + API_KEY}
    headers.update(extra or {})
    return headers


class Ledger:
    """Every client request of a phase with its outcome, shared by the
    load threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = []

    def add(self, phase, step, reply, expected):
        with self.lock:
            self.entries.append((phase, step, reply.status,
                                 reply.status in expected,
                                 reply.describe()))
        return reply.status in expected

    def failed(self, phase):
        return [e for e in self.entries if e[0] == phase and not e[3]]

    def count(self, phase):
        return sum(1 for e in self.entries if e[0] == phase)


def follow_events(base, job_id, timeout, opened=None):
    """Reads the job's event stream until its end event, reconnecting with
    Last-Event-ID when the server closes the stream first (the drain
    contract ends open streams). Returns (end state or None, number of
    reconnects, data events)."""
    deadline = time.time() + timeout
    last_id = None
    reconnects = 0
    events = []
    parts = urllib.parse.urlsplit(base)
    while time.time() < deadline:
        connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                                timeout=10)
        headers = auth({"Accept": "text/event-stream"})
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            connection.request("GET", "/v1/jobs/%s/events" % job_id,
                               headers=headers)
            response = connection.getresponse()
            if response.status != 200:
                response.read()
                raise OSError("event stream returned %d" % response.status)
            name = None
            while time.time() < deadline:
                line = response.fp.readline()
                if not line:
                    break
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text.startswith("id:"):
                    last_id = text[3:].strip()
                elif text.startswith("event:"):
                    name = text[6:].strip()
                elif text.startswith("data:"):
                    document = json.loads(text[5:])
                    events.append(document)
                    if opened is not None:
                        opened.set()
                    if name == "end":
                        return document.get("state"), reconnects, events
                elif text == "":
                    name = None
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            connection.close()
        reconnects += 1
        time.sleep(0.2)
    return None, reconnects, events


# ------------------------------------------------------------- services


class Services:
    """Every process the test started, stopped by PID in reverse order by
    stop_all, and the script-managed servers (MongoDB-wire, Ceph)."""

    def __init__(self, root):
        self.root = root
        self.processes = []
        self.script_stops = []

    def spawn(self, name, command, env=None):
        log = open(os.path.join(self.root, name + ".log"), "ab")
        process = subprocess.Popen(command, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        log.close()
        self.processes.append((name, process))
        return process

    def stop(self, process, timeout=40):
        """SIGTERM by PID, SIGKILL after `timeout` s; returns the exit
        status."""
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def stop_all(self):
        for _, process in reversed(self.processes):
            self.stop(process, 20)
        self.processes = []
        for command in reversed(self.script_stops):
            subprocess.run(command, capture_output=True, timeout=120)
        self.script_stops = []


def wait_until(predicate, timeout, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def start_ceph(services, scripts):
    """Starts the single-node Ceph cluster in the background; returns the
    script's process and its port. ceph-rgw.sh stops each daemon by PID."""
    port = free_port(also_next=True)
    folder = os.path.join(services.root, "ceph")
    os.makedirs(folder)
    script = os.path.join(scripts, "ceph-rgw.sh")
    services.script_stops.append([script, "stop", folder, str(port)])
    process = services.spawn("ceph-start", [script, "start", folder,
                                            str(port)])
    return process, port, folder


def read_env_file(path):
    values = {}
    with open(path) as handle:
        for line in handle:
            if "=" in line:
                key, value = line.strip().split("=", 1)
                values[key] = value
    return values


def start_mongo(services, scripts):
    """Starts the MongoDB-wire test server; returns (port, "") or (None,
    the script's error output)."""
    # NOTE: the server is a one-member stand-in, so replica-set failover
    # and write concerns are not part of this test.
    port = free_port()
    folder = os.path.join(services.root, "mongo")
    script = os.path.join(scripts, "mongo-test-server.sh")
    services.script_stops.append([script, "stop", folder, str(port)])
    result = subprocess.run([script, "start", folder, str(port)],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        return None, result.stderr[-400:]
    return port, ""


class Redis:
    """One redis-server without persistence on a fixed loopback port, so
    a restart comes back where the servers expect it."""

    def __init__(self, services, binary):
        self.services = services
        self.binary = binary
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = self.services.spawn(
            "redis", [self.binary, "--bind", "127.0.0.1", "--port",
                      str(self.port), "--save", "", "--appendonly", "no",
                      "--dir", self.services.root])
        return wait_until(lambda: self.command("PING") == b"+PONG", 10)

    def stop(self):
        return self.services.stop(self.process)

    def command(self, *words):
        """Sends one command in RESP and returns the first reply line."""
        payload = b"*%d\r\n" % len(words)
        for word in words:
            data = word.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        try:
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=2) as sock:
                sock.sendall(payload)
                return sock.makefile("rb").readline().rstrip(b"\r\n")
        except OSError:
            return None


NGINX_CONFIG = """daemon off;
worker_processes 1;
pid %(prefix)s/nginx.pid;
error_log %(prefix)s/error.log warn;
events { worker_connections 1024; }
http {
  log_format upstreams '$status $request_method $uri '
                       'upstream=$upstream_addr '
                       'upstream_status=$upstream_status';
  access_log %(prefix)s/access.log upstreams;
  client_body_temp_path %(prefix)s/client_body;
  proxy_temp_path %(prefix)s/proxy;
  fastcgi_temp_path %(prefix)s/fastcgi;
  uwsgi_temp_path %(prefix)s/uwsgi;
  scgi_temp_path %(prefix)s/scgi;

  # Two httpd processes. A refused connect, a timeout, a 502 or a 503
  # moves the request to the other, and a server that failed once is
  # left out for fail_timeout.
  upstream audiopipe {
    server 127.0.0.1:%(httpd_a)d max_fails=1 fail_timeout=2s;
    server 127.0.0.1:%(httpd_b)d max_fails=1 fail_timeout=2s;
    keepalive 16;
  }

  upstream rgw {
    server 127.0.0.1:%(rgw)d;
    keepalive 8;
  }

  server {
    listen 127.0.0.1:%(port)d;
    client_max_body_size 200m;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # Presigned URLs are signed for this host and port.
    proxy_set_header Host $http_host;
    proxy_connect_timeout 1s;
    proxy_next_upstream error timeout http_502 http_503;
    proxy_next_upstream_tries 2;

    # The S3 bucket, path-style: the presigned URLs name this server.
    location /%(bucket)s/ {
      proxy_pass http://rgw;
      proxy_request_buffering off;
      proxy_buffering off;
    }

    location ~ ^/v1/jobs/[^/]+/events$ {
      proxy_pass http://audiopipe;
      proxy_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
    }

    location / {
      proxy_pass http://audiopipe;
    }
  }
}
"""


class Deployment:
    """The configuration every audiopipe process shares, and the two
    httpd and the workers."""

    def __init__(self, services, args, env):
        self.services = services
        self.args = args
        self.env = env
        self.httpd_ports = [free_port(), free_port()]
        self.httpd = [None, None]
        self.workers = []  # (name, process, log path, metrics port)

    def start_httpd(self, index):
        env = dict(self.env)
        env.update({"AUDIOPIPE_HTTP_DRAIN_GRACE": "1s",
                    "AUDIOPIPE_HTTP_SSE_HEARTBEAT": "1s",
                    "AUDIOPIPE_JOBS_WATCH_INTERVAL": "100ms"})
        name = "httpd-%s" % "ab"[index]
        port = self.httpd_ports[index]
        process = self.services.spawn(
            name, [self.args.httpd, "--listen", "127.0.0.1:%d" % port,
                   "--threads", "4"], env)
        self.httpd[index] = process
        ready = wait_until(
            lambda: process.poll() is not None or
            send("http://127.0.0.1:%d/readyz" % port, timeout=2).status
            == 200, 30)
        return ready and process.poll() is None

    def start_worker(self):
        name = "worker-%d" % (len(self.workers) + 1)
        env = dict(self.env)
        env.update({"AUDIOPIPE_WORKER_LEASE": WORKER_LEASE,
                    "AUDIOPIPE_JOBS_RETRY_BASE": "100ms",
                    "AUDIOPIPE_WORKER_DRAIN_TIMEOUT": "20s"})
        port = free_port()
        process = self.services.spawn(
            name, [self.args.worker, "--metrics-listen",
                   "127.0.0.1:%d" % port], env)
        self.workers.append((name, process, self.log_path(name), port))
        ready = wait_until(
            lambda: process.poll() is not None or
            send("http://127.0.0.1:%d/metrics" % port, timeout=2).status
            == 200, 30)
        return ready and process.poll() is None

    def log_path(self, name):
        return os.path.join(self.services.root, name + ".log")

    def metrics_urls(self):
        """The /metrics of every running httpd and worker."""
        urls = ["http://127.0.0.1:%d/metrics" % port
                for port, process in zip(self.httpd_ports, self.httpd)
                if process and process.poll() is None]
        urls += ["http://127.0.0.1:%d/metrics" % worker[3]
                 for worker in self.workers if worker[1].poll() is None]
        return urls

    def readiness(self):
        """Returns (status, document) of /readyz for each httpd."""
        replies = [send("http://127.0.0.1:%d/readyz" % port, timeout=5)
                   for port in self.httpd_ports]
        return [(reply.status, reply.json() or {}) for reply in replies]

    def metric_sum(self, name):
        """Sums every series of the metric `name` over the running
        processes."""
        total = 0.0
        for url in self.metrics_urls():
            for line in send(url, timeout=5).body.decode().splitlines():
                if line.startswith(name + " ") or \
                        line.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
        return total


def log_lines(path):
    lines = []
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    pass
    except OSError:
        pass
    return lines


# -------------------------------------------------------------- client


def upload(base, path, content_type, ledger, phase):
    """Runs create, PUT and complete through nginx. Returns the asset, or
    None when a step failed (recorded in `ledger`)."""
    with open(path, "rb") as handle:
        data = handle.read()
    body = json.dumps({"filename": os.path.basename(path),
                       "size_bytes": len(data),
                       "content_type": content_type})
    reply = send(base + "/v1/uploads", "POST",
                 auth({"Content-Type": "application/json"}), body)
    if not ledger.add(phase, "create", reply, (201,)):
        return None
    ticket = reply.json()
    reply = send(ticket["url"], ticket.get("method", "PUT"),
                 dict(ticket["headers"]), data)
    if not ledger.add(phase, "put", reply, (200,)):
        return None
    reply = send(base + "/v1/uploads/%s/complete" % ticket["upload_id"],
                 "POST", auth())
    if not ledger.add(phase, "complete", reply, (200,)):
        return None
    return reply.json()


def poll_job(base, job_id, timeout, ledger=None, phase=None):
    """Polls a job until it is terminal; returns its last document."""
    deadline = time.time() + timeout
    document = {}
    while time.time() < deadline:
        reply = send(base + "/v1/jobs/" + job_id, headers=auth())
        if ledger is not None:
            ledger.add(phase, "job", reply, (200,))
        if reply.status == 200:
            document = reply.json()
            if document.get("state") not in ("queued", "running"):
                return document
        time.sleep(0.2)
    return document


def fetch_renditions(base, asset, ledger, phase):
    """Follows each rendition's 302 to its presigned GET through nginx.
    Returns {name: (status, bytes)}."""
    fetched = {}
    for name in sorted(asset.get("renditions") or {}):
        reply = send(base + "/v1/assets/%s/renditions/%s" % (asset["id"],
                                                              name),
                     headers=auth())
        if not ledger.add(phase, "rendition redirect", reply, (302,)):
            fetched[name] = (reply.status, b"")
            continue
        location = reply.headers.get("location", "")
        target = send(location)
        ledger.add(phase, "rendition get", target, (200,))
        fetched[name] = (target.status, target.body)
    return fetched


class JobBook:
    """Every job the test created: its asset, the phase, and the attempts
    it is expected to end with."""

    def __init__(self):
        self.lock = threading.Lock()
        self.jobs = collections.OrderedDict()

    def add(self, asset, phase, attempts=1):
        with self.lock:
            self.jobs[asset["job_id"]] = {"asset": asset, "phase": phase,
                                          "attempts": attempts}


def write_long_wav(path, seconds):
    """A 441 Hz stereo sine at 44.1 kHz, 16 bits: one period is exactly
    100 frames, so the file is that period repeated."""
    period = b"".join(
        struct.pack("<hh", int(12000 * math.sin(2 * math.pi * i / 100)),
                    int(9000 * math.sin(2 * math.pi * i / 100)))
        for i in range(100))
    with wave.open(path, "wb") as output:
        output.setnchannels(2)
        output.setsampwidth(2)
        output.setframerate(44100)
        output.writeframes(period * (441 * seconds))


# -------------------------------------------------------------- phases


def phase_flow(base, args, book, ledger):
    """Uploads FLOW_UPLOADS case files from four client threads, each
    following its job's events to the end and fetching the renditions."""
    results = []
    lock = threading.Lock()
    work = list(range(FLOW_UPLOADS))

    def client():
        while True:
            with lock:
                if not work:
                    return
                index = work.pop()
            filename, content_type = CASES[index % len(CASES)]
            asset = upload(base, os.path.join(args.cases, filename),
                           content_type, ledger, "flow")
            if asset is None:
                continue
            book.add(asset, "flow")
            opened_ms = time.time() * 1000
            state, reconnects, events = follow_events(base, asset["job_id"],
                                                      90)
            # A job that ended before its stream opened has only the end
            # event to send. The job's last update time shows whether it
            # had.
            reply = send(base + "/v1/jobs/" + asset["job_id"],
                         headers=auth())
            ledger.add("flow", "job", reply, (200,))
            ended_ms = (reply.json() or {}).get("updated_at_ms", 0)
            ended_first = ended_ms <= opened_ms
            reply = send(base + "/v1/assets/" + asset["id"], headers=auth())
            ledger.add("flow", "asset", reply, (200,))
            record = reply.json() or {}
            fetched = fetch_renditions(base, record, ledger, "flow")
            with lock:
                results.append((filename, state, reconnects, events, record,
                                fetched, ended_first))

    threads = [threading.Thread(target=client, daemon=True)
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    check("flow: every upload went through",
          len(results) == FLOW_UPLOADS, ledger.failed("flow")[:5])
    ended = [r for r in results if r[1] == "succeeded"]
    check("flow: every event stream ended with succeeded",
          len(ended) == len(results),
          [(r[0], r[1], r[2]) for r in results if r[1] != "succeeded"])
    check("flow: no event stream needed a reconnect",
          all(r[2] == 0 for r in results), [(r[0], r[2]) for r in results])
    check("flow: streams opened before the job ended carried more than "
          "the end event",
          all(len(r[3]) >= 2 for r in results if not r[6]),
          [(r[0], len(r[3]), r[6]) for r in results])
    note("flow: %d of %d jobs had ended before their stream opened"
         % (sum(1 for r in results if r[6]), len(results)))
    ready = [r for r in results if r[4].get("status") == "ready"]
    check("flow: every asset is ready", len(ready) == len(results),
          [(r[0], r[4].get("status")) for r in results])
    bad = []
    for filename, _, _, _, record, fetched, _ in results:
        renditions = record.get("renditions") or {}
        for name, has_format in RENDITIONS.items():
            status, data = fetched.get(name, (0, b""))
            size = (renditions.get(name) or {}).get("size_bytes")
            if status != 200 or len(data) != size or not has_format(data):
                bad.append((filename, name, status, len(data), size,
                            data[:4]))
    check("flow: every rendition downloads through its presigned URL",
          not bad, bad)
    check("flow: no client request failed", not ledger.failed("flow"),
          ledger.failed("flow")[:5])


class Watcher(threading.Thread):
    """Follows one job's events in the background; `opened` is set at the
    first event."""

    def __init__(self, base, job_id):
        super().__init__(daemon=True)
        self.base = base
        self.job_id = job_id
        self.opened = threading.Event()
        self.outcome = (None, 0, [])

    def run(self):
        self.outcome = follow_events(self.base, self.job_id, 120,
                                     self.opened)


def phase_drain(base, args, deployment, book, ledger, root):
    """Sends SIGTERM to httpd A, while DRAIN_WATCHERS event streams of a
    long job and DRAIN_CLIENTS upload loops run through nginx, and starts
    it again once it exited."""
    long_input = os.path.join(root, "drain-long.wav")
    write_long_wav(long_input, LONG_INPUT_SECONDS)
    long_asset = upload(base, long_input, "audio/wav", ledger, "drain")
    if not check("drain: long upload accepted", long_asset is not None,
                 ledger.failed("drain")):
        return 0
    book.add(long_asset, "drain")

    # nginx's round robin alternates between the two httpd, so streams
    # opened one after another with no other traffic land on both.
    watchers = []
    for _ in range(DRAIN_WATCHERS):
        watcher = Watcher(base, long_asset["job_id"])
        watcher.start()
        watcher.opened.wait(30)
        watchers.append(watcher)
    job = send(base + "/v1/jobs/" + long_asset["job_id"],
               headers=auth()).json() or {}
    streams_open = sum(1 for w in watchers if w.is_alive())
    note("drain: %d event streams open on a job in state %s at SIGTERM"
         % (streams_open, job.get("state")))

    stop = threading.Event()
    outcomes = []
    lock = threading.Lock()

    def client(number):
        index = number
        while not stop.is_set():
            filename, content_type = CASES[index % len(CASES)]
            index += DRAIN_CLIENTS
            asset = upload(base, os.path.join(args.cases, filename),
                           content_type, ledger, "drain")
            if asset is None:
                continue
            book.add(asset, "drain")
            state, reconnects, _ = follow_events(base, asset["job_id"], 90)
            with lock:
                outcomes.append((asset["job_id"], state, reconnects))

    threads = [threading.Thread(target=client, args=(n,), daemon=True)
               for n in range(DRAIN_CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    started = time.time()
    status = deployment.services.stop(deployment.httpd[0])
    drain_seconds = time.time() - started
    check("drain: httpd A exits 0 after SIGTERM", status == 0, status)
    time.sleep(2)
    check("drain: httpd A starts again", deployment.start_httpd(0))
    time.sleep(3)
    stop.set()
    for thread in threads + watchers:
        thread.join()

    requests = ledger.count("drain")
    failed = ledger.failed("drain")
    note("drain: %d requests through nginx, httpd A drained in %.1f s, "
         "%d failed" % (requests, drain_seconds, len(failed)))
    check("drain: uploads ran during the drain", len(outcomes) >= 3,
          len(outcomes))
    check("drain: no request failed", not failed, failed[:10])
    check("drain: every upload's event stream reached succeeded",
          all(o[1] == "succeeded" for o in outcomes),
          [o for o in outcomes if o[1] != "succeeded"])
    watched = [w.outcome for w in watchers]
    check("drain: every long-job stream reached succeeded",
          all(o[0] == "succeeded" for o in watched),
          [(o[0], o[1]) for o in watched])
    cut = sum(1 for o in watched if o[1] > 0)
    reconnected = cut + sum(1 for o in outcomes if o[2] > 0)
    note("drain: %d of %d long-job streams were ended by the drain and "
         "resumed with Last-Event-ID" % (cut, len(watched)))
    # nginx's round robin does not always split the streams: one CI run
    # put all four on httpd B (the cause was not found), leaving the drain
    # no stream to end. Such a run still checks that no request failed and
    # that every stream reached its end; it only cannot show a resume.
    if cut == 0:
        note("drain: no long-job stream was on httpd A, so none was resumed")
    check("drain: every stream the drain ended was resumed",
          all(o[0] == "succeeded" for o in watched if o[1] > 0),
          [(o[0], o[1]) for o in watched])
    httpd_a_log = log_lines(deployment.log_path("httpd-a"))
    check("drain: httpd A logged the drain",
          any(line.get("event") == "drain_started" for line in httpd_a_log))
    return reconnected


def phase_kill(base, args, deployment, book, ledger, root):
    """Sends SIGKILL to the worker running a long job, starts a
    replacement, and waits for the job to succeed on its second
    attempt."""
    long_input = os.path.join(root, "long.wav")
    write_long_wav(long_input, LONG_INPUT_SECONDS)
    asset = upload(base, long_input, "audio/wav", ledger, "kill")
    if not check("kill: long upload accepted", asset is not None,
                 ledger.failed("kill")):
        return None
    job_id = asset["job_id"]
    book.add(asset, "kill", attempts=2)

    running = {}

    def is_running():
        reply = send(base + "/v1/jobs/" + job_id, headers=auth())
        document = reply.json() or {}
        running.update(document)
        return document.get("state") == "running" and \
            document.get("progress", 0) >= 0.1

    check("kill: job runs with progress", wait_until(is_running, 60, 0.05),
          running)
    holder = None
    for name, process, path, _ in deployment.workers:
        if process.poll() is None and any(
                line.get("event") == "job_started" and
                line.get("job_id") == job_id for line in log_lines(path)):
            holder = (name, process)
    if not check("kill: the worker running the job is known",
                 holder is not None):
        return job_id
    progress = running.get("progress")
    os.kill(holder[1].pid, signal.SIGKILL)
    holder[1].wait()
    killed_at = time.time()
    note("kill: SIGKILL to %s at progress %.2f" % (holder[0], progress))
    check("kill: the job was mid-way when killed",
          progress is not None and progress < 0.9, progress)
    check("kill: replacement worker starts", deployment.start_worker())
    job = poll_job(base, job_id, 120)
    note("kill: job ended %.1f s after the kill (lease %s)"
         % (time.time() - killed_at, WORKER_LEASE))
    check("kill: job succeeded after the kill",
          job.get("state") == "succeeded", job)
    check("kill: job used two attempts", job.get("attempts") == 2,
          job.get("attempts"))
    return job_id


def phase_redis(base, args, deployment, redis, book, ledger):
    """Uploads while Redis is down, after it restarts, and after
    FLUSHALL. Each job must still complete, because workers and event
    streams fall back to polling the metadata store."""
    job_ids = []

    def batch(step):
        offset = len(job_ids)
        for n in range(REDIS_UPLOADS_PER_STEP):
            filename, content_type = CASES[(offset + n) % len(CASES)]
            asset = upload(base, os.path.join(args.cases, filename),
                           content_type, ledger, "redis")
            if asset:
                book.add(asset, "redis " + step)
                job_ids.append((step, asset["job_id"]))

    publishes = deployment.metric_sum("audiopipe_redis_publishes_total")
    check("redis: job changes were published", publishes > 0, publishes)
    check("redis: stops by PID", redis.stop() == 0)
    failures_before = deployment.metric_sum(
        "audiopipe_redis_publish_failures_total")
    batch("down")
    down = [poll_job(base, j, 90) for s, j in job_ids if s == "down"]
    check("redis: jobs complete while Redis is down",
          len(down) == REDIS_UPLOADS_PER_STEP and
          all(d.get("state") == "succeeded" for d in down),
          [(d.get("id"), d.get("state")) for d in down])
    readiness = deployment.readiness()
    check("redis: both httpd stay ready during the outage",
          [r[0] for r in readiness] == [200, 200], readiness)
    check("redis: readiness reports the outage",
          all(r[1].get("redis") == "unavailable" for r in readiness),
          readiness)
    failures_after = deployment.metric_sum(
        "audiopipe_redis_publish_failures_total")
    check("redis: the outage shows as failed publishes",
          failures_after > failures_before,
          (failures_before, failures_after))

    check("redis: starts again on its port", redis.start())
    batch("restarted")
    check("redis: FLUSHALL", redis.command("FLUSHALL") == b"+OK")
    batch("flushed")
    later = [poll_job(base, j, 90) for s, j in job_ids if s != "down"]
    check("redis: jobs complete after the restart and FLUSHALL",
          len(later) == 2 * REDIS_UPLOADS_PER_STEP and
          all(d.get("state") == "succeeded" for d in later),
          [(d.get("id"), d.get("state")) for d in later])
    readiness = deployment.readiness()
    check("redis: readiness reports Redis again",
          all(r[1].get("redis") == "ok" for r in readiness), readiness)
    recovered = deployment.metric_sum("audiopipe_redis_publishes_total")
    check("redis: publishing resumed after the restart",
          recovered > publishes, (publishes, recovered))
    logged = [name for name, _, path, _ in deployment.workers
              if any(line.get("event") == "redis_recovered"
                     for line in log_lines(path))]
    check("redis: a worker logged the recovery", logged, logged)
    check("redis: no upload request failed", not ledger.failed("redis"),
          ledger.failed("redis")[:5])


def list_bucket(endpoint, credentials, prefix):
    """Returns the keys under `prefix` with ListObjectsV2 (curl signs the
    request with SigV4), or None when the listing failed."""
    url = "%s/%s?list-type=2&prefix=%s" % (endpoint, BUCKET,
                                           urllib.parse.quote(prefix, ""))
    result = subprocess.run(
        ["curl", "-s", "--max-time", "10", "--aws-sigv4",
         "aws:amz:us-east-1:s3", "--user",
         "%s:%s" % (credentials["AWS_ACCESS_KEY_ID"],
                    credentials["AWS_SECRET_ACCESS_KEY"]),
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", url],
        capture_output=True, text=True)
    if result.returncode != 0 or "<ListBucketResult" not in result.stdout:
        return None
    keys = []
    for piece in result.stdout.split("<Key>")[1:]:
        keys.append(piece.split("</Key>")[0])
    return keys


def phase_verify(base, deployment, book, killed_job, endpoint, credentials):
    """Checks every job's record, asset and objects, then stops the
    workers and counts completion lines per job in their logs."""
    wrong_state = []
    wrong_attempts = []
    wrong_outputs = []
    wrong_objects = []
    wrong_history = []
    for job_id, entry in book.jobs.items():
        job = poll_job(base, job_id, 120)
        if job.get("state") != "succeeded":
            wrong_state.append((entry["phase"], job_id, job.get("state")))
        if job.get("attempts") != entry["attempts"]:
            wrong_attempts.append((entry["phase"], job_id,
                                   job.get("attempts"), entry["attempts"]))
        history = job.get("history")
        if history is not None:
            finishes = [h for h in history if h.get("state") == "succeeded"]
            if len(finishes) != 1:
                wrong_history.append((job_id, history))
        asset_id = entry["asset"]["id"]
        asset = send(base + "/v1/assets/" + asset_id, headers=auth()).json() \
            or {}
        renditions = asset.get("renditions") or {}
        waveforms = asset.get("waveforms") or {}
        if set(renditions) != set(RENDITIONS) or set(waveforms) != WAVEFORMS:
            wrong_outputs.append((asset_id, sorted(renditions),
                                  sorted(waveforms)))
            continue
        expected_keys = sorted(o["key"] for o in
                               list(renditions.values()) +
                               list(waveforms.values()))
        prefix = os.path.dirname(expected_keys[0]) + "/"
        stored = list_bucket(endpoint, credentials, prefix)
        if stored is None or sorted(stored) != expected_keys:
            wrong_objects.append((asset_id, stored, expected_keys))

    total = len(book.jobs)
    check("verify: all %d jobs succeeded" % total, not wrong_state,
          wrong_state)
    check("verify: attempts are 1, and 2 for the killed job",
          not wrong_attempts, wrong_attempts)
    check("verify: every asset has exactly the profile's outputs",
          not wrong_outputs, wrong_outputs[:5])
    check("verify: the bucket holds exactly each asset's outputs",
          not wrong_objects, wrong_objects[:3])
    check("verify: no job history shows two completions",
          not wrong_history, wrong_history[:3])

    # Each page comes from the other httpd, so every cursor is checked by
    # a process that did not sign it.
    listed = []
    cursor = None
    pages = 0
    failed_page = None
    while pages < 100:
        port = deployment.httpd_ports[pages % 2]
        query = "?limit=7" + ("&cursor=" + urllib.parse.quote(cursor, "")
                              if cursor else "")
        reply = send("http://127.0.0.1:%d/v1/assets%s" % (port, query),
                     headers=auth())
        pages += 1
        if reply.status != 200:
            failed_page = (pages, reply.describe())
            break
        page = reply.json() or {}
        listed += [item.get("id") for item in page.get("assets") or []]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    check("verify: every asset page lists", failed_page is None,
          failed_page)
    created = sorted(entry["asset"]["id"] for entry in book.jobs.values())
    check("verify: listing across both httpd shows each asset once",
          sorted(listed) == created,
          (len(listed), len(set(listed)), len(created)))

    statuses = []
    for name, process, _, _ in deployment.workers:
        if process.poll() is None:
            statuses.append((name, deployment.services.stop(process)))
    check("verify: running workers exit 0 on SIGTERM",
          all(s == 0 for _, s in statuses), statuses)
    completions = collections.Counter()
    for _, _, path, _ in deployment.workers:
        for line in log_lines(path):
            if line.get("event") == "job_succeeded":
                completions[line.get("job_id")] += 1
    # Under the sanitizers a leak turns exit status 0 into 23.
    statuses = [("httpd-%s" % "ab"[i], deployment.services.stop(process))
                for i, process in enumerate(deployment.httpd)
                if process.poll() is None]
    check("verify: both httpd exit 0 on SIGTERM",
          len(statuses) == 2 and all(s == 0 for _, s in statuses), statuses)
    twice = {j: n for j, n in completions.items() if n > 1}
    missing = [j for j in book.jobs if completions[j] == 0]
    check("verify: no job completed twice in the worker logs", not twice,
          twice)
    check("verify: every job has one completion line", not missing,
          missing[:5])
    return total, collections.Counter(e["phase"].split(" ")[0]
                                      for e in book.jobs.values())


# ---------------------------------------------------------------- main


def supported_keys(cli):
    """Returns the configuration keys this build supports, from the key
    table that `audiopipe config --markdown` prints."""
    result = subprocess.run([cli, "config", "--markdown"],
                            capture_output=True, text=True)
    keys = set()
    for line in result.stdout.splitlines():
        cells = [c.strip().strip("`") for c in line.split("|")]
        if len(cells) > 3:
            keys.add(cells[2])
    return keys


class Backends:
    """The servers every audiopipe process shares, and what this build
    supports of them."""

    def __init__(self):
        self.rgw_port = None
        self.credentials = {}
        self.mongo_port = None
        self.redis = None
        self.metadata = "sqlite"


def start_backends(services, args, use_redis, redis_binary):
    """Starts Ceph RGW in the background, because it takes longest, then
    the MongoDB-wire server and Redis. Returns Backends, or None when a
    server the run needs failed to start."""
    backends = Backends()
    ceph, backends.rgw_port, ceph_folder = start_ceph(services, args.scripts)
    if args.metadata in ("auto", "mongo"):
        backends.mongo_port, reason = start_mongo(services, args.scripts)
        if backends.mongo_port is None and args.metadata == "mongo":
            check("MongoDB-wire server starts", False, reason)
            return None
        if backends.mongo_port is None:
            print("SKIP mongo: the MongoDB-wire server did not start, so the "
                  "run uses a shared SQLite file: " + reason)
    if use_redis:
        backends.redis = Redis(services, redis_binary)
        if not check("redis starts", backends.redis.start()):
            return None
    status = ceph.wait(timeout=300)
    with open(os.path.join(services.root, "ceph-start.log")) as handle:
        output = handle.read()
    if not check("Ceph RGW starts", status == 0, output[-600:]):
        return None
    backends.credentials = read_env_file(os.path.join(ceph_folder,
                                                      "s3.env"))
    return backends


def shared_environment(services, args, backends, base):
    """The AUDIOPIPE_* settings of every process, without metadata.uri."""
    keys_path = os.path.join(services.root, "keys")
    digest = subprocess.run([args.httpd, "--hash-key", API_KEY],
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    with open(keys_path, "w") as handle:
        handle.write("%s %s\n" % (OWNER, digest))
    objects_uri = ("s3://%s?endpoint=http://127.0.0.1:%d&region=us-east-1"
                   "&path_style=1&public_endpoint=%s"
                   % (BUCKET, backends.rgw_port, urllib.parse.quote(base, "")))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AUDIOPIPE_")}
    env.update({
        "AUDIOPIPE_SIGNING_SECRET": SECRET,
        "AUDIOPIPE_PUBLIC_BASE_URL": base,
        "AUDIOPIPE_OBJECTS_URI": objects_uri,
        "AWS_ACCESS_KEY_ID": backends.credentials["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": backends.credentials["AWS_SECRET_ACCESS_KEY"],
        "AUDIOPIPE_HTTP_API_KEYS_FILE": keys_path,
        "AUDIOPIPE_PROCESSING_PROFILE": PROFILE,
        "AUDIOPIPE_LOG_LEVEL": "info",
    })
    if backends.redis:
        env["AUDIOPIPE_REDIS_URI"] = ("redis://127.0.0.1:%d"
                                      % backends.redis.port)
    return env


def start_nginx(services, nginx, deployment, backends, port):
    config = os.path.join(services.root, "nginx", "nginx.conf")
    prefix = os.path.dirname(config)
    os.makedirs(prefix)
    with open(config, "w") as handle:
        handle.write(NGINX_CONFIG % {
            "prefix": prefix, "port": port,
            "httpd_a": deployment.httpd_ports[0],
            "httpd_b": deployment.httpd_ports[1],
            "rgw": backends.rgw_port, "bucket": BUCKET})
    syntax = subprocess.run([nginx, "-p", prefix, "-c", config, "-t"],
                            capture_output=True, text=True)
    check("nginx -t accepts the configuration", syntax.returncode == 0,
          syntax.stderr)
    services.spawn("nginx", [nginx, "-p", prefix, "-c", config])
    # A request through nginx before the httpd run would mark both
    # upstreams failed for fail_timeout, so only the port is probed.
    return check("nginx listens", wait_until(lambda: port_answers(port), 15))


def mongo_unsupported(args, deployment, base, book):
    """Runs one upload on httpd A, on MongoDB metadata. Returns the reason
    when this build's MongoDB backend returns `unsupported` (501) at start
    or on a step, else None. The upload's job joins `book`."""
    if not deployment.start_httpd(0):
        with open(deployment.log_path("httpd-a"), "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
        last = (text.strip().splitlines() or ["no output"])[-1]
        return last if "unsupported" in last else "start failed: " + last
    direct = "http://127.0.0.1:%d" % deployment.httpd_ports[0]
    probe_ledger = Ledger()
    filename, content_type = CASES[1]
    asset = upload(direct, os.path.join(args.cases, filename), content_type,
                   probe_ledger, "probe")
    failed = probe_ledger.failed("probe")
    if failed and failed[0][2] == 501:
        return failed[0][4]
    if asset:
        book.add(asset, "probe")
    return None


def choose_metadata(args, deployment, backends, base, book):
    """Starts httpd A on MongoDB metadata when this build supports it, else
    on a shared SQLite file. Returns False when httpd A cannot start."""
    env = deployment.env
    if backends.mongo_port is not None:
        env["AUDIOPIPE_METADATA_URI"] = (
            "mongodb://127.0.0.1:%d/?replicaSet=rs0" % backends.mongo_port)
        reason = mongo_unsupported(args, deployment, base, book)
        if reason is None:
            backends.metadata = "mongo"
            return True
        if args.metadata == "mongo" or "unsupported" not in reason:
            check("httpd runs on MongoDB metadata", False, reason)
            return False
        print("SKIP mongo: this build's MongoDB backend is incomplete, so "
              "the run uses a shared SQLite file: " + reason)
        deployment.services.stop(deployment.httpd[0])
    env["AUDIOPIPE_METADATA_URI"] = "sqlite://" + os.path.join(
        deployment.services.root, "meta.db")
    return check("httpd A starts", deployment.start_httpd(0))


def count_retried(root):
    """Counts the requests nginx sent to both upstreams."""
    retried = 0
    with open(os.path.join(root, "nginx", "access.log")) as handle:
        for line in handle:
            tried = line.split(" upstream=", 1)[-1].split(
                " upstream_status=", 1)[0]
            if ", " in tried:
                retried += 1
    return retried


def run_phases(args, deployment, backends, base, book, timings):
    """Runs the phases in order and prints the summary."""
    ledger = Ledger()
    root = deployment.services.root

    mark = time.time()
    phase_flow(base, args, book, ledger)
    timings["flow"] = time.time() - mark

    mark = time.time()
    reconnects = phase_drain(base, args, deployment, book, ledger, root)
    for job_id in book.jobs:
        poll_job(base, job_id, 120)
    timings["drain"] = time.time() - mark

    mark = time.time()
    killed_job = phase_kill(base, args, deployment, book, ledger, root)
    timings["kill"] = time.time() - mark

    mark = time.time()
    if backends.redis:
        phase_redis(base, args, deployment, backends.redis, book,
                    ledger)
        timings["redis"] = time.time() - mark
    else:
        print("SKIP redis phase: Redis is not part of this deployment")

    mark = time.time()
    total, per_phase = phase_verify(
        base, deployment, book, killed_job,
        "http://127.0.0.1:%d" % backends.rgw_port, backends.credentials)
    timings["verify"] = time.time() - mark

    print("summary: metadata=%s, objects=s3 on Ceph RGW, redis=%s"
          % (backends.metadata, "on" if backends.redis else "off"))
    print("summary: %d jobs (%s), %d client requests, %d failed; nginx "
          "sent %d requests on to the other httpd; %d event streams "
          "resumed after the drain"
          % (total, ", ".join("%s %d" % kv for kv in per_phase.items()),
             len(ledger.entries),
             sum(1 for e in ledger.entries if not e[3]),
             count_retried(root), reconnects))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--cases", required=True)
    parser.add_argument("--scripts", required=True)
    parser.add_argument("--metadata", choices=("auto", "mongo", "sqlite"),
                        default="auto",
                        help="metadata store; auto uses MongoDB when this "
                        "build supports it, else a shared SQLite file")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the run's folder of logs even when "
                        "every check passed")
    args = parser.parse_args()

    nginx = find_tool("nginx")
    if not nginx:
        print("SKIP: nginx is not installed (Debian package nginx)")
        return SKIP
    for tool in ("curl", "radosgw", "ceph-mon", "ceph-osd"):
        if not find_tool(tool):
            print("SKIP: %s is not installed (see scripts/ceph-rgw.sh)"
                  % tool)
            return SKIP
    redis_binary = find_tool("redis-server")
    has_redis_key = "redis.uri" in supported_keys(args.cli)
    if not has_redis_key:
        print("SKIP redis: this build has no redis.uri key, so the "
              "processes run without Redis")
    elif redis_binary is None:
        print("SKIP redis: redis-server is not installed (Debian package "
              "redis-server)")

    # ctest's timeout and Ctrl-C end the run through the finally block
    # below, which stops every server this run started.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(1))
    started = time.time()
    root = tempfile.mkdtemp(prefix="apdeploy-")
    services = Services(root)
    timings = collections.OrderedDict()
    try:
        backends = start_backends(services, args,
                                  has_redis_key and redis_binary is not None,
                                  redis_binary)
        if backends is None:
            return 1
        timings["backends start"] = time.time() - started

        nginx_port = free_port()
        base = "http://127.0.0.1:%d" % nginx_port
        deployment = Deployment(services, args, shared_environment(
            services, args, backends, base))
        book = JobBook()
        if not start_nginx(services, nginx, deployment, backends,
                           nginx_port):
            return 1
        if not choose_metadata(args, deployment, backends, base, book):
            return 1
        if not check("httpd B starts", deployment.start_httpd(1)):
            return 1
        for _ in range(2):
            if not check("worker starts", deployment.start_worker()):
                return 1
        timings["deployment start"] = time.time() - started - \
            timings["backends start"]

        run_phases(args, deployment, backends, base, book, timings)
        print("summary: " + ", ".join("%s %.1f s" % kv
                                      for kv in timings.items()) +
              ", total %.1f s" % (time.time() - started))
    finally:
        services.stop_all()
        if failures or args.keep_logs:
            print("logs kept in " + root)
        else:
            shutil.rmtree(root, ignore_errors=True)

    if failures:
        print("%d checks failed: %s" % (len(failures), ", ".join(failures)))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
