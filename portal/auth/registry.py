"""Which family runs each auth type. Adding an auth type: a catalog `AuthType` member,
the family module that runs it, and one line here."""

from __future__ import annotations

from collections.abc import Mapping

from portal.auth.family import AuthFamily
from portal.catalog import AuthOption, AuthType, Integration


class AuthRegistry:
    def __init__(self, families: Mapping[AuthType, AuthFamily]) -> None:
        self._families = dict(families)

    @classmethod
    def of(cls, *, credentials: AuthFamily, oauth: AuthFamily) -> AuthRegistry:
        """The portal's families: every auth type of the catalog has exactly one."""
        return cls({
            AuthType.SECRET_TEXT: credentials,
            AuthType.BASIC_AUTH: credentials,
            AuthType.CUSTOM_AUTH: credentials,
            AuthType.OAUTH2: oauth,
            AuthType.PLATFORM_OAUTH2: oauth,
        })

    def runs(self, option: AuthOption) -> bool:
        return option.type in self._families

    def available(self, integration: Integration, option: AuthOption, *,
                  oauth_app_mode: str | None, oauth_app_id: str | None) -> bool:
        """An option this portal runs and that can work with these app choices."""
        return self.runs(option) and self.family_for(option).available(
            integration, option, oauth_app_mode=oauth_app_mode, oauth_app_id=oauth_app_id)

    def family_for(self, option: AuthOption) -> AuthFamily:
        return self._families[option.type]
