"""Real SDK clients under ``tokend exec --endpoint``: google-auth and azure-identity.

Each script gets its token the SDK's own default way, then calls a local API
fake that answers only a request bearing a token tokend fetched upstream (the
fake Google's issued tokens, the fake ``az``'s log). The user's own settings
that would otherwise come first in each chain are planted and must lose.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.fakes.entra import az_log
from tests.fakes.google import FakeGoogle, fake_google
from tests.fakes.server import LocalHTTPServer

from .conftest import Sandbox
from .test_endpoints_security import setup_google_azure


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


def api(accepted: Callable[[], list[str]]) -> LocalHTTPServer:
    """A protected API: 200 only with ``Authorization: Bearer T`` for T in ``accepted()``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            ok = auth.startswith("Bearer ") and auth[7:] in accepted()
            body = json.dumps({"ok": ok}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return LocalHTTPServer(Handler)


GOOGLE_SCRIPT = textwrap.dedent(
    """\
    import json, sys, google.auth
    from google.auth.transport.requests import AuthorizedSession
    creds, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    r = AuthorizedSession(creds).get(sys.argv[1] + "/v1/projects/" + str(project))
    print(json.dumps({"type": type(creds).__module__ + "." + type(creds).__name__, "project": project,
                      "status": r.status_code, "email": creds.service_account_email}))
    """
)

AZURE_SCRIPT = textwrap.dedent(
    """\
    import json, sys, time, urllib.request
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
    out = {}
    for name, cred, scope in (
        ("managed", ManagedIdentityCredential(), "https://vault.azure.net/.default"),
        ("default", DefaultAzureCredential(), "https://management.azure.com/.default"),
    ):
        token = cred.get_token(scope)
        auth = {"Authorization": "Bearer " + token.token}
        req = urllib.request.Request(sys.argv[1] + "/resource", headers=auth)
        with urllib.request.urlopen(req, timeout=10) as r:
            out[name] = {"status": r.status, "token": token.token, "left": token.expires_on - time.time()}
    print(json.dumps(out))
    """
)


@pytest.mark.timeout(120)
def test_google_auth_default_uses_the_endpoint(sandbox: Sandbox, google: FakeGoogle) -> None:
    env = setup_google_azure(sandbox, google)
    # What must lose: an ADC file in the user's gcloud config and GOOGLE_APPLICATION_CREDENTIALS.
    gcloud = sandbox.home / "gcloud"
    gcloud.mkdir(mode=0o700)
    (gcloud / "application_default_credentials.json").write_text(json.dumps(google.authorized_user()))
    other = sandbox.root / "other-sa.json"
    other.write_text(json.dumps(google.service_account("other@proj.iam.gserviceaccount.com", key=1)))
    env.update(CLOUDSDK_CONFIG=str(gcloud), GOOGLE_APPLICATION_CREDENTIALS=str(other))
    script = sandbox.root / "g.py"
    script.write_text(GOOGLE_SCRIPT)
    with api(google.tokens) as server:
        r = sandbox.tokend(
            "exec",
            "--endpoint",
            "google=vertex",
            "--",
            sys.executable,
            str(script),
            server.url,
            env=env,
            timeout=90,
        )
    assert r.status == 0, r
    doc = json.loads(r.out.splitlines()[-1])
    assert doc["type"] == "google.auth.compute_engine.credentials.Credentials"
    assert doc["status"] == 200 and doc["project"] == "proj"
    assert doc["email"] == "vertex@proj.iam.gserviceaccount.com"
    assert len(google.tokens()) == 1  # tokend's one fetch; the SDK never reached Google itself
    assert google.find(google.tokens()[0]).principal == "vertex@proj.iam.gserviceaccount.com"  # type: ignore[union-attr]


@pytest.mark.timeout(120)
def test_azure_identity_managed_and_default_use_the_endpoint(sandbox: Sandbox, google: FakeGoogle) -> None:
    env = setup_google_azure(sandbox, google)
    # What must lose in DefaultAzureCredential: a service principal in the environment.
    env.update(
        AZURE_CLIENT_ID="planted", AZURE_CLIENT_SECRET="planted-secret", AZURE_TENANT_ID="planted-tenant"
    )
    script = sandbox.root / "az.py"
    script.write_text(AZURE_SCRIPT)
    with api(lambda: az_log(sandbox.home / ".azure")) as server:
        r = sandbox.tokend(
            "exec",
            "--endpoint",
            "azure=foundry",
            "--",
            sys.executable,
            str(script),
            server.url,
            env=env,
            timeout=90,
        )
    assert r.status == 0, r
    doc = json.loads(r.out.splitlines()[-1])
    issued = az_log(sandbox.home / ".azure")
    assert len(issued) == 2  # one per resource, each fetched once
    assert doc["managed"]["status"] == 200 and doc["managed"]["token"] == issued[0]
    assert doc["default"]["status"] == 200 and doc["default"]["token"] == issued[1]
    assert 3000 < doc["managed"]["left"] <= 3600
    log = (sandbox.home / ".azure" / "fake-az.log").read_text()
    assert "https://management.azure.com" in log


@pytest.mark.timeout(120)
def test_gcloud_inside_cmd_sees_a_private_empty_config(sandbox: Sandbox, google: FakeGoogle) -> None:
    import shutil

    gcloud = shutil.which("gcloud")
    if gcloud is None:
        pytest.skip("gcloud is not installed")
    env = setup_google_azure(sandbox, google)
    mine = sandbox.home / "gcloud"
    mine.mkdir(mode=0o700)
    (mine / "application_default_credentials.json").write_text(json.dumps(google.authorized_user()))
    env["CLOUDSDK_CONFIG"] = str(mine)
    script = "gcloud auth list --format=json; gcloud config get-value project; echo $CLOUDSDK_CONFIG"
    r = sandbox.tokend("exec", "--endpoint", "google=vertex", "--", "sh", "-c", script, env=env, timeout=100)
    assert r.status == 0, r
    accounts, project, config_dir = r.out.strip().rsplit("\n", 2)
    assert json.loads(accounts) == []  # no account: gcloud's own sign-ins are not visible
    assert project == "proj"  # CLOUDSDK_CORE_PROJECT
    assert config_dir != str(mine) and not Path(config_dir).exists()  # removed with CMD
