"""The OAuth family's provider side: the only module that talks to OAuth providers.

It builds authorization URLs (Authlib's `prepare_grant_uri` and PKCE helper, both
public API) and redeems codes and refresh tokens itself, with httpx through the guarded
outbound client (portal/outbound.py): the token host is resolved once, every address
is checked against the outbound policy, and the connection goes to that address, so
the client secret and the PKCE verifier never reach a host the policy refuses. No
redirects, explicit timeouts, and at most `MAX_TOKEN_RESPONSE_BYTES` of an answer are
read. It knows nothing about sessions, browsers or HTTP handlers. A provider's answer is
never logged: only the provider's host, the HTTP status and the OAuth error code are.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
)
from authlib.oauth2.rfc7636 import (  # type: ignore[import-untyped]
    create_s256_code_challenge,
)

from portal import metrics, ssrf
from portal.catalog import OAuthSettings
from portal.outbound import OutboundPolicy, OutboundRefused, guarded_client
from portal.settings import origin_of

logger = logging.getLogger("portal.auth.oauth.provider")

MAX_MESSAGE_LENGTH = 200
# A token answer is a few kilobytes even with an id_token; anything bigger is refused.
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
# An account identifier from a token response (an OIDC `sub` is at most 255 ASCII
# characters); a longer value is ignored rather than cut. An id_token is read up to:
MAX_ACCOUNT_ID_LENGTH = 255
MAX_ID_TOKEN_LENGTH = 64 * 1024
# Fields of a token response that the delivery body names itself; the rest go to `data`.
_STANDARD_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in", "scope",
                    "expires_at", "id_token", "ok"}
# Control, format (bidi overrides such as U+202E, zero-width characters), surrogate,
# private-use and unassigned characters, and line and paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SPACES = re.compile(r"\s{2,}")


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
    # Who the provider says signed in (never a secret): see `account_id_of`.
    account_id: str | None = None

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
    """Provider-supplied text made safe to store and show: no control, format (bidi
    override, zero-width) or other invisible characters, one space between words, capped."""
    text = "".join(" " if unicodedata.category(char) in _INVISIBLE else char
                   for char in str(value))
    text = _SPACES.sub(" ", text).strip()
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
    """Token and refresh requests to OAuth providers, through the guarded outbound path.

    `policy` is the portal's outbound policy (public addresses, PORTAL_OUTBOUND_ALLOW);
    `transport` and `lookup` are for tests.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: OutboundPolicy | None = None,
        lookup: ssrf.Lookup = ssrf.system_lookup,
    ) -> None:
        # `timeout` bounds each step; a token request as a whole ends within twice it,
        # however slowly the provider trickles its answer in.
        self._deadline = 2 * timeout
        self._http = guarded_client(
            policy=policy or OutboundPolicy(),
            timeout=timeout,
            user_agent="connect-portal",
            headers={"Accept": "application/json"},
            transport=transport,
            lookup=lookup,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

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
        grant = {"grant_type": "authorization_code", "code": code,
                 "redirect_uri": redirect_uri}
        if verifier:
            grant["code_verifier"] = verifier
        answer = await self._token_request(settings, endpoints, app, "exchange", grant)
        return _token_set(answer, settings.scope, _host(endpoints), "exchange")

    async def refresh(
        self, settings: OAuthSettings, endpoints: Endpoints, app: ClientApp, refresh_token: str
    ) -> TokenSet:
        grant = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        answer = await self._token_request(settings, endpoints, app, "refresh", grant)
        tokens = _token_set(answer, settings.scope, _host(endpoints), "refresh")
        if tokens.refresh_token is None:
            # Providers that do not rotate refresh tokens answer without one: keep it.
            tokens = TokenSet(
                access_token=tokens.access_token, refresh_token=refresh_token,
                token_type=tokens.token_type, expires_in=tokens.expires_in,
                scope=tokens.scope, data=tokens.data, account_id=tokens.account_id,
            )
        return tokens

    @metrics.provider_call
    async def _token_request(
        self, settings: OAuthSettings, endpoints: Endpoints, app: ClientApp, what: str,
        grant: dict[str, str],
    ) -> dict[str, Any]:
        """POST the grant to the token URL; the answer as a dict, or ProviderError."""
        host = _host(endpoints)
        payload = dict(grant)
        headers: dict[str, str] = {}
        if settings.authorization_method == "HEADER":
            # client_secret_basic, written as Authlib did (the id and secret unquoted).
            pair = f"{app.client_id}:{app.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:  # client_secret_post: in the body, a form or a JSON object alike
            payload.update(client_id=app.client_id, client_secret=app.client_secret)
        as_json = settings.token_request_format == "JSON"
        try:
            request = self._http.build_request(
                "POST", endpoints.token_url, headers=headers,
                json=payload if as_json else None, data=None if as_json else payload,
            )
            async with asyncio.timeout(self._deadline):
                response = await self._http.send(request, stream=True)
                try:
                    body = await _read_capped(response)
                finally:
                    await response.aclose()
        except OutboundRefused as exc:
            logger.warning("token %s at %s refused by the outbound policy: %s", what, host,
                           exc.reason)
            raise ProviderError(
                "refused", "The sign-in server's address is not allowed from this portal."
            ) from None
        except (httpx.TimeoutException, TimeoutError):
            logger.warning("token %s at %s timed out", what, host)
            raise ProviderError("timeout", "The provider did not answer in time.") from None
        except httpx.HTTPError as exc:
            logger.warning("token %s at %s unreachable: %s", what, host, type(exc).__name__)
            raise ProviderError("unreachable", "The provider could not be reached.") from None
        except _TooLarge:
            logger.warning("token %s at %s: the answer is over %d bytes", what, host,
                           MAX_TOKEN_RESPONSE_BYTES)
            raise ProviderError(
                "too_large", "The provider gave an answer that could not be read."
            ) from None
        except Exception as exc:
            # Whatever else goes wrong, the session must end FAILED rather than hang.
            logger.error("token %s at %s failed: %s", what, host, type(exc).__name__)
            raise ProviderError(
                "unexpected", "The provider's answer could not be used."
            ) from None
        answer = _parse_answer(body, response.headers.get("content-type", ""))
        status = response.status_code
        error = answer.get("error") if answer is not None else None
        if isinstance(error, str) and error:
            # An OAuth error answer (RFC 6749 5.2), whatever its status: GitHub sends 200.
            code = clean_text(error, 64)
            logger.warning("token %s at %s refused: %s (HTTP %d)", what, host, code, status)
            text = f"The provider refused the sign-in ({code})"
            description = answer.get("error_description") if answer is not None else None
            if description:
                text += f": {clean_text(description)}"
            raise ProviderError(code, clean_text(text))
        if not response.is_success:
            logger.warning("token %s at %s answered %d", what, host, status)
            raise ProviderError(
                f"status_{status}", f"The provider answered with an error (HTTP {status})."
            )
        if answer is None:
            logger.warning("token %s at %s: the answer is not JSON or a form", what, host)
            raise ProviderError(
                "not_json", "The provider gave an answer that could not be read."
            )
        return answer


class _TooLarge(Exception):
    pass


async def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_TOKEN_RESPONSE_BYTES:
            raise _TooLarge
    return bytes(body)


def _parse_answer(body: bytes, content_type: str) -> dict[str, Any] | None:
    """A token endpoint's answer as a dict: JSON (RFC 6749), or a form as GitHub sends
    without `Accept: application/json`. None when it is neither."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if kind != "application/x-www-form-urlencoded":
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        if kind == "application/json" or "json" in kind:
            return None
    if kind in {"application/x-www-form-urlencoded", "text/plain", ""} and "=" in text:
        try:
            pairs = parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=True,
                              max_num_fields=100)
        except ValueError:
            return None
        return dict(pairs)
    return None


def _host(endpoints: Endpoints) -> str:
    return httpx.URL(endpoints.token_url).host


def _token_set(answer: dict[str, Any], requested_scope: str, host: str,
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
        account_id=account_id_of(answer),
    )


def account_id_of(answer: Mapping[str, Any]) -> str | None:
    """Who the provider says signed in, from a token response; None when it does not say.

    The `sub` claim of the `id_token` first (OpenID Connect), else a well-known plain
    field: `user_id`, `account_id`, Slack's `team.id`, Notion's `workspace_id`. An
    identifier, never a secret; cleaned like other provider text, and refused (None)
    rather than cut when it is longer than `MAX_ACCOUNT_ID_LENGTH`."""
    candidates: list[object] = [_id_token_subject(answer.get("id_token"))]
    team = answer.get("team")
    candidates += [answer.get("user_id"), answer.get("account_id"),
                   team.get("id") if isinstance(team, Mapping) else None,
                   answer.get("workspace_id")]
    for candidate in candidates:
        account = _identifier(candidate)
        if account is not None:
            return account
    return None


def _id_token_subject(id_token: object) -> str | None:
    """The `sub` claim of an id_token, read WITHOUT checking its signature.

    That is sound here only because the token came straight from the token endpoint over
    TLS, which OpenID Connect Core 1.0 section 3.1.3.7 item 6 allows in place of the
    signature check; it is used for a warning, never for a decision about access. Not a
    JWS of three parts (an encrypted id_token has five), too long, or not a JSON object
    with a `sub`: None."""
    if not isinstance(id_token, str) or len(id_token) > MAX_ID_TOKEN_LENGTH:
        return None
    parts = id_token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are too
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else None


def _identifier(value: object) -> str | None:
    """A provider's account identifier (text or a whole number), cleaned; else None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    if len(text) > MAX_ACCOUNT_ID_LENGTH:
        return None
    cleaned = clean_text(text, MAX_ACCOUNT_ID_LENGTH)
    return cleaned or None
