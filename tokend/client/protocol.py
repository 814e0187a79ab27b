"""The daemon's wire format. Stdlib only and cheap to import: the fast path uses it.

A request is one line: the operation, then ``key=value`` fields, separated by
tabs, with ``\\``, tab, newline and CR escaped in values. A connection may carry
several requests; each gets a response, in order.

A response is a header line ``STATUS LENGTH`` and LENGTH bytes of body.
STATUS is the exit status the client should end with (DESIGN §4); the body is
the rendered credential on success, else the one stderr line.
"""

import time

from tokend.client import trust

MAX_REQUEST = 64 * 1024
MAX_RESPONSE = 4 * 1024 * 1024
OPS = frozenset(
    {"get", "status", "stop", "reload", "drop", "revoke", "ping", "endpoints", "routes", "helper"}
)


class ProtocolError(ValueError):
    pass


class NoAnswer(ConnectionError):
    """The daemon accepted the connection but closed it without a response."""


def _escape(value: str) -> str:
    # \r too: decode_request drops a trailing CR (CRLF clients), which must not eat a value's own.
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def encode_request(op: str, fields: dict[str, str]) -> bytes:
    parts = [op] + [f"{k}={_escape(v)}" for k, v in fields.items()]
    return ("\t".join(parts) + "\n").encode()


def decode_request(line: bytes) -> tuple[str, dict[str, str]]:
    """Parse one request line (without its newline); ProtocolError says what is wrong."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("request is not UTF-8") from None
    op, *items = text.rstrip("\r").split("\t")
    if op not in OPS:
        raise ProtocolError(f"unknown operation {op[:32]!r}")
    fields = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ProtocolError("malformed field")
        fields[key] = _unescape(value)
    return op, fields


def encode_response(status: int, body: bytes) -> bytes:
    return b"%d %d\n" % (status, len(body)) + body


def _parse_header(header: bytes) -> tuple[int, int]:
    try:
        status_s, length_s = header.split(b" ")
        status, length = int(status_s), int(length_s)
    except ValueError:
        raise ProtocolError("malformed response header") from None
    if not 0 <= status <= 255 or not 0 <= length <= MAX_RESPONSE:
        raise ProtocolError("response header out of range")
    return status, length


def call(path: str, request: bytes, timeout: float) -> tuple[int, bytes]:
    """One request/response over a fresh connection, all within ``timeout`` seconds.

    Raises FileNotFoundError / ConnectionRefusedError when no daemon listens,
    TimeoutError past the deadline, NoAnswer if the daemon hung up on us, and
    trust.Refused when the listener is another user's: it gets no request.
    """
    import _socket  # the socket module costs ~5 ms of imports; the C module does not

    deadline = time.monotonic() + timeout
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(max(timeout, 0.001))
        sock.connect(path)
        trust.check_peer(sock, path)
        sock.sendall(request)
        buf = b""
        while True:
            nl = buf.find(b"\n")
            if nl >= 0:
                break
            if len(buf) > 64:
                raise ProtocolError("malformed response header")
            buf += _recv(sock, deadline)
        status, length = _parse_header(buf[:nl])
        body = buf[nl + 1 :]
        while len(body) < length:
            body += _recv(sock, deadline)
        return status, body[:length]
    finally:
        sock.close()


def _recv(sock: object, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    sock.settimeout(left)  # type: ignore[attr-defined]
    chunk: bytes = sock.recv(65536)  # type: ignore[attr-defined]
    if not chunk:
        raise NoAnswer("connection closed without a response")
    return chunk
