from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tokend.core import atomicfile


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "file.txt"
    atomicfile.write_text(path, "hello\n")
    assert path.read_text(encoding="utf-8") == "hello\n"
    assert _mode(path) == 0o600
    assert _mode(path.parent) & 0o077 == 0


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("old")
    path.chmod(0o640)
    atomicfile.write_text(path, "new")
    assert path.read_text() == "new"
    assert _mode(path) == 0o640


def test_keep_mask_drops_the_other_bits(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("old")
    path.chmod(0o644)
    atomicfile.write_text(path, "new", keep_mask=0o700)
    assert _mode(path) == 0o600


def test_a_forced_mode_wins_over_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("old")
    path.chmod(0o644)
    atomicfile.write_text(path, "new", mode=0o600)
    assert _mode(path) == 0o600


def test_a_symlink_is_followed_and_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "file.txt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "file.txt"
    link.symlink_to(real)
    atomicfile.write_text(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_without_follow_symlinks_the_link_is_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "file.txt"
    link.symlink_to(real)
    atomicfile.write_text(link, "new", follow_symlinks=False)
    assert not link.is_symlink()
    assert link.read_text() == "new" and real.read_text() == "old"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "file.txt"
    path.write_text("old")

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomicfile.write_text(path, "new", prefix=".tmp-")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_without_dir_mode_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomicfile.write_text(tmp_path / "missing" / "file.txt", "x", dir_mode=None)
