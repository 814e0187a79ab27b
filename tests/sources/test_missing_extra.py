"""A source whose SDK is not installed: one line naming the extra, exit 2, daemonless too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Makes ``import google`` (or azure) fail in the child, as on a machine without the extra.
BLOCKER = """\
import os
import sys

BLOCKED = tuple(os.environ["TD_TEST_BLOCK"].split(","))


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
"""

CONFIG = """\
[profiles.vertex]
source = "google"

[profiles.sm]
source = "gcp-secretmanager"
name = "projects/p/secrets/s"

[profiles.kv]
source = "azure-keyvault"
vault_url = "https://k.vault.azure.net"
name = "k"
"""


def tokend_get(tmp_path: Path, profile: str, blocked: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    run = tmp_path / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(run),
        "TOKEND_CONFIG": str(config),
        "PYTHONPATH": f"{site}:{ROOT}",
        "TD_TEST_BLOCK": blocked,
        "NO_GCE_CHECK": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "tokend", "get", "--no-daemon", profile],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("profile", "blocked", "extra"),
    [("vertex", "google", "google"), ("sm", "google,requests", "google"), ("kv", "azure,msal", "azure")],
)
def test_a_missing_extra_is_one_usage_line(tmp_path: Path, profile: str, blocked: str, extra: str) -> None:
    done = tokend_get(tmp_path, profile, blocked)
    assert (done.returncode, done.stdout) == (2, "")
    line = f"tokend: profile '{profile}' needs the {extra} extra: pipx install 'tokend[{extra}]'\n"
    assert done.stderr == line
