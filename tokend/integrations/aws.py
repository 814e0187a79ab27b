"""``tokend integrate aws PROFILE``: a ``credential_process`` line in the AWS config.

Writes ``[profile PROFILE]`` (``[profile tokend-PROFILE]`` when ``PROFILE`` is
already an AWS profile with credentials of its own, such as the SSO profile
tokend reads) in ``$AWS_CONFIG_FILE`` or ``~/.aws/config``, editing only that
section's ``credential_process`` line: comments, order and every other
section stay as they were.
"""

from __future__ import annotations

import os
import re
import shlex

from tokend.core import atomicfile, config
from tokend.core.errors import UsageError

_SECTION = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=")

#: Keys that give an AWS profile credentials of its own (botocore's chain).
_CREDENTIAL_KEYS = frozenset(
    {
        "aws_access_key_id",
        "role_arn",
        "credential_source",
        "web_identity_token_file",
        "sso_session",
        "sso_start_url",
        "sso_account_id",
        "login_session",
    }
)


def config_path() -> str:
    return os.path.expanduser(os.environ.get("AWS_CONFIG_FILE") or os.path.join("~", ".aws", "config"))


def _header(name: str) -> str:
    return "default" if name == "default" else f"profile {name}"


def _sections(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Section header -> (index of the header line, index after the section's last line)."""
    spans: dict[str, tuple[int, int]] = {}
    current: str | None = None
    start = 0
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m:
            if current is not None:
                spans.setdefault(current, (start, i))
            current, start = " ".join(m.group(1).split()), i
    if current is not None:
        spans.setdefault(current, (start, len(lines)))
    return spans


def _keys(lines: list[str], span: tuple[int, int]) -> dict[str, int]:
    keys: dict[str, int] = {}
    for i in range(span[0] + 1, span[1]):
        m = _KEY.match(lines[i])
        if m and not lines[i][:1].isspace():
            keys[m.group(1)] = i
    return keys


def _is_ours(line: str, profile: str) -> bool:
    value = line.split("=", 1)[1]
    try:
        argv = shlex.split(value)
    except ValueError:
        return False
    return len(argv) > 1 and argv[0].rsplit("/", 1)[-1] == "tokend-print" and argv[1] == profile


def _target(lines: list[str], profile: str) -> str:
    """The AWS profile to write: PROFILE, unless it already gets credentials some other way."""
    spans = _sections(lines)
    span = spans.get(_header(profile))
    if span is None:
        return profile
    keys = _keys(lines, span)
    own = _CREDENTIAL_KEYS & set(keys)
    process = keys.get("credential_process")
    if own or (process is not None and not _is_ours(lines[process], profile)):
        return f"tokend-{profile}"
    return profile


def _check_profile(profile: str) -> str | None:
    prof = config.load().profile(profile)
    if prof.source == "aws" and prof.options.get("token", "credentials") != "credentials":
        raise UsageError(
            "credential_process needs AWS credentials; "
            f'this profile serves token = "{prof.options["token"]}"',
            profile=profile,
        )
    if prof.source != "aws":
        raise UsageError(
            f"credential_process needs AWS credentials; source {prof.source!r} gives none", profile=profile
        )
    region = prof.options.get("region")
    return str(region) if region else None


def apply(profile: str, helper: str, *, dry_run: bool) -> str:
    region = _check_profile(profile)
    path = config_path()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    target = _target(lines, profile)
    entry = f"credential_process = {shlex.quote(helper)} {shlex.quote(profile)} --format aws-process\n"
    span = _sections(lines).get(_header(target))
    if span is None:
        block = ["\n"] if lines and lines[-1].strip() else []
        block += [f"[{_header(target)}]\n", entry]
        if region:
            block.append(f"region = {region}\n")
        lines += block
    else:
        keys = _keys(lines, span)
        if "credential_process" in keys:
            lines[keys["credential_process"]] = entry
        else:
            end = span[1]
            while end > span[0] + 1 and not lines[end - 1].strip():
                end -= 1
            lines.insert(end, entry)
    new = "".join(lines)
    use = f"AWS_PROFILE={target} aws sts get-caller-identity"
    if dry_run:
        return f"# {path}: section [{_header(target)}] would get\n{entry.rstrip()}\n# then: {use}"
    if new == text:
        return f"{path}: [{_header(target)}] already runs tokend-print {profile}; try: {use}"
    _write(path, new)
    return f"{path}: [{_header(target)}] now runs tokend-print {profile}; try: {use}"


def _write(path: str, text: str) -> None:
    atomicfile.write_text(path, text, suffix=".tmp")  # a symlinked config (dotfiles) stays a symlink
