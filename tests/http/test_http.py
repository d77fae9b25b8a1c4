#!/usr/bin/env python3
"""End-to-end tests of audiopipe-httpd: real server processes on loopback,
driven with curl, with a temporary data directory and keys file.

Usage: test_http.py --httpd PATH --driver PATH --cases DIR [--nginx PATH]

Builds nothing. Every check prints one line; the exit status is 1 when any
check failed.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ALICE_KEY = "ak-live-alice-7f3c9d2e"
BOB_KEY = "ak-live-bob-41b8a0c6"
ORIGIN = "https://app.example.com"
SECRET = "test-signing-secret-0123456789abcdef-xyz"

failures = []

# Every upload ticket issued, so the log check can look for signatures.
issued_tickets = []


def check(name, condition, detail=""):
    """Records one named check."""
    print(("ok   " if condition else "FAIL ") + name +
          ("" if condition else "  (" + str(detail)[:300] + ")"))
    sys.stdout.flush()
    if not condition:
        failures.append(name)
    return condition


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Response:
    def __init__(self, status, headers, body, exit_code):
        self.status = status
        self.headers = headers
        self.body = body
        self.exit_code = exit_code

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            return None

    def header(self, name):
        return self.headers.get(name.lower())


def curl(url, method="GET", headers=None, data=None, data_file=None,
         extra=None, timeout=20):
    """Runs curl once and returns status, last header block and body."""
    with tempfile.TemporaryDirectory() as scratch:
        header_path = os.path.join(scratch, "headers")
        body_path = os.path.join(scratch, "body")
        command = ["curl", "-s", "-S", "-X", method, "-D", header_path,
                   "-o", body_path, "-w", "%{http_code}",
                   "--max-time", str(timeout)]
        for name, value in (headers or {}).items():
            command += ["-H", name + ": " + value]
        if data is not None:
            command += ["--data-binary", data]
        if data_file is not None:
            command += ["--data-binary", "@" + data_file]
        command += extra or []
        command.append(url)
        result = subprocess.run(command, capture_output=True, text=True)
        headers_out = {}
        if os.path.exists(header_path):
            with open(header_path, "rb") as handle:
                blocks = handle.read().decode("latin-1").split("\r\n\r\n")
            blocks = [b for b in blocks if b.strip()]
            if blocks:
                for line in blocks[-1].split("\r\n")[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers_out[name.strip().lower()] = value.strip()
        body = b""
        if os.path.exists(body_path):
            with open(body_path, "rb") as handle:
                body = handle.read()
        status = int(result.stdout) if result.stdout.isdigit() else 0
        return Response(status, headers_out, body, result.returncode)


def error_code(response):
    document = response.json() or {}
    return (document.get("error") or {}).get("code")


def error_message(response):
    document = response.json() or {}
    return (document.get("error") or {}).get("message") or ""


class Server:
    """One audiopipe-httpd process with its own data directory."""

    def __init__(self, binary, root, name, settings):
        self.binary = binary
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.directory = os.path.join(root, name)
        os.makedirs(self.directory)
        self.log_path = os.path.join(self.directory, "server.log")

        keys_path = os.path.join(self.directory, "keys")
        with open(keys_path, "w") as keys:
            for owner, key in (("alice", ALICE_KEY), ("bob", BOB_KEY)):
                digest = subprocess.run([binary, "--hash-key", key],
                                        capture_output=True, text=True,
                                        check=True).stdout.strip()
                keys.write("%s %s\n" % (owner, digest))

        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("AUDIOPIPE_")}
        self.env.update({
            "AUDIOPIPE_SIGNING_SECRET": SECRET,
            "AUDIOPIPE_PUBLIC_BASE_URL": self.base,
            "AUDIOPIPE_METADATA_URI":
                "sqlite://" + os.path.join(self.directory, "meta.db"),
            "AUDIOPIPE_OBJECTS_URI":
                "file://" + os.path.join(self.directory, "objects"),
            "AUDIOPIPE_HTTP_API_KEYS_FILE": keys_path,
            "AUDIOPIPE_HTTP_CORS_ORIGINS": ORIGIN,
            "AUDIOPIPE_UPLOADS_MAX_BYTES": "1M",
            "AUDIOPIPE_METADATA_SQLITE_SYNCHRONOUS": "NORMAL",
        })
        self.env.update(settings)
        self.process = None
        self.log = None

    def start(self):
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [self.binary, "--listen", "127.0.0.1:%d" % self.port,
             "--threads", "4"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.process.poll() is not None:
                break
            if curl(self.base + "/healthz", timeout=2).status == 200:
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log:
            self.log.close()
            self.log = None

    def log_text(self):
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def url(self, path):
        return self.base + path


def auth(key):
    return {"Authorization": "Bearer " + key}


def create_upload(server, key, filename, size, content_type):
    body = json.dumps({"filename": filename, "size_bytes": size,
                       "content_type": content_type})
    response = curl(server.url("/v1/uploads"), "POST",
                    dict(auth(key), **{"Content-Type": "application/json"}),
                    data=body)
    document = response.json()
    if response.status == 201 and document:
        issued_tickets.append(document)
    return response


def put_ticket(ticket, path, override_headers=None, extra=None):
    """PUTs a file with exactly the headers the ticket lists."""
    headers = dict(ticket["headers"])
    headers.update(override_headers or {})
    return curl(ticket["url"], ticket.get("method", "PUT"), headers,
                data_file=path, extra=extra)


def object_files(server):
    found = []
    for folder, _, files in os.walk(os.path.join(server.directory,
                                                 "objects")):
        found += [os.path.join(folder, f) for f in files
                  if not f.startswith(".")]
    return found


def test_probes(server):
    health = curl(server.url("/healthz"))
    check("healthz answers 200", health.status == 200, health.status)
    check("healthz carries a request id", bool(health.header("x-request-id")))
    ready = curl(server.url("/readyz"))
    check("readyz answers 200", ready.status == 200, ready.body)
    echoed = curl(server.url("/healthz"), headers={"X-Request-Id": "probe-1"})
    check("request id is echoed", echoed.header("x-request-id") == "probe-1")
    metrics = curl(server.url("/metrics"))
    check("metrics answers 200", metrics.status == 200)
    check("metrics is text format 0.0.4",
          "version=0.0.4" in (metrics.header("content-type") or ""))
    text = metrics.body.decode()
    check("metrics lists request counter",
          "# TYPE audiopipe_http_requests_total counter" in text)
    check("metrics counts healthz by route",
          'route="/healthz",method="GET",status="200"' in text)
    check("metrics has latency histogram",
          "audiopipe_http_request_duration_seconds_bucket" in text)
    check("metrics has job queue gauges",
          'audiopipe_jobs{state="queued"}' in text)


def test_errors(server):
    missing = curl(server.url("/v1/nothing"))
    check("unknown path is 404", missing.status == 404)
    document = missing.json() or {}
    check("error body has the documented shape",
          set(document.keys()) == {"error"} and
          set(document["error"].keys()) == {"code", "message"}, document)
    check("error code is an ap_error name", error_code(missing) == "not_found")

    wrong = curl(server.url("/v1/uploads"), "GET", auth(ALICE_KEY))
    check("wrong method is 405", wrong.status == 405, wrong.status)
    check("405 lists allowed methods", wrong.header("allow") == "POST")

    anonymous = curl(server.url("/v1/assets"))
    check("missing key is 401", anonymous.status == 401)
    check("401 code is permission_denied",
          error_code(anonymous) == "permission_denied")
    unknown = curl(server.url("/v1/assets"), headers=auth("not-a-key"))
    check("unknown key is 401", unknown.status == 401)

    big = curl(server.url("/v1/uploads"), "POST", auth(ALICE_KEY),
               data="{\"filename\":\"" + "a" * 70000 + "\"}")
    check("oversized JSON body is 413", big.status == 413, big.status)

    not_json = curl(server.url("/v1/uploads"), "POST", auth(ALICE_KEY),
                    data="{not json")
    check("invalid JSON is 400", not_json.status == 400)
    check("invalid JSON names the body",
          error_message(not_json).startswith("body:"), error_message(not_json))

    mistyped = curl(server.url("/v1/uploads"), "POST", auth(ALICE_KEY),
                    data='{"filename":5,"size_bytes":10,'
                         '"content_type":"audio/wav"}')
    check("mistyped field is 400", mistyped.status == 400)
    check("400 names filename",
          error_message(mistyped).startswith("filename:"),
          error_message(mistyped))
    no_size = curl(server.url("/v1/uploads"), "POST", auth(ALICE_KEY),
                   data='{"filename":"a.wav","content_type":"audio/wav"}')
    check("missing size is 400", no_size.status == 400)
    check("400 names size_bytes",
          error_message(no_size).startswith("size_bytes:"),
          error_message(no_size))
    extra = curl(server.url("/v1/uploads"), "POST", auth(ALICE_KEY),
                 data='{"filename":"a.wav","size_bytes":3,'
                      '"content_type":"audio/wav","colour":"red"}')
    check("unknown field is 400 naming it",
          extra.status == 400 and error_message(extra).startswith("colour:"),
          error_message(extra))

    bad_limit = curl(server.url("/v1/assets?limit=0"), headers=auth(ALICE_KEY))
    check("limit out of range is 400 naming limit",
          bad_limit.status == 400 and
          error_message(bad_limit).startswith("limit:"),
          error_message(bad_limit))


def test_cors(server):
    allowed = curl(server.url("/v1/uploads"), "OPTIONS",
                   {"Origin": ORIGIN,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers":
                        "authorization, content-type"})
    check("preflight from allowed origin is 204", allowed.status == 204,
          allowed.status)
    check("preflight allows the origin",
          allowed.header("access-control-allow-origin") == ORIGIN)
    check("preflight lists methods",
          "POST" in (allowed.header("access-control-allow-methods") or ""))
    check("preflight lists Authorization",
          "Authorization" in
          (allowed.header("access-control-allow-headers") or ""))
    denied = curl(server.url("/v1/uploads"), "OPTIONS",
                  {"Origin": "https://evil.example.net",
                   "Access-Control-Request-Method": "POST"})
    check("preflight from other origin is 403", denied.status == 403)
    check("other origin gets no allow header",
          denied.header("access-control-allow-origin") is None)
    simple = curl(server.url("/healthz"), headers={"Origin": ORIGIN})
    check("simple request from allowed origin is tagged",
          simple.header("access-control-allow-origin") == ORIGIN)


def complete(server, key, upload_id):
    return curl(server.url("/v1/uploads/%s/complete" % upload_id), "POST",
                auth(key))


def test_presigned_flow(server, cases):
    """Create, PUT with the returned headers, complete: returns the asset."""
    path = os.path.join(cases, "case-03.mp3")
    size = os.path.getsize(path)
    created = create_upload(server, ALICE_KEY, "case-03.mp3", size,
                            "audio/mpeg")
    check("upload create is 201", created.status == 201, created.body)
    ticket = created.json() or {}
    check("ticket lists the headers to send",
          ticket.get("headers", {}).get("Content-Type") == "audio/mpeg",
          ticket)
    put = put_ticket(ticket, path)
    check("PUT with the signed headers is 200", put.status == 200, put.body)
    done = complete(server, ALICE_KEY, ticket["upload_id"])
    check("complete is 200", done.status == 200, done.body)
    asset = done.json() or {}
    check("asset has an id", bool(asset.get("id")), asset)
    check("asset has a job", bool(asset.get("job_id")), asset)
    again = complete(server, ALICE_KEY, ticket["upload_id"])
    check("second complete returns the same asset",
          (again.json() or {}).get("id") == asset.get("id"), again.body)

    got = curl(server.url("/v1/assets/" + asset["id"]),
               headers=auth(ALICE_KEY))
    check("owner reads the asset", got.status == 200, got.status)
    listing = curl(server.url("/v1/assets?limit=10"), headers=auth(ALICE_KEY))
    ids = [a.get("id") for a in (listing.json() or {}).get("assets", [])]
    check("owner's list contains the asset", asset["id"] in ids, listing.body)
    job = curl(server.url("/v1/jobs/" + asset["job_id"]),
               headers=auth(ALICE_KEY))
    check("owner reads the job", job.status == 200, job.body)
    return ticket, asset


def test_concurrent_creations(server, count=64):
    """Creations that run at once share group commits, and each still gets
    its own committed row before its response is sent."""
    responses = [None] * count

    def create(index):
        responses[index] = create_upload(server, ALICE_KEY,
                                         "together-%d.wav" % index,
                                         1000 + index, "audio/wav")
    threads = [threading.Thread(target=create, args=(index,))
               for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = [response.status if response else None
                for response in responses]
    check("concurrent creations answer 201",
          statuses == [201] * count, statuses)
    ids = [(response.json() or {}).get("upload_id") if response else None
           for response in responses]
    check("concurrent creations get distinct ids",
          None not in ids and len(set(ids)) == count, ids)

    database = os.path.join(server.directory, "meta.db")
    with contextlib.closing(sqlite3.connect(database)) as db:
        sizes = dict(db.execute(
            "SELECT id, size_bytes FROM uploads WHERE filename LIKE "
            "'together-%'"))
    missing = [index for index, upload_id in enumerate(ids)
               if sizes.get(upload_id) != 1000 + index]
    check("every answered creation is committed", not missing, missing)


def test_rejections(server, cases):
    wav = os.path.join(cases, "case-18.wav")
    size = os.path.getsize(wav)

    ticket = create_upload(server, ALICE_KEY, "case-18.wav", size,
                           "audio/wav").json()
    mismatch = put_ticket(ticket, wav, {"Content-Type": "audio/x-wav"})
    check("PUT with another Content-Type is 403", mismatch.status == 403,
          mismatch.status)
    check("type mismatch code is signature_mismatch",
          error_code(mismatch) == "signature_mismatch", mismatch.body)

    tampered = dict(ticket)
    url = ticket["url"]
    last = url[-1]
    tampered["url"] = url[:-1] + ("0" if last != "0" else "1")
    bad_signature = put_ticket(tampered, wav)
    check("tampered signature is 403", bad_signature.status == 403)
    check("tampered signature code", error_code(bad_signature) ==
          "signature_mismatch", bad_signature.body)
    longer = dict(ticket)
    longer["url"] = re.sub(r"X-Ap-Content-Length=\d+",
                           "X-Ap-Content-Length=%d" % (size + 1), url)
    check("tampered length is 403",
          put_ticket(longer, wav).status == 403)

    # A body longer than the signed length, sent chunked, never lands.
    before = set(object_files(server))
    chunked = put_ticket(ticket, os.path.join(cases, "case-05.mp3"),
                         {"Content-Length": "", "Transfer-Encoding":
                          "chunked"})
    check("oversized chunked PUT is rejected", chunked.status in (403, 413),
          chunked.status)
    check("rejected PUT stores nothing",
          set(object_files(server)) == before)

    big = os.path.join(cases, "case-05.mp3")
    over = create_upload(server, ALICE_KEY, "case-05.mp3",
                         os.path.getsize(big), "audio/mpeg")
    check("upload over uploads.max_bytes is 413", over.status == 413,
          over.body)
    check("413 code is upload_too_large",
          error_code(over) == "upload_too_large")

    empty = create_upload(server, ALICE_KEY, "case-14.mp3",
                          os.path.getsize(os.path.join(cases, "case-14.mp3")),
                          "audio/mpeg")
    check("empty upload is rejected with 400", empty.status == 400,
          empty.body)
    check("empty upload names size_bytes",
          error_message(empty).startswith("size_bytes"), empty.body)

    text_path = os.path.join(server.directory, "notes.wav")
    with open(text_path, "wb") as handle:
        handle.write(b"these are meeting notes, not a recording\n" * 40)
    ticket = create_upload(server, ALICE_KEY, "notes.wav",
                           os.path.getsize(text_path), "audio/wav").json()
    check("non-audio PUT is stored", put_ticket(ticket, text_path).status ==
          200)
    rejected = complete(server, ALICE_KEY, ticket["upload_id"])
    check("non-audio complete is 422", rejected.status == 422, rejected.body)
    check("non-audio code is not_audio", error_code(rejected) == "not_audio",
          rejected.body)

    form = os.path.join(cases, "case-22.wav")
    ticket = create_upload(server, ALICE_KEY, "case-22.wav",
                           os.path.getsize(form), "audio/wav").json()
    put_ticket(ticket, form)
    key = ticket["url"].split("/v1/objects/")[1].split("?")[0]
    rejected = complete(server, ALICE_KEY, ticket["upload_id"])
    check("form body complete is 422", rejected.status == 422, rejected.body)
    check("form body code is multipart_body",
          error_code(rejected) == "multipart_body", rejected.body)
    check("rejected object is deleted",
          not any(p.endswith(key) for p in object_files(server)))


def test_isolation(server, ticket, asset, driver):
    subprocess.run([driver, "attach", asset["id"]], env=server.env,
                   check=True)
    waveform = curl(server.url("/v1/assets/%s/waveform" % asset["id"]),
                    headers=auth(ALICE_KEY))
    check("owner gets the waveform .dat", waveform.status == 200 and
          waveform.body[:4] == b"\x02\x00\x00\x00", waveform.status)
    as_json = curl(server.url("/v1/assets/%s/waveform?format=json" %
                              asset["id"]), headers=auth(ALICE_KEY))
    check("owner gets the waveform JSON",
          as_json.status == 200 and
          (as_json.json() or {}).get("length") == 4, as_json.body[:200])
    accept = curl(server.url("/v1/assets/%s/waveform" % asset["id"]),
                  headers=dict(auth(ALICE_KEY), Accept="application/json"))
    check("Accept selects the waveform JSON",
          (accept.header("content-type") or "").startswith(
              "application/json"))
    rendition = curl(server.url("/v1/assets/%s/renditions/mp3_128k" %
                                asset["id"]), headers=auth(ALICE_KEY))
    check("rendition is a 302", rendition.status == 302, rendition.body)
    location = rendition.header("location") or ""
    fetched = curl(location)
    check("presigned GET serves the object",
          fetched.status == 200 and len(fetched.body) == 81103,
          fetched.status)
    check("object GET has the stored type",
          fetched.header("content-type") == "audio/mpeg")

    key = ticket["url"].split("/v1/objects/")[1].split("?")[0]
    routes = {
        "upload complete": ("POST", "/v1/uploads/%s/complete" %
                            ticket["upload_id"]),
        "asset": ("GET", "/v1/assets/" + asset["id"]),
        "asset delete": ("DELETE", "/v1/assets/" + asset["id"]),
        "job": ("GET", "/v1/jobs/" + asset["job_id"]),
        "job events": ("GET", "/v1/jobs/%s/events" % asset["job_id"]),
        "waveform": ("GET", "/v1/assets/%s/waveform" % asset["id"]),
        "rendition": ("GET", "/v1/assets/%s/renditions/mp3_128k" %
                      asset["id"]),
        "object": ("GET", "/v1/objects/" + key),
    }
    for name, (method, path) in routes.items():
        other = curl(server.url(path), method, auth(BOB_KEY), timeout=5)
        check("other owner gets 404 on " + name, other.status == 404,
              other.status)
    listing = curl(server.url("/v1/assets"), headers=auth(BOB_KEY))
    check("other owner's list is empty",
          (listing.json() or {}).get("assets") == [], listing.body)
    still = curl(server.url("/v1/assets/" + asset["id"]),
                 headers=auth(ALICE_KEY))
    check("asset survives the other owner's DELETE", still.status == 200)


class EventReader:
    """Reads an event stream with curl -N, timestamping every line."""

    def __init__(self, url, headers):
        command = ["curl", "-s", "-N", "-i", "--max-time", "30"]
        for name, value in headers.items():
            command += ["-H", name + ": " + value]
        command.append(url)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE)
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.process.stdout:
            with self.lock:
                self.lines.append((time.time(), raw.decode().rstrip("\r\n")))

    def wait_for(self, predicate, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for stamp, line in self.lines:
                    if predicate(line):
                        return stamp, line
            time.sleep(0.02)
        return None, None

    def text(self):
        with self.lock:
            return "\n".join(line for _, line in self.lines)

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait()


def run_stream_checks(label, base, server, driver, direct):
    job_id = subprocess.run([driver, "enqueue", "alice"], env=server.env,
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    reader = EventReader(base + "/v1/jobs/%s/events" % job_id,
                         auth(ALICE_KEY))
    try:
        _, first = reader.wait_for(lambda l: l.startswith("data:"), 5)
        check(label + ": first event is the current state",
              first is not None and '"state":"queued"' in first,
              reader.text())
        head = reader.text().lower()
        check(label + ": content type is text/event-stream",
              "content-type: text/event-stream" in head)
        check(label + ": cache-control no-cache",
              "cache-control: no-cache" in head)
        if direct:
            # nginx consumes X-Accel-Buffering itself and does not pass
            # it on, so only the direct stream shows it.
            check(label + ": X-Accel-Buffering no",
                  "x-accel-buffering: no" in head)
        _, heartbeat = reader.wait_for(lambda l: l.startswith(":"), 5)
        check(label + ": heartbeat comment arrives", heartbeat is not None,
              reader.text())

        claimed = subprocess.run([driver, "claim"], env=server.env,
                                 capture_output=True, text=True, check=True)
        claimed_job, token = claimed.stdout.split()
        check(label + ": driver claimed the streamed job",
              claimed_job == job_id, claimed.stdout)
        updated = subprocess.run(
            [driver, "progress", job_id, token, "0.5", "decode"],
            env=server.env, capture_output=True, text=True, check=True)
        sent = float(updated.stdout.strip())
        stamp, line = reader.wait_for(lambda l: '"progress":0.5' in l, 5)
        check(label + ": progress event arrives", line is not None,
              reader.text())
        if stamp is not None:
            print("     %s: event latency %.3f s" % (label, stamp - sent))
        check(label + ": progress event within 1 s",
              stamp is not None and stamp - sent <= 1.0,
              None if stamp is None else stamp - sent)
        check(label + ": events carry ids",
              re.search(r"^id: \d+$", reader.text(), re.M) is not None)
        subprocess.run([driver, "complete", job_id, token], env=server.env,
                       check=True)
        _, end = reader.wait_for(lambda l: l == "event: end", 5)
        check(label + ": terminal event ends the stream", end is not None,
              reader.text())
    finally:
        reader.close()


def test_events(server, driver, nginx, root):
    run_stream_checks("sse direct", server.base, server, driver, True)
    test_many_streams(server, driver)
    test_proxied_events(server, driver, nginx, root)

    # Run last: the job it enqueues stays queued.
    resumed = subprocess.run([driver, "enqueue", "alice"], env=server.env,
                             capture_output=True, text=True,
                             check=True).stdout.strip()
    reader = EventReader(server.url("/v1/jobs/%s/events" % resumed),
                         dict(auth(ALICE_KEY), **{"Last-Event-ID": "41"}))
    _, line = reader.wait_for(lambda l: l.startswith("id:"), 5)
    check("Last-Event-ID continues the ids", line == "id: 42", line)
    reader.close()


def test_many_streams(server, driver, count=200):
    """Holds `count` event streams open and checks other requests still
    get through, because streams must not occupy pool threads."""
    job_id = subprocess.run([driver, "enqueue", "alice"], env=server.env,
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    request = ("GET /v1/jobs/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Authorization: Bearer %s\r\n\r\n" %
               (job_id, ALICE_KEY)).encode()
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(request)
            sockets.append(sock)
        opened = 0
        for sock in sockets:
            sock.settimeout(10)
            data = b""
            while b"data:" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            opened += b"text/event-stream" in data and b"data:" in data
        check("%d streams open at once" % count, opened == count, opened)
        health = curl(server.url("/healthz"), timeout=5)
        check("healthz answers beside open streams", health.status == 200)
        listing = curl(server.url("/v1/assets"), headers=auth(BOB_KEY),
                       timeout=5)
        check("API answers beside open streams", listing.status == 200)
        metrics = curl(server.url("/metrics"), timeout=5).body.decode()
        gauge = re.search(r"^audiopipe_http_sse_streams (\d+)", metrics,
                          re.M)
        check("stream gauge counts the open streams",
              gauge is not None and int(gauge.group(1)) >= count,
              gauge and gauge.group(0))
    finally:
        for sock in sockets:
            sock.close()

    # Finish the job, so later claims take the jobs of later checks.
    claimed = subprocess.run([driver, "claim"], env=server.env,
                             capture_output=True, text=True, check=True)
    claimed_job, token = claimed.stdout.split()
    check("many-streams job is the one claimed", claimed_job == job_id)
    subprocess.run([driver, "complete", claimed_job, token], env=server.env,
                   check=True)


def start_nginx(nginx, directory, upstream_port):
    """Starts a stock nginx with `location / { proxy_pass ...; }` to the
    upstream port, with its config, pid file and temporary paths in
    `directory`. Returns the process and its base URL once it serves."""
    os.makedirs(os.path.join(directory, "logs"))
    port = free_port()
    config = os.path.join(directory, "nginx.conf")
    with open(config, "w") as handle:
        handle.write("""
