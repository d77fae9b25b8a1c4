"""Test the example under a real gunicorn (gthread) process and worker
process on loopback, driven with urllib."""

import json
import os
import urllib.error
import urllib.request

import pytest

import stack

pytest.importorskip("gunicorn", reason="Debian's gunicorn package is missing")

OWNER = {"X-Owner": "alice"}


def _request(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    return urllib.request.urlopen(request, timeout=30)


def _json(method, url, document=None, headers=None):
    body = None if document is None else json.dumps(document).encode()
    merged = {"Content-Type": "application/json", **OWNER, **(headers or {})}
    with _request(method, url, body, merged) as reply:
        return reply.status, json.loads(reply.read() or b"null")


@pytest.fixture
def base_url(tmp_path):
    with stack.running_stack(str(tmp_path), str(tmp_path / "stack.log")) as url:
        yield url


def test_gunicorn_upload_to_ready(base_url, case):
    path = case("case-19.wav")
    size = os.path.getsize(path)

    with _request("GET", base_url + "/healthz") as reply:
        assert reply.status == 200

    status, ticket = _json(
        "POST",
        base_url + "/api/uploads",
        {"filename": "tone.wav", "size_bytes": size, "content_type": "audio/wav"},
    )
    assert status == 201
    assert ticket["url"].startswith(base_url + "/v1/objects/")

    with open(path, "rb") as file:
        with _request(
            "PUT",
            ticket["url"],
            file.read(),
            {"Content-Type": ticket["headers"]["Content-Type"]},
        ) as reply:
            assert reply.status == 200

    status, asset = _json(
        "POST", f"{base_url}/api/uploads/{ticket['upload_id']}/complete"
    )
    assert status == 201

    states = []
    with _request(
        "GET", f"{base_url}/api/jobs/{asset['job_id']}/events", headers=OWNER
    ) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["X-Accel-Buffering"] == "no"
        for raw_line in stream:
            line = raw_line.decode().strip()
            if line.startswith("data: "):
                event = json.loads(line[len("data: "):])
                states.append(event["state"])
    assert states[-1] == "succeeded"

    _, ready = _json("GET", f"{base_url}/api/assets/{asset['id']}")
    assert ready["status"] == "ready"
    loudness = ready["analysis"]["analysis"]["integrated_lufs"]
    assert loudness == pytest.approx(-26.0, abs=0.1)
    assert ready["analysis"]["media"]["duration"] == pytest.approx(10.0, abs=0.001)

    with pytest.raises(urllib.error.HTTPError) as raised:
        _json("GET", f"{base_url}/api/assets/{asset['id']}", headers={"X-Owner": "bob"})
    assert raised.value.code == 404
