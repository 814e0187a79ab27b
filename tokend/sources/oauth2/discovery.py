"""The provider's endpoints: explicit ones from the profile, the rest from OpenID discovery.

Discovery (``ISSUER/.well-known/openid-configuration``) is read once per source
instance and kept: endpoints do not move while a daemon runs. Its answer must
name the same issuer (OpenID Connect Discovery §4.3), so a redirect or a
misconfigured proxy cannot point token requests at another server.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tokend.core.errors import SourceError, SourceTimeout

WELL_KNOWN = "/.well-known/openid-configuration"
#: Endpoint options a profile may set instead of (or on top of) discovery.
ENDPOINTS = ("token_endpoint", "device_authorization_endpoint", "authorization_endpoint")
MAX_DOCUMENT = 256 * 1024


def insecure_reason(url: str) -> str | None:
    """Why ``url`` may not carry credentials (None when it may): https, or http to a loopback host only."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme != "http" or not parts.hostname:
        return f"expected an https:// URL, got {url!r}"
    host = parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return None
    return f"plain http only to a loopback address (secrets would cross the network in clear): {url!r}"


@dataclass(frozen=True)
class Endpoints:
    token: str
    device_authorization: str | None = None
    authorization: str | None = None
    issuer: str | None = None


class Discovery:
    """The endpoints of one profile's provider, discovered at most once."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.issuer = str(settings.get("issuer") or "").rstrip("/") or None
        self.explicit = {name: settings.get(name) for name in ENDPOINTS}
        self._found: Endpoints | None = None
        self._lock = threading.Lock()

    def endpoints(self, timeout: float) -> Endpoints:
        with self._lock:
            if self._found is None:
                self._found = self._resolve(timeout)
            return self._found

    def _resolve(self, timeout: float) -> Endpoints:
        given = {k: v for k, v in self.explicit.items() if v}
        doc: Mapping[str, Any] = {}
        if self.issuer and "token_endpoint" not in given:
            doc = self._document(timeout)
        merged = {name: given.get(name) or doc.get(name) for name in ENDPOINTS}
        token = merged["token_endpoint"]
        if not isinstance(token, str) or not token:
            raise SourceError("the provider's discovery document names no token_endpoint", retryable=False)
        for name, url in merged.items():
            if url is not None and (not isinstance(url, str) or insecure_reason(url)):
                raise SourceError(f"discovery gave an unusable {name}: {url!r}", retryable=False)
        return Endpoints(
            token=token,
            device_authorization=merged["device_authorization_endpoint"],
            authorization=merged["authorization_endpoint"],
            issuer=self.issuer,
        )

    def _document(self, timeout: float) -> Mapping[str, Any]:
        import requests

        url = f"{self.issuer}{WELL_KNOWN}"
        try:
            # No redirects: the document must come from the issuer itself.
            r = requests.get(url, timeout=max(timeout, 0.05), allow_redirects=False)
        except requests.Timeout:
            raise SourceTimeout(f"OpenID discovery at {url} took longer than {timeout:.1f}s") from None
        except requests.RequestException as e:
            raise SourceError(f"OpenID discovery at {url} failed: {type(e).__name__}") from None
        if r.status_code != 200:
            raise SourceError(
                f"OpenID discovery at {url} answered HTTP {r.status_code}", retryable=r.status_code >= 500
            )
        try:
            doc = r.json() if len(r.content) <= MAX_DOCUMENT else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise SourceError(f"OpenID discovery at {url} did not answer a JSON object", retryable=False)
        if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
            raise SourceError(
                f"OpenID discovery at {url} names another issuer: {doc.get('issuer')!r}", retryable=False
            )
        return doc
