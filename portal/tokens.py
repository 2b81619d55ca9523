"""Signed values: connect tokens, browser bindings and CSRF tokens; and browser ids.

Each purpose has its own salt, so a value signed for one purpose never verifies as
another. `PORTAL_SECRET_KEYS` lists keys newest first: the first signs, all verify,
which is how keys are rotated without cutting live sessions.

A connect token carries only the session id and its expiry; it is a bearer
credential for that one session, never a container for secrets.

A browser id is a random value the portal keeps in a site-wide cookie, so that the
first browser to open a link can claim its session (docs/browser-binding.md). It is not
signed: it only has to be unguessable, and a value copied into another browser is no
more than that browser's own cookie. The store keeps only `browser_claim(id)`, a hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer

TOKEN_PREFIX = "cst_"
# A real token is ~120 characters; anything far longer is refused before any parsing.
MAX_TOKEN_LENGTH = 512

_CONNECT_TOKEN_SALT = "portal.connect-token.v1"
_BROWSER_SALT = "portal.browser-binding.v1"
_CSRF_SALT = "portal.csrf.v1"
_CLAIM_CONTEXT = b"portal.browser-claim.v1:"
_NONCE_CONTEXT = b"portal.binding-nonce.v1:"
# What `new_browser_id` makes: 32 random bytes, URL-safe base64 without padding.
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{43}")


class TokenRefused(Exception):
    """The value is not one this portal signed, or it has expired (`reason`: `missing`,
    `malformed`, `bad-signature`, `expired`). Why a value was refused; the answer the
    portal gives for it is errors.MissingToken or errors.InvalidTokenError."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason



@dataclass(frozen=True)
class ConnectToken:
    session_id: str
    expires_at: int


@dataclass(frozen=True)
class BrowserBinding:
    """What the `HttpOnly` cookie proves: this browser opened the session's link."""

    session_id: str
    nonce: str


def new_browser_id() -> str:
    return secrets.token_urlsafe(32)


def read_browser_id(value: str | None) -> str | None:
    """The cookie's browser id if it has the shape of one; None for anything else."""
    return value if value is not None and _BROWSER_ID.fullmatch(value) else None


def browser_claim(browser_id: str) -> str:
    """What the store keeps for a browser id: a hash, so a read of Redis gives no cookie.

    A plain hash is enough: the id is 256 random bits, so it cannot be found from it.
    """
    return hashlib.sha256(_CLAIM_CONTEXT + browser_id.encode()).hexdigest()


def serializer(secret_keys: Sequence[str], salt: str) -> URLSafeSerializer:
    """An itsdangerous serializer for one purpose (`salt`) under PORTAL_SECRET_KEYS, which
    lists keys newest first: the first signs, all verify (itsdangerous signs with the last
    key it is given, so they are handed over reversed)."""
    if not secret_keys:
        raise ValueError("at least one secret key is required")
    return URLSafeSerializer(list(reversed(secret_keys)), salt=salt)


def timed_serializer(secret_keys: Sequence[str], salt: str) -> URLSafeTimedSerializer:
    """`serializer`, with the signing time in the value (for `max_age` checks)."""
    if not secret_keys:
        raise ValueError("at least one secret key is required")
    return URLSafeTimedSerializer(list(reversed(secret_keys)), salt=salt)


def read_prefixed(signed: URLSafeSerializer, token: object, *, prefix: str,
                  max_length: int) -> dict[str, Any]:
    """The payload of `prefix` + a value `signed` made; TokenRefused (`missing`,
    `malformed` or `bad-signature`) for anything else, checked before any crypto."""
    if not isinstance(token, str) or not token:
        raise TokenRefused("missing")
    if len(token) > max_length or not token.isascii() or not token.startswith(prefix):
        raise TokenRefused("malformed")
    return Signer._loads(signed, token[len(prefix):])


class Signer:
    def __init__(self, secret_keys: tuple[str, ...]) -> None:
        self._connect = serializer(secret_keys, _CONNECT_TOKEN_SALT)
        self._browser = serializer(secret_keys, _BROWSER_SALT)
        self._csrf = serializer(secret_keys, _CSRF_SALT)

    # -- connect tokens ------------------------------------------------------------
    def issue_connect_token(self, session_id: str, expires_at: int) -> str:
        return TOKEN_PREFIX + self._connect.dumps({"sid": session_id, "exp": expires_at})

    def read_connect_token(self, token: object, *, now: float | None = None) -> ConnectToken:
        """A token this portal signed that has not expired; TokenRefused for anything else."""
        claims = self.read_signed_connect_token(token)
        if claims.expires_at <= (time.time() if now is None else now):
            raise TokenRefused("expired")
        return claims

    def read_signed_connect_token(self, token: object) -> ConnectToken:
        """A token this portal signed, expired or not: its expiry is the caller's to judge.

        Only for a caller that still answers something after expiry (the poll, which reads
        a finished session's result); everything else uses `read_connect_token`."""
        payload = read_prefixed(self._connect, token, prefix=TOKEN_PREFIX,
                                max_length=MAX_TOKEN_LENGTH)
        session_id, expires_at = payload.get("sid"), payload.get("exp")
        if not isinstance(session_id, str) or not isinstance(expires_at, int):
            raise TokenRefused("malformed")
        return ConnectToken(session_id=session_id, expires_at=expires_at)

    # -- browser binding -----------------------------------------------------------
    def issue_browser_binding(
        self, session_id: str, *, browser_id: str
    ) -> tuple[str, BrowserBinding]:
        """The binding of one browser to one session.

        Its nonce is derived from the browser id, so the same browser opening the link
        again (a reload, a second tab) gets the same binding, and the CSRF tokens of the
        pages it already shows stay valid; another browser's nonce differs.
        """
        digest = hmac.new(browser_id.encode(), _NONCE_CONTEXT + session_id.encode(),
                          hashlib.sha256).digest()
        nonce = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
        binding = BrowserBinding(session_id=session_id, nonce=nonce)
        return self._browser.dumps({"sid": session_id, "n": nonce}), binding

    def read_browser_binding(self, value: str | None) -> BrowserBinding:
        if not value or len(value) > MAX_TOKEN_LENGTH or not value.isascii():
            raise TokenRefused("missing")
        payload = self._loads(self._browser, value)
        session_id, nonce = payload.get("sid"), payload.get("n")
        if not isinstance(session_id, str) or not isinstance(nonce, str):
            raise TokenRefused("malformed")
        return BrowserBinding(session_id=session_id, nonce=nonce)

    # -- CSRF ----------------------------------------------------------------------
    def csrf_token(self, binding: BrowserBinding) -> str:
        return self._csrf.dumps({"sid": binding.session_id, "n": binding.nonce})

    def check_csrf_token(self, value: object, binding: BrowserBinding) -> bool:
        if not isinstance(value, str) or len(value) > MAX_TOKEN_LENGTH or not value.isascii():
            return False
        try:
            payload = self._loads(self._csrf, value)
        except TokenRefused:
            return False
        return hmac.compare_digest(str(payload.get("sid")), binding.session_id) and (
            hmac.compare_digest(str(payload.get("n")), binding.nonce)
        )

    @staticmethod
    def _loads(serializer: URLSafeSerializer, value: str) -> dict[str, Any]:
        try:
            payload = serializer.loads(value)
        except (BadData, UnicodeDecodeError, ValueError):
            raise TokenRefused("bad-signature") from None
        if not isinstance(payload, dict):
            raise TokenRefused("malformed")
        return payload
