#!/usr/bin/env bash
# Runs the headless Chromium test of the Flask example page. Exits 77
# (skipped, for ctest's SKIP_RETURN_CODE) when Debian's chromium or the
# playwright-core npm package is missing, and names the missing one.
# Usage: run_browser_test.sh ARTEFACT_DIR
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
artefacts=${1:?usage: run_browser_test.sh ARTEFACT_DIR}

if [[ ! -x /usr/bin/chromium ]]; then
  echo "SKIP: /usr/bin/chromium is missing; install Debian's chromium" >&2
  exit 77
fi
if ! command -v node >/dev/null; then
  echo "SKIP: node is missing; install Debian's nodejs" >&2
  exit 77
fi
if [[ ! -d $here/node_modules/playwright-core ]]; then
  # The browser itself comes from Debian: never let npm download one.
  if ! (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm install --no-audit --no-fund >&2); then
    echo "SKIP: playwright-core could not be installed with npm" >&2
    exit 77
  fi
fi

exec node "$here/browser_test.js" "$artefacts"
