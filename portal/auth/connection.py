"""The create-connection body every auth family delivers to the core API.

The session fixes who and where (workspace, externalId, name, end user, scope); the
family adds what it collected: a secret, a username and password, props, or tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal.catalog import AuthOption
from portal.sessions import ConnectSession


def connection_body(
    session: ConnectSession, option: AuthOption, collected: Mapping[str, Any]
) -> dict[str, Any]:
    """The Weavz create-connection body: the session's fields, then what was collected."""
    assert session.integration_name is not None
    body: dict[str, Any] = {
        "type": option.type.value,
        "integrationName": session.integration_name,
        "externalId": session.external_id,
        "displayName": session.connection_name,
        "workspaceId": session.workspace_id,
        "authMethodKey": option.key,
    }
    if session.end_user_id:
        body["endUserId"] = session.end_user_id
    if session.scope:
        body["scope"] = session.scope
    body.update(collected)
    return body
