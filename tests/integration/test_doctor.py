"""``tokend doctor`` as a new user runs it: a fresh machine, a healthy setup, a broken one."""

from __future__ import annotations

import json
import os
import socketserver
import stat
import threading

import pytest

from tests.integration.conftest import BIN, TOKEND_PRINT, Sandbox
from tokend.client import protocol

#: Consumer locations of the developer's session that must not be read.
CONSUMER_VARS = ("CODEX_HOME", "CLAUDE_CONFIG_DIR", "AWS_CONFIG_FILE", "KUBECONFIG", "DOCKER_CONFIG", "CI")


def fresh_env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    """A user with nothing set up: no TOKEND_CONFIG, consumers' files under the sandbox home."""
    env = sandbox.env(GIT_CONFIG_NOSYSTEM="1", **extra)
    for name in ("TOKEND_CONFIG", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", *CONSUMER_VARS):
        if name not in extra:
            env.pop(name, None)
    return env


def lines_by_check(out: str) -> dict[str, str]:
    """``name -> whole line`` for lines ``MARK NAME: …`` (first line per name)."""
    found: dict[str, str] = {}
    for line in out.splitlines():
        mark, _, rest = line.partition(" ")
        assert mark in ("✓", "✗", "-"), line
        found.setdefault(rest.split(":", 1)[0], line)
    return found


@pytest.mark.timeout(60)
def test_fresh_machine_passes_with_what_cannot_be_checked_said(sandbox: Sandbox) -> None:
    env = fresh_env(sandbox)
    r = sandbox.tokend("doctor", env=env)
    assert r.status == 0, r
    checks = lines_by_check(r.out)
    assert checks["config"].startswith("✓ config: no file at ") and "tokend setup" in checks["config"]
    assert checks["runtime dir"].startswith("✓ runtime dir:"), checks
    assert checks["profile demo"].startswith("✓ profile demo: source demo available")
    # Not failures: tokend-print starts a daemon on demand; nothing is integrated yet.
    assert checks["daemon"].startswith("- daemon: not running") and "on demand" in checks["daemon"]
    assert checks["service"].startswith("- service:")
    for consumer in ("codex", "claude", "aws", "kubectl", "git", "docker"):
        assert checks[consumer].startswith(f"- {consumer}: does not use tokend"), checks[consumer]
    assert not any(line.startswith("✗") for line in r.out.splitlines()), r.out
    assert not sandbox.rundir.exists(), "doctor creates nothing"

    doc = json.loads(sandbox.tokend("doctor", "--json", env=env).out)
    assert doc["ok"] is True
    assert {c["status"] for c in doc["checks"]} <= {"ok", "info"}


@pytest.mark.timeout(90)
def test_fetch_goes_through_the_daemon_and_never_prints_the_credential(sandbox: Sandbox) -> None:
    env = fresh_env(sandbox)
    r = sandbox.tokend("doctor", "--fetch", env=env)
    assert r.status == 0, r
    assert "✓ profile demo fetch: a credential came back" in r.out, r.out
    # tokend get's semantics: the fetch autostarted a daemon, which now serves the same token.
    assert sandbox.daemon_pids(), "the test fetch went through an autostarted daemon"
    token = sandbox.print_("demo", env=env).out.strip()
    assert token and token not in r.out and token not in r.err

    r = sandbox.tokend("doctor", env=env)
    checks = lines_by_check(r.out)
    assert checks["daemon"].startswith("✓ daemon: pid ") and " tokend 0.1.0" in checks["daemon"], checks


@pytest.mark.timeout(90)
def test_consumers_set_up_by_integrate_point_at_this_installation(sandbox: Sandbox) -> None:
    env = fresh_env(sandbox)
    sandbox.write_config(
        '[profiles.demo]\nsource = "demo"\n', path=sandbox.config_home / "tokend" / "config.toml"
    )
    for consumer in ("codex", "claude"):
        r = sandbox.tokend("integrate", consumer, "demo", env=env)
        assert r.status == 0, r
    r = sandbox.tokend("integrate", "git", "demo", "--host", "git.example.com", env=env)
    assert r.status == 0, r
    r = sandbox.tokend("doctor", env=env)
    assert r.status == 0, r
    checks = lines_by_check(r.out)
    assert checks["git"].startswith("✓ git: git config credential.https://git.example.com.helper runs ")
    helper = os.path.realpath(TOKEND_PRINT)
    for consumer in ("codex", "claude"):
        line = checks[consumer]
        assert line.startswith(f"✓ {consumer}: ") and "demo" in line, line
        assert helper in line or TOKEND_PRINT in line, line


@pytest.mark.timeout(90)
def test_broken_machine_each_problem_has_its_line_and_its_fix(sandbox: Sandbox) -> None:
    env = fresh_env(sandbox)
    config = sandbox.config_home / "tokend" / "config.toml"
    sandbox.write_config('[profiles.p]\nsource = "demo"\n', mode=0o666, path=config)
    os.chmod(config, 0o666)  # past the umask
    sandbox.rundir.mkdir()
    os.chmod(sandbox.rundir, 0o777)
    codex_home = sandbox.home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        '[model_providers.p]\nname = "x"\nbase_url = "https://example.invalid/v1"\n'
        '[model_providers.p.auth]\ncommand = "/nonexistent/bin/tokend-print"\nargs = ["p"]\n'
    )
    kube = sandbox.home / ".kube"
    kube.mkdir()
    # Another installation's helper, present but not this one.
    other = sandbox.root / "other-venv" / "bin"
    other.mkdir(parents=True)
    (other / "tokend-print").write_text("#!/bin/sh\nexit 0\n")
    (other / "tokend-print").chmod(0o755)
    (kube / "config").write_text(
        "apiVersion: v1\nkind: Config\nusers:\n- name: tokend-p\n  user:\n    exec:\n"
        f"      apiVersion: client.authentication.k8s.io/v1\n      command: {other / 'tokend-print'}\n"
        "      args:\n      - p\n      - --format\n      - exec-credential\n"
    )
    r = sandbox.tokend("doctor", env=env)
    assert r.status == 1, r
    checks = lines_by_check(r.out)
    assert checks["config"] == (
        f"✗ config: {config}: refusing a config writable by group or others "
        f"(mode 0666; profiles can run commands) — fix: chmod go-w {config}"
    ), checks["config"]
    assert checks["runtime dir"].startswith("✗ runtime dir:") and "0777" in checks["runtime dir"]
    assert checks["runtime dir"].endswith(f"— fix: chmod 700 {sandbox.rundir}"), checks["runtime dir"]
    assert checks["codex"].startswith("✗ codex: ") and "/nonexistent/bin/tokend-print" in checks["codex"]
    assert "does not exist" in checks["codex"] and checks["codex"].endswith("— fix: tokend integrate codex p")
    assert checks["kubectl"].startswith("✗ kubectl: ") and "not this installation's" in checks["kubectl"]
    assert checks["kubectl"].endswith("— fix: tokend integrate kubectl p"), checks["kubectl"]

    doc = json.loads(sandbox.tokend("doctor", "--json", env=env).out)
    assert doc["ok"] is False
    failed = {c["name"]: c for c in doc["checks"] if c["status"] == "failed"}
    assert set(failed) == {"config", "runtime dir", "codex", "kubectl"}, failed
    assert all(c["fix"] for c in failed.values())
    assert stat.S_IMODE(sandbox.rundir.stat().st_mode) == 0o777, "doctor changes nothing"


