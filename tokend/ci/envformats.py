"""``tokend env --format shell|dotenv|github|gitlab``: variables for a CI job's later steps.

- ``shell``: ``export NAME='value'`` lines, for ``eval "$(tokend env …)"``.
- ``dotenv``: ``NAME=value`` lines (double-quoted with escapes when needed).
- ``github``: ``::add-mask::`` for every secret value on stdout before
  anything else, then ``NAME<<DELIMITER`` blocks appended to ``$GITHUB_ENV``
  (a random delimiter checked against the value), so later steps see the
  variables and the log shows ``***``. Values GitHub cannot mask reliably
  (several lines, or under ``MIN_MASK_LENGTH`` characters) are refused.
- ``gitlab``: ``export`` lines like ``shell``, for ``eval`` in a job's script.
  GitLab masks only variables defined in its settings, never values made at
  run time: keep them out of the log (``tokend exec --mask`` masks a command's output).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence

from tokend.ci.inject import Var
from tokend.core.errors import REDACTOR, UsageError

FORMATS = ("shell", "dotenv", "github", "gitlab")
#: Shorter secrets would mask ordinary words in the log (tokend's redactor uses the same floor).
MIN_MASK_LENGTH = REDACTOR.MIN_LEN
_PLAIN = re.compile(r"[A-Za-z0-9_./:+=@%,-]*")


def shell(found: Sequence[Var]) -> str:
    return "".join(f"export {v.name}={shlex.quote(v.value)}\n" for v in found)


def dotenv(found: Sequence[Var]) -> str:
    lines = []
    for v in found:
        if _PLAIN.fullmatch(v.value):
            lines.append(f"{v.name}={v.value}\n")
        else:
            escaped = (
                v.value.replace("\\", "\\\\")
                .replace('"', '\\"')
                .replace("$", "\\$")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
            lines.append(f'{v.name}="{escaped}"\n')
    return "".join(lines)


def escape_command_data(value: str) -> str:
    """The data of a workflow command, escaped as @actions/core does (``%``, CR, LF)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def check_maskable(found: Sequence[Var]) -> None:
    """UsageError naming the first secret GitHub's log masking would miss."""
    for v in found:
        if not v.secret:
            continue
        if "\n" in v.value or "\r" in v.value:
            raise UsageError(
                f"{v.name}: the value has several lines, which GitHub Actions cannot mask as one; "
                "use tokend exec --mask for it"
            )
        if len(v.value) < MIN_MASK_LENGTH:
            raise UsageError(
                f"{v.name}: a {len(v.value)}-character value is too short to mask in the log "
                f"(at least {MIN_MASK_LENGTH})"
            )
        if v.value != v.value.strip():
            raise UsageError(f"{v.name}: the value starts or ends with white space, which masking trims")


def github_masks(found: Sequence[Var]) -> str:
    return "".join(f"::add-mask::{escape_command_data(v.value)}\n" for v in found if v.secret)


def github_env_block(found: Sequence[Var], new_delimiter: Callable[[], str] | None = None) -> str:
    """``NAME<<DELIM`` blocks for ``$GITHUB_ENV``; each delimiter occurs in no value."""
    make = new_delimiter or (lambda: f"ghadelimiter_{secrets.token_hex(16)}")
    out = []
    for v in found:
        delimiter = make()
        while delimiter in v.value or delimiter in v.name:
            delimiter = make()
        out.append(f"{v.name}<<{delimiter}\n{v.value}\n{delimiter}\n")
    return "".join(out)


def github(found: Sequence[Var], environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(stdout text, path of $GITHUB_ENV); the caller prints, then appends ``github_env_block``."""
    check_maskable(found)
    path = environ.get("GITHUB_ENV")
    if not path:
        raise UsageError(
            "--format github: the CI variable GITHUB_ENV is not set (run this in a GitHub Actions step)"
        )
    return github_masks(found), path


def append(path: str, text: str) -> None:
    """Append ``text`` in one write (the runner reads the file after the step)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
