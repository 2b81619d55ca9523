"""The catalog in other languages: per-locale overrides of its words, in the catalog's terms.

English is the catalog itself. Each other language may have one file,
`portal/catalog/translations/<lang>.json`, keyed by the catalog's own names (integration
`name`, option `key`, prop key, dropdown `value`) and holding only words: descriptions,
labels, help, placeholders, dropdown labels, Markdown help and category names. What a file
leaves out stays English. docs/catalog.md describes the format; its JSON Schema,
`catalog-translations.schema.json`, is generated from the models below.

A file is checked at start against the built-in catalog: an unknown integration, option,
prop or dropdown value, or a word for a place that has none (`options` on a text field),
stops start-up with the place named, as a bad catalog does. An entry an operator's
catalog overrides (PORTAL_CATALOG) is shown in English.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

from portal import i18n
from portal.catalog.loader import CatalogError, parse_catalog
from portal.catalog.schema import AuthOption, AuthType, Choice, Field, FieldType, Integration
from portal.jsonschema import ContractSchema, readable

SCHEMA_FILE_NAME = "catalog-translations.schema.json"
TRANSLATED_LOCALES: tuple[str, ...] = tuple(i18n.SUPPORTED[1:])

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Model(pydantic.BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              alias_generator=to_camel, populate_by_name=True)


class LabelText(_Model):
    """The words of a BASIC_AUTH option's username or password field."""

    display_name: Text | None = None
    description: Text | None = None
    placeholder: Text | None = None


class FieldText(LabelText):
    """The words of one prop: an input's label, help and placeholder, a dropdown's
    option labels by value, or a MARKDOWN block's text."""

    options: dict[str, Text] | None = pydantic.Field(
        None, description="STATIC_DROPDOWN: the label of each option, by its value.")
    markdown: Text | None = pydantic.Field(
        None, description="MARKDOWN blocks: the help text (keep its links and `code`).")


class OptionText(_Model):
    display_name: Text | None = None
    description: Text | None = None
    placeholder: Text | None = pydantic.Field(None, description="SECRET_TEXT options.")
    username: LabelText | None = pydantic.Field(None, description="BASIC_AUTH options.")
    password: LabelText | None = pydantic.Field(None, description="BASIC_AUTH options.")
    props: dict[str, FieldText] | None = pydantic.Field(
        None, description="CUSTOM_AUTH fields and OAuth props, by key.")
    scope_descriptions: dict[str, Text] | None = pydantic.Field(
        None, description="OAuth options: what each scope lets the app do, by scope.")


class IntegrationText(_Model):
    display_name: Text | None = pydantic.Field(
        None, description="Only when the brand is written differently in this language.")
    description: Text | None = None
    auth_options: dict[str, OptionText] | None = pydantic.Field(
        None, description="By the option's key.")


class TranslationFile(_Model):
    """The words of the built-in catalog in one language."""

    model_config = ConfigDict(title="Connect portal catalog translations")

    schema_: str | None = pydantic.Field(None, alias="$schema", description=(
        "This format's JSON Schema, for editors: catalog-translations.schema.json."))
    locale: Literal[TRANSLATED_LOCALES]  # type: ignore[valid-type]
    categories: dict[str, Text] = pydantic.Field(
        default_factory=dict, description="English category name: its name here.")
    integrations: dict[str, IntegrationText] = pydantic.Field(
        default_factory=dict, description="By the integration's name.")


_FILE = pydantic.TypeAdapter(TranslationFile)


def json_schema() -> dict[str, Any]:
    schema = TranslationFile.model_json_schema(by_alias=True, schema_generator=ContractSchema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **readable(schema)}


# -- reading and checking a file ------------------------------------------------------------
@cache
def builtin_integrations() -> dict[str, Integration]:
    text = (resources.files("portal.catalog") / "integrations.json").read_text("utf-8")
    return {item.name: item for item in parse_catalog(text, source="built-in catalog")}


def translations_dir() -> Any:
    return resources.files("portal.catalog") / "translations"


