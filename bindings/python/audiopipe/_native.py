"""Load libaudiopipe and declare the C prototypes the bindings call.

Every function used anywhere in the package is declared here with its
argtypes and restype. Functions that return an ap_status_t and take a
trailing ap_error_t pointer get the one errcheck function, which turns a
non-zero status into the matching AudiopipeError subclass.

The library is loaded with ctypes.CDLL, so every foreign call releases the
GIL while it runs, and callbacks re-acquire it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
from typing import Any, Callable, Iterator, List, Optional

from audiopipe import errors

ERROR_MESSAGE_SIZE = 512
CONTENT_TYPE_MAX_SIZE = 128
OBJECT_KEY_MAX_LENGTH = 512
ID_SIZE = 27


class ErrorStruct(ctypes.Structure):
    """ap_error_t: domain, code and a NUL-terminated UTF-8 message."""

    _fields_ = [
        ("domain", ctypes.c_uint32),
        ("code", ctypes.c_uint32),
        ("message", ctypes.c_char * ERROR_MESSAGE_SIZE),
    ]


class LimitsStruct(ctypes.Structure):
    """ap_limits_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("max_input_bytes", ctypes.c_int64),
        ("max_duration_seconds", ctypes.c_double),
        ("max_channels", ctypes.c_int),
        ("max_sample_rate", ctypes.c_int),
        ("max_decode_seconds", ctypes.c_double),
        ("max_decoded_samples", ctypes.c_int64),
    ]


class ProbeOptionsStruct(ctypes.Structure):
    """ap_probe_options_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("limits", LimitsStruct),
        ("always_scan", ctypes.c_int),
    ]


class WaveformSpecStruct(ctypes.Structure):
    """ap_waveform_spec_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("format", ctypes.c_int),
        ("bits", ctypes.c_int),
        ("samples_per_pixel", ctypes.c_int),
        ("pixels_per_second", ctypes.c_int),
        ("split_channels", ctypes.c_int),
        ("output", ctypes.c_void_p),
    ]


class RenditionSpecStruct(ctypes.Structure):
    """ap_rendition_spec_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("codec", ctypes.c_int),
        ("bitrate", ctypes.c_int64),
        ("sample_rate", ctypes.c_int),
        ("channels", ctypes.c_int),
        ("bits_per_sample", ctypes.c_int),
        ("normalize", ctypes.c_int),
        ("target_lufs", ctypes.c_double),
        ("true_peak_ceiling_dbtp", ctypes.c_double),
        ("name", ctypes.c_char_p),
        ("output", ctypes.c_void_p),
    ]


# int (*ap_progress_fn)(void *user_data, double fraction, const char *stage)
PROGRESS_FUNCTION = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_double, ctypes.c_char_p
)

# void (*ap_error_hook_fn)(void *user_data, const ap_error_t *error)
ERROR_HOOK_FUNCTION = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.POINTER(ErrorStruct)
)


class ProcessOptionsStruct(ctypes.Structure):
    """ap_process_options_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("limits", LimitsStruct),
        ("analyses", ctypes.c_uint),
        ("mono_convention", ctypes.c_int),
        ("silence_threshold_dbfs", ctypes.c_double),
        ("waveforms", ctypes.POINTER(WaveformSpecStruct)),
        ("waveform_count", ctypes.c_size_t),
        ("renditions", ctypes.POINTER(RenditionSpecStruct)),
        ("rendition_count", ctypes.c_size_t),
        ("max_threads", ctypes.c_int),
        ("progress", PROGRESS_FUNCTION),
        ("progress_user_data", ctypes.c_void_p),
    ]


class UploadRequestStruct(ctypes.Structure):
    """ap_upload_request_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("owner", ctypes.c_char_p),
        ("filename", ctypes.c_char_p),
        ("size_bytes", ctypes.c_int64),
        ("content_type", ctypes.c_char_p),
    ]


class JobEnqueueOptionsStruct(ctypes.Structure):
    """ap_job_enqueue_options_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("kind", ctypes.c_char_p),
        ("asset_id", ctypes.c_char_p),
        ("owner", ctypes.c_char_p),
        ("payload_json", ctypes.c_char_p),
        ("idempotency_key", ctypes.c_char_p),
        ("max_attempts", ctypes.c_int),
        ("delay_ms", ctypes.c_int64),
    ]


