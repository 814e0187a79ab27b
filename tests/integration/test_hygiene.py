"""The daemon as a process (DESIGN §6): no core files, an allow-listed environment, ``/`` as its
working directory, sources' children die with it, and no client can forge a log line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.conftest import TOKEND, Daemon, Sandbox, ping
from tokend.client import protocol

DEMO = '[profiles.demo]\nsource = "demo"\n'


def _wait_until(pred, timeout: float, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def _start_in(sandbox: Sandbox, cwd: Path, shell_prefix: str = "") -> Daemon:
    """``tokend serve`` started from ``cwd`` (through a shell running ``shell_prefix`` first)."""
    log = sandbox.root / f"daemon{len(sandbox.daemons)}.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", f'{shell_prefix}exec "$0" serve', TOKEND],
            cwd=cwd,
            env=sandbox.env(),
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    daemon = Daemon(proc, log, sandbox.socket_path)
    sandbox.daemons.append(daemon)
    assert _wait_until(lambda: ping(sandbox.socket_path) or proc.poll() is not None, 15)
    assert proc.poll() is None, daemon.log_text()
    return daemon


def _request(path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


# -- core files -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_crashing_daemon_leaves_no_core_file(sandbox: Sandbox) -> None:
    if Path("/proc/sys/kernel/core_pattern").read_text().startswith("|"):
        pytest.skip("cores go to a crash handler here, not to a file")
    sandbox.write_config(DEMO)
    cwd = sandbox.root / "cwd"
    cwd.mkdir()
    cores_in_root_before = _cores(Path("/"))
    daemon = _start_in(sandbox, cwd, shell_prefix="ulimit -c unlimited && ")
    token = sandbox.print_("demo")
    assert token.status == 0
    os.kill(daemon.pid, signal.SIGSEGV)
    daemon.proc.wait(20)
    assert daemon.proc.returncode == -signal.SIGSEGV
    time.sleep(1)  # the kernel writes a core before the parent sees the death; margin anyway
    assert _cores(cwd) == set()
    assert _cores(Path("/")) <= cores_in_root_before


def _cores(where: Path) -> set[tuple[str, float]]:
    return {(p.name, p.stat().st_mtime) for p in where.iterdir() if p.name.startswith("core")}


# -- working directory --------------------------------------------------------------


@pytest.mark.timeout(60)
def test_the_daemon_works_in_the_root_directory(sandbox: Sandbox) -> None:
    sandbox.write_config(DEMO)
    cwd = sandbox.root / "cwd"
    cwd.mkdir()
    (cwd / "x.sh").write_text("#!/bin/sh\necho hi\n")
    daemon = _start_in(sandbox, cwd)
    assert os.readlink(f"/proc/{daemon.pid}/cwd") == "/"
    assert sandbox.print_("demo").status == 0
    # A relative config path given to the daemon still names the same file on reload.
    assert sandbox.tokend("reload").status == 0


@pytest.mark.timeout(60)
def test_a_relative_config_path_is_resolved_before_leaving_the_directory(sandbox: Sandbox) -> None:
    sandbox.write_config(DEMO)
    env = sandbox.env(TOKEND_CONFIG=os.path.relpath(sandbox.config_path, sandbox.root))
    log = sandbox.root / "daemon.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [TOKEND, "serve"],
            cwd=sandbox.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    daemon = Daemon(proc, log, sandbox.socket_path)
    sandbox.daemons.append(daemon)
    assert _wait_until(lambda: ping(sandbox.socket_path) or proc.poll() is not None, 15), log.read_text()
    assert proc.poll() is None, log.read_text()
    assert sandbox.tokend("reload").status == 0, daemon.log_text()
    assert str(sandbox.config_path) in daemon.log_text()


# -- environment --------------------------------------------------------------------

ENV_DUMPER = textwrap.dedent(
    """\
    import json, os, sys
    with open(sys.argv[1], "w") as f:
        json.dump(dict(os.environ), f)
    print(json.dumps({"token": "envtoken-" + os.urandom(6).hex(), "expires_in": 3600}))
    """
)


@pytest.mark.timeout(60)
def test_an_autostarted_daemon_does_not_hand_its_starters_environment_to_commands(
    sandbox: Sandbox,
) -> None:
    script = sandbox.root / "dump_env.py"
    script.write_text(ENV_DUMPER)
    seen = sandbox.root / "seen.json"
    sandbox.write_config(
        f"""\
        [profiles.other]
        source = "command"
        command = {json.dumps([sys.executable, "-I", "-S", str(script), str(seen)])}
        env = {{ PROFILE_SETTING = "from-config" }}

        [profiles.named]
        source = "env"
        var = "NAMED_BY_CONFIG"
        """
    )
    env = sandbox.env(
        PROD_TOKEN="xyz-must-not-leak",
        NAMED_BY_CONFIG="named-value-123456",
        AWS_REGION="eu-west-1",
        https_proxy="http://proxy.invalid:3128",
        TOKEND_TIMEOUT="20",
    )
    r = sandbox.print_("other", env=env)
    assert r.status == 0, r
    child_env = json.loads(seen.read_text())
    assert "PROD_TOKEN" not in child_env
    assert "xyz-must-not-leak" not in json.dumps(child_env)
    assert child_env["PATH"] == env["PATH"]
    assert child_env["HOME"] == env["HOME"]
    assert child_env["PROFILE_SETTING"] == "from-config"
    assert child_env["AWS_REGION"] == "eu-west-1"
    assert child_env["https_proxy"] == "http://proxy.invalid:3128"
    assert child_env["XDG_RUNTIME_DIR"] == str(sandbox.runtime)
    # A variable the configuration names is still read by its source.
    assert sandbox.print_("named", env=env).out == "named-value-123456\n"


# -- children -----------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.timeout(60)
def test_a_hanging_upstream_dies_with_a_killed_daemon(sandbox: Sandbox) -> None:
    up = sandbox.upstream("stuck")
    up.set_mode("hang")
    sandbox.write_config(sandbox.command_profile("stuck", up, timeout="120s"))
    daemon = sandbox.start_daemon()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(daemon.socket_path)
        s.sendall(protocol.encode_request("get", {"profile": "stuck"}))
        assert _wait_until(lambda: up.pids() != [], 15)
        (pid,) = up.pids()
        assert _alive(pid)
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.proc.wait(10)
        # Wide margin: the kernel delivers the signal at once; a loaded machine is slow to reap.
        assert _wait_until(lambda: not _alive(pid), 10), f"upstream {pid} outlived the daemon"


# -- logs ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_client_cannot_forge_a_log_line(sandbox: Sandbox) -> None:
    sandbox.write_config(DEMO)
    daemon = sandbox.start_daemon()
    forged = "2026-01-01 00:00:00,000 ERROR tokend.daemon: FORGED"
    requests = [
        # A caller that is not a pid: ignored.
        {"profile": "demo", "repeat_caller": "4242\n" + forged},
        # A valid caller, a profile name with a line in it: escaped where it is logged.
        {"profile": "demo\n" + forged, "repeat_caller": "4242"},
        {"profile": "demo\r\n" + forged, "repeat_caller": "4243"},
    ]
    # Sent from a child of this (non-shell) process: the daemon finds the caller
    # in /proc past shells, and this test's own ancestors may all be shells.
    lines_sent = [protocol.encode_request("get", fields) for fields in requests for _ in range(2)]
    sender = textwrap.dedent(
        """
        import socket, sys
        for line in sys.argv[2:]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(sys.argv[1])
                s.sendall(line.encode("latin-1"))
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):
                    pass
        """
    )
    args = [line.decode("latin-1") for line in lines_sent]  # the second time is the repeat that gets logged
    subprocess.run([sys.executable, "-c", sender, daemon.socket_path, *args], check=True, timeout=60)
    assert sandbox.print_("demo").status == 0
    lines = daemon.log_text().splitlines()
    assert not [line for line in lines if line.startswith(forged)], lines
    # The profile names were logged, escaped.
    assert any("demo\\x0a" + forged in line for line in lines), lines
    assert any("demo\\x0d\\x0a" + forged in line for line in lines), lines
