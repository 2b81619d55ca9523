"""Load and validate catalog files; a bad entry stops start-up with its place named."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from portal.catalog.schema import AuthOption, AuthType, Integration

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SUPPORTED_TYPES = {AuthType.SECRET_TEXT}


class CatalogError(ValueError):
    """A catalog file or entry is invalid; the message names the file, entry and field."""


class Catalog:
    def __init__(self, integrations: Iterable[Integration]) -> None:
        self._by_name = {integration.name: integration for integration in integrations}

    def get(self, name: str) -> Integration | None:
        return self._by_name.get(name)

    def __iter__(self) -> Any:
        return iter(sorted(self._by_name.values(), key=lambda item: item.display_name.lower()))

    def __len__(self) -> int:
        return len(self._by_name)


def load_catalog(extra_paths: Iterable[str] = ()) -> Catalog:
    """The built-in catalog, then every operator file; later entries override by name."""
    builtin = resources.files("portal.catalog") / "integrations.json"
    entries = parse_catalog(builtin.read_text(encoding="utf-8"), source="built-in catalog")
    for raw_path in extra_paths:
        path = Path(raw_path)
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise CatalogError(f"{file}: cannot be read ({exc.strerror})") from None
            entries.extend(parse_catalog(text, source=str(file)))
    return Catalog(entries)


def parse_catalog(text: str, *, source: str) -> list[Integration]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("integrations"), list):
        raise CatalogError(f'{source}: expected an object with an "integrations" list')
    seen: set[str] = set()
    result = []
    for index, raw in enumerate(document["integrations"]):
        where = f"{source}: integrations[{index}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            where = f"{source}: integration {raw['name']!r}"
        integration = _integration(raw, where)
        if integration.name in seen:
            raise CatalogError(f"{where}: name is used twice in this file")
        seen.add(integration.name)
        result.append(integration)
    return result


def _integration(raw: Any, where: str) -> Integration:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must be an object")
    name = _string(raw, "name", where)
    if not _NAME.match(name):
        raise CatalogError(f"{where}: field 'name' must be lower-case letters, digits and '-'")
    options_raw = raw.get("authOptions")
    if not isinstance(options_raw, list) or not options_raw:
        raise CatalogError(f"{where}: field 'authOptions' must be a non-empty list")
    options = tuple(
        _auth_option(option, f"{where}: authOptions[{index}]")
        for index, option in enumerate(options_raw)
    )
    keys = [option.key for option in options]
    if len(set(keys)) != len(keys):
        raise CatalogError(f"{where}: field 'authOptions' has two options with the same key")
    return Integration(
        name=name,
        display_name=_string(raw, "displayName", where),
        category=_string(raw, "category", where),
        description=_string(raw, "description", where),
        website=_https_url(raw, "website", where),
        auth_options=options,
        logo=_optional_string(raw, "logo", where),
    )


def _auth_option(raw: Any, where: str) -> AuthOption:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must be an object")
    type_name = _string(raw, "type", where)
    try:
        auth_type = AuthType(type_name)
    except ValueError:
        known = ", ".join(item.value for item in AuthType)
        raise CatalogError(
            f"{where}: field 'type' is {type_name!r}; expected one of {known}"
        ) from None
    if auth_type not in _SUPPORTED_TYPES:
        raise CatalogError(f"{where}: auth type {auth_type.value} is not supported yet")
    pattern = _optional_string(raw, "pattern", where)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise CatalogError(f"{where}: field 'pattern' is not a valid regex ({exc})") from None
    return AuthOption(
        key=_string(raw, "key", where),
        type=auth_type,
        display_name=_string(raw, "displayName", where),
        description=_optional_string(raw, "description", where) or "",
        help_url=_https_url(raw, "helpUrl", where) if "helpUrl" in raw else None,
        placeholder=_optional_string(raw, "placeholder", where),
        pattern=pattern,
    )


def _string(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: field {key!r} is required and must be a non-empty string")
    return value.strip()


def _optional_string(raw: dict[str, Any], key: str, where: str) -> str | None:
    if raw.get(key) is None:
        return None
    return _string(raw, key, where)


def _https_url(raw: dict[str, Any], key: str, where: str) -> str:
    value = _string(raw, key, where)
    if not value.startswith("https://"):
        raise CatalogError(f"{where}: field {key!r} must be an https:// URL")
    return value
