"""A private world for end-to-end tests of the AWS source with real clients.

A short directory under /tmp (unix socket paths are limited to 107 bytes)
holding the runtime dir, home, tokend config (0600) and AWS config; a
``tokend serve`` started here and stopped by its pid; the installed
``tokend-print`` to hand to the client under test.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

BIN = Path(sys.executable).parent
TOKEND = str(BIN / "tokend")
TOKEND_PRINT = str(BIN / "tokend-print")

_SCRUBBED = re.compile(r"^(TOKEND_|XDG_|KUBE|AWS_|DBUS_)")


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = root / "r"
        self.home = root / "h"
        self.config_path = root / "c" / "tokend.toml"
        for d in (self.runtime, self.home, self.config_path.parent):
            d.mkdir(mode=0o700)
        self.extra_env: dict[str, str] = {}
        self._daemons: list[subprocess.Popen[bytes]] = []

    @property
    def socket_path(self) -> str:
        return str(self.runtime / "tokend" / "tokend.sock")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not _SCRUBBED.match(k)}
        env.update(
            HOME=str(self.home),
            XDG_RUNTIME_DIR=str(self.runtime),
            XDG_CONFIG_HOME=str(self.root / "c"),
            TOKEND_CONFIG=str(self.config_path),
            LC_ALL="C.UTF-8",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def write_config(self, text: str) -> None:
        tmp = self.config_path.with_suffix(".new")
        tmp.write_text(textwrap.dedent(text))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.config_path)

    def run(self, argv: list[str], timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            env=self.env(**extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def serve(self) -> subprocess.Popen[bytes]:
        """``tokend serve`` in the background, returning once it answers."""
        log = open(self.root / "daemon.log", "ab")  # noqa: SIM115 - the daemon keeps it
        proc = subprocess.Popen(
            [TOKEND, "serve"],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._daemons.append(proc)
        deadline = time.monotonic() + 15
        while not _ping(self.socket_path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("tokend serve did not start:\n" + self.daemon_log())
            time.sleep(0.05)
        return proc

    def daemon_log(self) -> str:
        try:
            return (self.root / "daemon.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        for proc in self._daemons:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(8)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def _ping(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(path)
            s.sendall(b"ping\n")
            return s.recv(64).startswith(b"0 ")
    except OSError:
        return False


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    box = Lab(Path(tempfile.mkdtemp(prefix="td", dir="/tmp")))
    try:
        yield box
    finally:
        box.cleanup()


def require_or_skip(missing: str | None) -> None:
    """Skip with ``missing`` as the reason, or fail when CI demands the end-to-end clients."""
    import pytest

    if missing is None:
        return
    if os.environ.get("TOKEND_REQUIRE_E2E") == "1":
        pytest.fail(f"TOKEND_REQUIRE_E2E=1 but {missing}")
    pytest.skip(missing)
