"""``source = "google"``: Application Default Credentials through google-auth.

Every ADC kind google-auth knows (``authorized_user``, ``service_account``,
``external_account`` with file, url, executable or aws1 subject tokens,
``impersonated_service_account``, the GCE/GKE metadata server) or an explicit
``credentials_file``; optionally impersonating a service account; access
tokens (default) or ID tokens for an audience.

google-auth is imported only when a google profile fetches or signs in
(``tokens`` and ``signin``); the source class itself costs nothing to load.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from tokend.ci import oidc
from tokend.core.credential import Credential
from tokend.core.durations import format_duration
from tokend.core.errors import ConfigError
from tokend.sources.base import BaseSource, FetchRequest, LoginContext, Option, owner
from tokend.sources.google import federation
from tokend.sources.google.adc import AdcFile, IdentityStamp, adc_file

if TYPE_CHECKING:
    import requests

    from tokend.sources.google.tokens import Plan

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_LIFETIME = 3600.0
MAX_LIFETIME = 12 * 3600.0  # IAM's ceiling (beyond 1 h needs the org policy constraint)


class GoogleSource(BaseSource):
    """Google access or ID tokens from ADC, optionally impersonating a service account.

    ``fingerprint()`` changes when the credentials file or gcloud's active
    account changes, so the broker drops what it cached for the old identity.
    """

    name = "google"
    options: ClassVar[dict[str, Option]] = {
        "credentials_file": Option(
            "str", help="ADC file to use instead of google-auth's lookup (any kind google-auth reads)"
        ),
        "scopes": Option("strlist", default=(CLOUD_PLATFORM,), help="OAuth scopes of access tokens"),
        "quota_project": Option("str", help="project billed for quota (x-goog-user-project)"),
        "impersonate_service_account": Option(
            "str", help="service account email to impersonate with the ADC credential"
        ),
        "delegates": Option("strlist", help="delegation chain for impersonation (service account emails)"),
        "lifetime": Option(
            "duration", help='life of impersonated access tokens, up to "12h" (default 1h)', lifetime=True
        ),
        "token": Option("str", default="access", choices=("access", "id"), help="access token or ID token"),
        "audience": Option("str", help='audience of ID tokens (token = "id"), e.g. a Cloud Run URL'),
        "oauth_client_file": Option(
            "str", help="OAuth client JSON (Desktop app) for tokend login's own flow or gcloud's"
        ),
        # CI: workload identity federation with the job's OIDC token, no stored key (tokend/ci/oidc.py).
        "workload_identity_provider": Option(
            "str", help="with oidc: projects/N/locations/global/workloadIdentityPools/POOL/providers/P"
        ),
        **oidc.OPTIONS,
    }
    supports_login: ClassVar[bool] = True

    def __init__(
        self,
        profile: str,
        options: Mapping[str, Any],
        *,
        clock: Callable[[], float],
        session_factory: Callable[[], requests.Session] | None = None,
        environ: Mapping[str, str] = os.environ,
        find_gcloud: Callable[[], str | None] = lambda: shutil.which("gcloud"),
        open_url: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__(profile, options, clock=clock)
        # Tests hand in a session that routes Google's hosts to a local fake;
        # by default google-auth's usual requests.Session.
        self._session_factory = session_factory
        self._environ = environ
        self._find_gcloud = find_gcloud
        self._open_url = open_url
        self.adc: AdcFile = adc_file(options.get("credentials_file"), environ)
        self._stamp = IdentityStamp(self.adc.path, environ)

    @classmethod
    def validate(cls, profile: str, options: Mapping[str, Any]) -> None:
        o, where = options, f"profiles.{profile}"
        impersonating = bool(o.get("impersonate_service_account"))
        lifetime = o.get("lifetime")
        if lifetime is not None:
            if not impersonating:
                raise ConfigError(
                    f"{where}.lifetime: only impersonated tokens have a chosen lifetime; "
                    "set impersonate_service_account or remove lifetime"
                )
            if not 0 < lifetime <= MAX_LIFETIME:
                raise ConfigError(
                    f"{where}.lifetime: expected up to {format_duration(MAX_LIFETIME)}, "
                    f"got {format_duration(lifetime)}"
                )
        if o.get("delegates") and not impersonating:
            raise ConfigError(f"{where}.delegates: needs impersonate_service_account")
        if o.get("token", "access") == "id" and not o.get("audience"):
            raise ConfigError(f'{where}.audience: required with token = "id" (the service URL or client id)')
        if o.get("audience") and o.get("token", "access") != "id":
            raise ConfigError(f'{where}.audience: only ID tokens have an audience; set token = "id"')
        oidc.check(o, profile)
        if bool(o.get("oidc")) != bool(o.get("workload_identity_provider")):
            raise ConfigError(f"{where}: oidc and workload_identity_provider go together")
        if o.get("workload_identity_provider"):
            federation.google_provider(o["workload_identity_provider"], profile)

    def _plan(self) -> Plan:
        from tokend.sources.google.tokens import Plan

        s = self.settings
        return Plan(
            # An internal profile ("corp:cloud-platform") asks for the sign-in of its own.
            profile=owner(self.profile),
            adc=self.adc,
            scopes=tuple(s.get("scopes") or (CLOUD_PLATFORM,)),
            quota_project=s.get("quota_project"),
            impersonate=s.get("impersonate_service_account"),
            delegates=tuple(s.get("delegates") or ()),
            lifetime=int(s.get("lifetime") or DEFAULT_LIFETIME),
            token=s.get("token") or "access",
            audience=s.get("audience"),
        )

    def _session(self) -> requests.Session:
        if self._session_factory is not None:
            return self._session_factory()
        import requests

        return requests.Session()

    # -- the Source protocol ----------------------------------------------------------

    def fetch(self, request: FetchRequest) -> Credential:
        from tokend.sources.google import tokens  # google-auth: only when a google profile is used

        if self.settings.get("oidc"):
            return self._fetch_federated(request)
        return tokens.fetch(
            self._plan(),
            request.timeout,
            session_factory=self._session,
            now=self.clock,
            environ=self._environ,
        )

    def _fetch_federated(self, request: FetchRequest) -> Credential:
        """The CI job's OIDC token exchanged at Google STS (an ``external_account`` made for one fetch)."""
        import dataclasses
        import time

        from tokend.sources.google import tokens

        provider = federation.google_provider(self.settings["workload_identity_provider"], self.profile)
        audience = self.settings.get("oidc_audience") or federation.google_audience(provider)
        deadline = time.monotonic() + request.timeout
        spec = self.settings["oidc"]
        half = request.timeout / 2
        env = self._environ
        subject = oidc.subject_token(spec, audience, timeout=half, profile=self.profile, environ=env)
        with federation.google_credentials_file(provider, subject) as path:
            plan = dataclasses.replace(self._plan(), adc=AdcFile(path, "oidc"))
            left = max(deadline - time.monotonic(), 0.5)
            return tokens.fetch(
                plan, left, session_factory=self._session, now=self.clock, environ=self._environ
            )

    def fingerprint(self) -> str | None:
        """Changes with the credentials file's contents or gcloud's active configuration/account."""
        return self._stamp.current()

    # -- laptop sign-in -----------------------------------------------------------------

    def identity(self) -> str:
        # Profiles reading one ADC file share one sign-in.
        return f"google:{os.path.realpath(self.adc.path)}"

    def login(self, ctx: LoginContext) -> None:
        from tokend.sources.google import signin

        signin.login(
            ctx,
            adc=self.adc,
            scopes=tuple(self.settings.get("scopes") or (CLOUD_PLATFORM,)),
            quota_project=self.settings.get("quota_project"),
            client_file=self.settings.get("oauth_client_file"),
            gcloud=self._find_gcloud(),
            open_url=self._open_url,
            session_factory=self._session,
            environ=self._environ,
        )

    def logout(self) -> None:
        from tokend.sources.google import signin

        signin.logout(self.profile, self.adc)
