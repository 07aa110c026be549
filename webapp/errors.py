"""Refusals the web app explains to users (each message is shown as it is)."""
from render.errors import ScoreError

__all__ = ["ScoreError", "RenderLimitReached", "RenderServiceUnavailable", "RenderStopped",
           "JobNotActive", "ScoreInUse"]


class RenderLimitReached(Exception):
    """The user already has as many renders running as allowed."""


class RenderServiceUnavailable(Exception):
    """The render queue (Redis) cannot be reached: nothing was queued; the user may try again."""


class RenderStopped(Exception):
    """A render ended by the worker with a plain message for the user (time limit, lost stream)."""


class JobNotActive(Exception):
    """A cancel for a job that has already ended."""


class ScoreInUse(Exception):
    """A score that cannot be deleted: a listening test plays passages of it."""
