"""The ``[endpoints]`` the daemon serves on its own event loop, for tools started outside tokend.

Each endpoint gets a fresh random token when it starts, kept only in the
daemon's memory; ``tokend endpoints env`` asks for the variables over the
daemon's socket (``endpoints`` operation), which only our uid can reach. A
reload keeps an endpoint whose profile and port did not change (same port,
same token: shells that exported them keep working) and answers through the
new configuration; a changed or removed one stops and a new one starts.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokend.core.broker import Broker
from tokend.core.endpoints_config import EndpointEntry

if TYPE_CHECKING:
    from tokend.daemon.endpoints.http import EndpointServer, Handler, Refusal

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


@dataclass
class _Live:
    entry: EndpointEntry
    server: EndpointServer
    token: str
    project: str | None = None
    client_id: str | None = None
    started: asyncio.Task[None] | None = None


def bind(port: int) -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1:``port`` (0: ephemeral)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class DaemonEndpoints:
    """The configured endpoints: started, kept across reloads, their variables and counts."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._live: dict[str, _Live] = {}
        self._closing: set[asyncio.Task[None]] = set()
        #: cloud -> the one line saying why its endpoint is not served (a fixed port in use)
        self.errors: dict[str, str] = {}

    def apply(self, entries: Mapping[str, EndpointEntry]) -> None:
        """Serve exactly ``entries``; called on the event loop at start and after each reload."""
        self.errors = {}
        if not entries and not self._live:
            return  # the endpoint modules are imported only when needed: the daemon starts faster
        from tokend.ci import endpoints_env as envs
        from tokend.daemon.endpoints.google import identity_of
        from tokend.daemon.endpoints.http import EndpointServer

        for cloud, live in list(self._live.items()):
            if entries.get(cloud) != live.entry:
                self._stop(cloud)
        for cloud, entry in entries.items():
            kept = self._live.get(cloud)
            if kept is not None:
                # New handler objects: derived profiles (scopes, resources) belong to the old config.
                handler, _ = self._handler(entry, kept.token)
                kept.server.set_handler(handler)
                continue
            try:
                sock = bind(entry.port)
            except OSError as e:
                why = "in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
                line = f"tokend: endpoints.{cloud}: port {entry.port} on {HOST} is {why}: not served"
                log.error("%s", line.removeprefix("tokend: "))
                self.errors[cloud] = line
                continue
            token = envs.new_token()
            handler, refuse = self._handler(entry, token)
            server = EndpointServer(cloud, handler, refuse)
            server.port = int(sock.getsockname()[1])
            options = self._broker.profile(entry.profile).options
            client_id = options.get("client_id") if cloud == "azure" else None
            live = _Live(entry, server, token, client_id=client_id if isinstance(client_id, str) else None)
            if cloud == "google":
                live.project = identity_of(options, os.environ).project
            live.started = asyncio.get_running_loop().create_task(server.start(sock))
            self._live[cloud] = live
            log.info("%s endpoint for profile %s on http://%s", cloud, entry.profile, server.host)

    def _handler(self, entry: EndpointEntry, token: str) -> tuple[Handler, Refusal]:
        from tokend.daemon.endpoints import aws, azure, google

        if entry.cloud == "aws":
            return aws.AwsEndpoint(self._broker, entry.profile, token), aws.refuse
        if entry.cloud == "google":
            ident = google.identity_of(self._broker.profile(entry.profile).options, os.environ)
            return google.GoogleEndpoint(self._broker, entry.profile, ident), google.refuse
        return azure.AzureEndpoint(self._broker, entry.profile, token), azure.refuse

    def _stop(self, cloud: str) -> None:
        live = self._live.pop(cloud)
        task = asyncio.get_running_loop().create_task(self._shutdown(live))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        log.info("%s endpoint on http://%s stopped", cloud, live.server.host)

    @staticmethod
    async def _shutdown(live: _Live) -> None:
        """Stop listening once the server has started (it owns the socket then)."""
        if live.started is not None:
            await asyncio.gather(live.started, return_exceptions=True)
        await live.server.close()

    def close(self) -> None:
        for cloud in list(self._live):
            self._stop(cloud)

    def status(self) -> list[dict[str, Any]]:
        """What ``tokend status`` shows: no token."""
        out: list[dict[str, Any]] = [
            {
                "cloud": cloud,
                "profile": live.entry.profile,
                "url": f"http://{live.server.host}",
                "requests": live.server.requests,
            }
            for cloud, live in self._live.items()
        ]
        out += [{"cloud": c, "error": line} for c, line in self.errors.items()]
        return out

    def environment(self) -> dict[str, Any]:
        """The variables to set and to unset for each served endpoint (tokens included)."""
        from tokend.ci import endpoints_env as envs
        from tokend.daemon.endpoints import aws, azure

        set_: dict[str, str] = {}
        unset: list[str] = []
        for cloud, live in self._live.items():
            base = f"http://{live.server.host}"
            if cloud == "aws":
                unset += envs.AWS_REMOVED
                set_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = base + aws.PATH
                set_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = live.token
            elif cloud == "google":
                unset += ("GOOGLE_APPLICATION_CREDENTIALS", "NO_GCE_CHECK")
                for var in ("GCE_METADATA_HOST", "GCE_METADATA_IP", "GCE_METADATA_ROOT"):
                    set_[var] = live.server.host
                if live.project:
                    set_["GOOGLE_CLOUD_PROJECT"] = live.project
            else:
                unset += envs.AZURE_REMOVED
                set_["IDENTITY_ENDPOINT"] = base + azure.PATH
                set_["IDENTITY_HEADER"] = live.token
                if live.client_id:
                    set_["AZURE_CLIENT_ID"] = live.client_id
        return {
            "set": set_,
            "unset": [v for v in dict.fromkeys(unset) if v not in set_],
            "errors": list(self.errors.values()),
        }