def read_translation(locale: str) -> TranslationFile | None:
    """The file of `locale`, checked; None when there is none."""
    file = translations_dir() / f"{locale}.json"
    if not file.is_file():
        return None
    source = f"catalog/translations/{locale}.json"
    return parse_translation(file.read_text("utf-8"), source=source, locale=locale)


def parse_translation(text: str, *, source: str, locale: str,
                      catalog: Mapping[str, Integration] | None = None) -> TranslationFile:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{source}: not valid JSON ({exc})") from None
    try:
        parsed = _FILE.validate_python(raw)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        place = ".".join(str(part) for part in error["loc"])
        what = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        raise CatalogError(f"{source}: {place}: {what}") from None
    if parsed.locale != locale:
        raise CatalogError(f"{source}: locale: is {parsed.locale!r}, the file is for {locale!r}")
    problems = check_translation(parsed, catalog or builtin_integrations())
    if problems:
        raise CatalogError(f"{source}: {problems[0]}")
    return parsed


def check_translation(file: TranslationFile, catalog: Mapping[str, Integration]) -> list[str]:
    """Every place of `file` that names nothing in `catalog`, or does not fit it."""
    problems: list[str] = []
    categories = {item.category for item in catalog.values()}
    problems += [f"categories.{name}: no integration has this category"
                 for name in file.categories if name not in categories]
    for name, text in file.integrations.items():
        integration = catalog.get(name)
        if integration is None:
            problems.append(f"integrations.{name}: no integration has this name")
            continue
        for key, option_text in (text.auth_options or {}).items():
            where = f"integrations.{name}.authOptions.{key}"
            option = next((item for item in integration.auth_options if item.key == key), None)
            if option is None:
                problems.append(f"{where}: {name} has no auth option with this key")
                continue
            problems += [f"{where}.{problem}" for problem in _check_option(option, option_text)]
    return problems


def _check_option(option: AuthOption, text: OptionText) -> Iterable[str]:
    if text.placeholder is not None and option.type is not AuthType.SECRET_TEXT:
        yield "placeholder: only SECRET_TEXT options have one (a prop's is under props)"
    basic = option.type is AuthType.BASIC_AUTH
    for part in ("username", "password"):
        if getattr(text, part) is not None and not basic:
            yield f"{part}: only BASIC_AUTH options have one"
    if text.scope_descriptions is not None:
        described = dict(option.oauth.scope_descriptions) if option.oauth else {}
        yield from (f"scopeDescriptions.{scope}: the option describes no such scope"
                    for scope in text.scope_descriptions if scope not in described)
    if text.props is None:
        return
    if option.type not in {AuthType.CUSTOM_AUTH} and not (option.type.is_oauth
                                                           and option.fields):
        yield "props: this option has no props"
        return
    fields = {item.key: item for item in option.fields}
    for key, field_text in text.props.items():
        field = fields.get(key)
        if field is None:
            yield f"props.{key}: the option has no prop with this key"
            continue
        yield from (f"props.{key}.{problem}" for problem in _check_field(field, field_text))


def _check_field(field: Field, text: FieldText) -> Iterable[str]:
    if field.type is FieldType.MARKDOWN:
        for name in ("display_name", "description", "placeholder", "options"):
            if getattr(text, name) is not None:
                yield f"{to_camel(name)}: a MARKDOWN block has only markdown"
        return
    if text.markdown is not None:
        yield "markdown: only MARKDOWN blocks have it"
    if text.options is not None:
        if field.type is not FieldType.STATIC_DROPDOWN:
            yield "options: only STATIC_DROPDOWN fields have options"
            return
        values = {choice.value for choice in field.options}
        yield from (f"options.{value}: the field has no option with this value"
                    for value in text.options if value not in values)


# -- applying a file ------------------------------------------------------------------------
# The portal's own labels of BASIC_AUTH fields (portal/catalog/loader.py), from the .po.
_DEFAULT_LABELS = {"username": i18n.N_("Username"), "password": i18n.N_("Password")}


