"""Azure managed identity, App Service protocol (api-version 2019-08-01), for azure-identity and MSAL.

Clients find it through ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``, send
the header as ``X-IDENTITY-HEADER`` and ``?resource=`` (a scope without
``/.default``), optionally ``client_id`` / ``mi_res_id`` / ``object_id`` for
a user-assigned identity (MSAL ``_obtain_token_on_app_service``). The answer
is ``access_token`` with ``expires_on`` in epoch seconds as a string; errors
are ``{"statusCode", "message"}``, which MSAL shows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tokend.core.broker import Broker
from tokend.daemon.endpoints.common import Variants, refusal
from tokend.daemon.endpoints.http import Request, Response
from tokend.sources.azure import DEFAULT_SCOPE

PATH = "/msi/token"
API_VERSION = "2019-08-01"
#: Request parameters naming a user-assigned identity, and the profile option each must match.
IDENTITY_PARAMS = {"client_id": "client_id", "mi_res_id": "resource_id", "object_id": "object_id"}


def refuse(status: int, message: str) -> Response:
    return Response(status, json.dumps({"statusCode": status, "message": message}).encode())


def profile_resource(options: Mapping[str, object]) -> str | None:
    """The resource the profile's own token is for (its one scope without ``/.default``)."""
    resource = options.get("resource")
    if isinstance(resource, str) and resource:
        return resource.rstrip("/")
    scopes = options.get("scopes") or (DEFAULT_SCOPE,)
    if isinstance(scopes, (tuple, list)) and len(scopes) == 1 and str(scopes[0]).endswith("/.default"):
        return str(scopes[0])[: -len("/.default")].rstrip("/")
    return None


class AzureEndpoint:
    def __init__(self, broker: Broker, profile: str, header: str) -> None:
        self._broker = broker
        self._profile = profile
        self._header = header
        self._options = broker.profile(profile).options
        self._own = profile_resource(self._options)
        self._variants = Variants(broker, profile)

    async def __call__(self, request: Request) -> Response:
        what = "X-IDENTITY-HEADER (IDENTITY_HEADER)"
        refused = refusal(
            request, path=PATH, header="x-identity-header", token=self._header, what=what, refuse=refuse
        )
        if refused is not None:
            return refused
        if request.query.get("api-version") != API_VERSION:
            return refuse(400, f"api-version must be {API_VERSION}")
        resource = (request.query.get("resource") or "").strip()
        if not resource:
            return refuse(400, "missing resource")
        for param, option in IDENTITY_PARAMS.items():
            asked = request.query.get(param)
            if asked is not None and asked != self._options.get(option):
                return refuse(
                    400, f"{param} {asked!r} is not the identity of tokend profile {self._profile!r}"
                )
        resource = resource.removesuffix("/.default")
        other = resource.rstrip("/") != self._own
        overrides = {"scopes": (resource + "/.default",), "resource": None} if other else None
        cred = await self._variants.credential(overrides, what="resources", refuse=refuse)
        if isinstance(cred, Response):
            return cred
        body = {
            "access_token": cred.fields["token"],
            "expires_on": str(int(cred.expires_at or 0)),
            "resource": resource,
            "token_type": "Bearer",
        }
        client_id = self._options.get("client_id")
        if isinstance(client_id, str):
            body["client_id"] = client_id
        return Response(200, json.dumps(body).encode())
