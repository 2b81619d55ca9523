"""End-user links: `eut_` tokens that open the connect portal (`/connect/portal?token=…`).

A different kind of token from a connect token (`cst_`, portal/tokens.py): it is signed
with its own itsdangerous salt, so neither ever verifies as the other, and it is revocable
(portal/store/revocations.py). As with connect tokens, `PORTAL_SECRET_KEYS` lists keys
newest first: the first signs, all verify.

A link carries its claims only (who, which workspace, which integration if narrowed, when
issued, until when), never a secret. Its `jti` is random, so one link can be revoked alone.

    links = EndUserLinks(settings.secret_keys, revocations)
    token, link = links.issue(end_user_id=..., workspace_id=..., expires_in=604800)
    link = await links.read(token)       # LinkRefused, or ServiceUnavailable
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portal.errors import InvalidTokenError, MissingToken
from portal.store.answers import answered_by_store
from portal.store.revocations import RevocationStore
from portal.tokens import TokenRefused, read_prefixed, serializer

LINK_PREFIX = "eut_"
# Ids up to 200 characters each make a token of ~800; anything longer is refused unread.
MAX_LINK_LENGTH = 2048
MIN_LINK_TTL = 60 * 60
MAX_LINK_TTL = 30 * 24 * 60 * 60
DEFAULT_LINK_TTL = 7 * 24 * 60 * 60

_LINK_SALT = "portal.end-user-link.v1"


class LinkRefused(Exception):
    """Why an `eut_` token was refused (`reason`): `missing`, `malformed`, `invalid` (not
    signed by this portal, or signed for another purpose), `expired` or `revoked`.
    `error()` is the answer to give for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def error(self) -> MissingToken | InvalidTokenError:
        """The portal's answer: MISSING_TOKEN (401) for no token, else INVALID_TOKEN with
        `details.reason` `expired`, or `invalid` for everything else (revoked included:
        the page says the same for both, and the partner knows what it revoked)."""
        if self.reason == "missing":
            return MissingToken("A portal link token is required.")
        if self.reason == "expired":
            return InvalidTokenError("The portal link has expired.",
                                     details={"reason": "expired"})
        return InvalidTokenError("The portal link is not valid.", details={"reason": "invalid"})


@dataclass(frozen=True)
class EndUserLink:
    """The claims of an `eut_` token.

    `integration_name` / `workspace_integration_id`: the portal shows only that
    integration when set. Times: `issued_at_ms` milliseconds, `expires_at` seconds, both
    since the epoch."""

    jti: str
    end_user_id: str
    workspace_id: str
    integration_name: str | None
    workspace_integration_id: str | None
    issued_at_ms: int
    expires_at: int


class EndUserLinks:
    """Issues, reads and revokes end-user links.

    `read(token)` is what a page calls: the link's claims if this portal signed it, it
    has not expired and it is not revoked; else `LinkRefused` (its `.error()` is the
    answer). A revocation store that does not answer raises `errors.ServiceUnavailable`.
    """

    def __init__(self, secret_keys: tuple[str, ...], revocations: RevocationStore, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._serializer = serializer(secret_keys, _LINK_SALT)
        self._revocations = revocations
        self._clock = clock

    def issue(self, *, end_user_id: str, workspace_id: str, expires_in: int,
              integration_name: str | None = None,
              workspace_integration_id: str | None = None) -> tuple[str, EndUserLink]:
        now = self._clock()
        link = EndUserLink(
            jti=secrets.token_urlsafe(16),
            end_user_id=end_user_id,
            workspace_id=workspace_id,
            integration_name=integration_name,
            workspace_integration_id=workspace_integration_id,
            issued_at_ms=int(now * 1000),
            expires_at=int(now) + expires_in,
        )
        claims: dict[str, Any] = {"j": link.jti, "u": end_user_id, "w": workspace_id,
                                  "iat": link.issued_at_ms, "exp": link.expires_at}
        if integration_name is not None:
            claims["i"] = integration_name
        if workspace_integration_id is not None:
            claims["wi"] = workspace_integration_id
        return LINK_PREFIX + self._serializer.dumps(claims), link

    async def read(self, token: object) -> EndUserLink:
        """The link's claims; LinkRefused if it is missing, not this portal's, expired or
        revoked (checked in that order: only a signed, live link costs a store call)."""
        link = self.read_signed(token)
        if link.expires_at <= self._clock():
            raise LinkRefused("expired")
        if await answered_by_store(
            self._revocations.is_revoked(link.jti, link.end_user_id,
                                         issued_at_ms=link.issued_at_ms),
            "revocation store",
        ):
            raise LinkRefused("revoked")
        return link

    def read_signed(self, token: object) -> EndUserLink:
        """The claims of a token this portal signed as a link, expired or revoked or not."""
        try:
            claims = read_prefixed(self._serializer, token, prefix=LINK_PREFIX,
                                   max_length=MAX_LINK_LENGTH)
        except TokenRefused as exc:
            raise LinkRefused("invalid" if exc.reason == "bad-signature"
                              else exc.reason) from None
        jti, user, workspace = claims.get("j"), claims.get("u"), claims.get("w")
        issued, expires = claims.get("iat"), claims.get("exp")
        name, integration_id = claims.get("i"), claims.get("wi")
        if not (isinstance(jti, str) and isinstance(user, str) and isinstance(workspace, str)
                and isinstance(issued, int) and isinstance(expires, int)
                and isinstance(name, str | None) and isinstance(integration_id, str | None)):
            raise LinkRefused("malformed")
        return EndUserLink(jti=jti, end_user_id=user, workspace_id=workspace,
                           integration_name=name, workspace_integration_id=integration_id,
                           issued_at_ms=issued, expires_at=expires)

    async def revoke(self, link: EndUserLink) -> None:
        """Revoke this one link (until its expiry)."""
        await answered_by_store(
            self._revocations.revoke_link(link.jti, expires_at=link.expires_at),
            "revocation store")

    async def revoke_all(self, end_user_id: str) -> None:
        """Revoke every link of the end user issued until now; links issued later work."""
        await answered_by_store(
            self._revocations.revoke_end_user(
                end_user_id, before_ms=int(self._clock() * 1000), ttl=MAX_LINK_TTL + 60),
            "revocation store")