def _field(field: Field, text: LabelText | FieldText | None, locale: str) -> Field:
    label = field.display_name
    if (text is None or text.display_name is None) and _DEFAULT_LABELS.get(field.key) == label:
        label = i18n.translations(locale).gettext(label)
    if text is None:
        return replace(field, display_name=label)
    options = field.options
    if isinstance(text, FieldText) and text.options:
        labels = text.options
        options = tuple(Choice(label=labels.get(item.value, item.label), value=item.value)
                        for item in field.options)
    markdown = text.markdown if isinstance(text, FieldText) and text.markdown else field.markdown
    return replace(
        field,
        display_name=text.display_name or label,
        description=text.description or field.description,
        placeholder=text.placeholder or field.placeholder,
        options=options,
        markdown=markdown,
    )


def _option(option: AuthOption, text: OptionText | None, locale: str) -> AuthOption:
    text = text or OptionText.model_validate({})
    fields = []
    for field in option.fields:
        if option.type is AuthType.SECRET_TEXT:
            fields.append(replace(field, display_name=text.display_name or field.display_name,
                                  description=text.description or field.description,
                                  placeholder=text.placeholder or field.placeholder))
        elif option.type is AuthType.BASIC_AUTH:
            fields.append(_field(field, getattr(text, field.key, None), locale))
        else:
            fields.append(_field(field, (text.props or {}).get(field.key), locale))
    oauth = option.oauth
    if oauth is not None and text.scope_descriptions:
        words = text.scope_descriptions
        oauth = replace(oauth, scope_descriptions=tuple(
            (scope, words.get(scope, english)) for scope, english in oauth.scope_descriptions))
    return replace(option, display_name=text.display_name or option.display_name,
                   description=text.description or option.description, fields=tuple(fields),
                   oauth=oauth)


def _integration(integration: Integration, text: IntegrationText | None,
                 locale: str) -> Integration:
    text = text or IntegrationText.model_validate({})
    options = text.auth_options or {}
    return replace(
        integration,
        display_name=text.display_name or integration.display_name,
        description=text.description or integration.description,
        auth_options=tuple(_option(option, options.get(option.key), locale)
                           for option in integration.auth_options),
    )


T = TypeVar("T")


class CatalogTranslations:
    """The catalog's words in each language, for the entries of one catalog.

    `localized(value, locale)` answers an Integration or AuthOption of that catalog in
    `locale` (the value itself when there is nothing to translate); `category(name,
    locale)` a category's name. An entry an operator's file overrides gets no file's words,
    only the portal's own labels ("Username", "Password")."""

    def __init__(self, catalog: Iterable[Integration],
                 files: Mapping[str, TranslationFile]) -> None:
        builtin = builtin_integrations()
        self._categories = {locale: dict(file.categories) for locale, file in files.items()}
        # locale -> English object -> the same in that language, found by identity first
        # and by equality (a copy of a catalog object) after.
        self._by_id: dict[str, dict[int, Any]] = {}
        self._by_key: dict[str, dict[str, list[tuple[Any, Any]]]] = {}
        originals = list(catalog)
        self._originals = originals  # keeps the ids the map is keyed by alive
        for locale in i18n.SUPPORTED[1:]:
            file = files.get(locale)
            by_id: dict[int, Any] = {}
            by_key: dict[str, list[tuple[Any, Any]]] = {}
            for integration in originals:
                text = None
                if file is not None and builtin.get(integration.name) == integration:
                    text = file.integrations.get(integration.name)
                translated = _integration(integration, text, locale)
                if translated == integration:
                    continue
                pairs: list[tuple[str, Any, Any]] = [(integration.name, integration, translated)]
                pairs += [(f"option:{option.key}", option, localized)
                          for option, localized in zip(integration.auth_options,
                                                       translated.auth_options, strict=True)]
                for key, original, localized in pairs:
                    if original != localized:
                        by_id[id(original)] = localized
                        by_key.setdefault(key, []).append((original, localized))
            self._by_id[locale] = by_id
            self._by_key[locale] = by_key

    @classmethod
    def load(cls, catalog: Iterable[Integration]) -> CatalogTranslations:
        """Read and check every language's file; CatalogError names the first problem."""
        files = {}
        for locale in TRANSLATED_LOCALES:
            parsed = read_translation(locale)
            if parsed is not None:
                files[locale] = parsed
        return cls(catalog, files)

    def localized(self, value: T, locale: str) -> T:
        found = self._by_id.get(locale, {}).get(id(value))
        if found is not None:
            swapped: T = found
            return swapped
        if isinstance(value, Integration):
            key = value.name
        elif isinstance(value, AuthOption):
            key = f"option:{value.key}"
        else:
            return value
        for original, localized in self._by_key.get(locale, {}).get(key, ()):
            if original == value:
                result: T = localized
                return result
        return value

    def category(self, name: str, locale: str) -> str:
        return self._categories.get(locale, {}).get(name, name)


