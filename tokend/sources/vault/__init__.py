"""``source = "vault"``: secrets from HashiCorp Vault or OpenBao.

Static secrets: a KV v2 (``mount`` + ``path``, optionally ``version``) or KV v1
(``kv_version = 1``) read, re-read every ``ttl``. Dynamic secrets: any other
``path`` (``aws/creds/ROLE``, ``database/creds/ROLE``, ...) whose answer
carries a lease. The lease is renewed (``sys/leases/renew``) when the broker
refreshes; a new secret is read when the lease ends: renewal refused, its
max TTL reached, the lease not renewable, the token that made it gone, or a
consumer asking for ``--refresh``. Fields map to credential kinds: AWS keys
to ``aws``, username/password to ``basic``, one field (or ``json_key``) to
``secret``.

``tokend logout PROFILE`` revokes the lease and the token tokend logged in
for (``revoke``, tokend/sources/vault/revoke.py); a daemon stop does so only
with ``revoke_on_stop = true``.

Plain requests rather than hvac: about ten endpoints of a stable HTTP API,
each call cut to what is left of the fetch's deadline, namespace and token
headers under our control, and one dependency fewer (requests, which the
google and azure extras bring anyway).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from tokend.ci import oidc
from tokend.core import policy
from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, SourceError, SourceTimeout, SourceUnavailable, TokendError
from tokend.sources import secretvalue
from tokend.sources.base import BaseSource, FetchRequest, Option
from tokend.sources.vault.auth import METHODS, Authenticator, Token
from tokend.sources.vault.http import VaultClient, VaultHttpError
from tokend.sources.vault.kv import mount_mismatch
from tokend.sources.vault.nodes import Nodes, addresses_of
from tokend.sources.vault.revoke import revoke_held

log = logging.getLogger(__name__)

#: A lease with more than this share of its duration left is served as it is
#: (the refresh was for the token's sake); below it, it is renewed.
KEEP_FRACTION = 0.5


@dataclass(frozen=True)
class Lease:
    id: str
    duration: float  # as granted at read time: the increment asked for on renewal
    renewable: bool
    expires_at: float
    generation: int  # the token generation that created it
    token_expires_at: float | None  # when that token ends, as last known: the lease ends with it
    kind: str
    fields: Mapping[str, str]

    @property
    def ends_at(self) -> float:
        """When Vault revokes it: its own end, or its token's, whichever comes first."""
        token_end = self.token_expires_at
        return self.expires_at if token_end is None else min(self.expires_at, token_end)


