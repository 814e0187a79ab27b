"""Renderers from a ``Credential`` to what each consumer reads on stdout."""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Callable, Mapping

from tokend.client import hosts
from tokend.core.credential import Credential
from tokend.core.errors import TokendError, UsageError

#: Environment variables for ``--format env`` (and tokend exec/env) by credential kind.
ENV_NAMES: Mapping[str, Mapping[str, str]] = {
    "aws": {
        "AccessKeyId": "AWS_ACCESS_KEY_ID",
        "SecretAccessKey": "AWS_SECRET_ACCESS_KEY",
        "SessionToken": "AWS_SESSION_TOKEN",
    },
    "basic": {"username": "TOKEND_USERNAME", "password": "TOKEND_PASSWORD"},
    "bearer": {"token": "TOKEND_TOKEN"},
    "secret": {"value": "TOKEND_SECRET"},
}

EXEC_CREDENTIAL_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
)


def _primary(cred: Credential, fmt: str) -> str:
    value = cred.primary
    if value is None:
        raise UsageError(
            f"format {fmt!r} needs a single-value credential; this profile gives "
            f"{cred.kind} credentials (use --format json, env or aws-process)"
        )
    return value


def raw(cred: Credential, ctx: Mapping[str, str]) -> str:
    return _primary(cred, "raw") + "\n"


def header(cred: Credential, ctx: Mapping[str, str]) -> str:
    if cred.kind == "basic":
        pair = f"{cred.fields['username']}:{cred.fields['password']}".encode()
        return f"Authorization: Basic {base64.b64encode(pair).decode()}\n"
    return f"Authorization: Bearer {_primary(cred, 'header')}\n"


def as_json(cred: Credential, ctx: Mapping[str, str]) -> str:
    doc: dict[str, object] = {"kind": cred.kind, **cred.fields}
    if cred.primary is not None:
        doc["token"] = cred.primary
    doc["expires_at"] = cred.expires_iso()
    return json.dumps(doc, sort_keys=True) + "\n"


def env(cred: Credential, ctx: Mapping[str, str]) -> str:
    names = ENV_NAMES[cred.kind]
    lines = [
        f"export {var}={shlex.quote(cred.fields[key])}" for key, var in names.items() if cred.fields.get(key)
    ]
    if cred.kind == "aws" and cred.expires_at is not None:
        lines.append(f"export AWS_CREDENTIAL_EXPIRATION={cred.expires_iso()}")
    return "\n".join(lines) + "\n"


def aws_process(cred: Credential, ctx: Mapping[str, str]) -> str:
    if cred.kind != "aws":
        raise UsageError(f"format 'aws-process' needs AWS credentials; this profile gives {cred.kind}")
    doc = {
        "Version": 1,
        "AccessKeyId": cred.fields["AccessKeyId"],
        "SecretAccessKey": cred.fields["SecretAccessKey"],
    }
    if cred.fields.get("SessionToken"):
        doc["SessionToken"] = cred.fields["SessionToken"]
    if cred.expires_at is not None:
        doc["Expiration"] = cred.expires_iso()
    return json.dumps(doc) + "\n"


def aws_sts(cred: Credential, ctx: Mapping[str, str]) -> str:
    """``{"Credentials": {...}}``, the shape of ``aws sts assume-role``: what Claude Code's
    ``awsCredentialExport`` command must print."""
    if cred.kind != "aws":
        raise UsageError(f"format 'aws-sts' needs AWS credentials; this profile gives {cred.kind}")
    doc = {k: v for k, v in json.loads(aws_process(cred, ctx)).items() if k != "Version"}
    return json.dumps({"Credentials": doc}) + "\n"


def exec_credential(cred: Credential, ctx: Mapping[str, str]) -> str:
    api = "client.authentication.k8s.io/v1beta1"
    info = ctx.get("exec_info")
    if info:
        try:
            api = json.loads(info).get("apiVersion") or api
        except (ValueError, AttributeError):
            raise UsageError("KUBERNETES_EXEC_INFO is not valid JSON") from None
    if api not in EXEC_CREDENTIAL_VERSIONS:
        raise UsageError(f"unsupported ExecCredential apiVersion {api!r}")
    status: dict[str, str] = {"token": _primary(cred, "exec-credential")}
    if cred.expires_at is not None:
        status["expirationTimestamp"] = cred.expires_iso() or ""
    return json.dumps({"apiVersion": api, "kind": "ExecCredential", "status": status}) + "\n"


