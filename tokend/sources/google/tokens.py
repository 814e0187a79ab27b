"""One Google credential through google-auth: find ADC, impersonate, mint, bound the time.

Imported only when a google profile fetches (google-auth costs ~100 ms to import).
Credentials objects are built afresh for every fetch, so the file on disk at
that moment decides the identity (see ``adc.IdentityStamp`` for the cache side).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import google.auth
import google.auth.credentials
import google.auth.exceptions as gexc
import google.auth.jwt
import google.auth.transport.requests
import requests
from google.auth import compute_engine, impersonated_credentials
from google.auth.compute_engine import _metadata
from google.oauth2 import service_account

from tokend.core.credential import Credential
from tokend.core.errors import SourceError, SourceTimeout, SourceUnavailable, TokendError
from tokend.sources.google.adc import AdcFile
from tokend.sources.google.errors import USER_KINDS, map_error
from tokend.sources.refs import file_problem

# load_credentials_from_* warn on every call (a deprecation nudge and the
# "no quota project" hint): noise in the daemon's log, not news for its user.
warnings.filterwarnings("ignore", module=r"google\.auth\._default")

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
#: The metadata server must answer within this long, or the machine is not on GCE.
METADATA_BUDGET = 3.0
#: Share of the metadata budget for the TCP connect (a link-local address may blackhole).
METADATA_CONNECT = 1.0
#: Access tokens that carry no expiry are kept this long (Google's are 1 h).
FALLBACK_LIFE = 1800.0
ENV_HINT = "GOOGLE_APPLICATION_CREDENTIALS"

SessionFactory = Callable[[], requests.Session]


@dataclass(frozen=True)
class Plan:
    """What one google profile asks for (validated options)."""

    profile: str
    adc: AdcFile
    scopes: tuple[str, ...]
    quota_project: str | None
    impersonate: str | None
    delegates: tuple[str, ...]
    lifetime: int
    token: str  # "access" | "id"
    audience: str | None


class DeadlineExceeded(Exception):
    """The fetch's time is up. Not a google-auth TransportError, so its retry loops stop."""


class BoundedRequest(google.auth.transport.requests.Request):  # type: ignore[misc]
    """google-auth's requests transport with every call cut to what is left of a deadline.

    google-auth defaults to 120 s per call and retries with sleeps; here each
    call gets at most the time left, and once that is gone the next call raises
    ``DeadlineExceeded`` instead of being made.
    """

    def __init__(self, session: requests.Session, deadline: float, *, connect: float | None = None) -> None:
        super().__init__(session)
        self.deadline = deadline
        self.connect = connect

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(url)
        limit = left if timeout is None else min(float(timeout), left)
        # requests applies a float to the connect and to each read: split the
        # budget so the two together stay within it when a cap is given.
        bound: float | tuple[float, float] = limit
        if self.connect is not None and limit > self.connect:
            bound = (self.connect, limit - self.connect)
        try:
            return super().__call__(url, method=method, body=body, headers=headers, timeout=bound, **kwargs)
        except gexc.TransportError:
            if self.deadline - time.monotonic() <= 0.01:
                raise DeadlineExceeded(url) from None
            raise


def fetch(
    plan: Plan,
    timeout: float,
    *,
    session_factory: SessionFactory,
    now: Callable[[], float],
    environ: Mapping[str, str] = os.environ,
) -> Credential:
    """A new credential for ``plan`` within ``timeout`` seconds, or a TokendError."""
    deadline = time.monotonic() + timeout
    session = session_factory()
    kind, user_based = "unknown", False
    try:
        req = BoundedRequest(session, deadline)
        base, kind, info = _base_credentials(plan, req, session, environ)
        user_based = _user_based(kind, info)
        issued = now()
        if plan.token == "id":
            token = _id_token(plan, req, base, kind, info)
            expires_at = _jwt_expiry(token)
        else:
            creds = base
            if plan.impersonate:
                creds = impersonated_credentials.Credentials(
                    source_credentials=base,
                    target_principal=plan.impersonate,
                    target_scopes=list(plan.scopes),
                    delegates=_delegates(plan.delegates) or None,
                    lifetime=plan.lifetime,
                    quota_project_id=plan.quota_project,
                )
            creds.refresh(req)
            token = creds.token
            expires_at = _timestamp(creds.expiry) or issued + FALLBACK_LIFE
        if not isinstance(token, str) or not token:
            raise SourceError("Google answered without a token", profile=plan.profile, retryable=True)
        return Credential.bearer(
            token, expires_at=expires_at, issued_at=issued, source="google", extra={"adc_kind": kind}
        )
    except TokendError:
        raise
    except DeadlineExceeded:
        raise SourceTimeout(f"Google did not answer within {timeout:g}s", profile=plan.profile) from None
    except Exception as e:  # google-auth raises its own errors, ValueError, KeyError, OSError …
        raise map_error(e, plan=plan, kind=kind, user_based=user_based) from None
    finally:
        session.close()


