"""``tokend exec --endpoint aws=PROFILE``: boto3 and the AWS CLI under it, against moto.

The tokend profile assumes a role at moto with the base keys; CMD's calls must
be signed with the role's keys, which only the endpoint hands out, even with a
``[default]`` profile, ``AWS_PROFILE`` and ``AWS_ACCESS_KEY_ID`` planted in the
environment and files CMD inherits.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from tests.fakes.aws_lab import require_or_skip
from tests.fakes.aws_moto import ACCOUNT, BASE_KEY_ID, BASE_SECRET, LEAKY, MotoServer, aws_files

from .conftest import TOKEND, Sandbox, cache_roots

ROLE = f"arn:aws:iam::{ACCOUNT}:role/endpoint-it"
DEFAULT_KEY = "AKIADEFAULTMUSTNOTWIN"
ENV_KEY = "AKIAENVIRONMUSTNOTWIN"

TOML = f"""
[profiles.role]
source = "aws"
aws_profile = "base"
role_arn = "{ROLE}"

[profiles.bedrock]
source = "aws"
aws_profile = "base"
token = "bedrock"
region = "us-east-1"

[profiles.plain]
source = "command"
command = ["printf", "just-a-token"]
"""

#: boto3 in CMD: who signed, with which credentials provider, in which region.
CALLER = textwrap.dedent(
    """\
    import json, boto3
    session = boto3.Session()
    ident = session.client("sts").get_caller_identity()
    creds = session.get_credentials()
    print(json.dumps({"method": creds.method, "key": creds.access_key, "account": ident["Account"],
                      "region": session.region_name}))
    """
)

#: 200 threads, each with its own botocore session (no shared credential cache), at once.
HERD = textwrap.dedent(
    """\
    import json, threading, botocore.session
    n = 200
    barrier, keys, errors = threading.Barrier(n), [], []
    def one():
        barrier.wait()
        try:
            keys.append(botocore.session.Session().get_credentials().get_frozen_credentials().access_key)
        except Exception as e:
            errors.append(repr(e))
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps({"keys": sorted(set(keys)), "count": len(keys), "errors": errors[:3]}))
    """
)


def env_for(sandbox: Sandbox, moto: MotoServer) -> dict[str, str]:
    """The sandbox's environment, with the user's AWS settings that must NOT win."""
    env = {k: v for k, v in sandbox.env().items() if k not in LEAKY}
    creds = (
        f"[base]\naws_access_key_id = {BASE_KEY_ID}\naws_secret_access_key = {BASE_SECRET}\n"
        f"[default]\naws_access_key_id = {DEFAULT_KEY}\naws_secret_access_key = default-secret-xyz\n"
    )
    config = "[default]\nregion = eu-west-3\n[profile base]\nregion = eu-west-3\n"
    env.update(aws_files(sandbox.root, config, creds))
    home_aws = sandbox.home / ".aws"  # the default locations too, should a file variable be dropped
    home_aws.mkdir(mode=0o700, exist_ok=True)
    (home_aws / "credentials").write_text(creds)
    (home_aws / "config").write_text(config)
    env.update(
        AWS_ENDPOINT_URL_STS=moto.url,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PROFILE="base",
        AWS_ACCESS_KEY_ID=ENV_KEY,
        AWS_SECRET_ACCESS_KEY="env-secret-xyz",
    )
    return env


def write(sandbox: Sandbox, name: str, text: str) -> str:
    path = sandbox.root / name
    path.write_text(text)
    return str(path)


def served_keys(moto: MotoServer) -> tuple[list[dict[str, str]], list[str]]:
    calls = moto.calls()
    assumed = [c for c in calls if c.get("Action") == "AssumeRole"]
    callers = [c["_signer"] for c in calls if c.get("Action") == "GetCallerIdentity"]
    return assumed, callers


@pytest.mark.timeout(90)
def test_boto3_under_exec_signs_with_the_served_role_keys(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    env = env_for(sandbox, moto)
    moto.reset_recording()
    script = write(sandbox, "caller.py", CALLER)
    r = sandbox.tokend("exec", "--endpoint", "aws=role", "--", sys.executable, script, env=env, timeout=60)
    assert r.status == 0, r
    doc = json.loads(r.out)
    assert doc["method"] == "container-role"
    assert doc["region"] == "eu-west-3"  # the region survives in CMD's private config
    assert doc["account"] == ACCOUNT
    assumed, callers = served_keys(moto)
    assert len(assumed) == 1 and assumed[0]["_signer"] == BASE_KEY_ID
    assert callers == [doc["key"]]
    assert doc["key"] not in (BASE_KEY_ID, DEFAULT_KEY, ENV_KEY)
    assert r.err == ""


@pytest.mark.timeout(120)
def test_200_concurrent_sdk_clients_one_upstream_fetch(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    env = env_for(sandbox, moto)
    moto.reset_recording()
    script = write(sandbox, "herd.py", HERD)
    r = sandbox.tokend("exec", "--endpoint", "aws=role", "--", sys.executable, script, env=env, timeout=100)
    assert r.status == 0, r
    doc = json.loads(r.out)
    assert doc["errors"] == [] and doc["count"] == 200, doc
    assumed, _ = served_keys(moto)
    assert len(assumed) == 1
    assert doc["keys"] not in ([BASE_KEY_ID], [DEFAULT_KEY], [ENV_KEY]) and len(doc["keys"]) == 1


@pytest.mark.timeout(60)
def test_wrong_kind_of_profile_is_a_usage_error_before_cmd(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    env = env_for(sandbox, moto)
    marker = sandbox.root / "ran"
    for profile in ("bedrock", "plain"):
        r = sandbox.tokend(
            "exec", "--endpoint", f"aws={profile}", "--", "touch", str(marker), env=env, timeout=30
        )
        assert r.status == 2, r
        assert len(r.err_lines) == 1 and r.err.startswith(f"tokend: {profile}: --endpoint aws={profile}"), r
        assert not marker.exists()


@pytest.mark.timeout(60)
def test_fetch_failure_is_one_line_before_cmd(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(
        TOML.replace('aws_profile = "base"\nrole_arn', 'aws_profile = "nosuch"\nrole_arn', 1)
    )
    env = env_for(sandbox, moto)
    marker = sandbox.root / "ran"
    r = sandbox.tokend("exec", "--endpoint", "aws=role", "--", "touch", str(marker), env=env, timeout=30)
    assert r.status not in (0, 2), r
    assert len(r.err_lines) == 1 and r.err.startswith("tokend: role: "), r
    assert not marker.exists()


def _aws_cli() -> str:
    """The AWS CLI v1 scripts/test installs under .cache/ (of this checkout or its main worktree)."""
    for root in cache_roots():
        aws = root / ".cache" / "awscli-venv" / "bin" / "aws"
        if aws.exists():
            return str(aws)
    require_or_skip("the AWS CLI v1 is not installed in .cache/awscli-venv (scripts/test installs it)")
    return ""


@pytest.mark.timeout(90)
def test_aws_cli_under_exec(sandbox: Sandbox, moto: MotoServer) -> None:
    aws = _aws_cli()
    sandbox.write_config(TOML)
    env = env_for(sandbox, moto)
    moto.reset_recording()
    r = sandbox.tokend(
        "exec",
        "--endpoint",
        "aws=role",
        "--",
        aws,
        "sts",
        "get-caller-identity",
        "--output",
        "json",
        env=env,
        timeout=60,
    )
    assert r.status == 0, r
    assert json.loads(r.out)["Account"] == ACCOUNT
    assumed, callers = served_keys(moto)
    assert len(assumed) == 1 and len(callers) == 1
    assert callers[0] not in (BASE_KEY_ID, DEFAULT_KEY, ENV_KEY)


def test_exec_status_passes_through(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    env = env_for(sandbox, moto)
    r = sandbox.tokend("exec", "--endpoint", "aws=role", "--", "sh", "-c", "exit 7", env=env, timeout=60)
    assert r.status == 7, r
    r = sandbox.tokend(
        "exec", "--endpoint", "aws=role", "--", "sh", "-c", "kill -TERM $$", env=env, timeout=60
    )
    assert r.status == -15, r


@pytest.mark.timeout(90)
def test_aws_endpoint_refuses_what_it_must(sandbox: Sandbox, moto: MotoServer) -> None:
    from .test_endpoints_security import run_probe

    sandbox.write_config(TOML)
    doc = run_probe(sandbox, ["aws=role"], env_for(sandbox, moto))
    ok = doc["aws_ok"]
    assert isinstance(ok, list) and ok[0] == 200, doc
    assert set(json.loads(ok[2])) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
    statuses = {case: answer[0] for case, answer in doc.items() if isinstance(answer, list)}  # type: ignore[misc]
    assert statuses == {
        "aws_ok": 200,
        "aws_no_token": 401,
        "aws_wrong_token": 403,
        "aws_rebind": 403,
        "aws_unknown": 404,
        "aws_big": 431,
    }, doc
    assert json.loads(doc["aws_no_token"][2])["code"] == "Unauthorized"  # type: ignore[index]
    other = doc["other_uid"]
    assert isinstance(other, dict) and other["aws_ok"][0] == 403, doc["other_uid_err"]
    assert "SecretAccessKey" not in other["aws_ok"][2]


def test_exec_needs_an_env_or_an_endpoint(sandbox: Sandbox) -> None:
    sandbox.write_config(TOML)
    r = sandbox.tokend("exec", "--", "true")
    assert r.status == 2 and r.err_lines == [
        "tokend: tokend exec needs -e VAR=PROFILE or --endpoint CLOUD=PROFILE"
    ], r


@pytest.mark.timeout(90)
def test_signals_reach_cmd_and_the_endpoint_dies_with_it(sandbox: Sandbox, moto: MotoServer) -> None:
    import os
    import signal
    import socket
    import subprocess
    import time

    sandbox.write_config(TOML)
    script = write(
        sandbox,
        "trap.py",
        textwrap.dedent(
            """\
            import os, signal, sys, time
            def bye(signum, frame):
                open(sys.argv[1], "w").write(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
                sys.exit(3)
            signal.signal(signal.SIGTERM, bye)
            open(sys.argv[2], "w").write("ready")
            time.sleep(60)
            """
        ),
    )
    done, ready = sandbox.root / "done", sandbox.root / "ready"
    proc = subprocess.Popen(
        [TOKEND, "exec", "--endpoint", "aws=role", "--", sys.executable, script, str(done), str(ready)],
        env=env_for(sandbox, moto),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, (
                proc.stderr.read() if proc.stderr else ""
            )
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 3  # CMD got the signal, and its status is ours
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    port = int(done.read_text().split(":")[2].split("/")[0])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


@pytest.mark.timeout(90)
def test_mask_covers_the_endpoint_token_and_served_credentials(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    script = write(
        sandbox,
        "leak.py",
        "import os, boto3\n"
        "c = boto3.Session().get_credentials().get_frozen_credentials()\n"
        "print(os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN'], c.secret_key, c.token, c.access_key)\n",
    )
    r = sandbox.tokend(
        "exec", "--endpoint", "aws=role", "--mask", "--", sys.executable, script, env=env_for(sandbox, moto)
    )
    assert r.status == 0, r
    words = r.out.split()
    assert words[:3] == ["***", "***", "***"] and words[3].startswith("ASIA"), r.out
