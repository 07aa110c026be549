"""Writes of the listening tests: create and prepare surveys, open and close them, participants'
consent, answers and submission. The worker's side (rendering stimuli) is in
webapp.surveys.stimuli.

Every participant-facing write raises `SurveyRefused` with a message for the participant and an
HTTP status; it then stores nothing (each write is one transaction).
"""
from __future__ import annotations

import logging
import random
import re
import secrets
import time
from pathlib import Path

import numpy as np
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from webapp.models import Score
from webapp.surveys import design
from webapp.surveys.build import build_items
from webapp.surveys.errors import SurveyRefused  # noqa: F401 (part of this module's API)
from webapp.surveys.models import Item, Participant, Response, Survey, SurveyPiece
from webapp.surveys.selectors import participant_for_browser
from webapp.surveys.tasks import align_human, render_stimulus

log = logging.getLogger(__name__)
EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$")
REQUIRED_ID_MESSAGE = ("this listening test needs your participant id: open it with the link "
                       "your panel gave you")
MIN_LISTEN_FRACTION = 0.9  # of the item's total audio length, between showing it and the answer
DEFAULT_INSTRUCTIONS = {
    "mos": "You will hear short piano performances, one at a time. Listen to each one to the end, "
           "then rate how natural and how expressive it is, from 1 to 5. There are no right or "
           "wrong answers. Please use headphones in a quiet place.",
    "ab": "Each question has four short clips: A1 and A2 are two renditions of one passage, then "
          "the two renditions of another passage B. Listen to all four to the end, then say "
          "whether the change from A1 to A2 is like the change from the first B to the second "
          "(same) or the other way round (reversed), and how confident you are.",
}


# --- researchers ----------------------------------------------------------------------------

def survey_create(*, owner, title: str, kind: str, scores: list[Score], segment_sec: float = 15.0,
                  conditions: list[str] | None = None, pairs_per_piece: int = 1,
                  n_attention: int = 2, instructions: str = "", completion_code: str = "",
                  seed: int | None = None, require_external_id: bool = False) -> Survey:
    """Create a draft survey over ``scores`` (in that order).

    Raises
    ------
    SurveyRefused
        For an unknown kind or condition, no scores, or a segment length outside 2-60 s.
    """
    if kind not in Survey.Kind.values:
        raise SurveyRefused(f"unknown survey kind {kind!r}")
    if not scores:
        raise SurveyRefused("choose at least one piece")
    if not 2.0 <= float(segment_sec) <= 60.0:
        raise SurveyRefused("the segment length must be between 2 and 60 seconds")
    conditions = list(conditions or ([] if kind == "ab" else list(design.CONDITIONS)))
    unknown = sorted(set(conditions) - set(design.CONDITIONS))
    if unknown:
        raise SurveyRefused(f"unknown condition(s): {', '.join(unknown)}")
    if kind == "mos" and len(conditions) < 2:
        raise SurveyRefused("a MOS test compares at least two conditions")
    with transaction.atomic():
        survey = Survey.objects.create(
            owner=owner, title=title[:200] or "Listening test", kind=kind,
            segment_sec=float(segment_sec), conditions=[c for c in design.CONDITIONS
                                                        if c in conditions],
            pairs_per_piece=max(1, int(pairs_per_piece)), n_attention=max(0, int(n_attention)),
            seed=seed if seed is not None else secrets.randbelow(2**31),
            instructions=instructions.strip() or DEFAULT_INSTRUCTIONS[kind],
            completion_code=(completion_code.strip() or secrets.token_hex(4).upper())[:40],
            require_external_id=bool(require_external_id))
        for k, score in enumerate(scores):
            SurveyPiece.objects.create(survey=survey, score=score, order=k)
    return survey


def _require_state(survey: Survey, *states: str, action: str) -> None:
    if survey.state not in states:
        raise SurveyRefused(f"cannot {action}: the survey is {survey.state}", 409)


def survey_piece_update(*, piece: SurveyPiece, start_beat: float | None, human_file=None,
                        clear_human: bool = False) -> SurveyPiece:
    """Set a piece's passage start (None: random) and its human performance MIDI (oracle)."""
    _require_state(piece.survey, Survey.State.DRAFT, action="change a piece")
    if start_beat is not None and not 0 <= start_beat <= piece.score.duration_beat + 1e-6:
        raise SurveyRefused(f"the start must be between beat 0 and "
                            f"{piece.score.duration_beat:g}")
    piece.start_beat = start_beat
    if human_file is not None:
        head = human_file.read(4)
        human_file.seek(0)
        if head != b"MThd":
            raise SurveyRefused("the human performance must be a MIDI file (.mid)")
    with transaction.atomic():  # the alignment is queued once the row is committed
        _piece_save(piece, human_file, clear_human)
    return piece


def _piece_save(piece: SurveyPiece, human_file, clear_human: bool) -> None:
    if (clear_human or human_file is not None) and piece.human_midi:
        piece.human_midi.delete(save=False)
        piece.human_name, piece.human_state, piece.human_message = "", "", ""
        piece.human_start_beat = piece.human_end_beat = None
    if human_file is not None:
        piece.human_name = Path(human_file.name or "performance.mid").name[:255]
        piece.human_midi.save(f"{secrets.token_hex(8)}.mid", human_file, save=False)
        piece.human_state = "pending"
        transaction.on_commit(lambda: align_human.apply_async(args=[piece.id], queue="render"))
    piece.save()


