"""AWS IAM Identity Center (SSO) sign-in: the device-authorization flow of ``aws sso login``.

The token lands where the AWS CLI keeps it (``~/.aws/sso/cache/<sha1>.json``,
same keys, same file name), so tokend, the AWS CLI and every SDK share one
sign-in. botocore reads it back when it resolves the profile's credentials.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tokend.core.errors import SourceError, SourceTimeout
from tokend.sources.base import LoginContext

#: The device-flow defaults of RFC 8628 (section 3.5), as the AWS CLI uses them.
DEFAULT_INTERVAL = 5
SLOW_DOWN_DELAY = 5
#: A cached token or registration this close to expiry counts as expired (AWS CLI: 15 min).
EXPIRY_WINDOW = 15 * 60
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class SsoConfig:
    """Where to sign in: an ``[sso-session NAME]`` section or a legacy profile's sso_* keys."""

    start_url: str
    region: str
    session_name: str | None = None
    scopes: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        return "aws-sso:" + (f"session:{self.session_name}" if self.session_name else self.start_url)

    @property
    def cache_key(self) -> str:
        """The AWS CLI's token file name: sha1 of the session name, or of the start URL (legacy)."""
        return hashlib.sha1((self.session_name or self.start_url).encode()).hexdigest()

    def registration_key(self) -> str:
        """The AWS CLI's client-registration file name."""
        args = {
            "tool": "botocore",
            "startUrl": self.start_url,
            "region": self.region,
            "scopes": list(self.scopes) or None,
            "session_name": self.session_name,
        }
        return hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()


def find(full_config: Mapping[str, Any], chain: list[tuple[str, Mapping[str, Any]]]) -> SsoConfig | None:
    """The SSO configuration behind a profile chain (the profile or a ``source_profile``)."""
    sessions = full_config.get("sso_sessions", {})
    for name, body in chain:
        session_name = body.get("sso_session")
        if session_name:
            section = sessions.get(session_name)
            if not section or "sso_start_url" not in section or "sso_region" not in section:
                raise SourceError(
                    f"aws profile {name!r} names sso_session {session_name!r}, which lacks "
                    "sso_start_url or sso_region",
                    retryable=False,
                )
            scopes = tuple(
                s.strip() for s in section.get("sso_registration_scopes", "").split(",") if s.strip()
            )
            return SsoConfig(section["sso_start_url"], section["sso_region"], session_name, scopes)
        if body.get("sso_start_url") and body.get("sso_region"):
            return SsoConfig(body["sso_start_url"], body["sso_region"])
    return None


def cache_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".aws", "sso", "cache")


def _stamp(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class DeviceLogin:
    """One run of the device-authorization flow against the ``sso-oidc`` API."""

    def __init__(
        self,
        sso: SsoConfig,
        client: Any,
        cache: Any,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        open_url: Callable[[str], Any] | None = None,
    ) -> None:
        self.sso = sso
        self.client = client
        self.cache = cache  # a botocore JSONFileCache over cache_dir(): atomic, 0600 files
        self.clock = clock
        self.sleep = sleep
        self.open_url = open_url

    def run(self, ctx: LoginContext) -> None:
        registration = self._registration()
        auth = self.client.start_device_authorization(
            clientId=registration["clientId"],
            clientSecret=registration["clientSecret"],
            startUrl=self.sso.start_url,
        )
        ctx.echo(
            f"Sign in to AWS IAM Identity Center ({self.sso.start_url}): open\n\n"
            f"    {auth['verificationUriComplete']}\n\n"
            f"and check that it shows the code {auth['userCode']}."
        )
        if self.open_url is not None:
            try:
                self.open_url(auth["verificationUriComplete"])
            except Exception as e:  # a missing browser is not a failed sign-in
                ctx.echo(f"(could not open a browser: {e})")
        deadline = self.clock() + min(ctx.timeout, float(auth.get("expiresIn") or ctx.timeout))
        interval = float(auth.get("interval") or DEFAULT_INTERVAL)
        while True:
            token, interval = self._attempt(registration, auth["deviceCode"], interval)
            if token is not None:
                self.cache[self.sso.cache_key] = token
                return
            if self.clock() + interval > deadline:
                raise SourceTimeout(
                    f"the sign-in at {self.sso.start_url} was not completed within {ctx.timeout:g}s"
                )
            self.sleep(interval)

    def _registration(self) -> Mapping[str, Any]:
        key = self.sso.registration_key()
        try:
            cached = self.cache[key]
        except KeyError:
            cached = None
        if (
            isinstance(cached, dict)
            and "authorization_code" not in cached.get("grantTypes", ())
            and _parse(cached.get("expiresAt")) - self.clock() > EXPIRY_WINDOW
        ):
            return cached
        name = self.sso.session_name or str(int(self.clock()))
        kwargs: dict[str, Any] = {"clientName": f"botocore-client-{name}", "clientType": "public"}
        if self.sso.scopes:
            kwargs["scopes"] = list(self.sso.scopes)
        response = self.client.register_client(**kwargs)
        registration: dict[str, Any] = {
            "clientId": response["clientId"],
            "clientSecret": response["clientSecret"],
            "expiresAt": _stamp(float(response["clientSecretExpiresAt"])),
        }
        if self.sso.scopes:
            registration["scopes"] = list(self.sso.scopes)
        self.cache[key] = registration
        return registration

    def _attempt(
        self, registration: Mapping[str, Any], device_code: str, interval: float
    ) -> tuple[dict[str, Any] | None, float]:
        errors = self.client.exceptions
        try:
            response = self.client.create_token(
                grantType=GRANT_TYPE,
                clientId=registration["clientId"],
                clientSecret=registration["clientSecret"],
                deviceCode=device_code,
            )
        except errors.AuthorizationPendingException:
            return None, interval
        except errors.SlowDownException:
            return None, interval + SLOW_DOWN_DELAY
        except (errors.ExpiredTokenException, errors.AccessDeniedException) as e:
            raise SourceError(
                f"the sign-in at {self.sso.start_url} was declined or expired: "
                f"{e.response.get('Error', {}).get('Code', 'error')}",
                retryable=False,
            ) from None
        token: dict[str, Any] = {
            "startUrl": self.sso.start_url,
            "region": self.sso.region,
            "accessToken": response["accessToken"],
            "expiresAt": _stamp(self.clock() + float(response["expiresIn"])),
            # The registration goes along so botocore can refresh the token itself.
            "clientId": registration["clientId"],
            "clientSecret": registration["clientSecret"],
            "registrationExpiresAt": registration["expiresAt"],
        }
        if response.get("refreshToken"):
            token["refreshToken"] = response["refreshToken"]
        return token, interval


def login(session: Any, sso: SsoConfig, ctx: LoginContext, *, timeout: float = 30.0) -> None:
    """Sign in through the device flow and write the shared token cache entry."""
    import webbrowser

    from botocore import UNSIGNED
    from botocore.utils import JSONFileCache

    from tokend.sources.aws.session import client_config, translated

    with translated(profile=ctx.profile):
        client = session.create_client(
            "sso-oidc", config=client_config(timeout, region_name=sso.region, signature_version=UNSIGNED)
        )
        directory = cache_dir()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        cache = JSONFileCache(directory)
        DeviceLogin(sso, client, cache, open_url=webbrowser.open_new_tab if ctx.open_browser else None).run(
            ctx
        )


def logout(sso: SsoConfig) -> bool:
    """Delete the cached token (as ``aws sso logout`` does); True when there was one."""
    try:
        os.unlink(os.path.join(cache_dir(), sso.cache_key + ".json"))
    except FileNotFoundError:
        return False
    return True
