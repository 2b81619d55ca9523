"""Where templates, static files and the OpenAPI document are, installed or in a checkout."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    # In a wheel they are portal/templates and portal/static; in a checkout, at the root.
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"cannot find the {name}/ directory next to {_PACKAGE}")


def templates_dir() -> Path:
    return _find("templates")


def static_dir() -> Path:
    return _find("static")


@cache
def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((_PACKAGE / "openapi.json").read_text("utf-8"))
    return document
