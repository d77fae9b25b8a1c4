"""Example Flask app that hands uploads, assets and jobs to libaudiopipe.

The app never processes audio in a request. The flow is:

1. POST /api/uploads returns a presigned PUT URL (audiopipe.Client).
2. The browser PUTs the file to /v1/objects/<key>, which this app serves
   by verifying the signature and streaming the body into the file object
   store, both through the bindings.
3. POST /api/uploads/<id>/complete validates the bytes and creates the
   asset and its processing job.
4. A separate worker process (worker.py) claims the job, and the page
   follows it through GET /api/jobs/<id>/events (server-sent events).

Owners: the example trusts an X-Owner header or an "owner" cookie (the
page keeps a random id in that cookie, which EventSource sends too).
NOTE: a real deployment takes the owner from its own session or token.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Iterator, Mapping, Optional

from flask import Flask, Response, abort, jsonify, render_template, request

import audiopipe
from audiopipe import AudiopipeError

import observability

# HTTP statuses for the error codes a client can cause; every other code
# is a server-side failure (500, or 503 when retrying may help).
_STATUS_BY_CODE = {
    "invalid_argument": 400,
    "invalid_filename": 400,
    "content_type_not_allowed": 415,
    "upload_too_large": 413,
    "size_mismatch": 400,
    "not_found": 404,
    "signature_mismatch": 403,
    "expired": 403,
    "object_missing": 409,
    "upload_state": 409,
    "conflict": 409,
    "job_state": 409,
    "empty_input": 422,
    "not_audio": 422,
    "multipart_body": 422,
    "unsupported_codec": 422,
    "unsupported_channel_count": 422,
    "unsupported_sample_rate": 422,
    "input_too_large": 413,
    "duration_limit": 422,
    "corrupt_input": 422,
    "format_mismatch": 422,
    "infected": 422,
    "rate_limited": 429,
    "unavailable": 503,
    "timed_out": 503,
}

# Server-sent events: a comment line at least this often keeps proxies and
# browsers from closing an idle stream.
SSE_HEARTBEAT_MS = 15000

log = logging.getLogger("audiopipe_example")


def _client_settings(overrides: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Read the example's defaults for a local run, then `overrides`."""
    data_dir = os.environ.get("APP_DATA_DIR", os.path.abspath("app-data"))
    settings: Dict[str, Any] = {}
    if "AUDIOPIPE_METADATA_URI" not in os.environ:
        settings["metadata.uri"] = f"sqlite://{data_dir}/meta.db"
    if "AUDIOPIPE_OBJECTS_URI" not in os.environ:
        settings["objects.uri"] = f"file://{data_dir}/objects"
    settings.update(overrides or {})
    return settings


def _owner() -> str:
    """Return the request's owner, or abort with 401 when there is none."""
    owner = request.headers.get("X-Owner") or request.cookies.get("owner") or ""
    owner = owner.strip()
    if not owner:
        abort(401, description="the X-Owner header or owner cookie is missing")
    return owner


def _error_response(error: AudiopipeError) -> Response:
    """Turn a library error into a JSON error body and status."""
    status = _STATUS_BY_CODE.get(error.name, 500)
    if status >= 500:
        log.error(
            "request_failed code=%s domain=%s path=%s message=%s",
            error.name,
            error.domain,
            request.path,
            error.message,
        )
    response = jsonify(
        {"error": {"code": error.name, "message": error.message}}
    )
    response.status_code = status
    return response


