"""The files generated from the models, which the package ships: rewrite them after a
model changes with `./dev generate` (`python -m portal.generated`).

- `portal/openapi.json`, served at `GET /api/v1/openapi.json` (portal/openapi.py);
- `portal/catalog/catalog.schema.json`, the JSON Schema of catalog files, named by the
  `$schema` of the built-in catalog (portal/catalog/document.py);
- `portal/catalog/catalog-translations.schema.json`, the JSON Schema of the catalog's
  translation files (portal/catalog/i18n.py).

tests/test_generated_files.py fails when a checked-in file differs from what is built.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent


def _builders() -> dict[Path, Callable[[], dict[str, Any]]]:
    from portal import openapi
    from portal.catalog import document
    from portal.catalog import i18n as catalog_i18n

    return {
        PACKAGE / "openapi.json": openapi.build,
        PACKAGE / "catalog" / document.SCHEMA_FILE_NAME: document.json_schema,
        PACKAGE / "catalog" / catalog_i18n.SCHEMA_FILE_NAME: catalog_i18n.json_schema,
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generated_files() -> dict[Path, str]:
    """Each generated file and the text it should have."""
    return {path: render(build()) for path, build in _builders().items()}


def stale_files() -> list[Path]:
    return [path for path, text in generated_files().items()
            if not path.exists() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portal.generated", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = stale_files()
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(PACKAGE.parent)}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated_files().items():
        if path in stale:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(PACKAGE.parent)}")
        else:
            print(f"unchanged {path.relative_to(PACKAGE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
