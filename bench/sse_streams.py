#!/usr/bin/env python3
"""Holds N server-sent event streams open on one job for a while, with
non-blocking sockets in one thread, and reports how many opened, how many
received their first event, and how many failed (closed early or not 200).

Usage: sse_streams.py HOST PORT API_KEY JOB_ID N SECONDS
"""
import selectors
import socket
import sys
import time

host, port, key, job_id = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
count, seconds = int(sys.argv[5]), float(sys.argv[6])
request = ("GET /v1/jobs/%s/events HTTP/1.1\r\nHost: %s:%d\r\n"
           "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n"
           % (job_id, host, port, key)).encode()

selector = selectors.DefaultSelector()
streams = {}
failed = 0
for _ in range(count):
    sock = socket.create_connection((host, port))
    sock.sendall(request)
    sock.setblocking(False)
    selector.register(sock, selectors.EVENT_READ)
    streams[sock] = b""

deadline = time.time() + seconds
while time.time() < deadline and streams:
    for key_event, _ in selector.select(timeout=0.5):
        sock = key_event.fileobj
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            failed += 1
            selector.unregister(sock)
            sock.close()
            del streams[sock]
            continue
        if len(streams[sock]) < 4096:
            streams[sock] += data

ok = sum(1 for text in streams.values()
         if text.startswith(b"HTTP/1.1 200") and b"data:" in text)
bad_status = sum(1 for text in streams.values()
                 if not text.startswith(b"HTTP/1.1 200"))
print("sse streams: requested=%d open_with_event=%d closed_early=%d "
      "not_200=%d" % (count, ok, failed, bad_status))
for sock in streams:
    sock.close()
