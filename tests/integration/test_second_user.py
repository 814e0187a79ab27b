"""A second local user can neither feed tokend's clients nor read their requests.

The victim runs as uid 4242 with no XDG_RUNTIME_DIR, so its runtime dir is
/tmp/tokend-4242: a path in world-writable /tmp that another uid (1234, the
attacker) may create first. No other test uses uid 4242; the path is removed
before and after each test. Both users are simulated with ``setpriv``.

The venv's interpreter lives under /root, closed to other uids, so the victim
runs the installed package from the venv's site-packages with the system
Python 3.11 (same ABI), each tool through the entry point its launcher calls.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import Result

VICTIM = 4242
ATTACKER = 1234
VICTIM_RUNDIR = Path(f"/tmp/tokend-{VICTIM}")
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
SITE = str(Path(sys.executable).parent.parent / "lib" / PY / "site-packages")
SYSTEM_PYTHON = "/usr/bin/python3"
FORGED = "FORGED-by-1234"

#: What the attacker's listener answers: a forged credential to every ``get``
#: (JSON, so the git and docker helpers take it too), a forged status document.
LISTENER = textwrap.dedent(
    """\
    import json, os, socket, sys
    path, ready = sys.argv[1:3]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(16)
    open(ready, "w").close()
    while True:
        c, _ = s.accept()
        line = b""
        while not line.endswith(b"\\n"):
            chunk = c.recv(4096)
            if not chunk:
                break
            line += chunk
        with open(ready + ".requests", "ab") as log:  # what the attacker learns
            log.write(line)
        op = line.split(b"\\t")[0].strip()
        if op == b"status":
            body = json.dumps({"pid": 666, "socket": path, "config": "forged", "profiles": []}).encode()
        else:
            doc = {"kind": "bearer", "token": "FORGED-by-1234", "expires_at": "2099-01-01T00:00:00Z"}
            body = json.dumps(doc).encode()
        try:
            c.sendall(b"0 %d\\n" % len(body) + body)
        except OSError:  # a client that hung up on us
            pass
        c.close()
    """
)

#: (name, module whose ``main`` the launcher calls, argv, stdin)
TOOLS = [
    ("tokend-print", "tokend.client.fastpath", ["tokend-print", "work"], ""),
    ("tokend get", "tokend.cli", ["tokend", "get", "work"], ""),
    (
        "git-credential-tokend",
        "tokend.client.gitcred",
        ["git-credential-tokend", "get"],
        "protocol=https\nhost=git.example.com\n\n",
    ),
    (
        "docker-credential-tokend",
        "tokend.client.dockercred",
        ["docker-credential-tokend", "get"],
        "registry.example.com\n",
    ),
    ("tokend status", "tokend.cli", ["tokend", "status"], ""),
]


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


@dataclass
class World:
    root: Path
    home: Path  # the victim's, 0700
    attacker_home: Path  # the attacker's, 0755
    config: Path
    procs: list[subprocess.Popen[bytes]]
    site: str = SITE  # where the victim's python finds tokend (see victim_site)

    def victim(self, module: str, argv: list[str], stdin: str = "", **env: str) -> Result:
        """Run one tool as the victim, as its launcher would (``python3 -I -S``)."""
        boot = f"import site, sys; site.addsitedir({self.site!r}); sys.argv = {argv!r}; "
        boot += f"from {module} import main; main()"
        environ = {
            "HOME": str(self.home),
            "PATH": "/usr/bin:/bin",
            "LC_ALL": "C.UTF-8",
            "TOKEND_CONFIG": str(self.config),
            # Nothing here may start a daemon as the victim: only the planted listener answers.
            "TOKEND_NO_AUTOSTART": "1",
            "TOKEND_NO_FALLBACK": "1",
            **env,
        }
        start = time.monotonic()
        proc = subprocess.run(
            [
                "setpriv",
                f"--reuid={VICTIM}",
                f"--regid={VICTIM}",
                "--clear-groups",
                "env",
                "-i",
                *(f"{k}={v}" for k, v in environ.items()),
                SYSTEM_PYTHON,
                "-I",
                "-S",
                "-c",
                boot,
            ],
            input=stdin.encode(),
            capture_output=True,
            timeout=60,
            cwd="/",
        )
        return Result(
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
            time.monotonic() - start,
        )

    def attacker_listen(self, sock_path: Path) -> None:
        """Start the attacker's listener (uid 1234) on ``sock_path``; returns once it listens."""
        script = self.attacker_home / "listener.py"
        script.write_text(LISTENER)
        ready = self.attacker_home / f"ready{len(self.procs)}"
        proc = subprocess.Popen(
            [
                "setpriv",
                f"--reuid={ATTACKER}",
                f"--regid={ATTACKER}",
                "--clear-groups",
                SYSTEM_PYTHON,
                "-I",
                "-S",
                str(script),
                str(sock_path),
                str(ready),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
        )
        self.procs.append(proc)
        deadline = time.monotonic() + 15
        while not ready.exists():
            assert proc.poll() is None, "the attacker's listener died"
            assert time.monotonic() < deadline, "the attacker's listener never came up"
            time.sleep(0.02)

    def as_attacker(self, *argv: str) -> None:
        subprocess.run(
            ["setpriv", f"--reuid={ATTACKER}", f"--regid={ATTACKER}", "--clear-groups", *argv],
            check=True,
            cwd="/",
        )


@pytest.fixture(scope="module")
def victim_site() -> Iterator[str]:
    """The installed site-packages as the victim uid can read it.

    A checkout in a private directory (``mktemp -d``, 0700) hides its .venv from
    other uids: then the site-packages is hard-linked (instant, no copy) into a
    directory the victim can traverse, on the same file system.
    """
    probe = ["setpriv", f"--reuid={VICTIM}", f"--regid={VICTIM}", "--clear-groups", "test", "-r"]
    if subprocess.run([*probe, f"{SITE}/tokend/__init__.py"], timeout=20, check=False).returncode == 0:
        yield SITE
        return
    shared = Path(tempfile.mkdtemp(prefix="td2site", dir="/tmp"))
    try:
        os.chmod(shared, 0o755)
        linked = subprocess.run(["cp", "-al", SITE, str(shared / "site-packages")], capture_output=True)
        if linked.returncode != 0:
            pytest.skip(f"uid {VICTIM} cannot read {SITE} and it cannot be hard-linked to /tmp")
        yield str(shared / "site-packages")
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture
def world(victim_site: str) -> Iterator[World]:
    if os.getuid() != 0 or shutil.which("setpriv") is None or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("needs root, setpriv and the system python3 to simulate two users")
    if not Path(SITE, "tokend").is_dir():
        pytest.skip(f"tokend is not installed in {SITE}")
    _remove(VICTIM_RUNDIR)
    root = Path(tempfile.mkdtemp(prefix="td2u", dir="/tmp"))
    os.chmod(root, 0o755)
    home = root / "v"
    attacker_home = root / "a"
    for d, uid, mode in ((home, VICTIM, 0o700), (attacker_home, ATTACKER, 0o755)):
        d.mkdir()
        os.chown(d, uid, uid)
        os.chmod(d, mode)
    config = home / "config.toml"
    config.write_text(
        '[hosts]\n"git.example.com" = "work"\n"registry.example.com" = "work"\n'
        '[profiles.work]\nsource = "demo"\n'
    )
    os.chown(config, VICTIM, VICTIM)
    os.chmod(config, 0o600)
    w = World(root, home, attacker_home, config, [], victim_site)
    try:
        yield w
    finally:
        for proc in w.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        _remove(VICTIM_RUNDIR)
        shutil.rmtree(root, ignore_errors=True)


def _plant(world: World, how: str) -> str:
    """Put the attacker's listener where the victim looks; what the refusal must name."""
    sock = VICTIM_RUNDIR / "tokend.sock"
    if how == "attacker-dir":
        world.as_attacker("mkdir", "-m", "0755", str(VICTIM_RUNDIR))
        world.attacker_listen(sock)
        return f"tokend: refusing {VICTIM_RUNDIR}: owned by uid {ATTACKER}, not you"
    if how == "symlink":
        target = world.attacker_home / "rt"
        world.as_attacker("mkdir", "-m", "0755", str(target))
        world.as_attacker("ln", "-s", str(target), str(VICTIM_RUNDIR))
        world.attacker_listen(target / "tokend.sock")
        return f"tokend: refusing {VICTIM_RUNDIR}: a symlink"
    if how == "mode-0777":
        VICTIM_RUNDIR.mkdir()
        os.chown(VICTIM_RUNDIR, VICTIM, VICTIM)
        os.chmod(VICTIM_RUNDIR, 0o777)
        world.attacker_listen(sock)
        return f"tokend: refusing {VICTIM_RUNDIR}: mode 0777 lets others in (chmod 700 {VICTIM_RUNDIR})"
    if how == "foreign-peer":
        # The victim's own 0700 directory, with a socket the attacker listens on (only
        # root can put it there, but a client must not take a dir check as enough).
        VICTIM_RUNDIR.mkdir(mode=0o700)
        os.chown(VICTIM_RUNDIR, VICTIM, VICTIM)
        os.chmod(VICTIM_RUNDIR, 0o700)
        elsewhere = world.attacker_home / "x.sock"
        world.attacker_listen(elsewhere)
        os.rename(elsewhere, sock)
        return f"tokend: the daemon at {sock} runs as uid {ATTACKER}, not you: refusing its answer"
    raise AssertionError(how)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["attacker-dir", "symlink", "mode-0777", "foreign-peer"])
def test_clients_refuse_what_another_user_planted(world: World, how: str) -> None:
    expected = _plant(world, how)
    wrong = {}
    for name, module, argv, stdin in TOOLS:
        r = world.victim(module, argv, stdin)
        if name == "docker-credential-tokend":
            # docker shows a helper's stdout, not its stderr: there goes the protocol's error answer.
            ok = r.status == 1 and r.err == "" and r.out.startswith(expected) and r.out.count("\n") == 1
        else:
            ok = r.status == 3 and r.out == "" and r.err.startswith(expected) and r.err.count("\n") == 1
        if not ok or FORGED in r.out + r.err or "pid 666" in r.out:
            wrong[name] = (r.status, r.out[:60], r.err[:90])
    assert not wrong, "\n".join(f"{name}: {r}" for name, r in wrong.items())
    # Not even the request (which profile, for which host) reached the attacker.
    assert all(p.read_bytes() == b"" for p in world.attacker_home.glob("*.requests"))
