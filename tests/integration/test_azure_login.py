"""Azure laptop sign-in with real processes: ``tokend login`` (device code, browser), then
``tokend serve`` / ``tokend-print`` acquiring tokens silently from the persistent cache.

The fake Entra authority runs in this test process; the test plays the person.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fakes.azure_env import AZURE_VARS
from tests.fakes.entra import FakeEntra, TestCA, install_fake_browser
from tests.integration.conftest import TOKEND, Sandbox

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def ca() -> Iterator[TestCA]:
    import shutil
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="td-ca", dir="/tmp"))
    try:
        yield TestCA(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def entra(ca: TestCA) -> Iterator[FakeEntra]:
    with FakeEntra(ca) as fake:
        yield fake


def azure_env(sandbox: Sandbox, ca: TestCA, **extra: str) -> dict[str, str]:
    env = sandbox.env()
    for var in AZURE_VARS:
        env.pop(var, None)
    env["REQUESTS_CA_BUNDLE"] = str(ca.ca_path)  # the host's own bundle must not apply
    env.update(extra)
    return env


def profiles(entra: FakeEntra, **extra: str) -> str:
    common = (
        f'tenant_id = "{entra.tenant}"\nauthority = "{entra.url}"\n'
        "disable_instance_discovery = true\nallow_unencrypted_cache = true\n"
    )
    text = ""
    for name, kind in (("dev", "device-code"), ("never", "device-code"), ("web", "browser")):
        text += f'[profiles.{name}]\nsource = "azure"\ncredential = "{kind}"\n{common}'
        text += "".join(f'{k} = "{v}"\n' for k, v in extra.items()) + "\n"
    return text


class LoginProcess:
    """``tokend login`` running; the test reads its instructions and acts as the person."""

    def __init__(self, sandbox: Sandbox, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [TOKEND, "login", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        sandbox.extra_pids.append(self.proc.pid)
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"tokend login never printed {pattern!r}: {self.lines}")

    def finish(self, timeout: float = 30) -> int:
        status = self.proc.wait(timeout)
        self._reader.join(5)
        return status


def device_login(sandbox: Sandbox, env: dict[str, str], ca: TestCA, profile: str) -> LoginProcess:
    login = LoginProcess(sandbox, env, profile)
    uri, code = login.wait_for(r"open (https://\S+) and enter the code (\w+)").groups()
    answer = requests.post(uri, data={"code": code}, verify=str(ca.ca_path), timeout=10)
    assert answer.status_code == 200
    assert login.finish() == 0, login.lines
    return login


@pytest.mark.timeout(90)
def test_device_code_login_then_silent_in_fresh_daemons(
    sandbox: Sandbox, entra: FakeEntra, ca: TestCA
) -> None:
    sandbox.write_config(profiles(entra))
    env = azure_env(sandbox, ca)

    login = device_login(sandbox, env, ca, "dev")
    assert any("signed in as dev@tokend.test" in line for line in login.lines)
    record = sandbox.config_home / "tokend" / "azure" / "dev.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert entra.grant_count(DEVICE_GRANT) == 1
    flows = len(entra.flows)

    daemon = sandbox.start_daemon(env=env)
    first = sandbox.print_("dev", env=env)
    assert first.status == 0, first
    assert first.out == entra.issued[0] + "\n"  # the sign-in's token, from the persistent cache
    assert sandbox.print_("dev", env=env).out == first.out  # the daemon's cache
    assert entra.grant_count("refresh_token") == 0
    daemon.stop()

    # A fresh daemon (a reboot, an upgrade) signs in silently: nobody is prompted.
    daemon = sandbox.start_daemon(env=env)
    again = sandbox.print_("dev", env=env)
    assert again.status == 0, again
    assert again.out.strip() in entra.issued
    refreshed = sandbox.print_("dev", "--refresh", env=env)
    assert refreshed.status == 0, refreshed
    assert refreshed.out != again.out and refreshed.out.strip() in entra.issued
    assert entra.grant_count("refresh_token") >= 1
    assert len(entra.flows) == flows
    log = daemon.log_text()
    assert not any(token in log for token in entra.issued)

    status = sandbox.profile_status("dev")
    assert status["state"] == "fresh" and status["source"] == "azure"

    # Signing out: the daemon stops serving at once and asks for a login.
    out = sandbox.tokend("logout", "dev", env=env)
    assert out.status == 0, out
    assert not record.exists()
    gone = sandbox.print_("dev", env=env)
    assert gone.status == 4, gone
    assert gone.out == "" and gone.err == "tokend: dev: not signed in; run: tokend login dev\n"


@pytest.mark.timeout(60)
def test_never_signed_in_exits_4_without_prompting(sandbox: Sandbox, entra: FakeEntra, ca: TestCA) -> None:
    sandbox.write_config(profiles(entra))
    env = azure_env(sandbox, ca)
    daemonless = dict(env, TOKEND_NO_DAEMON="1")
    for run_env in (daemonless, env):
        r = sandbox.print_("never", env=run_env)
        assert r.status == 4, r
        assert r.out == ""
        assert r.err_lines == ["tokend: never: not signed in; run: tokend login never"]
    assert entra.flows == {} and entra.grants == []  # nobody was asked to sign in


@pytest.mark.timeout(60)
def test_browser_login(sandbox: Sandbox, entra: FakeEntra, ca: TestCA) -> None:
    sandbox.write_config(profiles(entra))
    browser = install_fake_browser(sandbox.root / "bin", sys.executable)
    browser_log = sandbox.root / "browser.log"
    env = azure_env(
        sandbox, ca, BROWSER=str(browser), FAKE_BROWSER_LOG=str(browser_log), FAKE_BROWSER_CA=str(ca.ca_path)
    )
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    login = LoginProcess(sandbox, env, "web")
    assert login.finish() == 0, login.lines
    opened = browser_log.read_text()
    assert opened.startswith(f"{entra.url}/{entra.tenant}/oauth2/v2.0/authorize?")
    assert "code_challenge=" in opened  # PKCE
    assert entra.grant_count("authorization_code") == 1
    r = sandbox.print_("web", env=dict(env, TOKEND_NO_DAEMON="1"))
    assert r.status == 0, r
    assert r.out.strip() in entra.issued


@pytest.mark.timeout(60)
def test_browser_profile_without_a_browser_uses_a_device_code(
    sandbox: Sandbox, entra: FakeEntra, ca: TestCA
) -> None:
    sandbox.write_config(profiles(entra))
    env = azure_env(sandbox, ca)
    login = LoginProcess(sandbox, env, "web", "--no-browser")
    uri, code = login.wait_for(r"open (https://\S+) and enter the code (\w+)").groups()
    requests.post(uri, data={"code": code}, verify=str(ca.ca_path), timeout=10)
    assert login.finish() == 0, login.lines
    assert any("device code instead" in line for line in login.lines)
    assert (sandbox.config_home / "tokend" / "azure" / "web.json").exists()


@pytest.mark.timeout(60)
def test_cache_is_not_written_unencrypted_without_the_opt_in(
    sandbox: Sandbox, entra: FakeEntra, ca: TestCA
) -> None:
    text = profiles(entra).replace("allow_unencrypted_cache = true", "allow_unencrypted_cache = false")
    sandbox.write_config(text)
    env = azure_env(sandbox, ca)
    probe = subprocess.run(
        [str(Path(TOKEND).parent / "python"), "-c", "import gi"], env=env, capture_output=True, timeout=30
    )
    if probe.returncode == 0:
        pytest.skip("PyGObject is importable: the cache would be encrypted here")
    login = LoginProcess(sandbox, env, "dev")
    status = login.finish()
    assert status == 1, login.lines
    assert login.lines[-1].startswith("tokend: dev: cannot encrypt the token cache here")
    assert "allow_unencrypted_cache = true" in login.lines[-1]
    assert not os.path.exists(sandbox.home / ".IdentityService" / "tokend.dev.nocae")
