"""Sealed values: what the portal must keep in Redis but nobody may read there.

A `Sealer` encrypts and authenticates with Fernet (AES-128-CBC + HMAC-SHA256) under keys
derived with HKDF-SHA256 from the operator's secrets, one key per secret and a distinct
`purpose` per use, so an OAuth state record can never be opened as an outbox job and
the other way round. The first secret seals; every secret opens, so a rotation (a new
secret put first, the old one kept until what it sealed is gone) loses nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class Unsealable(Exception):
    """A sealed value that none of the keys opens, that was altered, or is too old."""


class Sealer:
    def __init__(self, secrets: Sequence[str], *, purpose: bytes) -> None:
        if not secrets:
            raise ValueError("a Sealer needs at least one secret")
        self._box = MultiFernet([Fernet(derive_key(secret, purpose)) for secret in secrets])

    def seal(self, plain: bytes) -> str:
        return self._box.encrypt(plain).decode()

    def open(self, sealed: str, *, ttl: int | None = None) -> bytes:
        """The plain bytes; `ttl`: refuse a value sealed more than `ttl` seconds ago."""
        try:
            return self._box.decrypt(sealed.encode(), ttl=ttl)
        except (InvalidToken, ValueError):
            raise Unsealable from None

    def sealed_at(self, sealed: str) -> int:
        """When `sealed` was sealed (seconds since the epoch, by the wall clock)."""
        try:
            return self._box.extract_timestamp(sealed.encode())
        except (InvalidToken, ValueError):
            raise Unsealable from None


def derive_key(secret: str, purpose: bytes) -> bytes:
    """A Fernet key for `purpose` from one secret (HKDF-SHA256, no salt: the secrets are
    long random strings, and `purpose` separates the uses)."""
    key = HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose).derive(secret.encode())
    return base64.urlsafe_b64encode(key)
