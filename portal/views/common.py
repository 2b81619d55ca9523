"""Helpers shared by the handlers: the JSON error envelope, body reading, API keys."""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from portal.errors import PayloadTooLarge, PortalError, Unauthorized, ValidationFailed
from portal.flow import ConnectFlow

# Large enough that an absurd token inside a body still gets its own INVALID_TOKEN answer.
MAX_JSON_BODY = 2 * 1024 * 1024


def flow_of(request: Request) -> ConnectFlow:
    flow: ConnectFlow = request.app.state.flow
    return flow


def error_response(exc: PortalError) -> JSONResponse:
    return JSONResponse(exc.envelope(), status_code=exc.status, headers=_no_store())


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers=_no_store())


async def read_json(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_JSON_BODY:
        raise PayloadTooLarge(f"The request body is larger than {MAX_JSON_BODY} bytes.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ValidationFailed(
            "The request body must be JSON (Content-Type: application/json).",
            details={"contentType": content_type or None},
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BODY:
            raise PayloadTooLarge(f"The request body is larger than {MAX_JSON_BODY} bytes.")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed("The request body is not valid JSON.") from None


def require_api_key(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("An API key is required: Authorization: Bearer <key>.")
    presented_bytes = presented.strip().encode("utf-8", "surrogateescape")
    keys: tuple[str, ...] = request.app.state.settings.api_keys
    # Compare against every key, so the time taken says nothing about which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented_bytes, key.encode())
    if not matched:
        raise Unauthorized("The API key is not valid.")


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store"}
