"""The env, file and demo sources."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tokend.core import policy
from tokend.core.errors import SourceError, SourceUnavailable
from tokend.sources.base import BaseSource, FetchRequest
from tokend.sources.demo import DemoSource
from tokend.sources.env import EnvSource
from tokend.sources.file import FileSource
from tokend.sources.refs import MAX_FILE as MAX_SIZE

REQUEST = FetchRequest(profile="p", timeout=5.0)


def build(cls: type[BaseSource], clock: Any, **options: Any) -> Any:
    settings = {name: opt.default for name, opt in cls.options.items()}
    settings.update(options)
    return cls("p", settings, clock=clock)


# -- env ----------------------------------------------------------------------------


def test_env_reads_the_variable(monkeypatch: pytest.MonkeyPatch, clock: Any) -> None:
    monkeypatch.setenv("TOKEND_TEST_SECRET", "  sk-proj-from-env \n")
    cred = build(EnvSource, clock, var="TOKEND_TEST_SECRET").fetch(REQUEST)
    assert cred.kind == "secret"
    assert cred.primary == "sk-proj-from-env"
    assert cred.source == "env"
    assert cred.expires_at is None  # a static secret never expires ...
    assert cred.refresh_at == clock() + policy.STATIC_TTL  # ... but is re-read
    assert cred.issued_at == clock()


def test_env_ttl_option(monkeypatch: pytest.MonkeyPatch, clock: Any) -> None:
    monkeypatch.setenv("TOKEND_TEST_SECRET", "value")
    cred = build(EnvSource, clock, var="TOKEND_TEST_SECRET", ttl=60.0).fetch(REQUEST)
    assert cred.refresh_at == clock() + 60.0


def test_env_sees_changes(monkeypatch: pytest.MonkeyPatch, clock: Any) -> None:
    source = build(EnvSource, clock, var="TOKEND_TEST_SECRET")
    monkeypatch.setenv("TOKEND_TEST_SECRET", "first-value")
    assert source.fetch(REQUEST).primary == "first-value"
    monkeypatch.setenv("TOKEND_TEST_SECRET", "second-value")
    assert source.fetch(REQUEST).primary == "second-value"


@pytest.mark.parametrize("value", [None, "", "   \n"])
def test_env_unset_is_unavailable(monkeypatch: pytest.MonkeyPatch, clock: Any, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("TOKEND_TEST_SECRET", raising=False)
    else:
        monkeypatch.setenv("TOKEND_TEST_SECRET", value)
    with pytest.raises(SourceUnavailable, match="TOKEND_TEST_SECRET is not set") as info:
        build(EnvSource, clock, var="TOKEND_TEST_SECRET").fetch(REQUEST)
    assert info.value.profile == "p"


# -- file ------------------------------------------------------------------------------


def test_file_reads_and_strips(tmp_path: Path, clock: Any) -> None:
    path = tmp_path / "token"
    path.write_text("ghp_file-secret\n")
    cred = build(FileSource, clock, path=str(path)).fetch(REQUEST)
    assert cred.kind == "secret"
    assert cred.primary == "ghp_file-secret"
    assert cred.source == "file"
    assert cred.expires_at is None
    assert cred.refresh_at == clock() + policy.STATIC_TTL


def test_file_sees_rotation(tmp_path: Path, clock: Any) -> None:
    path = tmp_path / "token"
    source = build(FileSource, clock, path=str(path), ttl=30.0)
    path.write_text("mounted-secret-v1")
    assert source.fetch(REQUEST).primary == "mounted-secret-v1"
    path.write_text("mounted-secret-v2")
    cred = source.fetch(REQUEST)
    assert cred.primary == "mounted-secret-v2"
    assert cred.refresh_at == clock() + 30.0


def test_file_expands_home(tmp_path: Path, clock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".token").write_text("home-secret")
    assert build(FileSource, clock, path="~/.token").fetch(REQUEST).primary == "home-secret"


def test_file_missing_is_unavailable(tmp_path: Path, clock: Any) -> None:
    with pytest.raises(SourceUnavailable, match="no such file"):
        build(FileSource, clock, path=str(tmp_path / "absent")).fetch(REQUEST)


def test_file_empty(tmp_path: Path, clock: Any) -> None:
    path = tmp_path / "token"
    path.write_text(" \n")
    with pytest.raises(SourceError, match="file is empty"):
        build(FileSource, clock, path=str(path)).fetch(REQUEST)


def test_file_too_large(tmp_path: Path, clock: Any) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"x" * (MAX_SIZE + 1))
    with pytest.raises(SourceError, match="larger than") as info:
        build(FileSource, clock, path=str(path)).fetch(REQUEST)
    assert info.value.retryable is False


def test_file_exactly_max_size_is_fine(tmp_path: Path, clock: Any) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"y" * MAX_SIZE)
    assert build(FileSource, clock, path=str(path)).fetch(REQUEST).primary == "y" * MAX_SIZE


def test_file_not_utf8(tmp_path: Path, clock: Any) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\xff\xfe\xfd")
    with pytest.raises(SourceError, match="not UTF-8"):
        build(FileSource, clock, path=str(path)).fetch(REQUEST)


def test_file_that_is_a_directory(tmp_path: Path, clock: Any) -> None:
    with pytest.raises(SourceError) as info:
        build(FileSource, clock, path=str(tmp_path)).fetch(REQUEST)
    assert not isinstance(info.value, SourceUnavailable)
    assert str(tmp_path) in info.value.message


def test_file_error_never_contains_the_content(tmp_path: Path, clock: Any) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\xffsecret-in-a-bad-file")
    with pytest.raises(SourceError) as info:
        build(FileSource, clock, path=str(path)).fetch(REQUEST)
    assert "secret-in-a-bad-file" not in info.value.line()


@pytest.mark.timeout(10)
def test_file_fifo_without_writer_does_not_block(tmp_path: Path, clock: Any) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    start = time.monotonic()
    with pytest.raises(SourceError, match="not a regular file"):
        build(FileSource, clock, path=str(fifo)).fetch(FetchRequest(profile="p", timeout=1))
    assert time.monotonic() - start < 3


def test_file_through_a_symlink(tmp_path: Path, clock: Any) -> None:
    # Kubernetes mounts secrets as symlinks into a timestamped directory
    real = tmp_path / "..2024_01_01" / "token"
    real.parent.mkdir()
    real.write_text("k8s-mounted-secret")
    link = tmp_path / "token"
    link.symlink_to(real)
    assert build(FileSource, clock, path=str(link)).fetch(REQUEST).primary == "k8s-mounted-secret"


# -- demo ------------------------------------------------------------------------------


def test_demo_returns_a_new_token_each_time(clock: Any) -> None:
    source = build(DemoSource, clock, latency=0.0)
    first, second = source.fetch(REQUEST), source.fetch(REQUEST)
    assert first.kind == "bearer"
    assert first.primary and first.primary.startswith("demo-")
    assert first.primary != second.primary
    assert len(first.primary) > 20
    assert first.expires_at == clock() + 3600.0
    assert first.issued_at == clock()
    assert first.source == "demo"


def test_demo_lifetime_and_latency(clock: Any) -> None:
    source = build(DemoSource, clock, lifetime=120.0, latency=0.2)
    start = time.monotonic()
    cred = source.fetch(REQUEST)
    assert time.monotonic() - start >= 0.19
    assert cred.expires_at == clock() + 120.0


def test_demo_latency_is_bounded_by_the_request_timeout(clock: Any) -> None:
    source = build(DemoSource, clock, latency=30.0)
    start = time.monotonic()
    source.fetch(FetchRequest(profile="p", timeout=0.1))
    assert time.monotonic() - start < 2.5


def test_file_another_user_can_change_is_refused(tmp_path: Path, clock: Any) -> None:
    """Whoever can rewrite the file decides which identity tokend serves: only ours (or root's)."""
    path = tmp_path / "token"
    path.write_text("planted-token-value\n")
    path.chmod(0o666)
    with pytest.raises(SourceError, match=r"writable by group or others \(mode 0666\)") as e:
        build(FileSource, clock, path=str(path)).fetch(REQUEST)
    assert "planted-token-value" not in str(e.value)
    path.chmod(0o600)
    if os.getuid() != 0:
        pytest.skip("giving the file to another uid needs root")
    os.chown(path, 1234, 1234)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(SourceError, match="owned by uid 1234, not you"):
        build(FileSource, clock, path=str(link)).fetch(REQUEST)
