"""The worker's side of a survey: render one stimulus to an audio file, once.

Every condition plays the notes whose score onsets lie in the stimulus' passage
[start_beat, end_beat): deadpan and the humanizer over the whole score, the model (prior, or
the paper's mu +- Delta exp(gamma) for A/B) decoded from the start of the piece up to the end of
the passage (so the passage has its musical context), and a human performance aligned to the
score (render.align). Audio: FluidSynth with the piano soundfont, loudness-normalised with short
fades (render.export.render_audio), Ogg Vorbis.
"""
from __future__ import annotations

import logging
import secrets
import tempfile
from pathlib import Path

import numpy as np
from django.core.files import File
from django.db import close_old_connections, transaction

from render.align import align_midi
from render.baselines import deadpan, humanize
from render.errors import RenderError
from render.export import AudioError, render_audio
from webapp.jobs.renderer import get_renderer
from webapp.scores.prep import load_parsed
from webapp.surveys import design
from webapp.surveys.models import Stimulus, Survey, SurveyPiece

log = logging.getLogger(__name__)
MIN_HUMAN_COVERAGE = 0.8  # of a passage's score notes that the pianist must have played


def _load_score(score_row):
    return load_parsed(score_row.parsed.path, title=score_row.title, fmt=score_row.format,
                       source=score_row.original_filename)


def _model_notes(score, st: Stimulus) -> np.ndarray:
    """The model's rendition of the score up to the end of the passage, in score-note order."""
    ob = score.notes["onset_beat"]
    last = int(np.searchsorted(ob, st.end_beat - 1e-9)) - 1
    kwargs = {"mode": "prior"}
    if st.condition == "perturb":
        kwargs = {"mode": "perturb", "delta": np.asarray(st.delta, np.float32) * st.sign}
    chunks = []
    for chunk in get_renderer().render(score, seed=int(st.seed), chunk_notes=128, **kwargs):
        chunks.append(np.asarray(chunk))
        if chunk["index"].max() >= last:
            break
    notes = np.concatenate(chunks)
    return notes[np.argsort(notes["index"], kind="stable")]


def stimulus_notes(st: Stimulus) -> np.ndarray:
    """The notes of a stimulus (pitch, onset_sec from `design.LEAD_IN_SEC`, duration_sec,
    velocity).

    Raises
    ------
    render.errors.RenderError
        Unreadable score, or a human performance that does not align to it.
    ValueError
        Unknown condition, or no notes in the passage.
    """
    score = _load_score(st.piece.score)
    ob = score.notes["onset_beat"]
    if st.condition == "deadpan":
        out = design.slice_rendered(deadpan(score), ob, st.start_beat, st.end_beat)
    elif st.condition == "humanizer":
        out = design.slice_rendered(humanize(score, seed=int(st.seed)), ob, st.start_beat,
                                    st.end_beat)
    elif st.condition in ("model", "perturb"):
        notes = _model_notes(score, st)
        out = design.slice_rendered(notes, ob[notes["index"]], st.start_beat, st.end_beat)
    elif st.condition == "human":
        if not st.piece.human_midi:
            raise ValueError("no human performance was uploaded for this piece")
        perf, _report = align_midi(score, st.piece.human_midi.path)
        pob = perf.score.notes["onset_beat"]
        inside = (pob >= st.start_beat - 1e-9) & (pob < st.end_beat - 1e-9)
        played = float(np.mean(perf.match_index[inside] >= 0)) if inside.any() else 0.0
        if played < MIN_HUMAN_COVERAGE:
            raise ValueError(f"the human performance plays only {100 * played:.0f}% of the "
                             f"notes of beats {st.start_beat:g}-{st.end_beat:g}")
        out = design.slice_performed(perf.notes, perf.match_index, pob, st.start_beat,
                                     st.end_beat)
    else:
        raise ValueError(f"unknown condition {st.condition!r}")
    if len(out) == 0:
        raise ValueError("the passage has no notes")
    return out


