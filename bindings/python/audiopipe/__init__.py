"""Python bindings for libaudiopipe, loaded through ctypes.

The shared library is found through AUDIOPIPE_LIBRARY, then pkg-config's
libdir for libaudiopipe, then ctypes.util.find_library("audiopipe").

Media calls (probe, analyze) are plain functions; uploads, assets and
jobs go through a Client that owns one C context. Every C error becomes
an AudiopipeError subclass from audiopipe.errors.
"""

from audiopipe import errors
from audiopipe._native import lib as _lib
from audiopipe.client import (
    Asset,
    AssetPage,
    Client,
    Job,
    JobEvent,
    ObjectUpload,
    StoredObject,
    UploadTicket,
    VerifiedObjectRequest,
    waveform_dat_to_json,
)
from audiopipe.errors import *  # noqa: F401,F403 - the error classes
from audiopipe.errors import AudiopipeError
from audiopipe.hooks import set_error_hook
from audiopipe.media import (
    Analysis,
    Loudness,
    MediaInfo,
    Picture,
    Rendition,
    RenditionResult,
    Waveform,
    WaveformResult,
    analyze,
    probe,
)


def library_version() -> str:
    """Return the loaded C library's version string, such as "0.1.0"."""
    return _lib.ap_version_string().decode("ascii")


__version__ = "0.1.0"

__all__ = [
    "Analysis",
    "Asset",
    "AssetPage",
    "AudiopipeError",
    "Client",
    "Job",
    "JobEvent",
    "Loudness",
    "MediaInfo",
    "ObjectUpload",
    "Picture",
    "Rendition",
    "RenditionResult",
    "StoredObject",
    "UploadTicket",
    "VerifiedObjectRequest",
    "Waveform",
    "WaveformResult",
    "analyze",
    "errors",
    "library_version",
    "probe",
    "set_error_hook",
    "waveform_dat_to_json",
] + list(errors.__all__)
