"""``tokend service install|uninstall|status`` against fake ``systemctl``/``launchctl``.

The fakes are scripts on PATH that log every call and answer the read-only
questions (``systemctl --user show``, ``launchctl print``) from a state file
the test controls, so the plans, the idempotence and ``--dry-run`` are checked
without a service manager. (Against a real user manager: see the report in
tests/integration/test_user_manager.py.)
"""

from __future__ import annotations

import json
import os
import plistlib
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokend.cli import cli
from tokend.service import Call, Note, Run, ServiceError, WriteFile, launchd, systemd_user

FAKE = r"""#!{python}
import json, os, sys
state_file = os.environ["FAKE_STATE"]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\n")
state = json.load(open(state_file)) if os.path.exists(state_file) else {{}}
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
if name == "systemctl" and args[:1] == ["--user"] and state.get("no_manager"):
    # Every --user call needs the manager's bus (enable/disable too: no offline mode).
    sys.stderr.write("Failed to connect to bus: No medium found\n")
    sys.exit(1)
if name == "systemctl" and args[:2] == ["--user", "show"]:
    units = [a for a in args if a.endswith((".socket", ".service"))]
    blocks = []
    for u in units:
        s = state.get(u, {{}})
        blocks.append("\n".join([
            "Id=" + u,
            "UnitFileState=" + s.get("file", ""),
            "ActiveState=" + s.get("active", "inactive"),
            "SubState=" + s.get("sub", "dead"),
            "MainPID=" + str(s.get("pid", 0)),
            "FragmentPath=" + s.get("fragment", ""),
        ]))
    print("\n\n".join(blocks))
elif name == "launchctl" and args[:1] == ["print"]:
    if not state.get("loaded"):
        sys.stderr.write("Could not find service\n")
        sys.exit(113)
    print(args[1] + " = {{\n\tactive count = 1\n\tstate = running\n\tpid = 4242\n}}")
sys.exit(state.get("fail", {{}}).get(" ".join(args), 0))
"""


@dataclass
class Fakes:
    root: Path
    log: Path
    state_file: Path
    exe: str

    def set_state(self, **state: object) -> None:
        self.state_file.write_text(json.dumps(state))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def mutating_calls(self) -> list[list[str]]:
        """Calls that change something (everything but show/show-environment/print)."""
        read_only = (["--user", "show"], ["--user", "show-environment"])
        return [c for c in self.calls() if c[1:3] not in read_only and c[1:2] != ["print"]]

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)

    @property
    def unit_dir(self) -> Path:
        return self.root / "config" / "systemd" / "user"


@pytest.fixture
def fakes(short_tmp: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    root = Path(short_tmp)
    bindir = root / "bin"
    bindir.mkdir()
    for name in ("systemctl", "launchctl"):
        script = bindir / name
        script.write_text(FAKE.format(python=sys.executable))
        script.chmod(0o755)
    exe = bindir / "tokend"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    runtime = root / "run"
    runtime.mkdir(mode=0o700)
    f = Fakes(root=root, log=root / "calls.log", state_file=root / "state.json", exe=str(exe))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(f.log))
    monkeypatch.setenv("FAKE_STATE", str(f.state_file))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # no daemon answers there
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.delenv("TOKEND_CONFIG", raising=False)
    monkeypatch.setattr("tokend.service.tokend_executable", lambda: str(exe))
    yield f


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


# -- systemd ------------------------------------------------------------------------


def test_dry_run_prints_every_file_and_command_and_changes_nothing(fakes: Fakes) -> None:
    code, out = run_cli("service", "install", "--dry-run", "--manager", "systemd")
    assert code == 0, out
    socket_path, service_path = fakes.unit_dir / "tokend.socket", fakes.unit_dir / "tokend.service"
    assert f"would write {socket_path}" in out and f"would write {service_path}" in out
    assert "    ListenStream=%t/tokend/tokend.sock" in out, "file contents are printed in full"
    assert f"    ExecStart={fakes.exe} serve" in out
    assert "would run systemctl --user daemon-reload" in out
    assert "would run systemctl --user enable --now tokend.socket" in out
    assert not fakes.unit_dir.exists()
    assert fakes.mutating_calls() == []


