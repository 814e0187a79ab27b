"""The ``[endpoints]`` table: which profile the daemon serves on each cloud's credential endpoint.

::

    [endpoints]
    aws = "PROFILE"      # AWS container credentials
    google = "PROFILE"   # GCE metadata server
    azure = "PROFILE"    # Azure managed identity (App Service protocol)
    ports = { aws = 49811 }   # optional fixed ports; else an ephemeral one each

Checked at config load: the profile exists and gives what the endpoint
serves (the same rule as ``tokend exec --endpoint``), a port is 1-65535 and
used once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from tokend.core.errors import ConfigError

CLOUDS = ("aws", "google", "azure")


class _Profile(Protocol):
    @property
    def source(self) -> str: ...

    @property
    def options(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class EndpointEntry:
    cloud: str
    profile: str
    port: int = 0  # 0: an ephemeral port


def kind_problem(cloud: str, profile: _Profile) -> str | None:
    """Why ``profile`` cannot serve ``cloud``'s endpoint; None when it can."""
    wrong = {
        "aws": profile.source in ("google", "azure")
        or (profile.source == "aws" and profile.options.get("token") != "credentials"),
        "google": profile.source != "google" or profile.options.get("token") != "access",
        "azure": profile.source != "azure",
    }[cloud]
    if not wrong:
        return None
    wanted = {
        "aws": 'AWS credentials (source "aws", token "credentials")',
        "google": 'a Google access token (source "google")',
        "azure": 'an Azure token (source "azure")',
    }[cloud]
    return f"the profile gives source {profile.source!r}; this endpoint serves {wanted}"


def parse(table: Any, profiles: Mapping[str, _Profile], where: str) -> Mapping[str, EndpointEntry]:
    """The ``[endpoints]`` table, checked; cloud -> entry."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: endpoints: expected a table")
    for key in table:
        if key not in (*CLOUDS, "ports"):
            raise ConfigError(f"{where}: endpoints.{key}: unknown key (expected aws, google, azure or ports)")
    ports = table.get("ports", {})
    if not isinstance(ports, dict):
        raise ConfigError(f"{where}: endpoints.ports: expected a table, e.g. {{ aws = 49811 }}")
    for cloud, port in ports.items():
        if cloud not in CLOUDS or cloud not in table:
            raise ConfigError(f"{where}: endpoints.ports.{cloud}: no endpoints.{cloud} to give a port to")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"{where}: endpoints.ports.{cloud}: expected a port number 1-65535")
    used = list(ports.values())
    if len(set(used)) != len(used):
        raise ConfigError(f"{where}: endpoints.ports: one port given to two endpoints")
    out: dict[str, EndpointEntry] = {}
    for cloud in CLOUDS:
        if cloud not in table:
            continue
        name = table[cloud]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: endpoints.{cloud}: expected a profile name")
        profile = profiles.get(name)
        if profile is None:
            raise ConfigError(f"{where}: endpoints.{cloud}: unknown profile {name!r}")
        problem = kind_problem(cloud, profile)
        if problem:
            raise ConfigError(f"{where}: endpoints.{cloud} = {name!r}: {problem}")
        out[cloud] = EndpointEntry(cloud, name, int(ports.get(cloud, 0)))
    return MappingProxyType(out)
