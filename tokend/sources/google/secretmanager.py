"""``source = "gcp-secretmanager"``: a secret version from Google Cloud Secret Manager.

One REST call, ``GET https://secretmanager.googleapis.com/v1/{name}:access``,
made with google-auth's ``AuthorizedSession`` (no grpc for one call). The
cloud-platform access token comes from the broker (tokend/sources/tokensecret.py):
from a google profile's settings (``via = "PROFILE"``: its credentials file,
impersonation, quota project) or from Application Default Credentials, minted
by the google source, so the token call is bounded and its errors (a dead
sign-in: exit 4) read the same.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, SourceError, SourceTimeout
from tokend.sources import secretvalue
from tokend.sources.base import Option
from tokend.sources.tokensecret import TokenSecretSource

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_ENDPOINT = "https://secretmanager.googleapis.com"
CONNECT_CAP = 5.0

_NAME = re.compile(
    r"^projects/[^/]+/(?:locations/(?P<location>[^/]+)/)?secrets/[^/]+(?P<version>/versions/[^/]+)?$"
)
#: Answers retrying will not change.
_PERMANENT = frozenset({"NOT_FOUND", "PERMISSION_DENIED", "FAILED_PRECONDITION", "INVALID_ARGUMENT"})


class GcpSecretManagerSource(TokenSecretSource[Any]):
    """A Secret Manager secret version, re-read every ``ttl``; authenticated as a google profile or ADC."""

    name = "gcp-secretmanager"
    token_source = "google"
    options: ClassVar[dict[str, Option]] = {
        "name": Option(
            "str",
            required=True,
            help='secret version, "projects/P/secrets/S/versions/latest" (no /versions/...: latest)',
        ),
        "via": Option(
            "str", profile_of=("google",), help="google profile whose credentials read it (default: ADC)"
        ),
        "endpoint": Option("str", help=f"API root (default {DEFAULT_ENDPOINT}; regional for locations/L)"),
        "json_key": secretvalue.JSON_KEY_OPTION,
        "ttl": secretvalue.TTL_OPTION,
    }
    supports_login: ClassVar[bool] = True  # the google profile's (or ADC's) sign-in

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        super().__init__(profile, options, clock=clock)
        match = _NAME.match(str(options["name"]))
        assert match is not None  # validate() checked it
        self.secret = match.group(0) + ("" if match.group("version") else "/versions/latest")
        location = match.group("location")
        default = f"https://secretmanager.{location}.rep.googleapis.com" if location else DEFAULT_ENDPOINT
        self.endpoint = str(options.get("endpoint") or default).rstrip("/")

    @classmethod
    def validate(cls, profile: str, options: Mapping[str, Any]) -> None:
        if _NAME.match(str(options.get("name") or "")) is None:
            raise ConfigError(
                f"profiles.{profile}.name: expected projects/PROJECT/secrets/SECRET[/versions/VERSION], "
                f"got {options.get('name')!r}"
            )

    @classmethod
    def token_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        # Secret Manager takes cloud-platform access tokens, whatever the google profile serves.
        return {"scopes": (CLOUD_PLATFORM,), "token": "access", "audience": None}

    @classmethod
    def token_label(cls, options: Mapping[str, Any]) -> str:
        return "cloud-platform"

    @property
    def what(self) -> str:
        return f"secret {self.secret}"

    def call(self, token: Credential, deadline: float, timeout: float) -> tuple[int, Any]:
        return self._get(token, deadline, timeout)

    def read(self, status: int, answer: Any) -> str:
        return self._payload(status, answer)

    # -- internals ------------------------------------------------------------------------------

    def _get(self, token: Credential, deadline: float, timeout: float) -> tuple[int, Any]:
        import google.oauth2.credentials
        import requests
        from google.auth.transport.requests import AuthorizedSession

        quota = self.token_settings.get("quota_project")
        creds = google.oauth2.credentials.Credentials(token.fields["token"], quota_project_id=quota)
        # The broker serves the token with min_ttl left: google-auth must never refresh it itself.
        session = AuthorizedSession(creds, refresh_status_codes=(), max_refresh_attempts=0)
        left = deadline - time.monotonic()
        if left <= 0:
            raise SourceTimeout(f"Secret Manager: no time left within {timeout:g}s")
        try:
            response = session.request(
                "GET",
                f"{self.endpoint}/v1/{self.secret}:access",
                headers={"Accept": "application/json"},
                timeout=(min(CONNECT_CAP, left / 2), left),
            )
        except requests.Timeout:
            raise SourceTimeout(f"Secret Manager did not answer within {timeout:g}s") from None
        except requests.RequestException as e:
            raise SourceError(f"cannot reach Secret Manager at {self.endpoint}: {type(e).__name__}") from None
        finally:
            session.close()
        try:
            doc = response.json()
        except ValueError:
            doc = None
        return response.status_code, doc

    def _payload(self, status: int, doc: Any) -> str:
        if status == 200 and isinstance(doc, dict):
            payload = doc.get("payload") or {}
            try:
                data = base64.b64decode(payload.get("data", ""), validate=True)
            except (ValueError, TypeError):
                raise SourceError(f"{self.what}: the payload is not base64", retryable=False) from None
            crc = payload.get("dataCrc32c")
            if crc is not None and str(crc) != str(crc32c(data)):
                raise SourceError(f"{self.what}: the payload failed its CRC32C check (corrupted in transit)")
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise SourceError(f"{self.what} is binary, not UTF-8 text", retryable=False) from None
        error = doc.get("error") if isinstance(doc, dict) else None
        state = str(error.get("status") or "") if isinstance(error, dict) else ""
        message = " ".join(str(error.get("message") or "").split())[:300] if isinstance(error, dict) else ""
        if status == 404 or state == "NOT_FOUND":
            raise secretvalue.not_found(self.what)
        if status == 403 or state == "PERMISSION_DENIED":
            raise SourceError(f"access denied reading {self.what}: {message}", retryable=False)
        detail = f"{state}: {message}" if state else message or "no error details"
        raise SourceError(
            f"Secret Manager answered HTTP {status} for {self.what}: {detail}",
            retryable=state not in _PERMANENT and (status >= 500 or status in (401, 408, 429)),
        )


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as Secret Manager checksums payloads (secrets are at most 64 KiB)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
