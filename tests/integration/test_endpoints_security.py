"""The endpoints' security rules, probed from inside CMD and from another uid.

CMD runs ``PROBE``: raw HTTP requests (stdlib ``http.client``, so the Host
header and tokens are exactly what the test says) against each endpoint
named in its environment, and the same requests from uid 1234 through
``setpriv``. Google and Azure use a fake Google (a service account) and a fake
``az``; AWS is probed in test_endpoints_aws.py with the same script.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.azure_env import AZURE_VARS
from tests.fakes.entra import az_log, install_fake_az
from tests.fakes.google import FakeGoogle, fake_google

from .conftest import Sandbox

OTHER_UID = ["setpriv", "--reuid", "1234", "--regid", "1234", "--clear-groups", "/usr/bin/python3", "-c"]

#: Runs as CMD (and, with argv[1] == "other", as uid 1234 from CMD): one JSON
#: object, case name -> [status or error, Metadata-Flavor answered, body].
PROBE = textwrap.dedent(
    """\
    import http.client, json, os, subprocess, sys, urllib.parse

    def get(hostport, path, headers, host=None, method="GET"):
        h, p = hostport.rsplit(":", 1)
        c = http.client.HTTPConnection(h, int(p), timeout=20)
        try:
            c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            c.putheader("Host", host or hostport)
            for k, v in headers.items():
                c.putheader(k, v)
            c.endheaders()
            r = c.getresponse()
            return [r.status, r.getheader("Metadata-Flavor"), r.read().decode(errors="replace")]
        except Exception as e:
            return [type(e).__name__, None, str(e)]
        finally:
            c.close()

    env, out = os.environ, {}
    other = sys.argv[1:] == ["other"]
    if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        u = urllib.parse.urlsplit(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
        hp, tok = u.netloc, {"Authorization": env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]}
        out["aws_ok"] = get(hp, u.path, tok)
        if not other:
            out["aws_no_token"] = get(hp, u.path, {})
            out["aws_wrong_token"] = get(hp, u.path, {"Authorization": "x" + tok["Authorization"][1:]})
            out["aws_rebind"] = get(hp, u.path, tok, host="attacker.example:" + hp.rsplit(":", 1)[1])
            out["aws_unknown"] = get(hp, "/latest/meta-data/", tok)
            out["aws_big"] = get(hp, u.path, {**tok, "X-Pad": "a" * 20000})
    if env.get("GCE_METADATA_HOST"):
        hp, fl = env["GCE_METADATA_HOST"], {"Metadata-Flavor": "Google"}
        tp = "/computeMetadata/v1/instance/service-accounts/default/token"
        out["google_ok"] = get(hp, tp, fl)
        if not other:
            out["google_ping"] = get(hp, "/", fl)
            out["google_no_flavor"] = get(hp, tp, {})
            out["google_rebind"] = get(hp, tp, fl, host="metadata.google.internal")
            out["google_unknown"] = get(hp, "/computeMetadata/v1/instance/disks/", fl)
            out["google_email"] = get(hp, "/computeMetadata/v1/instance/service-accounts/default/email", fl)
            out["google_project"] = get(hp, "/computeMetadata/v1/project/project-id", fl)
            out["google_other_scopes"] = get(hp, tp + "?scopes=https://www.googleapis.com/auth/other", fl)
            out["google_token_again"] = get(hp, tp, fl)
    if env.get("IDENTITY_ENDPOINT"):
        u = urllib.parse.urlsplit(env["IDENTITY_ENDPOINT"])
        hp, hdr = u.netloc, {"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]}
        path = u.path + "?api-version=2019-08-01&resource=https://vault.azure.net"
        out["azure_ok"] = get(hp, path, hdr)
        if not other:
            out["azure_no_header"] = get(hp, path, {})
            out["azure_wrong_header"] = get(hp, path, {"X-IDENTITY-HEADER": "nope"})
            out["azure_rebind"] = get(hp, path, hdr, host="localhost:" + hp.rsplit(":", 1)[1])
            out["azure_unknown"] = get(hp, "/metadata/identity/oauth2/token", hdr)
            out["azure_client_id"] = get(hp, path + "&client_id=someone-else", hdr)
            out["azure_post"] = get(hp, path, hdr, method="POST")
    if not other:
        me = open(__file__).read()
        r = subprocess.run(sys.argv[2:] + [me, "other"], capture_output=True, timeout=60)
        out["other_uid"] = json.loads(r.stdout or b"{}")
        out["other_uid_err"] = r.stderr.decode(errors="replace")[-500:]
    print(json.dumps(out))
    """
)


def run_probe(sandbox: Sandbox, endpoints: list[str], env: dict[str, str]) -> dict[str, object]:
    script = sandbox.root / "probe.py"
    script.write_text(PROBE)
    args = [a for e in endpoints for a in ("--endpoint", e)]
    r = sandbox.tokend(
        "exec", *args, "--", sys.executable, str(script), "self", *OTHER_UID, env=env, timeout=100
    )
    assert r.status == 0, r
    doc: dict[str, object] = json.loads(r.out)
    return doc


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


def setup_google_azure(sandbox: Sandbox, google: FakeGoogle) -> dict[str, str]:
    key = sandbox.root / "sa.json"
    key.write_text(json.dumps(google.service_account("vertex@proj.iam.gserviceaccount.com")))
    key.chmod(0o600)
    sandbox.write_config(
        f'[profiles.vertex]\nsource = "google"\ncredentials_file = "{key}"\ntimeout = "3s"\n'
        '[profiles.foundry]\nsource = "azure"\ncredential = "cli"\n'
        'scopes = ["https://vault.azure.net/.default"]\n'
    )
    env = sandbox.env()
    for var in (*AZURE_VARS, "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST"):
        env.pop(var, None)
    bin_dir = sandbox.root / "bin"
    az = install_fake_az(bin_dir, sys.executable)
    env["PATH"] = f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"
    import subprocess

    subprocess.run([str(az), "login", "--user", "alice@tokend.test"], env=env, check=True, timeout=30)
    return env


def status(doc: dict[str, object], case: str) -> object:
    value = doc[case]
    assert isinstance(value, list), (case, value)
    return value[0]


@pytest.mark.timeout(120)
def test_google_and_azure_endpoints_refuse_what_they_must(sandbox: Sandbox, google: FakeGoogle) -> None:
    env = setup_google_azure(sandbox, google)
    first = sandbox.tokend("get", "vertex", "--no-daemon", env=env)  # into the shared file cache
    assert first.status == 0, first
    google.hang("/token")  # from now on Google's token endpoint never answers
    doc = run_probe(sandbox, ["google=vertex", "azure=foundry"], env)

    assert status(doc, "google_ok") == 200
    assert json.loads(doc["google_ok"][2])["access_token"] == google.tokens()[0]  # type: ignore[index]
    assert status(doc, "google_ping") == 200 and doc["google_ping"][1] == "Google"  # type: ignore[index]
    assert status(doc, "google_no_flavor") == 403 and doc["google_no_flavor"][1] == "Google"  # type: ignore[index]
    assert status(doc, "google_rebind") == 403
    assert status(doc, "google_unknown") == 404
    assert doc["google_email"][2] == "vertex@proj.iam.gserviceaccount.com"  # type: ignore[index]
    assert doc["google_project"][2] == "proj"  # type: ignore[index]
    # The upstream failing: a retryable status with tokend's line, and CMD carries on.
    failed = doc["google_other_scopes"]
    assert isinstance(failed, list) and failed[0] == 503 and failed[2].startswith("tokend: vertex: "), failed
    assert status(doc, "google_token_again") == 200

    assert status(doc, "azure_ok") == 200
    assert json.loads(doc["azure_ok"][2])["access_token"] == az_log(sandbox.home / ".azure")[0]  # type: ignore[index]
    assert status(doc, "azure_no_header") == 401
    assert status(doc, "azure_wrong_header") == 403
    assert status(doc, "azure_rebind") == 403
    assert status(doc, "azure_unknown") == 404
    assert status(doc, "azure_client_id") == 400
    assert status(doc, "azure_post") == 405
    assert json.loads(doc["azure_no_header"][2])["statusCode"] == 401  # type: ignore[index]

    other = doc["other_uid"]
    assert isinstance(other, dict) and set(other) == {"google_ok", "azure_ok"}, doc["other_uid_err"]
    for case, answer in other.items():
        assert answer[0] == 403, (case, answer)
        assert "token" not in answer[2] and "az-" not in answer[2], (case, answer)
