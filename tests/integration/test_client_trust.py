"""What the clients trust in the user's own space: planted symlinks, foreign configs, odd answers."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.integration.conftest import BIN, Sandbox

ATTACKER = 1234
GIT_HELPER = str(BIN / "git-credential-tokend")
GIT_INPUT = "protocol=https\nhost=git.example.com\n\n"


# -- autostart opens nothing through a symlink ------------------------------------------


@pytest.mark.parametrize("name", ["autostart.lock", "tokend.log"])
def test_autostart_follows_no_planted_symlink(sandbox: Sandbox, name: str) -> None:
    up = sandbox.upstream("work")
    sandbox.write_config(sandbox.command_profile("work", up))
    sandbox.rundir.mkdir(mode=0o700)
    target = sandbox.root / f"planted-{name}"
    (sandbox.rundir / name).symlink_to(target)

    r = sandbox.print_("work", env=sandbox.env(TOKEND_NO_FALLBACK="1"))

    assert not target.exists(), r
    assert (sandbox.rundir / name).is_symlink()
    assert r.status == 3 and r.out == "", r
    assert r.err_lines == [f"tokend: refusing {sandbox.rundir / name}: a symlink (remove it)"], r


# -- the config belongs to the user ---------------------------------------------------------


def _config(sandbox: Sandbox, how: str) -> tuple[dict[str, str], str]:
    """Plant the config ``how``; the environment that points at it and what the refusal names."""
    up = sandbox.upstream("work")
    text = sandbox.command_profile("work", up) + '[hosts]\n"git.example.com" = "work"\n'
    if how == "foreign-owner":
        path = sandbox.write_config(text, mode=0o644)
        os.chown(path, ATTACKER, ATTACKER)
        return sandbox.env(), f"tokend: {path}: refusing a config owned by uid {ATTACKER}, not you"
    if how == "symlink-to-foreign":
        theirs = sandbox.root / "theirs.toml"
        theirs.write_text(text)
        os.chmod(theirs, 0o644)
        os.chown(theirs, ATTACKER, ATTACKER)
        sandbox.config_path.symlink_to(theirs)
        return (
            sandbox.env(),
            f"tokend: {sandbox.config_path}: refusing a config owned by uid {ATTACKER}, not you",
        )
    if how == "open-dir":
        open_dir = sandbox.root / "open"
        open_dir.mkdir()
        os.chmod(open_dir, 0o777)
        path = sandbox.write_config(text, path=open_dir / "config.toml")
        return sandbox.env(TOKEND_CONFIG=str(path)), (
            f"tokend: {path}: refusing a config in {open_dir}, which others can write (mode 0777"
        )
    raise AssertionError(how)


HOWS = ["foreign-owner", "symlink-to-foreign", "open-dir"]


@pytest.mark.parametrize("how", HOWS)
def test_get_no_daemon_refuses_a_config_others_control(sandbox: Sandbox, how: str) -> None:
    env, expected = _config(sandbox, how)
    r = sandbox.tokend("get", "--no-daemon", "work", env=env)
    assert sandbox.upstream("work").fetches == 0, r
    assert r.status == 2 and r.out == "", r
    assert len(r.err_lines) == 1 and r.err.startswith(expected), r


@pytest.mark.parametrize("how", HOWS)
def test_git_helper_refuses_a_config_others_control(sandbox: Sandbox, how: str) -> None:
    env, expected = _config(sandbox, how)
    r = sandbox.run([GIT_HELPER, "get"], env=dict(env, TOKEND_NO_DAEMON="1"), input=GIT_INPUT)
    assert sandbox.upstream("work").fetches == 0, r
    assert r.status == 2 and r.out == "", r
    assert len(r.err_lines) == 1 and r.err.startswith(expected), r


def test_a_config_of_ours_in_a_sticky_shared_dir_is_fine(sandbox: Sandbox) -> None:
    """Like /tmp: others can write the directory but not replace our file in it."""
    up = sandbox.upstream("work")
    shared = sandbox.root / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    path = sandbox.write_config(sandbox.command_profile("work", up), path=shared / "config.toml")
    r = sandbox.tokend("get", "--no-daemon", "work", env=sandbox.env(TOKEND_CONFIG=str(path)))
    assert r.status == 0, r
    assert r.out == up.tokens()[0] + "\n"


# -- an unreadable status answer --------------------------------------------------------------


@pytest.fixture
def hello_listener(sandbox: Sandbox) -> Iterator[None]:
    """A listener of our own uid at the socket path that answers ``0 5\\nhello`` to anything."""
    sandbox.rundir.mkdir(mode=0o700)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sandbox.socket_path)
    server.listen(8)
    server.settimeout(0.2)  # so the thread sees ``stop``
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"0 5\nhello")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        server.close()


def test_status_given_a_non_json_answer_says_so_in_one_line(sandbox: Sandbox, hello_listener: None) -> None:
    for args in (["status"], ["status", "--json"]):
        r = sandbox.tokend(*args)
        assert r.status == 3 and r.out == "", r
        assert r.err_lines == [
            f"tokend: the daemon at {sandbox.socket_path} sent an unreadable status (not JSON)"
        ], r
        assert "Traceback" not in r.err
