#!/usr/bin/env bash
# `make test`: install everything (scripts/setup.sh), then run every suite in one pytest session:
# tests/unit, tests/integration, tests/browser (pytest.ini testpaths). Services the tests need
# (Redis, Celery worker, live server) are started by their fixtures. Extra arguments go to pytest,
# e.g. `scripts/test.sh tests/unit -x` or `make test ARGS="-m 'not browser'"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=()
# Always the test settings, whatever DJANGO_SETTINGS_MODULE the shell has (e.g. from `make run`).
[ -f config/settings/test.py ] && args+=(--ds=config.settings.test)
if [ $# -eq 0 ]; then
  # every suite folder that exists (git keeps no empty folders)
  for d in tests/unit tests/integration tests/browser; do [ -d "$d" ] && args+=("$d"); done
  [ -d tests/unit ] || [ -d tests/integration ] || [ -d tests/browser ] || args+=(tests)
fi
rc=0
.venv/bin/python -m pytest "${args[@]}" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests (exit 5): nothing failed"
  rc=0
fi
exit "$rc"
