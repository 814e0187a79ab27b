"""The daemonless cross-process cache: double-checked lock, atomic 0600 files."""

from __future__ import annotations

import glob
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tokend.client.rundir import RuntimeDirError
from tokend.core import config
from tokend.core.config import Profile
from tokend.core.credential import Credential
from tokend.core.localcache import LocalCache

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0
PROFILES = """\
[profiles.secretproject]
source = "demo"
lifetime = "1h"
[profiles.other]
source = "demo"
lifetime = "1h"
"""


def profile(name: str = "secretproject", text: str = PROFILES) -> Profile:
    return config.parse(text, None).profile(name)


class Upstream:
    """A fetch function that counts calls and hands out a new token each time."""

    def __init__(self, clock: Callable[[], float], delay: float = 0.0, life: float = HOUR) -> None:
        self.clock, self.delay, self.life = clock, delay, life
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Credential:
        with self._lock:
            self.calls += 1
            n = self.calls
        if self.delay:
            time.sleep(self.delay)
        now = self.clock()
        return Credential.bearer(f"cached-token-{n:04d}", expires_at=now + self.life, issued_at=now)


def usable(clock: Callable[[], float], min_ttl: float = 300.0) -> Callable[[Credential], bool]:
    return lambda c: c.expires_at is None or c.expires_at - clock() > min_ttl


@pytest.fixture
def cache_dir(short_tmp: str) -> str:
    return os.path.join(short_tmp, "cache")


def json_files(directory: str) -> list[str]:
    return sorted(glob.glob(os.path.join(directory, "*.json")))