def _user_based(kind: str, info: dict[str, Any] | None) -> bool:
    """Whether a person's sign-in (a refresh token) is at the root of this credential."""
    if kind == "impersonated_service_account" and info is not None:
        source = info.get("source_credentials")
        return isinstance(source, dict) and source.get("type") in USER_KINDS
    return kind in USER_KINDS


# -- finding the base credential ----------------------------------------------------


def _base_credentials(
    plan: Plan, req: BoundedRequest, session: requests.Session, environ: Mapping[str, str]
) -> tuple[Any, str, dict[str, Any] | None]:
    """(credentials, ADC kind, file contents) in google-auth's ADC order.

    ``google.auth.default`` itself is not used: for gcloud's file it runs
    ``gcloud config get project`` (a slow subprocess) on every call, and its
    metadata probe retries with sleeps past any deadline.
    """
    adc = plan.adc
    if adc.origin != "gcloud" or os.path.isfile(adc.path):
        info = _read_info(plan)
        kind = str(info.get("type"))
        # Scopes are applied after loading: given at load time, external_account
        # credentials would spend a token exchange looking up their project.
        creds, _ = google.auth.load_credentials_from_dict(
            info, quota_project_id=plan.quota_project, request=req
        )
        return google.auth.credentials.with_scopes_if_required(creds, list(plan.scopes)), kind, info
    if environ.get("NO_GCE_CHECK", "").lower() == "true" or not _metadata_answers(req, session):
        raise SourceUnavailable(
            f"no Google credentials: {ENV_HINT} is unset, {adc.path} does not exist and no metadata "
            f"server answered within {METADATA_BUDGET:g}s; run: tokend login {plan.profile} "
            "(or gcloud auth application-default login)",
            profile=plan.profile,
        )
    # The universe domain is looked up here, through the bounded transport: left
    # unset, google-auth fetches it lazily with a transport of its own (120 s).
    universe = _metadata.get_universe_domain(req)
    creds = compute_engine.Credentials(scopes=list(plan.scopes), universe_domain=universe)
    if plan.quota_project:
        creds = creds.with_quota_project(plan.quota_project)
    return creds, "compute", None


def _read_info(plan: Plan) -> dict[str, Any]:
    adc = plan.adc
    via = "credentials_file" if adc.origin == "credentials_file" else adc.origin
    try:
        with open(adc.path, encoding="utf-8") as f:
            # Whoever can rewrite it picks the identity, and an external_account
            # file can even name an executable to run: only ours (or root's).
            why = file_problem(os.fstat(f.fileno()))
            if why:
                raise SourceError(f"{via}: refusing {adc.path}, {why}", profile=plan.profile, retryable=False)
            info = json.load(f)
    except FileNotFoundError:
        raise SourceUnavailable(
            f"{via} names {adc.path}, which does not exist; run: tokend login {plan.profile} "
            "(or gcloud auth application-default login), or fix the path",
            profile=plan.profile,
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"cannot read {adc.path}: {e}", profile=plan.profile, retryable=False) from None
    except ValueError:
        raise SourceError(f"{adc.path} is not valid JSON", profile=plan.profile, retryable=False) from None
    if not isinstance(info, dict) or not isinstance(info.get("type"), str):
        raise SourceError(
            f'{adc.path} is not a Google credentials file (no "type")', profile=plan.profile, retryable=False
        )
    return info


def _metadata_answers(req: BoundedRequest, session: requests.Session) -> bool:
    """One bounded probe of the GCE metadata server (google-auth's would retry with sleeps)."""
    probe = BoundedRequest(
        session, min(req.deadline, time.monotonic() + METADATA_BUDGET), connect=METADATA_CONNECT
    )
    try:
        return bool(_metadata.ping(probe, timeout=METADATA_BUDGET, retry_count=1))
    except DeadlineExceeded:
        return False


