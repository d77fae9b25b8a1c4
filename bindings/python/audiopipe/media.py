"""Probe and analyze audio files through ap_probe_file and ap_process.

Values are read from the library's JSON serialisations
(ap_media_info_to_json, ap_process_result_to_json), never re-derived in
Python. Each call owns its C handles and frees them before it returns, so
calls are independent and safe from any number of threads at once.
"""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from audiopipe import _native
from audiopipe._native import lib
from audiopipe.errors import AudiopipeError

PathLike = Union[str, "os.PathLike[str]"]

# Progress callback: fraction from 0.0 to 1.0 and the stage name
# ("measure" or "decode"). Raising cancels the operation, and the
# exception is raised again from analyze().
ProgressCallback = Callable[[float, str], None]

_ANALYZE_ALL = 0x0F
_MONO_CONVENTIONS = {"single": 0, "dual": 1}
_WAVEFORM_FORMATS = {"dat": 0, "json": 1}


@dataclass(frozen=True)
class Picture:
    """An attached picture (cover art): metadata, never a stream."""

    mime: Optional[str]
    bytes: int
    width: int
    height: int


@dataclass(frozen=True)
class MediaInfo:
    """Description of an input, as ap_media_info_to_json writes it.

    ``duration`` is in seconds after encoder delay and padding, or None
    when it could not be established. ``bitrate`` is the audio stream's
    bit rate in bits per second (0 when unknown).
    """

    container: str
    codec: str
    codec_profile: Optional[str]
    sample_rate: int
    channels: int
    channel_layout: Optional[str]
    channel_mask: int
    sample_format: Optional[str]
    bits_per_sample: int
    bitrate: int
    vbr: bool
    duration: Optional[float]
    duration_frames: Optional[int]
    duration_method: str
    header_duration: Optional[float]
    encoder_delay: int
    encoder_padding: int
    truncated: bool
    input_bytes: int
    audio_streams: int
    tags: Dict[str, str] = field(default_factory=dict)
    pictures: Tuple[Picture, ...] = ()

    @classmethod
    def from_json(cls, document: Dict[str, Any]) -> "MediaInfo":
        """Build a MediaInfo from the object ap_media_info_to_json writes."""
        duration = document.get("duration")
        if duration is not None and duration < 0:
            duration = None
        header_duration = document.get("header_duration")
        if header_duration is not None and header_duration < 0:
            header_duration = None
        frames = document.get("duration_frames")
        if frames is not None and frames < 0:
            frames = None
        mask = document.get("channel_mask") or "0x0"
        return cls(
            container=document["container"],
            codec=document["codec"],
            codec_profile=document.get("codec_profile"),
            sample_rate=document["sample_rate"],
            channels=document["channels"],
            channel_layout=document.get("channel_layout"),
            channel_mask=int(mask, 16) if isinstance(mask, str) else mask,
            sample_format=document.get("sample_format"),
            bits_per_sample=document.get("bits_per_sample", 0),
            bitrate=document.get("bitrate", 0),
            vbr=bool(document.get("vbr")),
            duration=duration,
            duration_frames=frames,
            duration_method=document.get("duration_method", "unknown"),
            header_duration=header_duration,
            encoder_delay=document.get("encoder_delay", 0),
            encoder_padding=document.get("encoder_padding", 0),
            truncated=bool(document.get("truncated")),
            input_bytes=document.get("input_bytes", -1),
            audio_streams=document.get("audio_streams", 0),
            tags=dict(document.get("tags") or {}),
            pictures=tuple(
                Picture(
                    mime=p.get("mime"),
                    bytes=p.get("bytes", 0),
                    width=p.get("width", 0),
                    height=p.get("height", 0),
                )
                for p in document.get("pictures") or ()
            ),
        )


@dataclass(frozen=True)
class Loudness:
    """Loudness and level measurements of one input.

    A value that is undefined is None. ``integrated_lufs_reason`` gives
    the reason for the integrated loudness ("too_short" or
    "below_absolute_gate"), and Analysis.raw has the reasons of the others.
    Loudness is in LUFS, loudness range in LU, peaks and RMS in dBFS
    (true peak in dBTP), silences in seconds.
    """

    mono_convention: str
    integrated_lufs: Optional[float]
    integrated_lufs_reason: Optional[str]
    loudness_range_lu: Optional[float]
    max_momentary_lufs: Optional[float]
    max_short_term_lufs: Optional[float]
    true_peak_dbtp: Optional[float]
    sample_peak_dbfs: Optional[float]
    rms_dbfs: Optional[float]
    clipped_samples: int
    leading_silence_seconds: Optional[float]
    trailing_silence_seconds: Optional[float]

    @classmethod
    def from_json(cls, document: Dict[str, Any]) -> "Loudness":
        """Build from the "analysis" object of ap_process_result_to_json."""
        return cls(
            mono_convention=document.get("mono_convention", ""),
            integrated_lufs=document.get("integrated_lufs"),
            integrated_lufs_reason=document.get(
                "integrated_lufs_undefined_reason"
            ),
            loudness_range_lu=document.get("loudness_range_lu"),
            max_momentary_lufs=document.get("max_momentary_lufs"),
            max_short_term_lufs=document.get("max_short_term_lufs"),
            true_peak_dbtp=document.get("true_peak_dbtp"),
            sample_peak_dbfs=document.get("sample_peak_dbfs"),
            rms_dbfs=document.get("rms_dbfs"),
            clipped_samples=document.get("clipped_samples", 0),
            leading_silence_seconds=document.get("leading_silence_seconds"),
            trailing_silence_seconds=document.get("trailing_silence_seconds"),
        )


