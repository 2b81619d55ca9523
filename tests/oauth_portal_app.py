"""The portal as a uvicorn worker process for the scale-out tests, configured from the
environment like `serve`, but allowing plain http to a loopback provider (the test
provider), which `serve` refuses. Run as `uvicorn --factory tests.oauth_portal_app:app`."""

from __future__ import annotations

from starlette.applications import Starlette

from portal.app import create_app
from portal.logs import configure_logging
from portal.settings import Settings


def app() -> Starlette:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)
