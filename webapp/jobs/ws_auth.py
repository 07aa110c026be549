"""WebSocket authentication by API token (the DRF token of /api/v1/token/), for scripts.

Browsers stream a job with their session cookie, and their handshake carries an Origin header that
``AllowedHostsOriginValidator`` checks (so another site cannot open a socket with the visitor's
cookie). Scripts cannot always send an Origin and have no session: they give their token, as the
``Authorization: Token <key>`` header or, for clients that cannot set headers, ``?token=<key>``.

``TokenAuthMiddleware`` (inside ``AuthMiddlewareStack``) makes a given token decide the user: a
valid one replaces the session user with the token's; a bad one leaves an anonymous user and
``scope["token_auth"] = "invalid"`` (the consumer refuses it). Without a token nothing changes.

``OriginOrTokenValidator`` keeps the browser check as it was and lets through, unchecked, only
handshakes with no Origin header that carry a token: browsers always send an Origin with a
WebSocket handshake, so such a request does not come from a web page, and behind it only the
token authenticates (a cookie sent with it is ignored; a bad token is refused by the consumer).
"""
from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin1")
    return None


def token_from_scope(scope) -> str | None:
    """The API token of a WebSocket handshake, or None when it gives none.

    ``Authorization: Token <key>`` first (another scheme is not ours and is ignored), then the
    ``token`` query parameter. An empty or malformed ``Token`` header gives "" (a bad token).
    """
    auth = _header(scope, b"authorization")
    if auth is not None:
        scheme, _, key = auth.strip().partition(" ")
        if scheme.lower() == "token":
            key = key.strip()
            return key if key and " " not in key else ""
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    if "token" in query:
        return query["token"][0].strip()
    return None


@database_sync_to_async
def _token_user(key: str):
    """The active user owning the token ``key``, or None."""
    token = Token.objects.select_related("user").filter(key=key).first() if key else None
    if token is None or not token.user.is_active:
        return None
    return token.user


class TokenAuthMiddleware(BaseMiddleware):
    """Sets ``scope["user"]`` from an API token when the handshake gives one.

    Adds ``scope["token_auth"]``: "valid" or "invalid" (absent without a token).
    """

    async def __call__(self, scope, receive, send):
        key = token_from_scope(scope)
        if key is not None:
            user = await _token_user(key)
            scope = dict(scope, user=user or AnonymousUser(),
                         token_auth="valid" if user else "invalid")
        return await super().__call__(scope, receive, send)


class OriginOrTokenValidator:
    """Routes a handshake to ``browsers`` (the Origin-checked app), or to ``scripts`` (the same
    app unchecked) when it has no Origin header and carries a token.

    Any handshake with an Origin header is checked as before, token or not; one with neither an
    Origin nor a token is refused by ``browsers`` as Channels refuses it (no Origin is not an
    allowed host). Use as ``OriginOrTokenValidator(AllowedHostsOriginValidator(app), app)``.
    """

    def __init__(self, browsers, scripts):
        self.browsers, self.scripts = browsers, scripts

    async def __call__(self, scope, receive, send):
        if _header(scope, b"origin") is None and token_from_scope(scope) is not None:
            return await self.scripts(scope, receive, send)
        return await self.browsers(scope, receive, send)