class JobEventStruct(ctypes.Structure):
    """ap_job_event_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("state", ctypes.c_int),
        ("fraction", ctypes.c_double),
        ("stage", ctypes.c_char * 64),
        ("attempts", ctypes.c_int),
        ("error_code", ctypes.c_int),
        ("updated_at_ms", ctypes.c_int64),
    ]


class SignedRequestStruct(ctypes.Structure):
    """ap_signed_request_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("method", ctypes.c_char_p),
        ("host", ctypes.c_char_p),
        ("path", ctypes.c_char_p),
        ("expires", ctypes.c_char_p),
        ("signed_content_type", ctypes.c_char_p),
        ("signed_content_length", ctypes.c_char_p),
        ("signature", ctypes.c_char_p),
        ("content_type", ctypes.c_char_p),
        ("content_length", ctypes.c_int64),
    ]


class ObjectInfoStruct(ctypes.Structure):
    """ap_object_info_t."""

    _fields_ = [
        ("size", ctypes.c_int64),
        ("content_type", ctypes.c_char * CONTENT_TYPE_MAX_SIZE),
        ("last_modified_ms", ctypes.c_int64),
    ]


def _explicit_candidates() -> Iterator[str]:
    """Yield AUDIOPIPE_LIBRARY when it is set."""
    explicit = os.environ.get("AUDIOPIPE_LIBRARY")
    if explicit:
        yield explicit


