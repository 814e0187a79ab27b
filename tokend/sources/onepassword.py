"""``source = "1password"``: ``op read op://VAULT/ITEM/FIELD`` through the 1Password CLI.

The ``op`` process runs in a session of its own with no stdin and is killed
with its whole group when the fetch's timeout passes. Its environment is the
daemon's, so ``OP_SERVICE_ACCOUNT_TOKEN`` (CI, servers) reaches it that way
(or from the variable ``token_env`` names) and never through argv.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tokend.core.credential import Credential
from tokend.core.errors import REDACTOR, LoginRequired, SourceError, SourceUnavailable
from tokend.sources import secretvalue
from tokend.sources.base import BaseSource, FetchRequest, Option
from tokend.sources.children import Children

MAX_OUTPUT = 1 << 20
TOKEN_VAR = "OP_SERVICE_ACCOUNT_TOKEN"
_REFERENCE = re.compile(r"^op://[^/]+/[^/]+(/[^/]+)?/[^/]+$")
_NOT_FOUND = ("isn't an item", "isn't a vault", "isn't a field", "not found", "no item", "could not find")
_SIGNED_OUT = (
    "not currently signed in",
    "not signed in",
    "session expired",
    "authorization prompt dismissed",
)
_DENIED = ("forbidden", "not authorized", "permission", "access denied", "unauthorized")


class OnePasswordSource(BaseSource):
    """A field read by ``op read``; re-read every ``ttl``."""

    name = "1password"
    options: ClassVar[dict[str, Option]] = {
        "reference": Option("str", required=True, help="secret reference, op://VAULT/ITEM/FIELD"),
        "account": Option("str", help="1Password account (op --account) when several are signed in"),
        "token_env": Option(
            "str", help=f"environment variable holding a service-account token (default: {TOKEN_VAR})"
        ),
        "op_path": Option("str", default="op", help="the op executable (name on PATH or a path)"),
        "json_key": secretvalue.JSON_KEY_OPTION,
        "ttl": secretvalue.TTL_OPTION,
    }

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        super().__init__(profile, options, clock=clock)
        self._children = Children()

    @property
    def what(self) -> str:
        return f"1Password item {self.settings['reference']}"

    def close(self) -> None:
        """Kill ``op`` processes still running (daemon shutdown)."""
        self._children.close()

    def fetch(self, request: FetchRequest) -> Credential:
        ref = str(self.settings["reference"])
        if not _REFERENCE.match(ref):
            raise SourceError(
                f"reference {ref!r} is not a secret reference op://VAULT/ITEM[/SECTION]/FIELD",
                profile=self.profile,
                retryable=False,
            )
        op = shutil.which(os.path.expanduser(self.settings["op_path"]))
        if op is None:
            raise SourceUnavailable(
                f"the 1Password CLI ({self.settings['op_path']}) is not installed or not on PATH",
                profile=self.profile,
            )
        argv = [op, "read", "--no-newline"]
        if self.settings["account"]:
            argv += ["--account", self.settings["account"]]
        argv += ["--", ref]
        out = self._run(argv, self._environ(), request.timeout)
        try:
            return secretvalue.static(
                out.decode("utf-8"),
                json_key=self.settings["json_key"],
                now=self.clock(),
                ttl=self.settings["ttl"],
                source=self.name,
                what=self.what,
            )
        except UnicodeDecodeError:
            raise SourceError(
                f"{self.what} is not UTF-8 text", profile=self.profile, retryable=False
            ) from None
        except SourceError as e:
            e.profile = self.profile
            raise

    def _environ(self) -> dict[str, str]:
        env = dict(os.environ)
        var = self.settings["token_env"]
        if var:
            token = os.environ.get(var)
            if not token:
                raise SourceUnavailable(
                    f"environment variable {var} (token_env) is not set", profile=self.profile
                )
            env[TOKEN_VAR] = token
        if env.get(TOKEN_VAR):
            REDACTOR.add([env[TOKEN_VAR]])
        return env

    def _run(self, argv: list[str], env: dict[str, str], timeout: float) -> bytes:
        try:
            # stdin is /dev/null: op must never prompt
            status, out, err = self._children.run(
                argv, timeout=timeout, what="op read", profile=self.profile, env=env
            )
        except OSError as e:
            raise SourceError(f"cannot run {argv[0]}: {e.strerror}", profile=self.profile) from None
        if status != 0:
            raise self._failure(status, err)
        if len(out) > MAX_OUTPUT:
            raise SourceError(
                f"{self.what}: larger than {MAX_OUTPUT} bytes", profile=self.profile, retryable=False
            )
        return out

    def _failure(self, status: int, err: bytes) -> Exception:
        lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
        # "[ERROR] 2024/01/02 03:04:05 could not read secret ...": keep the message only.
        detail = (
            re.sub(r"^\[ERROR\]\s+\S+\s+\S+\s+", "", lines[-1])[:300] if lines else f"exit status {status}"
        )
        low = detail.lower()
        if any(s in low for s in _SIGNED_OUT):
            return LoginRequired(
                f"the 1Password CLI is not signed in ({detail}); run: op signin, or give the daemon "
                f"{TOKEN_VAR}",
                profile=self.profile,
            )
        if any(s in low for s in _NOT_FOUND):
            return SourceError(f"{self.what} not found: {detail}", profile=self.profile, retryable=False)
        if any(s in low for s in _DENIED):
            return SourceError(
                f"access denied reading {self.what}: {detail}", profile=self.profile, retryable=False
            )
        return SourceError(f"op read failed for {self.what}: {detail}", profile=self.profile)
