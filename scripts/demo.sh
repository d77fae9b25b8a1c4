#!/usr/bin/env bash
# Runs the main job end to end on a real recording. It installs missing
# dependencies and builds a Release tree in build-demo/. It then runs
# `audiopipe probe` and `audiopipe process` on the longest sound of the
# freedesktop sound theme (in Debian 12, alarm-clock-elapsed.oga: Ogg
# Vorbis, 6.1 s, CC-BY-SA-3.0), writing a .dat and a JSON waveform, an Opus
# 64 kb/s and an MP3 rendition. Last it prints a short summary and the
# paths of everything written. Run as root on a fresh
# machine (`sudo scripts/demo.sh`) so missing packages can be installed.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=$root/build-demo
out=$build/demo

scripts/install-deps.sh

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DAP_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"${AP_DEMO_JOBS:-2}" --target audiopipe_cli
audiopipe=$build/servers/cli/audiopipe

# The recording of maximum duration in the theme, measured rather than hard-coded so a
# newer theme version still works.
sounds=/usr/share/sounds/freedesktop/stereo
input=$(for file in "$sounds"/*.oga; do
  printf '%s %s\n' "$(ffprobe -v error -show_entries format=duration \
    -of csv=p=0 "$file")" "$file"
done | sort -n | tail -n 1 | cut -d' ' -f2-)
if [[ -z $input ]]; then
  echo "demo.sh: no recording found in $sounds" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out"
echo "input: $input"

"$audiopipe" probe "$input" >"$out/probe.json"
"$audiopipe" process "$input" \
  --waveform "dat:256:$out/waveform.dat" \
  --waveform "json,bits=8:100pps:$out/waveform.json" \
  --rendition "opus:64k:$out/rendition.opus" \
  --rendition "mp3:128k:$out/rendition.mp3" \
  >"$out/process.json"

python3 - "$out" <<'PYTHON'
"""Prints a short human summary of the demo's probe and process JSON."""
import json
import math
import os
import sys

out = sys.argv[1]
with open(os.path.join(out, "probe.json")) as f:
    probe = json.load(f)
with open(os.path.join(out, "process.json")) as f:
    result = json.load(f)


def find(document, *names):
    """Returns the first value stored under one of `names`, searching
    nested objects breadth-first, or None."""
    queue = [document]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            for name in names:
                if name in node and not isinstance(node[name], (dict, list)):
                    return node[name]
            queue.extend(node.values())
        elif isinstance(node, list):
            queue.extend(node)
    return None


def number(value, unit):
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return "undefined"
    return f"{value:.2f} {unit}" if isinstance(value, (int, float)) else str(value)


def size(path):
    return f"{os.path.getsize(path):,} bytes"


print()
print("container / codec:", find(probe, "container"), "/", find(probe, "codec"))
print("duration:         ", number(find(result, "duration_seconds", "duration"), "s"))
print("loudness:         ", number(find(result, "integrated_lufs", "integrated_loudness_lufs"), "LUFS"))
print("true peak:        ", number(find(result, "true_peak_dbtp"), "dBTP"))
waveforms = result.get("waveforms") or [{}, {}]
for name, facts in zip(("waveform.dat", "waveform.json"), waveforms):
    pixels = facts.get("pixels")
    detail = f", {pixels} pixels" if pixels is not None else ""
    print(f"{name + ':':18} {size(os.path.join(out, name))}{detail}")
for name in ("rendition.opus", "rendition.mp3"):
    print(f"{name + ':':18} {size(os.path.join(out, name))}")
print()
for name in ("probe.json", "process.json"):
    print("JSON:", os.path.join(out, name))
PYTHON
