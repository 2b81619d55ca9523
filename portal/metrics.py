"""Prometheus metrics: the one module that knows prometheus-client.

The rest of the portal calls the plain functions below (and two decorators) at its hook
points; `metrics_endpoint` answers `GET /metrics`. Every label value is bounded: statuses,
auth types and outcome classes are fixed sets, integration names come from the catalog
(anything else is counted as "other"), and no id, URL or secret is ever a label.

Across worker processes (`connect-portal serve --workers N`) prometheus-client's
multiprocess mode is used when PROMETHEUS_MULTIPROC_DIR names a directory (it must be
set before this module is first imported; `serve` sets up a fresh one when the operator
did not): every process writes its values to files there and `/metrics`, whichever worker
answers, adds them up. Without it the process's own registry is served.

`/metrics` answers only with `Authorization: Bearer <PORTAL_METRICS_KEY>`; while that
setting is unset it answers 404, so nothing is exposed by default.
"""

from __future__ import annotations

import functools
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

P = ParamSpec("P")
T = TypeVar("T")

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PICKER = "picker"  # a session opened without an integration
OTHER = "other"  # a name the catalog does not hold (never expected; keeps labels bounded)
NONE = "none"

# Seconds: a flow is minutes at most (the token's TTL bounds it), a request seconds.
FLOW_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200)
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

SESSIONS_CREATED = Counter(
    "portal_sessions_created", "Connect sessions created (minted tokens)", ["integration"])
SESSIONS_FINISHED = Counter(
    "portal_sessions_finished", "Connect sessions that reached a final status",
    ["status", "auth_type", "integration"])
FLOW_DURATION = Histogram(
    "portal_flow_duration_seconds", "From a session's creation to its final status",
    ["status"], buckets=FLOW_BUCKETS)
CORE_API_DURATION = Histogram(
    "portal_core_api_request_duration_seconds", "Core API requests, by operation",
    ["operation"], buckets=REQUEST_BUCKETS)
CORE_API_RESULTS = Counter(
    "portal_core_api_requests", "Core API requests by outcome and answer class",
    ["operation", "outcome", "code"])
PROVIDER_DURATION = Histogram(
    "portal_provider_request_duration_seconds", "OAuth token requests to providers",
    ["grant"], buckets=REQUEST_BUCKETS)
PROVIDER_ERRORS = Counter(
    "portal_provider_request_errors", "OAuth token requests that failed, by error class",
    ["grant", "error"])
CREDENTIAL_CHECKS = Counter(
    "portal_credential_checks", "Credential checks with providers, by outcome", ["outcome"])
STORE_ERRORS = Counter(
    "portal_store_errors", "Store (Redis) calls that failed (StoreUnavailable)", ["store"])
OUTBOX_ATTEMPTS = Counter(
    "portal_outbox_attempts", "Outbox delivery attempts by job kind and result",
    ["kind", "result"])
# Set whenever /readyz or /metrics is served; the most recent value of any process wins.
OUTBOX_DEPTH = Gauge(
    "portal_outbox_depth", "Jobs queued in the outbox", multiprocess_mode="mostrecent")
OUTBOX_OLDEST_AGE = Gauge(
    "portal_outbox_oldest_age_seconds", "How long the oldest queued outbox job has waited",
    multiprocess_mode="mostrecent")

# Integration name → its auth option keys and their types, from every catalog in use.
_catalog: dict[str, dict[str, str]] = {}


def describe_catalog(items: Iterable[Any]) -> None:
    """Learn the integrations (and their auth options' types) label values may name."""
    for item in items:
        _catalog[item.name] = {option.key: str(option.type) for option in item.auth_options}


def _integration(name: str | None) -> str:
    if not name:
        return PICKER
    return name if name in _catalog else OTHER


def _auth_type(integration_name: str | None, key: str | None) -> str:
    """The type of the auth option used; without a chosen key, the integration's one type
    (a session with a single option never records its key)."""
    options = _catalog.get(integration_name or "", {})
    if key is not None:
        return options.get(key, OTHER)
    types = set(options.values())
    return types.pop() if len(types) == 1 else NONE


# -- hook points ---------------------------------------------------------------------------

def session_created(integration_name: str | None) -> None:
    SESSIONS_CREATED.labels(integration=_integration(integration_name)).inc()


def session_finished(session: Any) -> None:
    """A session's final write went through (portal/delivery.py `finish`)."""
    status = str(session.status)
    auth_type = _auth_type(session.integration_name, session.auth_method_key)
    SESSIONS_FINISHED.labels(status=status, auth_type=auth_type,
                             integration=_integration(session.integration_name)).inc()
    ended = session.finished_at or time.time()
    FLOW_DURATION.labels(status=status).observe(max(0.0, ended - session.created_at))


