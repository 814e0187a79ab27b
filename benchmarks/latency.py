#!/usr/bin/env python3
"""tokend's benchmark: one run, one table. See benchmarks/README.md.

Builds a wheel of this checkout, installs it into a fresh virtualenv, starts
``tokend serve`` from it with a private runtime dir and config, then measures:

1. warm ``tokend-print PROFILE`` against the interpreter floor
   ``python3 -I -S -c pass`` (same interpreter, same harness, interleaved),
   and likewise the git and docker credential helpers (``[hosts]`` routed),
   each interleaved with the floor and ``tokend-print``;
2. ``gcloud auth print-access-token`` with a cached token (offline, against a
   local fake token endpoint);
3. daemon throughput with 32 concurrent clients, new connection per request
   and keep-alive;
4. a herd of cold ``tokend-print`` callers (single flight: one upstream fetch);
5. the daemon's idle CPU and RSS.

Stdlib only; runs with any python3 >= 3.10. Progress goes to stderr, the table
(or ``--json``) to stdout. Exits 0 when targets are missed (it measures, it
does not test); exits 1 only when the set-up itself fails.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

TARGET_WARM_RATIO = 1.5  # warm tokend-print median <= 1.5x the interpreter floor
TARGET_HELPER_VS_PRINT = 1.1  # git/docker helper median <= 1.1x tokend-print's (same runs)
TARGET_GCLOUD_FACTOR = 30.0  # tokend-print >= 30x faster than cached gcloud
TARGET_RPS = 5000.0  # daemon requests/s with 32 clients
TARGET_IDLE_CPU = 0.5  # percent of one CPU while idle ("~0")
CLIENT_PROCS = 2
CONNS_PER_PROC = 16
PROFILE = "bench"
HERD_PROFILE = "herd"
HELPER_HOST = "git.bench.example"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


# -- the process harness -----------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    status: int
    out: bytes
    err: bytes


class Harness:
    """Spawns one process with posix_spawn, waits for it, returns wall time and output.

    Only spawn..waitpid is timed; stdout/stderr go to two scratch files (no pipe
    to drain while timing, no deadlock on large output) read after the exit. A
    process still running after ``timeout`` seconds is killed (an interval
    timer armed outside the timed window) and reported as status -9.
    """

    def __init__(self, scratch: str) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self.out_fd = os.open(os.path.join(scratch, "run.out"), flags, 0o600)
        self.err_fd = os.open(os.path.join(scratch, "run.err"), flags, 0o600)
        self.child = 0
        signal.signal(signal.SIGALRM, self._kill_child)

    def _kill_child(self, signum: int, frame: object) -> None:
        if self.child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGKILL)

    def close(self) -> None:
        os.close(self.out_fd)
        os.close(self.err_fd)

    def run(
        self, argv: list[str], env: dict[str, str], timeout: float = 30.0, stdin: str = os.devnull
    ) -> Run:
        for fd in (self.out_fd, self.err_fd):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, stdin, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, self.out_fd, 1),
            (os.POSIX_SPAWN_DUP2, self.err_fd, 2),
        ]
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            t0 = time.perf_counter_ns()
            self.child = pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
            _, status = os.waitpid(pid, 0)  # retried after SIGALRM (PEP 475)
            t1 = time.perf_counter_ns()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.child = 0
        return Run(
            (t1 - t0) / 1e9, os.waitstatus_to_exitcode(status), _slurp(self.out_fd), _slurp(self.err_fd)
        )


def _slurp(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


@dataclass
class Stats:
    runs: int
    median: float
    p95: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        s = sorted(samples)
        n = len(s)
        median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
        p95 = s[max(math.ceil(0.95 * n) - 1, 0)]  # nearest rank
        return cls(n, median, p95, sum(s) / n, s[0], s[-1])

    def ms(self) -> dict[str, float]:
        ms = {f"{k}_ms": round(v * 1000, 3) for k, v in self.__dict__.items() if k != "runs"}
        return {"runs": self.runs, **ms}


# -- /proc ---------------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, str]:
    return _status_file(f"/proc/{pid}/status")


def proc_ctx_switches(pid: int) -> int:
    """Context switches summed over all threads (wake-ups, roughly)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            st = _status_file(f"/proc/{pid}/task/{tid}/status")
            total += int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
    return total


def _status_file(path: str) -> dict[str, str]:
    with open(path) as f:
        return dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)


# -- set-up: wheel, venv, config, daemon ----------------------------------------------------------


def sh(argv: list[str], what: str, **kw: Any) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what} timed out: {' '.join(argv)}") from None
    if proc.returncode != 0:
        raise SetupError(
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stdout}{proc.stderr}"
        )
    return str(proc.stdout)