def _sse(event: str, data: Mapping[str, Any]) -> str:
    """Format one server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def create_app(
    config: Optional[Mapping[str, Any]] = None,
    *,
    client: Optional[audiopipe.Client] = None,
) -> Flask:
    """Build the app.

    ``config`` contains libaudiopipe configuration keys (for example
    ``{"public.base_url": "http://127.0.0.1:8000"}``) on top of the
    AUDIOPIPE_* environment; ``client`` replaces the Client entirely
    (tests share one between the app and an in-process worker).
    """
    app = Flask(__name__)
    observability.init_sentry()

    if client is None:
        client = audiopipe.Client(_client_settings(config))
    app.extensions["audiopipe"] = client

    app.register_error_handler(AudiopipeError, _error_response)

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/healthz")
    def healthz() -> Response:
        # Liveness only: no backend access, so a slow database never gets
        # the process killed.
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        client.check_ready()
        return jsonify({"status": "ready"})

    @app.post("/api/uploads")
    def create_upload() -> Any:
        body = request.get_json(silent=True) or {}
        try:
            size_bytes = int(body.get("size_bytes", 0))
        except (TypeError, ValueError):
            size_bytes = 0
        ticket = client.create_upload(
            _owner(),
            str(body.get("filename", "")),
            size_bytes,
            str(body.get("content_type", "")),
        )
        return (
            jsonify(
                {
                    "upload_id": ticket.upload_id,
                    "method": ticket.method,
                    "url": ticket.url,
                    "headers": ticket.headers,
                    "expires_at_ms": ticket.expires_at,
                }
            ),
            201,
        )

    @app.post("/api/uploads/<upload_id>/complete")
    def complete_upload(upload_id: str) -> Any:
        asset = client.complete_upload(_owner(), upload_id)
        return jsonify(asset.raw), 201

    # Signed object URLs. request.path is already percent-decoded, which is
    # the form ap_signed_request_verify expects; the key comes from the
    # verified signature, not from the route.
    @app.put("/v1/objects/<path:key>")
    def put_object(key: str) -> Any:
        verified = client.verify_object_request(
            method="PUT",
            host=request.host,
            path=request.path,
            query=request.args.to_dict(),
            content_type=request.headers.get("Content-Type"),
            content_length=request.content_length,
        )
        client.put_object(
            verified.key,
            request.stream,
            verified.signed_length,
            request.headers.get("Content-Type"),
        )
        return "", 200

    @app.get("/v1/objects/<path:key>")
    def get_object(key: str) -> Any:
        verified = client.verify_object_request(
            method="GET",
            host=request.host,
            path=request.path,
            query=request.args.to_dict(),
        )
        stored = client.stat_object(verified.key)
        return Response(
            client.iter_object(verified.key),
            content_type=stored.content_type or "application/octet-stream",
            headers={"Content-Length": str(stored.size)},
        )

    @app.get("/api/assets")
    def list_assets() -> Any:
        limit = request.args.get("limit", default=20, type=int)
        page = next(
            client.list_assets(_owner(), request.args.get("cursor"), limit)
        )
        return jsonify(
            {
                "assets": [asset.raw for asset in page.assets],
                "next_cursor": page.next_cursor,
            }
        )

    @app.get("/api/assets/<asset_id>")
    def get_asset(asset_id: str) -> Any:
        return jsonify(client.get_asset(_owner(), asset_id).raw)

    @app.delete("/api/assets/<asset_id>")
    def delete_asset(asset_id: str) -> Any:
        client.delete_asset(_owner(), asset_id)
        return "", 204

    @app.get("/api/assets/<asset_id>/waveform")
    def get_waveform(asset_id: str) -> Any:
        asset = client.get_asset(_owner(), asset_id)
        record = asset.waveforms.get("peaks_16bit")
        if not record:
            abort(404, description="the asset has no waveform yet")
        dat = client.read_object(record["key"])
        return jsonify(audiopipe.waveform_dat_to_json(dat))

    @app.get("/api/jobs/<job_id>")
    def get_job(job_id: str) -> Any:
        return jsonify(client.get_job(_owner(), job_id).raw)

    @app.get("/api/jobs/<job_id>/events")
    def job_events(job_id: str) -> Response:
        owner = _owner()
        # Open the watch before the response starts, so a missing job is
        # a 404 rather than an empty stream.
        events = client.iter_job_events(
            owner, job_id, poll_timeout_ms=SSE_HEARTBEAT_MS, yield_timeouts=True
        )
        first = next(events)

        def stream() -> Iterator[str]:
            pending = [first]
            try:
                while True:
                    event = pending.pop() if pending else next(events, False)
                    if event is False:
                        return
                    if event is None:
                        yield ": heartbeat\n\n"
                        continue
                    yield _sse(
                        "progress",
                        {
                            "state": event.state,
                            "fraction": event.fraction,
                            "stage": event.stage,
                            "attempts": event.attempts,
                            "error_code": event.error_code,
                        },
                    )
                    if event.terminal:
                        return
            finally:
                events.close()

        return Response(
            stream(),
            mimetype="text/event-stream",
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            },
        )

    @app.errorhandler(401)
    @app.errorhandler(404)
    def http_error(error: Any) -> Any:
        return (
            jsonify(
                {"error": {"code": error.name.lower().replace(" ", "_"),
                           "message": error.description}}
            ),
            error.code,
        )

    return app
