"""The installed git and docker helpers with the daemon rendering their answer (the ``helper`` request)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import BIN, Sandbox

GIT_HELPER = str(BIN / "git-credential-tokend")
DOCKER_HELPER = str(BIN / "docker-credential-tokend")
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"


def _json_token_profile(name: str, token: str) -> str:
    printed = f"import json; print(json.dumps({{'token': {token!r}, 'expires_in': 3600}}))"
    argv = [sys.executable, "-I", "-S", "-c", printed]
    return f'[profiles.{name}]\nsource = "command"\ncommand = {json.dumps(argv)}\n'


def world(sandbox: Sandbox) -> dict[str, str]:
    sandbox.write_config(
        _json_token_profile("injected", "tok-inj\nusername=evil\npassword=planted")
        + _json_token_profile("tabbed", "tok-tab\tx")
        + _json_token_profile("good", "tok-good-123")
        + '[hosts]\n"git.injected.example" = "injected"\n"git.tabbed.example" = "tabbed"\n'
        + '"git.good.example" = "good"\n'
    )
    return sandbox.env(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", TOKEND_TIMEOUT="10")


def git_fill(sandbox: Sandbox, env: dict[str, str], host: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "credential.helper=", "-c", f"credential.helper={GIT_HELPER}", "credential", "fill"],
        input=f"protocol=https\nhost={host}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=sandbox.root,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("mode", ["daemon", "daemonless"])
def test_a_newline_or_tab_in_the_token_never_reaches_git(sandbox: Sandbox, mode: str) -> None:
    env = world(sandbox)
    if mode == "daemon":
        sandbox.start_daemon(env=env)
    else:
        env["TOKEND_NO_DAEMON"] = "1"
    good = git_fill(sandbox, env, "git.good.example")
    assert good.returncode == 0 and "password=tok-good-123\n" in good.stdout, good
    for host, secret in (("git.injected.example", "tok-inj"), ("git.tabbed.example", "tok-tab")):
        r = git_fill(sandbox, env, host)
        # git got nothing from the helper: it asked for a prompt, which is disabled here.
        assert r.returncode != 0 and "terminal prompts disabled" in r.stderr, r
        assert "contains a control character" in r.stderr
        assert "evil" not in r.stdout + r.stderr and "planted" not in r.stdout + r.stderr
        assert secret not in r.stdout + r.stderr
        docker = subprocess.run(
            [DOCKER_HELPER, "get"], input=host, env=env, capture_output=True, text=True, timeout=30
        )
        assert docker.returncode == 1 and docker.stderr == "", docker
        assert "contains a control character" in docker.stdout and secret not in docker.stdout
    if mode == "daemonless":
        assert sandbox.daemon_pids() == []


_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect-failed", e.errno)
    sys.exit(0)
data = b""
try:
    s.sendall(b"helper\tformat=git-credential\thost=git.good.example\tprotocol=https\n")
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print("closed", data.hex())
except (ConnectionResetError, BrokenPipeError):
    print("reset", data.hex())
except socket.timeout:
    print("timeout", data.hex())
"""


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        cwd="/",
    )


@pytest.mark.timeout(60)
def test_another_uid_gets_nothing_from_the_helper_request(sandbox: Sandbox) -> None:
    if shutil.which("setpriv") is None or os.getuid() != 0:
        pytest.skip("needs root and setpriv to act as another user")
    env = world(sandbox)
    daemon = sandbox.start_daemon(env=env)
    mine = subprocess.run([GIT_HELPER, "get"], input="protocol=https\nhost=git.good.example\n\n", env=env,
                          capture_output=True, text=True, timeout=30)
    assert mine.returncode == 0 and "password=tok-good-123\n" in mine.stdout, mine

    # The 0700 runtime dir keeps another user away from the socket.
    r = _as_nobody(SYSTEM_PYTHON, "-I", "-c", _CLIENT, sandbox.socket_path)
    assert r.stdout.split() == ["connect-failed", "13"], r
    # Past the directory (a hard link in a world-traversable dir, inode 0666): the peer check.
    public = Path(tempfile.mkdtemp(prefix="tdhlp", dir="/tmp"))
    try:
        os.chmod(public, 0o755)
        link = public / "s"
        os.link(sandbox.socket_path, link)
        os.chmod(link, 0o666)
        r = _as_nobody(SYSTEM_PYTHON, "-I", "-c", _CLIENT, str(link))
        os.chmod(link, 0o600)
    finally:
        shutil.rmtree(public)
    kind, _, payload = r.stdout.strip().partition(" ")
    assert kind in ("closed", "reset"), r
    assert payload == "", f"the daemon sent {bytes.fromhex(payload)!r} to another uid"
    daemon.wait_for_log("refused a connection from uid 65534")
    assert "tok-good-123" not in daemon.log_text()
