"""A store that cannot be reached, as the user sees it: a 503 they can retry."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from portal import metrics
from portal.errors import ServiceUnavailable
from portal.store import StoreUnavailable

logger = logging.getLogger("portal.store")
T = TypeVar("T")


async def answered_by_store(awaitable: Awaitable[T], what: str) -> T:
    """Await a store call; an unreachable store is a 503 the user can retry, logged once."""
    try:
        return await awaitable
    except StoreUnavailable as exc:
        metrics.store_unavailable(what)
        logger.error("%s unavailable: %s", what, exc)
        raise ServiceUnavailable(
            "The portal cannot reach its session store. Try again in a moment."
        ) from None