@dataclass(frozen=True)
class Waveform:
    """A waveform to produce: BBC audiowaveform .dat or JSON peaks.

    Give exactly one of ``samples_per_pixel`` and ``pixels_per_second``
    (the default is 256 samples per pixel). With ``path`` the peaks are
    written to that file; without it they come back as bytes in
    WaveformResult.data.
    """

    format: str = "json"
    bits: int = 16
    samples_per_pixel: Optional[int] = None
    pixels_per_second: Optional[int] = None
    split_channels: bool = False
    path: Optional[PathLike] = None


@dataclass(frozen=True)
class Rendition:
    """A transcoded copy to produce in the same decode pass.

    ``codec`` is "opus", "mp3", "aac", "flac" or "wav"; ``bitrate`` is in
    bits per second (0 for the codec's default). Without ``path`` the
    encoded bytes come back in RenditionResult.data.
    """

    codec: str
    bitrate: int = 0
    path: Optional[PathLike] = None
    sample_rate: int = 0
    channels: int = 0
    bits_per_sample: int = 0
    normalize: bool = False
    target_lufs: float = -16.0
    true_peak_ceiling_dbtp: float = -1.0
    name: Optional[str] = None


@dataclass(frozen=True)
class WaveformResult:
    """A waveform that analyze() produced: its size, and its bytes when
    no path was given."""

    pixels: int
    samples_per_pixel: int
    path: Optional[str]
    data: Optional[bytes]

    def json(self) -> Dict[str, Any]:
        """Parse an in-memory JSON waveform (format "json")."""
        if self.data is None:
            if self.path is None:
                raise ValueError("waveform has neither data nor path")
            with open(self.path, "rb") as file:
                return json.loads(file.read())
        return json.loads(self.data)


@dataclass(frozen=True)
class RenditionResult:
    """A rendition that analyze() produced."""

    name: str
    bytes: int
    gain_db: float
    normalization: Optional[str]
    path: Optional[str]
    data: Optional[bytes]


@dataclass(frozen=True)
class Analysis:
    """Everything one ap_process pass measured and produced.

    ``media.duration`` is the decoded duration (method "decode").
    ``raw`` is the complete ap_process_result_to_json document.
    """

    media: MediaInfo
    decoded_frames: int
    loudness: Optional[Loudness]
    waveforms: Tuple[WaveformResult, ...]
    renditions: Tuple[RenditionResult, ...]
    raw: Dict[str, Any]

    @property
    def duration(self) -> Optional[float]:
        """Decoded duration in seconds."""
        return self.media.duration


def _path_bytes(path: PathLike) -> bytes:
    """Encode a filesystem path for a const char * argument."""
    return os.fsencode(os.fspath(path))


def probe(path: PathLike, *, always_scan: bool = False) -> MediaInfo:
    """Probe a file and return what it is.

    Raises the AudiopipeError subclass for the failure: EmptyInputError,
    NotAudioError, MultipartBodyError, ChannelsUnsupportedError,
    NotFoundError for a missing file, and so on.
    """
    options = _native.ProbeOptionsStruct()
    lib.ap_probe_options_init(ctypes.byref(options))
    options.always_scan = 1 if always_scan else 0

    info = ctypes.c_void_p()
    _native.call(
        lib.ap_probe_file,
        _path_bytes(path),
        ctypes.byref(options),
        ctypes.byref(info),
    )
    try:
        text = _native.json_call(lib.ap_media_info_to_json, info)
    finally:
        lib.ap_media_info_free(info)
    return MediaInfo.from_json(json.loads(text))


