"""``--refresh-on-repeat`` through a shell wrapper, as Claude Code runs ``apiKeyHelper``.

Claude Code runs the helper with ``/bin/sh -c``; Debian's dash does not exec
the last command, so each run has a new ``sh`` parent. The daemon must find
the caller past it (tokend/daemon/repeat.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import TOKEND_PRINT, Sandbox


def _via_sh(sandbox: Sandbox, profile: str) -> str:
    """Run the helper as Claude Code does: a fresh ``/bin/sh -c`` from this process."""
    proc = subprocess.run(
        ["/bin/sh", "-c", f"{TOKEND_PRINT} {profile} --refresh-on-repeat"],
        env=sandbox.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout


@pytest.mark.timeout(60)
def test_a_repeat_through_sh_c_is_served_as_refresh(sandbox: Sandbox) -> None:
    up = sandbox.upstream("api")
    sandbox.write_config(sandbox.command_profile("api", up))
    daemon = sandbox.start_daemon()
    first = _via_sh(sandbox, "api")
    again = _via_sh(sandbox, "api")  # the key was refused: the same caller runs the helper again
    assert first != again
    assert up.tokens() == [first.strip(), again.strip()]
    daemon.wait_for_log("api: asked again by process")


@pytest.mark.timeout(60)
def test_other_callers_through_sh_c_are_served_from_the_cache(sandbox: Sandbox) -> None:
    up = sandbox.upstream("api")
    sandbox.write_config(sandbox.command_profile("api", up))
    sandbox.start_daemon()
    # Each a separate process that runs the helper once through its own sh -c.
    script = (
        "import subprocess, sys; "
        "sys.stdout.write(subprocess.run(['/bin/sh', '-c', sys.argv[1]], "
        "capture_output=True, text=True, check=True).stdout)"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", script, f"{TOKEND_PRINT} api --refresh-on-repeat"],
            env=sandbox.env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        for _ in range(3)
    ]
    assert len(set(outs)) == 1 and outs[0].strip()
    assert up.fetches == 1
