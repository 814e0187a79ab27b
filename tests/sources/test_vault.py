"""``source = "vault"`` against a faithful fake of Vault's HTTP API (tests/fakes/vault.py).

The source's own clock and the fake's are moved together, so token TTLs and
leases run out without waiting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.fakes.vault import DynamicRole, FakeVault, Role, fake_vault
from tests.sources.test_contract import MemoryKeyring, SourceContract, memory_keyring, profile_toml
from tokend.core import config
from tokend.core.broker import build_source
from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, LoginRequired, SourceError, SourceTimeout, SourceUnavailable
from tokend.sources.base import FetchRequest
from tokend.sources.vault import VaultSource

__all__ = ["memory_keyring"]  # a fixture, used by name

VAULT_VARS = ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "BAO_ADDR", "BAO_TOKEN")


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeVault]:
    for var in VAULT_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no real ~/.vault-token
    yield from fake_vault()


class World:
    def __init__(self, fake: FakeVault, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fake = fake
        self.clock = clock
        self.monkeypatch = monkeypatch

    def source(self, **options: Any) -> VaultSource:
        options.setdefault("address", self.fake.url)
        profile = config.parse(profile_toml("vault", options), None).profile("contract")
        src = build_source(profile, self.clock)
        assert isinstance(src, VaultSource)
        return src

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.fake.advance(seconds)

    def env_token(self, **kw: Any) -> str:
        token = self.fake.token(**kw)
        self.monkeypatch.setenv("TD_VAULT_TOKEN", token)
        return token


@pytest.fixture
def world(vault: FakeVault, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(vault, clock, monkeypatch)


def fetch(src: VaultSource, *, forced: bool = False, timeout: float = 5.0) -> Credential:
    return src.fetch(FetchRequest(profile="contract", timeout=timeout, forced=forced))


class TestVaultContract(SourceContract):
    source_name = "vault"

    @pytest.fixture
    def options(self, world: World) -> dict[str, Any]:
        world.env_token()
        world.fake.put_kv2("contract", {"api_key": "sk-vault-contract"})
        return {
            "address": world.fake.url,
            "token": "env:TD_VAULT_TOKEN",
            "mount": "secret",
            "path": "contract",
        }

    @pytest.fixture
    def unavailable_options(self, world: World) -> dict[str, Any]:
        return {"token": "env:TD_VAULT_TOKEN", "mount": "secret", "path": "contract"}  # no address


# -- KV reads and request shapes ------------------------------------------------------------------


def test_kv2_read_sends_token_namespace_and_request_headers(world: World) -> None:
    token = world.env_token()
    world.fake.namespace = "team-a/"
    world.fake.put_kv2("apps/gateway", {"openai": {"key": "sk-live-1"}, "note": "x"})
    src = world.source(
        token="env:TD_VAULT_TOKEN",
        namespace="team-a/",
        mount="secret",
        path="apps/gateway",
        json_key="openai.key",
    )
    cred = fetch(src)
    assert (cred.kind, cred.primary, cred.expires_at) == ("secret", "sk-live-1", None)
    assert cred.refresh_at == world.clock() + 3600  # the default ttl
    lookup, read = world.fake.calls()
    assert (lookup.method, lookup.path) == ("GET", "auth/token/lookup-self")
    assert (read.method, read.path, read.query) == ("GET", "secret/data/apps/gateway", {})
    for call in (lookup, read):
        assert call.headers["x-vault-token"] == token
        assert call.headers["x-vault-namespace"] == "team-a/"
        assert call.headers["x-vault-request"] == "true"
    fetch(src)
    assert [c.path for c in world.fake.calls()][2:] == ["secret/data/apps/gateway"]  # token looked up once


def test_kv2_version_kv1_and_ttl(world: World) -> None:
    world.env_token()
    world.fake.put_kv2("db", {"password": "first"})
    world.fake.put_kv2("db", {"password": "second"})
    v1 = fetch(world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="db", version=1, ttl="10m"))
    assert v1.primary == "first" and v1.refresh_at == world.clock() + 600
    assert world.fake.calls("secret/")[-1].query == {"version": "1"}
    world.fake.put_kv1("legacy/app", {"token": "legacy-value"})
    cred = fetch(world.source(token="env:TD_VAULT_TOKEN", mount="kv", kv_version=1, path="legacy/app"))
    assert cred.primary == "legacy-value"
    assert world.fake.calls("kv/")[-1].path == "kv/legacy/app"


def test_kv_fields_map_to_kinds(world: World) -> None:
    world.env_token()
    world.fake.put_kv2("rds", {"username": "app", "password": "pw-123456", "host": "db"})
    basic = fetch(world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="rds"))
    assert basic.kind == "basic" and dict(basic.fields) == {"username": "app", "password": "pw-123456"}
    world.fake.put_kv2("many", {"a": "1", "b": "2"})
    with pytest.raises(SourceError, match=r"several fields \(a, b\); set json_key") as info:
        fetch(world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="many"))
    assert not info.value.retryable and info.value.profile == "contract"


@pytest.mark.parametrize("where", ["file", "keyring", "home"])
def test_token_from_file_keychain_or_vault_cli(
    world: World, memory_keyring: MemoryKeyring, tmp_path: Path, where: str
) -> None:
    token = world.fake.token()
    world.fake.put_kv2("k", {"v": "value-from-kv"})
    if where == "file":
        (tmp_path / "tok").write_text(token + "\n")
        src = world.source(token=f"file:{tmp_path / 'tok'}", mount="secret", path="k")
    elif where == "keyring":
        memory_keyring.set_password("tokend", "vault-token", token)
        src = world.source(token="keyring:vault-token", mount="secret", path="k")
    else:
        (tmp_path / ".vault-token").write_text(token)  # what `vault login` leaves
        src = world.source(mount="secret", path="k")
    assert fetch(src).primary == "value-from-kv"
    assert world.fake.calls("secret/")[-1].token == token


def test_secrets_are_never_in_the_config(world: World) -> None:
    with pytest.raises(ConfigError, match=r"profiles.contract.token: expected env:VARIABLE"):
        world.source(token="hvs.literal-token", mount="secret", path="k")
    with pytest.raises(ConfigError, match=r"role_id: required"):
        world.source(auth="approle", mount="secret", path="k")


def test_no_token_anywhere_is_unavailable(world: World) -> None:
    with pytest.raises(SourceUnavailable, match="no Vault token"):
        fetch(world.source(mount="secret", path="k"))


# -- auth methods -----------------------------------------------------------------------------


def test_approle_login_then_token_reused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.fake.approle("role-1234", "secret-id-5678")
    world.fake.put_kv2("k", {"v": "approle-read"})
    monkeypatch.setenv("TD_SECRET_ID", "secret-id-5678")
    src = world.source(
        auth="approle", role_id="role-1234", secret_id="env:TD_SECRET_ID", mount="secret", path="k"
    )
    assert fetch(src).primary == "approle-read"
    assert fetch(src).primary == "approle-read"
    (login,) = world.fake.calls("auth/")
    assert (login.method, login.path, login.body) == (
        "POST",
        "auth/approle/login",
        {"role_id": "role-1234", "secret_id": "secret-id-5678"},
    )
    assert "x-vault-token" not in login.headers
    assert world.fake.calls("secret/")[-1].token in world.fake.tokens


def test_approle_wrong_secret_id_names_the_refusal(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.fake.approle("role-1234", "right-secret-id")
    monkeypatch.setenv("TD_SECRET_ID", "wrong-secret-id")
    src = world.source(
        auth="approle", role_id="role-1234", secret_id="env:TD_SECRET_ID", mount="secret", path="k"
    )
    with pytest.raises(
        SourceError, match="Vault refused the approle login at auth/approle: invalid role or secret"
    ):
        fetch(src)


def test_jwt_login_from_a_ci_variable_on_a_custom_mount(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ci_jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcm9qZWN0In0.c2ln"
    world.fake.auth_mounts["jwt"] = "gitlab"
    world.fake.jwt_role("gitlab", "deploy", {ci_jwt})
    world.fake.put_kv2("ci", {"token": "ci-secret"})
    monkeypatch.setenv("VAULT_ID_TOKEN", ci_jwt)
    src = world.source(
        auth="jwt", auth_mount="gitlab", role="deploy", jwt="env:VAULT_ID_TOKEN", mount="secret", path="ci"
    )
    assert fetch(src).primary == "ci-secret"
    (login,) = world.fake.calls("auth/")
    assert login.path == "auth/gitlab/login" and login.body == {"jwt": ci_jwt, "role": "deploy"}


def test_kubernetes_login_with_the_service_account_token_file(world: World, tmp_path: Path) -> None:
    sa_token = "eyJhbGciOiJSUzI1NiJ9.eyJrdWJlcm5ldGVzLmlvIjp7fX0.c2ln"
    (tmp_path / "sa-token").write_text(sa_token)
    world.fake.jwt_role("kubernetes", "app", {sa_token})
    world.fake.put_kv2("k8s", {"v": "from-k8s"})
    src = world.source(
        auth="kubernetes", role="app", jwt=f"file:{tmp_path / 'sa-token'}", mount="secret", path="k8s"
    )
    assert fetch(src).primary == "from-k8s"
    (login,) = world.fake.calls("auth/")
    assert login.path == "auth/kubernetes/login" and login.body == {"jwt": sa_token, "role": "app"}


def test_token_renewed_then_login_again_at_its_max_ttl(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.fake.approle("r", None, Role(ttl=600, max_ttl=1000))
    world.fake.put_kv2("k", {"v": "kv"})
    src = world.source(auth="approle", role_id="r", mount="secret", path="k")
    cred = fetch(src)
    # The refresh comes in time to renew the token (2/3 of its 10 minutes), not after the 1 h ttl.
    assert cred.refresh_at == world.clock() + 400
    world.advance(450)
    fetch(src)
    assert [c.path for c in world.fake.calls("auth/")] == ["auth/approle/login", "auth/token/renew-self"]
    renew = world.fake.calls("auth/token/renew-self")[0]
    assert renew.body == {"increment": "600s"} and renew.token == src.auth.token.value  # type: ignore[union-attr]
    world.advance(450)  # 900 s in: renewal is capped at the 1000 s max TTL (100 s left): log in again
    fetch(src)
    assert [c.path for c in world.fake.calls("auth/")][2:] == ["auth/token/renew-self", "auth/approle/login"]


def test_short_ttl_tokens_are_renewed_at_two_thirds(world: World) -> None:
    """A 60 s token is renewed at 40 s, like a long one: the expiry margin is a quarter of it."""
    world.fake.approle("r", None, Role(ttl=60, max_ttl=3600))
    world.fake.put_kv2("k", {"v": "kv"})
    src = world.source(auth="approle", role_id="r", mount="secret", path="k", ttl="1h")
    cred = fetch(src)
    assert cred.refresh_at == world.clock() + 40
    for _ in range(5):  # 5 minutes of refreshes when due: renewals only, one login
        world.advance(41)
        fetch(src)
    paths = [c.path for c in world.fake.calls("auth/")]
    assert paths == ["auth/approle/login"] + ["auth/token/renew-self"] * 5, paths
    token = world.env_token(ttl=60, renewable=True, max_ttl=3600)
    tok = world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="k", ttl="1h")
    fetch(tok)
    for _ in range(3):
        world.advance(41)
        fetch(tok)
    assert len(world.fake.calls("auth/token/lookup-self")) == 1
    assert [c.token for c in world.fake.calls("auth/token/renew-self")][5:] == [token] * 3


def test_a_late_refresh_still_renews_a_live_token(world: World) -> None:
    world.fake.approle("r", None, Role(ttl=60, max_ttl=3600))
    world.fake.put_kv2("k", {"v": "kv"})
    src = world.source(auth="approle", role_id="r", mount="secret", path="k", ttl="1h")
    fetch(src)
    world.advance(55)  # 15 s late: 5 s of the token left, inside its margin
    fetch(src)
    assert [c.path for c in world.fake.calls("auth/")] == ["auth/approle/login", "auth/token/renew-self"]
    world.advance(70)  # too late: it is dead, log in again
    fetch(src)
    assert [c.path for c in world.fake.calls("auth/")][2:] == ["auth/approle/login"]


def test_expired_login_token_logs_in_again(world: World) -> None:
    world.fake.approle("r", None, Role(ttl=600, renewable=False, max_ttl=600))
    world.fake.put_kv2("k", {"v": "kv"})
    src = world.source(auth="approle", role_id="r", mount="secret", path="k")
    fetch(src)
    world.advance(700)
    fetch(src)
    assert [c.path for c in world.fake.calls("auth/")] == ["auth/approle/login", "auth/approle/login"]


def test_revoked_token_is_login_required(world: World) -> None:
    token = world.env_token()
    world.fake.put_kv2("k", {"v": "kv"})
    src = world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="k")
    fetch(src)
    world.fake.revoke(token)
    with pytest.raises(LoginRequired, match="Vault token is not valid") as info:
        fetch(src)
    assert info.value.exit_status == 4 and token not in info.value.line()


def test_revoked_login_token_logs_in_again(world: World) -> None:
    world.fake.approle("r", None)
    world.fake.put_kv2("k", {"v": "kv"})
    src = world.source(auth="approle", role_id="r", mount="secret", path="k")
    fetch(src)
    world.fake.revoke(src.auth.token.value)  # type: ignore[union-attr]
    assert fetch(src).primary == "kv"
    assert [c.path for c in world.fake.calls("auth/")] == ["auth/approle/login", "auth/approle/login"]


def test_revoked_token_takes_its_leases_along(world: World) -> None:
    world.fake.approle("r", None, Role(ttl=900, max_ttl=3600))
    world.fake.db_roles["app"] = DynamicRole(ttl=3600)
    src = world.source(auth="approle", role_id="r", path="database/creds/app")
    first = fetch(src)
    world.fake.revoke(src.auth.token.value)  # type: ignore[union-attr]
    second = fetch(src, forced=True)  # a consumer got a 401 with the revoked lease's login
    assert second.fields != first.fields
    assert [c.path for c in world.fake.calls("auth/")] == ["auth/approle/login", "auth/approle/login"]


# -- faults -------------------------------------------------------------------------------------


def test_not_found_names_the_secret(world: World) -> None:
    world.env_token()
    world.fake.put_kv2("gone", {"v": "1"})
    world.fake.delete_kv2("gone")
    expected = {
        "missing": "not found",
        "gone": ": its latest version (1) was deleted; `bao kv undelete -versions=1 secret/gone` restores it,"
        " or pin another version",
    }
    for path, said in expected.items():
        with pytest.raises(SourceError) as info:
            fetch(world.source(token="env:TD_VAULT_TOKEN", mount="secret", path=path))
        sep = "" if said.startswith(":") else " "
        assert info.value.line() == f"tokend: contract: Vault secret 'secret/data/{path}'{sep}{said}"
        assert not info.value.retryable


def test_access_denied_names_the_path(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.env_token(policies=("secret/data/other",))
    world.fake.put_kv2("app", {"v": "1"})
    with pytest.raises(
        SourceError, match=r"permission denied reading Vault secret 'secret/data/app'"
    ) as info:
        fetch(world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="app"))
    assert not info.value.retryable
    # A login method tries one fresh login first (the token may have been revoked), then gives up.
    world.fake.approle("r", None, Role(policies=("secret/data/other",)))
    with pytest.raises(SourceError, match="permission denied"):
        fetch(world.source(auth="approle", role_id="r", mount="secret", path="app"))
    assert len(world.fake.calls("auth/approle/login")) == 2


def test_sealed_or_failing_vault_is_retryable(world: World) -> None:
    world.env_token()
    world.fake.put_kv2("k", {"v": "1"})
    src = world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="k")
    world.fake.fail("secret/", 503, "Vault is sealed")
    with pytest.raises(SourceError, match="Vault is sealed") as info:
        fetch(src)
    assert info.value.retryable
    world.fake.fail("secret/", 500, "internal error")
    with pytest.raises(SourceError, match="HTTP 500") as info:
        fetch(src)
    assert info.value.retryable


@pytest.mark.timeout(20)
def test_hanging_vault_is_bounded(world: World) -> None:
    import time

    world.env_token()
    world.fake.hang("auth/token/lookup-self")
    src = world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="k")
    start = time.monotonic()
    with pytest.raises(SourceTimeout):
        fetch(src, timeout=1.0)
    assert time.monotonic() - start < 3


# -- dynamic secrets and leases -----------------------------------------------------------------


def test_dynamic_aws_credentials_with_lease_renewal(world: World) -> None:
    world.env_token()
    world.fake.aws_roles["deploy"] = DynamicRole(ttl=3600, max_ttl=6 * 3600)
    src = world.source(token="env:TD_VAULT_TOKEN", path="aws/creds/deploy")
    first = fetch(src)
    issued = world.fake.issued[0]
    assert first.kind == "aws"
    assert dict(first.fields) == {
        "AccessKeyId": issued["access_key"],
        "SecretAccessKey": issued["secret_key"],
    }
    assert first.expires_at == world.clock() + 3600 and first.extra["lease_id"].startswith(
        "aws/creds/deploy/"
    )
    world.advance(2500)  # past 2/3 of the lease: the broker's refresh renews it
    renewed = fetch(src)
    assert renewed.fields == first.fields and renewed.expires_at == world.clock() + 3600
    (renew,) = world.fake.calls("sys/leases/renew")
    assert renew.method == "PUT" and renew.body == {"lease_id": first.extra["lease_id"], "increment": 3600}
    assert len(world.fake.issued) == 1
    # A consumer whose credentials were refused asks for new ones: no renewal, a new read.
    forced = fetch(src, forced=True)
    assert forced.fields["AccessKeyId"] == world.fake.issued[1]["access_key"]


def test_lease_at_its_max_ttl_is_replaced(world: World) -> None:
    world.env_token()
    world.fake.db_roles["app"] = DynamicRole(ttl=3600, max_ttl=5000)
    src = world.source(token="env:TD_VAULT_TOKEN", path="database/creds/app")
    first = fetch(src)
    assert first.kind == "basic" and first.fields["username"] == world.fake.issued[0]["username"]
    world.advance(2500)  # renewal would be capped at 2500 s: read new credentials instead
    second = fetch(src)
    assert second.fields["username"] == world.fake.issued[1]["username"]
    assert second.expires_at == world.clock() + 3600


def test_refused_lease_renewal_reads_again(world: World) -> None:
    world.env_token()
    world.fake.db_roles["app"] = DynamicRole(ttl=3600)
    src = world.source(token="env:TD_VAULT_TOKEN", path="database/creds/app")
    fetch(src)
    world.advance(2500)
    world.fake.refuse_renewals = True
    second = fetch(src)
    assert len(world.fake.issued) == 2 and second.fields["password"] == world.fake.issued[1]["password"]


def test_lease_life_is_capped_by_its_token(world: World) -> None:
    world.fake.approle("r", None, Role(ttl=900, max_ttl=900, renewable=False))
    world.fake.db_roles["app"] = DynamicRole(ttl=3600)
    src = world.source(auth="approle", role_id="r", path="database/creds/app")
    first = fetch(src)
    assert first.expires_at == world.clock() + 900  # Vault revokes the lease with the token
    world.advance(700)  # the token is nearly done: log in again; its lease lives on until it ends
    second = fetch(src)
    assert len(world.fake.calls("auth/approle/login")) == 2
    assert second.fields == first.fields and second.expires_at == first.expires_at
    assert len(world.fake.calls("database/creds/app")) == 1 and not world.fake.calls("sys/leases/renew")
    world.advance(180)  # 20 s before the old token ends (and Vault revokes the lease): a new secret
    third = fetch(src)
    assert third.fields != first.fields and len(world.fake.calls("database/creds/app")) == 2
    assert third.expires_at == world.clock() + 900 - 180  # the new login's token, 180 s old
    assert len(world.fake.calls("auth/approle/login")) == 2


def test_dynamic_secret_json_key(world: World) -> None:
    world.env_token()
    world.fake.aws_roles["r"] = DynamicRole()
    cred = fetch(world.source(token="env:TD_VAULT_TOKEN", path="aws/creds/r", json_key="arn"))
    assert cred.kind == "secret" and cred.primary.startswith("arn:aws:iam::")  # type: ignore[union-attr]
    assert cred.expires_at is not None


def test_nothing_secret_in_errors(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.fake.approle("r", "the-secret-id-value")
    monkeypatch.setenv("TD_SECRET_ID", "the-secret-id-value")
    world.fake.fail("auth/approle/login", 500, "backend failed for secret_id the-secret-id-value")
    src = world.source(auth="approle", role_id="r", secret_id="env:TD_SECRET_ID", mount="secret", path="k")
    with pytest.raises(SourceError) as info:
        fetch(src)
    assert "the-secret-id-value" not in info.value.line() and "***" in info.value.line()
    assert json.dumps(info.value.line())


def test_ci_id_token_settings_are_checked_at_load(world: World) -> None:
    with pytest.raises(ConfigError, match=r"profiles.contract.oidc: only with auth = \"jwt\""):
        world.source(auth="approle", role_id="r", oidc="github", oidc_audience="a", mount="secret", path="k")
    with pytest.raises(ConfigError, match=r"profiles.contract.jwt: not with oidc"):
        world.source(auth="jwt", jwt="env:X", oidc="gitlab:X", mount="secret", path="k")
    with pytest.raises(ConfigError, match=r"contract.oidc_audience: required with oidc = \"github\""):
        world.source(auth="jwt", role="deploy", oidc="github", mount="secret", path="k")
    with pytest.raises(ConfigError, match=r"contract.oidc: expected \"github\" or \"gitlab:VARNAME\""):
        world.source(auth="jwt", oidc="circleci", mount="secret", path="k")
    world.source(auth="jwt", role="deploy", oidc="gitlab:VAULT_ID_TOKEN", mount="secret", path="k")


def test_a_revoked_instance_never_logs_in_again(world: World) -> None:
    # The broker drops an instance it revoked; a fetch that waited for its lock meanwhile must
    # not log in again on it (that lease and token would be held by nobody, never revoked).
    world.env_token()
    world.fake.put_kv2("k", {"value": "v1"})
    src = world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="k")
    assert fetch(src).fields == {"value": "v1"}
    assert src.revoke(5.0) == []  # a KV read holds no lease, and a token given is never revoked
    before = len(world.fake.requests)
    with pytest.raises(SourceError, match="logged out"):
        fetch(src)
    assert len(world.fake.requests) == before


def test_revoke_on_stop_is_checked_at_load(world: World) -> None:
    with pytest.raises(ConfigError, match=r"contract.revoke_on_stop: nothing to revoke"):
        world.source(token="env:TD_VAULT_TOKEN", mount="secret", path="k", revoke_on_stop=True)
    src = world.source(token="env:TD_VAULT_TOKEN", path="database/creds/app", revoke_on_stop=True)
    assert src.revokes_on_stop() and src.supports_revoke
    assert not world.source(token="env:TD_VAULT_TOKEN", path="database/creds/app").revokes_on_stop()
