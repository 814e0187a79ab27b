"""The shipped units under a real systemd user manager, as an unprivileged user (opt-in).

This is how every hardening option in systemd/tokend.service was checked:
a private ``systemd --user`` for ``nobody``, run in a private mount namespace
(a tmpfs over /run/systemd marks it "booted with systemd") and in a cgroup
subtree of its own, then ``tokend service install``, requests through socket
activation, a probe command source that tries what the sandbox should forbid,
a reload, a crash, a watchdog timeout, and ``tokend service uninstall``.

It needs root (to set that up), ``unshare``, systemd, and Debian's python3
with click/filelock/keyring/tomlkit (scripts/test installs them), and it
creates and removes a cgroup directory on the host, so it only runs with
``TOKEND_TEST_USER_MANAGER=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
NOBODY = 65534

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        os.environ.get("TOKEND_TEST_USER_MANAGER") != "1",
        reason="opt-in: TOKEND_TEST_USER_MANAGER=1 (root; runs a private systemd --user)",
    ),
]

HARNESS = r"""
set -u
U={uid}; B={base}
mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system || exit 90
# A cgroup subtree of its own: a manager that finds itself in the root cgroup
# would move the host's processes into an init.scope.
CG=tokend-test-$$
HS=.; {{ [ -d /sys/fs/cgroup/systemd ] || [ -d /sys/fs/cgroup/unified ]; }} && HS="systemd unified"
for h in $HS; do
    d=/sys/fs/cgroup/$h/$CG
    [ -d /sys/fs/cgroup/$h ] || continue
    mkdir -p $d && chown -R $U:$U $d && echo $$ > $d/cgroup.procs || exit 91
