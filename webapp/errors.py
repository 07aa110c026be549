"""Refusals the web app explains to users (each message is shown as it is)."""
from render.errors import ScoreError

__all__ = ["ScoreError", "RenderLimitReached", "JobNotActive", "ScoreInUse"]


class RenderLimitReached(Exception):
    """The user already has as many renders running as allowed."""


class JobNotActive(Exception):
    """A cancel for a job that has already ended."""


class ScoreInUse(Exception):
    """A score that cannot be deleted: a listening test plays passages of it."""
