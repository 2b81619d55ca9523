"""Check a credential with its provider before it is saved.

An auth option may declare a verification request (see docs/catalog.md). This module
fills its templates from the checked form values, passes the URL through the SSRF
guard, resolves the host once, and connects to that checked address (TLS still checks
the provider's real name). No redirects are followed and at most `MAX_RESPONSE_BYTES`
of the answer are read. Nothing from the answer, and no secret, is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import httpx

from portal import ssrf
from portal.catalog import Verification

logger = logging.getLogger("portal.verification")

MAX_RESPONSE_BYTES = 64 * 1024


class Outcome(StrEnum):
    VALID = "VALID"
    REJECTED = "REJECTED"  # the provider said the credential is wrong
    UNAVAILABLE = "UNAVAILABLE"  # the provider could not tell us; the user may retry
    UNSAFE = "UNSAFE"  # the URL built from the user's input was refused by the SSRF guard


@dataclass(frozen=True)
class CheckResult:
    outcome: Outcome
    field: str | None = None  # the field to blame (REJECTED, UNSAFE)
    reason: str = ""  # a short code for logs and templates, never a secret


class CredentialChecker:
    def __init__(
        self,
        *,
        timeout: float = 5.0,
        allow_http_loopback: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        lookup: ssrf.Lookup = ssrf.system_lookup,
    ) -> None:
        self._allow_loopback = allow_http_loopback
        self._lookup = lookup
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would bypass the address check
            # No pooled connections: one opened for one provider's name (SNI) must never
            # carry a request for another provider that happens to share its address.
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": "connect-portal (credential check)"},
            transport=transport,
        )

    async def check(self, verification: Verification, values: Mapping[str, str]) -> CheckResult:
        try:
            url = ssrf.expand_url(
                verification.url, values, allow_http_loopback=self._allow_loopback
            )
            addresses = [url.ip] if url.ip is not None else await asyncio.wait_for(
                ssrf.resolve_public(url.host, url.port, lookup=self._lookup,
                                    allow_loopback=self._allow_loopback),
                timeout=self._timeout,
            )
        except TimeoutError:
            logger.warning("credential check: resolving %s timed out", url.host)
            return CheckResult(Outcome.UNAVAILABLE, reason="timeout")
        except ssrf.UnsafeUrl as exc:
            if exc.reason == "unresolvable":
                logger.info("credential check: %s does not resolve", _safe_host(verification))
                return CheckResult(Outcome.UNAVAILABLE, reason="unresolvable")
            logger.info("credential check refused by the SSRF guard: %s", exc.reason)
            return CheckResult(Outcome.UNSAFE, field=exc.field, reason=exc.reason)
        return await self._send(verification, values, url, addresses[0])

    async def _send(
        self,
        verification: Verification,
        values: Mapping[str, str],
        url: ssrf.CheckedUrl,
        address: ssrf.IPAddress,
    ) -> CheckResult:
        headers = {name: _fill(value, values) for name, value in verification.headers}
        request_url = httpx.URL(url.url)
        extensions = {}
        if url.ip is None:
            # Connect to the address that was checked; TLS still verifies the real name.
            headers["Host"] = request_url.netloc.decode("ascii")
            request_url = request_url.copy_with(host=str(address))
            extensions["sni_hostname"] = url.host
        auth = None
        if verification.basic_auth is not None:
            auth = httpx.BasicAuth(_fill(verification.basic_auth[0], values),
                                   _fill(verification.basic_auth[1], values))
        body = None
        if verification.body is not None:
            # Placeholders in a body sit inside JSON strings; a value cannot break out.
            escaped = {key: json.dumps(value)[1:-1] for key, value in values.items()}
            body = _fill(verification.body, escaped)
        if body is not None and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        request = self._http.build_request(
            verification.method, request_url, headers=headers, content=body,
            extensions=extensions,
        )
        try:
            response = await self._http.send(request, auth=auth, stream=True)
        except httpx.TimeoutException:
            logger.warning("credential check: %s timed out", url.host)
            return CheckResult(Outcome.UNAVAILABLE, reason="timeout")
        except httpx.HTTPError as exc:
            logger.warning("credential check: %s unreachable (%s)", url.host, type(exc).__name__)
            return CheckResult(Outcome.UNAVAILABLE, reason="unreachable")
        try:
            await _drain(response)
        except httpx.HTTPError:
            return CheckResult(Outcome.UNAVAILABLE, reason="unreachable")
        finally:
            await response.aclose()
        status = response.status_code
        logger.info("credential check: %s answered %d", url.host, status)
        if status in verification.success_status:
            return CheckResult(Outcome.VALID)
        if status in verification.invalid_status:
            return CheckResult(Outcome.REJECTED, field=verification.blame_field,
                               reason=f"status_{status}")
        return CheckResult(Outcome.UNAVAILABLE, reason=f"status_{status}")

    async def aclose(self) -> None:
        await self._http.aclose()


async def _drain(response: httpx.Response) -> None:
    """Read at most MAX_RESPONSE_BYTES; the status is all we need."""
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received >= MAX_RESPONSE_BYTES:
            break


def _fill(template: str, values: Mapping[str, str]) -> str:
    return ssrf.PLACEHOLDER.sub(lambda match: values.get(match.group(1), ""), template)


def _safe_host(verification: Verification) -> str:
    # The template, not the filled URL: a host placeholder is safe, but keep logs uniform.
    return verification.url.split("?")[0]
