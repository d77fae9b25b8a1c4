"""gunicorn settings for the example app.

gthread workers suit this app, because requests spend their time in
libaudiopipe calls that release the GIL (SQLite, file I/O). Each
server-sent events stream occupies one thread while it waits on a job
watch, so the thread count bounds the concurrent streams per worker.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Keep-alive in seconds: long enough for a browser's next API call to
# reuse its connection, short enough not to pin threads.
keepalive = 5
# Uploads stream through /v1/objects/<key>; a slow client on a large file
# needs more than the 30 s default.
timeout = 120
graceful_timeout = 30
accesslog = "-"
errorlog = "-"
# Each worker opens its own audiopipe.Client after the fork: a C context
# (SQLite connections, threads) must not be shared across fork(2).
preload_app = False
