"""openapi.json, generated from the API's models and the table of routes below.

The schemas come from the types the code itself uses: `ConnectRequest` parses the token
request, `SessionAnswer` types what lookup and poll answer, `PublicIntegration` what the
catalog lists. Only what the table says about each route (summary, errors, security) is
written here. `python -m portal.generated` writes the file; a test fails when the
checked-in one differs from what this module builds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, NotRequired

import pydantic
from typing_extensions import TypedDict  # pydantic reads only this one on Python 3.11

from portal.auth.oauth.refresh import MAX_REFRESH_TOKEN_LENGTH
from portal.catalog import IntegrationListing, PublicField, PublicIntegration
from portal.connect_request import ConnectRequest, OAuthAppId, TokenAnswer
from portal.end_users import InviteRequest, LinkRequest
from portal.errors import ErrorCode, SessionFailure
from portal.jsonschema import ContractSchema, drop_titles, enum_of, readable
from portal.sessions import SessionAnswer, SessionLookup

TITLE = "Connect portal backend API"
API_VERSION = "0.1.0"
DESCRIPTION = (
    "Wire-compatible with the Weavz connect API. Authenticate with `Authorization: Bearer "
    "<key>` using one of PORTAL_API_KEYS, except where noted. Every error answers "
    "`{error, code, details}`, with one of the codes below (portal/errors.py; those marked "
    "hosted pages answer pages, not the API). A FAILED session's `errorCode` is one of the "
    "session failure codes."
)
_FREE_FORM = pydantic.WithJsonSchema({"type": "object"})
_VALIDATION: Final[Literal["validation"]] = "validation"  # requests and answers alike


# -- shapes parsed or built elsewhere by hand (the error envelope, the refresh service) --
class ErrorAnswer(TypedDict):
    error: str
    code: Annotated[str, enum_of(ErrorCode)]
    details: Annotated[dict[str, Any], _FREE_FORM, pydantic.Field(
        description="For VALIDATION_ERROR, `fields` maps each invalid field to what is wrong.")]


class PollRequest(TypedDict):
    token: str


class RefreshRequest(TypedDict):
    integrationName: str
    refreshToken: Annotated[str, pydantic.Field(max_length=MAX_REFRESH_TOKEN_LENGTH)]
    authMethodKey: NotRequired[Annotated[str, pydantic.Field(
        description="Required when the integration has several OAuth auth options.")]]
    oauthAppId: NotRequired[Annotated[OAuthAppId, pydantic.Field(
        description="The customer's own OAuth app (oauthAppMode custom).")]]
    props: NotRequired[dict[str, Any]]


class OAuthTokens(TypedDict):
    accessToken: str
    refreshToken: NotRequired[str | None]
    tokenType: str
    expiresIn: NotRequired[int | None]
    scope_oauth: NotRequired[Annotated[str | None, pydantic.Field(
        description="The scope the token says was granted, else the one requested.")]]
    data: NotRequired[Annotated[dict[str, Any], _FREE_FORM, pydantic.Field(
        description="Provider-specific fields of the token response (Salesforce "
        "instance_url, Notion workspace_id, Slack team, ...).")]]


class EndUserLinkAnswer(TypedDict):
    token: Annotated[str, pydantic.Field(description="An `eut_` end-user link token.")]
    connectUrl: Annotated[str, pydantic.Field(
        description="`<PORTAL_PUBLIC_URL>/connect/portal?token=…`: the end user's page.")]
    expiresAt: Annotated[str, pydantic.Field(json_schema_extra={"format": "date-time"})]


class Invite(TypedDict):
    id: str
    email: str
    expiresAt: Annotated[str, pydantic.Field(json_schema_extra={"format": "date-time"})]


class InviteAnswer(TypedDict):
    invite: Invite


class RevokeRequest(TypedDict):
    token: Annotated[str, pydantic.Field(description="The `eut_` link to revoke.")]


# The named schemas of the document, in its order; every other type is written inline.
COMPONENTS: dict[str, Any] = {
    "Error": ErrorAnswer,
    "TokenRequest": ConnectRequest,
    "TokenResponse": TokenAnswer,
    "Session": SessionAnswer,
    "Integration": PublicIntegration,
    "Field": PublicField,
    "OAuthTokens": OAuthTokens,
}


# -- the routes ------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    status: int
    description: str
    body: Any = ErrorAnswer  # a type, or None for an answer without a JSON body


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str  # "path" or "query"

    def document(self) -> dict[str, Any]:
        return {"name": self.name, "in": self.where, "required": self.where == "path",
                "schema": {"type": "string"}}


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    summary: str
    answers: tuple[Answer, ...]
    api_key: bool = True
    body: Any = None
    parameters: tuple[Parameter, ...] = ()
    description: str | None = None


INVALID = Answer(400, "Invalid input (VALIDATION_ERROR with details.fields)")
UNAUTHORIZED = Answer(
    401, "Missing or invalid credentials (UNAUTHORIZED, MISSING_TOKEN, INVALID_TOKEN)")
NOT_FOUND = Answer(404, "Not found (INTEGRATION_NOT_FOUND, SESSION_NOT_FOUND)")
TOO_LARGE = Answer(413, "Body too large (PAYLOAD_TOO_LARGE)")
STORE_DOWN = Answer(503, "Session store unavailable (SERVICE_UNAVAILABLE)")
TOO_MANY_MINTS = Answer(429, "Too many mints with this API key (RATE_LIMITED, Retry-After; "
                        "PORTAL_RATE_LIMIT_MINT)")

OPERATIONS = (
    Operation(
        "/api/v1/connect/token", "post", "Mint a connect token and create its session",
        body=ConnectRequest,
        answers=(Answer(200, "The token, the URL to open, and the session id", TokenAnswer),
                 Answer(400, "Invalid input (VALIDATION_ERROR with details.fields), or the "
                        "integration named can only be connected by OAuth and no OAuth app "
                        "is set up for it (MISSING_OAUTH2_CONFIG)"),
                 UNAUTHORIZED, NOT_FOUND, TOO_LARGE, TOO_MANY_MINTS, STORE_DOWN),
    ),
    Operation(
        "/api/v1/connect/session/{sessionId}", "get", "Look a session up",
        parameters=(Parameter("sessionId", "path"),),
        answers=(Answer(200, "The session", SessionLookup), UNAUTHORIZED, NOT_FOUND,
                 STORE_DOWN),
    ),
    Operation(
        "/api/v1/connect/session/poll", "post",
        "Poll a session with its connect token (no API key)", api_key=False, body=PollRequest,
        description=(
            "A `COMPLETED` or `FAILED` session stays readable with its token after the token "
            "expires, for as long as the session is kept (an hour); an expired token of a "
            "session that is not final is `401 INVALID_TOKEN` with `details.reason` "
            "`expired`. A token the portal did not sign reads nothing."),
        answers=(Answer(200, "The session, flat", SessionAnswer), INVALID, UNAUTHORIZED,
                 NOT_FOUND, TOO_LARGE,
                 Answer(429, "Too many polls from this client IP (RATE_LIMITED, Retry-After; "
                        "PORTAL_RATE_LIMIT_POLL)"),
                 STORE_DOWN),
    ),
    Operation(
        "/api/v1/integrations", "get", "The integration catalog (public, no secrets)",
        api_key=False, parameters=(Parameter("name", "query"),),
        answers=(Answer(200, "Integrations", IntegrationListing), NOT_FOUND),
    ),
    Operation(
        "/api/v1/oauth/refresh", "post",
        "Refresh an OAuth connection's tokens (for the core API)",
        description=(
            "Exchanges a refresh token at the integration's token URL with the right client "
            "credentials: the customer's own app when `oauthAppId` is given (fetched from the "
            "core API), the platform's app otherwise. `props` fill the token URL's "
            "placeholders (a Shopify shop, a Microsoft tenant) and are validated like the "
            "connect form's. A provider that does not rotate refresh tokens answers without "
            "one; the given one is returned then."),
        body=RefreshRequest,
        answers=(
            Answer(200, "Fresh tokens", OAuthTokens),
            Answer(400, "Invalid input (VALIDATION_ERROR; details.reason `not_oauth` for an "
                   "integration without an OAuth option), no OAuth app (NO_OAUTH_APP), or the "
                   "provider refused the refresh token (REFRESH_FAILED with details.reason "
                   "`invalid_grant`)"),
            Answer(401, "Missing or invalid API key (UNAUTHORIZED)"),
            Answer(404, "No such integration (INTEGRATION_NOT_FOUND)"),
            TOO_LARGE,
            Answer(502, "The provider failed: unreachable, timed out, 5xx, unreadable answer "
                   "or another OAuth error (REFRESH_FAILED with details.reason)"),
            Answer(503, "The core API could not give the customer's OAuth app "
                   "(SERVICE_UNAVAILABLE)"),
        ),
    ),
    Operation(
        "/api/v1/end-users/{endUserId}/connect-token", "post",
        "Mint an end-user link (eut_) to the end user's connect portal",
        description=(
            "The end user is looked up in the core API (`GET /api/v1/end-users/{id}`). The "
            "link opens `/connect/portal`, where the end user connects, reconnects and "
            "disconnects their own connections; `integrationName` narrows it to one "
            "integration. It can be revoked (see below). docs/end-users.md."),
        parameters=(Parameter("endUserId", "path"),), body=LinkRequest,
        answers=(Answer(200, "The link", EndUserLinkAnswer), INVALID,
                 Answer(401, "Missing or invalid API key (UNAUTHORIZED)"),
                 Answer(404, "No such end user (END_USER_NOT_FOUND) or integration "
                        "(INTEGRATION_NOT_FOUND)"),
                 TOO_LARGE, TOO_MANY_MINTS,
                 Answer(503, "The core API or the store does not answer "
                        "(SERVICE_UNAVAILABLE)")),
    ),
    Operation(
        "/api/v1/end-users/{endUserId}/invite", "post",
        "Email the end user a link to their connect portal",
        description=(
            "Sends the link over SMTP (PORTAL_SMTP_URL), at most PORTAL_INVITE_LIMIT "
            "invites per end user per hour."),
        parameters=(Parameter("endUserId", "path"),), body=InviteRequest,
        answers=(Answer(200, "The invite sent", InviteAnswer), INVALID,
                 Answer(401, "Missing or invalid API key (UNAUTHORIZED)"),
                 Answer(404, "No such end user (END_USER_NOT_FOUND) or integration "
                        "(INTEGRATION_NOT_FOUND)"),
                 TOO_LARGE,
                 Answer(429, "Too many invites for this end user, or mints with this API "
                        "key (RATE_LIMITED, Retry-After)"),
                 Answer(501, "No SMTP server is configured (NOT_CONFIGURED)"),
                 Answer(503, "The core API, the store or the SMTP server does not answer "
                        "(SERVICE_UNAVAILABLE)")),
    ),
    Operation(
        "/api/v1/end-users/{endUserId}/connect-tokens", "delete",
        "Revoke every link of the end user issued so far",
        parameters=(Parameter("endUserId", "path"),),
        answers=(Answer(204, "Revoked", None),
                 Answer(401, "Missing or invalid API key (UNAUTHORIZED)"),
                 Answer(404, "An id no end user can have: empty, too long or with control "
                        "characters (END_USER_NOT_FOUND)"),
                 STORE_DOWN),
    ),
    Operation(
        "/api/v1/end-users/{endUserId}/connect-tokens/revoke", "post",
        "Revoke one link of the end user",
        parameters=(Parameter("endUserId", "path"),), body=RevokeRequest,
        answers=(Answer(204, "Revoked", None), INVALID,
                 Answer(401, "Missing or invalid API key (UNAUTHORIZED)"),
                 Answer(404, "The link is not one of this end user's (END_USER_NOT_FOUND)"),
                 TOO_LARGE, STORE_DOWN),
    ),
    Operation("/healthz", "get", "Liveness", api_key=False,
              answers=(Answer(200, "The process is up", None),)),
    Operation("/readyz", "get", "Readiness: the session store answers", api_key=False,
              answers=(Answer(200, "Ready", None),
                       Answer(503, "The session store does not answer", None))),
)


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


# OpenAPI links: what an answer feeds into the next call (token -> lookup, token -> poll).
# Clients may ignore them; the contract fuzzer (tests/test_contract_fuzz.py) follows them.
LINKS: dict[tuple[str, str, int], dict[str, Any]] = {
    ("/api/v1/connect/token", "post", 200): {
        "GetSession": {"operationRef": _ref("/api/v1/connect/session/{sessionId}", "get"),
                       "parameters": {"sessionId": "$response.body#/sessionId"}},
        "PollSession": {"operationRef": _ref("/api/v1/connect/session/poll", "post"),
                        "requestBody": {"token": "$response.body#/token"}},
    },
}


# -- building the document ---------------------------------------------------------------
def describe_codes() -> str:
    """DESCRIPTION and the tables of every error code and session failure code."""
    errors = [f"| `{code}` | {', '.join(map(str, code.statuses))} | {code.meaning} |"
              for code in ErrorCode]
    failures = [f"| `{code}` | {code.meaning} |" for code in SessionFailure]
    return "\n".join([
        DESCRIPTION, "", "| code | HTTP status | meaning |", "|---|---|---|", *errors, "",
        "| errorCode | meaning |", "|---|---|", *failures,
    ])


def build() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the backend API."""
    types = list(COMPONENTS.values())
    for operation in OPERATIONS:
        types += [operation.body] if operation.body is not None else []
        types += [answer.body for answer in operation.answers if answer.body is not None]
    schemas = _Schemas(dict.fromkeys(types))
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": API_VERSION, "description": describe_codes()},
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {name: schemas.component(kind) for name, kind in COMPONENTS.items()},
        },
        "paths": paths,
    }


