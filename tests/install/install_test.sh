#!/usr/bin/env bash
# Packaging test: installs a built tree into a temporary prefix and checks
# the installed library as its users get it. The examples are built from
# outside the source tree twice, with pkg-config and with
# find_package(audiopipe), and run on real case files. The shared
# library's SONAME, its exported symbols, the pkg-config metadata and
# static linking are checked too.
#
# Usage: install_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
# EXTRA_CFLAGS (optional) is added when compiling and linking the examples,
# so a sanitizer build links its instrumented library.
set -euo pipefail

build_dir=$1
source_dir=$2
work_dir=$3
cases=$source_dir/tests/data/cases
extra_cflags=${EXTRA_CFLAGS:-}

failures=0
check() {
  local name=$1
  shift
  if "$@"; then
    echo "ok: $name"
  else
    echo "FAILED: $name"
    failures=$((failures + 1))
  fi
}

rm -rf "$work_dir"
mkdir -p "$work_dir"
prefix=$work_dir/prefix

# Install exactly as a packager would.
cmake --install "$build_dir" --prefix "$prefix" >"$work_dir/install.log"

# GNUInstallDirs picks lib or lib64 (or a multiarch folder under /usr), so
# find the folder that contains the pkg-config file.
pc_file=$(find "$prefix" -name libaudiopipe.pc -print -quit)
if [[ -z $pc_file ]]; then
  echo "FAILED: libaudiopipe.pc is not installed under $prefix"
  exit 1
fi
libdir=$(dirname "$(dirname "$pc_file")")
export PKG_CONFIG_PATH=$libdir/pkgconfig
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# The shared library: SONAME and exported symbols.
# Tool output is captured before grep reads it: under pipefail, grep -q
# closing a pipe early would fail the producer with SIGPIPE.
soname_is_0() {
  local dynamic
  dynamic=$(readelf -d "$libdir/libaudiopipe.so")
  grep -q 'SONAME.*\[libaudiopipe\.so\.0\]' <<<"$dynamic"
}
check "SONAME is libaudiopipe.so.0" soname_is_0

only_ap_symbols() {
  local symbols others
  symbols=$(nm -D --defined-only "$libdir/libaudiopipe.so" | awk '{print $NF}')
  others=$(grep -v '^ap_' <<<"$symbols" || true)
  if [[ -n $others ]]; then
    echo "symbols outside ap_*: $others"
    return 1
  fi
  grep -qx 'ap_probe' <<<"$symbols"
}
check "only ap_* symbols are exported" only_ap_symbols

# pkg-config metadata: every dependency is a private requirement, so a
# static link pulls them in and a shared link does not.
requires_private_complete() {
  local requires module missing=0
  requires=$(pkg-config --print-requires-private libaudiopipe)
  for module in libavformat libavcodec libswresample libavutil \
    sndfile json-c sqlite3 libcurl openssl hiredis libmongoc-1.0; do
    if ! grep -qx "$module" <<<"$requires"; then
      echo "missing from Requires.private: $module"
      missing=1
    fi
  done
  return $missing
}
check "Requires.private lists every dependency" requires_private_complete

