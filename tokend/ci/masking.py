"""``tokend exec --mask``: run a command with its output streamed through a secret masker.

``Masker`` replaces every occurrence of a secret with ``***`` in a byte stream
fed in arbitrary chunks: a secret split across two reads is still caught,
because the tail of a chunk that could begin a secret is held back until the
next chunk shows whether it does (and flushed at the end). ``run_masked``
pipes the child's stdout and stderr through one masker each, forwards
signals to it and returns its exit status.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence

REPLACEMENT = b"***"
READ_SIZE = 65536

#: Signals passed on to the child. SIGINT and SIGQUIT from a terminal already
#: reach it (same process group): those are passed on only when no terminal
#: whose foreground group is ours could have sent them.
FORWARDED = (
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGCONT,
)
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)


class Masker:
    """Masks secrets in a stream of byte chunks."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        self._secrets = values
        self._firsts = frozenset(v[0] for v in values)
        self._longest = len(values[0]) if values else 0
        # Longest first: at a given position the longest secret wins.
        self._pattern = re.compile(b"|".join(re.escape(v) for v in values)) if values else None
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The masked output that is certain now; the rest waits for the next chunk."""
        if self._pattern is None:
            return chunk
        buf = self._pending + chunk
        matches = [(m.start(), m.end()) for m in self._pattern.finditer(buf)]
        cut = len(buf) - self._partial(buf)
        for start, end in matches:
            if start < cut < end:  # never emit half of a match
                cut = start
                break
        out = bytearray()
        pos = 0
        for start, end in matches:
            if end > cut:
                break
            out += buf[pos:start] + REPLACEMENT
            pos = end
        out += buf[pos:cut]
        self._pending = buf[cut:]
        return bytes(out)

    def flush(self) -> bytes:
        """Whatever is held back, masked (end of the stream)."""
        rest, self._pending = self._pending, b""
        if self._pattern is None:
            return rest
        return self._pattern.sub(REPLACEMENT, rest)

    def _partial(self, buf: bytes) -> int:
        """Length of the longest tail of ``buf`` that a secret starts with but does not end at."""
        for length in range(min(self._longest - 1, len(buf)), 0, -1):
            if buf[-length] not in self._firsts:
                continue
            tail = buf[-length:]
            if any(len(s) > length and s.startswith(tail) for s in self._secrets):
                return length
        return 0


def _write_all(fd: int, data: bytes) -> bool:
    """Write everything; False once the reader has gone (output is then dropped)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return False
        view = view[n:]
    return True


def _terminal_delivers() -> bool:
    """Whether a terminal's Ctrl-C / Ctrl-\\ reaches the child by itself (our group is in front)."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
    return False


def run_masked(argv: Sequence[str], env: Mapping[str, str], secrets: Iterable[str]) -> int:
    """Run ``argv`` with its stdout/stderr masked; its exit status (``-N``: killed by signal N)."""
    return run_child(argv, env, secrets)


def run_child(argv: Sequence[str], env: Mapping[str, str], secrets: Iterable[str] | None = None) -> int:
    """Run ``argv`` as a child, forwarding our signals to it; its exit status (``-N``: killed by signal N).

    With ``secrets`` its stdout/stderr pass through the masker; else it shares ours.
    """
    skip = TERMINAL_SIGNALS if _terminal_delivers() else ()
    started: list[subprocess.Popen[bytes]] = []
    early: list[int] = []  # signals that came before the child existed

    def forward(signum: int, frame: object) -> None:
        if signum in skip:
            return
        if not started:
            early.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            started[0].send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        pipe = subprocess.PIPE if secrets is not None else None
        proc = subprocess.Popen(list(argv), env=dict(env), stdout=pipe, stderr=pipe)
        started.append(proc)
        for signum in early:
            forward(signum, None)
        if secrets is not None:
            _pump(proc, secrets)
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _pump(proc: subprocess.Popen[bytes], secrets: Iterable[str]) -> None:
    values = list(secrets)
    assert proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): (1, Masker(values)), proc.stderr.fileno(): (2, Masker(values))}
    open_ = {fd: True for fd in (1, 2)}  # our outputs still read by someone
    with selectors.DefaultSelector() as sel:
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        while streams:
            for key, _ in sel.select():
                fd = key.fd
                out, masker = streams[fd]
                chunk = os.read(fd, READ_SIZE)
                data = masker.feed(chunk) if chunk else masker.flush()
                if data and open_[out]:
                    open_[out] = _write_all(out, data)
                if not chunk:
                    sel.unregister(fd)
                    del streams[fd]
    proc.stdout.close()
    proc.stderr.close()


def exit_like(status: int) -> None:
    """End this process as the child ended: same exit code, or killed by the same signal."""
    sys.stdout.flush()
    sys.stderr.flush()
    if status >= 0:
        os._exit(status)
    signum = -status
    with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
        signal.signal(signum, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), signum)
    os._exit(128 + signum)
