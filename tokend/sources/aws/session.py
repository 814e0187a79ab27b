"""botocore plumbing for the AWS source: bounded sessions, the credential chain, error mapping.

Imported only by the AWS source modules, and it imports botocore only inside
its functions, so merely loading the registry never pulls in the SDK.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tokend.core.errors import LoginRequired, SourceError, SourceTimeout, SourceUnavailable, TokendError
from tokend.sources.children import Children, kill_group

#: Instance metadata (IMDS) bounds: botocore's own defaults (1 s, one attempt)
#: become ceilings, so a laptop without IMDS learns "no credentials" in about
#: two seconds (token PUT + role GET) rather than after configured retries.
IMDS_TIMEOUT_CAP = 1.0
IMDS_ATTEMPTS_CAP = 1

#: Attempts per AWS API call (one retry of a throttled or dropped request).
API_ATTEMPTS = 2
CONNECT_TIMEOUT_CAP = 5.0

@dataclass(frozen=True)
class AwsCreds:
    """One frozen set of AWS credentials and when they stop working (None: long-term keys)."""

    access_key: str
    secret_key: str
    token: str | None
    expires_at: float | None
    method: str = ""

    @classmethod
    def from_sts(cls, c: Mapping[str, Any], method: str) -> AwsCreds:
        """The ``Credentials`` of an STS answer (AssumeRole*, GetSessionToken)."""
        return cls(
            access_key=c["AccessKeyId"],
            secret_key=c["SecretAccessKey"],
            token=c["SessionToken"],
            expires_at=c["Expiration"].timestamp(),
            method=method,
        )

    def fields(self) -> dict[str, str]:
        out = {"AccessKeyId": self.access_key, "SecretAccessKey": self.secret_key}
        if self.token:
            out["SessionToken"] = self.token
        return out

    def signer_credentials(self) -> Any:
        """These credentials as botocore's ``Credentials`` (what its signers take)."""
        from botocore.credentials import Credentials

        return Credentials(self.access_key, self.secret_key, self.token)

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_session_token": self.token,
        }


def client_config(timeout: float, **extra: Any) -> Any:
    """A botocore ``Config`` whose every call, retries included, ends within about ``timeout``."""
    from botocore.config import Config

    per_try = max(timeout / API_ATTEMPTS, 0.5)
    return Config(
        connect_timeout=min(CONNECT_TIMEOUT_CAP, per_try / 2),
        read_timeout=per_try / 2,
        retries={"total_max_attempts": API_ATTEMPTS, "mode": "standard"},
        **extra,
    )


def new_session(aws_profile: str | None, timeout: float, children: Children | None = None) -> Any:
    """A fresh botocore session for ``aws_profile`` (None: botocore's default choice).

    Fresh per fetch on purpose: a long-lived session would hand back its own
    cached credentials until botocore's 15-minute window, so a refresh ahead
    of that would get the old ones again.
    """
    import botocore.session

    _quiet_sdk_logs()
    session = botocore.session.Session(profile=aws_profile)
    # Clients botocore creates itself (SSO portal, STS for role chains, web
    # identity, SSO token refresh) inherit this: every call is bounded.
    session.set_default_client_config(client_config(timeout))
    imds_timeout = _number(session.get_config_variable("metadata_service_timeout"), 1.0)
    imds_attempts = int(_number(session.get_config_variable("metadata_service_num_attempts"), 1))
    session.set_config_variable("metadata_service_timeout", min(imds_timeout, IMDS_TIMEOUT_CAP))
    session.set_config_variable(
        "metadata_service_num_attempts", max(1, min(imds_attempts, IMDS_ATTEMPTS_CAP))
    )
    _bound_credential_process(session, timeout, children or Children())
    return session


def profile_name(session: Any) -> str:
    return str(session.get_config_variable("profile") or "default")


