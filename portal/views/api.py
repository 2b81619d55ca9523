"""Backend API: mint connect tokens, look sessions up, poll, list the catalog."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.catalog import IntegrationListing
from portal.connect_request import TokenAnswer, parse_connect_request
from portal.errors import IntegrationNotFound, PortalError, ValidationFailed
from portal.rate_limits import rate_limits_of
from portal.resources import openapi_document
from portal.sessions import SessionLookup, iso8601
from portal.views.brand import with_checked_logo
from portal.views.common import (
    backend_key,
    error_response,
    flow_of,
    json_response,
    read_json,
    require_api_key,
)


async def create_token(request: Request) -> Response:
    api_key = require_api_key(request)
    flow = flow_of(request)
    body = await read_json(request)
    connect_request = parse_connect_request(body, settings=flow.settings, catalog=flow.catalog)
    # A refused request makes nothing, so it is not counted.
    await rate_limits_of(request).check_mint(api_key)
    connect_request = await with_checked_logo(request, connect_request)
    issued = await flow.create_session(connect_request)
    answer: TokenAnswer = {
        "token": issued.token,
        "connectUrl": issued.connect_url,
        "expiresAt": iso8601(issued.expires_at),
        "sessionId": issued.session_id,
    }
    return json_response(answer)


async def get_session(request: Request) -> Response:
    require_api_key(request)
    session = await flow_of(request).looked_up_session(request.path_params["session_id"])
    answer: SessionLookup = {"session": session.public()}
    return json_response(answer)


async def poll_session(request: Request) -> Response:
    """Browsers may call this from a partner page (connect.js), so it answers CORS: only the
    session's own target origins can read a session; other allowed origins only errors."""
    flow = flow_of(request)
    origin = request.headers.get("origin")
    try:
        # A backend that sends its API key (the Weavz SDK's `wait()` polls every second,
        # one poll per waiting session, all from the backend's one address) is the
        # platform's own customer and is not limited per IP; anonymous polls (connect.js
        # in browsers) are.
        if backend_key(request) is None:
            await rate_limits_of(request).check_poll(request.scope)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ValidationFailed("The request body must be a JSON object with a token.")
        session = await flow.polled_session(body.get("token"))
    except PortalError as exc:
        allowed = origin if flow.returns.may_call_poll(origin) else None
        return _with_cors(error_response(exc), allowed)
    readable = flow.returns.may_read_poll(origin, session)
    return _with_cors(json_response(session.public()), origin if readable else None)


async def poll_preflight(request: Request) -> Response:
    origin = request.headers.get("origin")
    response = Response(status_code=204)
    allowed = flow_of(request).returns.may_call_poll(origin)
    if allowed:
        response.headers["access-control-allow-methods"] = "POST"
        response.headers["access-control-allow-headers"] = "content-type"
        response.headers["access-control-max-age"] = "600"
    return _with_cors(response, origin if allowed else None)


def _with_cors(response: Response, allowed_origin: str | None) -> Response:
    response.headers["vary"] = "Origin"
    if allowed_origin is not None:
        response.headers["access-control-allow-origin"] = allowed_origin
    return response


async def list_integrations(request: Request) -> Response:
    catalog = flow_of(request).catalog
    name = request.query_params.get("name")
    if name is not None:
        integration = catalog.get(name)
        if integration is None:
            raise IntegrationNotFound(
                f"No integration named {name[:100]!r} is in the catalog.",
                details={"integrationName": name[:100]},
            )
        listing: IntegrationListing = {"integrations": [integration.public()]}
    else:
        listing = {"integrations": [item.public() for item in catalog]}
    return json_response(listing)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())
