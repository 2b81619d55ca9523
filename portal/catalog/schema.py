"""The shape of a catalog entry: an integration and the ways to authenticate to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AuthType(StrEnum):
    OAUTH2 = "OAUTH2"
    PLATFORM_OAUTH2 = "PLATFORM_OAUTH2"
    SECRET_TEXT = "SECRET_TEXT"
    BASIC_AUTH = "BASIC_AUTH"
    CUSTOM_AUTH = "CUSTOM_AUTH"


@dataclass(frozen=True, kw_only=True)
class AuthOption:
    key: str
    type: AuthType
    display_name: str
    description: str = ""
    help_url: str | None = None
    placeholder: str | None = None
    pattern: str | None = None

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "type": self.type.value,
            "displayName": self.display_name,
            "description": self.description,
        }
        if self.help_url:
            data["helpUrl"] = self.help_url
        return data


@dataclass(frozen=True, kw_only=True)
class Integration:
    name: str
    display_name: str
    category: str
    description: str
    website: str
    auth_options: tuple[AuthOption, ...] = field(default=())
    logo: str | None = None

    @property
    def monogram(self) -> str:
        words = [word for word in self.display_name.replace("-", " ").split() if word]
        letters = "".join(word[0] for word in words[:2]) or self.name[:2]
        return letters.upper()

    def auth_option(self, key: str | None) -> AuthOption | None:
        """The option named by `key`, or the only one when `key` is None."""
        if key is None:
            return self.auth_options[0] if len(self.auth_options) == 1 else None
        return next((option for option in self.auth_options if option.key == key), None)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "displayName": self.display_name,
            "category": self.category,
            "description": self.description,
            "website": self.website,
            "logo": self.logo,
            "authOptions": [option.public() for option in self.auth_options],
        }
