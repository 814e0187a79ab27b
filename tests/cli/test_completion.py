"""``tokend completion bash|zsh|fish`` and profile-name completion, through real shells."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOKEND = str(BIN / "tokend")
SHIPPED = {
    "bash": ROOT / "packaging" / "completions" / "bash" / "tokend",
    "zsh": ROOT / "packaging" / "completions" / "zsh" / "_tokend",
    "fish": ROOT / "packaging" / "completions" / "fish" / "tokend.fish",
}
CONFIG = """\
[profiles.alpha]
source = "demo"

[profiles.beta]
source = "demo"

[profiles."beta.eu"]
source = "demo"
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    return {
        "PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "TOKEND_CONFIG": str(config),
        "LC_ALL": "C.UTF-8",
    }


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
    )


@pytest.mark.parametrize("shell", sorted(SHIPPED))
def test_completion_prints_the_script_the_package_ships(shell: str, env: dict[str, str]) -> None:
    r = run([TOKEND, "completion", shell], env)
    assert r.returncode == 0, r.stderr
    assert "_TOKEND_COMPLETE" in r.stdout
    assert r.stdout == SHIPPED[shell].read_text(), (
        f"{SHIPPED[shell].relative_to(ROOT)} is stale: python3 packaging/generate.py --update"
    )


def bash_complete(env: dict[str, str], *words: str) -> list[str]:
    """What bash offers after ``words`` (the last one being completed), via the shipped script."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    script = (
        'eval "$(tokend completion bash)"\n'
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        "_tokend_completion tokend\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    r = run(["bash", "--norc", "--noprofile", "-c", script], env)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completes_configured_profile_names(env: dict[str, str]) -> None:
    assert bash_complete(env, "tokend", "get", "") == ["alpha", "beta", "beta.eu"]
    assert bash_complete(env, "tokend", "get", "be") == ["beta", "beta.eu"]
    assert bash_complete(env, "tokend", "login", "a") == ["alpha"]
    assert bash_complete(env, "tokend", "integrate", "codex", "al") == ["alpha"]
    assert bash_complete(env, "tokend", "env", "TOKEN=a") == ["TOKEN=alpha"]
    assert "doctor" in bash_complete(env, "tokend", "d")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_profile_completion_without_a_usable_config(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[profiles.alpha\n")  # invalid TOML: nothing, no traceback
    assert bash_complete(env, "tokend", "get", "") == []
    no_file = {k: v for k, v in env.items() if k != "TOKEND_CONFIG"}
    no_file["XDG_CONFIG_HOME"] = str(tmp_path / "none")  # the built-in default config
    assert bash_complete(no_file, "tokend", "get", "") == ["demo"]
