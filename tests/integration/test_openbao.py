"""``source = "vault"`` against a real OpenBao server (``bao server -dev``), through the real CLI.

Each test writes a config into its sandbox and runs ``tokend get --no-daemon``
or a real daemon with ``tokend-print``; secrets live under paths of the test's
own on the module's server. What the real server cannot produce on demand
stays with the fake in tests/sources/test_vault*.py: a 5xx or malformed
answer, a server that hangs past the deadline, and hours of token and lease
life (max TTLs, lease ends) run on a fake clock instead of waited for.
Kubernetes' TokenReview API, which OpenBao's kubernetes auth calls, is a
small fake in test_openbao_kubernetes.py that knows one service-account token.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.integration.conftest import Result, Sandbox
from tests.integration.openbao import ROOT_TOKEN, JwtSigner, OpenBao, bao_binary, openbao, start

__all__ = ["openbao"]  # a fixture, used by name

READ_POLICY = 'path "secret/*" { capabilities = ["read"] }\npath "kv1/*" { capabilities = ["read"] }\n'


def vault_profile(name: str, server: OpenBao, **settings: object) -> str:
    lines = [f"[profiles.{name}]", 'source = "vault"', f'address = "{server.url}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def get(box: Sandbox, profile: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return box.tokend("get", "--no-daemon", "--timeout", "20", *args, profile, env=env, timeout=60)


def token_env(box: Sandbox, token: str) -> dict[str, str]:
    return box.env(TD_VAULT_TOKEN=token)


def test_token_auth_kv2_latest_and_json_key(sandbox: Sandbox, openbao: OpenBao, tmp_path: Path) -> None:
    openbao.policy("reader", READ_POLICY)
    openbao.api("POST", "secret/data/t1/openai", {"data": {"doc": {"api_key": "sk-real-1"}, "plain": "p-1"}})
    token = openbao.token(policies=("reader",))
    sandbox.write_config(
        vault_profile(
            "plain", openbao, mount="secret", path="t1/openai", json_key="plain", token="env:TD_VAULT_TOKEN"
        )
        + vault_profile(
            "nested",
            openbao,
            mount="secret",
            path="t1/openai",
            json_key="doc.api_key",
            token="env:TD_VAULT_TOKEN",
        )
        + vault_profile("bare", openbao, mount="secret", path="t1/openai", token="env:TD_VAULT_TOKEN")
    )
    env = token_env(sandbox, token)
    r = get(sandbox, "plain", env=env)
    assert (r.status, r.out.strip()) == (0, "p-1"), r
    r = get(sandbox, "nested", env=env)
    assert (r.status, r.out.strip()) == (0, "sk-real-1"), r
    # A token that lacks the policy: a clear refusal naming the path, never the token.
    bare = openbao.token(policies=("default",))
    r = get(sandbox, "bare", env=token_env(sandbox, bare))
    assert r.status != 0 and "permission denied" in r.err and "t1/openai" in r.err, r
    assert "check that the token's policies allow it on secret/data/t1/openai" in r.err, r
    assert bare not in r.err + r.out


def test_kv2_pinned_versions_deleted_and_destroyed(sandbox: Sandbox, openbao: OpenBao) -> None:
    openbao.policy("reader", READ_POLICY)
    for n in (1, 2, 3, 4):
        openbao.bao("kv", "put", "secret/t2/key", f"value=v{n}")
    openbao.bao("kv", "delete", "-versions=2", "secret/t2/key")
    openbao.bao("kv", "destroy", "-versions=3", "secret/t2/key")
    token = openbao.token(policies=("reader",))
    sandbox.write_config(
        "".join(
            vault_profile(
                f"v{n}", openbao, mount="secret", path="t2/key", version=n, token="env:TD_VAULT_TOKEN"
            )
            for n in (1, 2, 3, 9)
        )
        + vault_profile("latest", openbao, mount="secret", path="t2/key", token="env:TD_VAULT_TOKEN")
    )
    env = token_env(sandbox, token)
    assert get(sandbox, "v1", env=env).out.strip() == "v1"
    assert get(sandbox, "latest", env=env).out.strip() == "v4"
    r = get(sandbox, "v2", env=env)
    assert r.status != 0 and "version 2" in r.err and "deleted" in r.err, r
    assert "undelete" in r.err, r  # what to do about it
    r = get(sandbox, "v3", env=env)
    assert r.status != 0 and "version 3" in r.err and "destroyed" in r.err, r
    r = get(sandbox, "v9", env=env)
    assert r.status != 0 and "not found" in r.err, r


def test_kv1_and_wrong_mount_or_kv_version(sandbox: Sandbox, openbao: OpenBao) -> None:
    openbao.enable("kv", "kv1", options={"version": "1"})
    openbao.policy("reader", READ_POLICY)
    openbao.bao("kv", "put", "kv1/t3/db", "username=app", "password=pw-kv1")
    openbao.bao("kv", "put", "secret/t3/db", "value=v2")
    token = openbao.token(policies=("reader",))
    profiles = {
        "v1": {"mount": "kv1", "kv_version": 1},
        "wrong-v2": {"mount": "kv1"},  # kv_version = 2, the default, on a v1 mount
        "wrong-v1": {"mount": "secret", "kv_version": 1},
        "no-mount": {"mount": "nope"},
        "not-kv": {"mount": "cubbyhole"},
    }
    sandbox.write_config(
        "".join(
            vault_profile(name, openbao, path="t3/db", token="env:TD_VAULT_TOKEN", **settings)
            for name, settings in profiles.items()
        )
    )
    env = token_env(sandbox, token)
    r = get(sandbox, "v1", "--format", "json", env=env)
    assert r.status == 0, r
    doc = json.loads(r.out)
    assert (doc["kind"], doc["username"], doc["password"]) == ("basic", "app", "pw-kv1"), doc
    r = get(sandbox, "wrong-v2", env=env)
    assert r.status == 1 and "kv1/ is a KV v1 mount: set kv_version = 1" in r.err, r
    r = get(sandbox, "wrong-v1", env=env)
    assert r.status == 1 and "secret/ is a KV v2 mount: set kv_version = 2" in r.err, r
    r = get(sandbox, "not-kv", env=env)
    assert r.status == 1 and "cubbyhole/ is a cubbyhole secrets engine, not KV" in r.err, r
    # A mount the token knows nothing of: Vault's denial, with the hint to check the policy.
    r = get(sandbox, "no-mount", env=env)
    assert (
        r.status == 1 and "permission denied" in r.err and "policies" in r.err and "nope/data/t3/db" in r.err
    )
    # With a token that may see every mount: there is none there.
    r = get(sandbox, "no-mount", "--refresh", env=token_env(sandbox, ROOT_TOKEN))
    assert (
        r.status == 1
        and "'nope/data/t3/db': no secrets engine is mounted there (check mount and path)" in r.err
    ), r


def test_sealed_vault_is_named(sandbox: Sandbox, tmp_path: Path) -> None:
    binary = bao_binary()
    assert binary is not None
    server = start(binary, tmp_path)  # its own server: sealing it would spoil the module's
    try:
        server.bao("kv", "put", "secret/t8/key", "value=v")
        sandbox.write_config(
            vault_profile("k", server, mount="secret", path="t8/key", token="env:TD_VAULT_TOKEN")
        )
        env = token_env(sandbox, server.token())
        server.bao("operator", "seal")
        r = get(sandbox, "k", env=env)
        assert r.status != 0 and f"Vault is sealed at {server.url}" in r.err, r
    finally:
        server.stop()


def test_approle_login(sandbox: Sandbox, openbao: OpenBao) -> None:
    openbao.enable("approle", "approle", auth=True)
    openbao.policy("reader", READ_POLICY)
    openbao.api("POST", "auth/approle/role/t4", {"token_policies": ["reader"], "token_ttl": "10m"})
    role_id = openbao.api("GET", "auth/approle/role/t4/role-id")["data"]["role_id"]
    secret_id = openbao.api("POST", "auth/approle/role/t4/secret-id")["data"]["secret_id"]
    openbao.bao("kv", "put", "secret/t4/api", "value=approle-secret")
    (sandbox.root / "sid").write_text(secret_id)
    sandbox.write_config(
        vault_profile(
            "app",
            openbao,
            mount="secret",
            path="t4/api",
            auth="approle",
            role_id=role_id,
            secret_id=f"file:{sandbox.root / 'sid'}",
        )
        + vault_profile(
            "bad",
            openbao,
            mount="secret",
            path="t4/api",
            auth="approle",
            role_id=role_id,
            secret_id=f"file:{sandbox.root / 'bad-sid'}",
        )
    )
    r = get(sandbox, "app")
    assert (r.status, r.out.strip()) == (0, "approle-secret"), r
    assert secret_id not in r.err
    (sandbox.root / "bad-sid").write_text("not-the-secret-id")
    r = get(sandbox, "bad")
    assert r.status != 0 and "approle" in r.err and "refused" in r.err, r


def test_jwt_login_with_a_registered_key(sandbox: Sandbox, openbao: OpenBao) -> None:
    signer = JwtSigner()
    openbao.enable("jwt", "jwt", auth=True)
    openbao.policy("reader", READ_POLICY)
    openbao.api("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [signer.public_pem]})
    openbao.api(
        "POST",
        "auth/jwt/role/ci",
        {
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["tokend-test"],
            "bound_claims": {"repo": "acme/app"},
            "token_policies": ["reader"],
            "token_ttl": "10m",
        },
    )
    openbao.bao("kv", "put", "secret/t5/deploy", "value=jwt-secret")
    now = int(time.time())
    claims = {
        "sub": "job-1",
        "aud": "tokend-test",
        "repo": "acme/app",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
    }
    sandbox.write_config(
        "".join(
            vault_profile(
                name, openbao, mount="secret", path="t5/deploy", auth="jwt", role="ci", jwt="env:TD_JWT"
            )
            for name in ("ci", "other-repo", "other-key")
        )
    )
    r = get(sandbox, "ci", env=sandbox.env(TD_JWT=signer.sign(claims)))
    assert (r.status, r.out.strip()) == (0, "jwt-secret"), r
    # A token for another repository: the role's bound claims refuse it.
    r = get(sandbox, "other-repo", env=sandbox.env(TD_JWT=signer.sign({**claims, "repo": "evil/app"})))
    assert r.status != 0 and "jwt" in r.err and "refused" in r.err, r
    # Signed by a key the auth method does not know.
    r = get(sandbox, "other-key", env=sandbox.env(TD_JWT=JwtSigner().sign(claims)))
    assert r.status != 0 and "refused" in r.err, r


def test_refresh_after_kv_put_through_the_daemon(sandbox: Sandbox, openbao: OpenBao) -> None:
    openbao.policy("reader", READ_POLICY)
    openbao.bao("kv", "put", "secret/t6/key", "value=first")
    token = openbao.token(policies=("reader",))
    sandbox.write_config(
        vault_profile("k", openbao, mount="secret", path="t6/key", ttl="1h", token="env:TD_VAULT_TOKEN")
    )
    env = token_env(sandbox, token)
    sandbox.start_daemon(env=env)
    r = sandbox.print_("k", env=env)
    assert (r.status, r.out.strip()) == (0, "first"), r
    openbao.bao("kv", "put", "secret/t6/key", "value=second")
    r = sandbox.print_("k", env=env)
    assert (r.status, r.out.strip()) == (0, "first"), r  # cached for its ttl
    r = sandbox.print_("--refresh", "k", env=env)
    assert (r.status, r.out.strip()) == (0, "second"), r


def test_short_lived_tokens_are_renewed_not_replaced(sandbox: Sandbox, openbao: OpenBao) -> None:
    """60 s tokens (token auth and an AppRole login) live on through renewals for 70 s and more."""
    openbao.enable("approle", "approle", auth=True)
    openbao.policy("reader", READ_POLICY)
    openbao.api(
        "POST",
        "auth/approle/role/t7",
        {"token_policies": ["reader"], "token_ttl": "60s", "token_max_ttl": "1h"},
    )
    role_id = openbao.api("GET", "auth/approle/role/t7/role-id")["data"]["role_id"]
    secret_id = openbao.api("POST", "auth/approle/role/t7/secret-id")["data"]["secret_id"]
    (sandbox.root / "sid").write_text(secret_id)
    openbao.bao("kv", "put", "secret/t7/key", "value=short")
    token = openbao.token(ttl="60s", policies=("reader",))
    sandbox.write_config(
        vault_profile("tok", openbao, mount="secret", path="t7/key", ttl="1h", token="env:TD_VAULT_TOKEN")
        + vault_profile(
            "app",
            openbao,
            mount="secret",
            path="t7/key",
            ttl="1h",
            auth="approle",
            role_id=role_id,
            secret_id=f"file:{sandbox.root / 'sid'}",
        )
    )
    env = token_env(sandbox, token)
    daemon = sandbox.start_daemon(env=env)
    for profile in ("tok", "app"):
        r = sandbox.print_(profile, env=env)
        assert (r.status, r.out.strip()) == (0, "short"), r
    # Renewal is due at about 40 s; by 75 s each token has been renewed at least once and
    # would be dead (60 s) had it not been.
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline:
        time.sleep(1)
    log = daemon.log_text()
    assert "tok: renewed the Vault token" in log, log
    assert "app: renewed the Vault token" in log, log
    assert "expired" not in log, log
    assert log.count("app: logged in to Vault") == 1, log
    assert float(openbao.token_accessor_lookup(token)["ttl"]) > 0  # still alive
    for profile in ("tok", "app"):
        r = sandbox.print_("--refresh", profile, env=env)
        assert (r.status, r.out.strip()) == (0, "short"), r
    assert daemon.log_text().count("app: logged in to Vault") == 1
