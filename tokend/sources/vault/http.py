"""Vault's HTTP API (``/v1/...``) over requests, every call cut to what is left of one deadline.

Vault and OpenBao speak the same API. Each request carries ``X-Vault-Request``
(Vault's SSRF guard expects it), ``X-Vault-Namespace`` when a namespace is set
and ``X-Vault-Token`` when authenticated; the token never goes into a URL.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tokend.core.errors import SourceError
from tokend.sources.vault.nodes import (
    ELECTION_PAUSE,
    ELECTION_PAUSE_MAX,
    MIN_ATTEMPT,
    REDIRECTS,
    Failure,
    Nodes,
    all_failed,
    short,
)

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

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
    def sealed(self) -> bool:
        return self.status == 503 and "sealed" in self.errors.lower()

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
        if self.sealed:
            return SourceError(f"Vault is sealed at {self.address or 'its address'} ({doing})")
        return SourceError(
            f"Vault answered HTTP {self.status} {doing}: {detail}",
            retryable=not self.refused,
        )


class VaultClient:
    """One fetch's connection to Vault: its nodes, ``namespace``, TLS settings and a deadline.

    ``nodes`` is one address, a list of a cluster's nodes, or a ``Nodes`` kept
    across fetches (so each starts at the node that answered last). A call
    moves on to the next node on a connection error, a timeout, a 5xx or 429,
    or a redirect to a node already tried or not listed; it follows a redirect
    only to a listed node. Any other answer is the answer. When the nodes say
    the cluster has no active node (an election), it walks them again after a
    short pause, while the deadline leaves time for it.
    """

    def __init__(
        self,
        nodes: Nodes | str | Sequence[str],
        *,
        namespace: str | None,
        verify: bool | str,
        deadline: float,
        timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        import requests

        if not isinstance(nodes, Nodes):
            nodes = Nodes([nodes] if isinstance(nodes, str) else list(nodes))
        self.nodes = nodes
        self.namespace = namespace
        self.deadline = deadline
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.verify = verify

    @property
    def address(self) -> str:
        """The node the next call starts at."""
        return self.nodes.current

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
        headers = {"X-Vault-Request": "true", "Accept": "application/json"}
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        if token:
            headers["X-Vault-Token"] = token
        pause = ELECTION_PAUSE
        while True:
            answer, tried, untried = self._walk(method, path, headers, body, params)
            if answer is not None:
                return answer
            left = self.deadline - time.monotonic()
            if untried or not any(t.electing for t in tried) or left < pause + MIN_ATTEMPT:
                raise all_failed([t for t in tried if not t.redirect] or tried, untried, self.timeout)
            # No active node: an election, over in a second or two. Asking again within the
            # deadline spares a cold caller the error; the jitter spreads many daemons out.
            wait = random.uniform(pause / 2, pause)
            log.info("no active Vault node for %s (an election?); asking again in %.2gs", path, wait)
            time.sleep(wait)
            pause = min(pause * 2, ELECTION_PAUSE_MAX)

    def _walk(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> tuple[dict[str, Any] | None, list[Failure], list[str]]:
        """One pass over the nodes: the answer, else what each node tried said and those not tried."""
        queue = self.nodes.order()
        tried: list[Failure] = []
        while queue:
            address = queue.pop(0)
            left = self.deadline - time.monotonic()
            if left <= 0:
                queue.insert(0, address)
                break
            # A hung node must leave time for the others: a fair share, but never less than a
            # couple of seconds (or what is left) so a slow, healthy Vault still gets to answer.
            budget = max(left / (len(queue) + 1), min(left, MIN_ATTEMPT))
            try:
                response = self._send(method, address, path, headers, body, params, budget)
            except Failure as failure:
                tried.append(failure)
                continue
            status = response.status_code
            if status in REDIRECTS:
                location = response.headers.get("Location", "")
                target = self.nodes.listed(location)
                if target is None:
                    note = f"redirected to {short(location)}, which is not listed in address: refused"
                    tried.append(Failure(address, note, unlisted=location))
                elif target in queue:
                    queue.remove(target)
                    queue.insert(0, target)  # the node Vault named, next (it is one of ours)
                    tried.append(Failure(address, f"redirected to {target}", redirect=True))
                else:
                    tried.append(Failure(address, f"redirected to {target}, already tried", dead_end=True))
                continue
            if status >= 500 or status == 429:
                tried.append(Failure(address, "", http=self._http_error(response, path, address)))
                continue
            if tried:
                # A failover at work: say which node stood in for which, once per call.
                log.info(
                    "Vault node %s answered %s after %s",
                    address,
                    path,
                    "; ".join(t.describe() for t in tried),
                )
            self.nodes.answered(address)
            return self._answer(response, path, address), tried, queue
        return None, tried, queue

    def _send(
        self,
        method: str,
        address: str,
        path: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        budget: float,
    ) -> requests.Response:
        import requests

        try:
            return self._session.request(
                method,
                f"{address}/v1/{path.lstrip('/')}",
                headers=dict(headers),
                json=dict(body) if body is not None else None,
                params=dict(params) if params else None,
                timeout=(min(CONNECT_CAP, budget / 2), budget),
                allow_redirects=False,  # a redirect must not carry the token elsewhere
            )
        except requests.Timeout:
            raise Failure(address, f"no answer within {budget:.3g}s", timeout=True) from None
        except requests.exceptions.SSLError:
            raise Failure(address, "TLS failed (certificate not trusted? set ca_bundle)", tls=True) from None
        except requests.RequestException as e:
            raise Failure(
                address, f"unreachable ({type(e).__name__})", unreachable=type(e).__name__
            ) from None

    @staticmethod
    def _http_error(response: requests.Response, path: str, address: str) -> VaultHttpError:
        try:
            doc = response.json()
        except ValueError:
            doc = None
        return VaultHttpError(response.status_code, _errors(doc), path, doc, address)

    @staticmethod
    def _answer(response: requests.Response, path: str, address: str) -> dict[str, Any]:
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
        raise VaultHttpError(response.status_code, _errors(doc), path, doc, address)


def _errors(doc: Any) -> str:
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ""
    text = "; ".join(" ".join(str(e).split()) for e in errors if e)
    text = _MULTIERROR.sub("", text)  # "1 error occurred: * permission denied": Go's multierror wrapping
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
