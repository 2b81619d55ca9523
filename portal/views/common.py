"""Helpers shared by the handlers: the JSON error envelope, body reading, API keys."""

from __future__ import annotations

import hmac
import json
import re
from itertools import accumulate
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from portal.errors import PortalError, Unauthorized, ValidationFailed
from portal.flow import ConnectFlow

# Deeper than any body the API takes. Checked before parsing, so a hostile body never
# makes the parser recurse (100,000 "[" raised RecursionError, a 500).
MAX_JSON_DEPTH = 32
# A JSON string, or an unterminated one up to the end: linear, whatever the input.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_DEPTH_STEP = [{ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(byte, 0)
               for byte in range(256)]


def flow_of(request: Request) -> ConnectFlow:
    flow: ConnectFlow = request.app.state.flow
    return flow


def error_response(exc: PortalError) -> JSONResponse:
    return JSONResponse(exc.envelope(), status_code=exc.status,
                        headers={**_no_store(), **exc.headers})


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers=_no_store())


async def read_json(request: Request) -> Any:
    """The JSON body of an API call. Its size is capped by the route (middleware.BodyLimit)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ValidationFailed(
            "The request body must be JSON (Content-Type: application/json).",
            details={"contentType": content_type or None},
        )
    body = await request.body()
    if nested_deeper_than(body, MAX_JSON_DEPTH):
        raise ValidationFailed(
            f"The request body is nested more than {MAX_JSON_DEPTH} levels deep.",
            details={"maxDepth": MAX_JSON_DEPTH},
        )
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed("The request body is not valid JSON.") from None
    except RecursionError:  # not expected after the depth check; never a 500 all the same
        raise ValidationFailed("The request body is nested too deeply.") from None
    except ValueError:
        # Python refuses to convert integers of more than 4,300 digits.
        raise ValidationFailed("The request body has a number with too many digits.") from None


def nested_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether arrays and objects in `raw` nest deeper than `limit` (brackets inside strings
    do not count). Runs in C-level passes over the bytes, so it is cheap at any size."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > limit


def require_api_key(request: Request) -> str:
    """The caller's API key (one of PORTAL_API_KEYS), or Unauthorized."""
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("An API key is required: Authorization: Bearer <key>.")
    presented_bytes = presented.strip().encode("utf-8", "surrogateescape")
    keys: tuple[str, ...] = request.app.state.settings.api_keys
    # Compare against every key, so the time taken says nothing about which one matched.
    matched = None
    for key in keys:
        if hmac.compare_digest(presented_bytes, key.encode()):
            matched = key
    if matched is None:
        raise Unauthorized("The API key is not valid.")
    return matched


def backend_key(request: Request) -> str | None:
    """The API key a request presents, when it is one of PORTAL_API_KEYS; else None (no
    key, or a wrong one: the caller is then treated as anonymous, never refused here)."""
    if not request.headers.get("authorization"):
        return None
    try:
        return require_api_key(request)
    except Unauthorized:
        return None


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store"}
