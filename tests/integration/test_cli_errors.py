"""Bad input through the real executables: one clear stderr line and the right exit status.

Exit statuses (DESIGN §4): 0 success, 1 no credential, 2 usage or config error,
3 daemon unreachable (fallback disabled), 4 login required.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import TOKEND, TOKEND_PRINT, Result, Sandbox


def _one_line(r: Result, status: int, *needles: str) -> None:
    assert r.status == status, r
    assert r.out == "", r
    assert len(r.err_lines) == 1, r.err
    assert r.err.endswith("\n")
    for needle in needles:
        assert needle in r.err, (needle, r.err)
    assert "Traceback" not in r.err


BAD_CONFIGS = {
    "malformed TOML": ('[profiles.p\nsource = "command"\n', ["invalid TOML"]),
    "unknown source": ('[profiles.p]\nsource = "nope"\n', ["profiles.p.source", "unknown source 'nope'"]),
    "command not a list": (
        '[profiles.p]\nsource = "command"\ncommand = "echo hi"\n',
        ["profiles.p.command", "expected a non-empty array of strings, got a string"],
    ),
    "duration of the wrong type": (
        '[profiles.p]\nsource = "command"\ncommand = ["true"]\nmin_ttl = true\n',
        ["profiles.p.min_ttl", "got a boolean"],
    ),
    "bad duration": (
        '[profiles.p]\nsource = "command"\ncommand = ["true"]\nttl = "5 parsecs"\n',
        ["profiles.p.ttl", "5 parsecs"],
    ),
    "unknown key": (
        '[profiles.p]\nsource = "command"\ncommand = ["true"]\ncolour = "red"\n',
        ["profiles.p.colour", "unknown key"],
    ),
    "missing required key": ('[profiles.p]\nsource = "command"\n', ["profiles.p.command", "required"]),
    "defaults of the wrong type": (
        '[defaults]\nmin_ttl = [1]\n[profiles.p]\nsource = "demo"\n',
        ["defaults.min_ttl", "got an array"],
    ),
    "profiles not a table": ("profiles = 3\n", ["profiles", "expected a table"]),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config(sandbox: Sandbox, case: str) -> None:
    text, needles = BAD_CONFIGS[case]
    path = str(sandbox.write_config(text))
    # Daemonless, through the full CLI ...
    _one_line(sandbox.tokend("get", "--no-daemon", "p"), 2, path, *needles)
    # ... the daemon refuses to start with it ...
    _one_line(sandbox.tokend("serve", timeout=15), 2, path, *needles)
    # ... and the helper (whose autostarted daemon cannot start) ends up saying the same.
    _one_line(sandbox.print_("p"), 2, path, *needles)
    assert sandbox.daemon_pids() == []


@pytest.mark.timeout(30)
def test_unknown_profile(sandbox: Sandbox) -> None:
    up = sandbox.upstream("known")
    sandbox.write_config(sandbox.command_profile("known", up, min_ttl="5s"))
    _one_line(sandbox.tokend("get", "--no-daemon", "nosuch"), 2, "nosuch", "known")
    _one_line(sandbox.print_("nosuch", env=sandbox.env(TOKEND_NO_DAEMON="1")), 2, "nosuch")
    sandbox.start_daemon()
    _one_line(sandbox.print_("nosuch"), 2, "nosuch", "known")
    _one_line(sandbox.tokend("get", "nosuch"), 2, "nosuch")
    assert up.fetches == 0


@pytest.mark.timeout(30)
def test_config_path_that_cannot_be_read(sandbox: Sandbox) -> None:
    a_dir = sandbox.root / "config-dir"
    a_dir.mkdir()
    env = sandbox.env(TOKEND_CONFIG=str(a_dir))
    _one_line(sandbox.tokend("get", "--no-daemon", "p", env=env), 2, str(a_dir), "cannot read config")
    _one_line(sandbox.tokend("serve", env=env, timeout=15), 2, str(a_dir))
    missing = sandbox.env(TOKEND_CONFIG=str(sandbox.root / "missing.toml"))
    _one_line(sandbox.tokend("get", "--no-daemon", "p", env=missing), 2, "missing.toml", "not found")


@pytest.mark.timeout(30)
def test_unreadable_config_as_an_ordinary_user() -> None:
    # Root reads anything, so the chmod-000 case runs as nobody.
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    base = Path(tempfile.mkdtemp(prefix="tdn", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        config = base / "config.toml"
        config.write_text('[profiles.p]\nsource = "demo"\n')
        os.chmod(config, 0o000)
        runtime = base / "r"
        runtime.mkdir(mode=0o700)
        os.chown(runtime, 65534, 65534)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(base),
            "XDG_RUNTIME_DIR": str(runtime),
            "TOKEND_CONFIG": str(config),
            "LC_ALL": "C.UTF-8",
        }
        as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        reach = subprocess.run([*as_nobody, "test", "-r", TOKEND], env=env, timeout=20, check=False)
        if reach.returncode != 0:
            pytest.skip(f"uid nobody cannot read {TOKEND} (the checkout sits in a private directory)")
        proc = subprocess.run(
            [*as_nobody, TOKEND, "get", "--no-daemon", "p"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            cwd="/",
        )
        r = Result(proc.returncode, proc.stdout, proc.stderr, 0.0)
        _one_line(r, 2, str(config), "Permission denied")
    finally:
        shutil.rmtree(base)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_config_writable_by_others_is_refused(sandbox: Sandbox, mode: int) -> None:
    path = str(sandbox.write_config('[profiles.p]\nsource = "demo"\n', mode=mode))
    _one_line(sandbox.tokend("get", "--no-daemon", "p"), 2, path, "writable by group or others")
    _one_line(sandbox.tokend("serve", timeout=15), 2, path, "writable")
    _one_line(sandbox.print_("p"), 2, path, "writable")
    assert sandbox.daemon_pids() == []


@pytest.mark.timeout(30)
def test_socket_path_too_long(sandbox: Sandbox) -> None:
    up = sandbox.upstream("deep")
    sandbox.write_config(sandbox.command_profile("deep", up, min_ttl="5s"))
    long_dir = str(sandbox.root / ("x" * (120 - len(str(sandbox.root)) - 1)))
    assert len(long_dir) == 120
    os.mkdir(long_dir, 0o700)
    env = sandbox.env(XDG_RUNTIME_DIR=long_dir)
    r = sandbox.tokend("serve", env=env, timeout=15)
    assert r.status != 0
    assert len(r.err_lines) == 1, r.err
    assert "107" in r.err and "XDG_RUNTIME_DIR" in r.err
    # The helper cannot reach any daemon there, so it works daemonless.
    p = sandbox.print_("deep", env=env)
    assert p.status == 0, p
    assert p.out == up.tokens()[0] + "\n"


@pytest.mark.timeout(30)
def test_control_commands_without_a_daemon(sandbox: Sandbox) -> None:
    sandbox.write_config('[profiles.p]\nsource = "demo"\n\n[profiles.other]\nsource = "demo"\n')
    for command in (["stop"], ["reload"]):
        _one_line(sandbox.tokend(*command), 3, sandbox.socket_path)
    # status says the same on stderr, and lists the configured profiles on stdout.
    status = sandbox.tokend("status")
    _one_line(dataclasses.replace(status, out=""), 3, sandbox.socket_path)
    assert "tokend-print PROFILE" in status.out and "tokend service install" in status.out
    rows = [line.split() for line in status.out.splitlines()]
    assert ["p", "demo", "not", "running"] in rows and ["other", "demo", "not", "running"] in rows
    assert str(sandbox.config_path) in status.out
    as_json = sandbox.tokend("status", "--json")
    _one_line(dataclasses.replace(as_json, out=""), 3, sandbox.socket_path)
    doc = json.loads(as_json.out)
    assert doc["running"] is False and "tokend service install" in doc["hint"]
    assert doc["profiles"] == [
        {"profile": "p", "source": "demo", "state": "not running"},
        {"profile": "other", "source": "demo", "state": "not running"},
    ]
    assert sandbox.daemon_pids() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "args,needle",
    [
        (["--bogus", "p"], "--bogus"),
        (["p", "--format"], "--format"),
        (["p", "--min-ttl"], "--min-ttl"),
        (["p", "q"], "'q'"),
        ([], "usage"),
    ],
)
def test_bad_flags_to_tokend_print(sandbox: Sandbox, args: list[str], needle: str) -> None:
    sandbox.write_config('[profiles.p]\nsource = "demo"\n')
    _one_line(sandbox.print_(*args), 2, needle)
    assert sandbox.daemon_pids() == []  # rejected before anything starts


@pytest.mark.timeout(30)
def test_bad_values_checked_by_the_daemon(sandbox: Sandbox) -> None:
    up = sandbox.upstream("v")
    sandbox.write_config(sandbox.command_profile("v", up, min_ttl="5s"))
    sandbox.start_daemon()
    _one_line(sandbox.print_("v", "--format", "bogus"), 2, "bogus")
    _one_line(sandbox.print_("v", "--min-ttl", "soon"), 2, "soon")
    _one_line(sandbox.tokend("get", "v", "--format", "bogus"), 2, "bogus")
    _one_line(sandbox.tokend("get", "v", "--min-ttl", "soon"), 2, "soon")
    _one_line(sandbox.tokend("get", "v", "--bogus"), 2, "--bogus")
    _one_line(sandbox.tokend("get"), 2, "PROFILE")
    assert up.fetches == 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan"])
def test_bad_tokend_timeout(sandbox: Sandbox, value: str) -> None:
    sandbox.write_config('[profiles.p]\nsource = "demo"\n')
    env = sandbox.env(TOKEND_TIMEOUT=value)
    _one_line(sandbox.print_("p", env=env), 2, "TOKEND_TIMEOUT")
    _one_line(sandbox.tokend("get", "p", env=env), 2, "TOKEND_TIMEOUT")
    daemonless = sandbox.env(TOKEND_TIMEOUT=value, TOKEND_NO_DAEMON="1")
    _one_line(sandbox.print_("p", env=daemonless), 2, "TOKEND_TIMEOUT")
    assert sandbox.daemon_pids() == []


@pytest.mark.timeout(30)
def test_help_goes_to_stdout_with_status_0(sandbox: Sandbox) -> None:
    r = sandbox.print_("--help")
    assert r.status == 0 and r.out.startswith("usage: tokend-print") and r.err == ""
    r = sandbox.run([TOKEND_PRINT, "-h"])
    assert r.status == 0 and "PROFILE" in r.out


@pytest.mark.timeout(30)
def test_help_shows_formats_environment_and_exit_statuses(sandbox: Sandbox) -> None:
    from tokend import formats

    out = sandbox.print_("--help").out
    for fmt in formats.RENDERERS:
        assert fmt in out, fmt
    for name in ("TOKEND_TIMEOUT", "TOKEND_CONFIG", "TOKEND_NO_DAEMON", "TOKEND_NO_AUTOSTART",
                 "TOKEND_NO_FALLBACK", "KUBERNETES_EXEC_INFO"):
        assert name in out, name
    statuses = out.split("exit status:")[1]
    for status in range(5):
        assert f"\n  {status}  " in statuses, status


AWS_SSO_CONFIG = """\
[profile dev]
sso_start_url = https://example.awsapps.com/start
sso_region = us-east-1
sso_account_id = 123456789012
sso_role_name = Dev
region = us-east-1
"""


@pytest.mark.timeout(60)
def test_login_required_exits_4(sandbox: Sandbox) -> None:
    # An AWS SSO profile nobody has signed in to (no token in ~/.aws/sso/cache).
    if importlib.util.find_spec("botocore") is None:
        pytest.skip("the aws extra (botocore) is not installed")
    aws = sandbox.home / ".aws"
    aws.mkdir()
    (aws / "config").write_text(AWS_SSO_CONFIG)
    sandbox.write_config('[profiles.bedrock]\nsource = "aws"\naws_profile = "dev"\n')
    env = sandbox.env(
        AWS_CONFIG_FILE=str(aws / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(aws / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    for r in (
        sandbox.print_("bedrock", "--format", "aws-process", env={**env, "TOKEND_NO_DAEMON": "1"}),
        sandbox.tokend("get", "--no-daemon", "bedrock", "--format", "aws-process", env=env),
        sandbox.print_("bedrock", "--format", "aws-process", env=env),  # through an autostarted daemon
    ):
        _one_line(r, 4, "tokend: bedrock: ", "tokend login bedrock")


MISSED = re.compile(r"^tokend: slow: no credential within [0-9.]+s \(TOKEND_TIMEOUT\)$")


@pytest.mark.timeout(60)
def test_a_missed_deadline_reads_the_same_with_and_without_a_daemon(sandbox: Sandbox) -> None:
    up = sandbox.upstream("slow")
    up.set_mode("hang")
    sandbox.write_config(sandbox.command_profile("slow", up))
    daemonless = sandbox.env(TOKEND_NO_DAEMON="1", TOKEND_TIMEOUT="1")
    lines = [
        sandbox.print_("slow", env=daemonless),
        sandbox.tokend("get", "slow", "--no-daemon", "--timeout", "1"),
    ]
    sandbox.start_daemon()
    lines += [
        sandbox.print_("slow", env=sandbox.env(TOKEND_TIMEOUT="1")),
        sandbox.tokend("get", "slow", "--timeout", "1"),
    ]
    for r in lines:
        assert r.status == 1 and len(r.err_lines) == 1 and MISSED.match(r.err_lines[0]), r
