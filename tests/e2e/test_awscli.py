"""The real AWS CLI (v1 from PyPI, in its own venv) with ``credential_process = tokend-print ...``.

``tokend integrate aws`` writes the line; ``aws sts get-caller-identity``
against a moto server must succeed, and moto's request recorder must show
that the call was signed with the access key tokend serves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from tests.fakes.aws_lab import TOKEND, TOKEND_PRINT, Lab, lab, require_or_skip
from tests.fakes.aws_moto import ACCOUNT, BASE_KEY_ID, MotoServer, aws_files, routing_env

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / "awscli-venv"
AWSCLI = "awscli>=1.30,<2"  # v1: the CLI that is on PyPI
ROLE = f"arn:aws:iam::{ACCOUNT}:role/cli-user"


@pytest.fixture(scope="module")
def aws_cli() -> str:
    """The ``aws`` executable of a private venv, installed once (and kept) under .cache/."""
    aws = VENV / "bin" / "aws"
    VENV.parent.mkdir(exist_ok=True)
    with FileLock(str(VENV.parent / "awscli-venv.lock"), timeout=600):
        if not aws.exists():
            try:
                subprocess.run(
                    [sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120, capture_output=True
                )
                subprocess.run(
                    [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", AWSCLI],
                    check=True,
                    timeout=540,
                    capture_output=True,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                output = getattr(e, "stderr", b"") or b""
                require_or_skip(
                    f"cannot install {AWSCLI} into {VENV}: {output.decode(errors='replace')[-500:]}"
                )
    return str(aws)


@pytest.fixture
def box(moto: MotoServer) -> Iterator[Lab]:
    with lab() as world:
        world.extra_env.update(routing_env(moto))
        world.extra_env.update(aws_files(world.root, "[profile base]\nregion = us-east-1\n"))
        world.write_config(
            f"""
            [profiles.cli]
            source = "aws"
            aws_profile = "base"
            role_arn = "{ROLE}"
            session_name = "tokend-e2e"
            """
        )
        world.serve()
        yield world


def test_aws_cli_uses_tokend_credentials(box: Lab, moto: MotoServer, aws_cli: str) -> None:
    wrote = box.run([TOKEND, "integrate", "aws", "cli"])
    assert wrote.returncode == 0, wrote.stderr
    config = Path(box.env()["AWS_CONFIG_FILE"]).read_text()
    assert (
        f"[profile cli]\ncredential_process = {os.path.realpath(TOKEND_PRINT)} cli --format aws-process\n"
        in (config)
    )

    moto.reset_recording()
    # No STS endpoint override for the CLI itself: --endpoint-url sends just this call to moto.
    env = {k: v for k, v in box.env().items() if k != "AWS_ENDPOINT_URL_STS"}
    done = subprocess.run(
        [
            aws_cli,
            "sts",
            "get-caller-identity",
            "--profile",
            "cli",
            "--endpoint-url",
            moto.url,
            "--output",
            "json",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (done.stderr, box.daemon_log())
    identity = json.loads(done.stdout)
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/cli-user/tokend-e2e"

    served = json.loads(box.run([TOKEND_PRINT, "cli", "--format", "aws-process"]).stdout)
    calls = moto.calls()
    assumed = [c for c in calls if c.get("Action") == "AssumeRole"]
    asked = [c for c in calls if c.get("Action") == "GetCallerIdentity"]
    assert len(assumed) == 1 and assumed[0]["_signer"] == BASE_KEY_ID  # tokend's one upstream call
    assert len(asked) == 1 and asked[0]["_signer"] == served["AccessKeyId"]  # the CLI used tokend's key