class _Outputs:
    """The ap_output_t handles of one analyze() call, closed together."""

    def __init__(self) -> None:
        self.handles: List[ctypes.c_void_p] = []

    def open(self, path: Optional[PathLike]) -> ctypes.c_void_p:
        """Open a file output, or a memory output when path is None."""
        handle = ctypes.c_void_p()
        if path is None:
            _native.call(lib.ap_output_open_memory, ctypes.byref(handle))
        else:
            _native.call(
                lib.ap_output_open_file,
                _path_bytes(path),
                ctypes.byref(handle),
            )
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        """Close every output; unfinished ones are discarded by the C side."""
        for handle in self.handles:
            lib.ap_output_close(handle)
        self.handles.clear()


def _memory_bytes(handle: ctypes.c_void_p) -> bytes:
    """Copy the bytes a memory output collected."""
    size = ctypes.c_size_t()
    pointer = lib.ap_output_memory_data(handle, ctypes.byref(size))
    if not pointer or size.value == 0:
        return b""
    return ctypes.string_at(pointer, size.value)


def _waveform_struct(
    spec: Waveform, output: ctypes.c_void_p
) -> _native.WaveformSpecStruct:
    """Fill an ap_waveform_spec_t from a Waveform."""
    if spec.format not in _WAVEFORM_FORMATS:
        raise ValueError(
            f"waveform format {spec.format!r} is invalid; use 'dat' or 'json'"
        )
    struct = _native.WaveformSpecStruct()
    lib.ap_waveform_spec_init(ctypes.byref(struct))
    struct.format = _WAVEFORM_FORMATS[spec.format]
    struct.bits = spec.bits
    if spec.pixels_per_second:
        struct.samples_per_pixel = 0
        struct.pixels_per_second = spec.pixels_per_second
    elif spec.samples_per_pixel:
        struct.samples_per_pixel = spec.samples_per_pixel
    struct.split_channels = 1 if spec.split_channels else 0
    struct.output = output
    return struct


def _rendition_struct(
    spec: Rendition, output: ctypes.c_void_p
) -> _native.RenditionSpecStruct:
    """Fill an ap_rendition_spec_t from a Rendition."""
    struct = _native.RenditionSpecStruct()
    lib.ap_rendition_spec_init(ctypes.byref(struct))
    codec = ctypes.c_int()
    _native.call(
        lib.ap_rendition_codec_parse,
        spec.codec.encode("utf-8"),
        ctypes.byref(codec),
    )
    struct.codec = codec.value
    struct.bitrate = spec.bitrate
    struct.sample_rate = spec.sample_rate
    struct.channels = spec.channels
    struct.bits_per_sample = spec.bits_per_sample
    struct.normalize = 1 if spec.normalize else 0
    struct.target_lufs = spec.target_lufs
    struct.true_peak_ceiling_dbtp = spec.true_peak_ceiling_dbtp
    struct.name = _native.encode(spec.name)
    struct.output = output
    return struct


class _ProgressRelay:
    """Calls a Python progress callback from C and keeps its exception.

    The C side calls the callback on the thread that called ap_process,
    and ctypes takes the GIL for the call. An exception cannot cross the
    C frames, so it is stored, the callback returns 1 to cancel, and
    analyze() raises it again after ap_process returns.
    """

    def __init__(self, callback: ProgressCallback) -> None:
        self.callback = callback
        self.exception: Optional[BaseException] = None
        self.function = _native.PROGRESS_FUNCTION(self._call)

    def _call(self, _user_data: Any, fraction: float, stage: bytes) -> int:
        try:
            self.callback(fraction, stage.decode("utf-8") if stage else "")
        except BaseException as exc:  # noqa: B902 - re-raised by analyze()
            self.exception = exc
            return 1
        return 0


