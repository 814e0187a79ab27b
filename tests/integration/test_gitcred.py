"""``git-credential-tokend`` driven by real git (``git credential fill/reject``), daemon and CI modes."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import BIN, TOKEND, Sandbox, Upstream

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

HELPER = str(BIN / "git-credential-tokend")


def world(sandbox: Sandbox) -> tuple[Upstream, Upstream, dict[str, str]]:
    gh = sandbox.upstream("gh")
    broken = sandbox.upstream("broken")
    broken.set_mode("fail")
    sandbox.write_config(
        sandbox.command_profile("gh", gh)
        + sandbox.command_profile("broken", broken)
        + '[hosts]\n"github.com" = "gh"\n"git.broken.example" = "broken"\n'
    )
    env = sandbox.env(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", TOKEND_TIMEOUT="10")
    return gh, broken, env


def git_credential(
    sandbox: Sandbox, env: dict[str, str], op: str, text: str, *helper_args: str
) -> subprocess.CompletedProcess[str]:
    helpers = helper_args or ("-c", "credential.helper=", "-c", f"credential.helper={HELPER}")
    return subprocess.run(
        ["git", *helpers, "credential", op],
        input=text,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=sandbox.root,
    )


def fields(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_git_credential_fill_gets_the_token_through_the_daemon(sandbox: Sandbox) -> None:
    gh, _, env = world(sandbox)
    daemon = sandbox.start_daemon(env=env)
    first = git_credential(sandbox, env, "fill", "protocol=https\nhost=github.com\npath=acme/x.git\n\n")
    assert first.returncode == 0, first.stderr
    got = fields(first.stdout)
    assert got["username"] == "x-access-token" and got["password"] == gh.tokens()[-1]
    again = git_credential(sandbox, env, "fill", "url=https://github.com/acme/y.git\n\n")
    assert fields(again.stdout)["password"] == got["password"]
    assert gh.fetches == 1  # the daemon's cache served the second
    # git 2.39 drops password_expiry_utc from fill's output; the helper does send it.
    direct = subprocess.run(
        [HELPER, "get"], input="protocol=https\nhost=github.com\n\n", env=env, capture_output=True, text=True
    )
    expiry = int(fields(direct.stdout)["password_expiry_utc"])
    assert 3500 < expiry - time.time() <= 3600

    # A 401 makes git erase the credential: tokend fetches a new one (rate-limited per profile).
    rejected = git_credential(
        sandbox, env, "reject", f"protocol=https\nhost=github.com\nusername=x\npassword={got['password']}\n\n"
    )
    assert rejected.returncode == 0, rejected.stderr
    assert gh.fetches == 2
    new = fields(git_credential(sandbox, env, "fill", "protocol=https\nhost=github.com\n\n").stdout)
    assert new["password"] == gh.tokens()[-1] != got["password"]
    assert got["password"] not in daemon.log_text()


def test_unmapped_hosts_and_failures_leave_git_to_its_other_ways(sandbox: Sandbox) -> None:
    _, broken, env = world(sandbox)
    env["CI"] = "true"  # daemonless, as in a CI job
    other = git_credential(sandbox, env, "fill", "protocol=https\nhost=gitlab.com\n\n")
    assert other.returncode != 0 and "terminal prompts disabled" in other.stderr
    failed = git_credential(sandbox, env, "fill", "protocol=https\nhost=git.broken.example\n\n")
    assert failed.returncode != 0
    assert "tokend: broken: " in failed.stderr and "upstream exploded" in failed.stderr
    assert broken.fetches == 1
    assert sandbox.daemon_pids() == []  # CI=true: no daemon was started


def test_integrate_git_then_plain_git_uses_tokend(sandbox: Sandbox) -> None:
    gh, _, env = world(sandbox)
    env["TOKEND_NO_DAEMON"] = "1"
    r = sandbox.tokend("integrate", "git", "gh", "--host", "git.example.com", env=env)
    assert r.status == 0, r
    assert Path(sandbox.home, ".gitconfig").read_text().count("git-credential-tokend") == 1
    # No -c flags: git reads the helper from ~/.gitconfig; the host from tokend's [hosts].
    done = git_credential(sandbox, env, "fill", "protocol=https\nhost=git.example.com\n\n", "-c", "x.y=z")
    assert done.returncode == 0, done.stderr
    assert fields(done.stdout)["password"] == gh.tokens()[-1]
    assert fields(done.stdout)["username"] == "tokend"
    usage = subprocess.run([TOKEND, "integrate", "git", "gh"], env=env, capture_output=True, text=True)
    assert usage.returncode == 0  # [hosts] already routes git.example.com to gh


def imported(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reported."""
    return {line.rpartition("|")[2].strip() for line in stderr.splitlines()[1:] if "|" in line}


def test_with_a_daemon_the_helper_imports_what_tokend_print_imports(sandbox: Sandbox) -> None:
    gh, _, env = world(sandbox)
    python = str(BIN / "python")
    ask = [python, "-X", "importtime", HELPER, "get"]
    # No daemon yet: the helper starts one, which answers; the file is not parsed here.
    first = subprocess.run(ask, input="protocol=https\nhost=github.com\n\n", env=env, capture_output=True,
                           text=True, timeout=30)
    assert fields(first.stdout)["password"] == gh.tokens()[-1], first.stderr[-300:]
    assert "tomllib" not in imported(first.stderr)
    # With one running, the daemon renders the answer: nothing beyond tokend-print's imports.
    again = subprocess.run(ask, input="protocol=https\nhost=github.com\n\n", env=env, capture_output=True,
                           text=True, timeout=30)
    assert fields(again.stdout)["password"] == gh.tokens()[-1]
    printed = subprocess.run([python, "-X", "importtime", str(BIN / "tokend-print"), "gh"], env=env,
                             capture_output=True, text=True, timeout=30)
    assert printed.stdout.strip() == gh.tokens()[-1]
    extra = imported(again.stderr) - imported(printed.stderr)
    assert extra == {"tokend.client.helpercall", "tokend.client.gitcred"}
    assert not {"json", "re", "tomllib", "collections"} & imported(again.stderr)
    # An unmapped host is still nobody's business.
    other = subprocess.run(ask, input="protocol=https\nhost=example.org\n\n", env=env, capture_output=True,
                           text=True, timeout=30)
    assert other.returncode == 0 and other.stdout == ""
    assert gh.fetches == 1
    sandbox.tokend("stop", env=env)
