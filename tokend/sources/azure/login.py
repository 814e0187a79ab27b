"""Laptop sign-in for ``credential = "device-code"`` and ``"browser"`` azure profiles.

``tokend login PROFILE`` runs azure-identity's ``authenticate()`` once: the
``AuthenticationRecord`` (who signed in; no secret) is kept in
``$XDG_CONFIG_HOME/tokend/azure/PROFILE.json`` (0600) and MSAL's refresh token
in a persistent cache (``TokenCachePersistenceOptions``: libsecret / Keychain,
a plain 0600 file only with ``allow_unencrypted_cache = true``). The daemon
then acquires tokens silently from that cache with
``disable_automatic_authentication=True``; when it cannot, the fetch raises
``LoginRequired`` and nobody is prompted.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend.core import atomicfile
from tokend.core.errors import LoginRequired, SourceError
from tokend.sources.azure.credentials import DEVELOPER_CLIENT_ID, network_kwargs

if TYPE_CHECKING:
    from azure.core.credentials import AccessTokenInfo
    from azure.identity import AuthenticationRecord, DeviceCodeCredential, InteractiveBrowserCredential

    Interactive = DeviceCodeCredential | InteractiveBrowserCredential

log = logging.getLogger(__name__)

#: A token MSAL serves from its cache with less life than this is refreshed
#: at once (MSAL itself waits until the last five minutes).
MIN_FRESH = 15 * 60.0


def record_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tokend" / "azure"


def record_path(profile: str) -> Path:
    return record_dir() / f"{profile}.json"


def cache_name(profile: str) -> str:
    """The persistent cache of one profile (``~/.IdentityService/<name>.nocae`` when unencrypted)."""
    return f"tokend.{profile}"


def load_record(profile: str) -> AuthenticationRecord | None:
    from azure.identity import AuthenticationRecord

    try:
        text = record_path(profile).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SourceError(f"cannot read {record_path(profile)}: {e.strerror}", profile=profile) from None
    try:
        return AuthenticationRecord.deserialize(text)
    except (ValueError, KeyError, TypeError):
        raise LoginRequired(
            f"the sign-in record {record_path(profile)} is damaged; run: tokend login {profile}",
            profile=profile,
        ) from None


def save_record(profile: str, record: AuthenticationRecord) -> Path:
    """Write the record atomically, 0600, in a 0700 directory."""
    directory = record_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    atomicfile.write_text(
        record_path(profile),
        record.serialize(),
        mode=0o600,
        follow_symlinks=False,
        dir_mode=None,  # made and tightened just above
        prefix=".tmp-",
    )
    return record_path(profile)


def unencrypted_cache_files(profile: str) -> list[Path]:
    base = Path(os.path.expanduser("~")) / ".IdentityService"
    return [base / f"{cache_name(profile)}{suffix}" for suffix in (".nocae", ".cae")]


def credential(
    kind: str,
    settings: Mapping[str, Any],
    profile: str,
    network_timeout: float,
    *,
    record: AuthenticationRecord | None = None,
    **extra: Any,
) -> Interactive:
    """A device-code or browser credential with this profile's persistent cache."""
    from azure.identity import (
        DeviceCodeCredential,
        InteractiveBrowserCredential,
        TokenCachePersistenceOptions,
    )

    kw: dict[str, Any] = {
        "cache_persistence_options": TokenCachePersistenceOptions(
            name=cache_name(profile),
            allow_unencrypted_storage=bool(settings.get("allow_unencrypted_cache")),
        ),
        **network_kwargs(settings, network_timeout),
        **extra,
    }
    if settings.get("disable_instance_discovery"):
        kw["disable_instance_discovery"] = True
    if settings.get("additionally_allowed_tenants"):
        kw["additionally_allowed_tenants"] = list(settings["additionally_allowed_tenants"])
    if settings.get("tenant_id"):
        kw["tenant_id"] = settings["tenant_id"]
    if record is not None:
        # The record names the authority and the application it signed in to.
        kw["authentication_record"] = record
    else:
        kw["client_id"] = settings.get("client_id") or DEVELOPER_CLIENT_ID
        if settings.get("authority"):
            kw["authority"] = settings["authority"]
    if kind == "browser":
        return InteractiveBrowserCredential(**kw)
    return DeviceCodeCredential(**kw)


# -- the daemon's side: silent only ------------------------------------------------


