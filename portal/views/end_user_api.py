"""Backend API for end users' portal links (issue 12); what each call does is in
portal/end_users/__init__.py (`EndUserApi`), built in the app's lifespan as
`app.state.end_user_api`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.end_users import EndUserApi, InviteRequest, LinkRequest, parse_body
from portal.rate_limits import rate_limits_of
from portal.sessions import iso8601
from portal.views.common import json_response, read_json, require_api_key


def _api(request: Request) -> EndUserApi:
    api: EndUserApi = request.app.state.end_user_api
    return api


async def create_link(request: Request) -> Response:
    """POST /api/v1/end-users/{end_user_id}/connect-token"""
    api_key = require_api_key(request)
    body = parse_body(LinkRequest, await read_json(request))
    await rate_limits_of(request).check_mint(api_key)
    issued = await _api(request).issue_link(request.path_params["end_user_id"], body)
    return json_response({"token": issued.token, "connectUrl": issued.url,
                          "expiresAt": iso8601(issued.link.expires_at)})


async def invite(request: Request) -> Response:
    """POST /api/v1/end-users/{end_user_id}/invite"""
    api_key = require_api_key(request)
    body = parse_body(InviteRequest, await read_json(request))
    await rate_limits_of(request).check_mint(api_key)
    sent = await _api(request).invite(request.path_params["end_user_id"], body)
    return json_response({"invite": {"id": sent.id, "email": sent.email,
                                     "expiresAt": iso8601(sent.expires_at)}})


async def revoke_all_links(request: Request) -> Response:
    """DELETE /api/v1/end-users/{end_user_id}/connect-tokens -> 204"""
    require_api_key(request)
    await _api(request).revoke_all(request.path_params["end_user_id"])
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


async def revoke_link(request: Request) -> Response:
    """POST /api/v1/end-users/{end_user_id}/connect-tokens/revoke {token} -> 204"""
    require_api_key(request)
    await _api(request).revoke_one(request.path_params["end_user_id"],
                                   await read_json(request))
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
