#!/usr/bin/env python3
"""Credential endpoints (``tokend exec --endpoint``): one run, one table.

Run with the development virtualenv (it needs tokend installed there, boto3
and moto): ``.venv/bin/python benchmarks/endpoints.py [--json]``. Everything
lives in one temporary directory; moto and the daemon it starts are stopped
by pid. Measures:

1. server-side time per warm endpoint request (the handler, in-process: the
   broker's cache answers), and the loopback round trip on a keep-alive
   connection, for the AWS endpoint;
2. a boto3 script's wall time (process start to STS answer) under
   ``tokend exec --endpoint aws=…`` against the same script using
   ``credential_process = tokend-print … --format aws-process`` with a warm
   daemon, and the time the script spends resolving credentials in each;
3. the RSS of the ``tokend exec`` process that serves the endpoints while CMD
   runs, against ``tokend exec --mask`` (the other case where tokend stays).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BIN = Path(sys.executable).parent
TOKEND, TOKEND_PRINT = str(BIN / "tokend"), str(BIN / "tokend-print")
ROLE = "arn:aws:iam::123456789012:role/bench"

SCRIPT = textwrap.dedent(
    """\
    import json, time
    t0 = time.perf_counter()
    import boto3
    session = boto3.Session()
    t1 = time.perf_counter()
    session.get_credentials().get_frozen_credentials()
    t2 = time.perf_counter()
    session.client("sts").get_caller_identity()
    print(json.dumps({"creds_ms": (t2 - t1) * 1000, "script_ms": (time.perf_counter() - t0) * 1000}))
    """
)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def server_side(runs: int) -> dict[str, float]:
    """Handler time and keep-alive round trip of warm AWS endpoint requests, in this process."""
    from types import MappingProxyType

    from tokend.core.broker import Broker
    from tokend.core.config import Config, Profile
    from tokend.core.credential import Credential
    from tokend.daemon.endpoints import aws
    from tokend.daemon.endpoints.http import EndpointServer, Request, Response
    from tokend.daemon.endpoints.runner import serving
    from tokend.sources.base import BaseSource, FetchRequest

    class Static(BaseSource):  # the upstream is not what is measured
        name = "static"

        def fetch(self, request: FetchRequest) -> Credential:
            fields = {"AccessKeyId": "AKIABENCH", "SecretAccessKey": "s" * 40, "SessionToken": "t" * 300}
            return Credential(kind="aws", fields=fields, expires_at=time.time() + 3600, source="static")

    profile = Profile("bench", "static", 300.0, 30.0, 60.0, MappingProxyType({}))
    config = Config(None, MappingProxyType({"bench": profile}))
    broker = Broker(config, source_factory=lambda p, clock: Static(p.name, p.options, clock=clock))
    handler = aws.AwsEndpoint(broker, "bench", "tok")
    spent: list[float] = []

    async def timed(request: Request) -> Response:
        start = time.perf_counter()
        try:
            return await handler(request)
        finally:
            spent.append(time.perf_counter() - start)

    server = EndpointServer("aws", timed, aws.refuse)
    trips = []
    with serving([server]):
        head = f"GET {aws.PATH} HTTP/1.1\r\nHost: {server.host}\r\nAuthorization: tok\r\n\r\n".encode()
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            for i in range(runs + 20):
                start = time.perf_counter()
                s.sendall(head)
                data = b""
                while not data.endswith(b"}"):
                    data += s.recv(65536)
                if i >= 20:  # warm-up: first fetch, imports
                    trips.append(time.perf_counter() - start)
    broker.close()
    handled = spent[20:]
    return {
        "handler_median_us": statistics.median(handled) * 1e6,
        "handler_p99_us": sorted(handled)[int(len(handled) * 0.99) - 1] * 1e6,
        "roundtrip_median_us": statistics.median(trips) * 1e6,
    }


def run_json(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, timeout=120)
    wall = (time.perf_counter() - start) * 1000
    if r.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {r.returncode}: {r.stderr.decode()[-800:]}")
    return wall, json.loads(r.stdout.decode().splitlines()[-1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tokend_rss(argv: list[str], env: dict[str, str]) -> int:
    """RSS of the tokend exec process while its CMD (a sleep) runs."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            if kids.exists() and kids.read_text().strip():
                time.sleep(0.3)
                return rss_kib(proc.pid)
            if proc.poll() is not None:
                raise RuntimeError(
                    f"tokend exec exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            time.sleep(0.05)
        raise RuntimeError("CMD never started")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)