# -- ID tokens ------------------------------------------------------------------


def _id_token(plan: Plan, req: BoundedRequest, base: Any, kind: str, info: dict[str, Any] | None) -> str:
    audience = plan.audience or ""
    if plan.impersonate:
        source = google.auth.credentials.with_scopes_if_required(base, [CLOUD_PLATFORM])
        return _iam_id_token(req, source, _iam_url(plan.impersonate, base, info), audience, plan.delegates)
    if kind == "service_account" and info is not None:
        creds = service_account.IDTokenCredentials.from_service_account_info(info, target_audience=audience)
        creds.refresh(req)
        return str(creds.token)
    if kind == "compute":
        creds = compute_engine.IDTokenCredentials(
            req, target_audience=audience, use_metadata_identity_endpoint=True
        )
        creds.refresh(req)
        return str(creds.token)
    url = (info or {}).get("service_account_impersonation_url")
    if kind in ("impersonated_service_account", "external_account") and isinstance(url, str) and info:
        # The file's own impersonation: mint the ID token for its target with the
        # credential it impersonates from.
        inner = dict(info["source_credentials"]) if kind == "impersonated_service_account" else dict(info)
        inner.pop("service_account_impersonation_url", None)
        source, _ = google.auth.load_credentials_from_dict(inner, request=req)
        source = google.auth.credentials.with_scopes_if_required(source, [CLOUD_PLATFORM])
        delegates = tuple(info.get("delegates") or ())
        return _iam_id_token(req, source, _id_url(url), audience, delegates)
    raise SourceError(
        f"{kind} credentials cannot mint ID tokens for an audience; set impersonate_service_account "
        "to a service account they may impersonate",
        profile=plan.profile,
        retryable=False,
    )


def _iam_url(email: str, creds: Any, info: dict[str, Any] | None) -> str:
    # Compute credentials carry the universe resolved in _base_credentials;
    # file-based ones name it in the file (default googleapis.com).
    universe = (info or {}).get("universe_domain") or getattr(creds, "universe_domain", None)
    universe = universe or "googleapis.com"
    return f"https://iamcredentials.{universe}/v1/projects/-/serviceAccounts/{email}:generateIdToken"


def _id_url(access_token_url: str) -> str:
    if not access_token_url.endswith(":generateAccessToken"):
        raise SourceError(
            f"unexpected service_account_impersonation_url {access_token_url!r}", retryable=False
        )
    return access_token_url.removesuffix(":generateAccessToken") + ":generateIdToken"


def _iam_id_token(req: BoundedRequest, source: Any, url: str, audience: str, delegates: Sequence[str]) -> str:
    """IAM Credentials ``generateIdToken`` through our bounded transport.

    google-auth's ``impersonated_credentials.IDTokenCredentials`` posts through an
    ``AuthorizedSession`` of its own (120 s timeout, no way to pass a transport),
    so the call is made here with google-auth refreshing the source credential.
    """
    source.refresh(req)
    headers: dict[str, str] = {"Content-Type": "application/json"}
    source.apply(headers)
    body = {"audience": audience, "delegates": _delegates(delegates), "includeEmail": True}
    response = req(url=url, method="POST", headers=headers, body=json.dumps(body).encode())
    data = response.data.decode("utf-8", "replace") if isinstance(response.data, bytes) else response.data
    if response.status != 200:
        raise gexc.RefreshError(f"generateIdToken answered HTTP {response.status}", data)
    try:
        return str(json.loads(data)["token"])
    except (ValueError, KeyError, TypeError):
        raise gexc.RefreshError("generateIdToken answered without a token") from None


def _delegates(delegates: Sequence[str]) -> list[str]:
    return [d if d.startswith("projects/") else f"projects/-/serviceAccounts/{d}" for d in delegates]


# -- expiry ----------------------------------------------------------------------


def _timestamp(expiry: dt.datetime | None) -> float | None:
    """google-auth's expiry (a naive datetime meaning UTC) as a POSIX timestamp."""
    if expiry is None:
        return None
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=dt.timezone.utc)
    return expiry.timestamp()


def _jwt_expiry(token: str) -> float:
    try:
        claims = google.auth.jwt.decode(token, verify=False)
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        raise SourceError(
            "Google returned an ID token without a readable exp claim", retryable=False
        ) from None