def test_install_writes_units_and_enables_the_socket(fakes: Fakes) -> None:
    code, out = run_cli("service", "install", "--manager", "systemd")
    assert code == 0, out
    service = fakes.unit_dir / "tokend.service"
    text = service.read_text()
    assert f"ExecStart={fakes.exe} serve\n" in text
    assert "/usr/bin/tokend" not in text
    assert (fakes.unit_dir / "tokend.socket").read_text() == systemd_user.render_socket()
    assert stat.S_IMODE(service.stat().st_mode) == 0o644
    assert fakes.mutating_calls() == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "tokend.socket"],
    ]


def test_install_is_idempotent(fakes: Fakes) -> None:
    run_cli("service", "install", "--manager", "systemd")
    before = {p.name: p.stat().st_mtime_ns for p in fakes.unit_dir.iterdir()}
    fakes.set_state(
        **{
            "tokend.socket": {
                "file": "enabled",
                "active": "active",
                "sub": "listening",
                "fragment": str(fakes.unit_dir / "tokend.socket"),
            },
            "tokend.service": {"file": "indirect", "fragment": str(fakes.unit_dir / "tokend.service")},
        }
    )
    fakes.clear()
    code, out = run_cli("service", "install", "--manager", "systemd")
    assert code == 0
    assert f"unchanged {fakes.unit_dir / 'tokend.service'}" in out
    assert {p.name: p.stat().st_mtime_ns for p in fakes.unit_dir.iterdir()} == before
    # enable --now is itself idempotent; nothing else runs (no reload, no restart).
    assert fakes.mutating_calls() == [["systemctl", "--user", "enable", "--now", "tokend.socket"]]


def test_changed_unit_restarts_a_running_service(fakes: Fakes) -> None:
    fakes.unit_dir.mkdir(parents=True)
    (fakes.unit_dir / "tokend.socket").write_text(systemd_user.render_socket())
    (fakes.unit_dir / "tokend.service").write_text(systemd_user.render_service("/old/venv/bin/tokend"))
    fakes.set_state(
        **{
            "tokend.socket": {"file": "enabled", "active": "active", "fragment": "x"},
            "tokend.service": {
                "file": "indirect",
                "active": "active",
                "sub": "running",
                "pid": 77,
                "fragment": "y",
            },
        }
    )
    code, out = run_cli("service", "install", "--manager", "systemd")
    assert code == 0, out
    assert fakes.mutating_calls() == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "tokend.socket"],
        ["systemctl", "--user", "try-restart", "tokend.service"],
    ]


def test_a_daemon_running_outside_systemd_is_stopped_first(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systemd_user, "running_daemon_pid", lambda: 31337)
    steps = systemd_user.install_plan(fakes.exe, unit_dir=fakes.unit_dir, env={})
    kinds = [type(s).__name__ for s in steps]
    stop = next(s for s in steps if isinstance(s, Call))
    assert "pid 31337" in stop.describe()
    enable = next(i for i, s in enumerate(steps) if isinstance(s, Run) and "enable" in s.argv)
    assert kinds.index("Call") < enable, "the socket path must be free before systemd binds it"


