"""Music data layer: scores, aligned performances, the paper's encodings, baselines, export.

``import render`` stays cheap: ``render.load_score`` (from `render.loaders`) is imported on
first use, and partitura only when a file is read.
"""
from __future__ import annotations

__all__ = ["load_score"]


def __getattr__(name):
    if name == "load_score":
        from render.loaders import load_score

        return load_score
    raise AttributeError(f"module 'render' has no attribute {name!r}")
