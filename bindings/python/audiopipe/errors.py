"""Exceptions that mirror the C library's stable error codes.

ERROR_CODES repeats ap_error_code_t from <audiopipe/error.h>: the number,
the snake_case name that ap_error_code_name returns, and the Python class
name. The classes are generated from that table, and a test checks every
row against the loaded library, so a code added in C without a row here
fails the test suite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Tuple, Type

# (code, name returned by ap_error_code_name, class name), in error.h order.
ERROR_CODES: Tuple[Tuple[int, str, str], ...] = (
    (1, "invalid_argument", "InvalidArgumentError"),
    (2, "no_memory", "NoMemoryError"),
    (3, "io_error", "IOFailureError"),
    (4, "not_found", "NotFoundError"),
    (5, "cancelled", "CancelledError"),
    (6, "unsupported", "UnsupportedError"),
    (7, "invalid_config", "InvalidConfigError"),
    (8, "internal", "InternalError"),
    (9, "conflict", "ConflictError"),
    (10, "unavailable", "UnavailableError"),
    (11, "timed_out", "TimedOutError"),
    (12, "permission_denied", "PermissionDeniedError"),
    (100, "empty_input", "EmptyInputError"),
    (101, "not_audio", "NotAudioError"),
    (102, "multipart_body", "MultipartBodyError"),
    (103, "unsupported_codec", "UnsupportedCodecError"),
    (104, "unsupported_channel_count", "ChannelsUnsupportedError"),
    (105, "unsupported_sample_rate", "SampleRateUnsupportedError"),
    (106, "input_too_large", "InputTooLargeError"),
    (107, "duration_limit", "DurationLimitError"),
    (108, "decode_time_limit", "DecodeTimeLimitError"),
    (109, "sample_budget", "SampleBudgetError"),
    (110, "corrupt_input", "CorruptInputError"),
    (111, "encode_failed", "EncodeError"),
    (112, "format_mismatch", "FormatMismatchError"),
    (200, "upload_too_large", "UploadTooLargeError"),
    (201, "size_mismatch", "SizeMismatchError"),
    (202, "content_type_not_allowed", "ContentTypeError"),
    (203, "invalid_filename", "InvalidFilenameError"),
    (204, "expired", "ExpiredError"),
    (205, "signature_mismatch", "SignatureError"),
    (206, "infected", "InfectedError"),
    (207, "upload_state", "UploadStateError"),
    (208, "object_missing", "ObjectMissingError"),
    (300, "lease_lost", "LeaseLostError"),
    (301, "job_state", "JobStateError"),
    (302, "rate_limited", "RateLimitedError"),
)

# ap_error_domain_t names, indexed by number.
DOMAIN_NAMES: Tuple[str, ...] = (
    "none",
    "core",
    "io",
    "media",
    "upload",
    "meta",
    "storage",
    "queue",
    "http",
)


class AudiopipeError(Exception):
    """Base class of every error the C library reports.

    Attributes: ``code`` (the ap_error_code_t number), ``name`` (its
    snake_case name), ``domain`` (the domain name, such as "media") and
    ``message`` (the library's message, which names the value at fault).
    """

    code: int = 0
    name: str = "unknown"

    def __init__(self, message: str, code: int = 0, domain: str = "none"):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.domain = domain

    def __str__(self) -> str:
        return f"{self.message} ({self.name}, {self.domain})"


class MediaInputError(AudiopipeError):
    """Base class of the media input errors (codes 100-199)."""


class UploadError(AudiopipeError):
    """Base class of the upload errors (codes 200-299)."""


class JobError(AudiopipeError):
    """Base class of the job errors (codes 300-399)."""


def _base_for(code: int) -> Type[AudiopipeError]:
    """Pick the intermediate base class of a code's range."""
    if 100 <= code < 200:
        return MediaInputError
    if 200 <= code < 300:
        return UploadError
    if 300 <= code < 400:
        return JobError
    return AudiopipeError


CLASSES_BY_CODE: Dict[int, Type[AudiopipeError]] = {}

for _code, _name, _class_name in ERROR_CODES:
    _class = type(
        _class_name,
        (_base_for(_code),),
        {
            "code": _code,
            "name": _name,
            "__doc__": f"The C library's error {_name} (code {_code}).",
            "__module__": __name__,
        },
    )
    globals()[_class_name] = _class
    CLASSES_BY_CODE[_code] = _class


if TYPE_CHECKING:  # pragma: no cover
    # Static declarations of the generated classes, for type checkers.
    class InvalidArgumentError(AudiopipeError): ...
    class NoMemoryError(AudiopipeError): ...
    class IOFailureError(AudiopipeError): ...
    class NotFoundError(AudiopipeError): ...
    class CancelledError(AudiopipeError): ...
    class UnsupportedError(AudiopipeError): ...
    class InvalidConfigError(AudiopipeError): ...
    class InternalError(AudiopipeError): ...
    class ConflictError(AudiopipeError): ...
    class UnavailableError(AudiopipeError): ...
    class TimedOutError(AudiopipeError): ...
    class PermissionDeniedError(AudiopipeError): ...
    class EmptyInputError(MediaInputError): ...
    class NotAudioError(MediaInputError): ...
    class MultipartBodyError(MediaInputError): ...
    class UnsupportedCodecError(MediaInputError): ...
    class ChannelsUnsupportedError(MediaInputError): ...
    class SampleRateUnsupportedError(MediaInputError): ...
    class InputTooLargeError(MediaInputError): ...
    class DurationLimitError(MediaInputError): ...
    class DecodeTimeLimitError(MediaInputError): ...
    class SampleBudgetError(MediaInputError): ...
    class CorruptInputError(MediaInputError): ...
    class EncodeError(MediaInputError): ...
    class FormatMismatchError(MediaInputError): ...
    class UploadTooLargeError(UploadError): ...
    class SizeMismatchError(UploadError): ...
    class ContentTypeError(UploadError): ...
    class InvalidFilenameError(UploadError): ...
    class ExpiredError(UploadError): ...
    class SignatureError(UploadError): ...
    class InfectedError(UploadError): ...
    class UploadStateError(UploadError): ...
    class ObjectMissingError(UploadError): ...
    class LeaseLostError(JobError): ...
    class JobStateError(JobError): ...
    class RateLimitedError(JobError): ...


def domain_name(domain: int) -> str:
    """Return the name of an ap_error_domain_t number."""
    if 0 <= domain < len(DOMAIN_NAMES):
        return DOMAIN_NAMES[domain]
    return "unknown"


def from_code(code: int, domain: int, message: str) -> AudiopipeError:
    """Build the exception for an error code, domain number and message."""
    error_class = CLASSES_BY_CODE.get(code, AudiopipeError)
    return error_class(message, code=code, domain=domain_name(domain))


__all__ = [
    "AudiopipeError",
    "MediaInputError",
    "UploadError",
    "JobError",
    "ERROR_CODES",
    "CLASSES_BY_CODE",
    "from_code",
] + [row[2] for row in ERROR_CODES]
