"""Celery tasks of the listening tests (thin: ids in, one service call)."""
from __future__ import annotations

from celery import shared_task

from webapp.surveys.stimuli import piece_align_human, stimulus_render


@shared_task(name="webapp.surveys.tasks.render_stimulus", ignore_result=True)
def render_stimulus(stimulus_id: str) -> str:
    """Render one survey stimulus to audio (see webapp.surveys.stimuli.stimulus_render)."""
    return stimulus_render(stimulus_id=stimulus_id)


@shared_task(name="webapp.surveys.tasks.align_human", ignore_result=True)
def align_human(piece_id: int) -> str:
    """Align a piece's uploaded human performance (see webapp.surveys.stimuli.piece_align_human)."""
    return piece_align_human(piece_id=piece_id)
