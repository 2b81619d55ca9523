"""The integration catalog: what can be connected and how."""

from portal.catalog.loader import Catalog, CatalogError, load_catalog, parse_catalog
from portal.catalog.schema import AuthOption, AuthType, Integration

__all__ = [
    "AuthOption",
    "AuthType",
    "Catalog",
    "CatalogError",
    "Integration",
    "load_catalog",
    "parse_catalog",
]