# Runs the two examples from `bin_dir` on case files and checks their
# output against facts known from how the files were made. case-03.mp3 is
# 5.000 s of mono MP3 after the LAME delay and padding are trimmed.
# case-19.wav is a 10 s 48 kHz mono 1 kHz sine at -23 dBFS: BS.1770 reads
# it as -26.0 LUFS, and it gives 1875 pixels at 256 samples per pixel.
examples_work() {
  local bin_dir=$1 output
  output=$("$bin_dir/probe_file" "$cases/case-03.mp3") || return 1
  grep -qx 'container: mp3' <<<"$output" || { echo "$output"; return 1; }
  grep -qx 'channels: 1' <<<"$output" || { echo "$output"; return 1; }
  grep -q '^duration: 5\.000 s' <<<"$output" || { echo "$output"; return 1; }

  output=$("$bin_dir/process_file" "$cases/case-19.wav" \
    "$bin_dir/peaks.dat") || return 1
  # EBU Tech 3341 lets a meter read within 0.1 LU of the true value, and
  # the example rounds to 0.1 LU when it prints.
  python3 -c 'import re, sys
value = float(re.search(r"^integrated_loudness: (\S+) LUFS$", sys.argv[1], re.M)[1])
sys.exit(0 if abs(value + 26.0) <= 0.15 else 1)' "$output" ||
    { echo "$output"; return 1; }
  grep -qx 'waveform_pixels: 1875' <<<"$output" || { echo "$output"; return 1; }
  [[ -s $bin_dir/peaks.dat ]]
}

# Build with pkg-config, as a Makefile would.
build_with_pkg_config() {
  local out=$work_dir/pkg-config example
  mkdir -p "$out"
  for example in probe_file process_file; do
    # shellcheck disable=SC2046,SC2086
    cc -std=c11 $extra_cflags -o "$out/$example" \
      "$source_dir/examples/$example.c" \
      $(pkg-config --cflags --libs libaudiopipe) || return 1
  done
  examples_work "$out"
}
check "examples build and run with pkg-config" build_with_pkg_config

# Build with find_package(audiopipe) and audiopipe::audiopipe.
build_with_cmake() {
  local out=$work_dir/cmake
  cmake -S "$source_dir/examples/standalone" -B "$out" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="$extra_cflags" \
    -DCMAKE_EXE_LINKER_FLAGS="$extra_cflags" >"$work_dir/cmake.log" 2>&1 ||
    { cat "$work_dir/cmake.log"; return 1; }
  cmake --build "$out" >>"$work_dir/cmake.log" 2>&1 ||
    { cat "$work_dir/cmake.log"; return 1; }
  examples_work "$out"
}
check "examples build and run with find_package" build_with_cmake

# Prints the flags of `pkg-config --static --libs libaudiopipe` without
# the -l flags of libraries that are not installed. Debian's FFmpeg .pc
# files list FFmpeg's own private dependencies (libgme, libbluray, ...),
# whose -dev packages a system with shared FFmpeg does not need, because
# the shared libav* libraries already name them in DT_NEEDED.
static_link_flags() {
  local flag name kept=()
  for flag in $(pkg-config --static --libs libaudiopipe); do
    if [[ $flag == -laudiopipe ]]; then
      kept+=("-l:libaudiopipe.a")
      continue
    fi
    if [[ $flag == -l* ]]; then
      name=${flag#-l}
      if [[ $(cc -print-file-name="lib$name.so") != /* &&
        $(cc -print-file-name="lib$name.a") != /* ]]; then
        continue
      fi
    fi
    kept+=("$flag")
  done
  echo "${kept[*]}"
}

# Static link through `pkg-config --static`: the archive is named
# explicitly because -laudiopipe prefers the shared library.
build_static() {
  local out=$work_dir/static flags
  mkdir -p "$out"
  flags=$(static_link_flags)
  # shellcheck disable=SC2086
  cc -std=c11 $extra_cflags -o "$out/probe_file" \
    "$source_dir/examples/probe_file.c" \
    $(pkg-config --cflags libaudiopipe) $flags || return 1
  local dynamic
  dynamic=$(readelf -d "$out/probe_file")
  if grep -q 'NEEDED.*libaudiopipe' <<<"$dynamic"; then
    echo "the static build still needs libaudiopipe.so"
    return 1
  fi
  local output
  output=$("$out/probe_file" "$cases/case-03.mp3") || return 1
  grep -qx 'container: mp3' <<<"$output"
}
check "static library links with pkg-config --static" build_static

if ((failures > 0)); then
  echo "$failures packaging check(s) failed"
  exit 1
fi
echo "all packaging checks passed"