RENDERERS: Mapping[str, Callable[[Credential, Mapping[str, str]], str]] = {
    "raw": raw,
    "json": as_json,
    "header": header,
    "env": env,
    "aws-process": aws_process,
    "aws-sts": aws_sts,
    "exec-credential": exec_credential,
}


#: Least life a format's consumer needs. botocore refetches credential_process
#: output with less than 15 minutes left (its advisory window) on every call.
FORMAT_MIN_TTL: Mapping[str, float] = {"aws-process": 16 * 60.0, "aws-sts": 16 * 60.0}


def min_ttl(fmt: str, requested: float | None, default: float) -> float | None:
    """The min_ttl to ask the broker for: the caller's, raised to the format's floor."""
    floor = FORMAT_MIN_TTL.get(fmt)
    if floor is None:
        return requested
    return max(default if requested is None else requested, floor)


class NotAPassword(TokendError):
    """The credential cannot be sent as a username and password (wrong kind, or unsafe characters)."""

    code = "not-a-password"


def _login(cred: Credential, ctx: Mapping[str, str]) -> tuple[str, str]:
    """Username and password for ``ctx["host"]``: ``ctx["username"]`` (the ``[hosts]``
    route's) first, else a basic credential's own, else the host's default for tokens."""
    if cred.kind == "basic":
        username, password = ctx.get("username") or cred.fields["username"], cred.fields["password"]
    elif cred.kind in ("bearer", "secret"):
        username = ctx.get("username") or hosts.default_username(ctx.get("host", ""))
        password = cred.primary or ""
    else:
        raise NotAPassword(
            f"gives {cred.kind} credentials, not a token or a password"
            + (' (for ECR set token = "ecr")' if cred.kind == "aws" else "")
        )
    # git's protocol is key=value lines: a newline in a value would add lines of
    # the sender's choosing (another host's password, say). No control character
    # has a place in a username or a token, so none is passed on.
    if not password:
        raise NotAPassword("the credential has no usable password")
    if any(c < " " or c == "\x7f" for c in username + password):
        raise NotAPassword("the credential contains a control character (a newline, tab or NUL): refused")
    return username, password


def git_credential(cred: Credential, ctx: Mapping[str, str]) -> str:
    """git's credential-helper answer: ``username``, ``password``, ``password_expiry_utc`` lines."""
    username, password = _login(cred, ctx)
    lines = [f"username={username}", f"password={password}"]
    if cred.expires_at is not None:
        lines.append(f"password_expiry_utc={int(cred.expires_at)}")
    return "\n".join(lines) + "\n"


def docker_credential(cred: Credential, ctx: Mapping[str, str]) -> str:
    """docker's credential-helper answer for the registry ``ctx["server"]`` (echoed as given)."""
    username, password = _login(cred, ctx)
    return json.dumps({"ServerURL": ctx.get("server", ""), "Username": username, "Secret": password}) + "\n"


#: What the git and docker credential helpers print, rendered by the daemon (tokend/daemon/helpers.py).
#: Not ``--format`` values: they need the ``[hosts]`` route and the host in ``ctx``.
HELPER_RENDERERS: Mapping[str, Callable[[Credential, Mapping[str, str]], str]] = {
    "git-credential": git_credential,
    "docker-credential": docker_credential,
}


def check(fmt: str) -> None:
    if fmt not in RENDERERS:
        raise UsageError(f"unknown format {fmt!r} (expected one of {', '.join(RENDERERS)})")


def render(cred: Credential, fmt: str, ctx: Mapping[str, str] | None = None) -> str:
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        check(fmt)  # raises, naming the formats
        raise AssertionError(fmt)  # pragma: no cover
    return renderer(cred, ctx or {})
