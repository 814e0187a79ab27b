"""``tokend env`` for CI jobs, and tokend's defaults under ``CI=true``."""

from __future__ import annotations

import re
import subprocess

from .conftest import Sandbox, Upstream


def world(sandbox: Sandbox) -> tuple[Upstream, dict[str, str]]:
    up = sandbox.upstream("api")
    sandbox.write_config(
        sandbox.command_profile("api", up)
        + '[profiles.short]\nsource = "env"\nvar = "TD_SHORT"\n'
        + '[profiles.vault]\nsource = "keyring"\n'
    )
    return up, sandbox.env(TD_SHORT="abc")


def test_shell_output_evals_in_sh(sandbox: Sandbox) -> None:
    up, env = world(sandbox)
    r = sandbox.tokend("env", "api", "KEY=api", "--format", "shell", env=env)
    assert r.status == 0, r
    token = up.tokens()[-1]
    assert r.out == f"export TOKEND_TOKEN={token}\nexport KEY={token}\n"
    shown = subprocess.run(["sh", "-c", r.out + 'printf %s "$KEY"'], capture_output=True, text=True)
    assert shown.stdout == token
    dotenv = sandbox.tokend("env", "KEY=api", "--format", "dotenv", env=env)
    assert dotenv.out == f"KEY={token}\n"
    assert up.fetches == 1


def test_github_masks_first_and_appends_to_github_env(sandbox: Sandbox) -> None:
    up, env = world(sandbox)
    github_env = sandbox.root / "github_env"
    github_env.write_bytes(b"EARLIER=1\n")
    env.update(CI="true", GITHUB_ACTIONS="true", GITHUB_ENV=str(github_env))
    r = sandbox.tokend("env", "API_TOKEN=api", "UNTIL=api:expires_at", "--format", "github", env=env)
    assert r.status == 0, r
    token = up.tokens()[-1]
    assert r.out == f"::add-mask::{token}\n"  # the expiry time is not a secret: not masked
    assert r.err_lines == ["tokend: API_TOKEN, UNTIL set for the next steps"]
    data = github_env.read_bytes()
    delimiters = re.findall(rb"^[A-Z_]+<<(ghadelimiter_[0-9a-f]{32})$", data, re.M)
    assert len(delimiters) == 2 and delimiters[0] != delimiters[1]
    until = re.search(rb"UNTIL<<\S+\n(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\n", data)
    assert until is not None
    d1, d2 = delimiters
    assert data == (
        b"EARLIER=1\n"
        + b"API_TOKEN<<" + d1 + b"\n" + token.encode() + b"\n" + d1 + b"\n"
        + b"UNTIL<<" + d2 + b"\n" + until.group(1) + b"\n" + d2 + b"\n"
    )
    assert sandbox.daemon_pids() == []  # CI=true: daemonless


def test_github_refusals_write_nothing(sandbox: Sandbox) -> None:
    up, env = world(sandbox)
    no_file = sandbox.tokend("env", "api", "--format", "github", env=env)
    assert no_file.status == 2 and no_file.out == ""
    assert no_file.err_lines == [
        "tokend: --format github: the CI variable GITHUB_ENV is not set (run this in a GitHub Actions step)"
    ]
    assert up.fetches == 0  # said before anything was fetched
    github_env = sandbox.root / "github_env"
    github_env.write_bytes(b"")
    env["GITHUB_ENV"] = str(github_env)
    short = sandbox.tokend("env", "api", "S=short", "--format", "github", env=env)
    assert short.status == 2 and short.out == ""
    assert "S: a 3-character value is too short to mask in the log" in short.err
    assert github_env.read_bytes() == b""


def test_ci_defaults(sandbox: Sandbox) -> None:
    up, env = world(sandbox)
    env["CI"] = "true"
    served = sandbox.print_("api", env=env)
    assert served.status == 0 and served.out == up.tokens()[-1] + "\n"
    assert sandbox.daemon_pids() == []  # no daemon in a CI job
    login = sandbox.tokend("login", "api", env=env)
    assert login.status == 4
    assert login.err_lines[0].startswith("tokend: api: CI=true: nobody can sign in here")
    keychain = sandbox.print_("vault", env=env)
    assert keychain.status == 1
    assert keychain.err_lines == [
        "tokend: vault: CI=true: tokend does not use the OS keychain in CI jobs; give the secret in an "
        'environment variable (source = "env") or federate with oidc'
    ]
    secret = sandbox.tokend("secret", "set", "vault", env=env, input="x" * 20)
    assert secret.status == 1 and "does not use the OS keychain" in secret.err
    # A runner that does run a daemon says so.
    env["TOKEND_NO_DAEMON"] = "0"
    again = sandbox.print_("api", env=env)
    assert again.status == 0 and len(sandbox.daemon_pids()) == 1
