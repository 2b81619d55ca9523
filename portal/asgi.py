"""The ASGI entry point for `connect-portal serve` workers: `portal.asgi:app_from_env`."""

from __future__ import annotations

from starlette.applications import Starlette

from portal.app import create_app
from portal.logs import configure_logging
from portal.settings import Settings


def app_from_env() -> Starlette:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    settings.require_production_secrets()
    return create_app(settings)
