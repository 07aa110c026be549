"""One function run in a child process under a time limit: score parsing and reference alignment.

No Django here (the child imports this module to unpickle its target). The children are forked
from a forkserver that has the parsing libraries imported once (fast start, killable at the time
limit). `run_in_child` is the parent's side; in the child, `_child_main` calls the function and
writes ``result.json`` into the output folder: ``{"ok": true}``, ``{"error": reason}`` when the
function raised one of the refusal errors (the user-facing ``reason`` of render.errors), or
``{"crash": text}`` when it failed otherwise.
"""
from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import traceback
import warnings
from pathlib import Path

# "__main__" first: the children then skip re-running the main script (daphne, celery).
PRELOAD = ["__main__", "webapp.childproc", "webapp.scores.prep", "webapp.scores.engraving", "webapp.references.align",
           "render.loaders", "render.score", "partitura", "verovio", "music21", "mido"]
_mp_context = None


class ChildTimeout(Exception):
    """The child ran past its time limit (it was killed)."""


class ChildRefused(Exception):
    """The function refused its input; ``reason`` is the one line for the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ChildCrashed(Exception):
    """The function failed for another reason (the text is the child's traceback, for the log)."""


def forkserver_context():
    """A forkserver context whose server has the parsing libraries imported once."""
    global _mp_context
    if _mp_context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _mp_context = ctx
    return _mp_context


def run_in_child(func, args: tuple, kwargs: dict | None = None, *, outdir: Path, limit_s: float,
                 refusals: tuple = ()) -> None:
    """Run ``func(*args, **kwargs)`` in a child process that writes its files into ``outdir``.

    Parameters
    ----------
    func : callable
        A module-level function (it is pickled by name), run with stdout and warnings silenced.
    args, kwargs
        Its arguments (picklable).
    outdir : Path
        Where the function writes its outputs, and the child ``result.json``.
    limit_s : float
        Seconds before the child is killed.
    refusals : tuple of exception types
        Errors of bad input, with a ``reason`` attribute (render.errors.RenderError and its kind).

    Raises
    ------
    ChildTimeout, ChildRefused, ChildCrashed
    """
    proc = forkserver_context().Process(target=_child_main, daemon=True,
                                        args=(func, tuple(args), dict(kwargs or {}), str(outdir), refusals))
    proc.start()
    proc.join(limit_s)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise ChildTimeout(f"the child process ran past {limit_s:g} s")
    try:
        result = json.loads((Path(outdir) / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = {"crash": f"no result (exit code {proc.exitcode})"}
    if "error" in result:
        raise ChildRefused(result["error"])
    if not result.get("ok"):
        raise ChildCrashed(result.get("crash") or "no result")


def _child_main(func, args: tuple, kwargs: dict, outdir: str, refusals: tuple) -> None:
    """Entry point of the child process: ``func(*args, **kwargs)``, then ``result.json``."""
    out = Path(outdir) / "result.json"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            func(*args, **kwargs)
        out.write_text(json.dumps({"ok": True}))
    except refusals as exc:
        out.write_text(json.dumps({"error": getattr(exc, "reason", None) or str(exc)}))
    except Exception as exc:  # reported to the parent, which logs it
        out.write_text(json.dumps({"crash": "".join(traceback.format_exception(exc))[-4000:]}))
