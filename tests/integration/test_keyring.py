"""``source = "keyring"`` against a real Secret Service (gnome-keyring on a private D-Bus)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import BIN, Sandbox, SecretService

PROFILE = """\
[profiles.openai]
source = "keyring"
min_ttl = "5s"

[profiles.wrapped]
source = "command"
command = ["true"]
"""

# Reads the item straight from the Secret Service, so the test knows where the secret went.
_LOOKUP = """
import secretstorage, sys
bus = secretstorage.dbus_init()
items = list(secretstorage.search_items(bus, {"service": "tokend", "username": "openai"}))
print(len(items))
for item in items:
    item.unlock()
    print(item.get_secret().decode())
"""


@pytest.mark.timeout(60)
def test_secret_set_print_delete(sandbox: Sandbox, secret_service: SecretService) -> None:
    env = dict(secret_service.env)
    sandbox.write_config(PROFILE)
    secret = "sk-test-0123456789abcdef"

    r = sandbox.tokend("secret", "set", "openai", env=env, input=secret + "\n")
    assert r.status == 0, r
    assert secret not in r.out + r.err

    stored = sandbox.run([str(BIN / "python"), "-c", _LOOKUP], env=env)
    assert stored.status == 0, stored
    assert stored.out.split() == ["1", secret]

    daemonless = sandbox.env(secret_service.env, TOKEND_NO_DAEMON="1")
    got = sandbox.print_("openai", env=daemonless)
    assert got.status == 0, got
    assert got.out == secret + "\n"
    assert got.err == ""
    via_get = sandbox.tokend("get", "--no-daemon", "openai", env=env)
    assert via_get.status == 0 and via_get.out == secret + "\n"

    # Through a daemon too (it inherits the session bus from its environment).
    daemon = sandbox.start_daemon(env=env)
    assert sandbox.print_("openai", env=env).out == secret + "\n"
    assert secret not in daemon.log_text()

    # Replacing the secret: the running daemon drops its cached copy.
    rotated = "sk-test-rotated-9876543210"
    assert sandbox.tokend("secret", "set", "openai", env=env, input=rotated).status == 0
    assert sandbox.print_("openai", env=env).out == rotated + "\n"
    assert sandbox.print_("openai", env=daemonless).out == rotated + "\n"

    r = sandbox.tokend("secret", "delete", "openai", env=env)
    assert r.status == 0, r
    assert sandbox.run([str(BIN / "python"), "-c", _LOOKUP], env=env).out.split() == ["0"]

    for result in (sandbox.print_("openai", env=daemonless), sandbox.print_("openai", env=env)):
        assert result.status == 1, result
        assert result.out == ""
        assert len(result.err_lines) == 1, result.err
        assert result.err.startswith("tokend: openai: ")
        assert "tokend secret set openai" in result.err
        assert rotated not in result.err

    # Deleting again: nothing stored, a usage error naming the profile.
    again = sandbox.tokend("secret", "delete", "openai", env=env)
    assert again.status == 2
    assert len(again.err_lines) == 1 and "openai" in again.err


@pytest.mark.timeout(60)
def test_secret_commands_refuse_other_sources(sandbox: Sandbox, secret_service: SecretService) -> None:
    sandbox.write_config(PROFILE)
    r = sandbox.tokend("secret", "set", "wrapped", env=secret_service.env, input="x")
    assert r.status == 2
    assert len(r.err_lines) == 1 and "wrapped" in r.err and "keyring" in r.err
    r = sandbox.tokend("secret", "set", "nosuch", env=secret_service.env, input="x")
    assert r.status == 2
    assert len(r.err_lines) == 1 and "nosuch" in r.err
    empty = sandbox.tokend("secret", "set", "openai", env=secret_service.env, input="\n")
    assert empty.status == 2 and len(empty.err_lines) == 1