def _process(
    input_handle: ctypes.c_void_p,
    *,
    analyses: int,
    mono: str,
    waveforms: Sequence[Waveform],
    renditions: Sequence[Rendition],
    progress: Optional[ProgressCallback],
    max_threads: int,
    outputs: _Outputs,
) -> Tuple[Dict[str, Any], List[ctypes.c_void_p], List[ctypes.c_void_p]]:
    """Run ap_process on an open ap_io_t and return the parsed result JSON
    and the output handles of the waveforms and renditions."""
    if mono not in _MONO_CONVENTIONS:
        raise ValueError(f"mono {mono!r} is invalid; use 'single' or 'dual'")

    options = _native.ProcessOptionsStruct()
    lib.ap_process_options_init(ctypes.byref(options))
    options.analyses = analyses
    options.mono_convention = _MONO_CONVENTIONS[mono]
    options.max_threads = max_threads

    waveform_handles = [outputs.open(spec.path) for spec in waveforms]
    rendition_handles = [outputs.open(spec.path) for spec in renditions]
    waveform_array = (_native.WaveformSpecStruct * max(1, len(waveforms)))()
    for index, spec in enumerate(waveforms):
        waveform_array[index] = _waveform_struct(
            spec, waveform_handles[index]
        )
    rendition_array = (
        _native.RenditionSpecStruct * max(1, len(renditions))
    )()
    # Copying a structure into the array copies the name pointer only, so
    # the filled structures (which reference the name bytes) stay in
    # `keep_alive` until ap_process returns.
    keep_alive = []
    for index, spec in enumerate(renditions):
        struct = _rendition_struct(spec, rendition_handles[index])
        keep_alive.append(struct)
        rendition_array[index] = struct
    if waveforms:
        options.waveforms = waveform_array
        options.waveform_count = len(waveforms)
    if renditions:
        options.renditions = rendition_array
        options.rendition_count = len(renditions)

    relay = _ProgressRelay(progress) if progress else None
    if relay:
        options.progress = relay.function

    result = ctypes.c_void_p()
    try:
        _native.call(
            lib.ap_process,
            input_handle,
            ctypes.byref(options),
            ctypes.byref(result),
        )
    except AudiopipeError:
        if relay and relay.exception is not None:
            raise relay.exception
        raise
    finally:
        del keep_alive
    try:
        document = json.loads(
            _native.json_call(lib.ap_process_result_to_json, result)
        )
    finally:
        lib.ap_process_result_free(result)
    return document, waveform_handles, rendition_handles


def _collect(
    document: Dict[str, Any],
    waveforms: Sequence[Waveform],
    renditions: Sequence[Rendition],
    waveform_handles: Sequence[ctypes.c_void_p],
    rendition_handles: Sequence[ctypes.c_void_p],
) -> Analysis:
    """Build the Analysis from the result JSON and the outputs."""
    waveform_results = []
    for index, spec in enumerate(waveforms):
        facts = document["waveforms"][index]
        waveform_results.append(
            WaveformResult(
                pixels=facts["pixels"],
                samples_per_pixel=facts["samples_per_pixel"],
                path=os.fspath(spec.path) if spec.path else None,
                data=(
                    None
                    if spec.path
                    else _memory_bytes(waveform_handles[index])
                ),
            )
        )
    rendition_results = []
    for index, spec in enumerate(renditions):
        facts = document["renditions"][index]
        normalization = facts.get("normalization") or {}
        rendition_results.append(
            RenditionResult(
                name=facts["name"],
                bytes=facts["bytes"],
                gain_db=facts.get("gain_db", 0.0),
                normalization=normalization.get("status"),
                path=os.fspath(spec.path) if spec.path else None,
                data=(
                    None
                    if spec.path
                    else _memory_bytes(rendition_handles[index])
                ),
            )
        )
    analysis = document.get("analysis")
    return Analysis(
        media=MediaInfo.from_json(document["media"]),
        decoded_frames=document["decoded_frames"],
        loudness=Loudness.from_json(analysis) if analysis else None,
        waveforms=tuple(waveform_results),
        renditions=tuple(rendition_results),
        raw=document,
    )


def _as_sequence(value: Any, kind: type) -> List[Any]:
    """Accept one spec, a sequence of specs, or None."""
    if value is None:
        return []
    if isinstance(value, kind):
        return [value]
    return list(value)


def analyze(
    path: PathLike,
    *,
    waveform: Union[Waveform, Sequence[Waveform], None] = None,
    renditions: Union[Rendition, Sequence[Rendition], None] = None,
    progress: Optional[ProgressCallback] = None,
    mono: str = "single",
    loudness: bool = True,
    max_threads: int = 0,
) -> Analysis:
    """Decode a file once: measure loudness and levels, and produce the
    requested waveforms and renditions.

    ``mono`` is "single" (BS.1770: a -23 dBFS mono sine reads -26 LUFS)
    or "dual" (counted as two channels: -23 LUFS). ``progress`` is called
    with (fraction, stage); an exception it raises cancels the work, no
    output is finished, and the exception propagates from this call.
    Raises the AudiopipeError subclass of any failure.
    """
    waveforms = _as_sequence(waveform, Waveform)
    rendition_list = _as_sequence(renditions, Rendition)
    outputs = _Outputs()
    input_handle = ctypes.c_void_p()
    _native.call(lib.ap_io_open_file, _path_bytes(path), ctypes.byref(input_handle))
    try:
        document, waveform_handles, rendition_handles = _process(
            input_handle,
            analyses=_ANALYZE_ALL if loudness else 0,
            mono=mono,
            waveforms=waveforms,
            renditions=rendition_list,
            progress=progress,
            max_threads=max_threads,
            outputs=outputs,
        )
        return _collect(
            document,
            waveforms,
            rendition_list,
            waveform_handles,
            rendition_handles,
        )
    finally:
        outputs.close()
        lib.ap_io_close(input_handle)