def _human_span(piece: SurveyPiece):
    """The beats a piece's aligned human performance covers; None without one.

    Raises
    ------
    SurveyRefused
        While it is being aligned, or when it did not fit the score.
    """
    if not piece.human_midi:
        return None
    title = piece.score.title
    if piece.human_state == "pending":
        raise SurveyRefused(f"{title}: the human performance is still being aligned; try again "
                            "in a moment", 409)
    if piece.human_state != "done":
        raise SurveyRefused(f"{title}: the human performance does not fit the score "
                            f"({piece.human_message or 'not aligned'}); replace or remove it")
    return piece.human_start_beat, piece.human_end_beat


def survey_prepare(*, survey: Survey) -> Survey:
    """Fix the passages, create the stimuli and items, and queue the renders on the workers.

    Raises
    ------
    SurveyRefused
        When the survey is not a draft or a piece cannot give the passages asked for.
    """
    _require_state(survey, Survey.State.DRAFT, action="prepare the stimuli")
    rng = np.random.default_rng(survey.seed)
    pieces = list(survey.pieces.select_related("score"))
    with transaction.atomic():
        survey.items.all().delete()
        survey.stimuli.all().delete()
        build_items(survey, pieces, rng, _human_span)
        survey.state, survey.message = Survey.State.RENDERING, ""
        survey.save(update_fields=["state", "message"])
        ids = [str(i) for i in survey.stimuli.values_list("id", flat=True)]
        transaction.on_commit(lambda: [render_stimulus.apply_async(args=[i], queue="render")
                                       for i in ids])
    return survey


def survey_open(*, survey: Survey) -> Survey:
    _require_state(survey, Survey.State.READY, Survey.State.CLOSED, action="open the survey")
    survey.state, survey.opened, survey.closed = Survey.State.OPEN, timezone.now(), None
    survey.save(update_fields=["state", "opened", "closed"])
    return survey


def survey_close(*, survey: Survey) -> Survey:
    _require_state(survey, Survey.State.OPEN, action="close the survey")
    survey.state, survey.closed = Survey.State.CLOSED, timezone.now()
    survey.save(update_fields=["state", "closed"])
    return survey


def survey_back_to_draft(*, survey: Survey) -> Survey:
    """Discard the stimuli of a survey nobody has taken, to change pieces or passages (also
    from RENDERING: a worker that stopped mid-way leaves clips pending for ever). The
    researchers' own tries (preview participants) go with them."""
    _require_state(survey, Survey.State.READY, Survey.State.DRAFT, Survey.State.RENDERING,
                   action="edit the survey")
    if survey.participants.filter(preview=False).exists():
        raise SurveyRefused("people have taken this survey: its stimuli cannot change", 409)
    with transaction.atomic():
        survey.participants.filter(preview=True).delete()
        survey.items.all().delete()
        for s in survey.stimuli.all():
            if s.audio:
                s.audio.delete(save=False)
        survey.stimuli.all().delete()
        survey.state, survey.message = Survey.State.DRAFT, ""
        survey.save(update_fields=["state", "message"])
    return survey


def survey_delete(*, survey: Survey) -> None:
    """Delete a survey with its stimuli, items, participants and answers, then its files.

    Raises
    ------
    SurveyRefused
        409 while the survey is open (participants may be mid-way: close it first).
    """
    if survey.state == Survey.State.OPEN:
        raise SurveyRefused("this survey is open: close it before deleting it", 409)
    files = [s.audio for s in survey.stimuli.all() if s.audio]
    files += [p.human_midi for p in survey.pieces.all() if p.human_midi]
    with transaction.atomic():
        survey.delete()
        # the files go only once the rows are gone for good
        transaction.on_commit(lambda: [f.storage.delete(f.name) for f in files])


# --- participants ---------------------------------------------------------------------------

