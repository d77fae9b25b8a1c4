#!/usr/bin/env bash
# Installs the Debian 12 packages listed in scripts/deps.txt that are not
# installed yet. Run as root. Extra package names given as arguments are
# installed too (bench/engine.sh passes hyperfine).
set -euo pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)

packages=()
while read -r line; do
  line=${line%%#*}
  line=${line//[[:space:]]/}
  [[ -n $line ]] && packages+=("$line")
done <"$script_dir/deps.txt"
packages+=("$@")

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
    grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done

# Debian's npm conflicts with Node.js builds that bundle their own npm, so
# it is wanted only when no npm command exists at all.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if ((${#missing[@]} == 0)); then
  exit 0
fi

if ((EUID != 0)); then
  echo "install-deps.sh: missing packages: ${missing[*]}; run as root (sudo)" >&2
  exit 1
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
