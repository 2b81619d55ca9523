"""The OAuth family's provider side: the only module that talks to OAuth providers.

It builds authorization URLs and redeems codes and refresh tokens with Authlib's async
client over httpx, with explicit timeouts and no redirects. It knows nothing about
sessions, browsers or HTTP handlers. A provider's answer is never logged: only the
provider's host, the HTTP status and the OAuth error code are.
"""

from __future__ import annotations

import logging
import re
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.common.urls import url_decode  # type: ignore[import-untyped]
from authlib.integrations.base_client.errors import (  # type: ignore[import-untyped]
    OAuthError,
)
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
)
from authlib.oauth2.rfc7636 import (  # type: ignore[import-untyped]
    create_s256_code_challenge,
)

with warnings.catch_warnings():
    # Authlib 1.9 would rather use the httpx2 fork; the portal uses httpx throughout.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
    )

from portal import ssrf
from portal.catalog import OAuthSettings
from portal.settings import origin_of

logger = logging.getLogger("portal.oauth")

MAX_MESSAGE_LENGTH = 200
# Fields of a token response that the delivery body names itself; the rest go to `data`.
_STANDARD_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in", "scope",
                    "expires_at", "id_token", "ok"}
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True)
class ClientApp:
    """An OAuth app's client credentials; the secret never appears in a repr."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class Endpoints:
    """An auth option's URLs, filled from validated props and checked by the SSRF guard."""

    auth_url: str
    token_url: str
    issuer: str
    iss_required: bool


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_type: str
    expires_in: int | None
    scope: str | None
    data: dict[str, Any]

    def delivery_fields(self) -> dict[str, Any]:
        """The token part of the Weavz create-connection body."""
        return {
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
            "tokenType": self.token_type,
            "expiresIn": self.expires_in,
            "scope_oauth": self.scope,
            "data": self.data,
        }


class ProviderError(Exception):
    """The provider refused or could not be reached. `message` is safe to show a user:
    printable, length-capped, and rendered escaped. `reason` is a short code for logs."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


def clean_text(value: object, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """Provider-supplied text made safe to store and show: printable and capped."""
    text = _UNPRINTABLE.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def new_state() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_verifier() -> str:
    """A PKCE code verifier: 64 characters from the unreserved set (RFC 7636: 43-128)."""
    return secrets.token_urlsafe(48)


def endpoints_for(
    settings: OAuthSettings, props: Mapping[str, str], *, allow_http_loopback: bool = False
) -> Endpoints:
    """Fill the option's URL templates from props; raises ssrf.UnsafeUrl naming the field."""
    auth = ssrf.expand_url(settings.auth_url, props, allow_http_loopback=allow_http_loopback)
    token = ssrf.expand_url(settings.token_url, props, allow_http_loopback=allow_http_loopback)
    issuer = origin_of(auth.url)
    if settings.issuer:
        issuer = ssrf.expand_url(
            settings.issuer, props, allow_http_loopback=allow_http_loopback
        ).url
    return Endpoints(auth_url=auth.url, token_url=token.url, issuer=issuer,
                     iss_required=settings.iss_parameter_supported)