class VaultSource(BaseSource):
    """KV and dynamic secrets from Vault/OpenBao, with lease and token renewal."""

    name = "vault"
    options: ClassVar[dict[str, Option]] = {
        "address": Option(
            "strs",
            help="Vault address, https://vault.example.com:8200, or a list of a cluster's nodes "
            "(default: VAULT_ADDR)",
        ),
        "namespace": Option("str", help="Vault Enterprise / OpenBao namespace (default: VAULT_NAMESPACE)"),
        "ca_bundle": Option("str", help="CA bundle for Vault's TLS certificate (default: VAULT_CACERT)"),
        "auth": Option("str", default="token", choices=METHODS, help="how tokend gets its Vault token"),
        "auth_mount": Option("str", help="mount path of the auth method (default: its name, e.g. approle)"),
        "token": Option(
            "str", help="auth = token: env:VAR, file:PATH or keyring:USER (default: VAULT_TOKEN)"
        ),
        "role_id": Option("str", help="auth = approle: the role ID (or env:/file:/keyring:)"),
        "secret_id": Option("str", help="auth = approle: env:VAR, file:PATH or keyring:USER"),
        "role": Option("str", help="auth = jwt / kubernetes: the role to log in as"),
        "jwt": Option(
            "str",
            help="auth = jwt / kubernetes: env:VAR or file:PATH (kubernetes: the service-account token)",
        ),
        **oidc.OPTIONS,  # auth = jwt: the CI job's own ID token instead of jwt
        "path": Option("str", required=True, help="secret path (inside mount for KV), e.g. aws/creds/ROLE"),
        "mount": Option("str", help='KV engine mount, e.g. "secret": path is then inside it'),
        "kv_version": Option("int", default=2, help="KV engine version of mount: 1 or 2"),
        "version": Option("int", help="KV v2: a specific version (default: the latest)"),
        "json_key": secretvalue.JSON_KEY_OPTION,
        "kind": secretvalue.KIND_OPTION,
        "ttl": secretvalue.TTL_OPTION,
        "revoke_on_stop": Option(
            "bool",
            default=False,
            help="tokend stop (and SIGTERM) revokes the lease and the token tokend logged in for "
            "(default: a stop or restart revokes nothing; tokend logout PROFILE always revokes)",
        ),
    }

    def __init__(
        self,
        profile: str,
        options: Mapping[str, Any],
        *,
        clock: Callable[[], float],
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        super().__init__(profile, options, clock=clock)
        self.environ = environ
        self.auth = Authenticator(options, profile, clock, environ)
        self._lease: Lease | None = None
        self._lock = threading.Lock()
        self._nodes: Nodes | None = None  # kept across fetches: the node that answered last goes first
        self._revoked = False  # set by revoke(): the broker dropped this instance

    @classmethod
    def validate(cls, profile: str, options: Mapping[str, Any]) -> None:
        where = f"profiles.{profile}"
        if options.get("kv_version", 2) not in (1, 2):
            raise ConfigError(f"{where}.kv_version: expected 1 or 2")
        if options.get("version") is not None and not (
            options.get("mount") and options.get("kv_version") == 2
        ):
            raise ConfigError(f"{where}.version: only KV v2 secrets (mount, kv_version = 2) have versions")
        if options.get("address") is not None:
            addresses_of(options["address"], f"{where}.address")
        Authenticator.check(options, profile)
        if options.get("revoke_on_stop") and options.get("auth") == "token" and options.get("mount"):
            raise ConfigError(
                f"{where}.revoke_on_stop: nothing to revoke: a KV read has no lease "
                'and a token you supply (auth = "token") is never revoked'
            )

    @property
    def api_path(self) -> str:
        path = str(self.settings["path"]).strip("/")
        mount = str(self.settings.get("mount") or "").strip("/")
        if not mount:
            return path
        return f"{mount}/data/{path}" if self.settings["kv_version"] == 2 else f"{mount}/{path}"

    @property
    def what(self) -> str:
        version = self.settings.get("version")
        return f"Vault secret {self.api_path!r}" + (f" (version {version})" if version else "")

    # -- the Source protocol --------------------------------------------------------------------

    def fetch(self, request: FetchRequest) -> Credential:
        deadline = time.monotonic() + request.timeout
        with self._lock:
            if self._revoked:
                # This instance was logged out while the fetch waited: a new login here would
                # leave a lease and a token nobody holds to revoke.
                raise SourceError("logged out (tokend logout) while this fetch waited; ask again")
            try:
                with self._client(deadline, request.timeout) as client:
                    token = self.auth.current(client)
                    try:
                        return self._serve(client, token, request.forced)
                    except VaultHttpError as e:
                        fresh = self.auth.after_denied(client) if e.denied else None
                        if fresh is None:
                            raise
                        self._lease = None  # its token was refused: revoked, and its leases with it
                        return self._serve(client, fresh, request.forced)
            except VaultHttpError as e:
                err = self._explain(e, deadline, request.timeout)
                err.profile = self.profile
                raise err from None
            except TokendError as e:
                if e.profile is None:
                    e.profile = self.profile
                raise

    # -- ending leases on purpose (tokend/sources/vault/revoke.py) -----------------------------------

    supports_revoke = True

    def revokes_on_stop(self) -> bool:
        return bool(self.settings.get("revoke_on_stop"))

    def revoke(self, timeout: float) -> list[str]:
        """Revoke the lease held and the token tokend logged in for; forget both either way."""
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=timeout):
            raise SourceTimeout(f"a fetch still ran after {timeout:g}s; nothing revoked")
        try:
            lease, token = self._lease, self.auth.token
            self._lease, self.auth.token, self._revoked = None, None, True
            if lease is None and not (token is not None and self.auth.logs_in):
                return []
            with self._client(deadline, timeout) as client:
                return revoke_held(client, self.profile, lease, token, self.auth.logs_in)
        finally:
            self._lock.release()

    # -- internals ---------------------------------------------------------------------------------

    def _explain(self, e: VaultHttpError, deadline: float, timeout: float) -> SourceError:
        """The error for a failed read, naming the setting to change when the mount is the cause."""
        mount = str(self.settings.get("mount") or "").strip("/")
        token = self.auth.token
        if mount and token is not None and e.status in (403, 404):
            with self._client(deadline, timeout) as client:
                wrong = mount_mismatch(client, token.value, mount, int(self.settings["kv_version"]))
            if wrong:
                return SourceError(f"{self.what}: {wrong}", retryable=False)
        return self._missing(e) if e.status == 404 else e.to_tokend(f"reading {self.what}")

    def _missing(self, e: VaultHttpError) -> SourceError:
        """The 404 for a read, said clearly: a KV v2 version deleted or destroyed, or nothing there."""
        if "no handler for route" in e.errors:
            where = "mount and path" if self.settings.get("mount") else "path"
            return SourceError(
                f"{self.what}: no secrets engine is mounted there (check {where})", retryable=False
            )
        data = e.doc.get("data") if isinstance(e.doc, dict) else None
        meta = data.get("metadata") if isinstance(data, dict) else None
        if not (isinstance(meta, dict) and self.settings.get("mount") and self.settings["kv_version"] == 2):
            return secretvalue.not_found(self.what)
        version = meta.get("version") or self.settings.get("version")
        mount, path = str(self.settings["mount"]).strip("/"), str(self.settings["path"]).strip("/")
        which = f"version {version}" if self.settings.get("version") else f"its latest version ({version})"
        if meta.get("destroyed"):
            return SourceError(
                f"{self.what}: {which} was destroyed (its data is gone); pin another version",
                retryable=False,
            )
        if meta.get("deletion_time"):
            return SourceError(
                f"{self.what}: {which} was deleted; `bao kv undelete -versions={version} {mount}/{path}` "
                "restores it, or pin another version",
                retryable=False,
            )
        return secretvalue.not_found(self.what)

    def _client(self, deadline: float, timeout: float) -> VaultClient:
        env = self.environ
        address = self.settings["address"] or env.get("VAULT_ADDR") or env.get("BAO_ADDR")
        if not address:
            raise SourceUnavailable("no Vault address: set address in the profile, or VAULT_ADDR")
        addresses = addresses_of(address, f"profiles.{self.profile}.address")
        if self._nodes is None or self._nodes.addresses != addresses:
            self._nodes = Nodes(addresses)
        namespace = self.settings["namespace"] or env.get("VAULT_NAMESPACE") or env.get("BAO_NAMESPACE")
        ca = self.settings["ca_bundle"] or env.get("VAULT_CACERT") or env.get("BAO_CACERT")
        return VaultClient(
            self._nodes,
            namespace=namespace or None,
            verify=os.path.expanduser(ca) if ca else True,
            deadline=deadline,
            timeout=timeout,
        )

    def _serve(self, client: VaultClient, token: Token, forced: bool) -> Credential:
        now = self.clock()
        lease = self._lease
        if lease is not None and not forced:
            if lease.generation == token.generation:
                lease = replace(lease, token_expires_at=token.expires_at)  # its token was renewed
                self._lease = lease
                kept = self._keep_or_renew(client, token, lease, now)
            else:
                kept = self._outliving(lease, token, now)
            if kept is not None:
                return kept
        return self._read(client, token, now)

    def _outliving(self, lease: Lease, token: Token, now: float) -> Credential | None:
        """After a new login: the lease read with the old token while that token still lives.

        Vault revokes a token's leases when the token ends (expiry or revocation), not
        when another token is issued: the secret stays good until then, and a new one
        is read only when its time is nearly up. It is not renewed (no renewal can take
        it past its token's end).
        """
        left = lease.ends_at - now
        if left <= min(30.0, lease.duration / 4):
            log.info(
                "%s: lease %s ends with the token that read it; reading a new secret", self.profile, lease.id
            )
            return None
        return self._leased(lease, token, now)

    def _keep_or_renew(
        self, client: VaultClient, token: Token, lease: Lease, now: float
    ) -> Credential | None:
        """The leased secret again (renewed if due), or None when a new one must be read."""
        if lease.expires_at - now > lease.duration * KEEP_FRACTION:
            return self._leased(lease, token, now)
        if not lease.renewable:
            log.info("%s: lease %s is not renewable; reading a new secret", self.profile, lease.id)
            return None
        increment = int(lease.duration)
        try:
            doc = client.call(
                "PUT",
                "sys/leases/renew",
                token=token.value,
                body={"lease_id": lease.id, "increment": increment},
            )
        except VaultHttpError as e:
            if not e.refused:
                raise
            log.info(
                "%s: Vault refused to renew lease %s (%s); reading a new secret",
                self.profile,
                lease.id,
                e.errors or f"HTTP {e.status}",
            )
            return None
        granted = float(doc.get("lease_duration") or 0)
        if granted < increment - 1:
            log.info("%s: lease %s reached its max TTL; reading a new secret", self.profile, lease.id)
            return None
        lease = replace(lease, expires_at=now + granted, renewable=bool(doc.get("renewable", True)))
        self._lease = lease
        log.info("%s: renewed lease %s for %ds", self.profile, lease.id, granted)
        return self._leased(lease, token, now)

    def _read(self, client: VaultClient, token: Token, now: float) -> Credential:
        params = {"version": str(self.settings["version"])} if self.settings.get("version") else None
        doc = client.call("GET", self.api_path, token=token.value, params=params)
        data = doc.get("data")
        if self.settings.get("mount") and self.settings["kv_version"] == 2:
            data = data.get("data") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not data:
            raise secretvalue.not_found(self.what)
        kind, fields = secretvalue.from_fields(
            data, json_key=self.settings["json_key"], kind=self.settings["kind"], what=self.what
        )
        lease_id, duration = doc.get("lease_id"), float(doc.get("lease_duration") or 0)
        if lease_id and duration > 0:
            lease = Lease(
                str(lease_id),
                duration,
                bool(doc.get("renewable")),
                now + duration,
                token.generation,
                token.expires_at,
                kind,
                fields,
            )
            self._lease = lease
            return self._leased(lease, token, now)
        self._lease = None
        refresh_at = now + self.settings["ttl"]
        if token.renew_at is not None:
            refresh_at = min(refresh_at, max(token.renew_at, now + policy.MIN_REFRESH_DELAY))
        return Credential(kind=kind, fields=fields, refresh_at=refresh_at, issued_at=now, source=self.name)

    def _leased(self, lease: Lease, token: Token, now: float) -> Credential:
        cred = Credential(
            kind=lease.kind,
            fields=lease.fields,
            expires_at=lease.ends_at,  # Vault revokes a token's leases with it
            issued_at=now,
            source=self.name,
            extra={"lease_id": lease.id},
        )
        natural = policy.refresh_due(cred)
        due = token.renew_at
        if due is not None and natural is not None and due < natural:
            # Refresh in time to renew the token too (the broker's refresh drives both).
            cred = replace(cred, refresh_at=max(due, now + policy.MIN_REFRESH_DELAY))
        return cred
