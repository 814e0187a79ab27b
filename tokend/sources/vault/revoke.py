"""Ending a profile's Vault lease and token on purpose: ``tokend logout``, ``revoke_on_stop``.

By default tokend revokes nothing when its daemon stops or restarts: a
restart must not kill the database login a CI job is using, and the lease
ends by itself at its TTL. On request it revokes the lease it holds
(``PUT sys/leases/revoke``, the token's policy must allow ``update`` on it)
and the token it logged in for (``auth/token/revoke-self``, which takes that
token's remaining leases along). A token the user supplied (``auth =
"token"``) is never revoked: it is theirs, and other programs may use it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tokend.core.errors import REDACTOR, SourceError, TokendError
from tokend.sources.vault.http import VaultClient, VaultHttpError

if TYPE_CHECKING:
    from tokend.sources.vault import Lease
    from tokend.sources.vault.auth import Token

log = logging.getLogger(__name__)


def revoke_held(
    client: VaultClient, profile: str, lease: Lease | None, token: Token | None, logged_in: bool
) -> list[str]:
    """Revoke ``lease`` and, when tokend ``logged_in`` for it, ``token``; what was revoked.

    Raises SourceError naming what could not be revoked (and what was).
    """
    done: list[str] = []
    failed: list[str] = []
    if token is None:
        # No token held: nothing can be revoked with it (the lease dies with its token anyway).
        return done
    own_lease = lease is not None and logged_in and lease.generation == token.generation
    if lease is not None:
        try:
            client.call("PUT", "sys/leases/revoke", token=token.value, body={"lease_id": lease.id})
            done.append(f"lease {lease.id}")
        except VaultHttpError as e:
            if not own_lease:  # revoking the token below would not take it along
                hint = " (the token's policy must allow update on sys/leases/revoke)" if e.denied else ""
                failed.append(f"lease {lease.id}: {e.errors or f'HTTP {e.status}'}{hint}")
        except TokendError as e:
            failed.append(f"lease {lease.id}: {e.message}")
    if logged_in:
        try:
            client.call("POST", "auth/token/revoke-self", token=token.value)
            with_it = f" (and lease {lease.id} with it)" if own_lease and not done and lease else ""
            done.append("the token tokend logged in for" + with_it)
            REDACTOR.discard([token.value])
        except VaultHttpError as e:
            failed.append(f"the token tokend logged in for: {e.errors or f'HTTP {e.status}'}")
        except TokendError as e:
            failed.append(f"the token tokend logged in for: {e.message}")
    for what in done:
        log.info("%s: revoked %s", profile, what)
    if failed:
        said = f"revoked {', '.join(done)}; " if done else ""
        raise SourceError(f"{said}not revoked: {'; '.join(failed)}", profile=profile, retryable=False)
    return done
