"""The AWS container credentials endpoint (what ECS gives a task) for botocore and the other SDKs.

The SDKs find it through ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and send
``AWS_CONTAINER_AUTHORIZATION_TOKEN`` verbatim as the Authorization header
(botocore ``ContainerProvider``); they read ``AccessKeyId``,
``SecretAccessKey``, ``Token``, ``Expiration`` and ``AccountId``. Any status
but 200 is retried (botocore ``ContainerMetadataFetcher``: three tries) and
its body shown, so errors are ``{"code", "message"}`` with tokend's line.
"""

from __future__ import annotations

import json
import time

from tokend.core.broker import Broker
from tokend.core.credential import utc
from tokend.core.errors import TokendError
from tokend.daemon.endpoints.common import credential, error_status, refusal
from tokend.daemon.endpoints.http import Request, Response

PATH = "/aws/credentials"
#: The Expiration given for long-term keys (which have none): when to ask again.
STATIC_REASK = 3600.0


def refuse(status: int, message: str) -> Response:
    code = {401: "Unauthorized", 403: "AccessDenied", 404: "NotFound", 503: "ServiceUnavailable"}
    body = {"code": code.get(status, "InternalError"), "message": message}
    return Response(status, json.dumps(body).encode())


class AwsEndpoint:
    def __init__(self, broker: Broker, profile: str, token: str) -> None:
        self._broker = broker
        self._profile = profile
        self._token = token

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
        account = cred.fields.get("AccountId") or cred.extra.get("account_id") or self._role_account()
        if account:
            body["AccountId"] = str(account)
        return Response(200, json.dumps(body).encode())

    def _role_account(self) -> str | None:
        """The account of the profile's ``role_arn`` (``arn:PARTITION:iam::ACCOUNT:role/…``): the
        assumed role's keys belong to it."""
        try:
            arn = self._broker.profile(self._profile).options.get("role_arn")
        except TokendError:  # the profile went away in a reload
            return None
        parts = arn.split(":") if isinstance(arn, str) else []
        ok = len(parts) >= 6 and parts[0] == "arn" and parts[2] in ("iam", "sts") and parts[4].isdigit()
        return parts[4] if ok and len(parts[4]) == 12 else None
