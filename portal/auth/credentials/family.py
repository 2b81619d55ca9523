"""The credential family: an API key, a username and password, or custom fields.

The user types the credential into the portal's own form; it is checked field by field
(portal/auth/fields.py), host names a core API would connect to are resolved against the
outbound policy, the option's check request is sent to the provider when it has one
(checker.py), and only then is the credential handed to the flow for delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portal.auth.connection import connection_body
from portal.auth.credentials.checker import CredentialChecker, Outcome
from portal.auth.family import Deliver, FormRejected, Submission
from portal.auth.fields import read_fields
from portal.catalog import AuthOption, AuthType, FieldFormat, Integration
from portal.field_problems import FieldProblem, FormNotice
from portal.outbound import HostCheck
from portal.sessions import ConnectSession

# How each credential type's typed fields become the credential the core API stores.
SHAPES: dict[AuthType, Callable[[dict[str, Any]], dict[str, Any]]] = {
    AuthType.SECRET_TEXT: lambda typed: {"secretText": typed["secret_text"]},
    AuthType.BASIC_AUTH: lambda typed: {"username": typed["username"],
                                        "password": typed["password"]},
    AuthType.CUSTOM_AUTH: lambda typed: {"props": typed},
}


class CredentialFamily:
    page = "connect.html"

    def __init__(
        self,
        *,
        allow_http_loopback: bool = False,
        checker: CredentialChecker | None = None,
        hosts: HostCheck | None = None,
    ) -> None:
        """`checker` sends options' check requests (None: credentials are saved unchecked);
        `hosts` resolves host-name fields against the outbound policy."""
        self.allow_http_loopback = allow_http_loopback
        self.checker = checker
        self.hosts = hosts

    def page_context(self, option: AuthOption) -> dict[str, Any]:
        return {"checked": option.verification is not None and self.checker is not None}

    def form_action_sources(self, option: AuthOption) -> tuple[str, ...]:
        return ()

    def available(self, integration: Integration, option: AuthOption, *,
                  oauth_app_mode: str | None, oauth_app_id: str | None) -> bool:
        return True

    async def submit(
        self,
        session: ConnectSession,
        integration: Integration,
        option: AuthOption,
        submission: Submission,
    ) -> Deliver | FormRejected:
        read = read_fields(option.inputs, submission.form,
                           allow_http_loopback=self.allow_http_loopback)
        if read.errors:
            return FormRejected(errors=read.errors, values=read.values)
        if self.hosts is not None:
            # Host names the core API will connect to must resolve to allowed addresses.
            for item in option.inputs:
                host = read.checked.get(item.key)
                if item.format is FieldFormat.HOSTNAME and host:
                    refusal = await self.hosts.refusal(host)
                    if refusal is not None:
                        return FormRejected(errors={item.key: FieldProblem.refused(
                            FieldFormat.HOSTNAME, refusal)},
                                            values=read.values)
        if option.verification is not None and self.checker is not None:
            check = await self.checker.check(option.verification, read.checked)
            if check.outcome is Outcome.REJECTED and check.field:
                return FormRejected(errors={check.field: FieldProblem.REJECTED},
                                    values=read.values)
            if check.outcome is Outcome.UNSAFE and check.field and check.refusal:
                return FormRejected(errors={check.field: FieldProblem.refused(
                                        FieldFormat.URL, check.refusal)},
                                    values=read.values)
            if check.outcome is Outcome.UNSENDABLE and check.field:
                return FormRejected(errors={check.field: FieldProblem.CHARSET},
                                    values=read.values)
            if check.outcome is not Outcome.VALID:
                return FormRejected(errors={}, values=read.values,
                                    notice=FormNotice.PROVIDER_UNAVAILABLE)
        return Deliver(connection_body(session, option, SHAPES[option.type](read.typed)))
