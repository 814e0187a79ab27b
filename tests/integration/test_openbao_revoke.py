"""Leases end on purpose: ``tokend logout`` and ``revoke_on_stop`` against a real OpenBao and PostgreSQL.

OpenBao's ``database`` engine creates a PostgreSQL role per lease. ``tokend
logout PROFILE`` has the daemon revoke the lease it holds and the token it
logged in for (the role disappears from ``pg_roles``, the token's accessor
no longer resolves); a token the user supplied is never revoked. ``tokend
stop`` revokes only for profiles with ``revoke_on_stop = true``: by default
a stop leaves the CI job's database login alone. A Vault that hangs (the
server stopped with SIGSTOP) does not hang ``tokend stop``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import Sandbox
from tests.integration.openbao import ROOT_TOKEN, OpenBao, openbao
from tests.integration.test_openbao_database import Postgres, database_engine, postgres

__all__ = ["openbao", "postgres"]  # fixtures, used by name

DB_POLICY = (
    'path "database/creds/app" { capabilities = ["read"] }\n'
    'path "sys/leases/renew" { capabilities = ["update"] }\n'
    'path "sys/leases/revoke" { capabilities = ["update"] }\n'
)


@pytest.fixture(scope="module")
def bao(openbao: OpenBao, postgres: Postgres) -> Iterator[OpenBao]:
    """The server with the database engine on PostgreSQL and an approle login for it."""
    database_engine(openbao, postgres, default_ttl="1h", max_ttl="2h")
    openbao.policy("db", DB_POLICY)
    openbao.enable("approle", "approle", auth=True)
    openbao.api("POST", "auth/approle/role/db", {"token_policies": ["db"], "token_ttl": "10m"})
    yield openbao


def _approle_files(sandbox: Sandbox, server: OpenBao) -> tuple[str, str]:
    role_id = server.api("GET", "auth/approle/role/db/role-id")["data"]["role_id"]
    secret_id = server.api("POST", "auth/approle/role/db/secret-id")["data"]["secret_id"]
    path = sandbox.root / "secret-id"
    path.write_text(secret_id)
    return role_id, str(path)


def _profile(name: str, server: OpenBao, role_id: str, secret_file: str, **extra: object) -> str:
    lines = [
        f"[profiles.{name}]",
        'source = "vault"',
        f'address = "{server.url}"',
        'path = "database/creds/app"',
        'auth = "approle"',
        f'role_id = "{role_id}"',
        f'secret_id = "file:{secret_file}"',
        'min_ttl = "5s"',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def _login(sandbox: Sandbox, profile: str) -> dict[str, str]:
    r = sandbox.print_(profile, "--format", "json")
    assert r.status == 0, r
    doc: dict[str, str] = json.loads(r.out)
    return doc


def _approle_accessors(server: OpenBao) -> set[str]:
    """Accessors of the live tokens made by approle logins."""
    listing = requests.request(
        "LIST", f"{server.url}/v1/auth/token/accessors", headers={"X-Vault-Token": ROOT_TOKEN}, timeout=10
    ).json()
    found = set()
    for accessor in listing["data"]["keys"]:
        doc = _lookup_accessor(server, accessor)
        if doc is not None and doc["data"].get("path") == "auth/approle/login":
            found.add(accessor)
    return found


def _lookup_accessor(server: OpenBao, accessor: str) -> dict[str, dict[str, str]] | None:
    r = requests.post(
        f"{server.url}/v1/auth/token/lookup-accessor",
        json={"accessor": accessor},
        headers={"X-Vault-Token": ROOT_TOKEN},
        timeout=10,
    )
    return r.json() if r.status_code == 200 else None


def _role_gone(pg: Postgres, user: str, wait: float = 30) -> bool:
    query = f"select count(*) from pg_roles where rolname = '{user}'"
    deadline = time.monotonic() + wait
    while pg.psql(query).stdout.strip() != "0":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _can_log_in(pg: Postgres, login: dict[str, str]) -> bool:
    used = pg.psql("select current_user", user=login["username"], password=login["password"])
    return used.returncode == 0 and used.stdout.strip() == login["username"]


def test_logout_revokes_the_lease_and_the_login_token(
    sandbox: Sandbox, bao: OpenBao, postgres: Postgres
) -> None:
    role_id, secret_file = _approle_files(sandbox, bao)
    sandbox.write_config(_profile("db", bao, role_id, secret_file))
    sandbox.start_daemon()
    before = _approle_accessors(bao)
    first = _login(sandbox, "db")
    assert _can_log_in(postgres, first)
    ours = _approle_accessors(bao) - before
    assert len(ours) == 1, ours
    r = sandbox.tokend("logout", "db")
    assert r.status == 0, r
    assert "db: revoked lease database/creds/app/" in r.err and "the token tokend logged in for" in r.err, r
    assert _role_gone(postgres, first["username"]), "the lease's PostgreSQL role survived tokend logout"
    assert not _can_log_in(postgres, first)
    assert _lookup_accessor(bao, ours.pop()) is None, "the token tokend logged in for survived tokend logout"
    # The next caller logs in again and gets a new database login.
    second = _login(sandbox, "db")
    assert second["username"] != first["username"] and _can_log_in(postgres, second)
    # Nothing held any more after a second logout but the new login; a third has nothing left.
    assert sandbox.tokend("logout", "db").status == 0
    r = sandbox.tokend("logout", "db")
    assert (r.status, r.err.strip()) == (0, "db: nothing held to revoke; cached credential dropped"), r


def _login_with_token(sandbox: Sandbox, bao: OpenBao, token: str) -> tuple[dict[str, str], dict[str, str]]:
    """A daemon whose profile ``db`` reads a database login with the user's ``token``: its env, the login."""
    sandbox.write_config(
        f'[profiles.db]\nsource = "vault"\naddress = "{bao.url}"\npath = "database/creds/app"\n'
        'token = "env:TD_VAULT_TOKEN"\nmin_ttl = "5s"\n'
    )
    env = sandbox.env(TD_VAULT_TOKEN=token)
    sandbox.start_daemon(env=env)
    r = sandbox.print_("db", "--format", "json", env=env)
    assert r.status == 0, r
    login: dict[str, str] = json.loads(r.out)
    return env, login


