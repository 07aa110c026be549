"""Reads of scores: the demos, a user's uploads, a visible score, its bars."""
from __future__ import annotations

import uuid

from django.db.models import Q

from render.score import score_bar_numbers
from webapp.models import Score
from webapp.scores.prep import load_parsed


def score_list_demos():
    return Score.objects.filter(is_demo=True).order_by("title")


def score_list_for_user(*, user):
    if user is None or not user.is_authenticated:
        return Score.objects.none()
    return Score.objects.filter(owner=user, is_demo=False)


def score_get_visible(*, score_id: uuid.UUID, user) -> Score | None:
    """The score if the user may see it (a demo, or their own upload), else None."""
    q = Q(is_demo=True)
    if user is not None and user.is_authenticated:
        q |= Q(owner=user)
    return Score.objects.filter(q, id=score_id).first()


def score_bars(*, score: Score) -> dict:
    """Bars of a score as the section controls count them: ``n_bars`` and ``bars``, the bar
    (1..) of each base note id (its first occurrence when a repeat is unfolded)."""
    notes = load_parsed(score.parsed.path).notes
    numbers = score_bar_numbers(notes)
    bars: dict[str, int] = {}
    for nid, bar in zip(notes["id"].tolist(), numbers.tolist()):
        bars.setdefault(nid.split("-")[0], int(bar))
    return {"n_bars": int(numbers.max()) if len(numbers) else 0, "bars": bars}
