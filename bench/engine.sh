#!/usr/bin/env bash
# Engine benchmark: audiopipe against the usual ffmpeg command chain on a
# 9-minute music track in four formats. Prints each measurement and the
# ratios; raw hyperfine output goes to bench/results/.
#
# The track is built from Endgame: Singularity's soundtrack (Debian
# package singularity-music, music by Max McCracken, CC BY-SA 3.0):
# "Media Threat" (348 s) followed by the first 192 s of "A New Journey",
# 540 s in all, 44.1 kHz stereo.
#
# Usage: bench/engine.sh [AUDIOPIPE...]
# AP_BENCH_RUNS (default 3) and AP_BENCH_WARMUP (default 1) set hyperfine's
# runs, AP_BENCH_FORMATS (default "mp3 flac m4a opus") the formats, and
# AP_BENCH_RESULTS (default bench/results) where the outputs go, and
# AP_BENCH_LONG=0 skips the 3-hour memory run.
#   AUDIOPIPE  the tools to measure (default: build-bench/servers/cli/audiopipe,
#              built in Release here when missing). With several, each
#              format measures them one after another, so builds compared
#              in one run share the machine's load. The ffmpeg commands
#              run once per format.
# Run as root the first time so missing packages can be installed.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
results=${AP_BENCH_RESULTS:-$root/bench/results}
work=$results/work
mkdir -p "$results" "$work"
runs=${AP_BENCH_RUNS:-3}
warmup=${AP_BENCH_WARMUP:-1}
read -r -a formats <<<"${AP_BENCH_FORMATS:-mp3 flac m4a opus}"

scripts/install-deps.sh hyperfine singularity-music time

if [[ $# -eq 0 ]]; then
  set -- "$root/build-bench/servers/cli/audiopipe"
  if [[ ! -x $1 ]]; then
    cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release \
      -DAP_BUILD_TESTS=OFF >/dev/null
    cmake --build "$root/build-bench" -j2 --target audiopipe_cli
  fi
fi
tools=("$@")
for tool in "${tools[@]}"; do
  if [[ ! -x $tool ]]; then
    echo "bench/engine.sh: $tool is not an executable audiopipe" >&2
    exit 2
  fi
done

# Prepare the track once in every format.
music=/usr/share/games/singularity/music
master=$work/track.wav
if [[ ! -s $master ]]; then
  ffmpeg -nostdin -v error -y -i "$music/Media Threat.ogg" \
    -i "$music/A New Journey.ogg" -filter_complex \
    "[1:a]atrim=duration=192[b];[0:a][b]concat=n=2:v=0:a=1,aresample=44100" \
    -c:a pcm_s16le "$master"
fi
declare -A encode=(
  [mp3]="-c:a libmp3lame -b:a 192k"
  [flac]="-c:a flac"
  [m4a]="-c:a aac -b:a 192k"
  [opus]="-c:a libopus -b:a 128k"
)
for format in mp3 flac m4a opus; do
  if [[ ! -s $work/track.$format ]]; then
    # shellcheck disable=SC2086
    ffmpeg -nostdin -v error -y -i "$master" ${encode[$format]} \
      "$work/track.$format"
  fi
done
duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 \
  "$master")
echo "track: $duration s; formats: ${formats[*]}; $runs runs each"

# Mean wall-clock seconds of one command, from hyperfine's JSON export.
measure() {
  local name=$1
  shift
  hyperfine --style none --runs "$runs" --warmup "$warmup" \
    --export-json "$results/$name.json" "$@" >/dev/null
  python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["results"][0]["mean"])' \
    "$results/$name.json"
}

printf '\n%-6s %-5s %12s %12s %8s %12s %8s %14s\n' format tool audiopipe \
  ffmpeg-chain ratio ffmpeg-opus ratio analysis-x-rt
for format in "${formats[@]}"; do
  input=$work/track.$format

  # (b) the usual chain: probe, then loudness, then the rendition.
  b=$(measure "chain-$format" "ffprobe -v error -show_format -show_streams \
    $input >/dev/null && ffmpeg -nostdin -v info -i $input \
    -af ebur128=peak=true -f null - 2>/dev/null && ffmpeg -nostdin -v error \
    -y -i $input -c:a libopus -b:a 64k $work/chain.opus")

  # (c) ffmpeg's own decode plus Opus encode alone.
  c=$(measure "ffmpeg-opus-$format" "ffmpeg -nostdin -v error -y -i $input \
    -c:a libopus -b:a 64k $work/ffmpeg.opus")

  for index in "${!tools[@]}"; do
    audiopipe=${tools[$index]}

    # (a) audiopipe: analysis, a waveform and an Opus 64k rendition.
    a=$(measure "audiopipe-$index-$format" "$audiopipe process --quiet \
      --waveform dat:256:$work/out.dat --rendition opus:64k:$work/out.opus \
      $input >/dev/null")

    # (d) analysis only on one thread, as times realtime.
    d=$(measure "analysis-$index-$format" "$audiopipe process --quiet \
      --threads 1 $input >/dev/null")

    python3 - "$format" "$index" "$a" "$b" "$c" "$d" "$duration" <<'PYTHON'
import sys
fmt, index = sys.argv[1], sys.argv[2]
a, b, c, d, duration = map(float, sys.argv[3:])
print(f"{fmt:6} {index:5} {a:11.3f}s {b:11.3f}s {b / a:7.2f}x {c:11.3f}s "
      f"{c / a:7.2f}x {duration / d:13.1f}x")
PYTHON
  done
done
echo "ratio: the ffmpeg time divided by audiopipe's (above 1: audiopipe is faster)"
for index in "${!tools[@]}"; do
  echo "tool $index: ${tools[$index]}"
done

if [[ ${AP_BENCH_LONG:-1} == 0 ]]; then
  exit 0
fi

# (e) peak memory on a 3-hour MP3 made by looping the track 20 times.
long=$work/track-3h.mp3
if [[ ! -s $long ]]; then
  ffmpeg -nostdin -v error -y -stream_loop 19 -i "$work/track.mp3" \
    -c copy "$long"
fi
# The last tool given is the one measured.
/usr/bin/time -v "${tools[-1]}" process --quiet \
  --waveform "dat:256:$work/long.dat" --rendition "opus:64k:$work/long.opus" \
  "$long" >/dev/null 2>"$results/rss-3h.txt"
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$results/rss-3h.txt")
elapsed=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$results/rss-3h.txt")
echo
echo "3-hour MP3 with waveform and Opus 64k: peak RSS $((rss / 1024)) MiB, wall clock $elapsed"
