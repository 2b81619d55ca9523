"""The picker: which integrations a session minted without one can choose from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from portal.catalog import AuthOption, Catalog, Integration

MAX_QUERY_WORDS = 10


@dataclass(frozen=True)
class PickerPage:
    """What the picker shows: every integration that can be connected here, and which of
    them match the search (the others are rendered hidden, for instant filtering)."""

    query: str
    category: str | None
    categories: list[str]
    integrations: list[Integration]
    matches: frozenset[str]


def picker_page(
    catalog: Catalog,
    runnable: Callable[[Integration], tuple[AuthOption, ...]],
    query: str = "",
    category: str | None = None,
) -> PickerPage:
    """Integrations with an option this portal can run, filtered by words and a category."""
    words = query.lower().split()[:MAX_QUERY_WORDS]
    shown = [item for item in catalog if runnable(item)]
    categories = sorted({item.category for item in shown})
    if category not in categories:
        category = None
    matches = set()
    for item in shown:
        text = f"{item.name} {item.display_name} {item.category} {item.description}".lower()
        if (not category or item.category == category) and all(w in text for w in words):
            matches.add(item.name)
    return PickerPage(query=query, category=category, categories=categories,
                      integrations=shown, matches=frozenset(matches))
