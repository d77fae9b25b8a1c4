"""Tests of the example Flask app through its test client, with the
example worker run in-process, and of its Sentry wiring."""

import inspect
import os
import urllib.parse

import pytest

import audiopipe
import observability
import worker

ALICE = {"X-Owner": "alice"}


def _upload(http, path, content_type="audio/mpeg", owner=ALICE):
    """Create an upload, PUT the file to its URL and complete it."""
    size = os.path.getsize(path)
    response = http.post(
        "/api/uploads",
        json={
            "filename": os.path.basename(path),
            "size_bytes": size,
            "content_type": content_type,
        },
        headers=owner,
    )
    assert response.status_code == 201, response.get_json()
    ticket = response.get_json()
    url = urllib.parse.urlsplit(ticket["url"])
    with open(path, "rb") as file:
        put = http.put(
            url.path + "?" + url.query,
            data=file.read(),
            headers={"Content-Type": ticket["headers"]["Content-Type"]},
        )
    assert put.status_code == 200, put.get_data(as_text=True)
    return ticket, http.post(
        f"/api/uploads/{ticket['upload_id']}/complete", headers=owner
    )


def test_healthz_without_backend(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz(app):
    assert app.test_client().get("/readyz").status_code == 200


def test_index_page(app):
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert b'id="drop-zone"' in response.data


def test_upload_flow_end_to_end(app, client, case):
    http = app.test_client()
    _, completed = _upload(http, case("case-03.mp3"))
    assert completed.status_code == 201
    asset = completed.get_json()
    assert asset["status"] == "pending"

    processed = worker.run_once(client, "test-worker")
    assert processed is not None
    assert processed.id == asset["job_id"]
    assert worker.run_once(client, "test-worker") is None

    ready = http.get(f"/api/assets/{asset['id']}", headers=ALICE).get_json()
    assert ready["status"] == "ready"
    assert ready["analysis"]["media"]["duration"] == pytest.approx(5.0, abs=0.001)
    assert "opus_64k" in ready["renditions"]

    job = http.get(f"/api/jobs/{asset['job_id']}", headers=ALICE).get_json()
    assert job["state"] == "succeeded"

    events = http.get(f"/api/jobs/{asset['job_id']}/events", headers=ALICE)
    assert events.mimetype == "text/event-stream"
    assert events.headers["Cache-Control"] == "no-cache"
    body = events.get_data(as_text=True)
    assert "event: progress" in body
    assert '"state": "succeeded"' in body

    waveform = http.get(f"/api/assets/{asset['id']}/waveform", headers=ALICE)
    assert waveform.status_code == 200
    peaks = waveform.get_json()
    assert peaks["bits"] == 16
    assert peaks["length"] == pytest.approx(500, abs=2)

    listed = http.get("/api/assets", headers=ALICE).get_json()
    assert [item["id"] for item in listed["assets"]] == [asset["id"]]


def test_other_owner_gets_404(app, case):
    http = app.test_client()
    ticket, completed = _upload(http, case("case-03.mp3"))
    asset = completed.get_json()
    mallory = {"X-Owner": "mallory"}
    assert http.get(f"/api/assets/{asset['id']}", headers=mallory).status_code == 404
    assert http.get(f"/api/jobs/{asset['job_id']}", headers=mallory).status_code == 404
    events = http.get(f"/api/jobs/{asset['job_id']}/events", headers=mallory)
    assert events.status_code == 404
    assert http.delete(f"/api/assets/{asset['id']}", headers=mallory).status_code == 404
    complete = http.post(
        f"/api/uploads/{ticket['upload_id']}/complete", headers=mallory
    )
    assert complete.status_code == 404
    assert http.get(f"/api/assets/{asset['id']}", headers=ALICE).status_code == 200


def test_owner_required(app):
    response = app.test_client().get("/api/assets")
    assert response.status_code == 401


def test_owner_from_cookie(app):
    http = app.test_client()
    # Werkzeug 2.2 (Debian 12) takes the server name first; 2.3 dropped it.
    if "server_name" in inspect.signature(http.set_cookie).parameters:
        http.set_cookie("localhost", "owner", "alice")
    else:
        http.set_cookie("owner", "alice")
    assert http.get("/api/assets").status_code == 200


def test_multipart_body_rejected(app, case):
    _, completed = _upload(app.test_client(), case("case-22.wav"), "audio/wav")
    assert completed.status_code == 422
    assert completed.get_json()["error"]["code"] == "multipart_body"


def test_put_with_other_content_type_forbidden(app, case):
    http = app.test_client()
    ticket = http.post(
        "/api/uploads",
        json={"filename": "a.wav", "size_bytes": 4, "content_type": "audio/wav"},
        headers=ALICE,
    ).get_json()
    url = urllib.parse.urlsplit(ticket["url"])
    put = http.put(
        url.path + "?" + url.query,
        data=b"RIFF",
        headers={"Content-Type": "audio/x-wav"},
    )
    assert put.status_code == 403
    assert put.get_json()["error"]["code"] == "signature_mismatch"


def test_invalid_upload_request(app):
    response = app.test_client().post(
        "/api/uploads",
        json={"filename": "a.mp3", "size_bytes": 10, "content_type": "text/html"},
        headers=ALICE,
    )
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "content_type_not_allowed"


def test_delete_asset(app, case):
    http = app.test_client()
    _, completed = _upload(http, case("case-03.mp3"))
    asset_id = completed.get_json()["id"]
    assert http.delete(f"/api/assets/{asset_id}", headers=ALICE).status_code == 204
    assert http.get(f"/api/assets/{asset_id}", headers=ALICE).status_code == 404


class SentryStandIn:
    """Records what init_sentry passes to sentry_sdk."""

    def __init__(self):
        self.options = None
        self.captured = []

    def init(self, **options):
        self.options = options

    def capture_exception(self, error):
        self.captured.append(error)


def _sentry_module():
    """Return sentry_sdk when Debian's python3-sentry-sdk is installed,
    else a stand-in; either way capture_exception is recorded."""
    try:
        import sentry_sdk
    except ImportError:
        return SentryStandIn(), None
    return sentry_sdk, SentryStandIn()


def test_sentry_receives_library_error(monkeypatch):
    monkeypatch.setenv("SENTRY_DSN", "http://public@127.0.0.1:9/1")
    monkeypatch.setenv("APP_RELEASE", "example@1.2.3")
    monkeypatch.setenv("APP_ENVIRONMENT", "test")
    module, recorder = _sentry_module()
    if recorder is not None:
        # The real sentry_sdk: initialise it, and record what reaches
        # capture_exception instead of sending it.
        captured = []
        monkeypatch.setattr(module, "capture_exception", captured.append)
        assert observability.init_sentry()
        client = module.Hub.current.client
        assert client.options["release"] == "example@1.2.3"
        assert client.options["environment"] == "test"
    else:
        captured = module.captured
        assert observability.init_sentry(module)
        assert module.options["release"] == "example@1.2.3"
    try:
        with pytest.raises(audiopipe.IOFailureError):
            audiopipe.probe("/proc/self/mem")
    finally:
        audiopipe.set_error_hook(None)
        if recorder is not None:
            module.init(dsn=None)
    assert len(captured) == 1
    assert isinstance(captured[0], audiopipe.IOFailureError)


def test_sentry_off_without_dsn(monkeypatch):
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    assert observability.init_sentry(SentryStandIn()) is False
