"""What an OAuth flow keeps between its start and its callback, and the browser it binds.

One encrypted record per flow, in the OAuth state store (portal/store/oauth_state.py),
under a hash of the `state` value: the session, the auth option, the expected issuer,
the token URL, the validated props, the PKCE verifier and a hash of the browser's
callback cookie. The callback takes the record exactly once (GETDEL); a callback from
another browser puts it back for the rest of its life.

The record is sealed with Fernet under keys derived from PORTAL_SECRET_KEYS with HKDF
(one key per secret, newest first, so a rotation keeps flows in progress readable).
The callback cookie is signed, so a value planted in the browser is never adopted.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from itsdangerous import BadData

from portal.sealing import Sealer, Unsealable
from portal.store.answers import answered_by_store
from portal.store.oauth_state import OAuthStateStore
from portal.tokens import timed_serializer

T = TypeVar("T")

STATE_TTL = 10 * 60
MAX_PARAM_LENGTH = 4096
_STATE_INFO = b"portal.oauth-state.v2"
_BROWSER_COOKIE_SALT = "portal.oauth-browser.v1"
# Binds a flow to the browser that started it; the callback compares it with the state.
# Over https the name has the `__Host-` prefix: Secure, Path=/, no Domain, so neither a
# sibling subdomain nor plain http can plant or overwrite it. Browsers refuse `__Host-`
# cookies on plain http, so a development portal on http uses the bare name.
BROWSER_COOKIE = "portal_oauth"
SECURE_BROWSER_COOKIE = "__Host-portal_oauth"


@dataclass(frozen=True)
class StateRecord:
    session_id: str
    integration: str
    option: str
    issuer: str
    iss_required: bool
    token_url: str
    props: dict[str, Any]
    verifier: str | None
    browser: str  # sha256 of the callback cookie
    opener: bool
    custom_app_id: str | None


class StateUnreadable(Exception):
    """A record that cannot be decrypted or has the wrong shape."""


class OAuthStates:
    def __init__(
        self, store: OAuthStateStore, *, secret_keys: Sequence[str], secure_cookies: bool
    ) -> None:
        self._store = store
        self._box = Sealer(secret_keys, purpose=_STATE_INFO)
        self._cookies = timed_serializer(secret_keys, _BROWSER_COOKIE_SALT)
        self.cookie_name = SECURE_BROWSER_COOKIE if secure_cookies else BROWSER_COOKIE

    async def keep(self, state: str, record: StateRecord) -> None:
        sealed = self._box.seal(json.dumps(asdict(record)).encode())
        await self._answered(self._store.put(digest(state), sealed, ttl=STATE_TTL))

    async def take(self, state: str) -> tuple[StateRecord, str] | None:
        """The record of `state` and its sealed form (to put back), removed in the same
        step; None when it was used, expired or never kept. Raises StateUnreadable."""
        sealed = await self._answered(self._store.take(digest(state)))
        if sealed is None:
            return None
        try:
            record = StateRecord(**json.loads(self._box.open(sealed, ttl=STATE_TTL)))
        except (Unsealable, ValueError, TypeError):
            raise StateUnreadable from None
        return record, sealed

    async def put_back(self, state: str, sealed: str) -> None:
        """Return a taken record for the rest of its life: a callback from another browser
        must not use up the flow of the browser that started it."""
        try:
            # Fernet stamps with the wall clock, as its own `ttl` check reads it.
            age = time.time() - self._box.sealed_at(sealed)
        except Unsealable:
            return
        remaining = int(STATE_TTL - age)
        if remaining >= 1:
            await self._answered(self._store.put(digest(state), sealed, ttl=remaining))

    def browser_cookie(self, presented: str | None) -> str:
        """The callback cookie to bind this flow to: the one this browser already holds
        when the portal issued it (so flows started side by side share it), else a new
        one. A value the portal did not sign, or signed more than STATE_TTL ago, is never
        adopted: a cookie planted in the browser cannot become the flow's binding."""
        if presented and len(presented) <= MAX_PARAM_LENGTH:
            try:
                self._cookies.loads(presented, max_age=STATE_TTL)
            except BadData:
                pass
            else:
                return presented
        return self._cookies.dumps(secrets.token_urlsafe(32))

    @staticmethod
    async def _answered(awaitable: Awaitable[T]) -> T:
        return await answered_by_store(awaitable, "OAuth state store")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()

