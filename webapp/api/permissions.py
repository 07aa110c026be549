"""Who may call the API views that anonymous visitors use too (render, follow and cancel a job,
apply a shared preset): a token or signed-in user, or an anonymous browser session, which owns
what it renders (webapp.owners)."""
from __future__ import annotations

from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, AllowAny, BasePermission


class AnonymousSessionCsrf(BasePermission):
    """An anonymous write must carry its session's CSRF token, as a signed-in session's must.

    DRF checks CSRF only for a user that SessionAuthentication signed in; an anonymous browser
    session owns jobs too, so its writes get the same check here. A write with no cookie at all
    (no session, no CSRF cookie) and no token is a script without its credentials: 401, as for
    the views that need a user. Use it after ``AllowAny`` (which also marks the operation public
    in the OpenAPI schema).
    """

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS or request.user.is_authenticated:
            return True
        try:
            SessionAuthentication().enforce_csrf(request)
        except PermissionDenied:
            if not request.COOKIES:
                raise NotAuthenticated() from None
            raise
        return True


# The permission classes of those views: open to anyone (what they may touch is their own:
# the views look objects up by owner), anonymous writes with the session's CSRF token.
USER_OR_SESSION = [AllowAny, AnonymousSessionCsrf]
