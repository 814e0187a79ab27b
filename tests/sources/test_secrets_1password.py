"""``source = "1password"`` with a fake ``op`` executable on PATH (tests/fakes/op.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.fakes.op import FakeOp, install_fake_op
from tests.sources.test_contract import SourceContract, profile_toml
from tokend.core import config
from tokend.core.broker import Broker, build_source
from tokend.core.credential import Credential
from tokend.core.errors import LoginRequired, SourceError, SourceTimeout
from tokend.sources.base import BaseSource, FetchRequest

SA_TOKEN = "ops_eyJzaWduSW5BZGRyZXNzIjoibXkuMXBhc3N3b3JkLmNvbSJ9-never-in-argv"


@pytest.fixture
def op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeOp:
    fake = install_fake_op(tmp_path / "bin")
    fake.set_items({"Private": {"OpenAI": {"credential": "sk-op-1", "json": '{"a": {"b": "deep"}}'}}})
    monkeypatch.setenv("PATH", f"{fake.dir}{os.pathsep}/usr/bin:/bin")
    monkeypatch.delenv("OP_SERVICE_ACCOUNT_TOKEN", raising=False)
    return fake


def source(clock: Any = time.time, **options: Any) -> BaseSource:
    return build_source(config.parse(profile_toml("1password", options), None).profile("contract"), clock)


def fetch(src: BaseSource, timeout: float = 10.0) -> Credential:
    return src.fetch(FetchRequest(profile="contract", timeout=timeout))


class TestOnePasswordContract(SourceContract):
    source_name = "1password"

    @pytest.fixture
    def options(self, op: FakeOp) -> dict[str, Any]:
        return {"reference": "op://Private/OpenAI/credential"}

    @pytest.fixture
    def unavailable_options(self, op: FakeOp, tmp_path: Path) -> dict[str, Any]:
        return {"reference": "op://Private/OpenAI/credential", "op_path": str(tmp_path / "no-op")}


def test_op_read_with_the_service_account_token_in_the_environment(
    op: FakeOp, monkeypatch: pytest.MonkeyPatch
) -> None:
    op.set_state(token=SA_TOKEN)
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", SA_TOKEN)
    cred = fetch(source(reference="op://Private/OpenAI/credential", ttl="5m"))
    assert (cred.kind, cred.primary, cred.source) == ("secret", "sk-op-1", "1password")
    (call,) = op.calls()
    assert call["argv"] == ["read", "--no-newline", "--", "op://Private/OpenAI/credential"]
    assert call["token_in_env"] and call["token_ok"]
    assert not any(SA_TOKEN in arg for arg in call["argv"])


def test_token_env_account_and_json_key(op: FakeOp, monkeypatch: pytest.MonkeyPatch) -> None:
    op.set_state(token=SA_TOKEN, accounts=["team.1password.com"])
    monkeypatch.setenv("CI_OP_TOKEN", SA_TOKEN)
    cred = fetch(
        source(
            reference="op://Private/OpenAI/json",
            token_env="CI_OP_TOKEN",
            account="team.1password.com",
            json_key="a.b",
        )
    )
    assert cred.primary == "deep"
    (call,) = op.calls()
    assert call["argv"][:4] == ["read", "--no-newline", "--account", "team.1password.com"]
    assert call["token_ok"]


def test_missing_item_names_the_reference(op: FakeOp) -> None:
    with pytest.raises(SourceError) as info:
        fetch(source(reference="op://Private/Anthropic/credential"))
    line = info.value.line()
    assert line.startswith("tokend: contract: 1Password item op://Private/Anthropic/credential not found: ")
    assert "isn't an item" in line and "[ERROR]" not in line and not info.value.retryable


def test_signed_out_is_login_required_and_a_refused_token_is_denied(
    op: FakeOp, monkeypatch: pytest.MonkeyPatch
) -> None:
    op.set_state(signed_in=False)
    with pytest.raises(LoginRequired, match=r"not signed in.*op signin") as info:
        fetch(source(reference="op://Private/OpenAI/credential"))
    assert info.value.exit_status == 4
    op.set_state(token="another-token")
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", SA_TOKEN)
    with pytest.raises(SourceError, match="access denied reading 1Password item") as denied:
        fetch(source(reference="op://Private/OpenAI/credential"))
    assert SA_TOKEN not in denied.value.line() and not denied.value.retryable


def test_bad_reference_is_refused_before_running_op(op: FakeOp) -> None:
    with pytest.raises(SourceError, match="not a secret reference"):
        fetch(source(reference="Private/OpenAI/credential"))
    assert op.calls() == []


@pytest.mark.timeout(30)
def test_timeout_kills_the_whole_process_group(op: FakeOp) -> None:
    op.set_state(signed_in=True, mode="hang")
    start = time.monotonic()
    with pytest.raises(SourceTimeout, match="op read did not finish within 1s; killed"):
        fetch(source(reference="op://Private/OpenAI/credential"), timeout=1.0)
    assert time.monotonic() - start < 5
    deadline = time.monotonic() + 5
    pids = op.hang_pids()
    assert len(pids) == 2
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids), "op or its child outlived the timeout"


def test_rotation_and_failure_through_the_broker(op: FakeOp, clock: FakeClock) -> None:
    text = profile_toml("1password", {"reference": "op://Private/OpenAI/credential", "ttl": "10m"})
    broker = Broker(config.parse(text, None), clock=clock)
    try:
        assert broker.get("contract").primary == "sk-op-1"
        op.set_items({"Private": {"OpenAI": {"credential": "sk-op-2"}}})
        op.set_state(signed_in=True, mode="fail", message="connection reset by peer")
        clock.advance(601)
        assert broker.get("contract").primary == "sk-op-1"  # served while the refresh fails
        row = _settle(broker, "contract")
        assert row["failures"] == 1 and "connection reset" in str(row["last_error"])
        op.set_state(signed_in=True)
        clock.advance(400)
        broker.get("contract")
        row = _settle(broker, "contract")
        assert broker.get("contract").primary == "sk-op-2" and row["rotations"] == 1
    finally:
        broker.close()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _settle(broker: Broker, name: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while True:
        (row,) = [r for r in broker.status() if r["profile"] == name]
        if not row.get("refreshing"):
            return row
        assert time.monotonic() < deadline
        time.sleep(0.02)
