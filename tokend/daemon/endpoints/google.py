"""The GCE metadata server's credential paths, for google-auth (Python, Node), gcloud, Go and Java.

The clients find it through ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP``, send
``Metadata-Flavor: Google`` and trust an answer only when it carries the same
header (google-auth ``_metadata.ping``, gcp-metadata). google-auth's compute
credentials read ``instance/service-accounts/default/?recursive=true`` (the
account's ``email`` and ``scopes``), then ``…/EMAIL/token``; 5xx answers are
retried, so a failing upstream answers 503 with tokend's line as text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tokend.core.broker import Broker
from tokend.daemon.endpoints.common import Variants
from tokend.daemon.endpoints.http import Request, Response, plain

PREFIX = "/computeMetadata/v1/"
FLAVOR = {"Metadata-Flavor": "Google"}
#: ADC file types whose tokens are a person's: their scopes are fixed at sign-in.
PERSON_KINDS = frozenset({"authorized_user", "signin"})


@dataclass(frozen=True)
class Identity:
    """What the metadata server says about its account."""

    email: str  # "default" when unknown (a person signed in through gcloud)
    scopes: tuple[str, ...]
    project: str | None
    person: bool  # a person's token: ``?scopes=`` cannot be honoured


def identity_of(options: Mapping[str, object], environ: Mapping[str, str]) -> Identity:
    """The account a google profile signs in as, from its options and credentials file."""
    from tokend.sources.google.adc import adc_file

    raw = options.get("scopes")
    scopes = tuple(str(s) for s in raw) if isinstance(raw, (tuple, list)) else ()
    impersonated = options.get("impersonate_service_account")
    info: dict[str, object] = {}
    path = adc_file(_str(options.get("credentials_file")), environ).path
    try:
        with open(path, encoding="utf-8") as f:
            loaded = json.load(f)
        info = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    kind = str(info.get("type") or "")
    email = _str(impersonated) or _str(info.get("client_email")) or "default"
    project = (
        _str(info.get("project_id"))
        or _str(info.get("quota_project_id"))
        or _str(options.get("quota_project"))
    )
    person = not impersonated and (kind in PERSON_KINDS or not info)
    return Identity(email=email, scopes=scopes, project=project, person=person)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def refuse(status: int, message: str) -> Response:
    return plain(status, message + "\n", FLAVOR)


class GoogleEndpoint:
    def __init__(self, broker: Broker, profile: str, identity: Identity) -> None:
        self._broker = broker
        self._profile = profile
        self._id = identity
        self._variants = Variants(broker, profile)

    async def __call__(self, request: Request) -> Response:
        if request.headers.get("metadata-flavor") != "Google":
            return refuse(403, "Missing required header: Metadata-Flavor: Google")
        if request.method not in ("GET", "POST"):  # google-auth POSTs for certificate-bound tokens
            return refuse(405, "only GET")
        path = request.path
        if path in ("/", ""):
            return self._text("computeMetadata/\n")
        if path != PREFIX.rstrip("/") and not path.startswith(PREFIX):
            return refuse(404, f"no such path: {path}")
        rest = path[len(PREFIX) :]
        recursive = request.query.get("recursive", "").lower() == "true"
        if rest == "":
            return self._text("instance/\nproject/\nuniverse/\n")
        if rest.rstrip("/") == "instance":
            return self._text("service-accounts/\n")
        if rest == "project/project-id" and self._id.project:
            return self._text(self._id.project)
        if rest == "universe/universe-domain":
            return self._text("googleapis.com")
        if rest.rstrip("/") == "instance/service-accounts":
            if recursive:
                return self._json({"default": self._account(), self._id.email: self._account()})
            return self._text(f"default/\n{self._id.email}/\n")
        parts = rest.split("/")
        if len(parts) >= 3 and parts[:2] == ["instance", "service-accounts"]:
            if parts[2] not in ("default", self._id.email):
                return refuse(404, f"no service account {parts[2]!r}")
            leaf = "/".join(parts[3:]).rstrip("/")
            if leaf == "":
                if recursive:
                    return self._json(self._account())
                return self._text("aliases\nemail\nidentity\nscopes\ntoken\n")
            if leaf == "email":
                return self._text(self._id.email)
            if leaf == "aliases":
                return self._text("default\n")
            if leaf == "scopes":
                return self._text("".join(s + "\n" for s in self._id.scopes))
            if leaf == "token":
                return await self._token(request.query.get("scopes"))
            if leaf == "identity":
                return await self._identity(request.query.get("audience", ""))
        return refuse(404, f"no such path: {path}")

    async def _token(self, scopes: str | None) -> Response:
        wanted = tuple(s for s in (scopes or "").replace(" ", ",").split(",") if s)
        other = wanted and not self._id.person and set(wanted) != set(self._id.scopes)
        overrides = {"scopes": wanted} if other else None
        cred = await self._variants.credential(overrides, what="scope sets", refuse=refuse)
        if isinstance(cred, Response):
            return cred
        left = int((cred.expires_at or time.time() + 3600) - time.time())
        body = {"access_token": cred.fields["token"], "expires_in": max(left, 0), "token_type": "Bearer"}
        return self._json(body)

    async def _identity(self, audience: str) -> Response:
        """An ID token for ``audience``: the profile with ``token = "id"``, one derived profile each."""
        if not audience:
            return refuse(400, "non-empty audience parameter required")
        overrides = {"token": "id", "audience": audience}
        cred = await self._variants.credential(overrides, what="audiences", refuse=refuse)
        if isinstance(cred, Response):
            return cred
        return self._text(cred.fields["token"])

    def _account(self) -> dict[str, object]:
        return {"aliases": ["default"], "email": self._id.email, "scopes": list(self._id.scopes)}

    @staticmethod
    def _text(text: str) -> Response:
        return plain(200, text, FLAVOR)

    @staticmethod
    def _json(doc: object) -> Response:
        return Response(200, json.dumps(doc).encode(), "application/json", FLAVOR)
