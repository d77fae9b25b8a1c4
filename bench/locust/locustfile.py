"""Load test of audiopipe-httpd with Locust: each simulated user uploads a
real file (the test case files and the freedesktop sound theme), PUTs it
to the presigned URL, completes it, and follows the job's server-sent
progress events until the end event or 30 s.

Run through bench/locust/run.sh, which starts the servers on loopback.
Settings, from the environment:
  AUDIOPIPE_BENCH_KEY    API key sent as a bearer token (required)
  AUDIOPIPE_BENCH_FILES  colon-separated list of files to upload (required)
"""

import os
import random
import time

from locust import HttpUser, between, events, task

CONTENT_TYPES = {".mp3": "audio/mpeg", ".wav": "audio/wav",
                 ".oga": "audio/ogg", ".ogg": "audio/ogg",
                 ".flac": "audio/flac", ".m4a": "audio/mp4",
                 ".webm": "audio/webm", ".opus": "audio/ogg"}
FILES = [f for f in os.environ.get("AUDIOPIPE_BENCH_FILES", "").split(":")
         if f]
KEY = os.environ.get("AUDIOPIPE_BENCH_KEY", "")
EVENTS_TIMEOUT_S = 30

# Read every file once, so the users measure the server, not the disk.
BODIES = {}
for path in FILES:
    with open(path, "rb") as handle:
        BODIES[path] = handle.read()


class Uploader(HttpUser):
    wait_time = between(1, 3)

    def on_start(self):
        self.headers = {"Authorization": "Bearer " + KEY}

    @task
    def upload_and_follow(self):
        path = random.choice(FILES)
        body = BODIES[path]
        content_type = CONTENT_TYPES.get(os.path.splitext(path)[1],
                                         "application/octet-stream")
        created = self.client.post(
            "/v1/uploads", name="POST /v1/uploads", headers=self.headers,
            json={"filename": os.path.basename(path),
                  "size_bytes": len(body), "content_type": content_type})
        if created.status_code != 201:
            return
        ticket = created.json()
        put = self.client.request(ticket.get("method", "PUT"), ticket["url"],
                                  name="PUT /v1/objects/{key}",
                                  headers=ticket["headers"], data=body)
        if put.status_code != 200:
            return
        done = self.client.post(
            "/v1/uploads/%s/complete" % ticket["upload_id"],
            name="POST /v1/uploads/{id}/complete", headers=self.headers)
        if done.status_code != 200:
            return
        self.follow_events(done.json()["job_id"])

    def follow_events(self, job_id):
        """Reads the event stream; reports the time to the first event
        and, when the job ends within the timeout, to the end event."""
        start = time.perf_counter()
        first = None
        ended = False
        with self.client.get("/v1/jobs/%s/events" % job_id, stream=True,
                             name="GET /v1/jobs/{id}/events (first event)",
                             headers=self.headers, catch_response=True,
                             timeout=EVENTS_TIMEOUT_S + 5) as response:
            if response.status_code != 200:
                response.failure("status %d" % response.status_code)
                return
            try:
                for line in response.iter_lines(decode_unicode=True):
                    if first is None and line.startswith("data:"):
                        first = time.perf_counter() - start
                    if line == "event: end":
                        ended = True
                        break
                    if time.perf_counter() - start > EVENTS_TIMEOUT_S:
                        break
            except Exception as failure:  # a reset stream is a failure
                response.failure(str(failure))
                return
            if first is None:
                response.failure("no event within %d s" % EVENTS_TIMEOUT_S)
            else:
                response.success()
        if ended:
            events.request.fire(request_type="SSE",
                                name="job end event after upload",
                                response_time=(time.perf_counter() - start)
                                * 1000, response_length=0, exception=None,
                                context={})
