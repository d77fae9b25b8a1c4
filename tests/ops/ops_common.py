"""Shared pieces of the operations tests: named checks, free loopback
ports, HTTP calls, and audiopipe-httpd and audiopipe-worker processes with
their own data directory, started and stopped by PID.

Every test exits 0 when all checks pass, 1 when one fails, and 77 (the
ctest SKIP_RETURN_CODE) with the reason printed when a tool it needs is
missing.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

# Recognisable values: the log test greps every log line for them.
API_KEY = "ak-ops-test-key-5d1e8a93c07b"
SECRET = "ops-signing-secret-4f9a2c7e1b3d5a6c8e0f-SECRET"
FILENAME = "ops-secret-filename-7731.mp3"

SKIP = 77

failures = []


def check(name, condition, detail=""):
    """Records and prints one named check."""
    print(("ok   " if condition else "FAIL ") + name +
          ("" if condition else "  (" + str(detail)[:400] + ")"))
    sys.stdout.flush()
    if not condition:
        failures.append(name)
    return condition


def skip(reason):
    """Prints why the test cannot run here and exits with 77."""
    print("SKIP: " + reason)
    sys.stdout.flush()
    sys.exit(SKIP)


def finish():
    """Exits 1 when any check failed, else 0."""
    if failures:
        print("%d checks failed: %s" % (len(failures), ", ".join(failures)))
        sys.exit(1)
    print("all checks passed")
    sys.exit(0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url, method="GET", headers=None, body=None, timeout=20):
    """Sends one request; returns (status, headers, body bytes). Status 0
    means the connection failed."""
    data = body
    if isinstance(body, str):
        data = body.encode()
    outgoing = urllib.request.Request(url, data=data, method=method,
                                      headers=headers or {})
    # The tests' nginx serves a self-signed certificate on 127.0.0.1.
    context = ssl._create_unverified_context() \
        if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout,
                                    context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as failed:
        return failed.code, dict(failed.headers), failed.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return 0, {}, b""


def wait_for_status(url, status=200, timeout=15, process=None):
    """Polls `url` until it answers `status`; False on timeout or when
    `process` exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            return False
        if request(url, timeout=2)[0] == status:
            return True
        time.sleep(0.05)
    return False


def stop_process(process, timeout=40):
    """Sends SIGTERM to one child by PID and waits; SIGKILL after
    `timeout` seconds. Returns the exit status."""
    if process is None:
        return None
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def hash_key(httpd, key):
    return subprocess.run([httpd, "--hash-key", key], capture_output=True,
                          text=True, check=True).stdout.strip()


class Deployment:
    """One data directory shared by an httpd and, when given, a worker:
    the SQLite file, the object store and the API keys file."""

    def __init__(self, root, httpd, worker=None, settings=None):
        self.root = root
        self.httpd = httpd
        self.worker = worker
        os.makedirs(root, exist_ok=True)
        self.keys_path = os.path.join(root, "keys")
        with open(self.keys_path, "w") as keys:
            keys.write("ops %s\n" % hash_key(httpd, API_KEY))
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("AUDIOPIPE_")}
        self.env.update({
            "AUDIOPIPE_SIGNING_SECRET": SECRET,
            "AUDIOPIPE_PUBLIC_BASE_URL": self.base,
            "AUDIOPIPE_METADATA_URI":
                "sqlite://" + os.path.join(root, "meta.db"),
            "AUDIOPIPE_OBJECTS_URI": "file://" + os.path.join(root, "objects"),
            "AUDIOPIPE_HTTP_API_KEYS_FILE": self.keys_path,
            "AUDIOPIPE_METADATA_SQLITE_SYNCHRONOUS": "NORMAL",
            "AUDIOPIPE_LOG_LEVEL": "debug",
        })
        self.env.update(settings or {})
        self.processes = []
        self.logs = {}

    def start_httpd(self, port=None, name="httpd", extra_env=None):
        """Starts one audiopipe-httpd on 127.0.0.1:`port` (the
        deployment's port by default) and waits for /healthz."""
        port = port or self.port
        env = dict(self.env)
        env.update(extra_env or {})
        log_path = os.path.join(self.root, name + ".log")
        log = open(log_path, "ab")
        process = subprocess.Popen(
            [self.httpd, "--listen", "127.0.0.1:%d" % port, "--threads", "4"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        self.logs[name] = log_path
        url = "http://127.0.0.1:%d/healthz" % port
        if not wait_for_status(url, 200, 15, process):
            return None
        return process

    def start_worker(self, name="worker"):
        """Starts one audiopipe-worker with its /metrics on a free port;
        returns (process, metrics port) or (None, None)."""
        if not self.worker:
            return None, None
        port = free_port()
        log_path = os.path.join(self.root, name + ".log")
        log = open(log_path, "ab")
        process = subprocess.Popen(
            [self.worker, "--metrics-listen", "127.0.0.1:%d" % port],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        self.logs[name] = log_path
        url = "http://127.0.0.1:%d/metrics" % port
        if not wait_for_status(url, 200, 15, process):
            return None, None
        return process, port

    def stop_all(self):
        """Stops every process this deployment started, newest first."""
        statuses = []
        for process in reversed(self.processes):
            statuses.append(stop_process(process))
        self.processes = []
        return statuses


def auth():
    return {"Authorization": "Bearer " + API_KEY}


CONTENT_TYPES = {".mp3": "audio/mpeg", ".wav": "audio/wav",
                 ".oga": "audio/ogg", ".ogg": "audio/ogg",
                 ".flac": "audio/flac", ".m4a": "audio/mp4",
                 ".webm": "audio/webm", ".opus": "audio/ogg"}


def upload_file(base, path, filename=FILENAME, record=True):
    """Runs create, PUT and complete for one file. Returns (ticket, asset)
    with None for a step that failed; with `record`, a failed step is a
    failed check."""
    def check(name, condition, detail):
        if condition or not record:
            return condition
        return globals()["check"](name, condition, detail)

    content_type = CONTENT_TYPES.get(os.path.splitext(path)[1].lower(),
                                     "application/octet-stream")
    size = os.path.getsize(path)
    body = json.dumps({"filename": filename, "size_bytes": size,
                       "content_type": content_type})
    headers = dict(auth(), **{"Content-Type": "application/json"})
    status, _, created = request(base + "/v1/uploads", "POST", headers, body)
    if not check("upload create is 201", status == 201, created):
        return None, None
    ticket = json.loads(created)
    with open(path, "rb") as handle:
        data = handle.read()
    status, _, put = request(ticket["url"], ticket.get("method", "PUT"),
                             dict(ticket["headers"]), data)
    if not check("upload PUT is 200", status == 200, put):
        return ticket, None
    status, _, done = request(
        base + "/v1/uploads/%s/complete" % ticket["upload_id"], "POST",
        auth())
    if not check("upload complete is 200", status == 200, done):
        return ticket, None
    return ticket, json.loads(done)


def wait_for_job(base, job_id, timeout=60):
    """Polls a job until it leaves queued and running; returns its last
    document."""
    deadline = time.time() + timeout
    document = {}
    while time.time() < deadline:
        status, _, body = request(base + "/v1/jobs/" + job_id, headers=auth())
        if status == 200:
            document = json.loads(body)
            if document.get("state") not in ("queued", "running"):
                return document
        time.sleep(0.2)
    return document


def find_tool(name):
    """Returns the path of a program on PATH or in /usr/sbin, else None."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/bin"):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None