def end_to_end(runs: int) -> dict[str, float]:
    from tests.fakes.aws_moto import LEAKY, aws_files, moto_server

    root = Path(tempfile.mkdtemp(prefix="tbep", dir="/tmp"))
    daemon = None
    try:
        for d in ("r", "c/tokend", "h"):
            (root / d).mkdir(parents=True, mode=0o700)
        config = root / "c" / "tokend" / "config.toml"
        config.write_text(f'[profiles.role]\nsource = "aws"\naws_profile = "base"\nrole_arn = "{ROLE}"\n')
        config.chmod(0o600)
        script = root / "s.py"
        script.write_text(SCRIPT)
        with moto_server() as moto:
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in LEAKY and not k.startswith(("TOKEND_", "XDG_"))
            }
            env.update(
                HOME=str(root / "h"),
                XDG_RUNTIME_DIR=str(root / "r"),
                TOKEND_CONFIG=str(config),
                AWS_ENDPOINT_URL_STS=moto.url,
                AWS_EC2_METADATA_DISABLED="true",
                AWS_DEFAULT_REGION="us-east-1",
            )
            aws_cfg = (
                "[profile base]\n[profile tp]\n"
                f"credential_process = {TOKEND_PRINT} role --format aws-process\n"
            )
            env.update(aws_files(root, aws_cfg))
            log("starting tokend serve for credential_process")
            daemon = subprocess.Popen(
                [TOKEND, "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            cp_env = {**env, "AWS_PROFILE": "tp"}
            exec_argv = [TOKEND, "exec", "--endpoint", "aws=role", "--", sys.executable, str(script)]
            run_json(exec_argv, env)  # warm: the shared cache, moto
            for _ in range(50):
                if (
                    subprocess.run(
                        [TOKEND_PRINT, "role", "--format", "aws-process"], env=env, capture_output=True
                    ).returncode
                    == 0
                ):
                    break
                time.sleep(0.1)
            rows: dict[str, list[float]] = {"ep_wall": [], "ep_creds": [], "cp_wall": [], "cp_creds": []}
            for i in range(runs):
                log(f"boto3 run {i + 1}/{runs}")
                wall, doc = run_json(exec_argv, env)
                rows["ep_wall"].append(wall)
                rows["ep_creds"].append(doc["creds_ms"])
                wall, doc = run_json([sys.executable, str(script)], cp_env)
                rows["cp_wall"].append(wall)
                rows["cp_creds"].append(doc["creds_ms"])
            out = {k + "_median_ms": statistics.median(v) for k, v in rows.items()}
            log("measuring RSS")
            out["rss_endpoint_kib"] = tokend_rss(
                [TOKEND, "exec", "--endpoint", "aws=role", "--", "sleep", "3"], env
            )
            out["rss_mask_kib"] = tokend_rss(
                [TOKEND, "exec", "-e", "role", "--mask", "--", "sleep", "3"], env
            )
            return out
    finally:
        if daemon is not None and daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGTERM)
            daemon.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2000, help="warm endpoint requests (server side)")
    parser.add_argument("--boto-runs", type=int, default=7, help="boto3 script runs per variant")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    log("server-side warm requests")
    figures = server_side(args.runs)
    figures.update(end_to_end(args.boto_runs))
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    rows = [
        ("warm request, handler (median)", f"{figures['handler_median_us']:.0f} us"),
        ("warm request, handler (p99)", f"{figures['handler_p99_us']:.0f} us"),
        ("warm request, keep-alive round trip (median)", f"{figures['roundtrip_median_us']:.0f} us"),
        ("boto3 script wall, tokend exec --endpoint (median)", f"{figures['ep_wall_median_ms']:.0f} ms"),
        (
            "boto3 script wall, credential_process tokend-print (median)",
            f"{figures['cp_wall_median_ms']:.0f} ms",
        ),
        ("  of which resolving credentials, endpoint", f"{figures['ep_creds_median_ms']:.1f} ms"),
        ("  of which resolving credentials, credential_process", f"{figures['cp_creds_median_ms']:.1f} ms"),
        ("RSS of tokend exec serving the endpoint", f"{figures['rss_endpoint_kib'] / 1024:.1f} MiB"),
        ("RSS of tokend exec --mask (no endpoint)", f"{figures['rss_mask_kib'] / 1024:.1f} MiB"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
