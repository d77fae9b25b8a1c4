#!/usr/bin/env bash
# Runs the product's main job end to end on embedded defaults (SQLite
# metadata, file object store, db queue): installs missing packages,
# builds, starts audiopipe-httpd and audiopipe-worker on free loopback
# ports with a temporary data directory and API key, then with curl
# uploads a real recording through a presigned URL, completes the upload,
# prints the server-sent progress events as they arrive, and prints the
# results (duration, integrated loudness, true peak, waveform and
# rendition locations), downloading the waveform and one rendition. Both
# servers are stopped by PID on exit.
#
# The recording is the longest file of Debian's sound-theme-freedesktop
# (in Debian 12, alarm-clock-elapsed.oga, 6.1 s), or AP_MAIN_JOB_INPUT.
# Run as root on a fresh machine so missing packages can be installed.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${AP_MAIN_JOB_BUILD:-$root/build-main-job}
# libmongoc's counters in private memory (see scripts/test.sh).
export MONGOC_DISABLE_SHM=1

scripts/install-deps.sh
if [[ ! -d /usr/share/sounds/freedesktop/stereo && -z ${AP_MAIN_JOB_INPUT:-} ]]; then
  echo "main-job.sh: no recording found: install sound-theme-freedesktop" \
    "or set AP_MAIN_JOB_INPUT=FILE" >&2
  exit 1
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DAP_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target audiopipe_httpd audiopipe_worker
httpd=$build/servers/httpd/audiopipe-httpd
worker=$build/servers/worker/audiopipe-worker

# The input: the longest sound of the theme, measured so a newer theme
# version still works.
input=${AP_MAIN_JOB_INPUT:-}
if [[ -z $input ]]; then
  input=$(for file in /usr/share/sounds/freedesktop/stereo/*.oga; do
    printf '%s %s\n' "$(ffprobe -v error -show_entries format=duration \
      -of csv=p=0 "$file")" "$file"
  done | sort -n | tail -n 1 | cut -d' ' -f2-)
fi
if [[ ! -f $input ]]; then
  echo "main-job.sh: no recording found; set AP_MAIN_JOB_INPUT" >&2
  exit 1
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

data=$(mktemp -d -t audiopipe-main-job.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$data"
}
trap cleanup EXIT

http_port=$(free_port)
metrics_port=$(free_port)
base=http://127.0.0.1:$http_port
api_key=ak-main-job-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
echo "demo $("$httpd" --hash-key "$api_key")" >"$data/keys"

export AUDIOPIPE_METADATA_URI=sqlite://$data/meta.db
export AUDIOPIPE_OBJECTS_URI=file://$data/objects
export AUDIOPIPE_SIGNING_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export AUDIOPIPE_PUBLIC_BASE_URL=$base
export AUDIOPIPE_HTTP_API_KEYS_FILE=$data/keys

"$httpd" --listen "127.0.0.1:$http_port" 2>"$data/httpd.log" &
pids+=($!)
"$worker" --concurrency 2 --metrics-listen "127.0.0.1:$metrics_port" \
  2>"$data/worker.log" &
pids+=($!)

for _ in $(seq 100); do
  curl -sf "$base/healthz" >/dev/null && break
  sleep 0.1
done

auth=(-H "Authorization: Bearer $api_key")
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

size=$(stat -c %s "$input")
filename=$(basename "$input")
echo "input: $input ($size bytes)"

ticket=$(curl -sfS "${auth[@]}" -H 'Content-Type: application/json' \
  -d "{\"filename\":\"$filename\",\"size_bytes\":$size,\"content_type\":\"audio/ogg\"}" \
  "$base/v1/uploads")
upload_id=$(json 'd["upload_id"]' <<<"$ticket")
url=$(json 'd["url"]' <<<"$ticket")
echo "upload: $upload_id"

# PUT with exactly the headers of the ticket.
put_headers=()
while IFS= read -r line; do
  put_headers+=(-H "$line")
done < <(json '"\n".join(k + ": " + str(v) for k, v in d["headers"].items())' <<<"$ticket")
curl -sfS -X PUT "${put_headers[@]}" --data-binary "@$input" "$url" >/dev/null
echo "PUT done"

asset=$(curl -sfS -X POST "${auth[@]}" "$base/v1/uploads/$upload_id/complete")
asset_id=$(json 'd["id"]' <<<"$asset")
job_id=$(json 'd["job_id"]' <<<"$asset")
echo "asset: $asset_id, job: $job_id"

echo "progress events:"
curl -sfSN --max-time 300 "${auth[@]}" "$base/v1/jobs/$job_id/events" |
  while IFS= read -r line; do
    if [[ $line == data:* ]]; then
      echo "  ${line#data: }"
    fi
  done

result=$(curl -sfS "${auth[@]}" "$base/v1/assets/$asset_id")
python3 - "$result" <<'PYTHON'
"""Prints the asset's headline results."""
import json
import sys

asset = json.loads(sys.argv[1])
analysis = asset.get("analysis") or {}
media = analysis.get("media") or asset.get("probe") or {}
loudness = analysis.get("analysis") or {}
def rounded(value, digits):
    """Formats a number to `digits` decimals, or "undefined" for null."""
    return "undefined" if value is None else "%.*f" % (digits, value)


print("status:", asset.get("status"))
print("duration: %s s" % rounded(media.get("duration"), 3))
integrated = loudness.get("integrated_lufs")
reason = loudness.get("integrated_lufs_undefined_reason")
if integrated is None:
    print("integrated loudness: undefined (%s)" % reason)
else:
    print("integrated loudness: %.1f LUFS" % integrated)
print("true peak: %s dBTP" % rounded(loudness.get("true_peak_dbtp"), 1))
for kind in ("waveforms", "renditions"):
    for name, entry in sorted((asset.get(kind) or {}).items()):
        print("%s %s: %s (%s bytes)" % (kind[:-1], name, entry.get("key"),
                                         entry.get("size_bytes")))
PYTHON

curl -sfS "${auth[@]}" -o "$data/waveform.dat" \
  "$base/v1/assets/$asset_id/waveform"
echo "waveform downloaded: $(stat -c %s "$data/waveform.dat") bytes"
curl -sfSL "${auth[@]}" -o "$data/rendition.opus" \
  "$base/v1/assets/$asset_id/renditions/opus_64k"
echo "rendition opus_64k downloaded: $(stat -c %s "$data/rendition.opus") bytes"
