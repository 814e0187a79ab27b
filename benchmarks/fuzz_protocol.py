#!/usr/bin/env python3
"""A seeded mutational fuzzer of the daemon's wire protocol (a stress run, not a test).

Starts ``tokend serve`` on a private runtime dir with three profiles (``demo``,
a ``command`` one, an ``env`` one), then sends valid requests and mutated ones
(byte flips, truncation, huge fields, random ops and keys, escapes, NUL,
invalid UTF-8, CRLF, spliced requests), pipelined several per connection over
several concurrent connections, some written in pieces, some half-closed.
Checks every reply is well formed, nothing hangs, the daemon survives and
serves ``demo`` correctly afterwards, and no served secret reaches its log.

Stdlib only. Progress to stderr, a summary (or ``--json``) to stdout. Exit 1
when the daemon died, a reply was malformed, a connection hung, or the final
checks failed; the same seed replays the same requests (per worker).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

PROFILES = ["demo", "cmd", "envp"]
FORMATS = ["raw", "json", "header", "env", "aws-process", "exec-credential", "bogus", ""]
ENV_SECRET = "fuzz-env-secret-7c1f0e9a5b"
CMD_SECRET = "fuzz-command-secret-31d4a8"
CONFIG = f"""\
[profiles.demo]
source = "demo"
latency = "1ms"

[profiles.cmd]
source = "command"
command = ["/bin/echo", {json.dumps(json.dumps({"token": CMD_SECRET, "expires_in": 3600}))}]

