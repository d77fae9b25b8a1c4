"""Start the example as it is deployed: gunicorn (gthread workers) and one
example worker process, on a free 127.0.0.1 port with stores in a
temporary directory.

Used by test_gunicorn.py, and as a program by the browser test:

    python3 stack.py DIRECTORY

prints "READY http://127.0.0.1:PORT" once /healthz responds, and stops
both processes when its standard input closes or it receives SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Iterator

APP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIR = os.path.dirname(os.path.dirname(APP_DIR))
BINDINGS_DIR = os.path.join(SOURCE_DIR, "bindings", "python")
SECRET = "g" * 48
STARTUP_SECONDS = 30


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


def _environment(directory: str, base_url: str, port: int) -> dict:
    environment = dict(os.environ)
    environment.update(
        {
            "PYTHONPATH": os.pathsep.join(
                [BINDINGS_DIR, APP_DIR, environment.get("PYTHONPATH", "")]
            ),
            "APP_DATA_DIR": directory,
            "AUDIOPIPE_SIGNING_SECRET": SECRET,
            "AUDIOPIPE_PUBLIC_BASE_URL": base_url,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_THREADS": "4",
        }
    )
    # The processes run in APP_DIR, so a relative library path would break.
    if environment.get("AUDIOPIPE_LIBRARY"):
        environment["AUDIOPIPE_LIBRARY"] = os.path.abspath(
            environment["AUDIOPIPE_LIBRARY"]
        )
    environment.pop("SENTRY_DSN", None)
    return environment


def _stop(process: subprocess.Popen) -> None:
    """Stop one started process by its PID: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_healthy(base_url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer {base_url}/healthz in time")


@contextlib.contextmanager
def running_stack(directory: str, log_path: str) -> Iterator[str]:
    """Run gunicorn and the worker; yield the base URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    environment = _environment(directory, base_url, port)
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=APP_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        worker = subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=APP_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(base_url, server)
            yield base_url
        finally:
            _stop(worker)
            _stop(server)


def main() -> int:
    """Run the stack until standard input closes or SIGTERM arrives."""
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.stdin.close())
    with running_stack(directory, os.path.join(directory, "stack.log")) as url:
        print(f"READY {url}", flush=True)
        try:
            sys.stdin.read()
        except (OSError, ValueError):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
