"""Backend API: mint connect tokens, look sessions up, poll, list the catalog."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.connect_request import parse_connect_request
from portal.errors import IntegrationNotFound, ValidationFailed
from portal.resources import openapi_document
from portal.sessions import iso8601
from portal.views.common import flow_of, json_response, read_json, require_api_key


async def create_token(request: Request) -> Response:
    require_api_key(request)
    flow = flow_of(request)
    body = await read_json(request)
    connect_request = parse_connect_request(body, settings=flow.settings, catalog=flow.catalog)
    issued = await flow.create_session(connect_request)
    return json_response({
        "token": issued.token,
        "connectUrl": issued.connect_url,
        "expiresAt": iso8601(issued.expires_at),
        "sessionId": issued.session_id,
    })


async def get_session(request: Request) -> Response:
    require_api_key(request)
    session = await flow_of(request).session_by_id(request.path_params["session_id"])
    return json_response({"session": session.public()})


async def poll_session(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object with a token.")
    session = await flow_of(request).session_by_token(body.get("token"))
    return json_response(session.public())


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
        return json_response({"integrations": [integration.public()]})
    return json_response({"integrations": [item.public() for item in catalog]})


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())
