"""The picker: which integrations a session minted without one can choose from.

A token may limit the list (`allowedIntegrations`: only those) and put some first
(`preferredIntegrations`: in the partner's order, marked as suggested). The page shows
one page of matches at a time (PAGE_SIZE), searched and filtered on the server, so a
catalog of any size costs the browser the same few kilobytes; static/picker.js fetches
the same page as the user types."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from portal import i18n
from portal.catalog import AuthOption, Catalog, Integration
from portal.catalog.i18n import CatalogTranslations

MAX_QUERY_WORDS = 10
PAGE_SIZE = 12


@dataclass(frozen=True)
class PickerPage:
    """One page of the integrations that can be connected here and match the search;
    `suggested` ones come first. `number` counts from 1, `total` is every match."""

    query: str
    category: str | None
    categories: list[str]
    integrations: list[Integration]
    total: int
    number: int = 1
    pages: int = 1
    suggested: frozenset[str] = frozenset()


def picker_page(
    catalog: Catalog,
    runnable: Callable[[Integration], tuple[AuthOption, ...]],
    query: str = "",
    category: str | None = None,
    *,
    preferred: Sequence[str] = (),
    allowed: Sequence[str] = (),
    words_of: Callable[[Integration], str] | None = None,
    number: int = 1,
    page_size: int = PAGE_SIZE,
) -> PickerPage:
    """Integrations with an option this portal can run (only `allowed` ones when given),
    `preferred` first in their order, filtered by words and a category, page `number`.
    `words_of` gives an entry's searchable words besides its own (its name, description
    and category in the page's language)."""
    words = query.lower().split()[:MAX_QUERY_WORDS]
    limit = frozenset(allowed)
    shown = [item for item in catalog if (not limit or item.name in limit) and runnable(item)]
    rank = {name: index for index, name in enumerate(dict.fromkeys(preferred))}
    suggested = frozenset(item.name for item in shown if item.name in rank)
    shown.sort(key=lambda item: rank.get(item.name, len(rank)))  # stable: catalog order
    categories = sorted({item.category for item in shown})
    if category not in categories:
        category = None
    matches = []
    for item in shown:
        text = f"{item.name} {item.display_name} {item.category} {item.description}"
        if words_of is not None:
            text += " " + words_of(item)
        text = text.lower()
        if (not category or item.category == category) and all(w in text for w in words):
            matches.append(item)
    pages = max(1, -(-len(matches) // page_size))
    number = min(max(1, number), pages)
    start = (number - 1) * page_size
    return PickerPage(query=query, category=category, categories=categories,
                      integrations=matches[start:start + page_size], total=len(matches),
                      number=number, pages=pages, suggested=suggested)


def words_in(
    translations: CatalogTranslations | None, locale: str
) -> Callable[[Integration], str] | None:
    """`words_of` for a page in `locale`: an entry's name, description and category in
    that language, so the search finds an app by the words the page shows."""
    if translations is None or locale == i18n.DEFAULT_LOCALE:
        return None
    catalog_words = translations

    def words_of(item: Integration) -> str:
        shown = catalog_words.localized(item, locale)
        return (f"{shown.display_name} {shown.description} "
                f"{catalog_words.category(item.category, locale)}")

    return words_of
