"""``tokend exec``: credentials in a command's environment, masking, exit status and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .conftest import TOKEND, Sandbox, Upstream

PY = [sys.executable, "-I", "-S", "-c"]


def world(sandbox: Sandbox) -> tuple[Upstream, dict[str, str]]:
    up = sandbox.upstream("ci")
    sandbox.write_config(sandbox.command_profile("ci", up))
    return up, sandbox.env()


def test_mask_replaces_the_secret_in_both_streams_and_keeps_the_status(sandbox: Sandbox) -> None:
    up, env = world(sandbox)
    child = (
        "import os, sys, time\n"
        "t = os.environ['TOKEN']\n"
        "os.write(1, ('token: ' + t[:5]).encode()); time.sleep(0.1); os.write(1, (t[5:] + '\\n').encode())\n"
        "os.write(2, ('again ' + t + ' and ' + os.environ['SAME'] + '\\n').encode())\n"
        "sys.exit(7)\n"
    )
    r = sandbox.tokend("exec", "-e", "TOKEN=ci", "-e", "SAME=ci:token", "--mask", "--", *PY, child, env=env)
    assert r.status == 7, r
    assert r.out == "token: ***\n"
    assert r.err == "again *** and ***\n"
    assert up.fetches == 1 and sandbox.daemon_pids() == []  # daemonless, one fetch


def test_without_mask_the_command_replaces_tokend(sandbox: Sandbox) -> None:
    up, env = world(sandbox)
    proc = subprocess.Popen(
        [TOKEND, "exec", "-e", "TOKEN=ci", "--", *PY, "import os; print(os.getpid(), os.environ['TOKEN'])"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=30)
    pid, token = out.split()
    assert int(pid) == proc.pid  # exec'd: signals and exit status are the command's own
    assert token == up.tokens()[-1]
    missing = sandbox.tokend("exec", "-e", "TOKEN=ci", "--", "no-such-command-xyz", env=env)
    assert missing.status == 127
    assert missing.err_lines == ["tokend: exec: no-such-command-xyz: command not found"]
    masked = sandbox.tokend("exec", "-e", "TOKEN=ci", "--mask", "--", "no-such-command-xyz", env=env)
    assert masked.status == 127


SIGNAL_CHILD = r"""
import os, signal, time
def on(sig, frame):
    os.write(1, ("child got %d %s\n" % (sig, os.environ["TOKEN"])).encode())
    os._exit(40 + sig)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, on)
os.write(1, b"ready\n")
time.sleep(30)
"""


def run_until_ready(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [TOKEND, "exec", "-e", "TOKEN=ci", *args, "--", *PY, SIGNAL_CHILD],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_signals_are_forwarded_and_the_status_passed_on(sandbox: Sandbox) -> None:
    _, env = world(sandbox)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        proc = run_until_ready(env, "--mask")
        os.kill(proc.pid, sig)  # to tokend itself, not its child
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 40 + sig, (sig, out, err)
        assert out == f"child got {int(sig)} ***\n"


def test_a_child_killed_by_a_signal_kills_tokend_alike(sandbox: Sandbox) -> None:
    _, env = world(sandbox)
    r = subprocess.run(
        [TOKEND, "exec", "-e", "TOKEN=ci", "--mask", "--", *PY, "import os, signal; os.kill(os.getpid(), 9)"],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == -signal.SIGKILL


def test_bare_profile_and_errors(sandbox: Sandbox) -> None:
    up, env = world(sandbox)
    r = sandbox.tokend("exec", "-e", "ci", "--", *PY, "import os; print(os.environ['TOKEND_TOKEN'])", env=env)
    assert r.status == 0 and r.out.strip() == up.tokens()[-1]
    unknown = sandbox.tokend("exec", "-e", "X=nope", "--", "true", env=env)
    assert unknown.status == 2 and "unknown profile 'nope'" in unknown.err
    bad = sandbox.upstream("bad")
    bad.set_mode("fail")
    sandbox.write_config(sandbox.command_profile("ci", up) + sandbox.command_profile("bad", bad))
    marker = sandbox.root / "ran"
    failed = sandbox.tokend("exec", "-e", "A=ci", "-e", "B=bad", "--", "touch", str(marker), env=env)
    assert failed.status == 1 and failed.out == ""
    assert len(failed.err_lines) == 1 and failed.err.startswith("tokend: bad: ")
    assert not marker.exists()  # no command runs without all of its credentials
