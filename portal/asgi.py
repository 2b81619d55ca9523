"""The ASGI entry point for `connect-portal serve` workers: `portal.asgi:app_from_env`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.applications import Starlette

from portal.app import create_app
from portal.logs import configure_logging, write_directly
from portal.settings import Settings


def app_from_env() -> Starlette:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    settings.require_production_secrets()
    app = create_app(settings)
    app.router.lifespan_context = _logs_written_at_shutdown(app.router.lifespan_context)
    return app


Lifespan = Callable[[Starlette], AbstractAsyncContextManager[Any]]


def _logs_written_at_shutdown(lifespan: Lifespan) -> Lifespan:
    """The app's lifespan, after which the log is no longer queued: the worker's last lines
    (uvicorn's "Application shutdown complete", "Finished server process") are written
    before the SIGTERM that uvicorn re-raises ends the process (portal.logs.write_directly)."""

    @asynccontextmanager
    async def then_write_directly(app: Starlette) -> AsyncIterator[Any]:
        try:
            async with lifespan(app) as state:
                yield state
        finally:
            write_directly()

    return then_write_directly