def _operation(operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    document: dict[str, Any] = {"summary": operation.summary}
    if operation.description:
        document["description"] = operation.description
    document["security"] = [{"apiKey": []}] if operation.api_key else []
    if operation.parameters:
        document["parameters"] = [item.document() for item in operation.parameters]
    if operation.body is not None:
        document["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schemas.use(operation.body)}}}
    document["responses"] = {}
    for answer in operation.answers:
        response: dict[str, Any] = {"description": answer.description}
        if answer.body is not None:
            response["content"] = {"application/json": {"schema": schemas.use(answer.body)}}
        if links := LINKS.get((operation.path, operation.method, answer.status)):
            response["links"] = links
        document["responses"][str(answer.status)] = response
    return document


class _Schemas:
    """JSON Schemas of types: a `$ref` for the named components, the rest written inline."""

    def __init__(self, types: dict[Any, None]) -> None:
        inputs = [(kind, _VALIDATION, pydantic.TypeAdapter(kind)) for kind in types]
        generated, definitions = pydantic.TypeAdapter.json_schemas(
            inputs, ref_template="#/$defs/{model}", schema_generator=ContractSchema)
        self._top = {kind: schema for (kind, _), schema in generated.items()}
        self._defs: dict[str, Any] = definitions.get("$defs", {})
        self._names = {self._def_name(kind): name for name, kind in COMPONENTS.items()}

    def _def_name(self, kind: Any) -> str:
        ref = self._top[kind].get("$ref", "")
        return str(ref).removeprefix("#/$defs/")

    def component(self, kind: Any) -> Any:
        return readable(self._resolve(copy.deepcopy(self._defs[self._def_name(kind)])))

    def use(self, kind: Any) -> Any:
        return readable(self._resolve(copy.deepcopy(self._top[kind])))

    def _resolve(self, schema: Any) -> Any:
        if isinstance(schema, list):
            return [self._resolve(item) for item in schema]
        if not isinstance(schema, dict):
            return schema
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            rest = {key: value for key, value in schema.items() if key != "$ref"}
            if name in self._names:
                return {"$ref": f"#/components/schemas/{self._names[name]}", **rest}
            return {**self._resolve(copy.deepcopy(self._defs[name])), **rest}
        resolved = {key: self._resolve(value) for key, value in schema.items()}
        drop_titles(resolved)
        return resolved
