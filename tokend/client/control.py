"""Talking to a running daemon from the full CLI (control operations)."""

from __future__ import annotations

import json
from typing import Any

from tokend.client import paths, protocol, trust
from tokend.client.rundir import RuntimeDirError
from tokend.core.errors import DaemonUnreachable, Relayed

CONTROL_TIMEOUT = 5.0


def request(
    op: str, fields: dict[str, str] | None = None, timeout: float = CONTROL_TIMEOUT
) -> tuple[int, bytes]:
    """One control request; DaemonUnreachable (exit 3) when no daemon of ours answers,
    RuntimeDirError (exit 3) when the runtime directory is not ours alone."""
    rundir = paths.runtime_dir()
    path = rundir + "/" + paths.SOCKET_NAME
    try:
        why = trust.dir_problem(rundir)
    except FileNotFoundError:
        why = None  # then there is no socket either: connect says so below
    except OSError as e:
        raise DaemonUnreachable(f"cannot check {rundir}: {e.strerror}") from None
    if why:
        raise RuntimeDirError(why)
    try:
        return protocol.call(path, protocol.encode_request(op, fields or {}), timeout)
    except trust.Refused as e:
        raise DaemonUnreachable(e.line) from None
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
    """The daemon's status document; DaemonUnreachable when the answer is not one."""
    text = run("status")
    try:
        doc = json.loads(text)
        why = "" if isinstance(doc, dict) else "not a JSON object"
    except ValueError:
        doc, why = None, "not JSON"
    if not why and (not isinstance(doc.get("profiles"), list) or "pid" not in doc):
        why = "no pid or profiles"
    if why:
        raise DaemonUnreachable(f"the daemon at {paths.socket_path()} sent an unreadable status ({why})")
    assert isinstance(doc, dict)
    return doc
