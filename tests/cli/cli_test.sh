#!/usr/bin/env bash
# End-to-end tests of the audiopipe tool on real case files: exit codes,
# the one-line error format, strict option parsing, JSON on standard
# output, standard input, output files and the absence of terminal control
# characters when standard error is redirected.
#
# Usage: cli_test.sh AUDIOPIPE CASES_DIR WORK_DIR
set -uo pipefail

audiopipe=$(realpath "$1")
cases=$(realpath "$2")
work=$(realpath -m "$3")
rm -rf "$work"
mkdir -p "$work"
# Relative output names in the usage tests land here if they get through.
cd "$work" || exit 1

failures=0
fail() {
  echo "FAILED: $*"
  failures=$((failures + 1))
}

# Runs the tool with `stdin` as standard input, storing the exit code in
# $status and the two streams in $work/out and $work/err.
run() {
  local stdin=$1
  shift
  "$audiopipe" "$@" <"$stdin" >"$work/out" 2>"$work/err"
  status=$?
}

expect_status() {
  local name=$1 expected=$2
  if [[ $status != "$expected" ]]; then
    fail "$name: exit code $status, expected $expected; stderr: $(cat "$work/err")"
    return 1
  fi
  echo "ok: $name"
}

# Every failure is exactly one line `audiopipe: <what>: ... (<code name>)`.
expect_error_line() {
  local name=$1 code=$2
  local lines
  lines=$(wc -l <"$work/err")
  if [[ $lines != 1 ]]; then
    fail "$name: $lines lines on stderr, expected 1: $(cat "$work/err")"
  fi
  if ! grep -qE "^audiopipe: .*\($code\)$" "$work/err"; then
    fail "$name: stderr does not end with ($code): $(cat "$work/err")"
  fi
}

expect_stderr_contains() {
  local name=$1 text=$2
  grep -qF -- "$text" "$work/err" || fail "$name: stderr lacks \"$text\": $(cat "$work/err")"
}

expect_json() {
  local name=$1 file=$2
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$file" ||
    fail "$name: $file is not valid JSON"
}

# Help and version.
run /dev/null --help
expect_status "tool help" 0
for option in probe process; do
  grep -q "$option" "$work/out" || fail "tool help lacks $option"
done
run /dev/null process --help
expect_status "process help" 0
for option in --waveform --rendition --normalize --true-peak-ceiling \
  --dual-mono --silence-threshold --threads --quiet --max-input-bytes \
  --max-duration --max-channels --max-sample-rate --max-decode-time \
  --max-decoded-samples pps spp bits=8 split rate= channels=; do
  grep -qF -- "$option" "$work/out" || fail "process help lacks $option"
done
run /dev/null probe --help
expect_status "probe help" 0
grep -qF -- "--scan" "$work/out" || fail "probe help lacks --scan"
run /dev/null --version
expect_status "version" 0
grep -qE '^audiopipe [0-9]+\.[0-9]+\.[0-9]+ ' "$work/out" ||
  fail "version line: $(cat "$work/out")"

# Usage errors exit with 2 and name the option and the value.
run /dev/null
expect_status "no command" 2
run /dev/null frobnicate
expect_status "unknown command" 2 && expect_error_line "unknown command" invalid_argument
run /dev/null probe --frobnicate "$cases/case-03.mp3"
expect_status "unknown option" 2 && expect_stderr_contains "unknown option" --frobnicate
run /dev/null probe
expect_status "missing FILE" 2
run /dev/null probe "$cases/case-03.mp3" "$cases/case-05.mp3"
expect_status "two FILEs" 2
for threads in 2x "" " 2" 0x2 -1 257 1e1; do
  run /dev/null process --threads "$threads" "$cases/case-03.mp3"
  expect_status "--threads \"$threads\"" 2 &&
    expect_error_line "--threads \"$threads\"" invalid_argument &&
    expect_stderr_contains "--threads \"$threads\"" "--threads"
done
run /dev/null process --threads 2x "$cases/case-03.mp3"
expect_stderr_contains "--threads value in message" '"2x"'
run /dev/null probe --max-duration 5parsecs "$cases/case-03.mp3"
expect_status "--max-duration unit" 2 &&
  expect_error_line "--max-duration unit" invalid_config &&
  expect_stderr_contains "--max-duration unit" "--max-duration"
