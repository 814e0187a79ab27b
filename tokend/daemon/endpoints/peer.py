"""Who is on the other end of a loopback TCP connection: the owner of the peer's socket.

Loopback TCP has no SO_PEERCRED. Both ends of a local connection are listed in
``/proc/net/tcp`` (``tcp6`` for IPv6): the peer's socket is the row whose local
address is the peer's address and whose remote address is ours, and that row
carries the uid that owns it.
"""

from __future__ import annotations

import ipaddress
import socket
import struct


def _hex_address(host: str, port: int) -> str:
    """``/proc/net/tcp``'s spelling of an address: 32-bit words in host order, then the port."""
    ip = ipaddress.ip_address(host)
    if ip.version == 4:
        (word,) = struct.unpack("=I", socket.inet_aton(str(ip)))
        return f"{word:08X}:{port:04X}"
    words = struct.unpack("=4I", ip.packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def peer_uid(local: tuple[str, int], peer: tuple[str, int]) -> int | None:
    """The uid owning the socket at ``peer`` connected to ``local``; None when not found."""
    table = "/proc/net/tcp" if ipaddress.ip_address(peer[0]).version == 4 else "/proc/net/tcp6"
    want_local = _hex_address(*peer)
    want_remote = _hex_address(*local)
    try:
        with open(table, encoding="ascii") as f:
            next(f, None)  # the header line
            for line in f:
                cols = line.split()
                if len(cols) > 7 and cols[1] == want_local and cols[2] == want_remote:
                    return int(cols[7])
    except OSError:
        return None
    return None