def build_venv(tmp: str, python: str) -> tuple[str, str]:
    """A fresh venv with this checkout installed from its wheel; (venv dir, wheel name)."""
    src = os.path.join(tmp, "src")
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests"
        ),
    )
    venv = os.path.join(tmp, "venv")
    wheels = os.path.join(tmp, "wheel")
    log(f"creating a virtualenv with {python}")
    sh([python, "-m", "venv", venv], "python -m venv")
    vpy = os.path.join(venv, "bin", "python")
    log("building the wheel (pip wheel --no-deps)")
    sh([vpy, "-m", "pip", "wheel", "-q", "--no-deps", src, "-w", wheels], "pip wheel")
    (wheel,) = [w for w in os.listdir(wheels) if w.endswith(".whl")]
    log(f"installing {wheel} and its dependencies")
    sh([vpy, "-m", "pip", "install", "-q", os.path.join(wheels, wheel)], "pip install")
    return venv, wheel


FETCH_SH = """\
#!/bin/sh
# fetch.sh COUNT_FILE TOKEN DELAY: one upstream fetch, counted.
echo fetch >> "$1"
[ "$3" = 0 ] || sleep "$3"
printf '{"token": "%s", "expires_in": 3600}\\n' "$2"
"""


def toml_str(s: str) -> str:
    return json.dumps(s)  # JSON string escapes are valid TOML basic-string escapes


def write_config(tmp: str, token: str, herd_token: str, herd_delay: float) -> tuple[str, str, str]:
    fetch = os.path.join(tmp, "fetch.sh")
    with open(fetch, "w") as f:
        f.write(FETCH_SH)
    count = os.path.join(tmp, "bench.count")
    herd_count = os.path.join(tmp, "herd.count")
    lines = []
    for name, cnt, tok, delay in (
        (PROFILE, count, token, 0.0),
        (HERD_PROFILE, herd_count, herd_token, herd_delay),
    ):
        argv = ["/bin/sh", fetch, cnt, tok, f"{delay:g}"]
        lines += [
            f"[profiles.{name}]",
            'source = "command"',
            f"command = [{', '.join(map(toml_str, argv))}]",
            "",
        ]
    lines += ["[hosts]", f'"{HELPER_HOST}" = "{PROFILE}"', ""]  # the git and docker helpers' route
    config = os.path.join(tmp, "config.toml")
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    return config, count, herd_count


def count_lines(path: str) -> int:
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def start_daemon(venv: str, env: dict[str, str], logfile: str) -> subprocess.Popen[bytes]:
    """``tokend serve`` in its own session; returns once it says ready (TOKEND_READY_FD)."""
    read_fd, write_fd = os.pipe()
    with open(logfile, "ab") as logf:
        proc = subprocess.Popen(
            [os.path.join(venv, "bin", "tokend"), "serve"],
            env={**env, "TOKEND_READY_FD": str(write_fd)},
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            pass_fds=(write_fd,),
            start_new_session=True,
        )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 30)
        msg = os.read(read_fd, 16) if ready else b""
    finally:
        os.close(read_fd)
    if not msg.startswith(b"ready"):
        stop_process(proc)
        with open(logfile, errors="replace") as f:
            tail = f.read()[-2000:]
        raise SetupError(f"tokend serve did not become ready; its log:\n{tail}")
    return proc


