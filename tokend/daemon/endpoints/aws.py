"""The AWS container credentials endpoint (what ECS gives a task) for botocore and the other SDKs.

The SDKs find it through ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and send
``AWS_CONTAINER_AUTHORIZATION_TOKEN`` verbatim as the Authorization header
(botocore ``ContainerProvider``); they read ``AccessKeyId``,
``SecretAccessKey``, ``Token``, ``Expiration`` and ``AccountId``. Any status
but 200 is retried (botocore ``ContainerMetadataFetcher``: three tries) and
its body shown, so errors are ``{"code", "message"}`` with tokend's line.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from tokend.core.broker import Broker
from tokend.core.credential import utc
from tokend.core.errors import TokendError
from tokend.daemon.endpoints.common import credential, error_status, refusal
from tokend.daemon.endpoints.http import Request, Response

PATH = "/aws/credentials"
#: The Expiration given for long-term keys (which have none): when to ask again.
STATIC_REASK = 3600.0
#: Bound on the botocore session made to read the AWS config (no network call is made).
CONFIG_TIMEOUT = 5.0


def refuse(status: int, message: str) -> Response:
    code = {401: "Unauthorized", 403: "AccessDenied", 404: "NotFound", 503: "ServiceUnavailable"}
    body = {"code": code.get(status, "InternalError"), "message": message}
    return Response(status, json.dumps(body).encode())


class AwsEndpoint:
    def __init__(self, broker: Broker, profile: str, token: str) -> None:
        self._broker = broker
        self._profile = profile
        self._token = token
        #: (AccessKeyId, its account) for the keys last served.
        self._account: tuple[str, str | None] | None = None

    async def __call__(self, request: Request) -> Response:
        what = "Authorization token (AWS_CONTAINER_AUTHORIZATION_TOKEN)"
        refused = refusal(
            request, path=PATH, header="authorization", token=self._token, what=what, refuse=refuse
        )
        if refused is not None:
            return refused
        try:
            cred = await credential(self._broker, self._profile)
        except TokendError as e:
            return refuse(error_status(e), e.line())
        expires = cred.expires_at if cred.expires_at is not None else time.time() + STATIC_REASK
        body = {
            "AccessKeyId": cred.fields["AccessKeyId"],
            "SecretAccessKey": cred.fields["SecretAccessKey"],
            "Token": cred.fields.get("SessionToken", ""),
            "Expiration": utc(expires).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        account = cred.fields.get("AccountId") or cred.extra.get("account_id")
        if not account:
            account = await self._account_of(body["AccessKeyId"])
        if account:
            body["AccountId"] = str(account)
        return Response(200, json.dumps(body).encode())

    async def _account_of(self, key_id: str) -> str | None:
        """The account of the keys ``key_id``, read from the configuration once per set of keys
        (a new fetch re-reads it, as the source re-read the AWS config)."""
        if self._account is None or self._account[0] != key_id:
            try:
                options = self._broker.profile(self._profile).options
            except TokendError:  # the profile went away in a reload
                return None
            self._account = (key_id, await asyncio.to_thread(configured_account, self._profile, options))
        return self._account[1]


def configured_account(profile: str, options: Mapping[str, Any]) -> str | None:
    """The account the profile's keys belong to, where its configuration names it; else None.

    In botocore's order: a role tokend assumes (``role_arn`` option), then what
    the AWS profile itself resolves through — a role (``role_arn`` with
    ``source_profile``), an SSO role (``sso_account_id``), or keys the config
    labels (``aws_account_id``). Keys from the environment (no ``aws_profile``:
    botocore reads ``AWS_ACCESS_KEY_ID`` first) have no known account.
    """
    account = arn_account(options.get("role_arn"))
    if account or options.get("oidc"):
        return account
    aws_profile = options.get("aws_profile")
    if not aws_profile and os.environ.get("AWS_ACCESS_KEY_ID"):
        return None
    from tokend.sources.aws import session as aws

    try:
        with aws.translated(profile=profile):
            chain = aws.profile_chain(aws.new_session(aws_profile, CONFIG_TIMEOUT))
    except TokendError:  # a broken AWS config: the fetch reports it; the answer just lacks AccountId
        return None
    if not chain:
        return None
    body = chain[0][1]
    if "role_arn" in body:
        return arn_account(body["role_arn"])
    for key in ("sso_account_id", "aws_account_id"):
        value = body.get(key)
        if isinstance(value, str) and len(value) == 12 and value.isdigit():
            return value
    return None


def arn_account(arn: object) -> str | None:
    """The account of a role ARN (``arn:PARTITION:iam::ACCOUNT:role/…``): its keys belong to it."""
    parts = arn.split(":") if isinstance(arn, str) else []
    ok = len(parts) >= 6 and parts[0] == "arn" and parts[2] in ("iam", "sts") and parts[4].isdigit()
    return parts[4] if ok and len(parts[4]) == 12 else None
