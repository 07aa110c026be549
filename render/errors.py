"""Typed errors for bad musical input.

Every error names the file (when there is one) and the problem in one line, so the command
line can print ``str(err)`` and the web app can show it to the user as it is.
"""
from __future__ import annotations

from pathlib import Path


class RenderError(ValueError):
    """Base class: a musical input that cannot be used, with a one-line reason."""

    def __init__(self, message: str, *, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        self.reason = message
        super().__init__(f"{Path(self.path).name}: {message}" if self.path else message)


class ScoreError(RenderError):
    """A score file that cannot be read or is not a usable piano score."""


class PerformanceError(RenderError):
    """A performance (match or MIDI file) that cannot be read or does not fit its score."""


class AlignmentError(PerformanceError):
    """A performance that could not be aligned to the score well enough to use."""
