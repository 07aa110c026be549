"""Interpretation controls of a render: validation (web side) and expansion (worker side).

A job's ``controls`` are stored compactly, as the user gave them::

    {"mode": "perturb", "delta": [5 floats], "sections": [{"from_bar": 9, "to_bar": 16,
     "delta": [5 floats]}], "base_tempo_bpm": 96, "expressiveness": 1.2, "temperature": 0.5,
     "variations": 3, "reference_id": "<uuid>", "pedal": "model"}

Delta is the paper's perturbation in units of the prior's spread (z = mu + Delta * exp(gamma));
0 is the prior mean. Sections set Delta on a range of bars (numbered 1.. in the order the score
is played, as render.score.score_bar_numbers counts them); the worker expands them into an
(N, 5) curve.
"""
from __future__ import annotations

import math
import uuid

import numpy as np
from django.conf import settings

from ml.defaults import DEFAULT_TEMPERATURE
from render.score import score_bar_numbers

Z_DIM = 5
MODES = ("prior", "perturb", "fixed")
DELTA_LIMIT = 4.0
Z_LIMIT = 6.0
MAX_SECTIONS = 32
TEMPO_RANGE = (20.0, 400.0)
EXPRESSIVENESS_RANGE = (0.0, 3.0)
TEMPERATURE_RANGE = (0.0, 2.0)
PEDAL_CHOICES = ("model", "none", "reference")  # ml.inference.PEDAL_MODES (no torch in the web process)
# Interpretation controls a job may carry (what controls_clean accepts).
CONTROL_KEYS = ("mode", "delta", "sections", "z", "base_tempo_bpm", "expressiveness",
                "temperature", "variations", "reference_id", "pedal")


class ControlError(ValueError):
    """A control value the renderer cannot use; the message is shown to the user as it is."""


def max_variations() -> int:
    """How many takes one render may produce (setting RENDER_MAX_VARIATIONS)."""
    return settings.RENDER_MAX_VARIATIONS


def default_temperature() -> float:
    """The renderer's default sampling temperature (ml.defaults.DEFAULT_TEMPERATURE)."""
    return float(DEFAULT_TEMPERATURE)