def stop_process(proc: subprocess.Popen[Any], grace: float = 5.0) -> int | None:
    """SIGTERM by PID, SIGKILL after ``grace``; the exit status (None if it was already reaped)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


# -- 1 + 2: warm tokend-print vs the interpreter floor ------------------------------------------


def measure_warm(
    h: Harness, floor_argv: list[str], print_argv: list[str], env: dict[str, str], runs: int, expected: bytes
) -> tuple[Stats, Stats]:
    def check(r: Run) -> None:
        if r.status != 0 or r.out != expected:
            raise SetupError(
                f"tokend-print failed: exit {r.status}, stdout {r.out[:200]!r}, stderr {r.err[:500]!r}"
            )

    for _ in range(10):  # warm-up: page cache, daemon's first accepts
        h.run(floor_argv, env)
        check(h.run(print_argv, env))
    floor: list[float] = []
    warm: list[float] = []
    for i in range(runs):
        order = ((floor_argv, floor), (print_argv, warm))
        for argv, samples in order if i % 2 == 0 else order[::-1]:  # alternate who goes first
            r = h.run(argv, env)
            if argv is print_argv:
                check(r)
            elif r.status != 0:
                raise SetupError(f"the floor command failed: {r.err[:500]!r}")
            samples.append(r.seconds)
    return Stats.of(floor), Stats.of(warm)


def measure_helpers(
    h: Harness,
    tmp: str,
    venv: str,
    floor_argv: list[str],
    print_argv: list[str],
    env: dict[str, str],
    runs: int,
    token: str,
) -> dict[str, dict[str, Any]]:
    """``git-credential-tokend get`` and ``docker-credential-tokend get``, each interleaved with
    the floor and ``tokend-print`` (so "costs what tokend-print costs" is one set of runs)."""
    git_in = os.path.join(tmp, "git.in")
    with open(git_in, "w") as f:
        f.write(f"protocol=https\nhost={HELPER_HOST}\n\n")
    docker_in = os.path.join(tmp, "docker.in")
    with open(docker_in, "w") as f:
        f.write(f"https://{HELPER_HOST}\n")
    cases = {
        "git": ([os.path.join(venv, "bin", "git-credential-tokend"), "get"], git_in, f"password={token}"),
        "docker": ([os.path.join(venv, "bin", "docker-credential-tokend"), "get"], docker_in, token),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, (argv, stdin, needle) in cases.items():
        if not os.access(argv[0], os.X_OK):
            raise SetupError(f"{argv[0]} missing from the install")
        floor: list[float] = []
        printed: list[float] = []
        helper: list[float] = []
        order = [(floor_argv, floor, os.devnull), (print_argv, printed, os.devnull), (argv, helper, stdin)]
        for i in range(10 + runs):
            # Each goes first, second and last equally often: machine noise hits all three alike.
            for cmd, samples, inp in order[i % 3 :] + order[: i % 3]:
                r = h.run(cmd, env, stdin=inp)
                if r.status != 0 or (cmd is argv and needle.encode() not in r.out):
                    raise SetupError(f"{cmd[0]} failed: exit {r.status}, stderr {r.err[:500]!r}")
                if i >= 10:  # the first ten warm up
                    samples.append(r.seconds)
        f_stats, p_stats, h_stats = Stats.of(floor), Stats.of(printed), Stats.of(helper)
        out[name] = {
            **h_stats.ms(),
            "ratio": h_stats.median / f_stats.median,
            "floor_median_ms": f_stats.median * 1000,
            "print_median_ms": p_stats.median * 1000,
            "print_ratio": p_stats.median / f_stats.median,
            "vs_print": h_stats.median / p_stats.median,
        }
    return out


# -- 3: gcloud with a cached token ------------------------------------------------------------


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def _der_int(v: int) -> bytes:
    return _der(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))


_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _is_probable_prime(n: int, rng: random.SystemRandom) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(40):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def rsa_private_key_pem(bits: int = 2048, e: int = 65537) -> str:
    """A PKCS#8 PEM RSA key, stdlib only (gcloud signs its JWT assertion with it)."""
    rng = random.SystemRandom()

    def prime() -> int:
        while True:
            p = rng.getrandbits(bits // 2) | (3 << (bits // 2 - 2)) | 1
            if math.gcd(e, p - 1) == 1 and _is_probable_prime(p, rng):
                return p

    p, q = prime(), prime()
    while q == p:
        q = prime()
    n = p * q
    d = pow(e, -1, (p - 1) * (q - 1) // math.gcd(p - 1, q - 1))
    pkcs1 = _der(
        0x30, b"".join(_der_int(v) for v in (0, n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p)))
    )
    rsa_oid = bytes.fromhex("06092a864886f70d0101010500")  # rsaEncryption, NULL
    pkcs8 = _der(0x30, _der_int(0) + _der(0x30, rsa_oid) + _der(0x04, pkcs1))
    b64 = base64.b64encode(pkcs8).decode()
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"


def _http_get_json(port: int, path: str) -> Any:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


@dataclass
class GcloudResult:
    stats: Stats | None = None
    skipped: str | None = None
    version: str | None = None
    upstream_during_timed: int | None = None


def measure_gcloud(
    h: Harness, tmp: str, gcloud: str, runs: int, procs: list[subprocess.Popen[Any]]
) -> GcloudResult:
    if gcloud == "none":
        return GcloudResult(skipped="disabled with --gcloud none")
    found = shutil.which(gcloud)
    if found is None:
        return GcloudResult(skipped=f"{gcloud} not found")
    gcloud = os.path.abspath(found)
    token = "ya29.tokend-bench-" + os.urandom(16).hex()
    fake = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "fake_google_token.py"), "--token", token],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    procs.append(fake)
    assert fake.stdout is not None
    line = fake.stdout.readline().strip()
    if not line.isdigit():
        return GcloudResult(skipped="the fake token endpoint did not start")
    port = int(line)
    cfg = os.path.join(tmp, "gcloud")
    os.mkdir(cfg, 0o700)
    key_file = os.path.join(tmp, "sa-key.json")
    key = {
        "type": "service_account",
        "project_id": "tokend-bench",
        "private_key_id": os.urandom(20).hex(),
        "private_key": rsa_private_key_pem(),
        "client_email": "bench@tokend-bench.iam.gserviceaccount.com",
        "client_id": "100000000000000000000",
        "auth_uri": f"http://127.0.0.1:{port}/auth",
        "token_uri": f"http://127.0.0.1:{port}/token",
    }
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(key, f)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", tmp),
        "LANG": "C.UTF-8",
        "CLOUDSDK_CONFIG": cfg,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith("CLOUDSDK_PYTHON")})
    try:
        version = sh(
            [gcloud, "version", '--format=value("Google Cloud SDK")'], "gcloud version", env=env
        ).strip()
        for prop, value in (
            ("core/disable_usage_reporting", "true"),
            ("component_manager/disable_update_check", "true"),
            ("survey/disable_prompts", "true"),
        ):
            sh([gcloud, "config", "set", prop, value], f"gcloud config set {prop}", env=env)
        sh(
            [gcloud, "auth", "activate-service-account", f"--key-file={key_file}"],
            "activate-service-account",
            env=env,
        )
    except SetupError as e:
        head, *rest = str(e).splitlines()
        detail = [line.strip() for line in rest if line.strip()]
        reason = f"{head.split(': ', 1)[0]}: {detail[-1]}" if detail else head
        return GcloudResult(skipped=reason[:200])
    argv = [gcloud, "auth", "print-access-token"]
    first = h.run(argv, env)  # populates (or confirms) gcloud's token cache
    if first.status != 0 or first.out.strip() != token.encode():
        return GcloudResult(
            skipped=f"gcloud did not print the fake's token (exit {first.status}): "
            + first.err.decode(errors="replace").strip()[-200:]
        )
    before = _http_get_json(port, "/count")["count"]
    samples = []
    for _ in range(runs):
        r = h.run(argv, env)
        if r.status != 0 or r.out.strip() != token.encode():
            return GcloudResult(
                skipped=f"gcloud failed mid-run (exit {r.status}): "
                + r.err.decode(errors="replace").strip()[-200:]
            )
        samples.append(r.seconds)
    after = _http_get_json(port, "/count")["count"]
    stop_process(fake)
    return GcloudResult(Stats.of(samples), version=version, upstream_during_timed=after - before)