def test_an_active_socket_is_not_asked_for_a_daemon(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking an activated socket would start the service just to answer."""

    def must_not_ask() -> int:
        raise AssertionError("asked the daemon through systemd's socket")

    monkeypatch.setattr(systemd_user, "running_daemon_pid", must_not_ask)
    fakes.set_state(**{"tokend.socket": {"file": "enabled", "active": "active", "fragment": "x"}})
    systemd_user.install_plan(fakes.exe, unit_dir=fakes.unit_dir, env={})


def test_units_installed_by_a_package_are_only_enabled(fakes: Fakes) -> None:
    system = fakes.root / "usr-lib-systemd-user"
    system.mkdir()
    (system / "tokend.socket").write_text(systemd_user.render_socket())
    (system / "tokend.service").write_text(systemd_user.render_service(fakes.exe))
    steps = systemd_user.install_plan(fakes.exe, unit_dir=fakes.unit_dir, env={}, system_dirs=(system,))
    assert not any(isinstance(s, WriteFile) for s in steps)
    assert any(isinstance(s, Note) and str(system) in s.text for s in steps)
    # ... but units for another tokend (say /usr/bin while this is a venv) are not ours.
    steps = systemd_user.install_plan(
        "/elsewhere/tokend", unit_dir=fakes.unit_dir, env={}, system_dirs=(system,)
    )
    assert sum(isinstance(s, WriteFile) for s in steps) == 2


def test_tokend_config_follows_into_the_unit(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEND_CONFIG", "/etc/my tokend.toml")
    code, out = run_cli("service", "install", "--dry-run", "--manager", "systemd")
    assert code == 0
    assert '    Environment="TOKEND_CONFIG=/etc/my tokend.toml"' in out


def test_exec_start_quoting() -> None:
    text = systemd_user.render_service("/home/a b/50%/tokend")
    assert 'ExecStart="/home/a b/50%%/tokend" serve\n' in text


def test_uninstall_then_uninstall_again(fakes: Fakes) -> None:
    run_cli("service", "install", "--manager", "systemd")
    fakes.set_state(
        **{
            "tokend.socket": {"file": "enabled", "active": "active", "fragment": "x"},
            "tokend.service": {"file": "indirect", "fragment": "y"},
        }
    )
    fakes.clear()
    code, out = run_cli("service", "uninstall", "--manager", "systemd")
    assert code == 0, out
    assert not (fakes.unit_dir / "tokend.service").exists()
    assert fakes.mutating_calls() == [
        ["systemctl", "--user", "disable", "--now", "tokend.socket", "tokend.service"],
        ["systemctl", "--user", "daemon-reload"],
    ]
    fakes.set_state()
    fakes.clear()
    code, out = run_cli("service", "uninstall", "--manager", "systemd")
    assert code == 0
    assert "not installed" in out
    assert fakes.mutating_calls() == []


def test_status_shows_state_and_what_runs(fakes: Fakes) -> None:
    run_cli("service", "install", "--manager", "systemd")
    fakes.set_state(
        **{
            "tokend.socket": {
                "file": "enabled",
                "active": "active",
                "sub": "listening",
                "fragment": str(fakes.unit_dir / "tokend.socket"),
            },
            "tokend.service": {
                "file": "indirect",
                "active": "active",
                "sub": "running",
                "pid": 4242,
                "fragment": str(fakes.unit_dir / "tokend.service"),
            },
        }
    )
    code, out = run_cli("service", "status", "--manager", "systemd")
    assert code == 0
    assert "tokend.socket: enabled, active (listening)" in out
    assert "tokend.service: indirect, active (running), pid 4242" in out
    assert f"runs: {fakes.exe} serve" in out


def test_status_without_a_user_manager_says_so(fakes: Fakes) -> None:
    fakes.set_state(no_manager=True)
    code, out = run_cli("service", "status", "--manager", "systemd")
    assert code == 0 and "no user service manager reachable" in out


def test_install_without_a_user_manager_writes_nothing_and_says_what_to_do(fakes: Fakes) -> None:
    fakes.set_state(no_manager=True)
    with pytest.raises(ServiceError) as raised:
        run_cli("service", "install", "--manager", "systemd")
    line = raised.value.line()
    assert "no systemd user manager" in line and "Failed to connect to bus" in line, line
    assert "loginctl enable-linger" in line, "says how to get a manager"
    assert "tokend-print" in line and "autostart" in line, "says that no service is needed"
    assert not fakes.unit_dir.exists(), "nothing written"
    assert fakes.mutating_calls() == []
    # --dry-run still shows the plan, with the same warning first.
    code, out = run_cli("service", "install", "--dry-run", "--manager", "systemd")
    assert code == 0, out
    assert out.startswith("note: no systemd user manager") and "would write" in out
    assert not fakes.unit_dir.exists()


def test_uninstall_without_a_user_manager_removes_units_and_links(fakes: Fakes) -> None:
    """Unit files from an earlier install and the enable links go; nothing fails half-way."""
    run_cli("service", "install", "--manager", "systemd")
    wants = fakes.unit_dir / "sockets.target.wants"
    wants.mkdir()
    (wants / "tokend.socket").symlink_to(fakes.unit_dir / "tokend.socket")
    other = fakes.unit_dir / "other.socket"
    other.write_text("[Socket]\n")
    (wants / "other.socket").symlink_to(other)
    fakes.set_state(no_manager=True)
    fakes.clear()
    code, out = run_cli("service", "uninstall", "--manager", "systemd")
    assert code == 0, out
    assert not (fakes.unit_dir / "tokend.service").exists()
    assert not (fakes.unit_dir / "tokend.socket").exists()
    assert not (wants / "tokend.socket").is_symlink()
    assert (wants / "other.socket").is_symlink(), "only our links"
    assert "no systemd user manager" in out
    assert fakes.mutating_calls() == [], "no systemctl call that can only fail"
    code, out = run_cli("service", "uninstall", "--manager", "systemd")
    assert code == 0 and "not installed" in out


def test_doctor_reports_the_service(fakes: Fakes) -> None:
    from tokend.doctor import local

    fakes.set_state(no_manager=True)
    check = local.service_check()
    assert check.status == "info" and "no systemd user manager reachable" in check.detail
    fakes.set_state()
    check = local.service_check()
    assert check.status == "info" and check.detail.startswith("not installed")
    run_cli("service", "install", "--manager", "systemd")
    socket = {"file": "enabled", "active": "active", "fragment": str(fakes.unit_dir / "tokend.socket")}
    service = {"file": "indirect", "fragment": str(fakes.unit_dir / "tokend.service")}
    fakes.set_state(**{"tokend.socket": socket, "tokend.service": service})
    check = local.service_check()
    assert check.status == "ok" and fakes.exe in check.detail, check
    fakes.set_state(**{"tokend.socket": {**socket, "file": "disabled", "active": "inactive"}})
    check = local.service_check()
    assert check.status == "failed" and check.fix == "tokend service install", check
    fakes.set_state(**{"tokend.socket": socket, "tokend.service": service})
    os.unlink(fakes.exe)  # the venv the unit runs was removed
    check = local.service_check()
    assert check.status == "failed" and "which is not there" in check.detail, check
    assert check.fix == "tokend service install"


# -- launchd ------------------------------------------------------------------------


def test_launchd_plan_and_idempotence(fakes: Fakes) -> None:
    home = str(fakes.root / "home")
    code, out = run_cli("service", "install", "--manager", "launchd")
    assert code == 0, out
    plist_path = Path(home) / "Library/LaunchAgents/dev.tokend.plist"
    doc = plistlib.loads(plist_path.read_bytes())
    assert doc["Label"] == "dev.tokend"
    assert doc["ProgramArguments"] == [fakes.exe, "serve"]
    assert doc["KeepAlive"] == {"SuccessfulExit": False}
    assert doc["StandardErrorPath"] == f"{home}/Library/Logs/tokend.log"
    uid = os.getuid()
    assert fakes.mutating_calls() == [
        ["launchctl", "enable", f"gui/{uid}/dev.tokend"],
        ["launchctl", "bootstrap", f"gui/{uid}", str(plist_path)],
    ]
    fakes.set_state(loaded=True)
    fakes.clear()
    code, out = run_cli("service", "install", "--manager", "launchd")
    assert "already loaded (running)" in out
    assert fakes.mutating_calls() == [["launchctl", "enable", f"gui/{uid}/dev.tokend"]]

    code, out = run_cli("service", "status", "--manager", "launchd")
    assert "dev.tokend: loaded, running, pid 4242" in out

    fakes.clear()
    code, out = run_cli("service", "uninstall", "--manager", "launchd")
    assert fakes.mutating_calls() == [["launchctl", "bootout", f"gui/{uid}/dev.tokend"]]
    assert not plist_path.exists()


def test_launchd_changed_plist_is_reloaded(fakes: Fakes) -> None:
    steps = launchd.install_plan(fakes.exe, home=str(fakes.root / "home"), env={})
    assert [s.argv[1] for s in steps if isinstance(s, Run)] == ["enable", "bootstrap"]
    fakes.set_state(loaded=True)
    steps = launchd.install_plan("/new/tokend", home=str(fakes.root / "home"), env={})
    assert [s.argv[1] for s in steps if isinstance(s, Run)] == ["bootout", "enable", "bootstrap"]


def test_launchd_render_is_a_valid_plist_with_the_config() -> None:
    text = launchd.render("/opt/homebrew/bin/tokend", "/Users/me & you", {"TOKEND_CONFIG": "/cfg.toml"})
    doc = plistlib.loads(text.encode())
    assert doc["EnvironmentVariables"]["TOKEND_CONFIG"] == "/cfg.toml"
    assert doc["StandardOutPath"] == "/Users/me & you/Library/Logs/tokend.log"
    assert "&amp;" in text
