"""The installed git and docker helpers with the daemon rendering their answer (the ``helper`` request)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from . import otheruid
from .conftest import BIN, Sandbox

GIT_HELPER = str(BIN / "git-credential-tokend")
DOCKER_HELPER = str(BIN / "docker-credential-tokend")


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


def helper_get(helper: str, given: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``HELPER get`` with ``given`` on its stdin, as git or docker runs it."""
    return subprocess.run([helper, "get"], input=given, env=env, capture_output=True, text=True, timeout=30)


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
        docker = helper_get(DOCKER_HELPER, host, env)
        assert docker.returncode == 1 and docker.stderr == "", docker
        assert "contains a control character" in docker.stdout and secret not in docker.stdout
    if mode == "daemonless":
        assert sandbox.daemon_pids() == []


@pytest.mark.timeout(60)
def test_another_uid_gets_nothing_from_the_helper_request(sandbox: Sandbox) -> None:
    otheruid.require_setpriv()
    env = world(sandbox)
    daemon = sandbox.start_daemon(env=env)
    mine = helper_get(GIT_HELPER, "protocol=https\nhost=git.good.example\n\n", env)
    assert mine.returncode == 0 and "password=tok-good-123\n" in mine.stdout, mine

    request = b"helper\tformat=git-credential\thost=git.good.example\tprotocol=https\n"
    # The 0700 runtime dir keeps another user away from the socket.
    assert otheruid.knock(sandbox.socket_path, request) == ("connect-failed", "13")
    # Past the directory (a hard link in a world-traversable dir, inode 0666): the peer check.
    kind, sent = otheruid.knock_past_the_directory(sandbox.socket_path, request)
    assert kind in ("closed", "reset") and sent == b"", f"the daemon sent {sent!r} to another uid"
    daemon.wait_for_log("refused a connection from uid 65534")
    assert "tok-good-123" not in daemon.log_text()


def test_an_unmapped_registry_is_docker_not_found_from_the_daemon(sandbox: Sandbox) -> None:
    env = world(sandbox)
    sandbox.start_daemon(env=env)
    r = helper_get(DOCKER_HELPER, "quay.io\n", env)
    assert (r.returncode, r.stdout, r.stderr) == (1, "credentials not found in native keychain\n", "")
    good = helper_get(DOCKER_HELPER, "git.good.example\n", env)
    assert good.returncode == 0 and json.loads(good.stdout) == {
        "ServerURL": "git.good.example",
        "Username": "tokend",
        "Secret": "tok-good-123",
    }


class OldDaemon(threading.Thread):
    """A daemon from before the ``helper`` request: it refuses the op, answers ``routes`` and ``get``."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.requests: list[str] = []

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                line = b""
                while not line.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    line += chunk
                text = line.decode().rstrip("\n")
                self.requests.append(text)
                conn.sendall(self.answer(text))

    def answer(self, line: str) -> bytes:
        if line.startswith("helper\t"):
            status, body = 2, b"tokend: malformed request: unknown operation 'helper'\n"
        elif line == "routes":
            status, body = 0, json.dumps({"routes": {"git.old.example": ["old", None]}}).encode()
        elif line == "get\tprofile=old\tformat=json":  # exactly what the helper must ask
            doc = {"kind": "bearer", "token": "tok-old-456", "expires_at": "2099-01-01T00:00:00Z"}
            status, body = 0, json.dumps(doc).encode()
        else:
            status, body = 2, b"tokend: unexpected request\n"
        return b"%d %d\n" % (status, len(body)) + body


def test_a_daemon_older_than_the_helper_request_is_asked_the_old_way(sandbox: Sandbox) -> None:
    env = world(sandbox)
    sandbox.rundir.mkdir(mode=0o700)
    old = OldDaemon(sandbox.socket_path)
    old.start()
    try:
        r = helper_get(GIT_HELPER, "protocol=https\nhost=git.old.example\n\n", env)
        assert r.returncode == 0, r
        assert r.stdout == "username=tokend\npassword=tok-old-456\npassword_expiry_utc=4070908800\n"
        d = helper_get(DOCKER_HELPER, "git.old.example", env)
        assert d.returncode == 0 and json.loads(d.stdout)["Secret"] == "tok-old-456", d
    finally:
        old.sock.close()
    assert [line.split("\t")[0] for line in old.requests] == ["helper", "routes", "get"] * 2