def test_round_trip(cache_dir: str, clock: Any) -> None:
    cache = LocalCache(cache_dir, clock=clock)
    p = profile()
    assert cache.load(p) is None
    cred = Credential(
        kind="aws",
        fields={"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "s3cr3t", "SessionToken": "tok"},
        expires_at=clock() + HOUR,
        refresh_at=clock() + 1800,
        issued_at=clock(),
        source="aws",
    )
    cache.save(p, cred)
    got = cache.load(p)
    assert got is not None
    assert (got.kind, dict(got.fields), got.expires_at, got.refresh_at, got.issued_at, got.source) == (
        "aws",
        dict(cred.fields),
        cred.expires_at,
        cred.refresh_at,
        cred.issued_at,
        "aws",
    )


def test_fetch_through_caches(cache_dir: str, clock: Any) -> None:
    cache = LocalCache(cache_dir, clock=clock)
    up = Upstream(clock)
    first = cache.fetch_through(profile(), up, usable=usable(clock), forced=False)
    second = cache.fetch_through(profile(), up, usable=usable(clock), forced=False)
    assert up.calls == 1
    assert second.primary == first.primary == "cached-token-0001"


def test_unusable_cached_credential_is_fetched_again(cache_dir: str, clock: Any) -> None:
    cache = LocalCache(cache_dir, clock=clock)
    up = Upstream(clock)
    cache.fetch_through(profile(), up, usable=usable(clock), forced=False)
    clock.advance(HOUR - 200)  # less than min_ttl left
    again = cache.fetch_through(profile(), up, usable=usable(clock), forced=False)
    assert up.calls == 2
    assert again.primary == "cached-token-0002"
    loaded = cache.load(profile())
    assert loaded is not None and loaded.primary == "cached-token-0002"


def test_profiles_do_not_share_entries(cache_dir: str, clock: Any) -> None:
    cache = LocalCache(cache_dir, clock=clock)
    up = Upstream(clock)
    a = cache.fetch_through(profile("secretproject"), up, usable=usable(clock), forced=False)
    b = cache.fetch_through(profile("other"), up, usable=usable(clock), forced=False)
    assert up.calls == 2
    assert a.primary != b.primary


@pytest.mark.timeout(30)
def test_fifty_threads_make_one_fetch(cache_dir: str) -> None:
    cache = LocalCache(cache_dir)
    up = Upstream(time.time, delay=0.3)
    p = profile()
    n = 50
    barrier = threading.Barrier(n)
    results: list[str | None] = []
    errors: list[BaseException] = []

    def call() -> None:
        barrier.wait()
        try:
            results.append(cache.fetch_through(p, up, usable=usable(time.time), forced=False).primary)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    assert up.calls == 1
    assert results == ["cached-token-0001"] * n


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from tokend.core import config
    from tokend.core.credential import Credential
    from tokend.core.localcache import LocalCache

    cache_dir, counter, go = sys.argv[1:4]
    profile = config.parse('[profiles.p]\\nsource = "demo"\\n', None).profile("p")
    cache = LocalCache(cache_dir)

    def fetch():
        fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, b"%d\\n" % os.getpid())
        os.close(fd)
        time.sleep(0.3)
        now = time.time()
        return Credential.bearer("process-%d" % os.getpid(), expires_at=now + 3600, issued_at=now)

    while not os.path.exists(go):
        time.sleep(0.002)
    cred = cache.fetch_through(
        profile, fetch, usable=lambda c: c.expires_at - time.time() > 300, forced=False
    )
    print(cred.primary)
    """
)


@pytest.mark.timeout(60)
def test_eight_processes_make_one_fetch(short_tmp: str, cache_dir: str) -> None:
    counter = os.path.join(short_tmp, "fetches")
    go = os.path.join(short_tmp, "go")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, cache_dir, counter, go],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(8)
    ]
    try:
        time.sleep(0.3)  # let them start up and wait at the line
        Path(go).touch()
        outputs = [p.communicate(timeout=40) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    fetchers = Path(counter).read_text().split()
    assert len(fetchers) == 1
    tokens = {out.strip() for out, _err in outputs}
    assert tokens == {f"process-{fetchers[0]}"}


def test_files_are_private(cache_dir: str, clock: Any) -> None:
    cache = LocalCache(cache_dir, clock=clock)
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700
    cache.fetch_through(profile(), Upstream(clock), usable=usable(clock), forced=False)
    names = os.listdir(cache_dir)
    assert names, "nothing was written"
    for name in names:
        st = os.stat(os.path.join(cache_dir, name))
        assert stat.S_IMODE(st.st_mode) == 0o600, name
        assert "secretproject" not in name  # hashed names: profile names stay out of the file system
    assert not [n for n in names if n.startswith(".tmp-")]  # no temp file left behind


def test_files_are_private_under_a_loose_umask(cache_dir: str, clock: Any) -> None:
    old = os.umask(0)
    try:
        cache = LocalCache(cache_dir, clock=clock)
        cache.fetch_through(profile(), Upstream(clock), usable=usable(clock), forced=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700
    for name in os.listdir(cache_dir):
        assert stat.S_IMODE(os.stat(os.path.join(cache_dir, name)).st_mode) & 0o077 == 0, name


def test_directory_open_to_others_is_refused(cache_dir: str) -> None:
    os.mkdir(cache_dir)
    os.chmod(cache_dir, 0o755)
    with pytest.raises(RuntimeDirError, match="chmod 700"):
        LocalCache(cache_dir)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"\xff\xfe\x00",
        b'{"v": 1, "kind": "bearer", "fields": {"token": "x"}',  # truncated
        b"{}",
        b"[]",
        b"null",
        b"42",
        b'"a string"',
        b'{"v": 2, "kind": "bearer", "fields": {"token": "t"}, "expires_at": null,'
        b' "refresh_at": null, "source": "", "issued_at": 0}',
        b'{"v": 1, "kind": "cookie", "fields": {"token": "t"}, "expires_at": null,'
        b' "refresh_at": null, "source": "", "issued_at": 0}',
        b'{"v": 1, "kind": "bearer", "fields": {"token": ""}, "expires_at": null,'
        b' "refresh_at": null, "source": "", "issued_at": 0}',
        b'{"v": 1, "kind": "bearer", "fields": ["token"], "expires_at": null,'
        b' "refresh_at": null, "source": "", "issued_at": 0}',
        b'{"v": 1, "kind": "bearer", "fields": {"token": "t"}}',
    ],
    ids=lambda c: c[:24].decode("utf-8", "replace"),
)
def test_damaged_cache_file_is_ignored(cache_dir: str, clock: Any, content: bytes) -> None:
    cache = LocalCache(cache_dir, clock=clock)
    up = Upstream(clock)
    cache.fetch_through(profile(), up, usable=usable(clock), forced=False)
    (path,) = json_files(cache_dir)
    with open(path, "wb") as f:
        f.write(content)
    assert cache.load(profile()) is None
    cred = cache.fetch_through(profile(), up, usable=usable(clock), forced=False)
    assert up.calls == 2
    assert cred.primary == "cached-token-0002"
    loaded = cache.load(profile())  # and the damage is repaired
    assert loaded is not None and loaded.primary == "cached-token-0002"


def test_forced_refresh_honours_refresh_limit(cache_dir: str, clock: Any) -> None:
    cache = LocalCache(cache_dir, clock=clock)
    up = Upstream(clock)
    p = profile()
    assert p.refresh_limit == 30.0
    cache.fetch_through(p, up, usable=usable(clock), forced=False)
    clock.advance(10)
    # another process fetched 10 s ago: a forced refresh takes that one
    got = cache.fetch_through(p, up, usable=usable(clock), forced=True)
    assert up.calls == 1
    assert got.primary == "cached-token-0001"
    clock.advance(25)  # 35 s old now
    got = cache.fetch_through(p, up, usable=usable(clock), forced=True)
    assert up.calls == 2
    assert got.primary == "cached-token-0002"


def test_forced_refresh_with_longer_refresh_limit(cache_dir: str, clock: Any) -> None:
    text = '[profiles.slow]\nsource = "demo"\nrefresh_limit = "5m"\n'
    p = profile("slow", text)
    cache = LocalCache(cache_dir, clock=clock)
    up = Upstream(clock)
    cache.fetch_through(p, up, usable=usable(clock), forced=False)
    clock.advance(200)
    cache.fetch_through(p, up, usable=usable(clock), forced=True)
    assert up.calls == 1
    clock.advance(101)
    cache.fetch_through(p, up, usable=usable(clock), forced=True)
    assert up.calls == 2


def test_changed_profile_does_not_read_the_old_entry(cache_dir: str, clock: Any) -> None:
    cache = LocalCache(cache_dir, clock=clock)
    up = Upstream(clock)
    old = profile()
    cache.fetch_through(old, up, usable=usable(clock), forced=False)
    changed = profile(text=PROFILES.replace('lifetime = "1h"', 'lifetime = "2h"', 1))
    assert changed.name == old.name and changed.fingerprint != old.fingerprint
    assert cache.load(changed) is None
    cred = cache.fetch_through(changed, up, usable=usable(clock), forced=False)
    assert up.calls == 2
    assert cred.primary == "cached-token-0002"


def test_fetch_failure_writes_nothing(cache_dir: str, clock: Any) -> None:
    cache = LocalCache(cache_dir, clock=clock)

    def failing() -> Credential:
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError, match="upstream down"):
        cache.fetch_through(profile(), failing, usable=usable(clock), forced=False)
    assert json_files(cache_dir) == []
    assert cache.load(profile()) is None


@pytest.mark.timeout(20)
def test_lock_held_too_long_is_a_source_timeout(cache_dir: str, clock: Any) -> None:
    from tokend.core.errors import SourceTimeout

    cache = LocalCache(cache_dir, lock_timeout=0.2, clock=clock)
    p = profile()
    inside = threading.Event()
    release = threading.Event()

    def slow() -> Credential:
        inside.set()
        release.wait(10)
        return Upstream(clock)()

    holder = threading.Thread(target=lambda: cache.fetch_through(p, slow, usable=usable(clock), forced=False))
    holder.start()
    try:
        assert inside.wait(5)
        start = time.monotonic()
        with pytest.raises(SourceTimeout, match="holds the fetch lock"):
            cache.fetch_through(p, Upstream(clock), usable=usable(clock), forced=False)
        assert time.monotonic() - start < 2.5
    finally:
        release.set()
        holder.join(10)


def test_forget_removes_the_entry(cache_dir: str, clock: Any) -> None:
    cache = LocalCache(cache_dir, clock=clock)
    up = Upstream(clock)
    cache.fetch_through(profile(), up, usable=usable(clock), forced=False)
    cache.fetch_through(profile("other"), up, usable=usable(clock), forced=False)
    cache.forget(profile())
    cache.forget(profile())  # already gone: fine
    assert cache.load(profile()) is None
    assert cache.load(profile("other")) is not None
    cache.fetch_through(profile(), up, usable=usable(clock), forced=False)
    assert up.calls == 3
