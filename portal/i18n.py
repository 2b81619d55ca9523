"""The languages of the hosted pages and emails: which one a request gets, and its messages.

- `SUPPORTED`: the page languages; English is the source text, `RTL` are written right
  to left. `negotiate()` picks one: the session's `locale` (a token field) when it has
  one, else the best of the browser's `Accept-Language` (q-values honoured), else English.
- Messages live in `portal/locales/<lang>/LC_MESSAGES/messages.po`. They are compiled in
  memory the first time they are needed (`translations()`), so a checkout or an image
  needs no build step and no compiled file is committed. Fuzzy entries are not used.
- Templates speak through Jinja2's i18n extension (`{% trans %}`, `_()`, `ngettext()`),
  newstyle. The Jinja2 environment is shared by every request, so its callables read the
  language of the page being rendered from a context variable that `activated()` sets
  around one render.
- Keeping the catalogs current (`./dev i18n …`) is portal/messages.py's job; see the
  README's "Languages".
"""

from __future__ import annotations

import contextvars
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from gettext import NullTranslations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

if TYPE_CHECKING:
    import jinja2


class CatalogWords(Protocol):
    """The catalog's words in each language (portal/catalog/i18n.py CatalogTranslations)."""

    def localized(self, value: Any, locale: str) -> Any: ...

    def category(self, name: str, locale: str) -> str: ...

DEFAULT_LOCALE = "en"
SUPPORTED: tuple[str, ...] = ("en", "de", "fr", "es", "ja", "ar")
RTL = frozenset({"ar"})
DOMAIN = "messages"

_PACKAGE = Path(__file__).resolve().parent
LOCALES_DIR = _PACKAGE / "locales"
TEMPLATE_FILE = LOCALES_DIR / f"{DOMAIN}.pot"
_TAG = re.compile(r"^[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*$|^\*$")


def N_(message: str) -> str:
    """Marks `message` for extraction; it is translated where it is shown."""
    return message


# -- which language ---------------------------------------------------------------------
def base_language(tag: str | None) -> str | None:
    """`de` for `de-CH`, `de_AT` or `DE`; None for a tag that is no supported language."""
    if not tag:
        return None
    base = tag.strip().replace("_", "-").split("-")[0].lower()
    return base if base in SUPPORTED else None


def parse_accept_language(header: str | None) -> list[str]:
    """The language tags of an Accept-Language header, best first (q=0 and junk dropped;
    equal q-values keep their order)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not _TAG.match(tag):
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if 0 < quality <= 1:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(requested: str | None, accept_language: str | None) -> str:
    """The page language: `requested` (a session's `locale`) when supported, else the
    browser's best supported choice, else English."""
    chosen = base_language(requested)
    if chosen:
        return chosen
    for tag in parse_accept_language(accept_language):
        chosen = DEFAULT_LOCALE if tag == "*" else base_language(tag)
        if chosen:
            return chosen
    return DEFAULT_LOCALE


def direction(locale: str) -> str:
    return "rtl" if locale in RTL else "ltr"


# -- the messages -------------------------------------------------------------------------
def po_path(locale: str) -> Path:
    return LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_po(text: bytes | str, locale: str) -> Translations:
    """A .po file's translations, compiled in memory; fuzzy entries are left out."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    catalog = read_po(io.BytesIO(raw), locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@cache
def translations(locale: str) -> NullTranslations:
    """The messages of `locale` (English: the source text itself)."""
    path = po_path(locale)
    if locale == DEFAULT_LOCALE or locale not in SUPPORTED or not path.exists():
        return NullTranslations()
    return compile_po(path.read_bytes(), locale)


@dataclass(frozen=True)
class Language:
    """The language a page is rendered in."""

    locale: str
    messages: NullTranslations

    @property
    def dir(self) -> str:
        return direction(self.locale)


_ENGLISH = Language(DEFAULT_LOCALE, NullTranslations())
_current: contextvars.ContextVar[Language] = contextvars.ContextVar(
    "portal_language", default=_ENGLISH)


@contextmanager
def activated(locale: str) -> Iterator[Language]:
    """Render in `locale` inside the block (templates and `gettext` read it)."""
    language = Language(locale, translations(locale)) if locale in SUPPORTED else _ENGLISH
    token = _current.set(language)
    try:
        yield language
    finally:
        _current.reset(token)


def current() -> Language:
    return _current.get()


def gettext(message: str) -> str:
    return _current.get().messages.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _current.get().messages.ngettext(singular, plural, n)


def format_utc(timestamp: float) -> str:
    """A moment (seconds since the epoch) as the current language writes a date and time,
    in UTC: `2026-11-29 12:00:00 UTC` in English, `29.11.2026, 12:00:00 UTC` in German."""
    language = _current.get()
    moment = datetime.fromtimestamp(timestamp, UTC)
    if language.locale == DEFAULT_LOCALE:
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{format_datetime(moment, 'medium', tzinfo=UTC, locale=language.locale)} UTC"


def install(env: jinja2.Environment, *, catalog: CatalogWords | None = None) -> None:
    """Give `env` the i18n extension, speaking the language `activated()` sets; the
    globals `page_lang()` and `page_dir()`; and, with `catalog`, the
    filters `localized` (an integration or auth option in the page's language) and
    `category_name`."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["page_lang"] = lambda: _current.get().locale
    env.globals["page_dir"] = lambda: _current.get().dir
    if catalog is not None:
        env.filters["localized"] = lambda value: catalog.localized(value, _current.get().locale)
        env.filters["category_name"] = lambda name: catalog.category(name,
                                                                     _current.get().locale)
