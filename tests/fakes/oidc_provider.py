"""A real OpenID provider (npm ``oidc-provider``) run by tests: ``oidc_provider(clients)``.

scripts/test installs the package into ``.cache/oidc-provider``; ``unavailable()``
says why it cannot run here (tests skip, or fail when TOKEND_REQUIRE_E2E=1).
The provider keeps its state in memory and signs with development keys; it
accepts only the clients given, each with its exact secret and auth method.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / ".cache" / "oidc-provider" / "node_modules" / "oidc-provider"
SCRIPT = Path(__file__).with_suffix(".mjs")
RESOURCE = "https://gateway.example.test"


def unavailable() -> str | None:
    if not shutil.which("node"):
        return "node is not installed"
    if not (PACKAGE / "package.json").is_file():
        return f"oidc-provider is not installed in {PACKAGE.parent} (scripts/test installs it)"
    return None


def require() -> None:
    """Skip the test when the provider cannot run (fail instead in CI, TOKEND_REQUIRE_E2E=1)."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("TOKEND_REQUIRE_E2E") == "1":
        pytest.fail(f"TOKEND_REQUIRE_E2E=1 but the OpenID provider cannot run: {reason}")
    pytest.skip(reason)


def node_flags() -> list[str]:
    """Node 18 (Debian 12's) keeps the Web Crypto global oidc-provider (jose) uses behind a flag."""
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30, check=False)
    major = version.stdout.strip().lstrip("v").partition(".")[0]
    return ["--experimental-global-webcrypto"] if major.isdigit() and int(major) < 19 else []


@dataclass
class Provider:
    issuer: str
    proc: subprocess.Popen[str]
    log: Path

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def grants(self, grant_type: str) -> int:
        """Tokens issued so far for ``grant_type`` (the provider logs each)."""
        return self.log_text().count(f"grant.success {grant_type}\n")


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def confidential(
    client_id: str,
    secret: str,
    auth: str = "client_secret_basic",
    grants: Sequence[str] = ("client_credentials",),
) -> dict[str, Any]:
    """A confidential client that authenticates with ``secret`` by ``auth`` only."""
    return {
        "client_id": client_id,
        "client_secret": secret,
        "grant_types": list(grants),
        "redirect_uris": [],
        "response_types": [],
        "token_endpoint_auth_method": auth,
        "scope": "ai.invoke",
    }


