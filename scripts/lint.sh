#!/usr/bin/env bash
# `make lint`: ruff (style and bugs), import-linter (the layers webapp -> ml -> render, see
# pyproject.toml) and ESLint (static/js, eslint.config.mjs). Expects `scripts/setup.sh` to have
# run (the .venv and node_modules); `make test` (scripts/test.sh) runs this before pytest.
# Exits non-zero when any of the three finds a problem; all three run either way.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
echo "[lint] ruff"
.venv/bin/ruff check --quiet . || rc=1
echo "[lint] import-linter"
# (its report, banner included, is printed only when a contract is broken)
out=$(.venv/bin/lint-imports 2>&1) || { printf '%s\n' "$out"; rc=1; }
if [ -f package.json ]; then
  echo "[lint] eslint"
  npm run --silent lint || rc=1
fi
[ "$rc" -eq 0 ] && echo "[lint] ok" || echo "[lint] FAILED (see above)"
exit "$rc"