def acquire_silently(
    kind: str,
    settings: Mapping[str, Any],
    profile: str,
    scopes: Sequence[str],
    *,
    timeout: float,
    now: float,
    newer_than: str | None,
    forced: bool,
    options: Mapping[str, Any],
) -> AccessTokenInfo:
    """A token from the persistent cache, refreshed with its refresh token when needed."""
    record = load_record(profile)
    if record is None:
        raise LoginRequired(f"not signed in; run: tokend login {profile}", profile=profile)
    cred = credential(kind, settings, profile, timeout, record=record, disable_automatic_authentication=True)
    with cred:
        info = cred.get_token_info(*scopes, options=dict(options))  # type: ignore[arg-type]
        # MSAL serves its cached token until five minutes before expiry; the
        # broker asks again earlier (refresh time, --refresh, min_ttl) and
        # must not get the same token back.
        if forced or info.token == newer_than or info.expires_on - now < MIN_FRESH:
            info = _redeem_refresh_token(cred, scopes, record, profile) or info
    return info


def _redeem_refresh_token(
    cred: Interactive, scopes: Sequence[str], record: AuthenticationRecord, profile: str
) -> AccessTokenInfo | None:
    """Skip MSAL's access-token cache: ``acquire_token_silent(force_refresh=True)``.

    azure-identity has no public way to force a refresh; its MSAL application
    is reached through ``_get_app`` (stable since 1.4). Without it the cached
    token stands, which is correct, just refreshed later.
    """
    from azure.core.credentials import AccessTokenInfo

    get_app = getattr(cred, "_get_app", None)
    if get_app is None:
        return None
    app = get_app()
    for account in app.get_accounts(username=record.username):
        if account.get("home_account_id") != record.home_account_id:
            continue
        issued = int(time.time())
        result = app.acquire_token_silent_with_error(list(scopes), account=account, force_refresh=True)
        if result and "access_token" in result:
            refresh_on = int(result["refresh_on"]) if "refresh_on" in result else None
            return AccessTokenInfo(
                result["access_token"],
                issued + int(result["expires_in"]),
                token_type=result.get("token_type", "Bearer"),
                refresh_on=refresh_on,
            )
        if result and result.get("error") in ("invalid_grant", "interaction_required"):
            raise LoginRequired(
                f"sign-in expired ({describe_msal_error(result)}); run: tokend login {profile}",
                profile=profile,
            )
        if result and result.get("error"):
            raise SourceError(f"token refresh failed: {describe_msal_error(result)}", profile=profile)
    return None


def describe_msal_error(result: Mapping[str, Any]) -> str:
    desc = str(result.get("error_description") or "").split("\n")[0]
    return f"{result.get('error')}: {desc}".strip(": ")


# -- tokend login / logout -----------------------------------------------------------


def login(
    kind: str,
    settings: Mapping[str, Any],
    profile: str,
    scopes: Sequence[str],
    *,
    echo: Any,
    open_browser: bool,
    timeout: float,
) -> Path:
    """Sign in interactively (the only place a person is involved); returns the record's path."""
    if kind == "browser" and not open_browser:
        echo(f"{profile}: no browser; signing in with a device code instead")
        kind = "device-code"
    extra: dict[str, Any] = {"timeout": max(1, int(timeout))}
    if kind == "device-code":

        def prompt(uri: str, code: str, expires: dt.datetime) -> None:
            local = expires.astimezone().strftime("%H:%M")
            echo(f"To sign in, open {uri} and enter the code {code} (valid until {local})")

        extra["prompt_callback"] = prompt
    else:
        echo(f"{profile}: opening a browser to sign in")
    # Each HTTP call is bounded like a fetch's; ``timeout`` bounds the person.
    cred = credential(kind, settings, profile, 30.0, **extra)
    with cred:
        record = cred.authenticate(scopes=list(scopes))
    path = save_record(profile, record)
    echo(f"{profile}: signed in as {record.username} (tenant {record.tenant_id})")
    for cache in unencrypted_cache_files(profile):
        if _is_plain_json(cache):
            echo(f"{profile}: note: the token cache {cache} is not encrypted "
                 "(allow_unencrypted_cache = true)")
    return path


def logout(kind: str, settings: Mapping[str, Any], profile: str) -> bool:
    """Forget the record and this profile's accounts in the token cache; False if not signed in."""
    record = load_record(profile)
    if record is None:
        return False
    try:
        cred = credential(kind, settings, profile, 10.0, record=record)
        with cred:
            get_app = getattr(cred, "_get_app", None)
            if get_app is not None:
                app = get_app()
                for account in app.get_accounts():
                    app.remove_account(account)
    except Exception as e:  # the record goes regardless: without it nothing signs in silently
        log.warning("%s: could not clear the token cache: %s: %s", profile, type(e).__name__, e)
    record_path(profile).unlink(missing_ok=True)
    for cache in unencrypted_cache_files(profile):
        if _is_plain_json(cache):
            cache.unlink(missing_ok=True)
    return True


def _is_plain_json(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"{"
    except OSError:
        return False