def participant_start(*, survey: Survey, external_id: str = "", preview: bool = False,
                      browser: str = "") -> Participant:
    """Consent given: a new participant with a random order of the items (practice first), or
    this browser's unfinished participant (resume). ``preview``: a researcher trying the
    survey, also before it opens (rendered stimuli are enough); not counted in the results.

    Parameters
    ----------
    browser : str
        Hash of the consenting browser's signed id (selectors.browser_hash); the participant is
        bound to it. One take per browser and survey; an external id taken in another browser
        is refused (and logged), never handed over.

    Raises
    ------
    SurveyRefused
        Survey not open (for a preview: stimuli not rendered, or closed), a malformed or
        missing (required) external id, that id has already submitted or is in use in another
        browser, or this browser has already taken part with another id.
    """
    if preview:
        _require_state(survey, Survey.State.READY, Survey.State.OPEN, action="try the survey")
        external_id = ""
    elif survey.state != Survey.State.OPEN:
        raise SurveyRefused("this survey is not open", 409)
    external_id = (external_id or "").strip()
    if external_id and not EXTERNAL_ID_RE.match(external_id):
        raise SurveyRefused("the participant id must start with a letter or digit and have only "
                            "letters, digits and _ . : @ -")
    if not preview:
        if survey.require_external_id and not external_id:
            raise SurveyRefused(REQUIRED_ID_MESSAGE)
        old = participant_for_browser(survey=survey, browser=browser, external_id=external_id)
        if old is not None:
            return old
    items = list(survey.items.values_list("id", "role"))
    practice = [i for i, r in items if r == Item.Role.PRACTICE]
    rest = [i for i, r in items if r != Item.Role.PRACTICE]
    p = Participant(survey=survey, token=secrets.token_urlsafe(24), external_id=external_id,
                    consented=timezone.now(), preview=preview, browser=browser)
    random.Random(p.id.int).shuffle(rest)
    p.order = practice + rest
    try:
        with transaction.atomic():
            p.save()
    except IntegrityError:  # the same external id consented twice at once
        return participant_for_browser(survey=survey, browser=browser, external_id=external_id)
    return p


def participant_serve(*, participant: Participant) -> int | None:
    """Record when the participant's next item was first shown; its position, or None."""
    pos = participant.n_answered
    if pos >= len(participant.order) or participant.submitted:
        return None
    with transaction.atomic():
        p = Participant.objects.select_for_update().get(id=participant.id)
        if str(pos) not in p.served:
            p.served[str(pos)] = time.time()
            p.save(update_fields=["served"])
        participant.served = p.served
    return pos


def _check_open(p: Participant) -> None:
    accepting = (Survey.State.OPEN, Survey.State.READY) if p.preview else (Survey.State.OPEN,)
    if p.survey.state not in accepting:
        raise SurveyRefused("this survey is closed; no more answers are accepted", 409)
    if p.submitted:
        raise SurveyRefused("you have already submitted this survey", 409)


def response_submit(*, token: str, position: int, key: str, answers: dict) -> Participant:
    """Store the answers to one item, in one transaction with the participant row locked.

    Raises
    ------
    SurveyRefused
        409 for a closed survey, a submitted participant, or an item already answered (a
        replay); 400 for a key that does not match the item (tampered), an item not assigned
        or not the next one, answers out of range, or a clip not yet played to the end.
    """
    with transaction.atomic():
        p = (Participant.objects.select_for_update().select_related("survey")
             .filter(token=token).first())
        if p is None:
            raise SurveyRefused("unknown participant", 404)
        _check_open(p)
        if not isinstance(position, int) or isinstance(position, bool) or not (
                0 <= position < len(p.order)):
            raise SurveyRefused("this item is not one of yours")
        if not constant_time_compare(str(key), p.item_key(position)):
            raise SurveyRefused("the answer was tampered with (its key is not the key of this "
                                "item)")
        if position < p.n_answered:
            raise SurveyRefused("this item was already answered", 409)
        if position > p.n_answered:
            raise SurveyRefused("please answer the items in order")
        item = Item.objects.get(id=p.order[position], survey=p.survey)
        try:
            values = design.valid_answer(p.survey.kind, answers)
        except ValueError as exc:
            raise SurveyRefused(str(exc)) from None
        need = sum(c.stimulus.duration_sec for c in item.item_clips.select_related("stimulus"))
        shown = p.served.get(str(position))
        if shown is None or time.time() - shown < MIN_LISTEN_FRACTION * need:
            raise SurveyRefused("please play every clip to the end before answering")
        Response.objects.bulk_create([Response(participant=p, item=item, position=position,
                                               question=q, value=v) for q, v in values.items()])
        p.n_answered = position + 1
        p.save(update_fields=["n_answered"])
    return p


def participant_submit(*, token: str, age_band: str, training_band: str) -> Participant:
    """Finish: store the questionnaire, score the attention checks, return the participant
    (with ``survey.completion_code`` to show). One submission per participant."""
    if age_band not in design.AGE_BANDS:
        raise SurveyRefused("please choose your age band")
    if training_band not in design.TRAINING_BANDS:
        raise SurveyRefused("please choose your years of musical training")
    with transaction.atomic():
        p = (Participant.objects.select_for_update().select_related("survey")
             .filter(token=token).first())
        if p is None:
            raise SurveyRefused("unknown participant", 404)
        _check_open(p)
        if p.n_answered < len(p.order):
            raise SurveyRefused(f"please answer every item first ({p.n_answered} of "
                                f"{len(p.order)} done)")
        checks = Item.objects.filter(id__in=p.order, role=Item.Role.ATTENTION)
        got = {(r.item_id, r.question): r.value
               for r in p.responses.filter(item__role=Item.Role.ATTENTION)}
        passed = all(got.get((it.id, q)) == v for it in checks for q, v in it.expected.items())
        n = Participant.objects.filter(id=p.id, submitted__isnull=True).update(
            submitted=timezone.now(), age_band=age_band, training_band=training_band,
            attention_passed=passed)
        if not n:
            raise SurveyRefused("you have already submitted this survey", 409)
        p.refresh_from_db()
    return p
