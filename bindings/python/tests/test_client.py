"""Tests of audiopipe.Client on a temporary SQLite metadata store and file
object store: the upload flow, assets, paging, jobs and object requests."""

import io
import os
import urllib.parse

import pytest

import audiopipe

SECRET = "s" * 48
BASE_URL = "http://localhost:8000"


@pytest.fixture
def client(tmp_path):
    settings = {
        "metadata.uri": f"sqlite://{tmp_path}/meta.db",
        "objects.uri": f"file://{tmp_path}/objects",
        "signing.secret": SECRET,
        "public.base_url": BASE_URL,
    }
    with audiopipe.Client(settings, use_environment=False) as opened:
        yield opened


def _upload(client, path, owner="alice", content_type="audio/mpeg"):
    """Run create, PUT (through verify and put) and complete."""
    size = os.path.getsize(path)
    ticket = client.create_upload(owner, os.path.basename(path), size, content_type)
    url = urllib.parse.urlsplit(ticket.url)
    verified = client.verify_object_request(
        method="PUT",
        host=url.netloc,
        path=url.path,
        query=dict(urllib.parse.parse_qsl(url.query)),
        content_type=ticket.headers["Content-Type"],
        content_length=size,
    )
    with open(path, "rb") as file:
        client.put_object(verified.key, file, verified.signed_length, content_type)
    return ticket, client.complete_upload(owner, ticket.upload_id)


def test_upload_flow_creates_asset(client, case):
    ticket, asset = _upload(client, case("case-03.mp3"))
    assert ticket.method == "PUT"
    assert ticket.url.startswith(BASE_URL + "/v1/objects/")
    assert ticket.headers["Content-Length"] == str(os.path.getsize(case("case-03.mp3")))
    assert ticket.expires_at > 0
    assert asset.status == "pending"
    assert asset.owner == "alice"
    assert asset.object_key == ticket.object_key
    assert asset.probe["duration"] == pytest.approx(5.0, abs=0.0005)
    assert asset.job_id


def test_complete_twice_returns_same_asset(client, case):
    ticket, asset = _upload(client, case("case-03.mp3"))
    again = client.complete_upload("alice", ticket.upload_id)
    assert again.id == asset.id
    assert again.job_id == asset.job_id


def test_complete_without_put(client):
    ticket = client.create_upload("alice", "a.mp3", 1000, "audio/mpeg")
    with pytest.raises(audiopipe.ObjectMissingError):
        client.complete_upload("alice", ticket.upload_id)


def test_complete_multipart_rejected(client, case):
    with pytest.raises(audiopipe.MultipartBodyError):
        _upload(client, case("case-22.wav"), content_type="audio/wav")


def test_create_upload_rejects_filename(client):
    with pytest.raises(audiopipe.InvalidFilenameError) as raised:
        client.create_upload("alice", "../etc/passwd", 10, "audio/mpeg")
    assert raised.value.message.startswith("filename")


def test_other_owner_gets_not_found(client, case):
    _, asset = _upload(client, case("case-03.mp3"))
    with pytest.raises(audiopipe.NotFoundError):
        client.get_asset("mallory", asset.id)
    with pytest.raises(audiopipe.NotFoundError):
        client.get_job("mallory", asset.job_id)
    with pytest.raises(audiopipe.NotFoundError):
        client.delete_asset("mallory", asset.id)


def test_list_assets_pages(client, case):
    ids = [_upload(client, case("case-03.mp3"))[1].id for _ in range(3)]
    pages = list(client.list_assets("alice", limit=2))
    assert len(pages) == 2
    assert len(pages[0].assets) == 2
    assert pages[0].next_cursor
    assert len(pages[1].assets) == 1
    assert pages[1].next_cursor is None
    listed = [asset.id for page in pages for asset in page.assets]
    assert sorted(listed) == sorted(ids)
    assert list(client.list_assets("bob"))[0].assets == ()


def test_delete_asset(client, case):
    _, asset = _upload(client, case("case-03.mp3"))
    client.delete_asset("alice", asset.id)
    with pytest.raises(audiopipe.NotFoundError):
        client.get_asset("alice", asset.id)
    with pytest.raises(audiopipe.NotFoundError):
        client.stat_object(asset.object_key)


