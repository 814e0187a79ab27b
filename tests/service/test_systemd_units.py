"""The user units in systemd/: ``systemd-analyze verify``, and the directives issue 7 requires.

``systemd-analyze verify`` needs no running systemd; it checks syntax, known
options, and that ExecStart is executable, so it runs on a copy whose
ExecStart is this installation's tokend (as ``tokend service install``
writes it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tokend.service.systemd_user import render_service

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
TOKEND = str(Path(sys.executable).parent / "tokend")
ANALYZE = shutil.which("systemd-analyze")


def _directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def _verify(*paths: Path, runtime: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, SYSTEMD_LOG_LEVEL="notice")
    return subprocess.run(
        [ANALYZE, "verify", "--user", "--man=no", *map(str, paths)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_systemd_analyze_verify_passes(short_tmp: str) -> None:
    work = Path(short_tmp)
    runtime = work / "run"
    runtime.mkdir(mode=0o700)
    shutil.copy(UNITS / "tokend.socket", work / "tokend.socket")
    (work / "tokend.service").write_text(render_service(TOKEND))
    r = _verify(work / "tokend.socket", work / "tokend.service", runtime=str(runtime))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", "verify warns: " + r.stdout + r.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_verify_catches_a_broken_unit(short_tmp: str) -> None:
    """The check above can fail: an unknown option in a copy is reported."""
    work = Path(short_tmp)
    runtime = work / "run"
    runtime.mkdir(mode=0o700)
    shutil.copy(UNITS / "tokend.socket", work / "tokend.socket")
    broken = render_service(TOKEND).replace("[Service]\n", "[Service]\nProtectEverything=yes\n")
    (work / "tokend.service").write_text(broken)
    r = _verify(work / "tokend.socket", work / "tokend.service", runtime=str(runtime))
    assert "ProtectEverything" in r.stdout + r.stderr


def test_socket_unit() -> None:
    d = _directives(UNITS / "tokend.socket")
    assert d["ListenStream"] == ["%t/tokend/tokend.sock"]
    assert d["SocketMode"] == ["0600"]
    assert d["DirectoryMode"] == ["0700"]
    assert "Accept" not in d or d["Accept"] == ["no"], "one daemon serves all connections"
    assert d["WantedBy"] == ["sockets.target"]


def test_service_unit() -> None:
    d = _directives(UNITS / "tokend.service")
    assert d["Type"] == ["notify"]
    assert d["ExecStart"] == ["/usr/bin/tokend serve"], "the path distribution packages install"
    assert d["Restart"] == ["on-failure"]
    assert d["WatchdogSec"] and d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Requires"] == ["tokend.socket"]
    for option in (
        "NoNewPrivileges",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "SystemCallArchitectures",
        "RestrictAddressFamilies",
        "PrivateTmp",
        "ProtectSystem",
    ):
        assert option in d, option
    assert d["ProtectSystem"] == ["strict"]
    assert "%t/tokend" in " ".join(d["ReadWritePaths"]), "the daemon writes its lock and cache there"
    assert d["RestrictAddressFamilies"][0].split()[:3] == ["AF_UNIX", "AF_INET", "AF_INET6"]
    # A user manager sets up mount namespaces only inside a user namespace:
    # without PrivateUsers=yes, systemd 252 silently skips PrivateTmp/ProtectSystem.
    assert d["PrivateUsers"] == ["yes"]
    # Options that shrink the capability bounding set make a user service fail
    # (status=218/CAPABILITIES): they must not creep back in.
    for option in ("ProtectKernelModules", "ProtectKernelLogs", "ProtectClock", "PrivateDevices"):
        assert option not in d, option
    assert "CapabilityBoundingSet" not in d


def test_installed_copies_match_the_source_tree() -> None:
    """``tokend service install`` writes the package's copies: they must be these files."""
    data = ROOT / "tokend" / "service" / "data"
    for src in (
        UNITS / "tokend.socket",
        UNITS / "tokend.service",
        ROOT / "packaging/launchd/dev.tokend.plist",
    ):
        assert (data / src.name).read_text() == src.read_text(), (
            f"tokend/service/data/{src.name} differs from {src.relative_to(ROOT)}: copy it over"
        )
