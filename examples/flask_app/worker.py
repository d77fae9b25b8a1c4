"""Example background worker: processes uploaded assets through the
bindings' job API.

This is an example of the job protocol, run beside gunicorn:

    python3 worker.py

It claims one process_asset job at a time and copies the original to a
temporary file. It runs audiopipe.analyze (loudness, a 16-bit .dat
waveform and an Opus rendition) while reporting progress to the job.
Then it stores the outputs in the object store and marks the asset
ready. A failure marks
the asset failed and reports the job failed (retried when the error is
retryable). Run as many worker processes as there are cores to spare.

NOTE: the tree has no audiopipe-worker binary yet; when it has one,
deploy that instead of this loop.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import threading
import time
from typing import Optional

import audiopipe
from audiopipe import AudiopipeError

import observability

JOB_KIND = "process_asset"
LEASE_MS = 120_000
# Progress is written to the job row at most this often, in seconds.
PROGRESS_INTERVAL_SECONDS = 0.25
IDLE_SLEEP_SECONDS = 0.2
# ap_error_code_t AP_ERR_INTERNAL, for failures outside libaudiopipe.
INTERNAL_ERROR_CODE = audiopipe.InternalError.code

log = logging.getLogger("audiopipe_example.worker")


class LeaseKeeper:
    """Heartbeats a claimed job from a side thread until stopped."""

    def __init__(self, client: audiopipe.Client, job: audiopipe.Job) -> None:
        self.client = client
        self.job = job
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(LEASE_MS / 3000):
            try:
                self.client.heartbeat_job(self.job, LEASE_MS)
            except audiopipe.LeaseLostError:
                self.lost.set()
                return
            except AudiopipeError as error:
                log.warning("heartbeat_failed job_id=%s error=%s", self.job.id, error)


def _process(client: audiopipe.Client, job: audiopipe.Job, keeper: LeaseKeeper) -> None:
    """Process one claimed job's asset and record its outputs."""
    asset = client.get_asset(None, job.asset_id or "")
    client.set_asset_status(asset.id, "processing")
    last_report = [0.0]

    def progress(fraction: float, stage: str) -> None:
        if keeper.lost.is_set():
            raise audiopipe.LeaseLostError("the job's lease was lost")
        now = time.monotonic()
        if fraction < 1.0 and now - last_report[0] < PROGRESS_INTERVAL_SECONDS:
            return
        last_report[0] = now
        client.report_job_progress(job, fraction, stage)

    with tempfile.TemporaryDirectory(prefix="audiopipe-worker-") as directory:
        original = os.path.join(directory, "original")
        with open(original, "wb") as file:
            for chunk in client.iter_object(asset.object_key or ""):
                file.write(chunk)
        waveform_path = os.path.join(directory, "peaks_16bit.dat")
        opus_path = os.path.join(directory, "opus_64k.opus")

        result = audiopipe.analyze(
            original,
            waveform=audiopipe.Waveform(
                format="dat", bits=16, pixels_per_second=100, path=waveform_path
            ),
            renditions=[
                audiopipe.Rendition("opus", bitrate=64000, path=opus_path)
            ],
            progress=progress,
        )

        prefix = f"derived/{asset.id}"
        waveform_key = f"{prefix}/peaks_16bit.dat"
        with open(waveform_path, "rb") as file:
            size = os.path.getsize(waveform_path)
            client.put_object(waveform_key, file, size, "application/octet-stream")
        client.put_asset_waveform(asset.id, "peaks_16bit", waveform_key, size)

        rendition = result.renditions[0]
        opus_key = f"{prefix}/{rendition.name}.opus"
        with open(opus_path, "rb") as file:
            client.put_object(opus_key, file, rendition.bytes, "audio/ogg")
        client.put_asset_rendition(
            asset.id, rendition.name, opus_key, "audio/ogg", rendition.bytes
        )

    client.set_asset_analysis(asset.id, result.raw)
    client.set_asset_status(asset.id, "ready")
    client.complete_job(job, {"asset_id": asset.id})


def run_once(client: audiopipe.Client, worker_id: str) -> Optional[audiopipe.Job]:
    """Claim and process one due job; return it, or None when none was due."""
    job = client.claim_job(worker_id, LEASE_MS, [JOB_KIND])
    if job is None:
        return None
    log.info("job_started job_id=%s asset_id=%s", job.id, job.asset_id)
    with LeaseKeeper(client, job) as keeper:
        try:
            _process(client, job, keeper)
        except audiopipe.LeaseLostError:
            log.warning("job_lease_lost job_id=%s", job.id)
            return job
        except AudiopipeError as error:
            log.error(
                "job_failed job_id=%s asset_id=%s code=%s message=%s",
                job.id,
                job.asset_id,
                error.name,
                error.message,
            )
            try:
                client.set_asset_status(
                    job.asset_id or "", "failed", error.code, error.message
                )
                client.fail_job(job, error.code, error.message, retryable=True)
            except AudiopipeError as report_error:
                log.error(
                    "job_report_failed job_id=%s error=%s", job.id, report_error
                )
            return job
        except Exception as error:  # noqa: BLE001 - reported, then kept
            log.exception("job_crashed job_id=%s", job.id)
            try:
                client.set_asset_status(
                    job.asset_id or "", "failed", INTERNAL_ERROR_CODE, str(error)
                )
                client.fail_job(job, INTERNAL_ERROR_CODE, str(error), retryable=False)
            except AudiopipeError as report_error:
                log.error(
                    "job_report_failed job_id=%s error=%s", job.id, report_error
                )
            return job
    log.info("job_succeeded job_id=%s", job.id)
    return job


def main() -> None:
    """Process jobs until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    observability.init_sentry()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    from app import _client_settings

    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    with audiopipe.Client(_client_settings(None)) as client:
        log.info("worker_started worker_id=%s", worker_id)
        while not stopping.is_set():
            if run_once(client, worker_id) is None:
                stopping.wait(IDLE_SLEEP_SECONDS)
        log.info("worker_stopped worker_id=%s", worker_id)


if __name__ == "__main__":
    main()