# -- 4: throughput ---------------------------------------------------------------------------------------


def worker_main(spec: dict[str, Any]) -> None:
    """One client process: an epoll loop over ``conns`` unix-socket connections."""
    path, mode, n = spec["socket"], spec["mode"], spec["conns"]
    request, expected = spec["request"].encode(), spec["expected"].encode()
    ep = select.epoll()
    socks: dict[int, socket.socket] = {}
    bufs: dict[int, bytes] = {}
    ok = bad = errors = 0

    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)  # blocking connect: waits only if the daemon's backlog is full
        s.setblocking(False)
        return s

    def start(s: socket.socket) -> None:
        s.send(request)
        socks[s.fileno()] = s
        bufs[s.fileno()] = b""
        ep.register(s.fileno(), select.EPOLLIN)

    def drop(fd: int) -> None:
        ep.unregister(fd)
        socks.pop(fd).close()
        del bufs[fd]

    keep = [connect() for _ in range(n)] if mode == "keepalive" else []
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    start_at = float(sys.stdin.readline())
    deadline = start_at + spec["seconds"]
    time.sleep(max(start_at - time.monotonic(), 0))
    for i in range(n):
        start(keep[i] if keep else connect())
    running = True
    while running:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ev in ep.poll(left):
            s = socks[fd]
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # the daemon hung up: count it, carry on with a new connection
                errors += 1
                drop(fd)
                start(connect())
                continue
            buf = bufs[fd] + data
            nl = buf.find(b"\n")
            if nl < 0:
                bufs[fd] = buf
                continue
            try:
                end = nl + 1 + int(buf[:nl].split(b" ")[1])
            except (IndexError, ValueError):
                bad += 1
                drop(fd)
                start(connect())
                continue
            if len(buf) < end:
                bufs[fd] = buf
                continue
            if time.monotonic() > deadline:
                running = False
                break
            if buf[:end] == expected:
                ok += 1
            else:
                bad += 1
            if mode == "keepalive":
                bufs[fd] = buf[end:]
                s.send(request)
            else:
                drop(fd)
                start(connect())
    ru = os.times()
    json.dump({"ok": ok, "bad": bad, "errors": errors, "cpu": ru.user + ru.system}, sys.stdout)
    sys.stdout.flush()


@dataclass
class Throughput:
    mode: str
    rps: float
    ok: int
    bad: int
    errors: int
    seconds: float
    daemon_cpu_pct: float
    clients_cpu_pct: float
    daemon_cpu_us_per_request: float


