"""Reads of reference performances: what a requester may see, and their summaries."""
from __future__ import annotations

import uuid

from django.urls import reverse

from webapp.models import ReferencePerformance, Score
from webapp.owners import owner_q


def reference_get_visible(*, reference_id, user, session_key: str) -> ReferencePerformance | None:
    """The reference performance if it belongs to this user (or, anonymously, this session)."""
    try:
        reference_id = uuid.UUID(str(reference_id))
    except ValueError:
        return None
    return ReferencePerformance.objects.filter(owner_q(user, session_key),
                                               id=reference_id).first()


def reference_summary(*, reference: ReferencePerformance) -> dict:
    """What the score page shows about a reference: its alignment report and where to play it."""
    return {"reference_id": str(reference.id), "title": str(reference),
            "score_id": str(reference.score_id) if reference.score_id else None,
            "created": reference.created.isoformat(), "n_matched": reference.n_matched,
            "report": reference.report,
            "notes_url": reverse("reference-notes", args=[reference.id]),
            "delete_url": reverse("reference-delete", args=[reference.id])}


def references_for_score(*, score: Score, user, session_key: str) -> list[dict]:
    """The requester's reference performances of a score, newest first."""
    refs = ReferencePerformance.objects.filter(owner_q(user, session_key), score=score)
    return [reference_summary(reference=r) for r in refs]