def _pkg_config_candidates() -> Iterator[str]:
    """Yield the library in pkg-config's libdir for libaudiopipe."""
    try:
        libdir = subprocess.run(
            ["pkg-config", "--variable=libdir", "libaudiopipe"],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return
    if libdir:
        yield os.path.join(libdir, "libaudiopipe.so.0")
        yield os.path.join(libdir, "libaudiopipe.so")


def _find_library_candidates() -> Iterator[str]:
    """Yield what ctypes.util.find_library finds for "audiopipe"."""
    found = ctypes.util.find_library("audiopipe")
    if found:
        yield found


def _load() -> ctypes.CDLL:
    """Load libaudiopipe, raising ImportError naming every path tried.

    The sources are tried in order, and a later one runs only when every
    earlier path failed, so a set AUDIOPIPE_LIBRARY starts no subprocess.
    """
    tried: List[str] = []
    for source in (
        _explicit_candidates,
        _pkg_config_candidates,
        _find_library_candidates,
    ):
        for candidate in source():
            try:
                return ctypes.CDLL(candidate)
            except OSError as exc:
                tried.append(f"{candidate} ({exc})")
    if not tried:
        tried.append(
            "no candidate: AUDIOPIPE_LIBRARY is unset, pkg-config knows no "
            "libaudiopipe, and ctypes.util.find_library('audiopipe') "
            "found nothing"
        )
    raise ImportError(
        "libaudiopipe could not be loaded; set AUDIOPIPE_LIBRARY to the "
        "path of libaudiopipe.so or install the library. Tried: "
        + "; ".join(tried)
    )


lib = _load()


def raise_for_status(status: int, error: ErrorStruct) -> None:
    """Raise the AudiopipeError subclass for a failed status."""
    if status == 0:
        return
    code = int(error.code) if error.code else int(status)
    message = error.message.decode("utf-8", "replace")
    raise errors.from_code(code, int(error.domain), message)


def _errcheck(result: int, function: Any, arguments: tuple) -> int:
    """Turn a non-zero ap_status_t into an exception.

    The ap_error_t is always the last argument of these functions, passed
    by call() as ctypes.byref(error), whose _obj is the structure.
    """
    if result != 0:
        error = getattr(arguments[-1], "_obj", arguments[-1])
        if isinstance(error, ctypes._Pointer):  # type: ignore[attr-defined]
            error = error.contents
        raise_for_status(result, error)
    return result


def call(function: Callable[..., int], *arguments: Any) -> None:
    """Call a status-returning C function with a fresh ap_error_t."""
    error = ErrorStruct()
    function(*arguments, ctypes.byref(error))


_P = ctypes.c_void_p
_S = ctypes.c_char_p
_ERR = ctypes.POINTER(ErrorStruct)
_PP = ctypes.POINTER(ctypes.c_void_p)
_PS = ctypes.POINTER(ctypes.c_char_p)

# (name, argtypes without the trailing ap_error_t *) of the functions that
# return an ap_status_t: restype int, errcheck _errcheck.
_STATUS_FUNCTIONS = [
    ("ap_config_new", [_PP]),
    ("ap_config_from_env", [_PP]),
    ("ap_config_set", [_P, _S, _S]),
    ("ap_context_open", [_P, _PP]),
    ("ap_context_check_ready", [_P]),
    ("ap_probe_file", [_S, _P, _PP]),
    ("ap_probe", [_P, _P, _PP]),
    ("ap_media_info_to_json", [_P, _PS]),
    ("ap_io_open_file", [_S, _PP]),
    ("ap_output_open_file", [_S, _PP]),
    ("ap_output_open_memory", [_PP]),
    ("ap_process", [_P, ctypes.POINTER(ProcessOptionsStruct), _PP]),
    ("ap_process_result_to_json", [_P, _PS]),
    ("ap_rendition_codec_parse", [_S, ctypes.POINTER(ctypes.c_int)]),
    ("ap_upload_create", [_P, ctypes.POINTER(UploadRequestStruct), _PP]),
    ("ap_upload_ticket_to_json", [_P, _PS]),
    ("ap_upload_complete", [_P, _S, _S, _PP]),
    ("ap_asset_get", [_P, _S, _S, _PP]),
    ("ap_asset_delete", [_P, _S, _S]),
    ("ap_asset_to_json", [_P, _PS]),
    ("ap_asset_list", [_P, _S, _S, ctypes.c_int, _PP]),
    (
        "ap_asset_set_status",
        [_P, _S, ctypes.c_int, ctypes.c_int, _S],
    ),
    ("ap_asset_set_analysis", [_P, _S, _S]),
    ("ap_asset_put_rendition", [_P, _S, _S, _S, _S, ctypes.c_int64]),
    ("ap_asset_put_waveform", [_P, _S, _S, _S, ctypes.c_int64]),
    ("ap_job_enqueue", [_P, ctypes.POINTER(JobEnqueueOptionsStruct), _PP]),
    (
        "ap_job_claim",
        [_P, _S, ctypes.c_int64, ctypes.POINTER(_S), ctypes.c_size_t, _PP],
    ),
    ("ap_job_heartbeat", [_P, _S, _S, ctypes.c_int64]),
    ("ap_job_progress", [_P, _S, _S, ctypes.c_double, _S]),
    ("ap_job_complete", [_P, _S, _S, _S]),
    ("ap_job_fail", [_P, _S, _S, ctypes.c_int, _S, ctypes.c_int]),
    ("ap_job_cancel", [_P, _S, _S]),
    ("ap_job_get", [_P, _S, _S, _PP]),
    ("ap_job_to_json", [_P, _PS]),
    ("ap_job_watch_open", [_P, _S, _S, _PP]),
    (
        "ap_job_watch_next",
        [_P, ctypes.c_int64, ctypes.POINTER(JobEventStruct)],
    ),
    ("ap_object_store_open", [_P, _PP]),
    ("ap_object_store_stat", [_P, _S, ctypes.POINTER(ObjectInfoStruct)]),
    ("ap_object_store_open_read", [_P, _S, _PP]),
    (
        "ap_signed_request_verify",
        [
            _P,
            ctypes.POINTER(SignedRequestStruct),
            ctypes.c_int64,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_int64),
        ],
    ),
    ("ap_object_upload_begin", [_P, _S, _S, ctypes.c_int64, _PP]),
    ("ap_object_upload_write", [_P, ctypes.c_char_p, ctypes.c_size_t]),
    ("ap_object_upload_finish", [_P]),
    ("ap_waveform_dat_to_json", [ctypes.c_char_p, ctypes.c_size_t, _P]),
    ("ap_output_finish", [_P]),
]

