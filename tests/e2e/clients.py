"""The real npm clients the end-to-end tests drive, found or installed under ``.cache/``.

scripts/test installs each into ``.cache/NAME`` (gitignored); ``NpmClient.path``
finds it there (in this checkout or, for a git worktree, its main checkout),
installs it on first use when npm is at hand, and otherwise skips, or fails
when ``TOKEND_REQUIRE_E2E=1`` (CI), saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.aws_lab import require_or_skip
from tests.integration.conftest import cache_roots

REPO = Path(__file__).resolve().parents[2]

#: Keeps Claude Code off the network but for the fake it is pointed at, and quiet.
CLAUDE_OFFLINE = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "DISABLE_NON_ESSENTIAL_MODEL_CALLS": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1",
    "CLAUDE_CODE_DISABLE_CLAUDE_MDS": "1",
    "CLAUDE_CODE_MAX_RETRIES": "3",
}


@dataclass(frozen=True)
class NpmClient:
    """An npm package pinned to ``version`` whose executable ``bin`` lives in ``.cache/cache``."""

    name: str
    package: str
    version: str
    cache: str
    bin: str

    def _version_of(self, exe: Path) -> bool:
        try:
            out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.returncode == 0 and self.version in out.stdout.split()

    def _found(self) -> str | None:
        for root in cache_roots():
            exe = root / ".cache" / self.cache / "node_modules" / ".bin" / self.bin
            if exe.exists() and self._version_of(exe):
                return str(exe)
        return None

    def path(self) -> str:
        """The executable, installed with npm on first use; skips or fails (CI) when it can't be."""
        found = self._found()
        if found is not None:
            return found
        npm = shutil.which("npm")
        if npm is None:
            require_or_skip(f"{self.name} needs npm (apt-get install npm, or install Node.js)")
            raise AssertionError("unreachable")
        target = REPO / ".cache" / self.cache
        target.mkdir(parents=True, exist_ok=True)
        spec = f"{self.package}@{self.version}"
        argv = [npm, "install", "--prefix", str(target), "--no-audit", "--no-fund", spec]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            require_or_skip(f"npm install {spec} did not finish within 10 minutes")
            raise AssertionError("unreachable") from None
        found = self._found()
        if found is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            require_or_skip(f"{self.name} is unavailable: npm install {spec} failed: {' | '.join(tail)}")
            raise AssertionError("unreachable")
        return found


CLAUDE_CODE = NpmClient(
    "Claude Code",
    "@anthropic-ai/claude-code",
    os.environ.get("TOKEND_CLAUDE_CODE_VERSION", "2.1.197"),
    "claude-code",
    "claude",
)
CODEX = NpmClient(
    "the Codex CLI", "@openai/codex", os.environ.get("TOKEND_CODEX_VERSION", "0.169.0"), "codex", "codex"
)


def in_cache(relative: str, what: str) -> Path:
    """``.cache/RELATIVE`` as scripts/test installs it; skips, or fails in CI, when it is missing."""
    for root in cache_roots():
        found = root / ".cache" / relative
        if found.exists():
            return found
    require_or_skip(f"{what} is not installed in .cache/{relative} (scripts/test installs it)")
    raise AssertionError("unreachable")


def run_client(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    """A client run non-interactively: no stdin, output captured, bounded."""
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