[profiles.envp]
source = "env"
var = "TOKEND_FUZZ_SECRET"
"""
MAX_REQUEST = 64 * 1024
#: A connection that neither answers nor closes for this long counts as hung.
#: Above the daemon's own 5 s request timeout, which may legitimately apply.
HANG = 20.0
HEADER = re.compile(rb"(\d{1,3}) (\d{1,8})")


def log(msg: str) -> None:
    print(f"[fuzz] {msg}", file=sys.stderr, flush=True)


# -- requests -----------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _encode(op: str, fields: dict[str, str]) -> bytes:
    return "\t".join([op] + [f"{k}={_escape(v)}" for k, v in fields.items()]).encode()


def valid_request(rng: random.Random) -> bytes:
    """One well-formed request line, without its newline (``stop`` never)."""
    op = rng.choices(["get", "ping", "status", "drop", "reload"], weights=[80, 12, 5, 0.5, 0.2])[0]
    fields: dict[str, str] = {}
    if op == "get":
        fields["profile"] = rng.choice([*PROFILES, *PROFILES, "nope", "", "demo\n2026 forged"])
        if rng.random() < 0.3:
            fields["format"] = rng.choice(FORMATS)
        if rng.random() < 0.2:
            fields["min_ttl"] = rng.choice(
                ["5s", "1h", "0", "1.5m", "10d", "-1", "1e309", "nan", "9" * 400, "90000000000000000000s"]
            )
        if rng.random() < 0.01:
            fields["refresh"] = "1"
        if rng.random() < 0.05:
            fields["repeat_caller"] = rng.choice([str(rng.randrange(1, 1 << 22)), "1\n2", "x" * 40, ""])
        if rng.random() < 0.05:
            fields["exec_info"] = rng.choice(
                ['{"apiVersion": "client.authentication.k8s.io/v1"}', "{", "null", '{"apiVersion": 7}']
            )
    elif op == "drop":
        fields["profile"] = rng.choice(PROFILES)
    return _encode(op, fields)


def _random_bytes(rng: random.Random, n: int) -> bytes:
    alphabet = b"\t=\\\x00\r\x80\xff\xc3abz019_ -"
    return bytes(rng.choice(alphabet) if rng.random() < 0.5 else rng.randrange(256) for _ in range(n))


def mutate(rng: random.Random, line: bytes) -> bytes:
    """``line`` with one to three random mutations."""
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(12)
        i = rng.randrange(len(line) + 1)
        if kind == 0 and line:  # byte flip
            j = rng.randrange(len(line))
            line = line[:j] + bytes([line[j] ^ (1 << rng.randrange(8))]) + line[j + 1 :]
        elif kind == 1:  # insert random bytes
            line = line[:i] + _random_bytes(rng, rng.randint(1, 8)) + line[i:]
        elif kind == 2:  # delete a range
            line = line[:i] + line[i + rng.randint(1, 8) :]
        elif kind == 3:  # truncate
            line = line[:i]
        elif kind == 4:  # a huge field, around the request limit
            size = rng.choice([1000, 30000, MAX_REQUEST - 200, MAX_REQUEST, MAX_REQUEST + 10])
            line += b"\tformat=" + b"A" * size
        elif kind == 5:  # a random operation
            op = rng.choice([b"", b"GET", b"get ", b"pingpong", b"x" * 100, _random_bytes(rng, 6)])
            line = op + line[line.find(b"\t") :] if b"\t" in line else op
        elif kind == 6:  # a random key
            key = rng.choice([b"", b"1a", b"a-b", b"k\xff", b"profile", b"_", "é".encode(), b"a b"])
            line += b"\t" + key + b"=" + _random_bytes(rng, rng.randint(0, 5))
        elif kind == 7:  # escapes, complete and dangling
            line = line[:i] + rng.choice([b"\\", b"\\\\", b"\\x", b"\\t", b"\\n\\r", b"\\\t"]) + line[i:]
        elif kind == 8:  # NUL
            line = line[:i] + b"\x00" + line[i:]
        elif kind == 9:  # invalid UTF-8
            line = line[:i] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]) + line[i:]
        elif kind == 10:  # CR: as a CRLF end, or inside
            line = line + b"\r" if rng.random() < 0.5 else line[:i] + b"\r" + line[i:]
        else:  # field without '=' or a duplicated one
            line += rng.choice([b"\tprofile", b"\t=", b"\tprofile=demo\tprofile=cmd", b"\t"])
    return line


def _is_stop(line: bytes) -> bool:
    return line.split(b"\t", 1)[0].rstrip(b"\r") == b"stop"


def batch(rng: random.Random, mutation_rate: float) -> tuple[bytes, bool]:
    """Pipelined requests for one connection, and whether to half-close after them."""
    lines = []
    for _ in range(rng.randint(1, 16)):
        line = valid_request(rng)
        if rng.random() < mutation_rate:
            line = mutate(rng, line)
        if _is_stop(line):
            line = b"ping"
        lines.append(line)
    payload = b"\n".join(lines) + b"\n"
    roll = rng.random()
    if roll < 0.05:  # a last request cut short: only EOF can end it
        tail = mutate(rng, valid_request(rng))
        return payload + (b"ping" if _is_stop(tail) else tail).replace(b"\n", b" "), True
    return payload, roll < 0.15


# -- one connection -----------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.c: Counter[str] = Counter()


def _connect(path: str) -> socket.socket | None:
    for _ in range(500):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            s.setblocking(False)
            return s
        except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
            s.close()  # backlog full (or no daemon: counted by the caller)
            time.sleep(0.01)
    return None


def _bad(c: Counter[str], why: str, payload: bytes, seen: bytes) -> None:
    c["malformed_reply"] += 1
    if os.environ.get("FUZZ_DEBUG"):
        log(f"malformed reply ({why}) to {payload[:300]!r}: {seen[:300]!r}")


def exchange(path: str, payload: bytes, half_close: bool, pieces: bool, c: Counter[str]) -> None:
    """Send ``payload``, read and check every reply until all came or the daemon closed."""
    # An unfinished last request over the size limit is answered too ("request over").
    expected = payload.count(b"\n") + (len(payload) - payload.rfind(b"\n") - 1 > MAX_REQUEST)
    c["requests"] += expected
    c["connections"] += 1
    s = _connect(path)
    if s is None:
        c["connect_failed"] += 1
        return
    poller = select.poll()
    out, rbuf, answered, eof = memoryview(payload), b"", 0, False
    deadline = time.monotonic() + HANG
    shut = False
    try:
        while True:
            if answered == expected and not half_close:
                break
            events = select.POLLIN | (select.POLLOUT if out else 0)
            poller.register(s, events)
            if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                c["hung"] += 1
                return
            if out:
                n = rng_piece(len(out)) if pieces else len(out)
                try:
                    sent = s.send(out[:n])
                    out = out[sent:]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    out = memoryview(b"")  # the daemon hung up (a malformed request before)
            if not out and half_close and not shut:
                shut = True
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_WR)
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                eof = True
                break
            rbuf += data
            while True:
                nl = rbuf.find(b"\n")
                if nl < 0:
                    if len(rbuf) > 64:
                        _bad(c, "header too long", payload, rbuf)
                        return
                    break
                m = HEADER.fullmatch(rbuf[:nl])
                if m is None:
                    _bad(c, "bad header", payload, rbuf)
                    return
                status, length = int(m.group(1)), int(m.group(2))
                if len(rbuf) < nl + 1 + length:
                    break
                body = rbuf[nl + 1 : nl + 1 + length]
                rbuf = rbuf[nl + 1 + length :]
                answered += 1
                c[f"status_{status}"] += 1
                if status not in (0, 1, 2, 3, 4) or not body.endswith(b"\n"):
                    _bad(c, "bad status or no final newline", payload, body)
                if status != 0 and (not body.startswith(b"tokend: ") or body.count(b"\n") != 1):
                    _bad(c, "error not one tokend: line", payload, body)
                if b"internal error" in body:
                    c["internal_error"] += 1
            if answered > expected:
                _bad(c, "more answers than requests", payload, rbuf)
                return
        if rbuf:
            _bad(c, "reply cut short", payload, rbuf)
        if eof and answered < expected:
            c["closed_early"] += 1  # after a malformed request the daemon says why and hangs up
            c["unanswered"] += expected - answered
    finally:
        s.close()


_PIECES = random.Random(0)


def rng_piece(n: int) -> int:
    return max(1, min(n, _PIECES.choice([1, 2, 7, 100, 4096])))


def worker(args: tuple[str, int, int, float]) -> dict[str, int]:
    path, seed, count, mutation_rate = args
    rng = random.Random(seed)
    _PIECES.seed(seed)
    c: Counter[str] = Counter()
    while c["requests"] < count:
        payload, half_close = batch(rng, mutation_rate)
        exchange(path, payload, half_close, rng.random() < 0.03, c)
        if c["connect_failed"] > 20:
            break  # the daemon is gone
    return dict(c)


# -- the daemon ---------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def find_bin(given: str | None) -> Path:
    for d in [given, os.path.dirname(sys.executable)]:
        if d and (Path(d) / "tokend").exists():
            return Path(d)
    found = shutil.which("tokend")
    if not found:
        raise SystemExit("fuzz: no tokend found (give --bin DIR)")
    return Path(found).parent


def ping(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(path)
            s.sendall(b"ping\n")
            return s.recv(64).startswith(b"0 ")
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000, help="requests in all (default 1,000,000)")
    ap.add_argument("--workers", type=int, default=4, help="client processes, one connection each at a time")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mutation-rate", type=float, default=0.2, help="share of requests mutated")
    ap.add_argument("--bin", help="directory with tokend and tokend-print (default: next to this python)")
    ap.add_argument("--json", action="store_true", help="the summary as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    opts = ap.parse_args()

    bindir = find_bin(opts.bin)
    # Stopped from outside (timeout(1), a CI job): still stop the daemon and clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="tf", dir="/tmp"))
    runtime, home = root / "r", root / "h"
    for d in (runtime, home):
        d.mkdir(mode=0o700)
    config = root / "config.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "TOKEND_CONFIG": str(config),
        "TOKEND_FUZZ_SECRET": ENV_SECRET,
        "LC_ALL": "C.UTF-8",
    }
    sock = str(runtime / "tokend" / "tokend.sock")
    daemon_log = root / "daemon.log"
    with open(daemon_log, "wb") as f:
        proc = subprocess.Popen(
            [str(bindir / "tokend"), "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        while not ping(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"fuzz: tokend serve did not start:\n{daemon_log.read_text()}")
            time.sleep(0.05)
        rss_before = rss_kib(proc.pid)
        share = -(-opts.requests // opts.workers)
        jobs = [(sock, opts.seed * 1000 + i, share, opts.mutation_rate) for i in range(opts.workers)]
        log(f"{opts.requests} requests, {opts.workers} workers, seed {opts.seed}, daemon pid {proc.pid}")
        start = time.monotonic()
        with multiprocessing.get_context("fork").Pool(opts.workers) as pool:
            results = pool.map(worker, jobs)
        elapsed = time.monotonic() - start
        totals: Counter[str] = Counter()
        for r in results:
            totals.update(r)
        alive = proc.poll() is None
        rss_after = rss_kib(proc.pid) if alive else -1
        check = subprocess.run(
            [str(bindir / "tokend-print"), "demo"],
            env=dict(env, TOKEND_NO_FALLBACK="1"),
            capture_output=True,
            timeout=30,
        )
        demo_ok = check.returncode == 0 and check.stdout.startswith(b"demo-") and check.stdout.endswith(b"\n")
        text = daemon_log.read_text(errors="replace")
        leaked = [s for s in (ENV_SECRET, CMD_SECRET, check.stdout.decode().strip()) if s and s in text]
        summary = {
            "seed": opts.seed,
            "seconds": round(elapsed, 1),
            "requests_per_second": round(totals["requests"] / elapsed),
            "answered": sum(v for k, v in totals.items() if k.startswith("status_")),
            **dict(sorted(totals.items())),
            "daemon_crashed": 0 if alive else 1,
            "demo_after": "ok" if demo_ok else check.stderr.decode(errors="replace").strip(),
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_after,
            "log_tracebacks": text.count("Traceback"),
            "log_lines": text.count("\n"),
            "secrets_in_log": len(leaked),
        }
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")
    if opts.json:
        print(json.dumps(summary, indent=2))
    else:
        width = max(map(len, summary))
        for k, v in summary.items():
            print(f"{k:<{width}}  {v}")
    failed = (
        summary["daemon_crashed"]
        or totals["malformed_reply"]
        or totals["hung"]
        or totals["connect_failed"]
        or not demo_ok
        or leaked
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
