#!/usr/bin/env python3
"""End-to-end tests of audiopipe-httpd with Redis: two server processes on
loopback share the fixture's redis-server. An event stream follows a job
within seconds although its poll interval is one minute, /readyz reports
Redis, and the two servers together admit no more than one key's limit.

Usage: test_redis_http.py --httpd PATH --driver PATH --http-tests DIR
                          --redis-port PORT
Reuses the helpers of tests/http/test_http.py. Every check prints one
line; the exit status is 1 when any check failed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

# The rate limit of both servers: 1 request/s after a burst of 4.
RATE = 1
BURST = 4


def test_readiness(http, server):
    response = http.curl(server.url("/readyz"))
    http.check("readyz answers 200 with Redis", response.status == 200,
               response.status)
    http.check("readyz reports redis ok",
               b'"redis":"ok"' in response.body, response.body)


def test_stream_follows_redis(http, server, driver):
    """With jobs.watch_interval at 60 s, an event that arrives within 5 s
    came through Redis."""
    job_id = subprocess.run([driver, "enqueue", "alice"], env=server.env,
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    reader = http.EventReader(server.url("/v1/jobs/%s/events" % job_id),
                              http.auth(http.ALICE_KEY))
    try:
        _, first = reader.wait_for(lambda l: l.startswith("data:"), 5)
        http.check("stream starts with the queued state",
                   first is not None and '"state":"queued"' in first,
                   reader.text())
        claimed = subprocess.run([driver, "claim"], env=server.env,
                                 capture_output=True, text=True, check=True)
        claimed_job, token = claimed.stdout.split()
        http.check("driver claims the streamed job", claimed_job == job_id,
                   claimed.stdout)
        _, running = reader.wait_for(lambda l: '"state":"running"' in l, 5)
        http.check("claim reaches the stream through Redis",
                   running is not None, reader.text())
        updated = subprocess.run(
            [driver, "progress", job_id, token, "0.5", "decode"],
            env=server.env, capture_output=True, text=True, check=True)
        sent = float(updated.stdout.strip())
        stamp, line = reader.wait_for(lambda l: '"progress":0.5' in l, 5)
        http.check("progress reaches the stream through Redis",
                   line is not None, reader.text())
        if stamp is not None:
            print("     event latency %.3f s" % (stamp - sent))
        subprocess.run([driver, "complete", job_id, token], env=server.env,
                       check=True)
        _, end = reader.wait_for(lambda l: l == "event: end", 5)
        http.check("completion ends the stream through Redis",
                   end is not None, reader.text())
    finally:
        reader.close()


def test_shared_rate_limit(http, servers):
    """Bob's requests alternate between the two servers. Separate buckets
    would admit 2 * BURST at once, and a shared one admits BURST plus RATE
    per second."""
    admitted = 0
    limited = 0
    start = time.time()
    for i in range(4 * BURST):
        response = http.curl(servers[i % 2].url("/v1/assets"),
                             headers=http.auth(http.BOB_KEY))
        if response.status == 200:
            admitted += 1
        elif response.status == 429:
            limited += 1
    elapsed = time.time() - start
    print("     %d admitted, %d limited in %.2f s" % (admitted, limited,
                                                       elapsed))
    http.check("both servers together admit at least the burst",
               admitted >= BURST, admitted)
    http.check("both servers together admit at most burst + rate * t",
               admitted <= BURST + RATE * elapsed + 1,
               (admitted, elapsed))
    http.check("the shared bucket answers 429", limited > 0, limited)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--driver", required=True)
    parser.add_argument("--http-tests", required=True)
    parser.add_argument("--redis-port", required=True, type=int)
    arguments = parser.parse_args()
    sys.path.insert(0, arguments.http_tests)
    import test_http as http

    root = tempfile.mkdtemp(prefix="audiopipe-redis-http-")
    settings = {
        "AUDIOPIPE_REDIS_URI": "redis://127.0.0.1:%d" % arguments.redis_port,
        "AUDIOPIPE_REDIS_KEY_PREFIX": "aptest-http-%d" % os.getpid(),
        "AUDIOPIPE_JOBS_WATCH_INTERVAL": "60s",
        "AUDIOPIPE_HTTP_SSE_HEARTBEAT": "30s",
        "AUDIOPIPE_HTTP_RATE_LIMIT": str(RATE),
        "AUDIOPIPE_HTTP_RATE_LIMIT_BURST": str(BURST),
    }
    servers = [http.Server(arguments.httpd, root, name, settings)
               for name in ("first", "second")]
    try:
        started = all(http.check("server %s starts" % (i + 1), s.start(),
                                 s.log_path)
                      for i, s in enumerate(servers))
        if started:
            test_readiness(http, servers[0])
            test_stream_follows_redis(http, servers[0], arguments.driver)
            test_shared_rate_limit(http, servers)
        for i, server in enumerate(servers):
            server.stop()
            http.check("server %d exits 0" % (i + 1),
                       server.process is not None and
                       server.process.returncode == 0,
                       server.process and server.process.returncode)
            http.check("server %d log has no sanitizer report" % (i + 1),
                       "Sanitizer" not in server.log_text() and
                       "runtime error" not in server.log_text())
    finally:
        for server in servers:
            server.stop()
        if not http.failures:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("kept test directory " + root)
    print("%d check(s) failed" % len(http.failures) if http.failures else
          "all checks passed")
    return 1 if http.failures else 0


if __name__ == "__main__":
    sys.exit(main())
