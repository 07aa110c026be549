"""The pinned dependencies: runtime apart from tests and linters, and one Verovio on both sides.

The score is engraved by Verovio in Python (webapp.scores.engraving, render.readers) and displayed by
Verovio's WASM toolkit from npm (static/vendor/verovio, copied by scripts/collect_assets.py):
both must be the same release, or the page may draw what the server did not lay out.
"""
from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==(\S+)$")
DEV_ONLY = {"pytest", "pytest-django", "pytest-timeout", "playwright", "websockets", "ruff", "import-linter"}


def pins(name: str) -> dict[str, str]:
    """{package (lower case): version} of a requirements file; fails on a line that is not pinned."""
    out = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r "):
            continue
        m = PIN.match(line)
        assert m, f"{name}: {line!r} is not pinned with =="
        out[m.group(1).lower()] = m.group(3)
    return out


def test_runtime_and_dev_requirements_are_apart_and_pinned():
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text().splitlines()
    assert not DEV_ONLY & set(runtime), "test-only packages belong in requirements-dev.txt"
    assert DEV_ONLY <= set(dev)
    assert not set(runtime) & set(dev), "a package is pinned in both files"


def test_one_verovio_in_python_and_in_the_browser():
    py = pins("requirements.txt")["verovio"]
    package = json.loads((REPO / "package.json").read_text())
    assert package["dependencies"]["verovio"] == py, "package.json and requirements.txt pin other verovio versions"
    lock = json.loads((REPO / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/verovio"]["version"] == py
    assert version("verovio") == py, ".venv has another verovio: run scripts/setup.sh"


def test_the_served_verovio_is_the_pinned_one():
    """What setup copied into static/vendor (when it has run) is the npm package of the pin."""
    stamp = REPO / "static" / "vendor" / "verovio" / "VERSION"
    if not stamp.is_file():
        pytest.skip("static/vendor/verovio not collected yet (scripts/setup.sh does it)")
    assert stamp.read_text().split()[1] == pins("requirements.txt")["verovio"]
