"""Who owns a row: a signed-in user, or (anonymously) a browser session."""
from __future__ import annotations

from django.db.models import Q


def owner_q(user, session_key: str, prefix: str = "") -> Q:
    if user is not None and user.is_authenticated:
        return Q(**{f"{prefix}owner": user})
    if not session_key:
        return Q(pk__in=[])
    return Q(**{f"{prefix}owner": None, f"{prefix}session_key": session_key})
