"""The wire format and one request/response over a unix socket."""

from __future__ import annotations

import os
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tokend.client import protocol
from tokend.client.protocol import NoAnswer, ProtocolError


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"profile": "vertex"},
        {"profile": "vertex", "format": "json", "min_ttl": "5m", "refresh": "1"},
        {"value": "tab\there"},
        {"value": "new\nline\n"},
        {"value": "back\\slash\\"},
        {"value": "\\t is not a tab, \\n not a newline"},
        {"value": "\\"},
        {"value": "cr at the end\r"},
        {"value": "unicode: üñíçødé 日本語 🔑"},
        {"value": "equals=in=value"},
        {"value": ""},
        {"exec_info": '{"apiVersion": "client.authentication.k8s.io/v1",\n\t"spec": {}}'},
    ],
)
def test_round_trip(fields: dict[str, str]) -> None:
    line = protocol.encode_request("get", fields)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1  # one request is one line, whatever the values
    op, decoded = protocol.decode_request(line[:-1])
    assert op == "get"
    assert decoded == fields


@pytest.mark.parametrize("op", sorted(protocol.OPS))
def test_every_operation_round_trips(op: str) -> None:
    assert protocol.decode_request(protocol.encode_request(op, {})[:-1]) == (op, {})


def test_decode_tolerates_crlf() -> None:
    assert protocol.decode_request(b"get\tprofile=x\r") == ("get", {"profile": "x"})


def test_unknown_escape_keeps_the_character() -> None:
    assert protocol.decode_request(b"get\tv=a\\qb") == ("get", {"v": "aqb"})


@pytest.mark.parametrize("line", [b"", b"GET\tprofile=x", b"exec\tcmd=rm", b"get profile=x"])
def test_unknown_operation(line: bytes) -> None:
    with pytest.raises(ProtocolError, match="unknown operation"):
        protocol.decode_request(line)


def test_unknown_operation_is_not_echoed_whole() -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.decode_request(b"x" * 10_000)
    assert len(str(info.value)) < 100


def test_non_utf8() -> None:
    with pytest.raises(ProtocolError, match="not UTF-8"):
        protocol.decode_request(b"get\tprofile=\xff\xfe")


@pytest.mark.parametrize(
    "line",
    [b"get\tprofile", b"get\t=value", b"get\tnot a key=v", b"get\t1abc=v", b"get\t", b"get\tprofile=x\t"],
)
def test_malformed_field(line: bytes) -> None:
    with pytest.raises(ProtocolError, match="malformed field"):
        protocol.decode_request(line)


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)
    assert issubclass(NoAnswer, ConnectionError)


def test_encode_response() -> None:
    assert protocol.encode_response(0, b"tok\n") == b"0 4\ntok\n"
    assert protocol.encode_response(4, b"") == b"4 0\n"


# -- call() against a tiny server ---------------------------------------------------

Handler = Callable[[socketserver.StreamRequestHandler], None]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def serve(short_tmp: str) -> Iterator[Callable[[Handler], str]]:
    servers: list[_Server] = []
    release = threading.Event()  # lets handlers that never answer finish at teardown

    def start(handle: Handler) -> str:
        class H(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                handle(self)

        path = os.path.join(short_tmp, f"s{len(servers)}.sock")
        server = _Server(path, H)
        server.release = release  # type: ignore[attr-defined]
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return path

    yield start
    release.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def test_call_happy_path(serve: Callable[[Handler], str]) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def handle(h: socketserver.StreamRequestHandler) -> None:
        op, fields = protocol.decode_request(h.rfile.readline().rstrip(b"\n"))
        seen.append((op, fields))
        h.wfile.write(protocol.encode_response(0, f"token-for-{fields['profile']}\n".encode()))

    path = serve(handle)
    request = protocol.encode_request("get", {"profile": "vertex", "format": "raw"})
    assert protocol.call(path, request, timeout=5) == (0, b"token-for-vertex\n")
    assert seen == [("get", {"profile": "vertex", "format": "raw"})]


def test_call_reads_a_body_in_pieces(serve: Callable[[Handler], str]) -> None:
    body = b"x" * 200_000

    def handle(h: socketserver.StreamRequestHandler) -> None:
        h.rfile.readline()
        data = protocol.encode_response(1, body)
        for i in range(0, len(data), 7_000):
            h.wfile.write(data[i : i + 7_000])
            h.wfile.flush()
            time.sleep(0.001)

    path = serve(handle)
    status, got = protocol.call(path, protocol.encode_request("status", {}), timeout=5)
    assert (status, got) == (1, body)


def test_call_server_closes_without_answer(serve: Callable[[Handler], str]) -> None:
    path = serve(lambda h: h.rfile.readline())
    with pytest.raises(NoAnswer):
        protocol.call(path, protocol.encode_request("ping", {}), timeout=5)


def test_call_server_closes_mid_body(serve: Callable[[Handler], str]) -> None:
    def handle(h: socketserver.StreamRequestHandler) -> None:
        h.rfile.readline()
        h.wfile.write(b"0 100\nonly part")

    path = serve(handle)
    with pytest.raises(NoAnswer):
        protocol.call(path, protocol.encode_request("ping", {}), timeout=5)


@pytest.mark.timeout(10)
def test_call_server_never_answers(serve: Callable[[Handler], str]) -> None:
    def handle(h: socketserver.StreamRequestHandler) -> None:
        h.rfile.readline()
        h.server.release.wait(30)  # type: ignore[attr-defined]

    path = serve(handle)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        protocol.call(path, protocol.encode_request("get", {"profile": "p"}), timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 2.3


@pytest.mark.timeout(10)
def test_call_deadline_covers_a_trickling_server(serve: Callable[[Handler], str]) -> None:
    # Each byte arrives well within the timeout, but the whole answer does not.
    def handle(h: socketserver.StreamRequestHandler) -> None:
        h.rfile.readline()
        h.wfile.write(b"0 50\n")
        h.wfile.flush()
        for _ in range(50):
            if h.server.release.wait(0.1):  # type: ignore[attr-defined]
                return
            h.wfile.write(b"x")
            h.wfile.flush()

    path = serve(handle)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        protocol.call(path, protocol.encode_request("get", {"profile": "p"}), timeout=0.5)
    assert time.monotonic() - start < 2.5


@pytest.mark.parametrize(
    "answer",
    [b"garbage\n", b"0\n", b"0 -1\n", b"256 0\n", b"0 99999999999\n", b"x" * 100],
)
def test_call_malformed_header(serve: Callable[[Handler], str], answer: bytes) -> None:
    def handle(h: socketserver.StreamRequestHandler) -> None:
        h.rfile.readline()
        h.wfile.write(answer)

    path = serve(handle)
    with pytest.raises(ProtocolError):
        protocol.call(path, protocol.encode_request("ping", {}), timeout=5)


def test_call_without_daemon(short_tmp: str) -> None:
    with pytest.raises(FileNotFoundError):
        protocol.call(os.path.join(short_tmp, "absent.sock"), b"ping\n", timeout=1)


def test_call_to_stale_socket(short_tmp: str) -> None:
    import socket

    path = os.path.join(short_tmp, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # bound, never listening: what a crashed daemon leaves behind
    with pytest.raises(ConnectionRefusedError):
        protocol.call(path, b"ping\n", timeout=1)
