"""``source = "command"`` with real subprocesses (small Python scripts)."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tokend.core.credential import Credential
from tokend.core.errors import SourceError, SourceTimeout, SourceUnavailable
from tokend.sources.base import FetchRequest
from tokend.sources.command import CommandSource

Make = Callable[..., CommandSource]

#: A command that starts a grandchild (writing its pid to a file) and then hangs.
GRANDCHILD_SCRIPT = """
    import os, subprocess, sys, time
    pidfile = {pidfile!r}
    subprocess.Popen([
        sys.executable, "-c",
        "import os, sys, time; open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()));"
        " os.rename(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(60)",
        pidfile,
    ])
    while not os.path.exists(pidfile):
        time.sleep(0.01)
    time.sleep(60)
"""


@pytest.fixture
def make(tmp_path: Path, clock: Any) -> Make:
    """A CommandSource running ``script`` (Python source) with the given options."""

    def build(script: str, **options: Any) -> CommandSource:
        path = tmp_path / f"helper{len(list(tmp_path.iterdir()))}.py"
        path.write_text(textwrap.dedent(script), encoding="utf-8")
        settings = {name: opt.default for name, opt in CommandSource.options.items()}
        settings["command"] = (sys.executable, str(path))
        settings.update(options)
        return CommandSource("wrapped", settings, clock=clock)

    return build


def fetch(source: CommandSource, timeout: float = 10.0) -> Credential:
    return source.fetch(FetchRequest(profile="wrapped", timeout=timeout))


def test_raw_token(make: Make, clock: Any) -> None:
    cred = fetch(make('print("ya29.raw-token-from-helper")'))
    assert cred.kind == "bearer"
    assert cred.primary == "ya29.raw-token-from-helper"
    assert cred.issued_at == clock()
    assert cred.expires_at == clock() + 3000.0  # default ttl 50m
    assert cred.source == "command"


def test_raw_token_surrounding_whitespace_is_stripped(make: Make) -> None:
    cred = fetch(make('import sys; sys.stdout.write("\\n  tok-with-space  \\r\\n\\n")'))
    assert cred.primary == "tok-with-space"


def test_no_expiry_uses_ttl(make: Make, clock: Any) -> None:
    cred = fetch(make('print("tok")', ttl=120.0))
    assert cred.expires_at == clock() + 120.0
    json_cred = fetch(make('print(\'{"token": "tok"}\')', ttl=90.0))
    assert json_cred.expires_at == clock() + 90.0


@pytest.mark.parametrize("key", ["token", "access_token"])
def test_json_with_expires_in(make: Make, clock: Any, key: str) -> None:
    cred = fetch(make(f'import json; print(json.dumps({{"{key}": "json-tok", "expires_in": 1799}}))'))
    assert cred.primary == "json-tok"
    assert cred.expires_at == clock() + 1799


def test_json_with_epoch_expires_at(make: Make) -> None:
    cred = fetch(make('print(\'{"access_token": "tok", "expires_at": 1900000000}\')'))
    assert cred.expires_at == 1_900_000_000.0


@pytest.mark.parametrize(
    "stamp",
    ["2030-03-17T17:46:40Z", "2030-03-17T17:46:40+00:00", "2030-03-17T19:46:40+02:00", "2030-03-17T17:46:40"],
)
def test_json_with_rfc3339_expires_at(make: Make, stamp: str) -> None:
    cred = fetch(make(f'print(\'{{"token": "tok", "expires_at": "{stamp}"}}\')'))
    assert cred.expires_at == 1_900_000_000.0


def test_json_expires_at_wins_over_expires_in(make: Make) -> None:
    cred = fetch(make('print(\'{"token": "t", "expires_at": 1900000000, "expires_in": 5}\')'))
    assert cred.expires_at == 1_900_000_000.0


def test_json_with_unparseable_expires_at(make: Make) -> None:
    with pytest.raises(SourceError, match="expires_at"):
        fetch(make('print(\'{"token": "t", "expires_at": "next tuesday"}\')'))


@pytest.mark.parametrize("doc", ['{"expires_in": 60}', '{"token": ""}', '{"token": 5}', '{"tok": "x"}'])
def test_json_without_token(make: Make, doc: str) -> None:
    with pytest.raises(SourceError, match='no "token"'):
        fetch(make(f"print('{doc}')"))


def test_malformed_json(make: Make) -> None:
    with pytest.raises(SourceError, match="malformed JSON") as info:
        fetch(make('print(\'{"token": "half\')'))
    assert info.value.profile == "wrapped"


@pytest.mark.parametrize("script", ["pass", 'print("")', 'print("   \\n\\n")'])
def test_empty_output(make: Make, script: str) -> None:
    with pytest.raises(SourceError, match="printed nothing"):
        fetch(make(script))


def test_several_lines_of_output(make: Make) -> None:
    with pytest.raises(SourceError, match="several lines"):
        fetch(make('print("Your token is:"); print("tok")'))


def test_non_utf8_output(make: Make) -> None:
    with pytest.raises(SourceError, match="not UTF-8"):
        fetch(make('import sys; sys.stdout.buffer.write(b"\\xff\\xfe tok")'))


def test_non_zero_exit_carries_the_last_stderr_line(make: Make) -> None:
    script = """
        import sys
        print("partial-token-on-stdout")
        sys.stderr.write("WARNING: something harmless\\n")
        sys.stderr.write("ERROR: (gcloud.auth) Reauthentication required.\\n\\n")
        sys.exit(3)
    """
    with pytest.raises(SourceError) as info:
        fetch(make(script))
    err = info.value
    assert not isinstance(err, SourceUnavailable)
    assert "ERROR: (gcloud.auth) Reauthentication required." in err.message
    assert "(exit status 3)" in err.message
    assert "something harmless" not in err.message
    assert "partial-token-on-stdout" not in err.message
    assert err.profile == "wrapped"


def test_non_zero_exit_without_stderr_names_the_status(make: Make) -> None:
    with pytest.raises(SourceError, match="exit status 7"):
        fetch(make("import sys; sys.exit(7)"))


def test_death_by_signal_is_named(make: Make) -> None:
    with pytest.raises(SourceError, match=r"failed \(killed by signal 9\)"):
        fetch(make("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))


def test_stderr_on_success_is_ignored(make: Make) -> None:
    cred = fetch(make('import sys; sys.stderr.write("progress...\\n"); print("tok-ok")'))
    assert cred.primary == "tok-ok"


def test_command_not_found_is_unavailable(make: Make, tmp_path: Path) -> None:
    source = make("", command=(str(tmp_path / "no-such-helper"), "--print"))
    with pytest.raises(SourceUnavailable, match="command not found") as info:
        fetch(source)
    assert "no-such-helper" in info.value.message


def test_command_not_executable_is_an_error(make: Make, tmp_path: Path) -> None:
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho tok\n")
    os.chmod(script, 0o600)
    source = make("", command=(str(script),))
    with pytest.raises(SourceError, match="cannot run"):
        fetch(source)


def test_env_and_cwd_options(make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEND_TEST_INHERITED", "from-parent")
    work = tmp_path / "work"
    work.mkdir()
    script = """
        import os
        env = os.environ
        print(env["EXTRA"] + ":" + env["TOKEND_TEST_INHERITED"] + ":" + os.path.basename(os.getcwd()))
    """
    cred = fetch(make(script, env={"EXTRA": "added"}, cwd=str(work)))
    assert cred.primary == "added:from-parent:work"


def test_stdin_is_not_inherited(make: Make) -> None:
    # a helper that tries to prompt must not hang waiting for the daemon's stdin
    cred = fetch(make('import sys; data = sys.stdin.read(); print("read-%d" % len(data))'), timeout=5)
    assert cred.primary == "read-0"


@pytest.mark.timeout(20)
def test_timeout_kills_the_whole_process_group(make: Make, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = GRANDCHILD_SCRIPT.format(pidfile=str(pidfile))
    source = make(script)
    start = time.monotonic()
    with pytest.raises(SourceTimeout, match=r"did not finish within 2\.5s") as info:
        fetch(source, timeout=2.5)
    elapsed = time.monotonic() - start
    assert 2.4 <= elapsed < 6
    assert info.value.retryable is True
    grandchild = int(pidfile.read_text())
    assert wait_dead(grandchild, 5), f"grandchild {grandchild} survived the timeout"


@pytest.mark.timeout(20)
def test_timeout_with_closed_stdout_still_kills(make: Make) -> None:
    # closing stdout does not end the wait: the command is still bounded
    script = "import os, time; os.close(1); os.close(2); time.sleep(60)"
    start = time.monotonic()
    with pytest.raises(SourceTimeout):
        fetch(make(script), timeout=0.5)
    assert time.monotonic() - start < 5


def wait_dead(pid: int, within: float) -> bool:
    """True once ``pid`` is gone (or a zombie nobody has reaped yet: it runs no code)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.timeout(20)
def test_close_kills_a_running_command(make: Make, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    source = make(GRANDCHILD_SCRIPT.format(pidfile=str(pidfile)))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fetch(source, timeout=30)
        except BaseException as e:  # checked below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pidfile.exists()
    source.close()  # daemon shutdown
    t.join(5)
    assert not t.is_alive(), "fetch kept waiting for a killed command"
    assert len(errors) == 1 and isinstance(errors[0], SourceError)
    assert wait_dead(int(pidfile.read_text()), 5)


@pytest.mark.timeout(20)
def test_fetch_after_close_does_not_run_on(make: Make) -> None:
    source = make("import time; time.sleep(60)")
    source.close()
    start = time.monotonic()
    with pytest.raises(SourceError):
        fetch(source, timeout=30)
    assert time.monotonic() - start < 5
