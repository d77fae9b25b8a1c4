"""Tests of audiopipe.probe and audiopipe.analyze against the real library
and the project's hard input files."""

import concurrent.futures
import os
import re
import subprocess
import sys

import pytest

import audiopipe
from audiopipe import errors
from audiopipe._native import lib


def test_probe_case03_duration(case):
    info = audiopipe.probe(case("case-03.mp3"))
    assert info.codec == "mp3"
    assert info.duration == pytest.approx(5.000, abs=0.0005)
    assert info.duration_frames == 220500


def test_probe_case04_moov_at_end(case):
    info = audiopipe.probe(case("case-04.m4a"))
    assert info.codec == "aac"
    assert info.sample_rate == 48000
    assert info.channels == 1
    assert info.duration == pytest.approx(10.000, abs=0.0005)


def test_probe_case05_cover_picture(case):
    info = audiopipe.probe(case("case-05.mp3"))
    assert info.audio_streams == 1
    assert info.bitrate == 64000
    assert info.sample_rate == 22050
    assert len(info.pictures) == 1
    assert info.pictures[0].mime == "image/jpeg"
    assert info.pictures[0].width == 1000


def test_probe_accepts_pathlike(case, tmp_path):
    import pathlib

    info = audiopipe.probe(pathlib.Path(case("case-03.mp3")))
    assert info.duration == pytest.approx(5.0, abs=0.0005)


def test_analyze_case19_single_channel(case):
    result = audiopipe.analyze(case("case-19.wav"))
    assert result.loudness is not None
    assert result.loudness.integrated_lufs == pytest.approx(-26.0, abs=0.1)


def test_analyze_case19_dual_mono(case):
    result = audiopipe.analyze(case("case-19.wav"), mono="dual")
    assert result.loudness.integrated_lufs == pytest.approx(-23.0, abs=0.1)


def test_analyze_case18_too_short(case):
    result = audiopipe.analyze(case("case-18.wav"))
    assert result.loudness.integrated_lufs is None
    assert result.loudness.integrated_lufs_reason == "too_short"
    assert result.loudness.sample_peak_dbfs is not None


def _check_case21_levels(data, channels=1):
    """Check the four quarter levels of case-21 at 441 samples/pixel."""
    levels = [(0, 25, 32767), (25, 50, 20000), (50, 75, 1000), (75, 100, 0)]
    step = 2 * channels
    for first, last, level in levels:
        for pixel in range(first, last):
            assert data[pixel * step] == -level, f"pixel {pixel} min"
            assert data[pixel * step + 1] == level, f"pixel {pixel} max"


def test_analyze_case21_json_waveform(case):
    result = audiopipe.analyze(
        case("case-21.wav"),
        waveform=audiopipe.Waveform(format="json", bits=16, samples_per_pixel=441),
    )
    waveform = result.waveforms[0].json()
    assert result.waveforms[0].pixels == 100
    assert waveform["length"] == 100
    assert waveform["samples_per_pixel"] == 441
    _check_case21_levels(waveform["data"])


def test_analyze_case21_dat_file(case, tmp_path):
    path = tmp_path / "peaks.dat"
    result = audiopipe.analyze(
        case("case-21.wav"),
        waveform=audiopipe.Waveform(format="dat", samples_per_pixel=441, path=path),
    )
    assert result.waveforms[0].data is None
    waveform = audiopipe.waveform_dat_to_json(path.read_bytes())
    _check_case21_levels(waveform["data"])


def test_analyze_renditions(case, tmp_path):
    path = tmp_path / "out.opus"
    result = audiopipe.analyze(
        case("case-03.mp3"),
        renditions=[
            audiopipe.Rendition("opus", bitrate=64000, path=path),
            audiopipe.Rendition("mp3", bitrate=128000, name="mp3_small"),
        ],
    )
    assert result.renditions[0].name == "opus_64k"
    assert path.stat().st_size == result.renditions[0].bytes
    assert result.renditions[1].name == "mp3_small"
    assert len(result.renditions[1].data) == result.renditions[1].bytes
    assert audiopipe.probe(path).duration == pytest.approx(5.0, abs=0.01)


@pytest.mark.parametrize(
    "name, error_class",
    [
        ("case-14.mp3", audiopipe.EmptyInputError),
        ("case-22.wav", audiopipe.MultipartBodyError),
        ("case-16.wav", audiopipe.ChannelsUnsupportedError),
    ],
)
def test_probe_rejects_case(case, name, error_class):
    with pytest.raises(error_class) as raised:
        audiopipe.probe(case(name))
    assert raised.value.code == error_class.code
    assert raised.value.domain == "media"
    assert raised.value.message


