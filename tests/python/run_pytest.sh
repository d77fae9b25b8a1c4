#!/usr/bin/env bash
# Runs pytest on one test folder with the given interpreter. Exits 77
# (skipped) when pytest or Flask is not importable, naming the missing
# module, so ctest reports a skip rather than a pass.
# Usage: run_pytest.sh PYTHON TEST_DIR
set -euo pipefail

python=$1
tests=$2

for module in pytest flask; do
  if ! "$python" -c "import $module" 2>/dev/null; then
    echo "SKIP: $python cannot import $module; install python3-$module" >&2
    exit 77
  fi
done

exec "$python" -m pytest -q -p no:cacheprovider "$tests"