run /dev/null probe --max-channels 300 "$cases/case-03.mp3"
expect_status "--max-channels range" 2 &&
  expect_stderr_contains "--max-channels range" "--max-channels"
run /dev/null process --max-channels "$cases/case-03.mp3"
expect_status "--max-channels takes FILE as value" 2
for spec in dat:256 png:256:x.dat dat,bits=12:256:x.dat dat:0:x.dat \
  dat:99999999:x.dat dat:100fps:x.dat json,stereo:256:x.json; do
  run /dev/null process --waveform "$spec" "$cases/case-03.mp3"
  expect_status "--waveform $spec" 2
done
for spec in vorbis:64k:x.ogg opus:64q:x.opus opus:-64k:x.opus \
  flac:128k:x.flac mp3,channels=6:128k:x.mp3 mp3,rate=abc:128k:x.mp3 \
  opus,name=:64k:x.opus; do
  run /dev/null process --rendition "$spec" "$cases/case-03.mp3"
  expect_status "--rendition $spec" 2
done
run /dev/null process --normalize loud "$cases/case-03.mp3"
expect_status "--normalize value" 2
[[ -z $(ls -A "$work" | grep -v -e '^out$' -e '^err$') ]] ||
  fail "usage errors left files: $(ls -A "$work")"

# Probe: JSON on stdout, media errors exit with 1.
run /dev/null probe "$cases/case-03.mp3"
expect_status "probe mp3" 0 && expect_json "probe mp3" "$work/out"
grep -q '"mp3"' "$work/out" || fail "probe mp3: no \"mp3\" in $(cat "$work/out")"
[[ -s $work/err ]] && fail "probe mp3 wrote to stderr: $(cat "$work/err")"
run "$cases/case-03.mp3" probe -
expect_status "probe standard input" 0 && expect_json "probe stdin" "$work/out"
grep -q '"mp3"' "$work/out" || fail "probe stdin: no \"mp3\""
run /dev/null probe --scan "$cases/case-01.webm"
expect_status "probe --scan webm" 0 && expect_json "probe --scan" "$work/out"
run /dev/null probe "$cases/case-14.mp3"
expect_status "probe empty file" 1 && expect_error_line "probe empty" empty_input
run /dev/null probe - 
expect_status "probe empty stdin" 1 && expect_error_line "probe empty stdin" empty_input
run /dev/null probe "$cases/case-22.wav"
expect_status "probe multipart body" 1 &&
  expect_error_line "probe multipart" multipart_body
run /dev/null probe "$cases/case-16.wav"
expect_status "probe 65535 channels" 1 &&
  expect_error_line "probe channels" unsupported_channel_count
run /dev/null probe "$work/does-not-exist.wav"
expect_status "probe missing file" 1 && expect_error_line "probe missing" not_found
run /dev/null probe --max-duration 1s "$cases/case-19.wav"
expect_status "probe over --max-duration" 1 &&
  expect_error_line "probe --max-duration" duration_limit

# Process: outputs appear only on success.
run /dev/null process --waveform "json:441:$work/wave.json" \
  --waveform "dat,bits=8,split:100pps:$work/wave.dat" \
  --rendition "wav::$work/copy.wav" "$cases/case-21.wav"
expect_status "process waveform and wav" 0 && expect_json "process" "$work/out"
expect_json "waveform json" "$work/wave.json"
python3 - "$work/wave.json" <<'PYTHON' || fail "case-21 waveform is not 100 pixels"
import json, sys
# case-21.wav is 44100 frames, so 441 samples per pixel gives 100 pixels.
assert json.load(open(sys.argv[1]))["length"] == 100
PYTHON
[[ -s $work/wave.dat ]] || fail "process: no wave.dat"
[[ -s $work/copy.wav ]] || fail "process: no copy.wav"
[[ -s $work/err ]] && fail "process wrote to a redirected stderr: $(cat "$work/err")"

