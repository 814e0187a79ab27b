"""The wheel carries the man page and the completions, and pip puts them under share/ (slow)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"
DATA = {
    "share/man/man1/tokend.1": ROOT / "packaging" / "man" / "tokend.1",
    "share/bash-completion/completions/tokend": ROOT / "packaging" / "completions" / "bash" / "tokend",
    "share/zsh/site-functions/_tokend": ROOT / "packaging" / "completions" / "zsh" / "_tokend",
    "share/fish/vendor_completions.d/tokend.fish": ROOT
    / "packaging"
    / "completions"
    / "fish"
    / "tokend.fish",
}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=500, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{' '.join(argv)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def test_wheel_ships_man_page_and_completions_and_pip_installs_them(tmp_path: Path) -> None:
    log = _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(ROOT)])
    assert "project.license" not in log, "setuptools' license deprecation is back"
    wheel = tmp_path / "dist" / f"tokend-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as whl:
        for path, source in DATA.items():
            assert whl.read(f"tokend-{VERSION}.data/data/{path}").decode() == source.read_text(), path
        metadata = whl.read(f"tokend-{VERSION}.dist-info/METADATA").decode()
    assert "License: Apache-2.0" in metadata.splitlines()

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ]
    )
    for path in DATA:
        assert (venv / path).is_file(), path
