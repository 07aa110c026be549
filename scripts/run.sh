#!/usr/bin/env bash
# `make run`: install everything (scripts/setup.sh), then start Redis, Daphne and a Celery worker
# (scripts/run.py; Ctrl-C stops them all).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m scripts.run
