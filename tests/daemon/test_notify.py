"""The daemon's desktop notification when a login is needed: once per identity per interval."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.conftest import FakeClock
from tokend.core import config
from tokend.core.broker import Broker
from tokend.core.config import Profile
from tokend.core.credential import Credential
from tokend.core.errors import LoginRequired, SourceError, TokendError
from tokend.daemon.notify import LoginNotifier
from tokend.sources.base import BaseSource, FetchRequest

CFG = config.parse(
    '[profiles.dev]\nsource = "demo"\n[profiles.prod]\nsource = "demo"\n'
    '[profiles.other]\nsource = "demo"\n[profiles.quiet]\nsource = "demo"\nnotify = false\n',
    None,
)


class Identity(BaseSource):
    def __init__(self, identity: str) -> None:
        super().__init__("x", {}, clock=lambda: 0.0)
        self._identity = identity

    def identity(self) -> str:
        return self._identity


def notifier(
    clock: FakeClock, sent: list[list[str]], which: str | None = "/usr/bin/notify-send"
) -> LoginNotifier:
    return LoginNotifier(interval=900, clock=clock, which=lambda name: which, run=sent.append)


LOGIN = LoginRequired("the AWS SSO session has expired; run: tokend login dev")


def test_once_per_identity_per_interval(clock: FakeClock) -> None:
    sent: list[list[str]] = []
    n = notifier(clock, sent)
    sso = Identity("aws-sso:session:corp")
    assert n.notify(CFG.profile("dev"), sso, LOGIN)
    assert not n.notify(CFG.profile("prod"), sso, LOGIN)  # same SSO session: already told
    assert n.notify(CFG.profile("other"), Identity("google:/adc.json"), LOGIN)
    clock.advance(899)
    assert not n.notify(CFG.profile("dev"), sso, LOGIN)
    clock.advance(2)
    assert n.notify(CFG.profile("dev"), sso, LOGIN)
    assert len(sent) == 3
    argv = sent[0]
    assert argv[0] == "/usr/bin/notify-send" and "--app-name=tokend" in argv
    assert argv[-1] == "dev: the AWS SSO session has expired; run: tokend login dev"


def test_nothing_without_notify_send(clock: FakeClock) -> None:
    sent: list[list[str]] = []
    assert not notifier(clock, sent, which=None).notify(CFG.profile("dev"), Identity("i"), LOGIN)
    assert sent == []


def test_only_login_required_opted_in_and_not_in_ci(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[list[str]] = []
    done = threading.Event()

    def run(argv: list[str]) -> None:
        sent.append(argv)
        done.set()

    n = LoginNotifier(clock=clock, which=lambda _: "notify-send", run=run)
    n(CFG.profile("dev"), Identity("a"), SourceError("boom"))
    n(CFG.profile("quiet"), Identity("b"), LOGIN)
    monkeypatch.setenv("CI", "true")
    n(CFG.profile("dev"), Identity("c"), LOGIN)
    monkeypatch.delenv("CI")
    n(CFG.profile("dev"), Identity("d"), LOGIN)  # the one that goes out, from a thread
    assert done.wait(5)
    assert len(sent) == 1


def test_a_failing_notify_send_is_only_logged(clock: FakeClock) -> None:
    def broken(argv: list[str]) -> None:
        raise OSError("no D-Bus session")

    n = LoginNotifier(clock=clock, which=lambda _: "notify-send", run=broken)
    assert not n.notify(CFG.profile("dev"), Identity("a"), LOGIN)


class Failing(BaseSource):
    name = "failing"

    def fetch(self, request: FetchRequest) -> Credential:
        raise LoginRequired(f"not signed in; run: tokend login {self.profile}")


def test_broker_tells_the_hook_after_the_waiters(clock: FakeClock) -> None:
    seen: list[tuple[str, str, bool]] = []
    hooked = threading.Event()

    def hook(profile: Profile, source: BaseSource, err: TokendError) -> None:
        seen.append((profile.name, err.code, fut.done()))
        hooked.set()

    factory: Callable[[Profile, Callable[[], float]], BaseSource] = lambda p, c: Failing(p.name, {}, clock=c)  # noqa: E731
    broker = Broker(CFG, clock=clock, source_factory=factory, on_failure=hook)
    try:
        fut = broker.lookup("dev")
        assert not isinstance(fut, Credential)
        with pytest.raises(LoginRequired):
            fut.result(5)
        assert hooked.wait(5)
        assert seen == [("dev", "login-required", True)]
    finally:
        broker.close()


def test_notify_setting_in_defaults_and_profiles() -> None:
    cfg = config.parse(
        '[defaults]\nnotify = false\n[profiles.a]\nsource = "demo"\n'
        '[profiles.b]\nsource = "demo"\nnotify = true\n',
        None,
    )
    assert cfg.profile("a").notify is False and cfg.profile("b").notify is True
    assert CFG.profile("dev").notify is True  # the default