done
ENV="HOME=$B/home XDG_RUNTIME_DIR=$B/run PATH=$B/venv/bin:/usr/bin:/bin LANG=C.UTF-8"
setpriv --reuid $U --regid $U --clear-groups env -i $ENV /lib/systemd/systemd --user >$B/manager.log 2>&1 &
MGR=$!
i=0; while [ ! -S $B/run/systemd/private ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
setpriv --reuid $U --regid $U --clear-groups env -i $ENV sh $B/checks.sh > $B/checks.out 2>&1
RC=$?
[ -n "$MGR" ] && kill $MGR && wait $MGR
sleep 0.5
for h in $HS; do
    [ -d /sys/fs/cgroup/$h/$CG ] || continue
    echo $$ > /sys/fs/cgroup/$h/cgroup.procs
    find /sys/fs/cgroup/$h/$CG -depth -type d -exec rmdir {{}} \; 2>/dev/null
done
exit $RC
"""

PROBE = r"""
import ctypes, json, mmap, os, socket, subprocess
r = {}
def t(name, fn):
    try:
        fn(); r[name] = "allowed"
    except Exception as e:
        r[name] = "denied"
libc = ctypes.CDLL(None, use_errno=True)
def check(ret):
    if ret == -1: raise OSError(ctypes.get_errno(), "")
def unshare():
    if subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode: raise OSError()
t("wx_mmap", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC))
t("af_packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
t("af_inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
t("personality", lambda: check(libc.personality(0x0040000)))
t("ptrace", lambda: check(libc.ptrace(0, 0, 0, 0)))
t("unshare", unshare)
t("write_home", lambda: open(os.path.expanduser("~/probe"), "w").close())
t("write_cache", lambda: open(os.path.expanduser("~/.cache/probe"), "w").close())
r["tmp_empty"] = os.listdir("/tmp") == []
r["uid_map"] = open("/proc/self/uid_map").read().split()
r["umask"] = oct(os.umask(0o22))
r["no_new_privs"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")][0]
open(os.path.expanduser("~/.cache/probe.json"), "w").write(json.dumps(r))
print(json.dumps({"token": "probe-token", "expires_in": 3600}))
"""

CHECKS = r"""
set -u
P="env TOKEND_NO_AUTOSTART=1 TOKEND_NO_FALLBACK=1 tokend-print"
show() { systemctl --user show -p "$1" --value "$2"; }
echo "install: $(tokend service install | tr '\n' '|')"
echo "demo: $($P demo)"
echo "probe: $($P probe)"
echo "status_text: $(show StatusText tokend.service)"
systemctl --user reload tokend.service
echo "reloaded: $(show StatusText tokend.service)"
PID=$(show MainPID tokend.service)
[ "$PID" -gt 0 ] && kill -9 "$PID"
sleep 2.5
echo "after_crash: $(show NRestarts tokend.service) $(show ActiveState tokend.service) $($P demo)"
mkdir -p $HOME/.config/systemd/user/tokend.service.d
printf '[Service]\nWatchdogSec=2s\n' > $HOME/.config/systemd/user/tokend.service.d/wd.conf
systemctl --user daemon-reload && systemctl --user restart tokend.service && sleep 3.5
echo "pinged: $(show ActiveState tokend.service)"
PID=$(show MainPID tokend.service)
[ "$PID" -gt 0 ] && kill -STOP "$PID"
i=0; while [ "$(show Result tokend.service)" != watchdog ] && [ $i -lt 60 ]; do sleep 0.1; i=$((i+1)); done
echo "watchdog: $(show Result tokend.service)"
rm -r $HOME/.config/systemd/user/tokend.service.d; systemctl --user daemon-reload
sleep 1.5
echo "uninstall: $(tokend service uninstall | tr '\n' '|')"
echo "units_left: $(ls $HOME/.config/systemd/user 2>/dev/null | wc -l)"
"""


def _usable() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("unshare", "setpriv", "/lib/systemd/systemd", "systemctl"):
        if shutil.which(tool) is None and not os.access(tool, os.X_OK):
            return f"{tool} is missing"
    probe = subprocess.run(["/usr/bin/python3", "-c", "import click, filelock, keyring, tomlkit"])
    if probe.returncode != 0:
        return "Debian's python3-click/-filelock/-keyring/-tomlkit are needed"
    return None


def test_hardened_units_under_a_real_user_manager(tmp_path: Path) -> None:
    reason = _usable()
    if reason:
        pytest.skip(reason)
    # Outside /tmp (the service has PrivateTmp=yes) and readable by nobody.
    base = Path(tempfile.mkdtemp(prefix="tokend-um-", dir="/var/lib"))
    try:
        os.chmod(base, 0o755)
        wheel_dir = tmp_path / "wheel"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(ROOT)],
            check=True,
            timeout=300,
        )
        # Debian's python with Debian's click/filelock/keyring, this checkout's tokend.
        venv = ["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(base / "venv")]
        subprocess.run(venv, check=True, timeout=120)
        wheel = next(wheel_dir.glob("tokend-*.whl"))
        subprocess.run(
            [str(base / "venv/bin/pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
            check=True,
            timeout=300,
        )
        home, run = base / "home", base / "run"
        (home / ".config/tokend").mkdir(parents=True)
        (home / ".cache").mkdir()
        run.mkdir()
        (base / "probe.py").write_text(PROBE)
        config = home / ".config/tokend/config.toml"
        config.write_text(
            textwrap.dedent(f"""\
                [profiles.demo]
                source = "demo"
                latency = "20ms"

                [profiles.probe]
                source = "command"
                command = ["/usr/bin/python3", "{base}/probe.py"]
                ttl = "1h"
                """)
        )
        config.chmod(0o600)
        (base / "checks.sh").write_text(CHECKS)
        (base / "harness.sh").write_text(HARNESS.format(uid=NOBODY, base=base))
        for path in (home, run, *home.rglob("*")):
            os.chown(path, NOBODY, NOBODY)
        os.chmod(run, 0o700)
        r = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", str(base / "harness.sh")],
            capture_output=True,
            text=True,
            timeout=240,
        )
        out = (base / "checks.out").read_text() if (base / "checks.out").exists() else ""
        assert r.returncode == 0, f"{r.stdout}{r.stderr}\n{out}"
        results = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)

        assert "enable --now tokend.socket" in results["install"], out
        assert results["demo"].startswith("demo-"), out
        assert results["probe"] == "probe-token", out
        assert results["status_text"].startswith("serving on "), out
        assert results["reloaded"].endswith("configuration reloaded"), out
        restarts, state, token = results["after_crash"].split()
        assert restarts == "1" and state == "active" and token.startswith("demo-"), out
        assert results["pinged"] == "active", "the daemon's pings kept a 2 s watchdog happy"
        assert results["watchdog"] == "watchdog", "a stopped event loop is killed by the watchdog"
        assert "removed" in results["uninstall"] and results["units_left"] == "0", out

        sandbox = json.loads((home / ".cache/probe.json").read_text())
        assert sandbox == {
            "wx_mmap": "denied",  # MemoryDenyWriteExecute
            "af_packet": "denied",  # RestrictAddressFamilies
            "af_inet": "allowed",
            "personality": "denied",  # LockPersonality
            "ptrace": "denied",  # SystemCallFilter=@system-service
            "unshare": "denied",  # RestrictNamespaces
            "write_home": "denied",  # ProtectSystem=strict
            "write_cache": "allowed",  # ReadWritePaths=-%h/.cache
            "tmp_empty": True,  # PrivateTmp
            "uid_map": [str(NOBODY), str(NOBODY), "1"],  # PrivateUsers
            "umask": "0o77",  # UMask
            "no_new_privs": "1",  # NoNewPrivileges
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)
