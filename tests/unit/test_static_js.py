"""Runs the player's JavaScript unit tests (tests/js/*.test.mjs) under node's test runner.

They cover static/js/player/stream.js (chunk order, duplicates, reconnect from the first
missing chunk, "done" with a gap) and transport.js (look-ahead scheduling, late notes,
waiting for the stream, seek, pause, page stalls) without a browser.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_player_js_units():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (scripts/setup.sh installs nodejs)")
    files = sorted(str(p) for p in (REPO / "tests" / "js").glob("*.test.mjs"))
    assert files, "no tests/js/*.test.mjs"
    proc = subprocess.run([node, "--test", *files], cwd=REPO, capture_output=True, text=True, timeout=120)
    summary = [line for line in proc.stdout.splitlines() if line.startswith(("# pass", "# fail"))]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert summary and summary[0].split()[-1] != "0", summary
    print(" ".join(summary))
