"""What one sign-in asks for: the scopes and resources of every profile of its identity.

Profiles of one identity (provider and client) share one refresh token, and
each refreshes it for its own ``resource`` (RFC 8707 §2.2 lets a refresh
request name any resource the grant covers) and scopes. Providers refuse a
resource the person did not consent to, so ``tokend login`` asks for all of
them at once: one sign-in, then every profile is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokend.core.errors import TokendError
from tokend.sources.oauth2.store import identity_of

#: Grants that use the identity's refresh token.
REFRESHING = ("device_code", "authorization_code", "refresh_token")


def login_target(profile: str, identity: str, own: Mapping[str, Any]) -> dict[str, Any]:
    """``own`` (the signing-in profile's scope/resource/audience) widened to its identity's profiles."""
    from tokend.core import config

    try:
        profiles = config.load().profiles
    except TokendError:
        return dict(own)  # the profile was loaded a moment ago: sign in for it alone
    scopes = str(own.get("scope") or "").split()
    resources = [own["resource"]] if own.get("resource") else []
    for name in sorted(profiles):
        options = profiles[name].options
        if (
            name == profile
            or profiles[name].source != "oauth2"
            or options.get("grant", "client_credentials") not in REFRESHING
            or identity_of(options) != identity
        ):
            continue
        scopes += [s for s in options.get("scopes") or () if s not in scopes]
        resource = options.get("resource")
        if resource and resource not in resources:
            resources.append(resource)
    target = dict(own)
    target["scope"] = " ".join(scopes) or None
    target["resource"] = resources[0] if len(resources) == 1 else (resources or None)
    return target
