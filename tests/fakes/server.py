"""The HTTP plumbing the fakes share: a ``ThreadingHTTPServer`` on 127.0.0.1.

``LocalHTTPServer(handler)`` binds a free port at once; ``start`` serves it
from a daemon thread (wrapping the socket in TLS first when ``tls`` names a
certificate and key), ``stop`` shuts it down and closes it. ``url`` is
``http://`` or ``https://127.0.0.1:PORT``; ``port`` stays readable after
``stop``.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class LocalHTTPServer:
    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        name: str | None = None,
        tls: tuple[str | Path, str | Path] | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self.name = name
        self.tls = tls is not None
        self.poll_interval = poll_interval
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> LocalHTTPServer:
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(self.poll_interval,), name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