# -- for translators (./dev i18n catalog-template, ./dev i18n check) ------------------------
def _words(integration: Integration) -> dict[str, Any]:
    """Every translatable word of an entry, in the translation file's shape."""
    options: dict[str, Any] = {}
    for option in integration.auth_options:
        entry: dict[str, Any] = {"displayName": option.display_name}
        if option.description:
            entry["description"] = option.description
        if option.type is AuthType.SECRET_TEXT:
            if option.fields[0].placeholder:
                entry["placeholder"] = option.fields[0].placeholder
        elif option.type is AuthType.BASIC_AUTH:
            for field in option.fields:
                label = _label_words(field)
                if field.display_name == _DEFAULT_LABELS.get(field.key):
                    label.pop("displayName")  # the portal's own, from the .po
                if label:
                    entry[field.key] = label
        elif option.fields:
            entry["props"] = {field.key: _label_words(field) for field in option.fields}
        if option.oauth and option.oauth.scope_descriptions:
            entry["scopeDescriptions"] = dict(option.oauth.scope_descriptions)
        options[option.key] = entry
    return {"description": integration.description, "authOptions": options}


def _label_words(field: Field) -> dict[str, Any]:
    if field.type is FieldType.MARKDOWN:
        return {"markdown": field.markdown}
    words: dict[str, Any] = {"displayName": field.display_name}
    if field.description:
        words["description"] = field.description
    if field.placeholder:
        words["placeholder"] = field.placeholder
    if field.options:
        words["options"] = {choice.value: choice.label for choice in field.options}
    return words


def _overlay(english: Any, ours: Any) -> Any:
    if isinstance(english, dict):
        ours = ours if isinstance(ours, dict) else {}
        return {key: _overlay(value, ours.get(key)) for key, value in english.items()}
    return ours if ours is not None else english


def _existing(locale: str) -> dict[str, Any]:
    parsed = read_translation(locale)
    if parsed is None:
        return {}
    dumped: dict[str, Any] = parsed.model_dump(by_alias=True, exclude_none=True)
    return dumped


def translation_template(locale: str) -> dict[str, Any]:
    """A complete file for `locale`: its translations, and English wherever it has none."""
    catalog = builtin_integrations()
    existing = _existing(locale)
    categories = sorted({item.category for item in catalog.values()})
    return {
        "$schema": f"../{SCHEMA_FILE_NAME}",
        "locale": locale,
        "categories": _overlay({name: name for name in categories},
                               existing.get("categories")),
        "integrations": _overlay({name: _words(item) for name, item in catalog.items()},
                                 existing.get("integrations")),
    }


def missing_catalog_strings(locale: str) -> list[str]:
    """The places whose words `locale` still shows in English (placeholders not counted:
    most are examples of a format, the same in every language)."""
    catalog = builtin_integrations()
    english: dict[str, Any] = {
        "categories": {item.category: item.category for item in catalog.values()},
        "integrations": {name: _words(item) for name, item in catalog.items()},
    }
    existing = _existing(locale)
    missing: list[str] = []

    def walk(node: Any, ours: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, ours.get(key) if isinstance(ours, dict) else None, f"{path}.{key}")
        elif ours is None and not path.endswith(".placeholder"):
            missing.append(path.lstrip("."))

    walk(english, existing, "")
    return missing
