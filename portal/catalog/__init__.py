"""The integration catalog: what can be connected and how."""

from portal.catalog.loader import (
    Catalog,
    CatalogError,
    catalog_files,
    check_catalog,
    load_catalog,
    parse_catalog,
    read_catalog_file,
)
from portal.catalog.schema import (
    AuthOption,
    AuthType,
    Choice,
    Field,
    FieldFormat,
    FieldType,
    Integration,
    OAuthSettings,
    Verification,
)

__all__ = [
    "AuthOption",
    "AuthType",
    "Catalog",
    "CatalogError",
    "Choice",
    "Field",
    "FieldFormat",
    "FieldType",
    "Integration",
    "OAuthSettings",
    "Verification",
    "catalog_files",
    "check_catalog",
    "load_catalog",
    "parse_catalog",
    "read_catalog_file",
]
