"""The daemon's own endpoints (``[endpoints]`` in the config), for tools started outside tokend.

A real ``tokend serve``; ``tokend endpoints env`` gives the variables, and
real SDK scripts (boto3 against moto, google-auth, azure-identity) and the
raw-HTTP probe of test_endpoints_security.py use them exactly as a shell
that ran ``eval "$(tokend endpoints env)"`` would.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from tests.fakes.aws_moto import ACCOUNT, BASE_KEY_ID, MotoServer
from tests.fakes.entra import az_log
from tests.fakes.google import FakeGoogle, fake_google

from .conftest import Sandbox
from .test_endpoints_aws import CALLER, DEFAULT_KEY, ENV_KEY, TOML, env_for, served_keys, write
from .test_endpoints_sdks import AZURE_SCRIPT, GOOGLE_SCRIPT, api
from .test_endpoints_security import OTHER_UID, PROBE, setup_google_azure, status

ENDPOINTS_GA = '\n[endpoints]\ngoogle = "vertex"\nazure = "foundry"\n'


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


def dotenv(sandbox: Sandbox, env: dict[str, str]) -> dict[str, str]:
    """What ``tokend endpoints env --format dotenv`` says to set."""
    r = sandbox.tokend("endpoints", "env", "--format", "dotenv", env=env)
    assert r.status == 0 and r.err == "", r
    pairs = (line.split("=", 1) for line in r.out.splitlines() if line)
    return {k: v.strip('"') for k, v in pairs}


def endpoint_rows(sandbox: Sandbox, env: dict[str, str]) -> dict[str, dict[str, object]]:
    served = sandbox.status(env)["endpoints"]
    assert isinstance(served, list)
    return {str(row["cloud"]): dict(row) for row in served}


@pytest.mark.timeout(120)
def test_google_auth_and_azure_identity_through_the_daemon(sandbox: Sandbox, google: FakeGoogle) -> None:
    env = setup_google_azure(sandbox, google)
    sandbox.write_config(sandbox.config_path.read_text() + ENDPOINTS_GA)
    sandbox.start_daemon(env)
    shell = {**env, **dotenv(sandbox, env)}
    assert set(shell) >= {"GCE_METADATA_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"}
    g, a = sandbox.root / "g.py", sandbox.root / "az.py"
    g.write_text(GOOGLE_SCRIPT)
    a.write_text(AZURE_SCRIPT)
    with api(google.tokens) as server:
        r = sandbox.run([sys.executable, str(g), server.url], env=shell, timeout=60)
    assert r.status == 0, r
    doc = json.loads(r.out.splitlines()[-1])
    assert doc["type"] == "google.auth.compute_engine.credentials.Credentials"
    assert doc["status"] == 200 and doc["email"] == "vertex@proj.iam.gserviceaccount.com"
    assert len(google.tokens()) == 1  # the daemon's one fetch
    with api(lambda: az_log(sandbox.home / ".azure")) as server:
        r = sandbox.run([sys.executable, str(a), server.url], env=shell, timeout=60)
    assert r.status == 0, r
    doc = json.loads(r.out.splitlines()[-1])
    assert doc["managed"]["status"] == 200 and doc["default"]["status"] == 200
    rows = endpoint_rows(sandbox, env)
    assert rows["google"]["profile"] == "vertex" and int(rows["google"]["requests"]) >= 2  # type: ignore[call-overload]
    assert rows["azure"]["profile"] == "foundry" and int(rows["azure"]["requests"]) >= 2  # type: ignore[call-overload]
    assert all("token" not in json.dumps(row).lower() for row in rows.values())
    text = sandbox.tokend("status", env=env)
    assert text.status == 0 and "endpoint google (vertex) http://127.0.0.1:" in text.out, text


ID_TOKEN_SCRIPT = (
    "import json, sys, google.auth.transport.requests as r, google.oauth2.id_token as i\n"
    "print(i.fetch_id_token(r.Request(), sys.argv[1]))\n"
)


@pytest.mark.timeout(120)
def test_google_auth_fetch_id_token_through_the_daemon(sandbox: Sandbox, google: FakeGoogle) -> None:
    env = setup_google_azure(sandbox, google)
    sandbox.write_config(sandbox.config_path.read_text() + ENDPOINTS_GA)
    sandbox.start_daemon(env)
    shell = {**env, **dotenv(sandbox, env)}
    script = sandbox.root / "idt.py"
    script.write_text(ID_TOKEN_SCRIPT)
    audience = "https://service-abc.a.run.app"
    r = sandbox.run([sys.executable, str(script), audience], env=shell, timeout=60)
    assert r.status == 0, r
    token = r.out.strip()
    assert google.tokens("id") == [token]  # what the fake Google issued to tokend
    issued = google.find(token)
    assert issued is not None and issued.detail.get("audience") == audience
    assert issued.principal == "vertex@proj.iam.gserviceaccount.com"
    again = sandbox.run([sys.executable, str(script), audience], env=shell, timeout=60)
    assert again.status == 0 and again.out.strip() == token  # from the daemon's cache


@pytest.mark.timeout(120)
def test_daemon_endpoints_refuse_what_they_must(sandbox: Sandbox, google: FakeGoogle) -> None:
    env = setup_google_azure(sandbox, google)
    sandbox.write_config(sandbox.config_path.read_text() + ENDPOINTS_GA)
    sandbox.start_daemon(env)
    shell = {**env, **dotenv(sandbox, env)}
    probe = sandbox.root / "probe.py"
    probe.write_text(PROBE)
    r = sandbox.run([sys.executable, str(probe), "self", *OTHER_UID], env=shell, timeout=100)
    assert r.status == 0, r
    doc = json.loads(r.out)
    assert status(doc, "google_ok") == 200
    assert status(doc, "google_no_flavor") == 403 and status(doc, "google_rebind") == 403
    assert status(doc, "azure_ok") == 200
    assert status(doc, "azure_no_header") == 401 and status(doc, "azure_wrong_header") == 403
    assert status(doc, "azure_rebind") == 403 and status(doc, "azure_unknown") == 404
    other = doc["other_uid"]
    assert isinstance(other, dict) and set(other) == {"google_ok", "azure_ok"}, doc["other_uid_err"]
    for case, answer in other.items():
        assert answer[0] == 403, (case, answer)


@pytest.mark.timeout(120)
def test_reload_keeps_unchanged_endpoints_stops_removed_ones(sandbox: Sandbox, google: FakeGoogle) -> None:
    env = setup_google_azure(sandbox, google)
    base = sandbox.config_path.read_text()
    sandbox.write_config(base + ENDPOINTS_GA)
    sandbox.start_daemon(env)
    before = dotenv(sandbox, env)
    sandbox.write_config(base + '\n[endpoints]\ngoogle = "vertex"\n')
    assert sandbox.tokend("reload", env=env).status == 0
    after = dotenv(sandbox, env)
    assert after["GCE_METADATA_HOST"] == before["GCE_METADATA_HOST"]  # shells that exported it still work
    assert "IDENTITY_ENDPOINT" not in after
    port = int(before["IDENTITY_ENDPOINT"].split(":")[2].split("/")[0])
    assert eventually_refused(port)


def eventually_refused(port: int, within: float = 20.0) -> bool:
    """Whether connecting to 127.0.0.1:``port`` is refused within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.timeout(90)
