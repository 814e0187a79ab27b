"""A real moto server (STS, IMDS, ...) on 127.0.0.1, started as a process and stopped by its pid.

moto has no SSO portal or sso-oidc: see ``tests.fakes.aws_sso``. The server
records every request (moto's recorder) so tests can see which access key
signed what.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

#: Long-term keys of an IAM user that exists only in the tests' config files.
BASE_KEY_ID = "AKIATOKENDTESTBASE01"
BASE_SECRET = "tokend-test-base-secret-0123456789abcdef"
ACCOUNT = "123456789012"


class MotoServer:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, workdir: Path) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.url = url
        self.workdir = workdir

    def _call(self, path: str, data: bytes | None = None) -> bytes:
        with urllib.request.urlopen(self.url + path, data=data, timeout=10) as r:
            body: bytes = r.read()
            return body

    def reset_recording(self) -> None:
        self._call("/moto-api/recorder/reset-recording", b"")
        self._call("/moto-api/recorder/start-recording", b"")

    def recording(self) -> list[dict[str, object]]:
        """Every request since ``reset_recording``: method, path, headers, body."""
        text = self._call("/moto-api/recorder/download-recording").decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def calls(self) -> list[dict[str, str]]:
        """The recorded requests as flat dicts: their form or query parameters plus
        ``_signer`` (the access key id that signed it) and ``_method``."""
        out = []
        for entry in self.recording():
            headers = {str(k).lower(): str(v) for k, v in dict(entry.get("headers") or {}).items()}
            url = str(entry.get("url") or "")
            body = str(entry.get("body") or "")
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", "replace")
            params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            params.update({k: v[0] for k, v in parse_qs(body).items()})
            signed = re.search(r"Credential=([A-Z0-9]+)/", headers.get("authorization", ""))
            signer = signed.group(1) if signed else params.get("X-Amz-Credential", "").split("/")[0]
            out.append({**params, "_signer": signer, "_method": str(entry.get("method"))})
        return out

    def signers(self) -> list[str]:
        """Access key ids that signed the recorded requests (header or query signature)."""
        return [c["_signer"] for c in self.calls() if c["_signer"]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)


@contextlib.contextmanager
def moto_server() -> Iterator[MotoServer]:
    workdir = Path(tempfile.mkdtemp(prefix="tdmoto", dir="/tmp"))
    log = workdir / "moto.log"
    env = {
        **os.environ,
        "MOTO_ENABLE_RECORDING": "True",
        "MOTO_RECORDER_FILEPATH": str(workdir / "recording"),
        "AWS_ACCESS_KEY_ID": "moto",  # the server's own boto3 use, never tokend's
        "AWS_SECRET_ACCESS_KEY": "moto",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = None
    try:
        deadline = time.monotonic() + 30
        while server is None:
            m = re.search(rb"Running on (http://127\.0\.0\.1:\d+)", log.read_bytes())
            if m:
                server = MotoServer(proc, m.group(1).decode(), workdir)
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        server.reset_recording()
        yield server
    finally:
        if server is not None:
            server.stop()
        elif proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for p in sorted(workdir.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        workdir.rmdir()


def aws_files(root: Path, config: str, credentials: str = "") -> dict[str, str]:
    """Write an AWS config and credentials file under ``root``; the env vars that route botocore to them."""
    cfg = root / "aws-config"
    cfg.write_text(config)
    creds = root / "aws-credentials"
    base = f"[base]\naws_access_key_id = {BASE_KEY_ID}\naws_secret_access_key = {BASE_SECRET}\n"
    creds.write_text(credentials or base)
    os.chmod(cfg, 0o600)
    os.chmod(creds, 0o600)
    return {"AWS_CONFIG_FILE": str(cfg), "AWS_SHARED_CREDENTIALS_FILE": str(creds)}


def routing_env(moto: MotoServer) -> dict[str, str]:
    """Send STS to moto and keep botocore off real instance metadata and the user's env."""
    return {
        "AWS_ENDPOINT_URL_STS": moto.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


#: AWS variables of the developer's session that must not leak into a test.
LEAKY = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
)
