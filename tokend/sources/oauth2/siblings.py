"""The profiles of one identity, and what one sign-in asks for on their behalf.

Profiles of one identity (provider and client) share one refresh token, and
each refreshes it for its own ``resource`` (RFC 8707 §2.2 lets a refresh
request name any resource the grant covers), ``audience`` and scopes.
Providers refuse a resource the person did not consent to, so ``tokend
login`` asks for all of them at once: one sign-in, then every profile is
served. The same list names the keychain entries an older tokend kept per
profile (store.py moves the first one found to the identity's entry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tokend.core.errors import TokendError
from tokend.sources.base import owner
from tokend.sources.oauth2.store import identity_of

if TYPE_CHECKING:
    from tokend.core.config import Profile

#: Grants that use the identity's refresh token.
REFRESHING = ("device_code", "authorization_code", "refresh_token")


def _profiles(given: Mapping[str, Profile] | None) -> Mapping[str, Profile] | None:
    """``given`` (the caller's loaded config), else the config file read now; None when it cannot be read.

    Only ``tokend login`` has the loaded config to hand (``LoginContext.profiles``).
    A fetch cannot: the broker builds a source from its own profile alone
    (``build_source(profile, clock)``, the same for every source), so the
    fetch's one use, a missing refresh token, reads the file here.
    """
    if given is not None:
        return given
    from tokend.core import config

    try:
        return config.load().profiles
    except TokendError:
        return None


def siblings(
    profile: str, identity: str, profiles: Mapping[str, Profile] | None = None
) -> list[tuple[str, Mapping[str, Any]]]:
    """The other profiles (name, options) whose refresh token is ``identity``'s, by name."""
    found = _profiles(profiles)
    if found is None:
        return []
    return [
        (name, found[name].options)
        for name in sorted(found)
        if name != profile
        and found[name].source == "oauth2"
        and found[name].options.get("grant", "client_credentials") in REFRESHING
        and identity_of(found[name].options) == identity
    ]


def legacy_names(profile: str, identity: str) -> list[str]:
    """The per-profile keychain entries an older tokend may have left for ``identity``: the
    profile's own first, then its siblings'."""
    names = [owner(profile)]
    for name, _ in siblings(profile, identity):
        if owner(name) not in names:
            names.append(owner(name))
    return names


def _add(values: list[str], value: Any) -> None:
    if value and value not in values:
        values.append(value)


def login_target(
    profile: str, identity: str, own: Mapping[str, Any], profiles: Mapping[str, Profile] | None = None
) -> dict[str, Any]:
    """``own`` (the signing-in profile's scope/resource/audience) widened to its identity's profiles.

    Several resources or audiences are each sent (the parameter repeated, as
    RFC 8707 §2 and RFC 8693 §2.1 allow); one is sent alone.
    """
    scopes = str(own.get("scope") or "").split()
    resources: list[str] = []
    audiences: list[str] = []
    _add(resources, own.get("resource"))
    _add(audiences, own.get("audience"))
    for _, options in siblings(profile, identity, profiles):
        scopes += [s for s in options.get("scopes") or () if s not in scopes]
        _add(resources, options.get("resource"))
        _add(audiences, options.get("audience"))
    target = dict(own)
    target["scope"] = " ".join(scopes) or None
    target["resource"] = resources[0] if len(resources) == 1 else (resources or None)
    target["audience"] = audiences[0] if len(audiences) == 1 else (audiences or None)
    return target
