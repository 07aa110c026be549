#!/usr/bin/env bash
# `make test`: install everything (scripts/setup.sh), run the linters (scripts/lint.sh: ruff,
# import-linter's layer contracts, ESLint), then every suite in one pytest session: tests/unit,
# tests/integration, tests/browser (pytest.ini testpaths). Services the tests need (Redis, Celery
# worker, live server) are started by their fixtures. Extra arguments go to pytest, e.g.
# `scripts/test.sh tests/unit -x` or `make test ARGS="-m 'not browser'"`. The tests run even when
# a linter fails, and the command then fails too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
lint_rc=0
bash scripts/lint.sh || lint_rc=$?
args=()
# Always the test settings, whatever DJANGO_SETTINGS_MODULE the shell has (e.g. from `make run`).
[ -f config/settings/test.py ] && args+=(--ds=config.settings.test)
if [ $# -eq 0 ]; then
  # every suite folder that exists (git keeps no empty folders)
  for d in tests/unit tests/integration tests/browser; do [ -d "$d" ] && args+=("$d"); done
  [ -d tests/unit ] || [ -d tests/integration ] || [ -d tests/browser ] || args+=(tests)
fi
# Two processes (pytest-xdist): tests that share a live stack stay on one of them (tests/conftest.py
# groups them); PYTEST_WORKERS=0 runs everything in this one process.
args+=(-n "${PYTEST_WORKERS:-2}" --dist loadgroup)
rc=0
.venv/bin/python -m pytest "${args[@]}" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests (exit 5): nothing failed"
  rc=0
fi
if [ "$lint_rc" -ne 0 ]; then
  echo "[test] the linters failed (scripts/lint.sh, above)"
  [ "$rc" -ne 0 ] || rc=$lint_rc
fi
exit "$rc"