@pytest.mark.timeout(60)
def test_missing_program_and_a_consumer_asking_for_an_unknown_profile(sandbox: Sandbox) -> None:
    env = fresh_env(sandbox, PATH=f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin")
    sandbox.write_config(
        '[profiles.cmd]\nsource = "command"\ncommand = ["no-such-program-here", "x"]\n',
        path=sandbox.config_home / "tokend" / "config.toml",
    )
    claude_dir = sandbox.home / ".claude"
    claude_dir.mkdir()
    (claude_dir / "settings.json").write_text(
        json.dumps({"apiKeyHelper": f"{TOKEND_PRINT} gone --min-ttl 10m"})
    )
    r = sandbox.tokend("doctor", env=env)
    assert r.status == 1, r
    checks = lines_by_check(r.out)
    assert checks["profile cmd"].startswith("✗ profile cmd: source command: no-such-program-here not found")
    assert checks["claude"].startswith("✗ claude: ") and "'gone'" in checks["claude"], checks["claude"]


class OldDaemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A daemon from before status carried a version: answers ``status`` as it did."""

    daemon_threads = True


@pytest.mark.timeout(60)
def test_a_daemon_older_than_the_installed_tokend_says_so(sandbox: Sandbox) -> None:
    env = fresh_env(sandbox)
    sandbox.rundir.mkdir(mode=0o700)
    reply = {"pid": os.getpid(), "uptime": 5.0, "config": "built-in default", "profiles": []}

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            op, _ = protocol.decode_request(self.rfile.readline().rstrip(b"\n"))
            body = json.dumps(reply).encode() if op == "status" else b"tokend: unknown op\n"
            self.wfile.write(protocol.encode_response(0 if op == "status" else 2, body))

    server = OldDaemon(sandbox.socket_path, Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        r = sandbox.tokend("doctor", env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert r.status == 1, r
    line = lines_by_check(r.out)["daemon"]
    assert line.startswith(f"✗ daemon: pid {os.getpid()} runs a tokend older than this one"), line
    assert "— fix: tokend stop" in line


def test_a_source_whose_extra_is_not_installed_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokend.core import config
    from tokend.doctor import profiles

    # Every extra is installed here: stand a missing module in for the google one.
    monkeypatch.setitem(profiles.EXTRAS, "demo", (("tokend_no_such_module.auth",), "google"))
    cfg = config.parse('[profiles.v]\nsource = "demo"\n', None)
    (check,) = profiles.profile_checks(cfg, None)
    assert check.status == "failed"
    assert check.detail == "source demo: tokend_no_such_module.auth not installed"
    assert check.fix is not None and check.fix.startswith("pip install 'tokend[google]'")