run /dev/null process --waveform "dat:256:$work/empty.dat" "$cases/case-14.mp3"
expect_status "process empty file" 1 && expect_error_line "process empty" empty_input
[[ -e $work/empty.dat ]] && fail "a failed process left empty.dat"
ls -A "$work" | grep -q 'empty\.dat\.partial-' && fail "a failed process left a temporary file"

run /dev/null process --rendition "opus:64k:$work/missing-dir/out.opus" \
  "$cases/case-03.mp3"
expect_status "process unwritable output" 3

for input in case-19.wav case-01.webm case-03.mp3 case-05.mp3; do
  run "$cases/$input" process --quiet --waveform "dat:441:$work/stdin.dat" -
  expect_status "process $input from standard input" 0 &&
    expect_json "process $input stdin" "$work/out"
  [[ -s $work/stdin.dat ]] || fail "process $input stdin: no waveform"
  rm -f "$work/stdin.dat"
done

# An output naming the input, or two outputs naming one file, is a usage
# error raised before anything is written.
cp "$cases/case-19.wav" "$work/input.wav"
run /dev/null process --quiet --rendition "wav::$work/input.wav" \
  "$work/input.wav"
expect_status "process output is the input" 2 &&
  expect_stderr_contains "output is the input" "is the input file"
cmp -s "$work/input.wav" "$cases/case-19.wav" ||
  fail "process output is the input: the input was changed"
run /dev/null process --quiet --rendition "mp3:128k:$work/same.mp3" \
  --waveform "dat:256:$work/./same.mp3" "$work/input.wav"
expect_status "process duplicate outputs" 2 &&
  expect_stderr_contains "duplicate outputs" "are the same file"
[[ -e $work/same.mp3 ]] && fail "process duplicate outputs: same.mp3 written"

# SIGINT cancels a run: exit 130, and no output or temporary file stays.
ffmpeg -nostdin -v error -y -f lavfi -i anoisesrc=d=600:r=44100 -ac 2 \
  "$work/long.wav"
mkdir "$work/tmp"
TMPDIR=$work/tmp "$audiopipe" process --quiet "$work/long.wav" \
  --rendition "aac:128k:$work/cancelled.m4a" \
  --rendition "mp3:128k:$work/cancelled.mp3" >"$work/out" 2>"$work/err" &
pid=$!
sleep 2
kill -INT "$pid"
wait "$pid"
status=$?
expect_status "process stopped by SIGINT" 130 &&
  expect_stderr_contains "SIGINT message" "stopped by signal 2"
leftover=$(ls -A "$work" | grep -c '^cancelled\.')
[[ $leftover == 0 ]] || fail "process stopped by SIGINT left $leftover output files"
[[ -z $(ls -A "$work/tmp") ]] || fail "process stopped by SIGINT left $(ls -A "$work/tmp")"
rm -f "$work/long.wav"

# migrate: a new database is brought to the current version once, and a
# second run changes nothing.
export AUDIOPIPE_METADATA_URI="sqlite://$work/migrate/meta.db"
export AUDIOPIPE_OBJECTS_URI="file://$work/migrate/objects"
export AUDIOPIPE_SIGNING_SECRET=0123456789abcdef0123456789abcdef
mkdir -p "$work/migrate"
run /dev/null migrate
expect_status "migrate a new database" 0 &&
  grep -qE '^metadata schema migrated from version 0 to [0-9]+$' "$work/out" ||
  fail "migrate a new database printed: $(cat "$work/out")"
run /dev/null migrate
expect_status "migrate again" 0 &&
  grep -qE '^metadata schema is at version [0-9]+: nothing to do$' \
    "$work/out" || fail "migrate again printed: $(cat "$work/out")"
run /dev/null migrate extra
expect_status "migrate with an argument" 2
export AUDIOPIPE_METADATA_URI="mysql://$work/migrate"
run /dev/null migrate
expect_status "migrate an unsupported store" 1
expect_error_line "migrate an unsupported store" unsupported
unset AUDIOPIPE_METADATA_URI AUDIOPIPE_OBJECTS_URI AUDIOPIPE_SIGNING_SECRET

if ((failures > 0)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all audiopipe checks passed"