def measure_throughput(mode: str, sock_path: str, token: str, seconds: float, daemon_pid: int) -> Throughput:
    spec = {
        "socket": sock_path,
        "mode": mode,
        "conns": CONNS_PER_PROC,
        "seconds": seconds,
        "request": f"get\tprofile={PROFILE}\tformat=raw\n",
        "expected": f"0 {len(token) + 1}\n{token}\n",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(CLIENT_PROCS)
    ]
    try:
        for w in workers:
            assert w.stdout is not None
            if w.stdout.readline().strip() != "ready":
                raise SetupError(f"throughput client {w.pid} did not start")
        start_at = time.monotonic() + 0.2
        for w in workers:
            assert w.stdin is not None
            w.stdin.write(f"{start_at!r}\n")
            w.stdin.flush()
        time.sleep(max(start_at - time.monotonic(), 0))
        cpu0 = proc_cpu_seconds(daemon_pid)
        time.sleep(max(start_at + seconds - time.monotonic(), 0))
        cpu1 = proc_cpu_seconds(daemon_pid)
        results = []
        for w in workers:
            out, _ = w.communicate(timeout=seconds + 30)
            if w.returncode != 0:
                raise SetupError(f"throughput client {w.pid} failed (exit {w.returncode})")
            results.append(json.loads(out))
    finally:
        for w in workers:
            if w.poll() is None:
                stop_process(w)
    ok = sum(r["ok"] for r in results)
    return Throughput(
        mode,
        ok / seconds,
        ok,
        sum(r["bad"] for r in results),
        sum(r["errors"] for r in results),
        seconds,
        100 * (cpu1 - cpu0) / seconds,
        100 * sum(r["cpu"] for r in results) / seconds,
        1e6 * (cpu1 - cpu0) / max(ok, 1),
    )


# -- 5: herd ---------------------------------------------------------------------------------------------


@dataclass
class Herd:
    callers: int
    seconds: float
    fetches: int
    errors: int
    distinct_outputs: int
    first_error: str | None = None


def measure_herd(
    tmp: str, print_argv: list[str], env: dict[str, str], n: int, token: str, count_file: str
) -> Herd:
    d = os.path.join(tmp, "herd")
    os.mkdir(d, 0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    pids = []
    t0 = time.perf_counter()
    for i in range(n):
        out = os.open(os.path.join(d, f"{i}.out"), flags, 0o600)
        err = os.open(os.path.join(d, f"{i}.err"), flags, 0o600)
        try:
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out, 1),
                (os.POSIX_SPAWN_DUP2, err, 2),
            ]
            pids.append(os.posix_spawn(print_argv[0], print_argv, env, file_actions=actions))
        finally:
            os.close(out)
            os.close(err)
    statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    elapsed = time.perf_counter() - t0
    expected = (token + "\n").encode()
    outputs = set()
    errors = 0
    first_error = None
    for i, status in enumerate(statuses):
        with open(os.path.join(d, f"{i}.out"), "rb") as f:
            stdout = f.read()
        with open(os.path.join(d, f"{i}.err"), "rb") as f:
            stderr = f.read()
        outputs.add(stdout)
        if status != 0 or stdout != expected or stderr:
            errors += 1
            first_error = first_error or f"exit {status}: {stderr.decode(errors='replace').strip()[:300]}"
    return Herd(n, elapsed, count_lines(count_file), errors, len(outputs), first_error)


# -- the report ------------------------------------------------------------------------------------------