def test_job_claim_progress_complete(client, case):
    _, asset = _upload(client, case("case-03.mp3"))
    job = client.claim_job("worker-1", 60_000, ["process_asset"])
    assert job is not None
    assert job.id == asset.job_id
    assert job.claim_token
    assert client.claim_job("worker-2", 60_000, ["process_asset"]) is None

    events = client.iter_job_events("alice", job.id, poll_timeout_ms=100)
    first = next(events)
    assert first.state == "running"
    client.report_job_progress(job, 0.5, "decode")
    second = next(events)
    assert second.fraction == pytest.approx(0.5)
    assert second.stage == "decode"
    client.complete_job(job, {"done": True})
    last = next(events)
    assert last.state == "succeeded"
    assert last.terminal
    assert list(events) == []
    snapshot = client.get_job("alice", job.id)
    assert snapshot.state == "succeeded"
    assert snapshot.result == {"done": True}
    assert snapshot.claim_token is None


def test_job_watch_yields_timeouts(client):
    job = client.enqueue("other_kind", owner="alice", payload={"n": 1})
    events = client.iter_job_events(
        "alice", job.id, poll_timeout_ms=50, yield_timeouts=True
    )
    assert next(events).state == "queued"
    assert next(events) is None
    events.close()


def test_enqueue_idempotent(client):
    first = client.enqueue("other_kind", idempotency_key="k-1", payload=[1, 2])
    second = client.enqueue("other_kind", idempotency_key="k-1")
    assert first.id == second.id
    assert first.payload == [1, 2]


def test_fail_job_not_retryable(client):
    job = client.enqueue("other_kind", owner="alice")
    claimed = client.claim_job("worker-1", 60_000, ["other_kind"])
    client.fail_job(claimed, audiopipe.NotAudioError.code, "not audio", retryable=False)
    snapshot = client.get_job("alice", job.id)
    assert snapshot.state == "failed"
    assert snapshot.error_code == "not_audio"


def test_lease_lost_after_cancel(client):
    job = client.enqueue("other_kind", owner="alice")
    claimed = client.claim_job("worker-1", 60_000, ["other_kind"])
    client.cancel_job("alice", job.id)
    with pytest.raises(audiopipe.LeaseLostError):
        client.heartbeat_job(claimed, 60_000)


def test_signed_put_tampered(client):
    ticket = client.create_upload("alice", "a.mp3", 1000, "audio/mpeg")
    url = urllib.parse.urlsplit(ticket.url)
    query = dict(urllib.parse.parse_qsl(url.query))
    with pytest.raises(audiopipe.SignatureError):
        client.verify_object_request(
            method="PUT",
            host=url.netloc,
            path=url.path,
            query=query,
            content_type="audio/x-wav",
            content_length=1000,
        )
    with pytest.raises(audiopipe.SignatureError):
        client.verify_object_request(
            method="PUT",
            host="127.0.0.1:8000",
            path=url.path,
            query=query,
            content_type="audio/mpeg",
            content_length=1000,
        )


def test_put_object_short_body(client):
    with pytest.raises(audiopipe.SizeMismatchError):
        client.put_object("test/short", io.BytesIO(b"abc"), 10, "audio/mpeg")
    with pytest.raises(audiopipe.NotFoundError):
        client.stat_object("test/short")


def test_object_round_trip(client):
    body = os.urandom(200_000)
    client.put_object("test/blob", io.BytesIO(body), len(body), "audio/ogg")
    stored = client.stat_object("test/blob")
    assert stored.size == len(body)
    assert stored.content_type == "audio/ogg"
    assert client.read_object("test/blob") == body


def test_unknown_config_key(tmp_path):
    with pytest.raises(audiopipe.InvalidConfigError) as raised:
        audiopipe.Client({"metadata.urll": "x"}, use_environment=False)
    assert "metadata.urll" in raised.value.message


def test_short_secret_rejected(tmp_path):
    with pytest.raises(audiopipe.InvalidConfigError):
        audiopipe.Client(
            {
                "metadata.uri": f"sqlite://{tmp_path}/m.db",
                "objects.uri": f"file://{tmp_path}/o",
                "signing.secret": "short",
            },
            use_environment=False,
        )


def test_environment_config(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOPIPE_METADATA_URI", f"sqlite://{tmp_path}/env.db")
    monkeypatch.setenv("AUDIOPIPE_OBJECTS_URI", f"file://{tmp_path}/env-objects")
    monkeypatch.setenv("AUDIOPIPE_SIGNING_SECRET", SECRET)
    with audiopipe.Client() as opened:
        opened.check_ready()
        assert opened.config_value("metadata.uri") == f"sqlite://{tmp_path}/env.db"
    assert (tmp_path / "env.db").exists()


def test_closed_client_raises(tmp_path):
    opened = audiopipe.Client(
        {
            "metadata.uri": f"sqlite://{tmp_path}/m.db",
            "objects.uri": f"file://{tmp_path}/o",
            "signing.secret": SECRET,
        },
        use_environment=False,
    )
    opened.close()
    opened.close()
    with pytest.raises(ValueError):
        opened.get_asset("alice", "X")
