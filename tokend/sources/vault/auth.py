"""The Vault token a profile reads with: where it comes from, renewal, logging in again.

``auth = "token"`` takes a token from a reference (``env:VAR``, ``file:PATH``,
``keyring:[SERVICE/]USER``; default ``VAULT_TOKEN``, then ``~/.vault-token``
as the vault CLI leaves it). ``approle``, ``jwt`` and ``kubernetes`` log in
(``auth/MOUNT/login``) with a role and credentials read from such references;
``jwt`` with ``oidc = "github"`` or ``"gitlab:VAR"`` logs in with the CI job's
own ID token (tokend/ci/oidc.py), asked for at each login.
A token is renewed (``auth/token/renew-self``) once two thirds of its TTL
have passed, however short that TTL; when it cannot be renewed (refused, or its max TTL leaves too
little) a login method logs in again, which starts a new *generation*: leases
of the old token die with it, so dynamic secrets are read again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tokend.ci import oidc
from tokend.core.errors import REDACTOR, ConfigError, LoginRequired, SourceError, SourceUnavailable
from tokend.sources.refs import check_ref, read_ref
from tokend.sources.vault.http import VaultClient, VaultHttpError

log = logging.getLogger(__name__)

METHODS = ("token", "approle", "jwt", "kubernetes")
K8S_TOKEN = "file:/var/run/secrets/kubernetes.io/serviceaccount/token"
RENEW_FRACTION = 2 / 3
#: A token with less than this much life left (a quarter of its TTL if that is less) is
#: not used: log in again (or fail) first.
EXPIRY_MARGIN = 30.0


# -- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    value: str
    issued: float  # when its current TTL started (source clock)
    ttl: float  # seconds; 0: does not expire
    renewable: bool
    increment: float  # the TTL to ask for on renewal (its TTL when obtained)
    generation: int  # bumped by every login: leases of an older generation die with their token

    @property
    def expires_at(self) -> float | None:
        return None if self.ttl <= 0 else self.issued + self.ttl

    @property
    def margin(self) -> float:
        """Life a token must have left to be used: 30 s, less for short TTLs (the renewal comes first)."""
        return min(EXPIRY_MARGIN, self.ttl / 4)

    @property
    def renew_at(self) -> float | None:
        """When to renew it (None: it needs no renewal, or cannot have one)."""
        if self.ttl <= 0 or not self.renewable:
            return None
        return self.issued + self.ttl * RENEW_FRACTION


class Authenticator:
    """Holds one profile's Vault token in memory and keeps it usable."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        profile: str,
        clock: Callable[[], float],
        environ: Mapping[str, str],
    ) -> None:
        self.method = str(settings["auth"])
        self.mount = str(settings["auth_mount"] or self.method).strip("/")
        self.settings = settings
        self.profile = profile
        self.clock = clock
        self.environ = environ
        self.token: Token | None = None
        self._generation = 0

    @staticmethod
    def check(settings: Mapping[str, Any], profile: str) -> None:
        """ConfigError unless the auth settings make sense (``VaultSource.validate``)."""
        s, p, method = settings, profile, str(settings["auth"])
        check_ref(s["token"], "token", p)
        check_ref(s["secret_id"], "secret_id", p)
        check_ref(s["jwt"], "jwt", p)
        oidc.check(s, p)
        if s.get("oidc"):
            if method != "jwt":
                raise ConfigError(f'profiles.{p}.oidc: only with auth = "jwt" (it logs in with a JWT)')
            if s["jwt"]:
                raise ConfigError(f"profiles.{p}.jwt: not with oidc (the CI job's ID token is the JWT)")
            if s["oidc"] == "github" and not s.get("oidc_audience"):
                raise ConfigError(
                    f'profiles.{p}.oidc_audience: required with oidc = "github": the audience the '
                    "jwt role's bound_audiences expects"
                )
        need = {"approle": ("role_id",), "jwt": () if s.get("oidc") else ("jwt",), "kubernetes": ("role",)}
        for key in need.get(method, ()):
            if not s[key]:
                raise ConfigError(f'profiles.{p}.{key}: required with auth = "{method}"')

    @property
    def logs_in(self) -> bool:
        return self.method != "token"

    def current(self, client: VaultClient) -> Token:
        """A token with life left: the one held, renewed when due, or a new one."""
        tok, now = self.token, self.clock()
        if tok is None:
            return self.obtain(client)
        expires = tok.expires_at
        if expires is not None and expires - now <= tok.margin:
            if tok.renewable and now < expires - 1:
                # Late for its renewal (a busy machine, a sleeping laptop) but alive: renewing
                # keeps its leases, where a new login would let them die with it.
                renewed = self._renew(client, tok)
                if renewed is not tok:
                    return renewed
            log.info("%s: the Vault token has expired; %s", self.profile, self._again)
            return self.obtain(client)
        due = tok.renew_at
        if due is not None and now >= due:
            return self._renew(client, tok)
        if (
            expires is not None
            and not tok.renewable
            and self.logs_in
            and now >= tok.issued + tok.ttl * RENEW_FRACTION
        ):
            return self.obtain(client)  # not renewable: log in again ahead of its end
        return tok

    @property
    def _again(self) -> str:
        return "logging in again" if self.logs_in else "reading the token again"

    def after_denied(self, client: VaultClient) -> Token | None:
        """After a 403: a new token worth retrying with, or None (the denial is about the path)."""
        old = self.token
        try:
            fresh = self.obtain(client)
        except (SourceError, SourceUnavailable):
            return None
        if old is not None and fresh.value == old.value:
            return None
        return fresh

    def obtain(self, client: VaultClient) -> Token:
        """Log in (or read the token and look it up): a new generation unless it is the same token."""
        self._generation += 1
        now = self.clock()
        if self.method == "token":
            tok = self._lookup(client, self._static_token(), now)
        else:
            tok = self._login(client, now)
        old = self.token
        if old is not None and old.value == tok.value:
            # The same token read again: its leases are still its own.
            self._generation -= 1
            tok = replace(tok, generation=old.generation)
        self.token = tok
        if old is not None and old.value != tok.value:
            REDACTOR.discard([old.value])  # one token per login: the set must not grow for ever
        return tok

    # -- internals -----------------------------------------------------------------------------

    def _static_token(self) -> str:
        ref = self.settings["token"]
        if ref:
            return read_ref(ref, "token", environ=self.environ)
        for var in ("VAULT_TOKEN", "BAO_TOKEN"):
            if self.environ.get(var, "").strip():
                return read_ref(f"env:{var}", "token", environ=self.environ)
        home_file = os.path.join(os.path.expanduser("~"), ".vault-token")
        try:
            return read_ref(f"file:{home_file}", "token", environ=self.environ)
        except SourceUnavailable:
            raise SourceUnavailable(
                "no Vault token: set token (env:VAR, file:PATH or keyring:USER), VAULT_TOKEN, "
                "or run vault login (~/.vault-token)"
            ) from None

    def _lookup(self, client: VaultClient, value: str, now: float) -> Token:
        try:
            doc = client.call("GET", "auth/token/lookup-self", token=value)
        except VaultHttpError as e:
            if e.status in (400, 401, 403):
                raise LoginRequired(
                    "the Vault token is not valid (expired or revoked); get a new one (vault login) "
                    "where the token option points"
                ) from None
            raise e.to_tokend("looking up the Vault token") from None
        data = doc.get("data") or {}
        ttl = float(data.get("ttl") or 0)
        return Token(
            value=value,
            issued=now,
            ttl=ttl,
            renewable=bool(data.get("renewable")),
            increment=float(data.get("creation_ttl") or ttl),
            generation=self._generation,
        )

    def _login(self, client: VaultClient, now: float) -> Token:
        s, env = self.settings, self.environ
        body: dict[str, str] = {}
        if self.method == "approle":
            body["role_id"] = read_ref(s["role_id"], "role_id", environ=env, literal_ok=True)
            if s["secret_id"]:
                body["secret_id"] = read_ref(s["secret_id"], "secret_id", environ=env)
        elif s.get("oidc"):
            left = max(client.deadline - time.monotonic(), 0.1)
            audience = str(s.get("oidc_audience") or "")
            body["jwt"] = oidc.subject_token(
                str(s["oidc"]), audience, timeout=left / 2, profile=self.profile, environ=env
            )
            if s["role"]:
                body["role"] = s["role"]
        else:
            ref = s["jwt"] or (K8S_TOKEN if self.method == "kubernetes" else "")
            body["jwt"] = read_ref(str(ref), "jwt", environ=env)
            if s["role"]:
                body["role"] = s["role"]
        try:
            doc = client.call("POST", f"auth/{self.mount}/login", body=body)
        except VaultHttpError as e:
            err = e.to_tokend(f"logging in with {self.method} at auth/{self.mount}")
            if e.refused:
                err = SourceError(
                    f"Vault refused the {self.method} login at auth/{self.mount}: "
                    f"{e.errors or f'HTTP {e.status}'}" + self._oidc_hint,
                    retryable=False,
                )
            raise err from None
        auth = doc.get("auth") or {}
        value = auth.get("client_token")
        if not isinstance(value, str) or not value:
            raise SourceError(f"the {self.method} login at auth/{self.mount} answered without a token")
        REDACTOR.add([value])
        ttl = float(auth.get("lease_duration") or 0)
        log.info("%s: logged in to Vault with %s (token TTL %ds)", self.profile, self.method, ttl)
        return Token(value, now, ttl, bool(auth.get("renewable")), ttl, self._generation)

    @property
    def _oidc_hint(self) -> str:
        """What the CI ID token was asked for, so a refused login says which setting to compare."""
        spec = self.settings.get("oidc")
        if not spec:
            return ""
        if spec == "github":
            audience = self.settings.get("oidc_audience")
            return f" (the GitHub ID token was asked for audience {audience!r}: oidc_audience)"
        return f" (the ID token of {spec}: its aud is set under id_tokens: in .gitlab-ci.yml)"

    def _renew(self, client: VaultClient, tok: Token) -> Token:
        now = self.clock()
        try:
            doc = client.call(
                "POST", "auth/token/renew-self", token=tok.value, body={"increment": f"{int(tok.increment)}s"}
            )
        except VaultHttpError as e:
            if not e.refused:
                raise e.to_tokend("renewing the Vault token") from None
            log.info("%s: Vault refused to renew the token (%s); %s", self.profile, e.errors, self._again)
            return self.obtain(client) if self.logs_in else tok
        auth = doc.get("auth") or {}
        ttl = float(auth.get("lease_duration") or 0)
        renewed = Token(tok.value, now, ttl, bool(auth.get("renewable")), tok.increment, tok.generation)
        if self.logs_in and 0 < ttl < tok.increment / 3:
            # Its max TTL is near: a fresh login now, not a dead token later.
            log.info("%s: the Vault token reached its max TTL; logging in again", self.profile)
            return self.obtain(client)
        self.token = renewed
        log.info("%s: renewed the Vault token (TTL %ds)", self.profile, ttl)
        return renewed
