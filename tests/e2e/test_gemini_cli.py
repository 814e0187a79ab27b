"""The real Gemini CLI in Vertex AI mode under ``tokend exec --endpoint google=PROFILE``.

The CLI (@google/genai underneath) takes its token from google-auth-library's
default chain, which finds tokend's metadata endpoint through
``GCE_METADATA_HOST``; ``GOOGLE_VERTEX_BASE_URL`` points it at a fake Vertex AI
that answers only the token tokend fetched from the fake Google. The project
is the one tokend sets (``GOOGLE_CLOUD_PROJECT``) from the profile. Telemetry,
update checks and the IDE integration are off in its settings, and the work
directory is trusted through ``GEMINI_CLI_TRUST_WORKSPACE`` (headless runs
refuse untrusted folders). The CLI comes from ``.cache/gemini-cli`` (installed
by scripts/test); the test is required (TOKEND_REQUIRE_E2E=1) where scripts/test
installs it. It needs Node.js 20 or later: the one on PATH, else the one
scripts/test installs next to it where the system's is older (Debian 12).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.clients import in_cache, run_client
from tests.fakes.aws_lab import require_or_skip
from tests.fakes.google import FakeGoogle
from tests.fakes.vertex_gemini import FakeVertexGemini
from tests.integration.conftest import TOKEND, Sandbox
from tests.integration.test_endpoints_security import setup_google_azure

#: Documented settings (~/.gemini/settings.json) that keep the CLI off the network but for Vertex.
SETTINGS = {
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "ide": {"enabled": False},
}


@pytest.fixture(scope="module")
def gemini() -> str:
    return str(in_cache("gemini-cli/node_modules/.bin/gemini", "the Gemini CLI"))


def _node_major(node: str) -> int:
    try:
        done = subprocess.run(
            [node, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True, timeout=30
        )
        return int(done.stdout.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


def node_for(gemini: str, path: str) -> str:
    """A Node.js of 20 or later (the CLI's minimum): CMD's, the tests', else the one beside the CLI."""
    beside = Path(gemini).parent / "node"
    for node in (shutil.which("node", path=path), shutil.which("node"), str(beside)):
        if node and os.path.exists(node) and _node_major(node) >= 20:
            return node
    require_or_skip("the Gemini CLI needs Node.js 20 or later, and none is on PATH or in .cache/gemini-cli")
    return ""


@pytest.mark.timeout(180)
def test_gemini_cli_on_vertex_gets_its_token_from_the_endpoint(
    gemini: str, sandbox: Sandbox, google: FakeGoogle
) -> None:
    env = setup_google_azure(sandbox, google)
    settings = sandbox.home / ".gemini"
    settings.mkdir(mode=0o700)
    (settings / "settings.json").write_text(json.dumps(SETTINGS))
    work = sandbox.root / "work"
    work.mkdir()
    with FakeVertexGemini(google.tokens) as vertex:
        env.update(
            GOOGLE_GENAI_USE_VERTEXAI="true",
            GOOGLE_CLOUD_LOCATION="us-central1",
            GOOGLE_VERTEX_BASE_URL=vertex.url,
            GEMINI_CLI_TRUST_WORKSPACE="true",
            NO_PROXY="127.0.0.1,localhost",
        )
        node = node_for(gemini, env["PATH"])
        cli = [node, gemini, "-p", "hi", "-m", "gemini-2.5-flash"]
        proc = run_client([TOKEND, "exec", "--endpoint", "google=vertex", "--", *cli], env, work)
        seen = list(vertex.seen)
    assert proc.returncode == 0, (proc.stdout[-1000:], proc.stderr[-2000:], seen)
    assert "pong from gemini on vertex" in proc.stdout
    served = [s for s in seen if s.status == 200]
    assert served and all(s.key == google.tokens()[0] for s in served), seen
    assert len(seen) == len(served), seen  # no request went out without tokend's token
    stream = [s.path for s in served if ":streamGenerateContent" in s.path]
    assert stream and stream[0].endswith("?alt=sse"), seen
    assert "/projects/proj/locations/us-central1/publishers/google/models/gemini-2.5-flash:" in stream[0]
    assert len(google.tokens()) == 1  # tokend's one fetch; the CLI never reached Google itself
