"""Vault's HTTP API (``/v1/...``) over requests, every call cut to what is left of one deadline.

Vault and OpenBao speak the same API. Each request carries ``X-Vault-Request``
(Vault's SSRF guard expects it), ``X-Vault-Namespace`` when a namespace is set
and ``X-Vault-Token`` when authenticated; the token never goes into a URL.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tokend.core.errors import SourceError, SourceTimeout

if TYPE_CHECKING:
    import requests

CONNECT_CAP = 5.0
_MULTIERROR = re.compile(r"^\d+ errors? occurred: \* ")
MAX_MESSAGE = 300


class VaultHttpError(Exception):
    """Vault answered with an error status; ``errors`` is its ``errors`` list, joined."""

    def __init__(self, status: int, errors: str, path: str, doc: Any = None, address: str = "") -> None:
        super().__init__(f"HTTP {status} for {path}: {errors}")
        self.status = status
        self.errors = errors
        self.path = path
        self.address = address
        self.doc = doc  # the JSON body, if any: a KV v2 404 says there whether the version was deleted

    @property
    def denied(self) -> bool:
        return self.status == 403

    @property
    def refused(self) -> bool:
        """A definite no (bad request, denied, not found), as opposed to Vault being unwell."""
        return self.status in (400, 403, 404, 405)

    def to_tokend(self, doing: str) -> SourceError:
        detail = self.errors or "no error details"
        if self.status == 403:
            return SourceError(
                f"permission denied {doing}: {detail} "
                f"(check that the token's policies allow it on {self.path})",
                retryable=False,
            )
        if self.status == 503 and "sealed" in detail.lower():
            return SourceError(f"Vault is sealed at {self.address or 'its address'} ({doing})")
        return SourceError(
            f"Vault answered HTTP {self.status} {doing}: {detail}",
            retryable=not self.refused,
        )


class VaultClient:
    """One fetch's connection to Vault: ``address``, ``namespace``, TLS settings and a deadline."""

    def __init__(
        self,
        address: str,
        *,
        namespace: str | None,
        verify: bool | str,
        deadline: float,
        timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        import requests

        self.address = address.rstrip("/")
        self.namespace = namespace
        self.deadline = deadline
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.verify = verify

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON answer of ``method /v1/path`` (``{}`` for 204), or VaultHttpError / a tokend error."""
        import requests

        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SourceTimeout(f"Vault at {self.address} did not answer within {self.timeout:g}s")
        headers = {"X-Vault-Request": "true", "Accept": "application/json"}
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        if token:
            headers["X-Vault-Token"] = token
        try:
            response = self._session.request(
                method,
                f"{self.address}/v1/{path.lstrip('/')}",
                headers=headers,
                json=dict(body) if body is not None else None,
                params=dict(params) if params else None,
                timeout=(min(CONNECT_CAP, left / 2), left),
                allow_redirects=False,  # a redirect must not carry the token elsewhere
            )
        except requests.Timeout:
            raise SourceTimeout(f"Vault at {self.address} did not answer within {self.timeout:g}s") from None
        except requests.exceptions.SSLError:
            raise SourceError(
                f"TLS to Vault at {self.address} failed (certificate not trusted? set ca_bundle)",
                retryable=False,
            ) from None
        except requests.RequestException as e:
            raise SourceError(f"cannot reach Vault at {self.address}: {type(e).__name__}") from None
        if response.status_code == 204:
            return {}
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if 200 <= response.status_code < 300:
            if not isinstance(doc, dict):
                raise SourceError(f"Vault answered {path} with something other than JSON")
            return doc
        raise VaultHttpError(response.status_code, _errors(doc), path, doc, self.address)


def _errors(doc: Any) -> str:
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ""
    text = "; ".join(" ".join(str(e).split()) for e in errors if e)
    text = _MULTIERROR.sub("", text)  # "1 error occurred: * permission denied": Go's multierror wrapping
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
