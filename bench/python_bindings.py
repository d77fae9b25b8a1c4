#!/usr/bin/env python3
"""Benchmark the Python bindings in one run:

1. per-call overhead: audiopipe.probe in a Python loop against
   ap_probe_file in a C loop (bench/probe_loop.c) on the same small file;
2. audiopipe.analyze against the pure-Python way (subprocess ffprobe, then
   an ffmpeg ebur128=peak=true pass) on the same real track.

Usage:
    AUDIOPIPE_LIBRARY=build/libaudiopipe.so \\
        python3 bench/python_bindings.py --build-dir build [--track FILE]

The default track is the longest file in
/usr/share/sounds/freedesktop/stereo (Debian's sound-theme-freedesktop).
Probe times (wall clock and process CPU time) are the fastest of 5
alternating rounds. Analysis times are wall-clock medians of --runs runs,
and the ffmpeg side includes starting two processes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SOURCE_DIR, "bindings", "python"))

import audiopipe  # noqa: E402

SMALL_FILE = os.path.join(SOURCE_DIR, "tests", "data", "cases", "case-03.mp3")
FREEDESKTOP_DIR = "/usr/share/sounds/freedesktop/stereo"
PROBE_ROUNDS = 5


def longest_freedesktop_track() -> str:
    """Return the freedesktop sound with the longest duration."""
    paths = sorted(glob.glob(os.path.join(FREEDESKTOP_DIR, "*.oga")))
    if not paths:
        raise SystemExit(
            f"no sounds in {FREEDESKTOP_DIR}; install sound-theme-freedesktop "
            "or pass --track"
        )
    return max(paths, key=lambda path: audiopipe.probe(path).duration or 0.0)


def build_probe_loop(build_dir: str, work_dir: str) -> str:
    """Compile bench/probe_loop.c against the build folder's library."""
    program = os.path.join(work_dir, "probe_loop")
    subprocess.run(
        [
            "cc",
            "-O2",
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-I",
            os.path.join(SOURCE_DIR, "include"),
            "-I",
            os.path.join(build_dir, "include"),
            os.path.join(SOURCE_DIR, "bench", "probe_loop.c"),
            "-o",
            program,
            "-L",
            build_dir,
            "-laudiopipe",
            f"-Wl,-rpath,{os.path.abspath(build_dir)}",
        ],
        check=True,
    )
    return program


def c_probe_microseconds(program: str, count: int) -> tuple:
    """Mean wall-clock and CPU microseconds per ap_probe_file call from
    the C loop."""
    output = subprocess.run(
        [program, SMALL_FILE, str(count)], check=True, capture_output=True, text=True
    ).stdout
    wall, cpu = output.split()
    return float(wall), float(cpu)


def python_probe_microseconds(count: int) -> tuple:
    """Mean wall-clock and CPU microseconds per audiopipe.probe call from
    a Python loop."""
    start = time.perf_counter()
    cpu_start = time.process_time()
    for _ in range(count):
        audiopipe.probe(SMALL_FILE)
    wall = (time.perf_counter() - start) / count * 1e6
    cpu = (time.process_time() - cpu_start) / count * 1e6
    return wall, cpu


def pure_python_analysis(track: str) -> dict:
    """Probe with ffprobe and measure loudness with ffmpeg's ebur128."""
    probe = json.loads(
        subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_format",
                "-show_streams",
                "-of",
                "json",
                track,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    loudness = subprocess.run(
        [
            "ffmpeg",
            "-nostats",
            "-hide_banner",
            "-i",
            track,
            "-af",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    summary = loudness[loudness.rfind("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))
    return {
        "duration": float(probe["format"]["duration"]),
        "integrated_lufs": integrated,
        "true_peak_dbtp": peak,
    }


def bindings_analysis(track: str) -> dict:
    """Probe and measure loudness and true peak with audiopipe.analyze."""
    result = audiopipe.analyze(track)
    return {
        "duration": result.duration,
        "integrated_lufs": result.loudness.integrated_lufs,
        "true_peak_dbtp": result.loudness.true_peak_dbtp,
    }


def median_seconds(function, runs: int):
    """Run `function` `runs` times; return the median time and last value."""
    times = []
    value = None
    for _ in range(runs):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", required=True, help="CMake build folder")
    parser.add_argument("--track", help="real recording for the analysis run")
    parser.add_argument("--probe-calls", type=int, default=2000,
                        help="calls per probe loop (default 2000)")
    parser.add_argument("--runs", type=int, default=5,
                        help="runs per analysis timing (default 5)")
    arguments = parser.parse_args()

    track = arguments.track or longest_freedesktop_track()
    with tempfile.TemporaryDirectory(prefix="audiopipe-bench-") as work_dir:
        program = build_probe_loop(arguments.build_dir, work_dir)
        # Warm the page cache and the library before timing.
        c_probe_microseconds(program, 50)
        python_probe_microseconds(50)
        # Alternate the two loops and keep each one's fastest round, so a
        # burst of load from other processes on the machine does not land
        # on one side only.
        c_rounds = []
        python_rounds = []
        for _ in range(PROBE_ROUNDS):
            c_rounds.append(c_probe_microseconds(program, arguments.probe_calls))
            python_rounds.append(python_probe_microseconds(arguments.probe_calls))
        c_wall = min(wall for wall, _ in c_rounds)
        c_cpu = min(cpu for _, cpu in c_rounds)
        python_wall = min(wall for wall, _ in python_rounds)
        python_cpu = min(cpu for _, cpu in python_rounds)

    bindings_analysis(track)
    pure_python_analysis(track)
    bindings_time, bindings_values = median_seconds(
        lambda: bindings_analysis(track), arguments.runs
    )
    ffmpeg_time, ffmpeg_values = median_seconds(
        lambda: pure_python_analysis(track), arguments.runs
    )

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, libaudiopipe "
          f"{audiopipe.library_version()}")
    print(f"probe of {os.path.basename(SMALL_FILE)}, "
          f"{arguments.probe_calls} calls a round, fastest of "
          f"{PROBE_ROUNDS} alternating rounds:")
    print("                          wall us/call   CPU us/call")
    print(f"  C ap_probe_file        {c_wall:12.1f} {c_cpu:13.1f}")
    print(f"  Python audiopipe.probe {python_wall:12.1f} {python_cpu:13.1f}")
    print(f"  overhead               {python_wall - c_wall:12.1f} "
          f"{python_cpu - c_cpu:13.1f}  (CPU ratio {python_cpu / c_cpu:.2f}x)")
    print(f"analysis of {track}, median of {arguments.runs} runs:")
    print(f"  audiopipe.analyze     {bindings_time * 1000:9.1f} ms  {bindings_values}")
    print(f"  ffprobe + ffmpeg      {ffmpeg_time * 1000:9.1f} ms  {ffmpeg_values}")
    print(f"  ratio ffmpeg/audiopipe {ffmpeg_time / bindings_time:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