def fmt_ms(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s >= 0.1 else f"{s * 1000:.2f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render_table(r: dict[str, Any]) -> str:
    """Rows are (measure, median, p95, ratio, target, result) or (measure, wide value, target, result)."""
    rows: list[tuple[str, ...]] = []
    floor, warm = r["floor"], r["warm"]
    rows.append(
        (
            "python3 -I -S -c pass (floor)",
            fmt_ms(floor["median_ms"] / 1000),
            fmt_ms(floor["p95_ms"] / 1000),
            "1.00x",
            "",
            "",
        )
    )
    rows.append(
        (
            "tokend-print (warm daemon)",
            fmt_ms(warm["median_ms"] / 1000),
            fmt_ms(warm["p95_ms"] / 1000),
            f"{r['warm_ratio']:.2f}x floor",
            f"<= {TARGET_WARM_RATIO:.2f}x floor",
            verdict(r["targets"]["warm"]),
        )
    )
    for name, hr in r.get("helpers", {}).items():
        rows.append(
            (
                f"{name}-credential-tokend get (warm)",
                fmt_ms(hr["median_ms"] / 1000),
                fmt_ms(hr["p95_ms"] / 1000),
                f"{hr['ratio']:.2f}x floor",
                f"<= {TARGET_HELPER_VS_PRINT:.2f}x print",
                verdict(r["targets"][f"helper_{name}"]),
            )
        )
    g = r["gcloud"]
    label = "gcloud auth print-access-token (cached)"
    if g.get("skipped"):
        reason = g["skipped"] if len(g["skipped"]) <= 48 else g["skipped"][:45] + "..."
        rows.append((label, f"skipped: {reason}", f">= {TARGET_GCLOUD_FACTOR:.0f}x", "SKIP"))
    else:
        rows.append(
            (
                label,
                fmt_ms(g["median_ms"] / 1000),
                fmt_ms(g["p95_ms"] / 1000),
                f"{g['factor']:.0f}x tokend-print",
                f">= {TARGET_GCLOUD_FACTOR:.0f}x faster",
                verdict(r["targets"]["gcloud"]),
            )
        )
    for key, name in (("newconn", "new conn"), ("keepalive", "keep-alive")):
        t = r["throughput"][key]
        rows.append(
            (
                f"daemon throughput, {CLIENT_PROCS * CONNS_PER_PROC} clients, {name}",
                f"{t['rps']:,.0f} req/s",
                f">= {TARGET_RPS:,.0f} req/s",
                verdict(r["targets"][f"throughput_{key}"]),
            )
        )
    hd = r["herd"]
    rows.append(
        (
            f"herd: {hd['callers']} cold callers",
            f"{hd['seconds']:.2f} s, fetches={hd['fetches']}, errors={hd['errors']}",
            "1 fetch, 0 errors",
            verdict(r["targets"]["herd"]),
        )
    )
    idle = r["idle"]
    rows.append(
        (
            "daemon idle CPU / RSS",
            f"{idle['cpu_pct']:.2f} % / {idle['rss_mib']:.0f} MiB",
            f"CPU < {TARGET_IDLE_CPU} %",
            verdict(r["targets"]["idle_cpu"]),
        )
    )
    head = ("measure", "median", "p95", "ratio", "target", "result")
    wm = max(len(row[0]) for row in [*rows, head])
    wn = 9  # median, p95
    wr = max(len(row[3]) for row in [*rows, head] if len(row) == 6)
    wide = max(len(row[1]) for row in rows if len(row) == 4)
    wr = max(wr, wide - 2 * wn - 4)
    wt = max(len(row[-2]) for row in [*rows, head])
    lines = []
    for row in [head, *rows]:
        if len(row) == 6:
            cells = f"{row[1]:>{wn}}  {row[2]:>{wn}}  {row[3]:<{wr}}"
        else:
            cells = f"{row[1]:<{2 * wn + 4 + wr}}"
        lines.append(f"{row[0]:<{wm}}  {cells}  {row[-2]:<{wt}}  {row[-1]}".rstrip())
    return "\n".join(lines)


def notes(r: dict[str, Any]) -> list[str]:
    out = []
    floor, warm = r["floor"], r["warm"]
    out.append(
        f"tokend-print costs {warm['median_ms'] - floor['median_ms']:.2f} ms over the bare interpreter "
        f"(median; min {floor['min_ms']:.2f} vs {warm['min_ms']:.2f} ms)"
    )
    for name, hr in r.get("helpers", {}).items():
        out.append(
            f"{name}-credential-tokend costs {hr['median_ms'] - hr['floor_median_ms']:.2f} ms over the bare "
            f"interpreter, {hr['vs_print']:.2f}x tokend-print in the same runs "
            f"(medians {hr['median_ms']:.2f} vs {hr['print_median_ms']:.2f} ms; "
            f"tokend-print {hr['print_ratio']:.2f}x floor there)"
        )
    g = r["gcloud"]
    if g.get("skipped"):
        out.append(f"gcloud skipped: {g['skipped']}")
    else:
        out.append(
            f"gcloud {g['version']}: {g['runs']} cached calls, {g['upstream_during_timed']} reached the fake "
            "token endpoint during the timed runs"
        )
    for key in ("newconn", "keepalive"):
        t = r["throughput"][key]
        out.append(
            f"throughput {key}: {t['ok']:,} good responses in {t['seconds']:g} s, {t['bad']} wrong, "
            f"{t['errors']} connection errors; daemon CPU {t['daemon_cpu_pct']:.0f} % of one core "
            f"({t['daemon_cpu_us_per_request']:.0f} us/request), clients {t['clients_cpu_pct']:.0f} %"
        )
    hd = r["herd"]
    out.append(
        f"herd: {hd['distinct_outputs']} distinct output(s); upstream fetch delay {r['herd_delay']:g} s"
        + (f"; first error: {hd['first_error']}" if hd["first_error"] else "")
    )
    idle = r["idle"]
    out.append(
        f"idle: {idle['ctx_switches']} context switches in {idle['seconds']:g} s, "
        f"{idle['threads']} threads; bench profile fetched {r['bench_fetches']} time(s) in total"
    )
    out.append(f"daemon stopped with SIGTERM: exit status {r['daemon_exit']}")
    out.append(
        f"load average {r['loadavg']['start']} at the start, {r['loadavg']['end']} at the end "
        f"({r['cpus']} CPUs): other work on the machine skews throughput and p95 figures"
    )
    return out


# -- main --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="tb", dir="/tmp")  # short: the socket path must fit in 107 bytes
    os.chmod(tmp, 0o700)
    try:
        yield tmp
    finally:
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Options:
    runs: int
    gcloud_runs: int
    seconds: float
    herd: int
    herd_delay: float
    idle_seconds: float
    python: str
    venv: str | None
    keep: bool
    as_json: bool
    gcloud: str


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_all(o: Options) -> dict[str, Any]:
    load_start = loadavg()
    procs: list[subprocess.Popen[Any]] = []
    daemon: subprocess.Popen[bytes] | None = None
    with workspace(o.keep) as tmp:
        try:
            if o.venv:
                venv, wheel = os.path.abspath(o.venv), "(existing venv)"
            else:
                venv, wheel = build_venv(tmp, o.python)
            vpy3 = os.path.join(venv, "bin", "python3")
            helper = os.path.join(venv, "bin", "tokend-print")
            for exe in (vpy3, helper, os.path.join(venv, "bin", "tokend")):
                if not os.access(exe, os.X_OK):
                    raise SetupError(f"{exe} missing from the install")
            pyver = subprocess.run(
                [vpy3, "-I", "-S", "-c", "import sys; print(sys.version.split()[0])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()

            token = "tokend-bench-" + os.urandom(16).hex()
            herd_token = "tokend-herd-" + os.urandom(16).hex()
            config, count_file, herd_count = write_config(tmp, token, herd_token, o.herd_delay)
            rundir = os.path.join(tmp, "run")
            os.mkdir(rundir, 0o700)
            sock_path = os.path.join(rundir, "tokend", "tokend.sock")
            if len(os.fsencode(sock_path)) > 107:
                raise SetupError(f"socket path {sock_path} is over 107 bytes")
            env = {
                "PATH": f"{os.path.join(venv, 'bin')}:/usr/local/bin:/usr/bin:/bin",
                "HOME": os.environ.get("HOME", tmp),
                "LANG": "C.UTF-8",
                "XDG_RUNTIME_DIR": rundir,
                "TOKEND_CONFIG": config,
            }
            log("starting tokend serve")
            daemon = start_daemon(venv, env, os.path.join(tmp, "daemon.log"))
            procs.append(daemon)

            h = Harness(tmp)
            floor_argv = [vpy3, "-I", "-S", "-c", "pass"]
            print_argv = [helper, PROFILE]
            log(f"warm: {o.runs} x tokend-print interleaved with {o.runs} x {' '.join(floor_argv[1:])}")
            floor, warm = measure_warm(h, floor_argv, print_argv, env, o.runs, (token + "\n").encode())

            helper_runs = max(o.runs // 3, 20)
            log(
                f"helpers: {helper_runs} x git/docker credential helper get, interleaved with the floor "
                "and tokend-print"
            )
            helpers = measure_helpers(h, tmp, venv, floor_argv, print_argv, env, helper_runs, token)

            log(f"gcloud: {o.gcloud_runs} x gcloud auth print-access-token (cached)")
            try:
                gres = measure_gcloud(h, tmp, o.gcloud, o.gcloud_runs, procs)
            except (OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
                gres = GcloudResult(skipped=f"{type(e).__name__}: {e}"[:200])
            h.close()

            tp = {}
            for mode in ("newconn", "keepalive"):
                log(f"throughput: {CLIENT_PROCS * CONNS_PER_PROC} clients, {mode}, {o.seconds:g} s")
                tp[mode] = measure_throughput(mode, sock_path, token, o.seconds, daemon.pid)

            log(f"herd: {o.herd} cold tokend-print at once")
            herd = measure_herd(tmp, [helper, HERD_PROFILE], env, o.herd, herd_token, herd_count)

            log(f"idle: sampling the daemon for {o.idle_seconds:g} s")
            time.sleep(1.0)  # let the herd's connections and timers settle
            cpu0, ctx0 = proc_cpu_seconds(daemon.pid), proc_ctx_switches(daemon.pid)
            time.sleep(o.idle_seconds)
            cpu1, ctx1 = proc_cpu_seconds(daemon.pid), proc_ctx_switches(daemon.pid)
            st = proc_status(daemon.pid)
            rss_kib = int(st["VmRSS"].split()[0])
            idle = {
                "seconds": o.idle_seconds,
                "cpu_pct": 100 * (cpu1 - cpu0) / o.idle_seconds,
                "rss_mib": rss_kib / 1024,
                "threads": int(st["Threads"]),
                "ctx_switches": ctx1 - ctx0,
            }
            bench_fetches = count_lines(count_file)
            load_end = loadavg()
            daemon_exit = stop_process(daemon)
        finally:
            for p in reversed(procs):
                stop_process(p)

    warm_ratio = warm.median / floor.median
    g: dict[str, Any]
    if gres.stats is None:
        g = {"skipped": gres.skipped}
    else:
        g = {
            **gres.stats.ms(),
            "factor": gres.stats.median / warm.median,
            "version": gres.version,
            "upstream_during_timed": gres.upstream_during_timed,
        }
    targets = {
        "warm": warm_ratio <= TARGET_WARM_RATIO,
        "gcloud": None if gres.stats is None else g["factor"] >= TARGET_GCLOUD_FACTOR,
        "throughput_newconn": tp["newconn"].rps >= TARGET_RPS,
        "throughput_keepalive": tp["keepalive"].rps >= TARGET_RPS,
        "herd": herd.fetches == 1 and herd.errors == 0 and herd.distinct_outputs == 1,
        "idle_cpu": idle["cpu_pct"] < TARGET_IDLE_CPU,
        **{f"helper_{name}": hr["vs_print"] <= TARGET_HELPER_VS_PRINT for name, hr in helpers.items()},
    }
    return {
        "tokend": wheel,
        "python": pyver,
        "interpreter": vpy3,
        "cpus": os.cpu_count(),
        "loadavg": {"start": load_start, "end": load_end},
        "floor": floor.ms(),
        "warm": warm.ms(),
        "warm_ratio": warm_ratio,
        "helpers": helpers,
        "gcloud": g,
        "throughput": {k: v.__dict__ for k, v in tp.items()},
        "herd": herd.__dict__,
        "herd_delay": o.herd_delay,
        "idle": idle,
        "bench_fetches": bench_fetches,
        "daemon_exit": daemon_exit,
        "targets": targets,
        "target_values": {
            "warm_ratio_max": TARGET_WARM_RATIO,
            "helper_vs_print_max": TARGET_HELPER_VS_PRINT,
            "gcloud_factor_min": TARGET_GCLOUD_FACTOR,
            "rps_min": TARGET_RPS,
            "herd": "1 fetch, 0 errors",
            "idle_cpu_pct_max": TARGET_IDLE_CPU,
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="tokend benchmark: latency, throughput, herd, idle cost.")
    ap.add_argument(
        "--runs", type=int, default=300, help="warm tokend-print and floor runs each (default 300)"
    )
    ap.add_argument("--gcloud-runs", type=int, default=30, help="cached gcloud runs (default 30)")
    ap.add_argument("--gcloud", default="gcloud", help="the gcloud to compare with; 'none' skips that row")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run (default 5)")
    ap.add_argument("--herd", type=int, default=500, help="cold tokend-print callers at once (default 500)")
    ap.add_argument(
        "--herd-delay",
        type=float,
        default=0.5,
        help="seconds the herd profile's upstream fetch takes (default 0.5)",
    )
    ap.add_argument("--idle-seconds", type=float, default=5.0, help="idle CPU sampling window (default 5)")
    ap.add_argument(
        "--python", default=sys.executable, help="interpreter for the fresh venv (default: this one)"
    )
    ap.add_argument("--venv", help="use this existing (non-editable) install instead of building a wheel")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, venv)")
    ap.add_argument("--json", dest="as_json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(json.loads(args.worker))
        return 0
    o = Options(
        args.runs,
        args.gcloud_runs,
        args.seconds,
        args.herd,
        args.herd_delay,
        args.idle_seconds,
        args.python,
        args.venv,
        args.keep,
        args.as_json,
        args.gcloud,
    )
    try:
        r = run_all(o)
    except SetupError as e:
        log(f"set-up failed: {e}")
        return 1
    if o.as_json:
        json.dump(r, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        f"tokend benchmark: {r['tokend']}, Python {r['python']} ({r['interpreter']}), "
        f"{r['cpus']} CPUs, {o.runs} runs"
    )
    print(render_table(r))
    print()
    for line in notes(r):
        print(f"  {line}")
    missed = [k for k, v in r["targets"].items() if v is False]
    print()
    skipped = [k for k, v in r["targets"].items() if v is None]
    if missed:
        print(f"TARGETS MISSED: {', '.join(missed)}")
    else:
        print("all targets met" + (f" (not measured: {', '.join(skipped)})" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
