"""Keeping the message catalogs current: `./dev i18n extract|update|compile|check|
catalog-template LANG` (`python -m portal.messages`). Extracts every page, email and
error-page text (babel.cfg), brings each language's .po in line, and says what is
missing; portal/i18n.py is what the running portal uses of them."""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog as MessageCatalog
from babel.messages.pofile import read_po, write_po

from portal.i18n import DOMAIN, SUPPORTED, TEMPLATE_FILE, compile_po, po_path

# -- keeping the catalogs current (./dev i18n …) -------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
MAPPING_FILE = ROOT / "babel.cfg"
KEYWORDS: Mapping[str, Any] = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def extract_page_texts(fileobj: Any, keywords: Any, comment_tags: Any,
                       options: Any) -> Iterator[tuple[int, str, str, list[str]]]:
    """A Babel extractor for portal/errors.py: the English of every error page
    (PAGE_TEXTS), which the page translates when it is shown."""
    from portal.errors import PAGE_TEXTS

    for key, text in PAGE_TEXTS.items():
        yield 0, "gettext", text.title, [f"error page title ({key})"]
        yield 0, "gettext", text.advice, [f"error page advice ({key})"]


# The catalogs carry no dates or author lines: a file changes only when a message does.
_FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)
_HEADER = ("# Messages of the connect portal's pages and emails.\n"
           "# Kept current with ./dev i18n update (README, Languages).")


def _sources_only(path: str) -> bool:
    relative = Path(path).resolve().relative_to(ROOT).parts
    return not relative or relative[0] in {"portal", "templates"}


def extract() -> MessageCatalog:
    """Every message of the templates and the code, as babel.cfg says where to look."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with MAPPING_FILE.open(encoding="utf-8") as file:
        method_map, options_map = parse_mapping_cfg(  # type: ignore[no-untyped-call]
            file, filename=str(MAPPING_FILE))
    own = {"page_texts": "portal.messages:extract_page_texts"}
    method_map = [(pattern, own.get(method, method)) for pattern, method in method_map]
    catalog = MessageCatalog(project="connect-portal", version="", charset="utf-8",
                             header_comment=_HEADER, creation_date=_FIXED_DATE,
                             revision_date=_FIXED_DATE)
    found = extract_from_dir(str(ROOT), method_map, options_map, keywords=dict(KEYWORDS),
                             comment_tags=("Translators:",), strip_comment_tags=True,
                             directory_filter=_sources_only)
    for filename, lineno, message, comments, context in found:
        path = Path(filename).as_posix()
        catalog.add(message, None, [(path, lineno)], auto_comments=comments,
                    context=context)
    return catalog


def _write_po(path: Path, catalog: MessageCatalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    # No line numbers: a message moving in its file is no change for a translator.
    write_po(buffer, catalog, width=100, sort_output=False, omit_header=False,
             include_previous=False, include_lineno=False)
    path.write_bytes(buffer.getvalue())


def read_locale(locale: str) -> MessageCatalog:
    with po_path(locale).open("rb") as file:
        return read_po(file, locale=locale, domain=DOMAIN)


def update(template: MessageCatalog) -> None:
    """Bring every language's .po in line with `template` (new messages empty, gone ones
    dropped; a changed message is marked fuzzy until a translator checks it)."""
    for locale in SUPPORTED[1:]:
        path = po_path(locale)
        if path.exists():
            catalog = read_locale(locale)
        else:
            catalog = MessageCatalog(locale=locale, domain=DOMAIN, project="connect-portal",
                                     charset="utf-8")
        catalog.update(template, no_fuzzy_matching=False, update_header_comment=False)
        catalog.header_comment = _HEADER
        catalog.fuzzy = False
        catalog.revision_date = catalog.creation_date = _FIXED_DATE
        catalog.last_translator = catalog.language_team = ""
        catalog.obsolete.clear()
        _write_po(path, catalog)


@dataclass(frozen=True)
class Problem:
    locale: str
    message: str
    what: str

    def __str__(self) -> str:
        return f"{self.locale}: {self.what}: {self.message!r}"


_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _texts(value: object) -> list[str]:
    if isinstance(value, tuple | list):
        return [str(item or "") for item in value]
    return [str(value or "")]


def problems(template: MessageCatalog) -> list[Problem]:
    """What keeps the languages from being complete: a message missing, untranslated,
    fuzzy, or a translation that loses or invents a `%(name)s` placeholder."""
    found: list[Problem] = []
    for locale in SUPPORTED[1:]:
        if not po_path(locale).exists():
            found.append(Problem(locale, str(po_path(locale)), "no catalog"))
            continue
        catalog = read_locale(locale)
        for message in template:
            if not message.id:
                continue
            ids = message.id if isinstance(message.id, tuple | list) else (message.id,)
            key = str(ids[0])
            ours = catalog.get(message.id, context=message.context)
            if ours is None:
                found.append(Problem(locale, key, "missing"))
            elif ours.fuzzy:
                found.append(Problem(locale, key, "fuzzy"))
            elif not all(strings := _texts(ours.string)):
                found.append(Problem(locale, key, "untranslated"))
            else:
                wanted = set().union(*(_PLACEHOLDER.findall(str(item)) for item in ids))
                for text in strings:
                    got = set(_PLACEHOLDER.findall(text))
                    # A singular form may leave out the count ("one app"), nothing else.
                    if got - wanted or wanted - got - {"num", "count"}:
                        found.append(Problem(locale, key, "placeholders differ"))
                        break
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev i18n", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("extract", help=f"write {TEMPLATE_FILE.relative_to(ROOT)} from the sources")
    sub.add_parser("update", help="extract, then bring every language's .po in line")
    sub.add_parser("compile", help="compile every .po in memory, as the portal does")
    sub.add_parser("check", help="exit 1 when a language misses, or has fuzzy, messages")
    template_cmd = sub.add_parser(
        "catalog-template",
        help="print a complete catalog translation file for LANG (English where missing)")
    template_cmd.add_argument("lang", choices=SUPPORTED[1:])
    args = parser.parse_args(argv)

    if args.command == "catalog-template":
        from portal.catalog.i18n import translation_template

        print(json.dumps(translation_template(args.lang), indent=2, ensure_ascii=False))
        return 0
    if args.command == "compile":
        for locale in SUPPORTED[1:]:
            catalog = read_locale(locale)
            compile_po(po_path(locale).read_bytes(), locale)
            print(f"{locale}: {sum(1 for item in catalog if item.id and item.string)} messages")
        return 0
    template = extract()
    if args.command in {"extract", "update"}:
        _write_po(TEMPLATE_FILE, template)
        print(f"wrote {TEMPLATE_FILE.relative_to(ROOT)} ({len(template)} messages)")
        if args.command == "update":
            update(template)
            print("updated " + ", ".join(SUPPORTED[1:]))
        return 0
    found = problems(template)
    from portal.catalog.i18n import missing_catalog_strings

    for problem in found:
        print(problem, file=sys.stderr)
    for locale in SUPPORTED[1:]:
        missing = missing_catalog_strings(locale)
        if missing:
            print(f"{locale}: catalog: {len(missing)} strings still in English "
                  f"(./dev i18n catalog-template {locale})", file=sys.stderr)
    print(f"{len(template)} messages; {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
