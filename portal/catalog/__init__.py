"""The integration catalog: what can be connected and how.

`schema` holds the types the portal uses, `document` the file format (pydantic models
that generate catalog.schema.json), `loader` reads files from one into the other.
"""

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
    IntegrationListing,
    OAuthSettings,
    PublicAuthOption,
    PublicField,
    PublicIntegration,
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
    "IntegrationListing",
    "OAuthSettings",
    "PublicAuthOption",
    "PublicField",
    "PublicIntegration",
    "Verification",
    "catalog_files",
    "check_catalog",
    "load_catalog",
    "parse_catalog",
    "read_catalog_file",
]
