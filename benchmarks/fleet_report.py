"""The fleet benchmark's figures (``figures``) and its table (``table``): see benchmarks/README.md."""

from __future__ import annotations

import argparse
import collections
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.fleet import Served

HOUR = 3600.0
TOKEN_TTL_REAL = HOUR  # what the compressed run stands for
SECRET_TTL_REAL = HOUR / 4


def figures(
    args: argparse.Namespace,
    served: Served,
    by_path: collections.Counter[str],
    token_ttl: int,
    secret_ttl: int,
    seconds: float,
) -> dict[str, Any]:
    n, hours = args.daemons, args.hours
    total = sum(by_path.values())
    logins = sum(v for k, v in by_path.items() if k.endswith("/login"))
    # Per daemon and simulated hour: a KV read every secret ttl, a token renewal at 2/3 of its TTL.
    # (A lease is renewed about halfway through instead: see benchmarks/README.md.)
    expected = None if args.dynamic else round(HOUR / SECRET_TTL_REAL + HOUR / (TOKEN_TTL_REAL * 2 / 3), 2)
    return {
        "daemons": n,
        "secret": "database lease" if args.dynamic else "KV v2",
        "calls_per_daemon": args.calls,
        "simulated_hours": hours,
        "compression": args.compression,
        "real_seconds": round(seconds, 1),
        "token_ttl_s": token_ttl,
        "secret_ttl_s": secret_ttl,
        "calls_served": served.calls,
        "calls_failed": served.failures,
        "errors": dict(served.errors.most_common(5)),
        "openbao_requests": total,
        "openbao_requests_by_path": dict(by_path.most_common()),
        "logins": logins,
        "requests_per_daemon_per_hour": round(total / n / hours, 2),
        "requests_per_daemon_per_hour_after_login": round((total - logins) / n / hours, 2),
        "expected_per_daemon_per_hour": expected,
        "calls_per_daemon_per_hour": round(served.calls / n / hours, 1),
        "requests_per_call": round(total / max(served.calls, 1), 4),
    }


def table(r: dict[str, Any]) -> str:
    rows = [
        ("daemons x calls each", f"{r['daemons']} x {r['calls_per_daemon']}"),
        (
            "time compression",
            f"{r['compression']:g}x: {r['simulated_hours']:g} simulated hours in {r['real_seconds']}s "
            f"(token TTL {r['token_ttl_s']}s = 1h, {r['secret']} ttl {r['secret_ttl_s']}s = 15m)",
        ),
        ("calls served / failed", f"{r['calls_served']} / {r['calls_failed']}"),
        ("OpenBao requests", str(r["openbao_requests"])),
        *((f"  {path}", str(count)) for path, count in r["openbao_requests_by_path"].items()),
        ("per daemon per simulated hour", str(r["requests_per_daemon_per_hour"])),
        ("  after the first login", str(r["requests_per_daemon_per_hour_after_login"])),
        ("  expected from refreshes", str(r["expected_per_daemon_per_hour"] or "-")),
        ("calls per daemon per simulated hour", str(r["calls_per_daemon_per_hour"])),
        ("OpenBao requests per call", str(r["requests_per_call"])),
        *((f"failover: {k.replace('_', ' ')}", str(v)) for k, v in r.get("failover", {}).items()),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
