"""``tokend serve`` as a real process: expiry, peer checks, hostile clients, failing upstreams."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration import otheruid
from tests.integration.conftest import Sandbox, mode_of, ping


def _wait_until(pred, timeout: float, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


# -- expiry ---------------------------------------------------------------------------


@pytest.mark.timeout(40)
def test_expired_by_wall_clock_is_never_served(sandbox: Sandbox) -> None:
    # 8 s of life and min_ttl 5 s: after 3 s the first token may no longer be served.
    up = sandbox.upstream("short", expires_in=8)
    sandbox.write_config(sandbox.command_profile("short", up, min_ttl="5s"))
    sandbox.start_daemon()
    first = sandbox.print_("short")
    assert first.status == 0
    token_a = up.tokens()[0]
    assert first.out == token_a + "\n"

    time.sleep(3.5)
    second = sandbox.print_("short")
    assert second.status == 0, second
    assert second.out != first.out
    assert second.out == up.tokens()[-1] + "\n"
    assert up.fetches >= 2


@pytest.mark.timeout(40)
def test_expired_token_not_served_even_when_refresh_fails(sandbox: Sandbox) -> None:
    up = sandbox.upstream("doomed", expires_in=8)
    sandbox.write_config(sandbox.command_profile("doomed", up, min_ttl="5s"))
    sandbox.start_daemon()
    first = sandbox.print_("doomed")
    assert first.status == 0
    up.set_mode("fail")
    # Still valid (more than min_ttl left): the cached token is served.
    assert sandbox.print_("doomed").out == first.out
    time.sleep(3.5)
    late = sandbox.print_("doomed")
    assert late.status == 1, late
    assert late.out == ""
    assert len(late.err_lines) == 1 and "doomed" in late.err
    assert first.out.strip() not in late.err


@pytest.mark.timeout(30)
def test_min_ttl_per_request_larger_than_remaining_life_fetches_a_new_token(sandbox: Sandbox) -> None:
    up = sandbox.upstream("ttl", expires_in=100)
    sandbox.write_config(sandbox.command_profile("ttl", up, min_ttl="5s"))
    sandbox.start_daemon()
    first = sandbox.print_("ttl")
    assert first.status == 0
    time.sleep(2)  # the token now has about 98 s left
    assert sandbox.print_("ttl", "--min-ttl", "90s").out == first.out
    assert up.fetches == 1
    demanding = sandbox.print_("ttl", "--min-ttl", "99s")
    assert demanding.status == 0, demanding
    assert demanding.out != first.out
    assert demanding.out == up.tokens()[-1] + "\n"
    assert up.fetches == 2
    # The new token replaced the old one for everybody.
    assert sandbox.print_("ttl").out == demanding.out
    # More than any token this source issues can satisfy: an error, not a short token.
    impossible = sandbox.print_("ttl", "--min-ttl", "10m")
    assert impossible.status == 1
    assert impossible.out == ""
    assert len(impossible.err_lines) == 1 and "ttl" in impossible.err


# -- peer checks and the runtime dir ----------------------------------------------------


@pytest.mark.timeout(40)
def test_other_uid_is_refused_by_the_peer_check(sandbox: Sandbox) -> None:
    otheruid.require_setpriv()
    up = sandbox.upstream("peer")
    sandbox.write_config(sandbox.command_profile("peer", up, min_ttl="5s"))
    daemon = sandbox.start_daemon()
    token = sandbox.print_("peer").out.strip()
    assert token

    request = b"get\tprofile=peer\n"
    # The 0700 runtime dir keeps another user away from the socket entirely.
    assert otheruid.knock(sandbox.socket_path, request) == ("connect-failed", "13")
    # Reach past the directory check: only the daemon's peer check is left.
    kind, sent = otheruid.knock_past_the_directory(sandbox.socket_path, request)
    assert kind in ("closed", "reset") and sent == b"", f"the daemon sent {sent!r} to another uid"

    daemon.wait_for_log("refused a connection from uid 65534")
    assert token not in daemon.log_text()
    # The owner is still served.
    again = sandbox.print_("peer")
    assert again.status == 0 and again.out == token + "\n"
    assert daemon.alive()


@pytest.mark.timeout(30)
def test_runtime_dir_open_to_others_is_refused(sandbox: Sandbox) -> None:
    sandbox.write_config('[profiles.x]\nsource = "demo"\n')
    sandbox.rundir.mkdir(mode=0o700)
    os.chmod(sandbox.rundir, 0o777)
    r = sandbox.tokend("serve", timeout=15)
    assert r.status != 0
    assert len(r.err_lines) == 1, r.err
    assert "0777" in r.err and str(sandbox.rundir) in r.err
    assert not os.path.exists(sandbox.socket_path)
    assert mode_of(sandbox.rundir) == 0o777  # not "fixed" behind the user's back


@pytest.mark.timeout(30)
def test_runtime_dir_owned_by_another_user_is_refused(sandbox: Sandbox) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to chown")
    sandbox.write_config('[profiles.x]\nsource = "demo"\n')
    sandbox.rundir.mkdir(mode=0o700)
    os.chown(sandbox.rundir, 65534, 65534)
    r = sandbox.tokend("serve", timeout=15)
    assert r.status != 0
    assert len(r.err_lines) == 1, r.err
    assert "65534" in r.err and str(sandbox.rundir) in r.err
    assert not os.path.exists(sandbox.socket_path)


# -- hostile and broken clients ----------------------------------------------------------


def _exchange(
    path: str, payload: bytes, *, shutdown: bool = False, timeout: float = 10.0
) -> tuple[bytes, float]:
    """Send ``payload``; everything received until the daemon closes, and how long that took."""
    start = time.monotonic()
    data = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        try:
            s.sendall(payload)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    return data, time.monotonic() - start


def _responses(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        header, _, rest = data.partition(b"\n")
        status, length = (int(x) for x in header.split(b" "))
        out.append((status, rest[:length]))
        data = rest[length:]
    return out


@pytest.mark.timeout(60)
def test_garbage_requests_are_refused_while_normal_clients_are_served(sandbox: Sandbox) -> None:
    up = sandbox.upstream("calm")
    sandbox.write_config(sandbox.command_profile("calm", up, min_ttl="5s"))
    daemon = sandbox.start_daemon()
    token = sandbox.print_("calm").out
    path = sandbox.socket_path

    bad = {
        "garbage": b"hello there, daemon\n",
        "empty line": b"\n",
        "unknown op": b"launch\tprofile=calm\n",
        "non-utf8": b"get\tprofile=\xff\xfe\n",
        "malformed field": b"get\tprofile\n",
        "binary": bytes(range(256)) + b"\n",
    }
    with ThreadPoolExecutor(16) as pool:
        # Connections that never finish a line, or send nothing at all.
        half_open = [pool.submit(_exchange, path, b"get\tprofile=calm") for _ in range(5)]
        silent = [pool.submit(_exchange, path, b"") for _ in range(5)]
        oversized = [pool.submit(_exchange, path, b"x" * (70 * 1024)) for _ in range(3)]
        answered = {name: pool.submit(_exchange, path, payload) for name, payload in bad.items()}

        # Meanwhile, ordinary callers are served as usual.
        normal = [sandbox.print_("calm") for _ in range(10)]
        assert [r.out for r in normal] == [token] * 10
        assert [r.status for r in normal] == [0] * 10

        for name, fut in answered.items():
            data, took = fut.result()
            replies = _responses(data)
            assert len(replies) == 1, (name, data)
            status, body = replies[0]
            assert status == 2, (name, data)
            assert body.startswith(b"tokend: malformed request"), (name, body)
            assert body.count(b"\n") == 1 and body.endswith(b"\n")
            assert took < 4, (name, took)  # closed at once, not after the 5 s request timeout

        for fut in oversized:
            data, took = fut.result()
            assert took < 4
            if data:  # answered before the close, or just closed
                ((status, body),) = _responses(data)
                assert status == 2 and b"over 65536 bytes" in body

        # Half-open and silent connections are closed after the 5 s request timeout.
        for fut in half_open + silent:
            data, took = fut.result()
            assert data == b""
            assert 4.0 <= took < 8.0, took

        # After all of that, still serving.
        assert sandbox.print_("calm").out == token
    assert daemon.alive()
    assert up.fetches == 1
    assert token.strip() not in daemon.log_text()


@pytest.mark.timeout(30)
def test_protocol_edge_cases_on_one_connection(sandbox: Sandbox) -> None:
    up = sandbox.upstream("pipe")
    sandbox.write_config(sandbox.command_profile("pipe", up, min_ttl="5s"))
    sandbox.start_daemon()
    token = sandbox.print_("pipe").out.encode()
    # Several requests in one write, answered in order; a half-closed client still gets them.
    data, _ = _exchange(
        sandbox.socket_path, b"ping\nget\tprofile=pipe\nget\nget\tprofile=nosuch\n", shutdown=True
    )
    replies = _responses(data)
    assert [s for s, _ in replies] == [0, 0, 2, 2]
    assert replies[0][1] == b"pong\n"
    assert replies[1][1] == token
    assert b"no profile" in replies[2][1]
    assert b"nosuch" in replies[3][1]


# -- failing upstreams --------------------------------------------------------------------


@pytest.mark.timeout(40)
def test_hanging_upstream_fails_within_the_helper_deadline(sandbox: Sandbox) -> None:
    up = sandbox.upstream("stuck")
    up.set_mode("hang")
    sandbox.write_config(sandbox.command_profile("stuck", up, min_ttl="5s", timeout="20s"))
    daemon = sandbox.start_daemon()
    for _ in range(2):  # a fetch in flight, then joining it
        r = sandbox.print_("stuck", env=sandbox.env(TOKEND_TIMEOUT="1"))
        assert r.elapsed < 3.0, r  # the 1 s deadline, with a loaded machine's margin
        assert r.status == 1, r
        assert r.out == ""
        assert len(r.err_lines) == 1, r.err
        assert r.err.startswith("tokend: stuck: ")
    assert up.fetches == 1
    assert daemon.alive()
    assert ping(sandbox.socket_path)


@pytest.mark.timeout(30)
def test_failing_upstream_gives_exit_1_and_one_line(sandbox: Sandbox) -> None:
    up = sandbox.upstream("broken")
    up.set_mode("fail")
    sandbox.write_config(sandbox.command_profile("broken", up, min_ttl="5s"))
    sandbox.start_daemon()
    r = sandbox.print_("broken", env=sandbox.env(TOKEND_TIMEOUT="1"))
    assert r.elapsed < 3.0, r
    assert r.status == 1
    assert r.out == ""
    assert len(r.err_lines) == 1
    assert r.err.startswith("tokend: broken: ") and "upstream exploded" in r.err


@pytest.mark.timeout(40)
def test_cached_credential_served_while_refreshes_fail(sandbox: Sandbox) -> None:
    # 9 s of life, min_ttl 1 s: the background refresh is due after about 4-4.5 s.
    up = sandbox.upstream("sturdy", expires_in=9)
    sandbox.write_config(sandbox.command_profile("sturdy", up, min_ttl="1s", refresh_limit="0s"))
    sandbox.start_daemon()
    first = sandbox.print_("sturdy")
    assert first.status == 0
    up.set_mode("fail")

    # A forced refresh fails upstream ...
    forced = sandbox.print_("sturdy", "--refresh")
    assert up.fetches == 2
    if forced.status == 0:
        assert forced.out == first.out
    else:
        assert forced.status == 1 and forced.out == "" and len(forced.err_lines) == 1
    # ... and the cached credential keeps being served.
    assert sandbox.print_("sturdy").out == first.out

    # The background refresh fails too; still served, and status shows why.
    assert _wait_until(lambda: up.fetches >= 3, timeout=8), up.lines()
    row = sandbox.profile_status("sturdy")
    assert row["last_error"] and "upstream exploded" in str(row["last_error"])
    assert row["state"] != "expired"
    r = sandbox.print_("sturdy")
    assert r.status == 0 and r.out == first.out
    assert first.out.strip() not in str(row)

    # Upstream recovers: the next refresh replaces the credential.
    up.set_mode("ok")
    fresh = sandbox.print_("sturdy", "--refresh")
    assert fresh.status == 0 and fresh.out != first.out
    assert fresh.out == up.tokens()[-1] + "\n"


# -- lifecycle: signals, stop, reload, second instance, stale socket -----------------------


@pytest.mark.timeout(30)
def test_sigterm_exits_0_and_removes_the_socket(sandbox: Sandbox) -> None:
    up = sandbox.upstream("bye")
    sandbox.write_config(sandbox.command_profile("bye", up, min_ttl="5s"))
    daemon = sandbox.start_daemon()
    assert sandbox.print_("bye").status == 0
    assert daemon.stop(signal.SIGTERM) == 0
    assert not os.path.exists(sandbox.socket_path)
    assert "stopping" in daemon.log_text()


@pytest.mark.timeout(40)
def test_sigterm_with_a_hung_fetch_exits_promptly_and_kills_the_command(sandbox: Sandbox) -> None:
    up = sandbox.upstream("wedged")
    up.set_mode("hang")
    sandbox.write_config(sandbox.command_profile("wedged", up, min_ttl="5s", timeout="30s"))
    daemon = sandbox.start_daemon()
    r = sandbox.print_("wedged", env=sandbox.env(TOKEND_TIMEOUT="0.5"))
    assert r.status == 1
    assert _wait_until(lambda: bool(sandbox.upstream_pids()), timeout=5)
    start = time.monotonic()
    os.kill(daemon.pid, signal.SIGTERM)
    try:
        rc = daemon.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("tokend serve still running 10 s after SIGTERM (waiting on the hung fetch)")
    assert rc == 0
    assert time.monotonic() - start < 6
    assert not os.path.exists(sandbox.socket_path)
    assert _wait_until(lambda: not sandbox.upstream_pids(), timeout=3), "hung upstream command left running"


@pytest.mark.timeout(30)
def test_tokend_stop(sandbox: Sandbox) -> None:
    up = sandbox.upstream("halt")
    sandbox.write_config(sandbox.command_profile("halt", up, min_ttl="5s"))
    daemon = sandbox.start_daemon()
    r = sandbox.tokend("stop")
    assert r.status == 0, r
    assert daemon.proc.wait(10) == 0
    assert not os.path.exists(sandbox.socket_path)
    again = sandbox.tokend("stop")
    assert again.status == 3 and len(again.err_lines) == 1


@pytest.mark.timeout(30)
def test_second_serve_fails_and_the_first_keeps_serving(sandbox: Sandbox) -> None:
    up = sandbox.upstream("solo")
    sandbox.write_config(sandbox.command_profile("solo", up, min_ttl="5s"))
    daemon = sandbox.start_daemon()
    token = sandbox.print_("solo").out
    inode = os.stat(sandbox.socket_path).st_ino
    r = sandbox.tokend("serve", timeout=15)
    assert r.status == 1, r
    assert len(r.err_lines) == 1
    assert "already running" in r.err and str(daemon.pid) in r.err
    assert os.stat(sandbox.socket_path).st_ino == inode
    assert daemon.alive()
    assert sandbox.print_("solo").out == token
    assert sandbox.status()["pid"] == daemon.pid


@pytest.mark.timeout(30)
def test_stale_socket_from_a_crashed_daemon_is_replaced(sandbox: Sandbox) -> None:
    up = sandbox.upstream("crash")
    sandbox.write_config(sandbox.command_profile("crash", up, min_ttl="5s"))
    old = sandbox.start_daemon()
    assert sandbox.print_("crash").status == 0
    assert old.stop(signal.SIGKILL) == -signal.SIGKILL
    assert os.path.exists(sandbox.socket_path)
    assert not ping(sandbox.socket_path)

    new = sandbox.start_daemon()
    r = sandbox.print_("crash")
    assert r.status == 0 and r.out == up.tokens()[-1] + "\n"
    assert up.fetches == 2  # the new daemon starts with an empty cache
    assert sandbox.status()["pid"] == new.pid
    assert mode_of(sandbox.socket_path) == 0o600


@pytest.mark.timeout(40)
def test_sighup_reload(sandbox: Sandbox) -> None:
    keep = sandbox.upstream("keep")
    change = sandbox.upstream("change")
    config = sandbox.command_profile("keep", keep, min_ttl="5s")
    sandbox.write_config(config + sandbox.command_profile("change", change, min_ttl="5s"))
    daemon = sandbox.start_daemon()
    keep_token = sandbox.print_("keep").out
    change_token = sandbox.print_("change").out
    assert keep.fetches == change.fetches == 1

    # Change one profile's settings.
    sandbox.write_config(config + sandbox.command_profile("change", change, min_ttl="6s"))
    os.kill(daemon.pid, signal.SIGHUP)
    daemon.wait_for_log("dropped: change")
    assert sandbox.print_("keep").out == keep_token
    new_change = sandbox.print_("change").out
    assert new_change != change_token and new_change == change.tokens()[-1] + "\n"
    assert keep.fetches == 1 and change.fetches == 2

    # A broken config on reload: the old one stays in force.
    sandbox.write_config(config + "[profiles.change\nsource = \n")
    os.kill(daemon.pid, signal.SIGHUP)
    daemon.wait_for_log("reload failed, keeping the previous configuration")
    assert daemon.alive()
    assert sandbox.print_("keep").out == keep_token
    assert sandbox.print_("change").out == new_change
    # `tokend reload` says why, with the config error's exit status.
    r = sandbox.tokend("reload")
    assert r.status == 2, r
    assert len(r.err_lines) == 1 and str(sandbox.config_path) in r.err
    assert sandbox.print_("keep").out == keep_token
    assert keep.fetches == 1 and change.fetches == 2
