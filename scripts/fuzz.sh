#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-DAP_FUZZ=ON) and runs them:
#   fuzz_probe for SECONDS seconds on a corpus seeded from tests/data/cases
#   and from small files generated with ffmpeg, then
#   fuzz_http_request (the request parsers of audiopipe-httpd: JSON bodies,
#   query strings, signed URL parameters, routes) for AP_FUZZ_HTTP_SECONDS
#   seconds (default 30) on a corpus seeded from fuzz/corpus/http_request.
# A crash input is saved under the build folder's fuzz-artifacts/ and the
# script exits non-zero. Copy a prober crash into
# tests/data/fuzz-regressions/ so the normal suite replays it, and a
# request crash into fuzz/corpus/http_request/ so every later run starts
# from it.
#
# Usage: scripts/fuzz.sh [--no-build] SECONDS
# AP_FUZZ_BUILD_DIR sets the build folder (default build-fuzz/).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

build=1
if [[ ${1:-} == --no-build ]]; then
  build=0
  shift
fi
seconds=${1:?usage: scripts/fuzz.sh [--no-build] SECONDS}
http_seconds=${AP_FUZZ_HTTP_SECONDS:-30}
for value in "$seconds" "$http_seconds"; do
  if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 1)); then
    echo "fuzz.sh: SECONDS and AP_FUZZ_HTTP_SECONDS must be positive" \
      "integers, got \"$value\"" >&2
    exit 2
  fi
done
build_dir=${AP_FUZZ_BUILD_DIR:-$root/build-fuzz}

if ((build)); then
  CC=clang cmake -S "$root" -B "$build_dir" -DAP_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAP_BUILD_TESTS=OFF \
    -DAP_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$build_dir" -j"${AP_TEST_JOBS:-2}" --target fuzz_probe \
    fuzz_http_request
fi

# Seeds: the real cases plus tiny generated files of every container the
# prober reads, so mutations start from each parser's happy path.
seeds=$build_dir/fuzz-seeds
corpus=$build_dir/fuzz-corpus
artifacts=$build_dir/fuzz-artifacts
mkdir -p "$seeds" "$corpus" "$artifacts"
cp "$root"/tests/data/cases/* "$seeds"/
if [[ -d $root/tests/data/fuzz-regressions ]]; then
  find "$root/tests/data/fuzz-regressions" -type f ! -name README.md \
    -exec cp {} "$seeds"/ \;
fi

generate() {
  local name=$1
  shift
  [[ -s $seeds/$name ]] && return 0
  ffmpeg -nostdin -v error -y -f lavfi -i "sine=frequency=440:duration=0.3" \
    -ar 8000 "$@" "$seeds/$name" || echo "fuzz.sh: could not generate $name"
}
generate gen-s16.wav -c:a pcm_s16le
generate gen-f32.wav -c:a pcm_f32le
generate gen-rf64.wav -c:a pcm_s16le -rf64 always
generate gen-mulaw.wav -c:a pcm_mulaw
generate gen.aiff -c:a pcm_s16be
generate gen.flac -c:a flac
generate gen.mp3 -c:a libmp3lame -b:a 32k
generate gen.ogg -c:a libvorbis
generate gen-opus.ogg -c:a libopus -ar 48000
generate gen.webm -c:a libopus -ar 48000
generate gen.m4a -c:a aac -b:a 32k
generate gen-faststart.m4a -c:a aac -b:a 32k -movflags +faststart
generate gen.aac -c:a aac -b:a 32k -f adts
generate gen.caf -c:a pcm_s16le -f caf

# -max_len keeps mutations small (seeds are truncated to it) so each run
# stays fast; -timeout flags any input that takes over 10 s.
"$build_dir/fuzz/fuzz_probe" \
  -max_total_time="$seconds" \
  -max_len=65536 \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -print_final_stats=1 \
  -dict="$root/fuzz/probe.dict" \
  -artifact_prefix="$artifacts/" \
  "$corpus" "$seeds"

if [[ ! -x $build_dir/fuzz/fuzz_http_request ]]; then
  echo "fuzz.sh: $build_dir/fuzz/fuzz_http_request is missing: configure" \
    "with -DAP_BUILD_SERVERS=ON and build the fuzz_http_request target" >&2
  exit 1
fi
http_corpus=$build_dir/fuzz-corpus-http
mkdir -p "$http_corpus"
# The request parsers. 8 KiB passes the 4 KiB query limit
# (HTTPD_QUERY_MAX_BYTES) and fits any realistic JSON body, while keeping
# each execution short.
"$build_dir/fuzz/fuzz_http_request" \
  -max_total_time="$http_seconds" \
  -max_len=8192 \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -print_final_stats=1 \
  -artifact_prefix="$artifacts/http-" \
  "$http_corpus" "$root/fuzz/corpus/http_request"
