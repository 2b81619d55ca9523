"""Whose OAuth app signs the user in: the platform's, or the customer's own.

`PLATFORM_OAUTH2` options, and `OAUTH2` options without `oauthAppMode: "custom"`, use the
platform's app for the integration, read at start from the JSON file named by
`PORTAL_OAUTH_APPS` (docs/oauth.md). `oauthAppMode: "custom"` fetches the customer's app
from the core API and keeps it in this process for a short while. An option marked
`customerAppOnly` (its provider's host is the end user's choice) never gets the
platform's app, so the platform's secret cannot travel to a host a user typed. Client
secrets stay in memory: never in the catalog, a log line, Redis or a page.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from portal.auth.oauth.provider import ClientApp
from portal.catalog import AuthOption, AuthType
from portal.core_api import CoreApiClient
from portal.settings import SettingsError

logger = logging.getLogger("portal.auth.oauth.apps")

CUSTOM_APP_CACHE_SECONDS = 60.0
MAX_CACHED_APPS = 1000


@dataclass(frozen=True)
class AppChoice:
    """Which app a flow uses, without its secret: safe to keep with the OAuth state."""

    custom_app_id: str | None = None  # None: the platform's app

    @classmethod
    def of(cls, option: AuthOption, oauth_app_mode: str | None,
           oauth_app_id: str | None) -> AppChoice:
        if option.type is AuthType.OAUTH2 and oauth_app_mode == "custom" and oauth_app_id:
            return cls(custom_app_id=oauth_app_id)
        return cls()


def load_platform_apps(path: str | None) -> dict[str, ClientApp]:
    """`{"<integrationName>[/<authMethodKey>]": {"clientId": …, "clientSecret": …}}`."""
    if not path:
        return {}
    where = f"PORTAL_OAUTH_APPS ({path})"
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{where}: cannot be read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SettingsError(f"{where}: not valid JSON") from None
    apps = document.get("apps") if isinstance(document, dict) else None
    if not isinstance(apps, dict):
        raise SettingsError(f'{where}: expected an object with an "apps" object')
    result = {}
    for name, spec in apps.items():
        if not isinstance(spec, dict) or set(spec) != {"clientId", "clientSecret"} or not all(
            isinstance(value, str) and value.strip() for value in spec.values()
        ):
            # The message names the entry, never its values.
            raise SettingsError(
                f"{where}: apps.{name}: needs exactly a non-empty clientId and clientSecret"
            )
        result[name] = ClientApp(client_id=spec["clientId"].strip(),
                                 client_secret=spec["clientSecret"].strip())
    return result


class OAuthApps:
    def __init__(
        self,
        *,
        platform: Mapping[str, ClientApp],
        core: CoreApiClient,
        cache_seconds: float = CUSTOM_APP_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._platform = dict(platform)
        self._core = core
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, ClientApp | None]] = {}

    def platform_app(self, integration_name: str, option: AuthOption) -> ClientApp | None:
        """The platform's own app for an option, from the portal's configuration."""
        if option.oauth is None or option.oauth.customer_app_only:
            return None
        return (self._platform.get(f"{integration_name}/{option.key}")
                or self._platform.get(integration_name))

    async def app_for(
        self, integration_name: str, option: AuthOption, choice: AppChoice
    ) -> ClientApp | None:
        """The client credentials to use, or None when no app is configured.

        Raises delivery.DeliveryFailed when the core API cannot say (nothing is cached then).
        """
        if choice.custom_app_id is None:
            return self.platform_app(integration_name, option)
        key = (integration_name, choice.custom_app_id)
        cached = self._cache.get(key)
        now = self._clock()
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._core.fetch_oauth_app(choice.custom_app_id,
                                                 integration_name=integration_name)
        app = None if found is None else ClientApp(client_id=found[0], client_secret=found[1])
        if len(self._cache) >= MAX_CACHED_APPS:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[key] = (now + self._cache_seconds, app)
        return app