def test_probe_rejects_text(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are meeting notes, not a recording\n" * 20)
    with pytest.raises(audiopipe.NotAudioError) as raised:
        audiopipe.probe(path)
    assert isinstance(raised.value, audiopipe.MediaInputError)
    assert isinstance(raised.value, audiopipe.AudiopipeError)


def test_probe_missing_file(tmp_path):
    with pytest.raises(audiopipe.NotFoundError) as raised:
        audiopipe.probe(tmp_path / "missing.wav")
    assert "missing.wav" in raised.value.message


def test_analyze_rejects_bad_mono(case):
    with pytest.raises(ValueError):
        audiopipe.analyze(case("case-19.wav"), mono="stereo")


def test_error_table_matches_library():
    for code, name, class_name in errors.ERROR_CODES:
        assert lib.ap_error_code_name(code).decode() == name, f"code {code}"
        assert errors.CLASSES_BY_CODE[code].__name__ == class_name
        assert errors.CLASSES_BY_CODE[code].code == code
    # Every number the library names is in the table.
    table_codes = {row[0] for row in errors.ERROR_CODES}
    for code in range(1, 1000):
        if lib.ap_error_code_name(code).decode() != "unknown":
            assert code in table_codes, f"code {code} missing from ERROR_CODES"


def test_domain_names_match_library():
    for number, name in enumerate(errors.DOMAIN_NAMES):
        assert lib.ap_error_domain_name(number).decode() == name


def test_progress_exception_cancels(case, tmp_path):
    calls = []
    output = tmp_path / "never.opus"

    def progress(fraction, stage):
        calls.append((fraction, stage))
        raise KeyError("stop here")

    with pytest.raises(KeyError):
        audiopipe.analyze(
            case("case-09.wav"),
            renditions=audiopipe.Rendition("opus", path=output),
            progress=progress,
        )
    assert len(calls) == 1
    assert not output.exists()


def test_progress_reaches_one(case):
    fractions = []
    audiopipe.analyze(case("case-09.wav"), progress=lambda f, s: fractions.append(f))
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)


def test_threads_share_library(case):
    jobs = [
        ("probe", "case-03.mp3", 5.0),
        ("probe", "case-04.m4a", 10.0),
        ("analyze", "case-19.wav", -26.0),
        ("analyze", "case-09.wav", None),
    ] * 4

    def run(job):
        kind, name, _ = job
        if kind == "probe":
            return audiopipe.probe(case(name)).duration
        return audiopipe.analyze(case(name), max_threads=1).loudness.integrated_lufs

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, jobs))
    for (kind, name, expected), value in zip(jobs, results):
        if expected is not None:
            assert value == pytest.approx(expected, abs=0.1), f"{kind} {name}"
        else:
            assert value is not None, f"{kind} {name}"


# AddressSanitizer keeps freed memory in quarantine, so RSS grows by design
# in a sanitizer run.
needs_plain_allocator = pytest.mark.skipif(
    os.environ.get("AUDIOPIPE_TEST_SANITIZER") == "1",
    reason="RSS is not meaningful under AddressSanitizer",
)


def _rss_pages():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1])


@needs_plain_allocator
def test_memory_stable_over_many_calls(case):
    path = case("case-03.mp3")
    bad = case("case-14.mp3")

    def cycle():
        audiopipe.probe(path)
        try:
            audiopipe.probe(bad)
        except audiopipe.EmptyInputError:
            pass

    for _ in range(500):
        cycle()
    before = _rss_pages()
    for _ in range(10_000):
        cycle()
    after = _rss_pages()
    page_size = os.sysconf("SC_PAGE_SIZE")
    growth = (after - before) * page_size
    # A leak of one 4 KiB buffer per call would be 40 MB; allocator noise
    # stays well under 4 MiB.
    assert growth < 4 * 1024 * 1024, f"RSS grew by {growth} bytes"


@needs_plain_allocator
def test_memory_stable_analyze_with_outputs(case):
    path = case("case-21.wav")
    spec = audiopipe.Waveform(format="json", samples_per_pixel=441)
    for _ in range(50):
        audiopipe.analyze(path, waveform=spec)
    before = _rss_pages()
    for _ in range(1000):
        audiopipe.analyze(path, waveform=spec)
    after = _rss_pages()
    growth = (after - before) * os.sysconf("SC_PAGE_SIZE")
    assert growth < 4 * 1024 * 1024, f"RSS grew by {growth} bytes"


def test_error_hook_receives_reportable_error():
    received = []
    audiopipe.set_error_hook(received.append)
    try:
        # Reading /proc/self/mem from offset 0 fails with EIO, an I/O
        # failure the library reports through the hook.
        with pytest.raises(audiopipe.IOFailureError):
            audiopipe.probe("/proc/self/mem")
    finally:
        audiopipe.set_error_hook(None)
    assert len(received) == 1
    assert isinstance(received[0], audiopipe.IOFailureError)
    assert received[0].domain == "io"


def test_error_hook_skips_input_errors(case):
    received = []
    audiopipe.set_error_hook(received.append)
    try:
        with pytest.raises(audiopipe.EmptyInputError):
            audiopipe.probe(case("case-14.mp3"))
    finally:
        audiopipe.set_error_hook(None)
    assert received == []


def test_library_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", audiopipe.library_version())


def test_static_error_declarations_match():
    source = open(errors.__file__, encoding="utf-8").read()
    declared = re.findall(r"^    class (\w+)\((\w+)\): \.\.\.$", source, re.MULTILINE)
    expected = [
        (row[2], errors.CLASSES_BY_CODE[row[0]].__base__.__name__)
        for row in errors.ERROR_CODES
    ]
    assert declared == expected


def test_load_error_names_paths(tmp_path):
    missing = str(tmp_path / "libaudiopipe.so")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import audiopipe"
    )
    environment = dict(os.environ, AUDIOPIPE_LIBRARY=missing, PATH="/nonexistent")
    finished = subprocess.run(
        [sys.executable, "-c", script, os.path.dirname(os.path.dirname(__file__))],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert finished.returncode != 0
    assert "ImportError" in finished.stderr
    assert missing in finished.stderr