def test_logout_never_revokes_a_token_the_user_supplied(
    sandbox: Sandbox, bao: OpenBao, postgres: Postgres
) -> None:
    token = bao.token(policies=("db",))
    env, login = _login_with_token(sandbox, bao, token)
    r = sandbox.tokend("logout", "db", env=env)
    assert r.status == 0 and "revoked lease database/creds/app/" in r.err and "token" not in r.err, r
    assert _role_gone(postgres, login["username"])
    assert bao.api("POST", "auth/token/lookup", {"token": token})["data"]["policies"] == ["db", "default"]
    assert token not in r.err


def test_logout_without_the_revoke_policy_says_what_to_allow(
    sandbox: Sandbox, bao: OpenBao, postgres: Postgres
) -> None:
    bao.policy("db-no-revoke", DB_POLICY.replace("sys/leases/revoke", "sys/leases/lookup"))
    token = bao.token(policies=("db-no-revoke",))
    env, login = _login_with_token(sandbox, bao, token)
    r = sandbox.tokend("logout", "db", env=env)
    assert r.status == 1 and len(r.err_lines) == 1, r
    assert "not revoked: lease database/creds/app/" in r.err and "update on sys/leases/revoke" in r.err, r
    # Not revoked, so still usable until its lease ends; the daemon forgot it all the same.
    assert _can_log_in(postgres, login)
    r = sandbox.tokend("logout", "db", env=env)
    assert (r.status, r.err.strip()) == (0, "db: nothing held to revoke; cached credential dropped"), r


def test_stop_revokes_only_profiles_with_revoke_on_stop(
    sandbox: Sandbox, bao: OpenBao, postgres: Postgres
) -> None:
    role_id, secret_file = _approle_files(sandbox, bao)
    sandbox.write_config(
        _profile("ci-job", bao, role_id, secret_file)
        + _profile("laptop", bao, role_id, secret_file, revoke_on_stop=True)
    )
    daemon = sandbox.start_daemon()
    kept, revoked = _login(sandbox, "ci-job"), _login(sandbox, "laptop")
    r = sandbox.tokend("stop")
    assert r.status == 0, r
    assert r.out.startswith("stopping\n") and "laptop: revoked lease database/creds/app/" in r.out, r
    assert "ci-job" not in r.out, r
    assert daemon.proc.wait(20) == 0
    assert _role_gone(postgres, revoked["username"]), "revoke_on_stop left the lease's role behind"
    # The default: a stop (or a restart) revokes nothing; the job's login keeps working.
    assert _can_log_in(postgres, kept)
    r = sandbox.tokend("logout", "ci-job")
    assert r.status == 0 and "no daemon is running" in r.err, r


def test_a_hanging_vault_does_not_hang_stop(sandbox: Sandbox, bao: OpenBao, postgres: Postgres) -> None:
    role_id, secret_file = _approle_files(sandbox, bao)
    sandbox.write_config(_profile("laptop", bao, role_id, secret_file, revoke_on_stop=True))
    daemon = sandbox.start_daemon()
    _login(sandbox, "laptop")
    os.kill(bao.proc.pid, signal.SIGSTOP)
    try:
        r = sandbox.tokend("stop", timeout=60)
        # The daemon gives revocation 4 s in all; its client would give up at 15 s.
        assert r.status == 0 and r.elapsed < 14, r
        assert "laptop:" in r.out and "not revoked" in r.out, r
        assert daemon.proc.wait(20) == 0
    finally:
        os.kill(bao.proc.pid, signal.SIGCONT)


def test_revoke_on_stop_is_refused_where_there_is_nothing_to_revoke(sandbox: Sandbox, bao: OpenBao) -> None:
    sandbox.write_config(
        f'[profiles.kv]\nsource = "vault"\naddress = "{bao.url}"\nmount = "secret"\npath = "x"\n'
        "revoke_on_stop = true\n"
    )
    r = sandbox.tokend("get", "--no-daemon", "kv")
    assert r.status == 2 and "profiles.kv.revoke_on_stop: nothing to revoke" in r.err, r
