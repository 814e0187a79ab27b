"""Talking to a running daemon from the full CLI (control operations)."""

from __future__ import annotations

import json
from typing import Any

from tokend.client import paths, protocol
from tokend.core.errors import DaemonUnreachable, Relayed

CONTROL_TIMEOUT = 5.0


def request(
    op: str, fields: dict[str, str] | None = None, timeout: float = CONTROL_TIMEOUT
) -> tuple[int, bytes]:
    path = paths.socket_path()
    try:
        return protocol.call(path, protocol.encode_request(op, fields or {}), timeout)
    except (FileNotFoundError, ConnectionRefusedError):
        raise DaemonUnreachable(f"no daemon running at {path} (start one with: tokend serve)") from None
    except TimeoutError:
        raise DaemonUnreachable(f"daemon at {path} did not answer within {timeout:g}s") from None
    except (protocol.NoAnswer, protocol.ProtocolError, OSError) as e:
        raise DaemonUnreachable(f"daemon at {path} failed to answer: {e}") from None


def run(op: str, fields: dict[str, str] | None = None) -> str:
    """Run a control operation; its reply text, or the daemon's error raised."""
    status, body = request(op, fields)
    text = body.decode("utf-8", "replace").strip()
    if status != 0:
        raise Relayed(text, status)
    return text


def status() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(run("status"))
    return doc