@contextmanager
def oidc_provider(
    clients: Sequence[Mapping[str, Any]],
    *,
    access_ttl: int = 600,
    exchange: Mapping[str, Sequence[str]] | None = None,
    device_code_ttl: int = 600,
    resources: Sequence[str] = (RESOURCE,),
    clock_offset: int = 0,
) -> Iterator[Provider]:
    """The provider, serving ``clients``; ``exchange``: client → the clients whose tokens it may exchange;
    ``resources``: the APIs it issues JWT access tokens for (the first is the one token exchange checks);
    ``clock_offset``: seconds the provider's clock is off (negative: behind this machine's)."""
    require()
    with tempfile.TemporaryDirectory(prefix="tokend-oidc-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(
            json.dumps(
                {
                    "clients": list(clients),
                    "resources": list(resources),
                    "accessTokenTTL": access_ttl,
                    "exchange": {k: list(v) for k, v in (exchange or {}).items()},
                    "deviceCodeTTL": device_code_ttl,
                    "clockOffset": clock_offset,
                }
            )
        )
        log = Path(tmp) / "provider.log"
        env = {**os.environ, "OIDC_PROVIDER_DIR": str(PACKAGE), "NODE_NO_WARNINGS": "1"}
        with log.open("w") as err:
            proc = subprocess.Popen(
                ["node", *node_flags(), str(SCRIPT), str(config)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("listening "):
                proc.kill()
                proc.wait()
                raise AssertionError(f"oidc-provider did not start: {line!r}\n{log.read_text()}")
            yield Provider(issuer=line.split()[1], proc=proc, log=log)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def public_device_client(client_id: str) -> dict[str, Any]:
    """A public client (no secret) for the device grant, with refresh tokens (rotated on every use)."""
    return {
        "client_id": client_id,
        "token_endpoint_auth_method": "none",
        "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        "response_types": [],
        "redirect_uris": [],
    }


def approve_device(
    verification_uri: str, user_code: str, *, user: str = "alice", timeout: float = 30
) -> None:
    """Do what the person does in the browser: the provider's own pages (devInteractions), step by step.

    Enter the code, confirm it, sign in as ``user`` (devInteractions takes any
    name), consent. Each page's form is read and posted as a browser would.
    """
    import requests

    session = requests.Session()
    page = session.get(verification_uri, timeout=timeout)
    for _ in range(8):
        if "<title>Sign-in Success</title>" in page.text:
            return
        form = re.search(r'<form[^>]*action="([^"]*)"', page.text)
        assert form, f"no form on {page.url}: {page.text[:300]}"
        action = urljoin(page.url, html.unescape(form.group(1)))
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(r'<input[^>]*name="([^"]+)"(?:[^>]*value="([^"]*)")?', page.text)
        }
        if "user_code" in fields and not fields["user_code"]:
            fields["user_code"] = user_code
        if "login" in fields:
            fields.update(login=user, password="any")
        if "confirm" in page.text and "xsrf" in fields and "user_code" in fields and fields["user_code"]:
            fields["confirm"] = "yes"
        page = session.post(action, data=fields, timeout=timeout)
        assert page.status_code == 200, (page.status_code, page.url, page.text[:300])
    raise AssertionError(f"the device approval did not finish: {page.url}")


def refuse_device(verification_uri: str, user_code: str, *, timeout: float = 30) -> None:
    """The person enters the code and then aborts (the provider's "Cancel")."""
    import requests

    session = requests.Session()
    page = session.get(verification_uri, timeout=timeout)
    for _ in range(4):
        form = re.search(r'<form[^>]*action="([^"]*)"', page.text)
        assert form, page.text[:300]
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
        fields.setdefault("user_code", user_code)
        if not fields["user_code"]:
            fields["user_code"] = user_code
        if "abort" in page.text:
            fields["abort"] = "yes"
            session.post(urljoin(page.url, html.unescape(form.group(1))), data=fields, timeout=timeout)
            return
        page = session.post(urljoin(page.url, html.unescape(form.group(1))), data=fields, timeout=timeout)
    raise AssertionError("no abort button on the device pages")


def public_native_client(client_id: str) -> dict[str, Any]:
    """A public native client (authorization code + PKCE) whose redirect is 127.0.0.1 on any port."""
    return {
        "client_id": client_id,
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": ["http://127.0.0.1/callback"],
    }


def approve_browser(url: str, *, user: str = "alice", timeout: float = 30) -> str:
    """Do what the person does in the browser for an authorization URL: sign in, consent, follow the
    redirect back to the loopback listener. Returns that listener's page."""
    import requests

    session = requests.Session()
    page = session.get(url, timeout=timeout)
    for _ in range(6):
        if urlsplit(page.url).path == "/callback":
            return page.text
        form = re.search(r'<form[^>]*action="([^"]*)"', page.text)
        assert form, f"no form on {page.url}: {page.text[:300]}"
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
        if 'name="login"' in page.text:
            fields.update(login=user, password="any")
        page = session.post(urljoin(page.url, html.unescape(form.group(1))), data=fields, timeout=timeout)
    raise AssertionError(f"the browser sign-in did not finish: {page.url}")


def device_login(
    issuer: str,
    client_id: str,
    *,
    scope: str,
    resource: str | None = None,
    user: str = "alice",
    timeout: float = 30,
) -> dict[str, Any]:
    """A device sign-in done by hand, outside tokend (as a person would with another tool): the
    token response, with its refresh token."""
    import time

    import requests

    doc = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=timeout).json()
    grant = requests.post(
        doc["device_authorization_endpoint"],
        data={"client_id": client_id, "scope": scope, **({"resource": resource} if resource else {})},
        timeout=timeout,
    ).json()
    approve_device(grant["verification_uri"], grant["user_code"], user=user, timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = requests.post(
            doc["token_endpoint"],
            data={
                "client_id": client_id,
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": grant["device_code"],
            },
            timeout=timeout,
        ).json()
        if answer.get("error") not in ("authorization_pending", "slow_down"):
            assert "refresh_token" in answer, answer
            return dict(answer)
        time.sleep(0.2)
    raise AssertionError("the scripted device sign-in did not finish")


def refuse_browser(url: str, *, timeout: float = 30) -> str:
    """The person opens the authorization URL and clicks the provider's "[ Cancel ]": the provider
    redirects to the loopback listener with ``error=access_denied``. Returns the listener's page."""
    import requests

    session = requests.Session()
    page = session.get(url, timeout=timeout)
    cancel = re.search(r'<a href="([^"]*/abort)">\[ Cancel \]</a>', page.text)
    assert cancel, f"no Cancel link on {page.url}: {page.text[:300]}"
    page = session.get(urljoin(page.url, html.unescape(cancel.group(1))), timeout=timeout)
    assert urlsplit(page.url).path == "/callback", page.url
    return page.text