def test_a_fixed_port_in_use_is_one_line_naming_it(sandbox: Sandbox, google: FakeGoogle) -> None:
    env = setup_google_azure(sandbox, google)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sandbox.write_config(
            sandbox.config_path.read_text() + ENDPOINTS_GA + f"ports = {{ google = {port} }}\n"
        )
        sandbox.start_daemon(env)
        r = sandbox.tokend("endpoints", "env", env=env)
        assert r.status == 0, r
        assert r.err_lines == [f"tokend: endpoints.google: port {port} on 127.0.0.1 is in use: not served"]
        assert "IDENTITY_ENDPOINT=" in r.out and "GCE_METADATA_HOST" not in r.out.replace("unset", "")
        rows = endpoint_rows(sandbox, env)
        assert f"port {port}" in str(rows["google"]["error"]) and "url" in rows["azure"]


@pytest.mark.timeout(120)
def test_boto3_through_the_daemon_signs_with_the_role_keys(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML + '\n[endpoints]\naws = "role"\n')
    env = env_for(sandbox, moto)
    moto.reset_recording()
    sandbox.start_daemon(env)
    shell = {**env, **dotenv(sandbox, env)}
    # The shell's static keys and profile are what the printed ``unset`` removes; the
    # files' [default] keys would still come first in botocore's chain: none here.
    for var in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        shell.pop(var)
    empty = sandbox.root / "no-credentials"
    empty.write_text("")
    shell["AWS_SHARED_CREDENTIALS_FILE"] = str(empty)
    sandbox.run(["sh", "-c", "rm -f ~/.aws/credentials"], env=shell)
    script = write(sandbox, "caller.py", CALLER)
    r = sandbox.run([sys.executable, script], env=shell, timeout=60)
    assert r.status == 0, r
    doc = json.loads(r.out)
    assert doc["method"] == "container-role" and doc["account"] == ACCOUNT
    assumed, callers = served_keys(moto)
    assert len(assumed) == 1 and assumed[0]["_signer"] == BASE_KEY_ID
    assert callers == [doc["key"]] and doc["key"] not in (BASE_KEY_ID, DEFAULT_KEY, ENV_KEY)
    shell_text = sandbox.tokend("endpoints", "env", env=env).out
    assert shell_text.startswith("unset ") and "AWS_PROFILE" in shell_text.splitlines()[0]
    assert endpoint_rows(sandbox, env)["aws"]["requests"] == 1
    # AccountId: the role's account, which the SDKs expose (botocore's account_id).
    import urllib.request

    req = urllib.request.Request(
        shell["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        headers={"Authorization": shell["AWS_CONTAINER_AUTHORIZATION_TOKEN"]},
    )
    with urllib.request.urlopen(req, timeout=20) as answer:
        assert json.loads(answer.read())["AccountId"] == ACCOUNT
