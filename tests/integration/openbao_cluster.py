"""A real three-node OpenBao raft cluster on loopback, for failover tests and benchmarks.

Each node is a ``bao server`` with raft storage in a directory of its own and
TLS off on 127.0.0.1 (the cluster port carries OpenBao's own TLS). The first
node is initialised with one unseal key, the others join it through
``retry_join`` and are unsealed with that key. Autopilot's stabilization time
is cut to a second so joined nodes become voters quickly; ``start`` returns
once all three are voters and one of them is active. ``kill(node)`` is a
``kill -9``; ``wait_active`` waits out the election that follows.

Used by tests/integration/test_openbao_cluster.py and benchmarks/fleet.py
(``--cluster``), so it needs nothing from pytest.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

CONFIG = """\
storage "raft" {{
  path = "{data}"
  node_id = "{name}"
  performance_multiplier = 1
{join}}}
listener "tcp" {{
  address = "127.0.0.1:{api}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{api}"
cluster_addr = "https://127.0.0.1:{cluster}"
disable_mlock = true
log_level = "info"
{audit}"""

#: A file audit device, declared (OpenBao 2.x refuses ``bao audit enable`` through its API). Every
#: node names the same file: a request is audited by the node that handles it (a standby forwards
#: what it does not serve itself before auditing it), so the file counts each request once.
AUDIT = """audit "file" "fleet" {{
  options {{
    file_path = "{path}"
  }}
}}
"""

JOIN = """  retry_join {{
    leader_api_addr = "{leader}"
  }}
"""


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Node:
    name: str
    api: int
    cluster: int
    root: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Cluster:
    """Three raft nodes: their URLs, the root token, and the CLI/API against any of them."""

    binary: str
    root: Path
    audit_log: Path | None = None
    nodes: list[Node] = field(default_factory=list)
    root_token: str = ""
    unseal_key: str = ""

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, size: int = 3, timeout: float = 120.0) -> Cluster:
        ports = _free_ports(2 * size)
        for i in range(size):
            self.nodes.append(Node(f"node{i + 1}", ports[2 * i], ports[2 * i + 1], self.root))
        deadline = time.monotonic() + timeout
        first = self.nodes[0]
        self._launch(first, leader=None)
        self._wait_up(first, deadline)
        init = self.api_at(first, "PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token="")
        self.root_token, self.unseal_key = init["root_token"], init["keys"][0]
        self._unseal(first, deadline)
        self._wait(deadline, "node1 active", lambda: self.active() is first)
        # A joined node votes once autopilot thinks it stable: a second, not the default 10.
        self.api_at(
            first,
            "POST",
            "sys/storage/raft/autopilot/configuration",
            {"server_stabilization_time": "1s", "cleanup_dead_servers": False},
        )
        for node in self.nodes[1:]:
            self._launch(node, leader=first.url)
        for node in self.nodes[1:]:
            self._wait_up(node, deadline)
            self._unseal(node, deadline)
        self._wait(deadline, "all nodes voters", self._all_voters)
        return self

    def _launch(self, node: Node, leader: str | None) -> None:
        data = self.root / node.name
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / f"{node.name}.hcl"
        join = JOIN.format(leader=leader) if leader else ""
        audit = AUDIT.format(path=self.audit_log) if self.audit_log else ""
        config.write_text(
            CONFIG.format(
                data=data, name=node.name, join=join, api=node.api, cluster=node.cluster, audit=audit
            )
        )
        with open(node.log, "ab") as f:
            node.proc = subprocess.Popen(
                [self.binary, "server", f"-config={config}"],
                env=self.env(node),
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_up(self, node: Node, deadline: float) -> None:
        def up() -> bool:
            if not node.alive:
                raise AssertionError(f"{node.name} exited:\n{node.log.read_text(errors='replace')}")
            try:
                requests.get(f"{node.url}/v1/sys/seal-status", timeout=1)
                return True
            except requests.RequestException:
                return False

        self._wait(deadline, f"{node.name} listening", up)

    def _unseal(self, node: Node, deadline: float) -> None:
        def unsealed() -> bool:
            try:
                r = requests.put(f"{node.url}/v1/sys/unseal", json={"key": self.unseal_key}, timeout=5)
            except requests.RequestException:
                return False
            return r.status_code == 200 and not r.json().get("sealed", True)

        self._wait(deadline, f"{node.name} unsealed", unsealed)

    def _all_voters(self) -> bool:
        active = self.active()
        if active is None:
            return False
        try:
            doc = self.api_at(active, "GET", "sys/storage/raft/configuration")
        except AssertionError:
            return False
        servers = doc["data"]["config"]["servers"]
        return len(servers) == len(self.nodes) and all(s.get("voter") for s in servers)

    @staticmethod
    def _wait(deadline: float, what: str, check: Any) -> None:
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"OpenBao cluster: timed out waiting for {what}")
            time.sleep(0.2)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                os.killpg(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(node.proc.pid, signal.SIGKILL)
                    node.proc.wait(10)

    def kill(self, node: Node) -> None:
        """``kill -9`` the node: no goodbye to its peers."""
        assert node.proc is not None
        os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(10)

    # -- state ------------------------------------------------------------------------------------

    def health(self, node: Node) -> dict[str, Any] | None:
        if not node.alive:
            return None
        try:
            r = requests.get(f"{node.url}/v1/sys/health", params={"standbyok": "true"}, timeout=2)
            doc = r.json()
        except (requests.RequestException, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def active(self) -> Node | None:
        """The node that says it is active (None during an election)."""
        for node in self.nodes:
            doc = self.health(node)
            if (
                doc is not None
                and doc.get("initialized")
                and not doc.get("sealed")
                and not doc.get("standby")
            ):
                return node
        return None

    def wait_active(self, timeout: float = 60.0) -> Node:
        deadline = time.monotonic() + timeout
        self._wait(deadline, "an active node", lambda: self.active() is not None)
        node = self.active()
        assert node is not None
        return node

    # -- clients ----------------------------------------------------------------------------------

    def env(self, node: Node) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env.update(HOME=str(self.root), BAO_ADDR=node.url)
        if self.root_token:
            env["BAO_TOKEN"] = self.root_token
        return env

    def bao(self, node: Node, *args: str) -> str:
        """Run the ``bao`` CLI against ``node``; its stdout (AssertionError when it fails)."""
        proc = subprocess.run(
            [self.binary, *args],
            env=self.env(node),
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, f"bao {' '.join(args)} at {node.name}: {proc.stderr}"
        return proc.stdout

    def api_at(
        self, node: Node, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> Any:
        """One HTTP API call at ``node`` as root; its JSON answer (None for 204)."""
        headers = {"X-Vault-Token": self.root_token if token is None else token}
        r = requests.request(method, f"{node.url}/v1/{path}", json=body, headers=headers, timeout=10)
        assert r.status_code < 300, f"{method} {path} at {node.name}: HTTP {r.status_code} {r.text}"
        return r.json() if r.content else None

    def put(self, path: str, value: str, key: str = "value") -> bool:
        """Write ``{key: value}`` at KV v2 ``secret/path`` through any live node.

        False while the cluster cannot take a write (no active node yet).
        """
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                r = requests.post(
                    f"{node.url}/v1/secret/data/{path}",
                    json={"data": {key: value}},
                    headers={"X-Vault-Token": self.root_token},
                    timeout=3,
                )
            except requests.RequestException:
                continue
            if r.status_code == 200:
                return True
        return False

    def mount_kv(self, timeout: float = 60.0) -> None:
        """KV v2 at ``secret/``, once it takes writes (a new mount upgrades itself for a moment)."""
        self.api_at(
            self.wait_active(), "POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}
        )
        self._wait(time.monotonic() + timeout, "the KV v2 mount", lambda: self.put("ready", "yes"))

    def reader_token(self) -> str:
        """A token (1 h) whose policy reads ``secret/*``."""
        active = self.wait_active()
        policy = 'path "secret/*" { capabilities = ["read"] }\n'
        self.api_at(active, "PUT", "sys/policies/acl/reader", {"policy": policy})
        doc = self.api_at(active, "POST", "auth/token/create", {"policies": ["reader"], "ttl": "1h"})
        return str(doc["auth"]["client_token"])

    def describe(self) -> str:
        """Each node's health, for assertion messages."""
        return json.dumps({n.name: self.health(n) for n in self.nodes}, indent=1)


def start(binary: str, root: Path, attempts: int = 3, audit_log: Path | None = None) -> Cluster:
    """A running, unsealed three-node cluster with every node a voter (stop it when done).

    Other ports when a free one found was taken before bao bound it. With
    ``audit_log`` every node audits the requests it handles into that file.
    """
    for attempt in range(attempts):
        cluster = Cluster(binary, root / f"try{attempt}", audit_log)
        cluster.root.mkdir(parents=True)
        try:
            return cluster.start()
        except BaseException as e:
            cluster.stop()
            if "address already in use" not in str(e) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
