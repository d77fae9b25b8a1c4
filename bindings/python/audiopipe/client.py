"""Client: uploads, assets and jobs over one ap_context_t.

A Client opens the backends named by its configuration (metadata.uri,
objects.uri, queue.uri) once. Every thread of a process may share it,
because the C context is thread-safe. The only other mutable state, the
lazily opened object store, is guarded by a lock. Close it (or use it as a context manager) when no call is
running; __del__ closes it as a fallback.
"""

from __future__ import annotations

import ctypes
import json
import threading
from dataclasses import dataclass
from typing import (
    Any,
    BinaryIO,
    Dict,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

from audiopipe import _native
from audiopipe._native import lib
from audiopipe.errors import JobStateError, TimedOutError

_ASSET_STATUSES = {"pending": 0, "processing": 1, "ready": 2, "failed": 3}
_TERMINAL_JOB_STATES = ("succeeded", "failed", "dead", "cancelled")


@dataclass(frozen=True)
class UploadTicket:
    """A presigned upload: PUT the bytes to ``url`` with exactly
    ``headers``, before ``expires_at`` (Unix time in ms)."""

    upload_id: str
    object_key: str
    method: str
    url: str
    headers: Dict[str, str]
    expires_at: int


@dataclass(frozen=True)
class Asset:
    """An immutable snapshot of one asset, from ap_asset_to_json.

    ``probe`` and ``analysis`` are the stored JSON objects (``analysis``
    is None until processing finished); ``renditions`` and ``waveforms``
    map names to their object records. Times are Unix ms.
    """

    id: str
    owner: Optional[str]
    status: str
    filename: Optional[str]
    content_type: Optional[str]
    size_bytes: int
    object_key: Optional[str]
    job_id: Optional[str]
    probe: Optional[Dict[str, Any]]
    analysis: Optional[Dict[str, Any]]
    renditions: Dict[str, Any]
    waveforms: Dict[str, Any]
    error_code: Optional[str]
    error_message: Optional[str]
    created_at: Optional[int]
    updated_at: Optional[int]
    raw: Dict[str, Any]

    @classmethod
    def from_json(
        cls,
        document: Dict[str, Any],
        owner: Optional[str] = None,
        object_key: Optional[str] = None,
    ) -> "Asset":
        """Build an Asset from the object ap_asset_to_json writes, plus the
        owner and object key, which that JSON leaves out."""
        error = document.get("error") or {}
        if not isinstance(error, dict):
            error = {"code": error}
        return cls(
            id=document["id"],
            owner=owner,
            status=document.get("status", "unknown"),
            filename=document.get("filename"),
            content_type=document.get("content_type"),
            size_bytes=document.get("size_bytes", 0),
            object_key=object_key,
            job_id=document.get("job_id"),
            probe=document.get("probe"),
            analysis=document.get("analysis"),
            renditions=dict(document.get("renditions") or {}),
            waveforms=dict(document.get("waveforms") or {}),
            error_code=error.get("code"),
            error_message=error.get("message"),
            created_at=document.get("created_at_ms"),
            updated_at=document.get("updated_at_ms"),
            raw=document,
        )


@dataclass(frozen=True)
class AssetPage:
    """One page of an owner's assets, newest first, and the cursor of the
    next page (None on the last page)."""

    assets: Tuple[Asset, ...]
    next_cursor: Optional[str]


@dataclass(frozen=True)
class Job:
    """An immutable snapshot of one job, from ap_job_to_json.

    ``claim_token`` is set only on the snapshot claim_job returns, so the
    worker that holds the lease can report on it.
    """

    id: str
    kind: str
    state: str
    asset_id: Optional[str]
    owner: Optional[str]
    attempts: int
    max_attempts: int
    progress: float
    stage: Optional[str]
    error_code: Optional[Any]
    error_message: Optional[str]
    result: Optional[Any]
    payload: Optional[Any]
    claim_token: Optional[str]
    raw: Dict[str, Any]

    @property
    def terminal(self) -> bool:
        """Whether the job is in a state it never leaves."""
        return self.state in _TERMINAL_JOB_STATES

    @classmethod
    def from_json(
        cls,
        document: Dict[str, Any],
        claim_token: Optional[str] = None,
        owner: Optional[str] = None,
        payload: Optional[Any] = None,
    ) -> "Job":
        """Build a Job from the object ap_job_to_json writes, plus the
        fields that JSON leaves out (claim token, owner, payload)."""
        error = document.get("error") or {}
        if not isinstance(error, dict):
            error = {"code": error}
        return cls(
            id=document["id"],
            kind=document.get("kind", ""),
            state=document.get("state", "unknown"),
            asset_id=document.get("asset_id"),
            owner=owner,
            attempts=document.get("attempts", 0),
            max_attempts=document.get("max_attempts", 0),
            progress=document.get("progress", 0.0) or 0.0,
            stage=document.get("stage"),
            error_code=error.get("code"),
            error_message=error.get("message"),
            result=document.get("result"),
            payload=payload,
            claim_token=claim_token,
            raw=document,
        )


@dataclass(frozen=True)
class JobEvent:
    """One observed change of a job: state, progress fraction (0..1),
    stage, attempts, error code name (None when no error) and the time
    of the change in Unix ms."""

    state: str
    fraction: float
    stage: str
    attempts: int
    error_code: Optional[str]
    updated_at_ms: int

    @property
    def terminal(self) -> bool:
        """Whether this is the job's last event."""
        return self.state in _TERMINAL_JOB_STATES


@dataclass(frozen=True)
class VerifiedObjectRequest:
    """A signed object request that passed ap_signed_request_verify: the
    object key, and for a PUT the signed length in bytes (-1 for GET)."""

    key: str
    signed_length: int


@dataclass(frozen=True)
class StoredObject:
    """Object store record of one object: size, content type and time."""

    key: str
    size: int
    content_type: str
    last_modified_ms: int


def _config_from(
    settings: Optional[Mapping[str, Any]], use_environment: bool
) -> ctypes.c_void_p:
    """Build an ap_config_t: AUDIOPIPE_* variables first, then `settings`."""
    config = ctypes.c_void_p()
    if use_environment:
        _native.call(lib.ap_config_from_env, ctypes.byref(config))
    else:
        _native.call(lib.ap_config_new, ctypes.byref(config))
    try:
        for key, value in (settings or {}).items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            _native.call(
                lib.ap_config_set,
                config,
                str(key).encode("utf-8"),
                str(value).encode("utf-8"),
            )
    except BaseException:
        lib.ap_config_free(config)
        raise
    return config


def _asset_from_handle(handle: ctypes.c_void_p) -> Asset:
    """Serialise an ap_asset_t (not freed here) into an Asset."""
    document = json.loads(_native.json_call(lib.ap_asset_to_json, handle))
    return Asset.from_json(
        document,
        owner=_native.decode(lib.ap_asset_owner(handle)),
        object_key=_native.decode(lib.ap_asset_object_key(handle)),
    )


def _take_asset(handle: ctypes.c_void_p) -> Asset:
    """Serialise and free an ap_asset_t."""
    try:
        return _asset_from_handle(handle)
    finally:
        lib.ap_asset_free(handle)


def _take_job(handle: ctypes.c_void_p) -> Job:
    """Serialise and free an ap_job_t, keeping its claim token if any."""
    try:
        token = _native.decode(lib.ap_job_claim_token(handle))
        payload_text = _native.decode(lib.ap_job_payload_json(handle))
        text = _native.json_call(lib.ap_job_to_json, handle)
        return Job.from_json(
            json.loads(text),
            claim_token=token,
            owner=_native.decode(lib.ap_job_owner(handle)),
            payload=None if payload_text is None else json.loads(payload_text),
        )
    finally:
        lib.ap_job_free(handle)


class ObjectUpload:
    """A streaming write of one object, committed by finish().

    Closing it without finish() abandons it: nothing is committed. Used
    by one thread at a time.
    """

    def __init__(self, handle: ctypes.c_void_p) -> None:
        self._handle: Optional[ctypes.c_void_p] = handle

    def write(self, data: bytes) -> None:
        """Append body bytes; raises UploadTooLargeError past the length."""
        _native.call(lib.ap_object_upload_write, self._live(), data, len(data))

    @property
    def received(self) -> int:
        """Body bytes accepted so far."""
        return int(lib.ap_object_upload_received(self._live()))

    def finish(self) -> None:
        """Commit the object; SizeMismatchError when bytes are missing."""
        _native.call(lib.ap_object_upload_finish, self._live())

    def close(self) -> None:
        """Release the upload, abandoning it unless it was finished."""
        if self._handle is not None:
            lib.ap_object_upload_close(self._handle)
            self._handle = None

    def _live(self) -> ctypes.c_void_p:
        if self._handle is None:
            raise ValueError("the object upload is closed")
        return self._handle

    def __enter__(self) -> "ObjectUpload":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class Client:
    """Uploads, assets and jobs on the backends of one configuration.

    ``config`` maps C configuration keys to values, for example
    ``{"metadata.uri": "sqlite:///var/lib/app/meta.db",
    "objects.uri": "file:///var/lib/app/objects",
    "signing.secret": "...", "public.base_url": "https://media.example"}``.
    AUDIOPIPE_* environment variables are read first (``metadata.uri`` is
    AUDIOPIPE_METADATA_URI) unless ``use_environment`` is False, and the
    dict overrides them. Raises InvalidConfigError for an unknown key or
    a bad value.
    """

    def __init__(
        self,
        config: Optional[Mapping[str, Any]] = None,
        *,
        use_environment: bool = True,
    ) -> None:
        self._config: Optional[ctypes.c_void_p] = None
        self._context: Optional[ctypes.c_void_p] = None
        self._store: Optional[ctypes.c_void_p] = None
        self._store_lock = threading.Lock()

        self._config = _config_from(config, use_environment)
        context = ctypes.c_void_p()
        try:
            _native.call(lib.ap_context_open, self._config, ctypes.byref(context))
        except BaseException:
            lib.ap_config_free(self._config)
            self._config = None
            raise
        self._context = context

    # Lifetime.

    def close(self) -> None:
        """Close the object store, the backends and the configuration.

        Call it only when no other call on this Client is running.
        """
        if self._store is not None:
            lib.ap_object_store_close(self._store)
            self._store = None
        if self._context is not None:
            lib.ap_context_close(self._context)
            self._context = None
        if self._config is not None:
            lib.ap_config_free(self._config)
            self._config = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _live(self) -> ctypes.c_void_p:
        if self._context is None:
            raise ValueError("the Client is closed")
        return self._context

    def config_value(self, key: str) -> Optional[str]:
        """Return a configuration value (set, else the default)."""
        if self._config is None:
            raise ValueError("the Client is closed")
        return _native.decode(lib.ap_config_get(self._config, key.encode("utf-8")))

    def check_ready(self) -> None:
        """Run a trivial query on each backend; raises UnavailableError
        naming the backend that failed."""
        _native.call(lib.ap_context_check_ready, self._live())

    # Uploads.

    def create_upload(
        self, owner: str, filename: str, size_bytes: int, content_type: str
    ) -> UploadTicket:
        """Validate an upload request and return its presigned PUT.

        Raises InvalidFilenameError, UploadTooLargeError,
        ContentTypeError or InvalidArgumentError naming the field.
        """
        request = _native.UploadRequestStruct()
        lib.ap_upload_request_init(ctypes.byref(request))
        request.owner = owner.encode("utf-8")
        request.filename = filename.encode("utf-8")
        request.size_bytes = int(size_bytes)
        request.content_type = content_type.encode("utf-8")

        ticket = ctypes.c_void_p()
        _native.call(
            lib.ap_upload_create,
            self._live(),
            ctypes.byref(request),
            ctypes.byref(ticket),
        )
        try:
            document = json.loads(
                _native.json_call(lib.ap_upload_ticket_to_json, ticket)
            )
            object_key = _native.decode(lib.ap_upload_ticket_object_key(ticket))
        finally:
            lib.ap_upload_ticket_free(ticket)
        headers = document.get("headers") or {}
        if isinstance(headers, list):
            headers = {item["name"]: item["value"] for item in headers}
        return UploadTicket(
            upload_id=document["upload_id"],
            object_key=object_key or "",
            method=document.get("method", "PUT"),
            url=document["url"],
            headers=dict(headers),
            expires_at=document.get("expires_at_ms", 0),
        )

    def complete_upload(self, owner: str, upload_id: str) -> Asset:
        """Validate what arrived and create the asset and its job.

        Raises ObjectMissingError when nothing was uploaded yet, and the
        media errors (NotAudioError, MultipartBodyError, ...) when the
        bytes are rejected.
        """
        asset = ctypes.c_void_p()
        _native.call(
            lib.ap_upload_complete,
            self._live(),
            owner.encode("utf-8"),
            upload_id.encode("utf-8"),
            ctypes.byref(asset),
        )
        return _take_asset(asset)

    # Assets.

    def get_asset(self, owner: Optional[str], asset_id: str) -> Asset:
        """Read an asset; NotFoundError for another owner's asset too.

        ``owner`` None skips the owner check (trusted workers only).
        """
        asset = ctypes.c_void_p()
        _native.call(
            lib.ap_asset_get,
            self._live(),
            _native.encode(owner),
            asset_id.encode("utf-8"),
            ctypes.byref(asset),
        )
        return _take_asset(asset)

    def list_assets_page(
        self, owner: str, cursor: Optional[str] = None, limit: int = 50
    ) -> AssetPage:
        """Read one page of an owner's assets, newest first."""
        handle = ctypes.c_void_p()
        _native.call(
            lib.ap_asset_list,
            self._live(),
            owner.encode("utf-8"),
            _native.encode(cursor),
            int(limit),
            ctypes.byref(handle),
        )
        try:
            count = lib.ap_asset_list_count(handle)
            assets = tuple(
                _asset_from_handle(ctypes.c_void_p(lib.ap_asset_list_at(handle, i)))
                for i in range(count)
            )
            next_cursor = _native.decode(lib.ap_asset_list_next_cursor(handle))
        finally:
            lib.ap_asset_list_free(handle)
        return AssetPage(assets=assets, next_cursor=next_cursor)

    def list_assets(
        self, owner: str, cursor: Optional[str] = None, limit: int = 50
    ) -> Iterator[AssetPage]:
        """Iterate over an owner's asset pages from ``cursor`` to the end.

        Each page carries the cursor of the next one, so a caller can stop
        after one page and hand the cursor to a client.
        """
        while True:
            page = self.list_assets_page(owner, cursor, limit)
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def delete_asset(self, owner: Optional[str], asset_id: str) -> None:
        """Delete an asset, its jobs and its objects."""
        _native.call(
            lib.ap_asset_delete,
            self._live(),
            _native.encode(owner),
            asset_id.encode("utf-8"),
        )

    # Jobs.

    def enqueue(
        self,
        kind: str,
        *,
        asset_id: Optional[str] = None,
        owner: Optional[str] = None,
        payload: Optional[Any] = None,
        idempotency_key: Optional[str] = None,
        max_attempts: int = 0,
        delay_ms: int = 0,
    ) -> Job:
        """Enqueue a job (``payload`` is serialised as JSON). With an
        existing idempotency key the existing job is returned."""
        options = _native.JobEnqueueOptionsStruct()
        lib.ap_job_enqueue_options_init(ctypes.byref(options))
        options.kind = kind.encode("utf-8")
        options.asset_id = _native.encode(asset_id)
        options.owner = _native.encode(owner)
        options.payload_json = (
            None if payload is None else json.dumps(payload).encode("utf-8")
        )
        options.idempotency_key = _native.encode(idempotency_key)
        options.max_attempts = max_attempts
        options.delay_ms = delay_ms

        job = ctypes.c_void_p()
        _native.call(
            lib.ap_job_enqueue, self._live(), ctypes.byref(options), ctypes.byref(job)
        )
        return _take_job(job)

    def get_job(self, owner: Optional[str], job_id: str) -> Job:
        """Read a job; NotFoundError for another owner's job too."""
        job = ctypes.c_void_p()
        _native.call(
            lib.ap_job_get,
            self._live(),
            _native.encode(owner),
            job_id.encode("utf-8"),
            ctypes.byref(job),
        )
        return _take_job(job)

    def cancel_job(self, owner: Optional[str], job_id: str) -> None:
        """Cancel a queued or running job."""
        _native.call(
            lib.ap_job_cancel,
            self._live(),
            _native.encode(owner),
            job_id.encode("utf-8"),
        )

    def iter_job_events(
        self,
        owner: Optional[str],
        job_id: str,
        *,
        poll_timeout_ms: int = 15000,
        yield_timeouts: bool = False,
    ) -> Iterator[Optional[JobEvent]]:
        """Yield each change of a job until it reaches a terminal state.

        The first event is the current state. Each wait lasts up to
        ``poll_timeout_ms``; with ``yield_timeouts`` a wait that saw no
        change yields None, so a server-sent events stream can send a
        heartbeat. Raises NotFoundError when the job is deleted.
        """
        watch = ctypes.c_void_p()
        _native.call(
            lib.ap_job_watch_open,
            self._live(),
            _native.encode(owner),
            job_id.encode("utf-8"),
            ctypes.byref(watch),
        )
        try:
            while True:
                event = _native.JobEventStruct()
                event.struct_size = ctypes.sizeof(_native.JobEventStruct)
                try:
                    _native.call(
                        lib.ap_job_watch_next,
                        watch,
                        int(poll_timeout_ms),
                        ctypes.byref(event),
                    )
                except TimedOutError:
                    if yield_timeouts:
                        yield None
                    continue
                except JobStateError:
                    return
                state = _native.decode(lib.ap_job_state_name(event.state)) or ""
                error_code = (
                    _native.decode(lib.ap_error_code_name(event.error_code))
                    if event.error_code
                    else None
                )
                observed = JobEvent(
                    state=state,
                    fraction=float(event.fraction),
                    stage=event.stage.decode("utf-8", "replace"),
                    attempts=int(event.attempts),
                    error_code=error_code,
                    updated_at_ms=int(event.updated_at_ms),
                )
                yield observed
                if observed.terminal:
                    return
        finally:
            lib.ap_job_watch_close(watch)

    # Worker side: only trusted code that processes jobs calls these.

    def claim_job(
        self,
        worker_id: str,
        lease_ms: int,
        kinds: Sequence[str] = (),
    ) -> Optional[Job]:
        """Claim the oldest due job of ``kinds`` (any kind when empty), or
        return None when no job is due."""
        kind_array = (ctypes.c_char_p * max(1, len(kinds)))(
            *[kind.encode("utf-8") for kind in kinds]
        )
        job = ctypes.c_void_p()
        _native.call(
            lib.ap_job_claim,
            self._live(),
            worker_id.encode("utf-8"),
            int(lease_ms),
            kind_array,
            len(kinds),
            ctypes.byref(job),
        )
        if not job.value:
            return None
        return _take_job(job)

    def heartbeat_job(self, job: Job, lease_ms: int) -> None:
        """Extend the lease; LeaseLostError means stop working on it."""
        _native.call(
            lib.ap_job_heartbeat,
            self._live(),
            job.id.encode("utf-8"),
            _native.encode(job.claim_token),
            int(lease_ms),
        )

    def report_job_progress(self, job: Job, fraction: float, stage: str) -> None:
        """Record progress that watchers of the job will see."""
        _native.call(
            lib.ap_job_progress,
            self._live(),
            job.id.encode("utf-8"),
            _native.encode(job.claim_token),
            float(fraction),
            stage.encode("utf-8"),
        )

    def complete_job(self, job: Job, result: Optional[Any] = None) -> None:
        """Mark a claimed job succeeded with an optional JSON result."""
        _native.call(
            lib.ap_job_complete,
            self._live(),
            job.id.encode("utf-8"),
            _native.encode(job.claim_token),
            None if result is None else json.dumps(result).encode("utf-8"),
        )

    def fail_job(
        self, job: Job, code: int, message: str, retryable: bool = True
    ) -> None:
        """Report a failed attempt with an ap_error_code_t number."""
        _native.call(
            lib.ap_job_fail,
            self._live(),
            job.id.encode("utf-8"),
            _native.encode(job.claim_token),
            int(code),
            message.encode("utf-8"),
            1 if retryable else 0,
        )

    def set_asset_status(
        self,
        asset_id: str,
        status: str,
        error_code: int = 0,
        error_message: Optional[str] = None,
    ) -> None:
        """Set an asset's status: "pending", "processing", "ready" or
        "failed" (with an error code and message)."""
        _native.call(
            lib.ap_asset_set_status,
            self._live(),
            asset_id.encode("utf-8"),
            _ASSET_STATUSES[status],
            int(error_code),
            _native.encode(error_message),
        )

    def set_asset_analysis(self, asset_id: str, analysis: Mapping[str, Any]) -> None:
        """Store the analysis JSON object of an asset."""
        _native.call(
            lib.ap_asset_set_analysis,
            self._live(),
            asset_id.encode("utf-8"),
            json.dumps(analysis).encode("utf-8"),
        )

    def put_asset_rendition(
        self,
        asset_id: str,
        name: str,
        object_key: str,
        content_type: str,
        size_bytes: int,
    ) -> None:
        """Record a rendition object of an asset."""
        _native.call(
            lib.ap_asset_put_rendition,
            self._live(),
            asset_id.encode("utf-8"),
            name.encode("utf-8"),
            object_key.encode("utf-8"),
            content_type.encode("utf-8"),
            int(size_bytes),
        )

    def put_asset_waveform(
        self, asset_id: str, name: str, object_key: str, size_bytes: int
    ) -> None:
        """Record a waveform object of an asset."""
        _native.call(
            lib.ap_asset_put_waveform,
            self._live(),
            asset_id.encode("utf-8"),
            name.encode("utf-8"),
            object_key.encode("utf-8"),
            int(size_bytes),
        )

    # Object store (the file store of objects.uri).

    def _object_store(self) -> ctypes.c_void_p:
        with self._store_lock:
            if self._store is None:
                if self._config is None:
                    raise ValueError("the Client is closed")
                store = ctypes.c_void_p()
                _native.call(
                    lib.ap_object_store_open, self._config, ctypes.byref(store)
                )
                self._store = store
            return self._store

    def verify_object_request(
        self,
        *,
        method: str,
        host: str,
        path: str,
        query: Mapping[str, str],
        content_type: Optional[str] = None,
        content_length: Optional[int] = None,
    ) -> VerifiedObjectRequest:
        """Check a presigned object URL as received by an HTTP server.

        ``query`` contains the percent-decoded X-Ap-* parameters. Raises
        SignatureError for a tampered or mismatched request and
        ExpiredError past the expiry.
        """
        request = _native.SignedRequestStruct()
        lib.ap_signed_request_init(ctypes.byref(request))
        request.method = method.encode("utf-8")
        request.host = host.encode("utf-8")
        request.path = path.encode("utf-8")
        request.expires = _native.encode(query.get("X-Ap-Expires"))
        request.signed_content_type = _native.encode(query.get("X-Ap-Content-Type"))
        request.signed_content_length = _native.encode(
            query.get("X-Ap-Content-Length")
        )
        request.signature = _native.encode(query.get("X-Ap-Signature"))
        request.content_type = _native.encode(content_type)
        request.content_length = -1 if content_length is None else int(content_length)

        if self._config is None:
            raise ValueError("the Client is closed")
        key = ctypes.create_string_buffer(_native.OBJECT_KEY_MAX_LENGTH + 1)
        signed_length = ctypes.c_int64(-1)
        _native.call(
            lib.ap_signed_request_verify,
            self._config,
            ctypes.byref(request),
            0,
            key,
            len(key),
            ctypes.byref(signed_length),
        )
        return VerifiedObjectRequest(
            key=key.value.decode("utf-8"), signed_length=signed_length.value
        )

    def begin_object_upload(
        self, key: str, content_type: Optional[str], length: int
    ) -> ObjectUpload:
        """Start a streaming write of exactly ``length`` bytes to ``key``."""
        handle = ctypes.c_void_p()
        _native.call(
            lib.ap_object_upload_begin,
            self._object_store(),
            key.encode("utf-8"),
            _native.encode(content_type),
            int(length),
            ctypes.byref(handle),
        )
        return ObjectUpload(handle)

    def put_object(
        self,
        key: str,
        stream: BinaryIO,
        length: int,
        content_type: Optional[str] = None,
        chunk_size: int = 64 * 1024,
    ) -> None:
        """Stream ``length`` bytes from ``stream`` into ``key``, committed
        atomically; raises SizeMismatchError when the stream ends short."""
        with self.begin_object_upload(key, content_type, length) as upload:
            while True:
                chunk = stream.read(chunk_size)
                if not chunk:
                    break
                upload.write(chunk)
            upload.finish()

    def stat_object(self, key: str) -> StoredObject:
        """Read an object's size, type and time; NotFoundError if none."""
        info = _native.ObjectInfoStruct()
        _native.call(
            lib.ap_object_store_stat,
            self._object_store(),
            key.encode("utf-8"),
            ctypes.byref(info),
        )
        return StoredObject(
            key=key,
            size=int(info.size),
            content_type=info.content_type.decode("utf-8", "replace"),
            last_modified_ms=int(info.last_modified_ms),
        )

    def iter_object(self, key: str, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        """Yield an object's bytes in chunks; NotFoundError if none."""
        handle = ctypes.c_void_p()
        _native.call(
            lib.ap_object_store_open_read,
            self._object_store(),
            key.encode("utf-8"),
            ctypes.byref(handle),
        )
        try:
            buffer = ctypes.create_string_buffer(chunk_size)
            while True:
                error = _native.ErrorStruct()
                count = lib.ap_io_read(handle, buffer, chunk_size, ctypes.byref(error))
                if count < 0:
                    _native.raise_for_status(int(error.code) or 3, error)
                if count == 0:
                    return
                yield buffer.raw[:count]
        finally:
            lib.ap_io_close(handle)

    def read_object(self, key: str) -> bytes:
        """Read a whole object into memory."""
        return b"".join(self.iter_object(key))

    def waveform_dat_to_json(self, dat: bytes) -> Dict[str, Any]:
        """Convert a .dat waveform to its JSON form through the library."""
        return waveform_dat_to_json(dat)


def waveform_dat_to_json(dat: bytes) -> Dict[str, Any]:
    """Convert BBC audiowaveform .dat bytes to the parsed JSON form."""
    output = ctypes.c_void_p()
    _native.call(lib.ap_output_open_memory, ctypes.byref(output))
    try:
        _native.call(lib.ap_waveform_dat_to_json, dat, len(dat), output)
        size = ctypes.c_size_t()
        pointer = lib.ap_output_memory_data(output, ctypes.byref(size))
        text = ctypes.string_at(pointer, size.value) if pointer else b""
    finally:
        lib.ap_output_close(output)
    return json.loads(text)