class ProviderClient:
    def __init__(
        self, *, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 3.0))
        self._transport = transport

    def _client(self, settings: OAuthSettings, app: ClientApp) -> Any:
        method = ("client_secret_basic" if settings.authorization_method == "HEADER"
                  else "client_secret_post")
        kind = _JsonTokenClient if settings.token_request_format == "JSON" else AsyncOAuth2Client
        return kind(
            client_id=app.client_id,
            client_secret=app.client_secret,
            token_endpoint_auth_method=method,
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
            transport=self._transport,
            headers={"User-Agent": "connect-portal"},
        )

    @staticmethod
    def authorization_url(
        settings: OAuthSettings,
        endpoints: Endpoints,
        app: ClientApp,
        *,
        redirect_uri: str,
        state: str,
        verifier: str | None,
    ) -> str:
        params: dict[str, str] = dict(settings.extra_params)
        if settings.scope:
            params["scope"] = settings.scope
        if verifier is not None:
            params["code_challenge"] = create_s256_code_challenge(verifier)
            params["code_challenge_method"] = "S256"
        url: str = prepare_grant_uri(
            endpoints.auth_url, client_id=app.client_id, response_type="code",
            redirect_uri=redirect_uri, state=state, **params,
        )
        return url

    async def exchange_code(
        self,
        settings: OAuthSettings,
        endpoints: Endpoints,
        app: ClientApp,
        *,
        code: str,
        verifier: str | None,
        redirect_uri: str,
    ) -> TokenSet:
        extra = {"code_verifier": verifier} if verifier else {}
        return await self._token_request(
            settings, endpoints, app, "exchange",
            lambda client: client.fetch_token(
                endpoints.token_url, grant_type="authorization_code", code=code,
                redirect_uri=redirect_uri, **extra,
            ),
        )

    async def refresh(
        self, settings: OAuthSettings, endpoints: Endpoints, app: ClientApp, refresh_token: str
    ) -> TokenSet:
        tokens = await self._token_request(
            settings, endpoints, app, "refresh",
            lambda client: client.refresh_token(endpoints.token_url,
                                                refresh_token=refresh_token),
        )
        if tokens.refresh_token is None:
            # Providers that do not rotate refresh tokens answer without one: keep it.
            tokens = TokenSet(
                access_token=tokens.access_token, refresh_token=refresh_token,
                token_type=tokens.token_type, expires_in=tokens.expires_in,
                scope=tokens.scope, data=tokens.data,
            )
        return tokens

    async def _token_request(
        self, settings: OAuthSettings, endpoints: Endpoints, app: ClientApp, what: str,
        send: Any,
    ) -> TokenSet:
        host = httpx.URL(endpoints.token_url).host
        try:
            async with self._client(settings, app) as client:
                answer = await send(client)
        except OAuthError as exc:
            error = clean_text(exc.error or "error", 64)
            logger.warning("token %s at %s refused: %s", what, host, error)
            text = f"The provider refused the sign-in ({error})"
            if exc.description:
                text += f": {clean_text(exc.description)}"
            raise ProviderError(error, clean_text(text)) from None
        except httpx.TimeoutException:
            logger.warning("token %s at %s timed out", what, host)
            raise ProviderError("timeout", "The provider did not answer in time.") from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            logger.warning("token %s at %s answered %d", what, host, status)
            raise ProviderError(
                f"status_{status}", f"The provider answered with an error (HTTP {status})."
            ) from None
        except httpx.HTTPError as exc:
            logger.warning("token %s at %s unreachable: %s", what, host, type(exc).__name__)
            raise ProviderError("unreachable", "The provider could not be reached.") from None
        except ValueError:
            logger.warning("token %s at %s: the answer is not a JSON object", what, host)
            raise ProviderError(
                "not_json", "The provider gave an answer that could not be read."
            ) from None
        except Exception as exc:
            # Whatever else goes wrong, the session must end FAILED rather than hang.
            logger.error("token %s at %s failed: %s", what, host, type(exc).__name__)
            raise ProviderError(
                "unexpected", "The provider's answer could not be used."
            ) from None
        return _token_set(dict(answer), settings.scope, host, what)


class _JsonTokenClient(AsyncOAuth2Client):  # type: ignore[misc]
    """For providers whose token endpoint takes a JSON body instead of a form."""

    async def _fetch_token(self, url: str, body: str = "", headers: Any = None,
                           auth: Any = None, method: str = "POST", **kwargs: Any) -> Any:
        response = await self._post_json(url, body, headers, auth, **kwargs)
        for hook in self.compliance_hook["access_token_response"]:
            response = hook(response)
        return self.parse_response_token(response)

    async def _refresh_token(self, url: str, refresh_token: str | None = None, body: str = "",
                             headers: Any = None, auth: Any = None, **kwargs: Any) -> Any:
        response = await self._post_json(url, body, headers, auth, **kwargs)
        for hook in self.compliance_hook["refresh_token_response"]:
            response = hook(response)
        return self.parse_response_token(response)

    async def _post_json(self, url: str, body: str, headers: Any, auth: Any,
                         **kwargs: Any) -> httpx.Response:
        payload = dict(url_decode(body))
        if self.token_endpoint_auth_method == "client_secret_post":
            # Client credentials go inside the JSON object, not appended as a form.
            payload.update(client_id=self.client_id, client_secret=self.client_secret)
            auth = None
        headers = {**(headers or {}), "Content-Type": "application/json"}
        response: httpx.Response = await self.post(url, json=payload, headers=headers,
                                                   auth=auth, **kwargs)
        return response


def _token_set(answer: dict[str, Any], requested_scope: str, host: str | None,
               what: str) -> TokenSet:
    access_token = answer.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        logger.warning("token %s at %s: no access_token in the answer", what, host)
        raise ProviderError("no_access_token", "The provider's answer had no access token.")
    refresh_token = answer.get("refresh_token")
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)  # some providers send it as a string
    scope = answer.get("scope")
    if isinstance(scope, list):
        scope = " ".join(str(item) for item in scope)
    token_type = answer.get("token_type")
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token
        else None,
        token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
        expires_in=expires_in if isinstance(expires_in, int) else None,
        # The token's own scope says what was granted; the requested one is a fallback.
        scope=scope if isinstance(scope, str) else (requested_scope or None),
        data={key: value for key, value in answer.items() if key not in _STANDARD_FIELDS},
    )
