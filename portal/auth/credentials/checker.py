"""Check a credential with its provider before it is saved.

An auth option may declare a verification request (see docs/catalog.md). This module
fills its templates from the checked form values and sends it through the guarded
outbound client (portal/outbound.py): the URL is checked, the host resolved once, every
address checked against the outbound policy, and the connection made to that address
(TLS still checks the provider's real name). No redirects are followed and at most
`MAX_RESPONSE_BYTES` of the answer are read. Nothing from the answer, and no secret,
is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import httpx

from portal import metrics, ssrf
from portal.catalog import Verification
from portal.outbound import OutboundPolicy, OutboundRefused, guarded_client
from portal.ssrf import Refusal

logger = logging.getLogger("portal.auth.credentials.checker")

MAX_RESPONSE_BYTES = 64 * 1024
# A whole check (connect, send, read the answer) takes at most this many times the
# per-step timeout (PORTAL_VERIFY_TIMEOUT), however slowly the provider answers.
DEADLINE_STEPS = 2
# What an HTTP header value can carry: printable ASCII and tab. httpx refuses anything
# else (a UnicodeEncodeError), and CR or LF would end the header.
_NOT_HEADER_TEXT = re.compile(r"[^\x20-\x7e\t]")


class Outcome(StrEnum):
    VALID = "VALID"
    REJECTED = "REJECTED"  # the provider said the credential is wrong
    UNAVAILABLE = "UNAVAILABLE"  # the provider could not tell us; the user may retry
    UNSAFE = "UNSAFE"  # the URL built from the user's input was refused by the SSRF guard
    UNSENDABLE = "UNSENDABLE"  # a value cannot be sent where the check puts it; nothing sent


@dataclass(frozen=True)
class CheckResult:
    outcome: Outcome
    field: str | None = None  # the field to blame (REJECTED, UNSAFE, UNSENDABLE)
    reason: str = ""  # a short code for logs, never a secret
    refusal: Refusal | None = None  # UNSAFE: why the guard or the policy refused the URL


class CredentialChecker:
    def __init__(
        self,
        *,
        timeout: float = 5.0,
        allow_http_loopback: bool = False,
        policy: OutboundPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        lookup: ssrf.Lookup = ssrf.system_lookup,
    ) -> None:
        """`policy` is the portal's outbound policy; without one, public addresses only
        (and loopback when `allow_http_loopback`)."""
        self._allow_loopback = allow_http_loopback
        # `timeout` bounds each step (connecting, sending, each read); a provider can still
        # trickle its answer a few bytes per step. The whole check ends within this.
        self._deadline = DEADLINE_STEPS * timeout
        self._http = guarded_client(
            policy=policy or OutboundPolicy(allow_http_loopback=allow_http_loopback),
            timeout=timeout,
            user_agent="connect-portal (credential check)",
            transport=transport,
            lookup=lookup,
        )

    @metrics.credential_check
    async def check(self, verification: Verification, values: Mapping[str, str]) -> CheckResult:
        unsendable = _unsendable_header_value(verification, values)
        if unsendable is not None:
            logger.info("credential check not sent: %s cannot go in a header", unsendable)
            return CheckResult(Outcome.UNSENDABLE, field=unsendable, reason="charset")
        try:
            url = ssrf.expand_url(
                verification.url, values, allow_http_loopback=self._allow_loopback
            )
        except ssrf.UnsafeUrl as exc:
            logger.info("credential check refused by the SSRF guard: %s", exc.reason)
            return CheckResult(Outcome.UNSAFE, field=exc.field, reason=exc.reason,
                               refusal=exc.reason)
        return await self._send(verification, values, url)

    async def _send(
        self, verification: Verification, values: Mapping[str, str], url: ssrf.CheckedUrl
    ) -> CheckResult:
        headers = {name: _fill(value, values) for name, value in verification.headers}
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
            verification.method, url.url, headers=headers, content=body,
        )
        try:
            async with asyncio.timeout(self._deadline):
                return await self._exchange(request, auth, verification, url)
        except TimeoutError:
            logger.warning("credential check: %s took longer than %.1f s in all", url.host,
                           self._deadline)
            return CheckResult(Outcome.UNAVAILABLE, reason="timeout")

    async def _exchange(self, request: httpx.Request, auth: httpx.BasicAuth | None,
                        verification: Verification, url: ssrf.CheckedUrl) -> CheckResult:
        try:
            response = await self._http.send(request, auth=auth, stream=True)
        except OutboundRefused as exc:
            logger.info("credential check to %s refused by the outbound policy: %s",
                        url.host, exc.reason)
            return CheckResult(Outcome.UNSAFE, field=_host_field(verification),
                               reason=exc.reason, refusal=exc.reason)
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


def _unsendable_header_value(
    verification: Verification, values: Mapping[str, str]
) -> str | None:
    """The first field whose value a header of this check would carry but cannot."""
    for _, template in verification.headers:
        for match in ssrf.PLACEHOLDER.finditer(template):
            key = match.group(1)
            if _NOT_HEADER_TEXT.search(values.get(key, "")):
                return key
    return None


def _host_field(verification: Verification) -> str | None:
    """The field that chose the host the policy refused, if a user chose it at all."""
    shape = ssrf.parse_template(verification.url)
    return shape.base or next(iter(sorted(shape.host_keys)), None)
