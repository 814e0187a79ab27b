"""A dynamic secret with a renewable lease: OpenBao's ``database`` engine against a real PostgreSQL.

The fixture runs Debian's PostgreSQL as the ``postgres`` user (initdb into a
temporary directory, a private port and socket directory, password logins
over TCP); OpenBao creates a PostgreSQL role per lease, the test logs in with
it through ``psql``, tokend renews the lease, and revoking it drops the role.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox
from tests.integration.openbao import OpenBao, _free_port, openbao

__all__ = ["openbao"]  # a fixture, used by name

SUPER_PASSWORD = "pg-super-test-password"


@dataclass
class Postgres:
    port: int
    bindir: Path

    def psql(
        self, sql: str, *, user: str = "postgres", password: str = SUPER_PASSWORD
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = password
        return subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                user,
                "-d",
                "postgres",
                "-tAc",
                sql,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found and shutil.which("runuser") else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bindir = _bindir()
    if bindir is None or os.geteuid() != 0:
        if os.environ.get("TOKEND_REQUIRE_E2E") == "1":
            pytest.fail("PostgreSQL (Debian's postgresql package) and root are needed")
        pytest.skip("PostgreSQL (Debian's postgresql package) and root are needed")
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    os.chmod(root, 0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    (root / "pw").write_text(SUPER_PASSWORD + "\n")
    shutil.chown(root / "pw", "postgres")
    shutil.chown(sock, "postgres")
    shutil.chown(root, "postgres")
    port = _free_port()

    def as_postgres(*argv: str) -> None:
        proc = subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            cwd=root,
        )
        assert proc.returncode == 0, f"{argv[0]}: {proc.stdout}{proc.stderr}"

    as_postgres(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        f"--pwfile={root / 'pw'}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
    )
    for attempt in range(3):  # another port when the free one found was taken in the meantime
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        try:
            as_postgres(
                str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts, "-w", "start"
            )
            break
        except AssertionError:
            if attempt == 2:
                shutil.rmtree(root, ignore_errors=True)
                raise
            port = _free_port()
    try:
        yield Postgres(port, bindir)
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            cwd=root,
        )
        shutil.rmtree(root, ignore_errors=True)


def database_engine(openbao: OpenBao, postgres: Postgres, *, default_ttl: str, max_ttl: str) -> None:
    """OpenBao's database engine on ``postgres``: ``database/creds/app`` makes a login role per lease."""
    openbao.enable("database", "database")
    openbao.api(
        "POST",
        "database/config/pg",
        {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{postgres.port}/postgres"
            "?sslmode=disable",
            "username": "postgres",
            "password": SUPER_PASSWORD,
            "allowed_roles": "app",
        },
    )
    openbao.api(
        "POST",
        "database/roles/app",
        {
            "db_name": "pg",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
            ],
            "default_ttl": default_ttl,
            "max_ttl": max_ttl,
        },
    )


def test_database_lease_renewed_used_and_revoked(
    sandbox: Sandbox, openbao: OpenBao, postgres: Postgres
) -> None:
    database_engine(openbao, postgres, default_ttl="30s", max_ttl="1h")
    openbao.policy(
        "db",
        'path "database/creds/app" { capabilities = ["read"] }\n'
        'path "sys/leases/renew" { capabilities = ["update"] }\n',
    )
    token = openbao.token(policies=("db",))
    sandbox.write_config(
        f'[profiles.db]\nsource = "vault"\naddress = "{openbao.url}"\npath = "database/creds/app"\n'
        'token = "env:TD_VAULT_TOKEN"\nmin_ttl = "5s"\n'
    )
    env = sandbox.env(TD_VAULT_TOKEN=token)
    daemon = sandbox.start_daemon(env=env)
    r = sandbox.print_("db", "--format", "json", env=env)
    assert r.status == 0, r
    first = json.loads(r.out)
    assert first["kind"] == "basic", first
    user, password = first["username"], first["password"]
    used = postgres.psql("select current_user", user=user, password=password)
    assert (used.returncode, used.stdout.strip()) == (0, user), used
    # A 30 s lease: the background refresh renews it (about halfway) and serves the same login.
    deadline = time.monotonic() + 60
    while "renewed lease" not in daemon.log_text() and time.monotonic() < deadline:
        time.sleep(1)
    assert "renewed lease" in daemon.log_text(), daemon.log_text()
    r = sandbox.print_("db", "--format", "json", env=env)
    assert r.status == 0 and json.loads(r.out)["username"] == user, r
    assert postgres.psql("select 1", user=user, password=password).returncode == 0
    # Revoked in Vault: the role disappears from PostgreSQL; --refresh reads a new login.
    openbao.bao("lease", "revoke", "-sync", "-prefix", "database/creds/app")
    query = f"select count(*) from pg_roles where rolname = '{user}'"
    deadline = time.monotonic() + 30
    while postgres.psql(query).stdout.strip() != "0" and time.monotonic() < deadline:
        time.sleep(0.5)
    gone = postgres.psql(query)
    assert gone.stdout.strip() == "0", gone
    assert postgres.psql("select 1", user=user, password=password).returncode != 0
    r = sandbox.print_("--refresh", "db", "--format", "json", env=env)
    assert r.status == 0, r
    second = json.loads(r.out)
    assert second["username"] != user
    used = postgres.psql("select current_user", user=second["username"], password=second["password"])
    assert (used.returncode, used.stdout.strip()) == (0, second["username"]), used