daemon off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log %(d)s/logs/access.log;
  client_body_temp_path %(d)s/client_body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  server {
    listen 127.0.0.1:%(port)d;
    location / { proxy_pass http://127.0.0.1:%(upstream)d; }
  }
}
""" % {"d": directory, "port": port, "upstream": upstream_port})
    proxy = subprocess.Popen([nginx, "-c", config, "-p", directory],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    deadline = time.time() + 10
    while time.time() < deadline and \
            curl(base + "/healthz", timeout=2).status != 200:
        time.sleep(0.05)
    return proxy, base


def test_proxied_events(server, driver, nginx, root):
    """The same stream checks behind a stock nginx proxy_pass."""
    if not nginx:
        check("nginx is available for the proxy test", False, "not found")
        return
    proxy, base = start_nginx(nginx, os.path.join(root, "nginx"), server.port)
    try:
        run_stream_checks("sse via nginx", base, server, driver, False)
    finally:
        proxy.terminate()
        proxy.wait()


def test_logs(server, tickets):
    text = server.log_text()
    lines = [l for l in text.splitlines() if l.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pass
    check("every log line is JSON", len(parsed) == len(lines),
          [l for l in lines if not l.startswith("{")][:3])
    access = [p for p in parsed if p.get("event") == "http_request"]
    check("access log has lines", len(access) > 10, len(access))
    check("access log lines have the standard keys",
          all({"ts", "level", "event", "request_id", "method", "route",
               "status", "bytes", "duration_s"} <= set(p) for p in access))
    check("access log uses route templates",
          any(p.get("route") == "/v1/assets/{id}" for p in access))
    check("log has no API key",
          ALICE_KEY not in text and BOB_KEY not in text)
    signatures = [re.search(r"X-Ap-Signature=([0-9a-f]+)", t["url"]).group(1)
                  for t in tickets]
    check("log has no signature", not any(s in text for s in signatures))
    check("log has no signed query string", "X-Ap-" not in text)
    for name in ("case-03.mp3", "case-18.wav", "case-22.wav", "notes.wav"):
        check("log has no filename " + name, name not in text)


def test_limits_and_drain(binary, root, cases):
    server = Server(binary, root, "limited", {
        "AUDIOPIPE_HTTP_RATE_LIMIT": "1",
        "AUDIOPIPE_HTTP_RATE_LIMIT_BURST": "3",
        "AUDIOPIPE_UPLOADS_URL_TTL": "1s",
        "AUDIOPIPE_HTTP_DRAIN_GRACE": "1500ms",
    })
    if not check("limited server starts", server.start(), server.log_path):
        return
    try:
        wav = os.path.join(cases, "case-18.wav")
        ticket = create_upload(server, ALICE_KEY, "case-18.wav",
                               os.path.getsize(wav), "audio/wav").json()
        time.sleep(2.2)
        expired = put_ticket(ticket, wav)
        check("expired URL is 403", expired.status == 403, expired.status)
        check("expired URL code is expired", error_code(expired) == "expired",
              expired.body)

        statuses = []
        limited = None
        for _ in range(6):
            response = curl(server.url("/v1/assets"), headers=auth(BOB_KEY))
            statuses.append(response.status)
            if response.status == 429:
                limited = response
        check("rate limit answers 429", limited is not None, statuses)
        if limited:
            check("429 has Retry-After",
                  (limited.header("retry-after") or "").isdigit())
            check("429 code is rate_limited",
                  error_code(limited) == "rate_limited")
        other = curl(server.url("/v1/assets"), headers=auth(ALICE_KEY))
        check("rate limit is per key", other.status == 200, other.status)

        # Drain: a slow PUT started before SIGTERM completes.
        time.sleep(1.5)
        big = os.path.join(cases, "case-08.wav")
        body = json.dumps({"filename": "slow.wav", "size_bytes": 1000000,
                           "content_type": "audio/wav"})
        created = curl(server.url("/v1/uploads"), "POST", auth(ALICE_KEY),
                       data=body)
        slow_ticket = created.json() or {}
        check("slow upload created", created.status == 201, created.body)
        slow_path = os.path.join(server.directory, "slow.bin")
        with open(big, "rb") as source, open(slow_path, "wb") as target:
            target.write(source.read()[:1000000])
        outcome = {}

        def slow_put():
            outcome["response"] = put_ticket(
                slow_ticket, slow_path, extra=["--limit-rate", "300k"])
        thread = threading.Thread(target=slow_put)
        thread.start()
        time.sleep(0.7)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        draining = curl(server.url("/healthz"), timeout=2)
        check("healthz is 503 while draining", draining.status == 503,
              draining.status)
        time.sleep(1.6)
        refused = curl(server.url("/healthz"), timeout=2)
        check("new connections are refused after the grace",
              refused.status == 0 and refused.exit_code == 7,
              (refused.status, refused.exit_code))
        thread.join(timeout=30)
        response = outcome.get("response")
        check("in-flight slow PUT completes",
              response is not None and response.status == 200,
              response and (response.status, response.body))
        try:
            code = server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        check("server exits 0 after the drain", code == 0, code)
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--driver", required=True)
    parser.add_argument("--cases", required=True)
    parser.add_argument("--nginx", default=shutil.which("nginx") or
                        "/usr/sbin/nginx")
    arguments = parser.parse_args()
    nginx = arguments.nginx if os.path.exists(arguments.nginx) else None

    root = tempfile.mkdtemp(prefix="audiopipe-http-")
    server = Server(arguments.httpd, root, "main", {
        "AUDIOPIPE_HTTP_SSE_HEARTBEAT": "500ms",
        "AUDIOPIPE_JOBS_WATCH_INTERVAL": "100ms",
        "AUDIOPIPE_HTTP_RATE_LIMIT": "10000",
        "AUDIOPIPE_HTTP_RATE_LIMIT_BURST": "10000",
    })
    try:
        if check("server starts", server.start(), server.log_path):
            test_probes(server)
            test_errors(server)
            test_cors(server)
            ticket, asset = test_presigned_flow(server, arguments.cases)
            test_rejections(server, arguments.cases)
            test_concurrent_creations(server)
            test_isolation(server, ticket, asset, arguments.driver)
            test_events(server, arguments.driver, nginx, root)
            server.stop()
            check("main server exits 0", server.process.returncode == 0,
                  server.process.returncode)
            check("server log has no sanitizer report",
                  "Sanitizer" not in server.log_text() and
                  "runtime error" not in server.log_text())
            test_logs(server, issued_tickets)
        test_limits_and_drain(arguments.httpd, root, arguments.cases)
    finally:
        server.stop()
        if not failures:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("kept test directory " + root)
    print("%d check(s) failed" % len(failures) if failures else
          "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
