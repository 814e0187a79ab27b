"""CI secret injection (``tokend exec``, ``tokend env``): which variable gets which value.

A spec is ``VAR=PROFILE`` (the credential's single value: token, secret or
password), ``VAR=PROFILE:FIELD`` (one field, e.g. ``AccessKeyId``,
``username``, ``expires_at``) or a bare ``PROFILE`` (the variables
``--format env`` prints: ``AWS_ACCESS_KEY_ID``… for AWS credentials,
``TOKEND_TOKEN`` for a bearer token, …). Credentials are fetched in this
process through the shared local cache, as ``tokend get --no-daemon`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tokend import formats
from tokend.core.credential import Credential
from tokend.core.errors import UsageError

_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROFILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


@dataclass(frozen=True)
class Spec:
    var: str | None  # None: the standard variables of the credential's kind
    profile: str
    field: str | None = None


@dataclass(frozen=True)
class Var:
    name: str
    value: str
    secret: bool  # masked / checked; an expiry time is not


def parse_spec(text: str) -> Spec:
    var, eq, rest = text.partition("=")
    if not eq:
        var, rest = "", text
    elif not _VAR.fullmatch(var):
        raise UsageError(f"{text!r}: {var!r} is not an environment variable name")
    profile, colon, field = rest.partition(":")
    if not _PROFILE.fullmatch(profile):
        raise UsageError(f"{text!r}: expected VAR=PROFILE, VAR=PROFILE:FIELD or PROFILE")
    if colon and (not field or not eq):
        raise UsageError(f"{text!r}: a field needs a variable: VAR=PROFILE:FIELD")
    return Spec(var or None, profile, field or None)


def fetch(profiles: Iterable[str], timeout: float | None = None) -> dict[str, Credential]:
    """One credential per profile, fetched concurrently in this process (shared local cache)."""
    import asyncio

    from tokend.core.daemonless import local_broker

    names = list(dict.fromkeys(profiles))
    with local_broker(timeout) as broker:
        for name in names:
            broker.profile(name)  # unknown profile: exit 2 before anything is fetched

        async def one(name: str) -> Credential:
            result = broker.request(name, timeout=timeout)
            return result if isinstance(result, Credential) else await result

        async def every() -> list[Credential]:
            return list(await asyncio.gather(*(one(name) for name in names)))  # fetches side by side

        return dict(zip(names, asyncio.run(every()), strict=True))


def variables(specs: Sequence[Spec], creds: dict[str, Credential]) -> list[Var]:
    """The variables ``specs`` ask for, in order; UsageError on a missing field or a clash."""
    out: dict[str, Var] = {}
    for spec in specs:
        cred = creds[spec.profile]
        for var in _expand(spec, cred):
            if var.name in out and out[var.name].value != var.value:
                raise UsageError(
                    f"{var.name} is set by two profiles; name it: {var.name}=PROFILE", profile=spec.profile
                )
            out[var.name] = var
    return list(out.values())


def _expand(spec: Spec, cred: Credential) -> list[Var]:
    if spec.var is None:
        names = formats.ENV_NAMES[cred.kind]
        found = [Var(var, cred.fields[key], True) for key, var in names.items() if cred.fields.get(key)]
        if cred.kind == "aws" and cred.expires_at is not None:
            found.append(Var("AWS_CREDENTIAL_EXPIRATION", cred.expires_iso() or "", False))
        return found
    if spec.field is None:
        if cred.primary is None:
            raise UsageError(
                f"{spec.var}={spec.profile}: {cred.kind} credentials have several values; pick one "
                f"({spec.var}={spec.profile}:FIELD, fields: {', '.join(cred.fields)}) or give the bare "
                f"profile for the usual variables",
                profile=spec.profile,
            )
        return [Var(spec.var, cred.primary, True)]
    if spec.field == "expires_at":
        return [Var(spec.var, cred.expires_iso() or "", False)]
    value = cred.fields.get(spec.field)
    if spec.field == "token" and value is None:
        value = cred.primary
    if not value:
        raise UsageError(
            f"{spec.var}={spec.profile}:{spec.field}: no such field "
            f"(fields: {', '.join([*cred.fields, 'expires_at'])})",
            profile=spec.profile,
        )
    return [Var(spec.var, value, True)]


def secrets(found: Iterable[Var]) -> list[str]:
    """Values to mask: every secret value, and each line of a multi-line one."""
    values: set[str] = set()
    for var in found:
        if var.secret and var.value:
            values.add(var.value)
            values.update(line for line in var.value.splitlines() if len(line.strip()) >= 4)
    return sorted(values, key=lambda v: (-len(v), v))

