"""The real Claude Code gets its API key from ``tokend-print`` through ``apiKeyHelper``.

Installs ``@anthropic-ai/claude-code`` from npm into ``.cache/claude-code``
(once; gitignored; scripts/test does it in CI), writes ``apiKeyHelper`` with
the real ``tokend integrate claude``, and runs ``claude -p`` against a fake
Messages API that 401s anything but a key the ``command`` source issued and
the fake has not revoked. Claude Code runs the helper through ``/bin/sh -c``:
after a 401 its next run must be handed a new key (tokend/daemon/repeat.py).
Without npm or the registry the test is skipped, or fails when
``TOKEND_REQUIRE_E2E=1`` (CI).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.clients import CLAUDE_OFFLINE
from tests.fakes.anthropic_api import FakeAnthropicApi
from tests.integration.conftest import TOKEND_PRINT, Result, Sandbox

OFFLINE = CLAUDE_OFFLINE


def _env(sandbox: Sandbox, api: FakeAnthropicApi) -> dict[str, str]:
    env = {
        k: v
        for k, v in sandbox.env(**OFFLINE).items()
        if not k.startswith(("ANTHROPIC_", "CLAUDE_", "AWS_", "GOOGLE_", "HTTP_PROXY", "HTTPS_PROXY"))
    }
    env.update(OFFLINE, ANTHROPIC_BASE_URL=api.url, NO_PROXY="127.0.0.1,localhost")
    return env


def _ask(claude: str, sandbox: Sandbox, env: dict[str, str]) -> Result:
    work = sandbox.root / "work"
    work.mkdir(exist_ok=True)
    argv = [claude, "-p", "hi", "--model", "claude-sonnet-4-5", "--max-turns", "1"]
    proc = subprocess.run(
        argv, env=env, cwd=work, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    return Result(proc.returncode, proc.stdout, proc.stderr, 0.0)


@pytest.mark.timeout(300)
def test_claude_code_gets_a_new_key_after_a_401_and_shares_the_cache(claude: str, sandbox: Sandbox) -> None:
    up = sandbox.upstream("anthropic")
    # refresh_limit: the first fetch asks for --min-ttl 10m, more than the
    # profile's min_ttl, and so counts as a forced one; the revocation below
    # comes a second later, not minutes as it would for a user.
    sandbox.write_config(sandbox.command_profile("anthropic", up, refresh_limit="0s"))
    revoked: set[str] = set()
    with FakeAnthropicApi(lambda key: key in up.tokens() and key not in revoked) as api:
        env = _env(sandbox, api)
        integrate = sandbox.tokend("integrate", "claude", "anthropic", env=env)
        assert integrate.status == 0, integrate.err
        settings = json.loads((sandbox.home / ".claude" / "settings.json").read_text())
        assert settings["apiKeyHelper"].startswith(f"{TOKEND_PRINT} anthropic ")
        assert "--refresh-on-repeat" in settings["apiKeyHelper"]
        daemon = sandbox.start_daemon(env=env)

        first = _ask(claude, sandbox, env)
        assert first.status == 0, (first.out + first.err)[-3000:]
        assert "pong from the fake" in first.out
        (k1,) = up.tokens()
        assert [(s.key, s.status) for s in api.calls()] == [(k1, 200)]

        # The server revokes the key tokend still caches: the next claude is
        # handed it, gets a 401, runs the helper again (through a new sh), and
        # that run gets a new key.
        revoked.add(k1)
        second = _ask(claude, sandbox, env)
        assert second.status == 0, (second.out + second.err)[-3000:]
        assert "pong from the fake" in second.out
        k1_again, k2 = up.tokens()
        assert k1_again == k1 and k2 != k1
        assert [(s.key, s.status) for s in api.calls()[1:]] == [(k1, 401), (k2, 200)]
        daemon.wait_for_log("anthropic: asked again by process")

        # Another claude process is served from the cache: no upstream call.
        third = _ask(claude, sandbox, env)
        assert third.status == 0, (third.out + third.err)[-3000:]
        assert [(s.key, s.status) for s in api.calls()[3:]] == [(k2, 200)]
        assert up.fetches == 2
        status = json.loads(sandbox.tokend("status", "--json", env=env).out)
        print("claude-code e2e:", [(s.key, s.status) for s in api.calls()], "status:", status)
