"""The endpoints' shared HTTP server: limits, the Host check and the peer's uid, over real sockets."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from tokend.daemon.endpoints import peer
from tokend.daemon.endpoints.http import EndpointServer, Limits, Request, Response, plain
from tokend.daemon.endpoints.runner import serving


async def echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    return plain(200, f"{request.method} {request.path} {dict(request.query)}")


def refuse(status: int, message: str) -> Response:
    return plain(status, "refused: " + message)


Make = Callable[..., EndpointServer]


@pytest.fixture
def make() -> Iterator[Make]:
    stack: list[AbstractContextManager[None]] = []

    def start(**kw: object) -> EndpointServer:
        uid = kw.pop("uid", None)
        assert uid is None or isinstance(uid, int)
        server = EndpointServer("test", echo, refuse, limits=Limits(**kw), uid=uid)  # type: ignore[arg-type]
        ctx = serving([server])
        ctx.__enter__()
        stack.append(ctx)
        return server

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


def connect(server: EndpointServer) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    return s


def ask(
    s: socket.socket, server: EndpointServer, path: str = "/x", extra: str = "", host: str | None = None
) -> bytes:
    head = f"GET {path} HTTP/1.1\r\nHost: {host or server.host}\r\n{extra}\r\n"
    s.sendall(head.encode())
    return read_response(s)


def read_response(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        while s.recv(65536):
            pass
        return True
    except TimeoutError:
        return False


def test_answers_and_keeps_the_connection_alive(make: Make) -> None:
    server = make()
    with connect(server) as s:
        first = ask(s, server, "/a?x=1")
        assert status(first) == 200 and b"GET /a {'x': '1'}" in first
        assert status(ask(s, server, "/b")) == 200


def test_host_must_be_the_loopback_address_and_port(make: Make) -> None:
    server = make()
    for host in (f"localhost:{server.port}", "127.0.0.1", "evil.example", f"127.0.0.1:{server.port + 1}"):
        with connect(server) as s:
            answer = ask(s, server, host=host)
            assert status(answer) == 403 and b"refused: Host header" in answer, host
    with connect(server) as s:  # two Host headers: which one would be checked?
        assert status(ask(s, server, extra="Host: evil.example\r\n")) == 400


def test_bounded_head_and_no_body(make: Make) -> None:
    server = make(max_head=1024, max_body=16)
    with connect(server) as s:
        assert status(ask(s, server, extra="X-Pad: " + "a" * 4000 + "\r\n")) == 431
    with connect(server) as s:
        assert status(ask(s, server, extra="Content-Length: 100000\r\n")) == 413
    with connect(server) as s:
        assert status(ask(s, server, extra="Transfer-Encoding: chunked\r\n")) == 413
    with connect(server) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        assert status(read_response(s)) == 400


def test_idle_connection_is_closed_by_its_deadline(make: Make) -> None:
    server = make(head_timeout=0.5)
    with connect(server) as s:
        start = time.monotonic()
        assert closed_within(s, 30)
        assert time.monotonic() - start >= 0.4


def test_keep_alive_connection_ends_at_its_lifetime(make: Make) -> None:
    server = make(lifetime=1.0, head_timeout=60)
    with connect(server) as s:
        assert status(ask(s, server)) == 200
        assert closed_within(s, 30)  # well before the 60 s head timeout


def test_connection_cap(make: Make) -> None:
    server = make(connections=2)
    held = [connect(server), connect(server)]
    try:
        for s in held:
            assert status(ask(s, server)) == 200  # both counted as open
        with connect(server) as third:
            third.sendall(f"GET /x HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
            answer = read_response(third)
            assert status(answer) == 503 and b"too many connections" in answer
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 20
    while True:  # room again once they are gone
        with connect(server) as s:
            if status(ask(s, server)) == 200:
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_connection_from_another_uid_is_refused(make: Make) -> None:
    server = make(uid=os.getuid() + 4321)  # as if we were someone else: our own connection is foreign
    with connect(server) as s:
        answer = read_response(s)
        assert status(answer) == 403 and b"another user" in answer


def test_peer_uid_finds_the_owner_of_a_loopback_connection() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            conn, addr = listener.accept()
            with conn:
                assert peer.peer_uid(conn.getsockname(), addr) == os.getuid()
                assert peer.peer_uid(conn.getsockname(), ("127.0.0.1", 1)) is None
            del client


def test_handler_failure_answers_500_and_serving_goes_on(make: Make) -> None:
    server = make()
    with connect(server) as s:
        answer = ask(s, server, "/boom")
        assert status(answer) == 500 and b"RuntimeError" in answer
    with connect(server) as s:
        assert status(ask(s, server)) == 200


def test_open_connections_end_with_the_servers() -> None:
    server = EndpointServer("test", echo, refuse)
    with serving([server]):
        s = connect(server)
        assert status(ask(s, server)) == 200  # an idle keep-alive connection stays open...
    with s:
        assert closed_within(s, 10)  # ...until the servers stop
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
