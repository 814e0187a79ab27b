"""The daemon sees config edits without ``tokend reload``; a broken edit keeps the old config."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Sandbox

DEMO = '[profiles.{name}]\nsource = "demo"\nlatency = "0s"\n'


@pytest.mark.timeout(60)
def test_a_profile_added_to_the_file_is_served_at_once(sandbox: Sandbox) -> None:
    sandbox.write_config(DEMO.format(name="old"))
    sandbox.start_daemon()
    assert sandbox.print_("old").status == 0
    sandbox.write_config(DEMO.format(name="old") + DEMO.format(name="new"))
    r = sandbox.print_("new")
    assert r.status == 0, r
    assert sandbox.print_("old").status == 0


@pytest.mark.timeout(60)
def test_a_broken_edit_keeps_the_previous_config_and_says_why(sandbox: Sandbox) -> None:
    sandbox.write_config(DEMO.format(name="old"))
    sandbox.start_daemon()
    token = sandbox.print_("old").out
    sandbox.write_config(DEMO.format(name="old") + "[profiles.new]\nsource = 42\n")
    assert sandbox.print_("old").out == token  # still served, from the same cache
    r = sandbox.print_("new")
    assert r.status == 2 and r.out == ""
    assert len(r.err_lines) == 1
    assert "config changed but is invalid" in r.err and "profiles.new.source" in r.err, r.err
    status = sandbox.tokend("status")
    assert status.status == 0 and "changed but invalid" in status.out, status.out
    assert "profiles.new.source" in str(sandbox.status()["config_error"])
    sandbox.write_config(DEMO.format(name="old") + DEMO.format(name="new"))  # fixed
    assert sandbox.print_("new").status == 0
    assert sandbox.status()["config_error"] is None


@pytest.mark.timeout(60)
def test_a_config_created_under_the_built_in_default_is_seen(sandbox: Sandbox) -> None:
    env = sandbox.env()
    del env["TOKEND_CONFIG"]  # the XDG location, absent at start: the built-in default
    sandbox.start_daemon(env=env)
    assert sandbox.print_("demo", env=env).status == 0
    sandbox.write_config(DEMO.format(name="mine"))  # $XDG_CONFIG_HOME/tokend/config.toml
    r = sandbox.print_("mine", env=env)
    assert r.status == 0, r
    assert sandbox.print_("demo", env=env).status == 2  # the built-in default is gone
