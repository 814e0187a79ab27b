"""The real Codex CLI gets its bearer token from ``tokend-print`` for a google profile.

Installs ``@openai/codex`` from npm into ``.cache/codex`` (once; gitignored),
writes the provider with the real ``tokend integrate codex``, and runs
``codex exec`` against a fake Responses API that 401s anything but a token the
fake Google issued and has not revoked. Without npm or the registry the test
is skipped, or fails when ``TOKEND_REQUIRE_E2E=1`` (CI).
"""

from __future__ import annotations

import json
import os

import pytest
import tomlkit

from tests.fakes.google import FakeGoogle
from tests.fakes.responses_api import FakeResponsesApi
from tests.integration.conftest import TOKEND_PRINT, Result, Sandbox


class Codex:
    """``codex exec`` in a sandbox, pointed at the fake Responses API."""

    def __init__(self, exe: str, sandbox: Sandbox, env: dict[str, str], api: FakeResponsesApi) -> None:
        self.exe = exe
        self.sandbox = sandbox
        self.env = env
        self.api = api

    def exec(self, prompt: str = "say hi") -> Result:
        argv = [
            self.exe,
            "exec",
            "--skip-git-repo-check",
            "-c",
            'model_provider="vertex"',
            "-c",
            f'model_providers.vertex.base_url="{self.api.url}"',  # the user's edit of the placeholder
            "-m",
            "fake-model",
            prompt,
        ]
        return self.sandbox.run(argv, env=self.env, timeout=120)


@pytest.mark.timeout(300)
def test_codex_uses_tokend_and_gets_a_new_token_after_a_401(
    codex: str, sandbox: Sandbox, google: FakeGoogle
) -> None:
    key = sandbox.root / "sa.json"
    key.write_text(json.dumps(google.service_account("vertex@proj.iam.gserviceaccount.com")))
    key.chmod(0o600)
    sandbox.write_config(f'[profiles.vertex]\nsource = "google"\ncredentials_file = "{key}"\n')
    codex_home = sandbox.root / "codex-home"
    env = {
        k: v
        for k, v in sandbox.env(CODEX_HOME=str(codex_home)).items()
        if not k.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_", "OPENAI_", "CODEX_API"))
    }

    # The provider block, written by tokend itself.
    integrate = sandbox.tokend("integrate", "codex", "vertex", env=env)
    assert integrate.status == 0, integrate.err
    provider = tomlkit.parse((codex_home / "config.toml").read_text())["model_providers"]["vertex"]  # type: ignore[index]
    assert provider["auth"]["command"] == TOKEND_PRINT and os.path.isabs(provider["auth"]["command"])  # type: ignore[index]
    assert list(provider["auth"]["args"]) == ["vertex", "--refresh-on-repeat"]  # type: ignore[index]

    revoked: set[str] = set()
    with FakeResponsesApi(lambda t: google.find(t) is not None and t not in revoked) as api:
        daemon = sandbox.start_daemon(env=env)
        run = Codex(codex, sandbox, env, api)

        first = run.exec()
        assert first.status == 0, first.err[-3000:]
        assert "pong from the fake" in first.out
        (t1,) = google.tokens()
        assert [(s.key, s.status) for s in api.calls()] == [(t1, 200)]

        # Google revokes the token the daemon still caches: the next Codex
        # process is handed it, gets a 401, runs tokend-print again, and this
        # time (same parent, within the window) gets a new token.
        revoked.add(t1)
        second = run.exec()
        assert second.status == 0, second.err[-3000:]
        assert "pong from the fake" in second.out
        t1_again, t2 = google.tokens()[0], google.tokens()[-1]
        assert t1_again == t1 and t2 != t1 and len(google.tokens()) == 2
        assert [(s.key, s.status) for s in api.calls()[1:]] == [(t1, 401), (t2, 200)]
        daemon.wait_for_log("served as --refresh")

        # A third process is served the new token from the cache: no upstream call.
        third = run.exec()
        assert third.status == 0 and api.calls()[-1].key == t2 and len(google.tokens()) == 2