# (name, restype, argtypes) of the functions without a status return.
_PLAIN_FUNCTIONS = [
    ("ap_free", None, [_P]),
    ("ap_version_string", _S, []),
    ("ap_error_code_name", _S, [ctypes.c_int]),
    ("ap_error_code_description", _S, [ctypes.c_int]),
    ("ap_error_domain_name", _S, [ctypes.c_int]),
    ("ap_error_is_retryable", ctypes.c_int, [ctypes.c_int]),
    ("ap_set_error_hook", None, [ERROR_HOOK_FUNCTION, _P]),
    ("ap_config_free", None, [_P]),
    ("ap_config_get", _S, [_P, _S]),
    ("ap_context_close", None, [_P]),
    ("ap_probe_options_init", None, [ctypes.POINTER(ProbeOptionsStruct)]),
    ("ap_media_info_free", None, [_P]),
    ("ap_io_close", None, [_P]),
    ("ap_output_close", None, [_P]),
    (
        "ap_output_memory_data",
        _P,
        [_P, ctypes.POINTER(ctypes.c_size_t)],
    ),
    (
        "ap_process_options_init",
        None,
        [ctypes.POINTER(ProcessOptionsStruct)],
    ),
    ("ap_process_result_free", None, [_P]),
    (
        "ap_waveform_spec_init",
        None,
        [ctypes.POINTER(WaveformSpecStruct)],
    ),
    (
        "ap_rendition_spec_init",
        None,
        [ctypes.POINTER(RenditionSpecStruct)],
    ),
    ("ap_upload_request_init", None, [ctypes.POINTER(UploadRequestStruct)]),
    ("ap_upload_ticket_free", None, [_P]),
    ("ap_upload_ticket_object_key", _S, [_P]),
    ("ap_asset_free", None, [_P]),
    ("ap_asset_owner", _S, [_P]),
    ("ap_asset_object_key", _S, [_P]),
    ("ap_asset_list_count", ctypes.c_size_t, [_P]),
    ("ap_asset_list_at", _P, [_P, ctypes.c_size_t]),
    ("ap_asset_list_next_cursor", _S, [_P]),
    ("ap_asset_list_free", None, [_P]),
    (
        "ap_job_enqueue_options_init",
        None,
        [ctypes.POINTER(JobEnqueueOptionsStruct)],
    ),
    ("ap_job_free", None, [_P]),
    ("ap_job_claim_token", _S, [_P]),
    ("ap_job_id", _S, [_P]),
    ("ap_job_owner", _S, [_P]),
    ("ap_job_payload_json", _S, [_P]),
    ("ap_job_state_name", _S, [ctypes.c_int]),
    ("ap_job_state_is_terminal", ctypes.c_int, [ctypes.c_int]),
    ("ap_job_watch_close", None, [_P]),
    ("ap_object_store_close", None, [_P]),
    (
        "ap_signed_request_init",
        None,
        [ctypes.POINTER(SignedRequestStruct)],
    ),
    ("ap_object_upload_received", ctypes.c_int64, [_P]),
    ("ap_object_upload_close", None, [_P]),
    ("ap_io_read", ctypes.c_int64, [_P, ctypes.c_void_p, ctypes.c_size_t, _ERR]),
]

for _name, _arguments in _STATUS_FUNCTIONS:
    _function = getattr(lib, _name)
    _function.argtypes = [*_arguments, _ERR]
    _function.restype = ctypes.c_int
    _function.errcheck = _errcheck

for _name, _restype, _arguments in _PLAIN_FUNCTIONS:
    _function = getattr(lib, _name)
    _function.argtypes = _arguments
    _function.restype = _restype


def take_string(pointer: ctypes.c_char_p) -> str:
    """Decode a library-allocated string and release it with ap_free."""
    try:
        raw = ctypes.cast(pointer, ctypes.c_void_p)
        if not raw.value:
            return ""
        return ctypes.string_at(raw.value).decode("utf-8")
    finally:
        lib.ap_free(ctypes.cast(pointer, ctypes.c_void_p))


def json_call(function: Callable[..., int], handle: Any) -> str:
    """Call an ap_*_to_json function and return the freed string's text."""
    text = ctypes.c_char_p()
    call(function, handle, ctypes.byref(text))
    return take_string(text)


def encode(text: Optional[str]) -> Optional[bytes]:
    """Encode an optional str for a const char * argument."""
    if text is None:
        return None
    return text.encode("utf-8")


def decode(raw: Optional[bytes]) -> Optional[str]:
    """Decode an optional const char * result."""
    if raw is None:
        return None
    return raw.decode("utf-8", "replace")