def survey_check_rendered(*, survey_id) -> str:
    """Move a rendering survey on once no stimulus is pending: READY when all were rendered,
    back to DRAFT with the reasons when some failed. Returns the survey's state."""
    with transaction.atomic():
        survey = Survey.objects.select_for_update().get(id=survey_id)
        if survey.state != Survey.State.RENDERING:
            return survey.state
        st = survey.stimuli
        if st.filter(state=Stimulus.State.PENDING).exists():
            return survey.state
        failed = list(st.filter(state=Stimulus.State.FAILED).select_related("piece__score"))
        if failed:
            survey.state = Survey.State.DRAFT
            survey.message = "; ".join(sorted({f"{s.piece.score.title} ({s.condition}): "
                                               f"{s.message}" for s in failed}))[:2000]
        else:
            survey.state, survey.message = Survey.State.READY, ""
        survey.save(update_fields=["state", "message"])
        return survey.state


def stimulus_render(*, stimulus_id) -> str:
    """Render a pending stimulus to audio and store it; failures are stored on the row with a
    message for the researcher. Then let the survey move on (READY, or DRAFT with reasons).
    Returns the stimulus' state."""
    close_old_connections()
    st = Stimulus.objects.select_related("piece__score", "survey").filter(id=stimulus_id).first()
    if st is None or st.state != Stimulus.State.PENDING:
        return st.state if st else "missing"
    try:
        notes = stimulus_notes(st)
        with tempfile.TemporaryDirectory(prefix="stimulus-") as tmp:
            path = render_audio(notes, Path(tmp) / "clip.ogg", fmt="ogg")
            import soundfile  # audio I/O: only in the worker processes

            duration = float(soundfile.info(str(path)).duration)
            with open(path, "rb") as f:
                st.audio.save(f"{secrets.token_hex(8)}.ogg", File(f), save=False)
        st.state, st.duration_sec, st.n_notes, st.message = (Stimulus.State.DONE, duration,
                                                             len(notes), "")
    except (RenderError, AudioError, ValueError, OSError, ImportError) as exc:
        log.warning("stimulus %s failed: %s", st.id, exc)
        st.state, st.message = Stimulus.State.FAILED, str(exc)[:500] or type(exc).__name__
    except Exception as exc:  # never leave a stimulus pending: the survey would wait forever
        log.exception("stimulus %s failed", st.id)
        st.state, st.message = Stimulus.State.FAILED, f"render failed ({type(exc).__name__})"
    n = Stimulus.objects.filter(id=st.id, state=Stimulus.State.PENDING).update(
        state=st.state, message=st.message, audio=st.audio.name or "",
        duration_sec=st.duration_sec, n_notes=st.n_notes)
    if not n:  # discarded or deleted meanwhile: its clip would be an orphan file
        if st.audio:
            st.audio.storage.delete(st.audio.name)
        return "missing"
    survey_check_rendered(survey_id=st.survey_id)
    return st.state


def piece_align_human(*, piece_id) -> str:
    """Align a piece's uploaded human performance to its score (render.align) and store the
    beats it covers, or the reason it does not fit. Returns the piece's human_state."""
    close_old_connections()
    piece = SurveyPiece.objects.select_related("score").filter(id=piece_id).first()
    if piece is None or piece.human_state != "pending" or not piece.human_midi:
        return piece.human_state if piece else "missing"
    name = piece.human_midi.name
    fields = {"human_state": "failed", "human_start_beat": None, "human_end_beat": None}
    try:
        _perf, report = align_midi(_load_score(piece.score), piece.human_midi.path)
        fields.update(human_state="done", human_start_beat=report.start_beat,
                      human_end_beat=report.end_beat,
                      human_message=f"{report.n_matched} of {report.n_performed_notes} notes "
                                    f"matched, beats {report.start_beat:g}-{report.end_beat:g}")
    except (RenderError, OSError, ImportError) as exc:
        fields["human_message"] = (getattr(exc, "reason", None) or str(exc))[:500]
    except Exception as exc:
        log.exception("aligning %s failed", name)
        fields["human_message"] = f"the alignment failed ({type(exc).__name__})"
    # Only if the same file is still there (the researcher may have replaced it meanwhile).
    SurveyPiece.objects.filter(id=piece.id, human_midi=name).update(**fields)
    return fields["human_state"]
