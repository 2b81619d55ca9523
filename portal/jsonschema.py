"""How the portal writes JSON Schema from its models (the catalog schema, openapi.json).

pydantic's own output is correct but noisy for a reader: a title on every property, an
`anyOf` with null for every optional field, `"default": null`. The documents here are
read by people and by client generators, so they say what a file or a request may
contain in the plainest form:

- no titles (the property names say it);
- an optional field that may be left out is just its type: a `null` there still means
  "absent" to the portal, but nobody should write one, and its empty default is implied;
- a field that is always present but may be null is `{"type": ["string", "null"]}`, and
  a value of one of several plain types `{"type": ["string", "number", "boolean"]}`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import WithJsonSchema
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

_EMPTY_DEFAULTS: tuple[object, ...] = (None, (), [], {}, "")
# Keywords whose value is one schema, a list of schemas, or a map of name to schema.
_ONE = ("items", "additionalProperties", "not", "propertyNames", "contains")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs")


def string_format(name: str) -> WithJsonSchema:
    """A string in a well-known form: `uri`, `uuid`, `date-time`."""
    return WithJsonSchema({"type": "string", "format": name})


def enum_of(values: Iterable[str], *, nullable: bool = False) -> WithJsonSchema:
    """A string that is one of `values` (an enum class or a tuple), for a plain `str` field."""
    names: list[str | None] = [str(value) for value in values]
    if nullable:
        return WithJsonSchema({"type": ["string", "null"], "enum": [*names, None]})
    return WithJsonSchema({"type": "string", "enum": names})


class ContractSchema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        merged = _with_null(inner)
        return merged if merged is not None else super().nullable_schema(schema)

    def union_schema(self, schema: core_schema.UnionSchema) -> JsonSchemaValue:
        generated = super().union_schema(schema)
        options = generated.get("anyOf")
        if isinstance(options, list) and all(
            set(option) == {"type"} and isinstance(option["type"], str) for option in options
        ):
            rest = {key: value for key, value in generated.items() if key != "anyOf"}
            return {"type": [option["type"] for option in options], **rest}
        return generated

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        default = schema.get("default")
        if "default" in schema and any(default == empty and type(default) is type(empty)
                                       for empty in _EMPTY_DEFAULTS):
            return _without_null(self.generate_inner(schema["schema"]))
        return super().default_schema(schema)

    def generate(self, schema: core_schema.CoreSchema, mode: Any = "validation"
                 ) -> JsonSchemaValue:
        document = super().generate(schema, mode=mode)
        title = document.get("title")
        drop_titles(document)
        if title is not None and "properties" in document:
            document = {"title": title, **document}
        return document


def _with_null(inner: JsonSchemaValue) -> JsonSchemaValue | None:
    """`{"type": "string"}` as `{"type": ["string", "null"]}`; None for a `$ref` and the like."""
    kind = inner.get("type")
    if not isinstance(kind, str) or "$ref" in inner or any(key in inner for key in _LIST):
        return None
    merged = {**inner, "type": [kind, "null"]}
    if "enum" in inner:
        merged["enum"] = [*inner["enum"], None]
    return merged


def _without_null(schema: JsonSchemaValue) -> JsonSchemaValue:
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [item for item in kind if item != "null"]
        stripped = {**schema, "type": rest[0] if len(rest) == 1 else rest}
        if "enum" in schema:
            stripped["enum"] = [item for item in schema["enum"] if item is not None]
        return stripped
    options = schema.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [item for item in options if item != {"type": "null"}]
        extra = {key: value for key, value in schema.items() if key != "anyOf"}
        return {**rest[0], **extra} if len(rest) == 1 else {**extra, "anyOf": rest}
    return schema


def drop_titles(schema: Any) -> None:
    """Remove the `title` keyword everywhere (never a property that happens to be named so)."""
    if not isinstance(schema, dict):
        return
    schema.pop("title", None)
    for key in _ONE:
        drop_titles(schema.get(key))
    for key in _LIST:
        for item in schema.get(key, ()):
            drop_titles(item)
    for key in _MAP:
        for item in schema.get(key, {}).values():
            drop_titles(item)


# The order a reader expects: what it is, what it must have, what it holds, then prose.
_KEY_ORDER = ("$schema", "title", "$ref", "type", "const", "required", "additionalProperties",
              "properties", "items", "format", "pattern", "minLength", "maxLength", "minimum",
              "maximum", "minItems", "minProperties", "enum", "default", "discriminator",
              "oneOf", "anyOf", "description", "$defs")
_NAME_MAPS = frozenset(_MAP) | {"mapping"}


def readable(schema: Any) -> Any:
    """The same schema with each object's keywords in `_KEY_ORDER` (names keep theirs)."""
    if isinstance(schema, list):
        return [readable(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    ordered = sorted(schema, key=lambda key: rank.get(key, len(rank)))
    return {key: ({name: readable(value) for name, value in schema[key].items()}
                  if key in _NAME_MAPS and isinstance(schema[key], dict)
                  else readable(schema[key]))
            for key in ordered}