def store_unavailable(store: str) -> None:
    STORE_ERRORS.labels(store=store).inc()


def outbox_attempt(kind: object, result: object) -> None:
    """One attempt of an outbox job ended with `result` (an outcome object or a word)."""
    word = result if isinstance(result, str) else type(result).__name__.lower()
    OUTBOX_ATTEMPTS.labels(kind=str(kind), result=word).inc()


def outbox_depth(depth: Any) -> None:
    OUTBOX_DEPTH.set(depth.jobs)
    OUTBOX_OLDEST_AGE.set(depth.oldest_age)


def _code_class(outcome: object) -> str:
    """The answer class an outcome of the core API client tells: 2xx/4xx/5xx/network."""
    kind = type(outcome).__name__
    if kind == "Created":
        return "2xx"
    if kind == "Rejected":
        return "4xx"
    reason = str(getattr(outcome, "reason", ""))
    if reason.startswith("HTTP ") and reason[5:8].isdigit():
        return f"{reason[5]}xx"
    return "network"


def core_api_call(operation: str) -> Callable[[Callable[P, Awaitable[T]]],
                                              Callable[P, Awaitable[T]]]:
    """Time a core API client method that answers Created/Rejected/Unknown."""

    def decorate(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(method)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            started = time.perf_counter()
            outcome = await method(*args, **kwargs)
            CORE_API_DURATION.labels(operation=operation).observe(
                time.perf_counter() - started)
            CORE_API_RESULTS.labels(operation=operation,
                                    outcome=type(outcome).__name__.lower(),
                                    code=_code_class(outcome)).inc()
            return outcome

        return timed

    return decorate


def core_api_answer(operation: str, started: float, status: int | None) -> None:
    """Time and count one of the core API's other requests (an end user, their
    connections, a delete, a customer's OAuth app) by the HTTP status it answered, or
    None when no answer came: `ok` (2xx), `not_found` (404), else `failed`."""
    CORE_API_DURATION.labels(operation=operation).observe(time.perf_counter() - started)
    if status is None:
        outcome, code = "failed", "network"
    else:
        outcome = "ok" if 200 <= status < 300 else "not_found" if status == 404 else "failed"
        code = f"{status // 100}xx"
    CORE_API_RESULTS.labels(operation=operation, outcome=outcome, code=code).inc()


# A provider's own OAuth error codes are its text: only the portal's own reasons are labels.
_PROVIDER_REASONS = frozenset({"refused", "timeout", "unreachable", "too_large", "unexpected",
                               "not_json"})


def _provider_error(reason: str) -> str:
    if reason in _PROVIDER_REASONS:
        return reason
    if reason.startswith("status_") and reason[7:8].isdigit():
        return f"{reason[7]}xx"
    return "oauth_error"


def provider_call(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Time `ProviderClient._token_request(settings, endpoints, app, what, grant)`."""

    @functools.wraps(method)
    async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
        grant = str(args[4]) if len(args) > 4 else str(kwargs.get("what", "token"))
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        except Exception as exc:
            PROVIDER_ERRORS.labels(grant=grant, error=_provider_error(
                str(getattr(exc, "reason", "unexpected")))).inc()
            raise
        finally:
            PROVIDER_DURATION.labels(grant=grant).observe(time.perf_counter() - started)

    return timed


def credential_check(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Count `CredentialChecker.check` by its outcome."""

    @functools.wraps(method)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> T:
        result = await method(*args, **kwargs)
        CREDENTIAL_CHECKS.labels(outcome=str(getattr(result, "outcome", "unknown"))).inc()
        return result

    return counted


# -- GET /metrics -------------------------------------------------------------------------

def exposition() -> bytes:
    """Every metric in the text format: of all processes in multiprocess mode."""
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _authorized(request: Request, key: str) -> bool:
    presented = request.headers.get("authorization", "")
    scheme, _, token = presented.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                              key.encode())


async def metrics_endpoint(request: Request) -> Response:
    key: str | None = request.app.state.settings.metrics_key
    if not key:
        return PlainTextResponse("Not Found", status_code=404)
    if not _authorized(request, key):
        return PlainTextResponse("Unauthorized", status_code=401,
                                 headers={"WWW-Authenticate": "Bearer"})
    flow = getattr(request.app.state, "flow", None)
    if flow is not None:
        from portal.store import StoreUnavailable

        try:
            outbox_depth(await flow.delivery.outbox.depth(now=flow.clock()))
        except StoreUnavailable:
            store_unavailable("outbox")
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
