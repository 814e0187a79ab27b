"""The checks clients make before they trust a directory, a daemon or a config (tokend.client.trust)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tokend.client import paths, trust

OTHER = 1234
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root to chown")


def test_our_0700_directory_passes(tmp_path: Path) -> None:
    d = tmp_path / "rt"
    d.mkdir(mode=0o700)
    assert trust.dir_problem(str(d)) is None


def test_missing_directory_raises() -> None:
    with pytest.raises(FileNotFoundError):
        trust.dir_problem("/nonexistent/tokend-x")


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o777, 0o1777])
def test_directory_open_to_others(tmp_path: Path, mode: int) -> None:
    d = tmp_path / "rt"
    d.mkdir()
    os.chmod(d, mode)
    assert trust.dir_problem(str(d)) == f"refusing {d}: mode {mode:04o} lets others in (chmod 700 {d})"


def test_symlink_to_our_own_directory_is_still_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert trust.dir_problem(str(link)) == f"refusing {link}: a symlink, not a directory (remove it)"


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("")
    assert trust.dir_problem(str(f)) == f"refusing {f}: not a directory (remove it)"


@needs_root
def test_directory_of_another_uid(tmp_path: Path) -> None:
    d = tmp_path / "rt"
    d.mkdir(mode=0o700)
    os.chown(d, OTHER, OTHER)
    assert trust.dir_problem(str(d)) == (
        f"refusing {d}: owned by uid {OTHER}, not you (remove it; another user owns it)"
    )


def test_peer_uid_is_the_listener(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            assert trust.peer_uid(client) == os.getuid()
            trust.check_peer(client, path)  # ours: no exception


@needs_root
def test_peer_of_another_uid_is_refused() -> None:
    where = tempfile.mkdtemp(prefix="tdpeer", dir="/tmp")  # pytest's tmp_path is closed to other uids
    os.chmod(where, 0o755)
    os.chown(where, OTHER, OTHER)
    path = os.path.join(where, "s.sock")
    # A listener that really runs as another uid: SO_PEERCRED names the process that listened.
    code = (
        "import os, socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); "
        "os.chmod(sys.argv[1], 0o777); s.listen(1); print('ready', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={OTHER}",
            f"--regid={OTHER}",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            code,
            path,
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            with pytest.raises(trust.Refused) as info:
                trust.check_peer(client, path)
        assert info.value.line == f"the daemon at {path} runs as uid {OTHER}, not you: refusing its answer"
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(where, ignore_errors=True)


def test_open_private_creates_0600_and_refuses_a_symlink(tmp_path: Path) -> None:
    fd = trust.open_private(str(tmp_path / "f"), os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    assert os.stat(tmp_path / "f").st_mode & 0o777 == 0o600
    (tmp_path / "l").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(trust.Refused, match="a symlink"):
        trust.open_private(str(tmp_path / "l"), os.O_WRONLY | os.O_CREAT)
    assert not (tmp_path / "elsewhere").exists()


def _config(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("[profiles.x]\nsource = 'demo'\n")
    os.chmod(path, mode)
    return path


def test_our_config_reads(tmp_path: Path) -> None:
    assert trust.read_config(str(_config(tmp_path))).startswith(b"[profiles.x]")


@needs_root
def test_a_config_owned_by_another_uid(tmp_path: Path) -> None:
    path = _config(tmp_path, 0o644)
    os.chown(path, OTHER, OTHER)
    with pytest.raises(trust.Refused, match=f"refusing a config owned by uid {OTHER}, not you"):
        trust.read_config(str(path))


@needs_root
def test_a_config_in_a_directory_of_another_uid(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER, OTHER)
    path = _config(theirs)
    with pytest.raises(trust.Refused, match=f"in {theirs}, owned by uid {OTHER}"):
        trust.read_config(str(path))


def test_a_symlink_into_an_open_directory(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    target = _config(open_dir)
    link = tmp_path / "config.toml"
    link.symlink_to(target)
    with pytest.raises(trust.Refused, match=f"in {open_dir}, which others can write"):
        trust.read_config(str(link))


def test_a_symlink_to_our_own_config_is_fine(tmp_path: Path) -> None:
    mine = tmp_path / "dotfiles"
    mine.mkdir(mode=0o700)
    link = tmp_path / "config.toml"
    link.symlink_to(_config(mine))
    assert trust.read_config(str(link)).startswith(b"[profiles.x]")


def test_config_path_without_os_environ_lookups() -> None:
    env = {"XDG_CONFIG_HOME": "/x/conf"}
    assert paths.config_path(env.get) == "/x/conf/tokend/config.toml"
    assert paths.config_path({"TOKEND_CONFIG": "/a/b.toml"}.get) == "/a/b.toml"


def test_the_fast_path_imports_neither_os_nor_stat() -> None:
    """Its checks use posix and _socket: os, stat, socket and struct stay unimported."""
    import tokend

    root = str(Path(tokend.__file__).parent.parent)
    code = (
        f"import sys; sys.path.append({root!r}); from tokend.client import fastpath, trust; "
        "print(','.join(m for m in ('os', 'stat', 'socket', 'struct') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "\n", out