def profile_chain(session: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """The AWS profile and those it takes source credentials from (``source_profile``)."""
    profiles = session.full_config.get("profiles", {})
    chain: list[tuple[str, Mapping[str, Any]]] = []
    name: str | None = profile_name(session)
    while name is not None and name not in [n for n, _ in chain]:
        body = profiles.get(name)
        if body is None:
            break
        chain.append((name, body))
        name = body.get("source_profile") if "role_arn" in body else None
    return chain


def resolve(session: Any) -> AwsCreds:
    """The credentials botocore's default chain finds for the session's profile."""
    creds = session.get_credentials()
    if creds is None:
        where = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
        raise SourceUnavailable(
            f"no AWS credentials for aws profile {profile_name(session)!r} (botocore found none in the "
            f"environment, {where}, the shared credentials file, SSO, container or instance metadata)"
        )
    frozen = creds.get_frozen_credentials()
    return AwsCreds(
        access_key=frozen.access_key,
        secret_key=frozen.secret_key,
        token=frozen.token,
        expires_at=expiry_of(creds),
        method=str(getattr(creds, "method", "") or ""),
    )


def expiry_of(creds: Any) -> float | None:
    """When botocore credentials expire (None: they do not).

    botocore keeps the expiry of refreshable credentials private: the AWS CLI's
    own ``configure export-credentials`` reads the same ``_expiry_time``
    attribute (awscli/customizations/configure/exportcreds.py). Should that
    attribute go away, the public ``refresh_needed`` finds the expiry to a second.
    """
    from botocore.credentials import RefreshableCredentials

    if not isinstance(creds, RefreshableCredentials):
        return None
    value = getattr(creds, "_expiry_time", None)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    return bisect_expiry(creds.refresh_needed)


def bisect_expiry(
    refresh_needed: Callable[[float], bool], now: Callable[[], float] | None = None
) -> float | None:
    """The expiry implied by ``refresh_needed(s)`` (True iff less than ``s`` seconds are left)."""
    import time

    clock = now or time.time
    lo, hi = 0.0, 48 * 3600.0
    if not refresh_needed(hi):
        return None  # beyond two days: treat as long-lived
    while hi - lo > 1.0:
        mid = (lo + hi) / 2
        if refresh_needed(mid):
            hi = mid
        else:
            lo = mid
    return clock() + lo


# -- subprocesses: botocore's credential_process provider has no timeout -------


class _BoundedProcess:
    """The slice of ``Popen`` botocore's ProcessProvider uses, with a deadline."""

    def __init__(self, argv: list[str], limit: float, children: Children, **kwargs: Any) -> None:
        self._argv0 = os.path.basename(argv[0]) if argv else "credential_process"
        self._limit = limit
        self._children = children
        self._proc = children.start(argv, **kwargs)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[bytes, bytes]:
        try:
            out, err = self._proc.communicate(input, timeout=self._limit if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            kill_group(self._proc)
            self._proc.wait()
            raise SourceTimeout(
                f"credential_process {self._argv0} did not finish within {self._limit:g}s; killed"
            ) from None
        finally:
            self._children.done(self._proc)
        return out, err


def _bound_credential_process(session: Any, timeout: float, children: Children) -> None:
    from botocore.credentials import ProcessProvider
    from botocore.exceptions import UnknownCredentialError

    def popen(argv: list[str], **kwargs: Any) -> _BoundedProcess:
        return _BoundedProcess(argv, timeout, children, **kwargs)

    resolver = session.get_component("credential_provider")
    bounded = ProcessProvider(profile_name(session), lambda: session.full_config, popen=popen)
    try:
        # remove() drops the first provider of a name: the original, kept before ours.
        resolver.insert_after("custom-process", bounded)
        resolver.remove("custom-process")
    except UnknownCredentialError:  # a botocore without that provider: nothing to bound
        pass


def _quiet_sdk_logs() -> None:
    # botocore logs response bodies (credentials among them) at DEBUG.
    for name in ("botocore", "boto3", "urllib3"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


# -- errors ------------------------------------------------------------------------


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _client_error(e: Any, role: str | None, login: str) -> TokendError:
    err = e.response.get("Error", {})
    code = str(err.get("Code", "")) or "error"
    message = str(err.get("Message", "")) or code
    op = getattr(e, "operation_name", "") or "AWS call"
    if op == "GetRoleCredentials" and code in ("UnauthorizedException", "ForbiddenException"):
        return LoginRequired(f"the AWS SSO session is not valid any more; run: {login}")
    if code in ("AccessDenied", "AccessDeniedException"):
        target = f"assuming role {role}" if role and op.startswith("AssumeRole") else op
        return SourceError(f"access denied {target}: {message}", retryable=False)
    if code in ("ExpiredToken", "ExpiredTokenException") and op != "GetRoleCredentials":
        return SourceError(f"{op}: the source credentials have expired: {message}")
    if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "ValidationError", "InvalidParameterValue"):
        return SourceError(f"{op} failed: {code}: {message}", retryable=False)
    return SourceError(f"{op} failed: {code}: {message}")


@contextlib.contextmanager
def translated(*, profile: str, role: str | None = None) -> Iterator[None]:
    """Turn botocore's exceptions into tokend's (login required, unavailable, failed) for ``profile``."""
    try:
        yield
    except Exception as e:
        err = e if isinstance(e, TokendError) else _translate(e, role, f"tokend login {profile}")
        if err is None:
            raise
        if err.profile is None:
            err.profile = profile
        if err is e:
            raise
        raise err from e


def _translate(e: Exception, role: str | None, login: str) -> TokendError | None:
    from botocore import exceptions as bx

    if isinstance(e, (bx.UnauthorizedSSOTokenError, bx.SSOTokenLoadError, bx.TokenRetrievalError)):
        return LoginRequired(f"the AWS SSO session has expired or was never started; run: {login}")
    if isinstance(e, bx.NoCredentialsError):
        return SourceUnavailable("no AWS credentials found")
    if isinstance(e, bx.ProfileNotFound):
        where = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
        return SourceError(f"{e} (in {where})", retryable=False)
    if isinstance(e, bx.ClientError):
        return _client_error(e, role, login)
    if isinstance(e, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return SourceTimeout(f"AWS endpoint did not answer in time: {e}")
    if isinstance(e, (bx.EndpointConnectionError, bx.ConnectionClosedError)):
        return SourceError(f"cannot reach AWS: {e}")
    if isinstance(
        e, (bx.PartialCredentialsError, bx.InvalidConfigError, bx.NoRegionError, bx.ParamValidationError)
    ):
        return SourceError(str(e), retryable=False)
    if isinstance(e, bx.BotoCoreError):  # CredentialRetrievalError (credential_process) among others
        return SourceError(
            str(e) if isinstance(e, bx.CredentialRetrievalError) else f"{type(e).__name__}: {e}"
        )
    if isinstance(e, json.JSONDecodeError):  # botocore parses credential_process output unguarded
        return SourceError(f"credential_process printed malformed JSON: {e.msg}")
    if isinstance(e, FileNotFoundError):  # a credential_process command that is not installed
        return SourceError(f"cannot run {e.filename or 'a command'}: not found", retryable=False)
    return None