def _number(value, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ControlError(f"{name} must be a number between {lo:g} and {hi:g}")
    try:
        x = float(value)
    except ValueError:
        raise ControlError(f"{name} must be a number between {lo:g} and {hi:g}") from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise ControlError(f"{name} must be between {lo:g} and {hi:g} (got {value})")
    return x


def _vector(value, name: str, limit: float) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != Z_DIM:
        raise ControlError(f"{name} must be a list of {Z_DIM} numbers (one per latent direction)")
    return [round(_number(v, f"{name}[{k}]", -limit, limit), 4) for k, v in enumerate(value)]


def _int(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise ControlError(f"{name} must be a whole number between {lo} and {hi}")
    try:
        x = int(value)
    except (TypeError, ValueError):
        raise ControlError(f"{name} must be a whole number between {lo} and {hi}") from None
    if isinstance(value, float) and value != x or not lo <= x <= hi:
        raise ControlError(f"{name} must be a whole number between {lo} and {hi} (got {value})")
    return x


def _sections(value, n_bars: int | None) -> list[dict]:
    if not isinstance(value, list):
        raise ControlError("sections must be a list of {from_bar, to_bar, delta}")
    if len(value) > MAX_SECTIONS:
        raise ControlError(f"at most {MAX_SECTIONS} sections")
    top = n_bars or 100_000
    out = []
    for k, sec in enumerate(value):
        if not isinstance(sec, dict) or set(sec) - {"from_bar", "to_bar", "delta"} or \
                not {"from_bar", "to_bar", "delta"} <= set(sec):
            raise ControlError(f"section {k + 1} must have exactly from_bar, to_bar and delta")
        a = _int(sec["from_bar"], f"section {k + 1}: from_bar", 1, top)
        b = _int(sec["to_bar"], f"section {k + 1}: to_bar", 1, top)
        if b < a:
            raise ControlError(f"section {k + 1}: to_bar ({b}) is before from_bar ({a})")
        out.append({"from_bar": a, "to_bar": b,
                    "delta": _vector(sec["delta"], f"section {k + 1}: delta", DELTA_LIMIT)})
    return out


def controls_clean(*, controls, n_bars: int | None = None) -> dict:
    """Validate render controls and return them normalised (what the job stores).

    Parameters
    ----------
    controls : dict
        As received (JSON). Keys: mode, delta, sections, z, base_tempo_bpm, expressiveness,
        temperature (note-level randomness of the model's sampling, 0..2), variations,
        reference_id, pedal (whose sustain and soft pedal: model, none, reference); all optional.
    n_bars : int, optional
        Bars of the score (sections must lie within them).

    Returns
    -------
    dict
        Only the keys given (mode added as "perturb" when delta or sections are given without
        a mode); numbers rounded; reference_id as a canonical UUID string.

    Raises
    ------
    ControlError
        With a one-line message naming the control.
    """
    if not isinstance(controls, dict):
        raise ControlError("controls must be a JSON object")
    unknown = sorted(set(controls) - set(CONTROL_KEYS))
    if unknown:
        raise ControlError(f"unknown control(s): {', '.join(unknown)}; "
                           f"known: {', '.join(CONTROL_KEYS)}")
    c = {k: v for k, v in controls.items() if v is not None and v != ""}
    out: dict = {}
    if "delta" in c:
        out["delta"] = _vector(c["delta"], "delta", DELTA_LIMIT)
    if "sections" in c:
        out["sections"] = _sections(c["sections"], n_bars)
        if not out["sections"]:
            del out["sections"]
    if "z" in c:
        out["z"] = _vector(c["z"], "z", Z_LIMIT)
    mode = c.get("mode", "perturb" if ("delta" in out or "sections" in out) else None)
    if mode is not None:
        if mode not in MODES:
            raise ControlError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
        out["mode"] = mode
    if mode != "perturb" and ("delta" in out or "sections" in out):
        raise ControlError("delta and sections steer the 'perturb' mode; "
                           f"they cannot be used with mode {mode!r}")
    if "z" in out and mode != "fixed":
        raise ControlError("z is the fixed interpretation of mode 'fixed'")
    if "base_tempo_bpm" in c:
        out["base_tempo_bpm"] = round(_number(c["base_tempo_bpm"], "base tempo (bpm)",
                                              *TEMPO_RANGE), 2)
    if "expressiveness" in c:
        out["expressiveness"] = round(_number(c["expressiveness"], "expressiveness",
                                              *EXPRESSIVENESS_RANGE), 3)
    if "temperature" in c:
        out["temperature"] = round(_number(c["temperature"], "temperature", *TEMPERATURE_RANGE), 3)
    if "variations" in c:
        out["variations"] = _int(c["variations"], "takes (variations)", 1, max_variations())
    if "reference_id" in c:
        try:
            out["reference_id"] = str(uuid.UUID(str(c["reference_id"])))
        except ValueError:
            raise ControlError("reference_id is not the id of a reference performance") from None
    if "pedal" in c:
        if c["pedal"] not in PEDAL_CHOICES:
            raise ControlError(f"pedal must be one of {', '.join(PEDAL_CHOICES)} (got {c['pedal']!r})")
        if c["pedal"] == "reference" and "reference_id" not in out:
            raise ControlError("pedal 'as the reference' needs a reference performance")
        if c["pedal"] != "model":   # the default is not stored
            out["pedal"] = c["pedal"]
    return out


def delta_curve(*, controls: dict, notes: np.ndarray) -> np.ndarray | None:
    """The (N, 5) per-note Delta of stored controls with sections; None without sections."""
    sections = controls.get("sections") or []
    if not sections:
        return None
    curve = np.tile(np.asarray(controls.get("delta") or [0.0] * Z_DIM, np.float32),
                    (len(notes), 1))
    bars = score_bar_numbers(notes)
    for sec in sections:
        mask = (bars >= sec["from_bar"]) & (bars <= sec["to_bar"])
        curve[mask] = np.asarray(sec["delta"], np.float32)
    return curve


def controls_render_kwargs(*, controls: dict, notes: np.ndarray) -> dict:
    """Keyword arguments of ml.inference.Renderer.render for stored controls (without
    ``reference``, which the worker loads from ``reference_id``)."""
    kw = {k: controls[k] for k in ("mode", "delta", "z", "base_tempo_bpm", "expressiveness",
                                    "temperature", "variations", "pedal") if k in controls}
    curve = delta_curve(controls=controls, notes=notes)
    if curve is not None:
        kw["delta"] = curve
    if kw.get("mode") == "perturb" and "delta" not in kw:
        kw["delta"] = [0.0] * Z_DIM  # the prior mean
    return kw
