"""The request path through a real daemon and daemonless processes: floors, bounds, bad answers, redaction."""

from __future__ import annotations

import json
import math
import socket
import textwrap
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox
from tokend.client import protocol


def _raw(sandbox: Sandbox, line: bytes) -> tuple[int, bytes]:
    return protocol.call(sandbox.socket_path, line, 10.0)


@pytest.mark.timeout(60)
def test_the_daemon_applies_the_aws_process_floor(sandbox: Sandbox) -> None:
    # 15 minutes of life: plenty for raw (min_ttl 1m), too little for credential_process (16m).
    up = sandbox.upstream("bedrock", expires_in=15 * 60)
    sandbox.write_config(sandbox.command_profile("bedrock", up, min_ttl="1m"))
    sandbox.start_daemon()
    assert sandbox.print_("bedrock").status == 0
    assert up.fetches == 1
    r = sandbox.print_("bedrock", "--format", "aws-process")
    assert r.status == 1 and r.out == ""
    assert len(r.err_lines) == 1 and "16m00s" in r.err, r.err
    assert up.fetches == 2  # the floor sent it upstream instead of serving the cache


@pytest.mark.timeout(60)
def test_huge_min_ttl_is_a_usage_error_and_the_daemon_keeps_serving(sandbox: Sandbox) -> None:
    sandbox.write_config('[profiles.demo]\nsource = "demo"\nlatency = "0s"\n')
    sandbox.start_daemon()
    nines = "9" * 400
    r = sandbox.print_("demo", "--min-ttl", nines)
    assert r.status == 2 and r.out == ""
    assert len(r.err_lines) == 1 and "--min-ttl" in r.err
    status, body = _raw(sandbox, f"get\tprofile=demo\tmin_ttl={nines}\n".encode())
    assert status == 2 and b"maximum" in body
    for value in ("nan", "inf", "1e999", "31d"):
        status, body = _raw(sandbox, f"get\tprofile=demo\tmin_ttl={value}\n".encode())
        assert status == 2, (value, body)
    assert sandbox.print_("demo").status == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("expires_in", [math.nan, math.inf, 1e300, -30.0])
def test_bad_upstream_expiry_is_one_line_and_backed_off(sandbox: Sandbox, expires_in: float) -> None:
    up = sandbox.upstream("odd", expires_in=expires_in)
    sandbox.write_config(sandbox.command_profile("odd", up))
    sandbox.start_daemon()
    for fmt in ("raw", "json") * 10:
        r = sandbox.print_("odd", "--format", fmt)
        assert r.status == 1 and r.out == "", r
        assert len(r.err_lines) == 1 and "internal error" not in r.err, r.err
    # One upstream run, maybe a second once the first backoff (1-2 s) passed on a slow machine.
    assert 1 <= up.fetches <= 3, up.fetches
    row = sandbox.profile_status("odd")
    assert row["state"] == "error" and row["last_error"]
    r = sandbox.tokend("status")
    assert r.status == 0 and "odd" in r.out


@pytest.mark.timeout(60)
def test_min_ttl_the_source_cannot_meet_goes_upstream_once(sandbox: Sandbox) -> None:
    up = sandbox.upstream("short", expires_in=50 * 60)
    sandbox.write_config(sandbox.command_profile("short", up))
    sandbox.start_daemon()
    for _ in range(20):
        r = sandbox.print_("short", "--min-ttl", "2h")
        assert r.status == 1 and len(r.err_lines) == 1, r
    assert up.fetches == 1
    assert sandbox.print_("short").status == 0  # served from the same cache
    assert up.fetches == 1


@pytest.mark.timeout(60)
def test_upstream_life_below_min_ttl_is_explained_and_backed_off(sandbox: Sandbox) -> None:
    up = sandbox.upstream("brief", expires_in=60)  # the default min_ttl is 5m
    sandbox.write_config(sandbox.command_profile("brief", up))
    sandbox.start_daemon()
    for _ in range(20):
        r = sandbox.print_("brief")
        assert r.status == 1 and "min_ttl" in r.err, r
    assert 1 <= up.fetches <= 3, up.fetches
    assert "min_ttl" in str(sandbox.profile_status("brief")["last_error"])


def _leaky_config(secret_file: Path, names: tuple[str, ...], timeout: str = "30s") -> str:
    """Profiles NAMES serving the file's value, and ``leak``, whose upstream fails echoing it."""
    parts = []
    for name in names:
        cmd = json.dumps(["/bin/sh", "-c", f"cat {secret_file}"])
        parts.append(f'[profiles.{name}]\nsource = "command"\ncommand = {cmd}\ntimeout = "{timeout}"\n')
    echo = secret_file.with_name(secret_file.name + ".echo")
    echo.write_text(secret_file.read_text())
    leak = ["/bin/sh", "-c", f'echo "upstream said $(cat {echo})" >&2; exit 3']
    parts.append(f'[profiles.leak]\nsource = "command"\ncommand = {json.dumps(leak)}\n')
    return "\n".join(parts)


@pytest.mark.timeout(60)
def test_a_value_still_served_by_another_profile_stays_redacted_after_a_reload(sandbox: Sandbox) -> None:
    secret = sandbox.root / "secret"
    value = "shared-value-" + "7" * 20
    secret.write_text(value + "\n")
    sandbox.write_config(_leaky_config(secret, ("a", "b")))
    sandbox.start_daemon()
    assert sandbox.print_("a").out == value + "\n"
    assert sandbox.print_("b").out == value + "\n"
    sandbox.write_config(_leaky_config(secret, ("a", "b"), timeout="20s"))  # both change: both dropped
    sandbox.write_config(_leaky_config(secret, ("a",), timeout="20s") + textwrap.dedent(f"""
        [profiles.b]
        source = "command"
        command = {json.dumps(["/bin/sh", "-c", f"cat {secret}"])}
        timeout = "30s"
        """))  # only a changes: a is dropped, b keeps serving the value
    assert sandbox.tokend("reload").status == 0
    r = sandbox.print_("leak")
    assert r.status == 1
    assert value not in r.err and "***" in r.err, r.err
    assert value not in str(sandbox.profile_status("leak")["last_error"])


@pytest.mark.timeout(60)
def test_daemonless_redacts_values_loaded_from_the_file_cache(sandbox: Sandbox) -> None:
    secret = sandbox.root / "secret"
    value = "cached-value-" + "5" * 20
    secret.write_text(value + "\n")
    sandbox.write_config(_leaky_config(secret, ("a",)))
    env = sandbox.env(TOKEND_NO_DAEMON="1")
    assert sandbox.tokend("get", "a", env=env).out == value + "\n"
    secret.write_text("")  # a is now only in the file cache
    r = sandbox.tokend("exec", "-e", "A=a", "-e", "L=leak", "--", "true", env=env)
    assert r.status == 1
    assert value not in r.err and "***" in r.err, r.err


def test_status_line_protocol_is_unchanged(sandbox: Sandbox) -> None:
    sandbox.write_config('[profiles.demo]\nsource = "demo"\n')
    sandbox.start_daemon()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sandbox.socket_path)
        s.sendall(b"ping\n")
        assert s.recv(64).startswith(b"0 ")
