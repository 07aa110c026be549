"""Real files of ../shared/data for the render tests, unpacked and parsed once per session.

Fixtures
--------
unpacked : Callable[[str], Path]
    A path relative to ../shared/data (``.xz`` or not) -> the unpacked file in a session
    temp folder (unpacked once).
aligned : Callable[[str], AlignedPerformance]
    A match file relative to ../shared/data -> its `AlignedPerformance`, parsed once per
    session; each call returns a deep copy, so tests may change it.

Both need ``shared_data``: tests using them get the ``data`` marker and are skipped, with the
reason printed, when the folder is absent (tests/conftest.py).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

BACH_PRELUDE = "nasap/Bach/Prelude/bwv_846/Shi05M.match.xz"       # 547 notes, sustain and soft pedal
BACH_PRELUDE_XML = "nasap/Bach/Prelude/bwv_846/xml_score.musicxml.xz"
MOZART_KV282_1 = "batik_plays_mozart/match/kv282_1.match.xz"      # 1895 notes, continuous pedal CCs


@pytest.fixture(scope="session")
def unpacked(shared_data, tmp_path_factory) -> Callable[[str], Path]:
    from render.dataset import unpack

    folder = tmp_path_factory.mktemp("unpacked")
    return lambda rel: unpack(shared_data / rel, folder, rel)


@pytest.fixture(scope="session")
def aligned(unpacked):
    from render.performance import load_aligned

    cache = {}

    def get(rel: str):
        if rel not in cache:
            cache[rel] = load_aligned(unpacked(rel))
        return copy.deepcopy(cache[rel])

    return get
