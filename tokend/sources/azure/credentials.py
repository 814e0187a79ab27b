"""Building azure-identity credentials for ``source = "azure"`` profiles.

Every credential is built for one fetch and closed after it: the broker is the
cache, so a fetch always asks upstream (MSAL's in-memory cache would otherwise
hand back the token the broker is trying to replace). Network calls are bounded
by the fetch's timeout and retry at most once, on connection errors only
(azure-core honours ``Retry-After`` without a cap, and IMDS's own settings add
up to a 24-second ladder).

azure-identity is imported inside the functions only: importing it costs more
than the rest of tokend together.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tokend.core.errors import REDACTOR, SourceError, SourceUnavailable, TokendError
from tokend.sources.refs import read_secret_bytes

if TYPE_CHECKING:
    from azure.core.credentials import SupportsTokenInfo

#: The Azure CLI's first-party application: azure-identity's default for user sign-in.
DEVELOPER_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

#: ``exclude_*`` profile keys of ``credential = "default"`` -> DefaultAzureCredential keywords.
DEFAULT_EXCLUDES: Mapping[str, str] = {
    "exclude_environment": "exclude_environment_credential",
    "exclude_workload_identity": "exclude_workload_identity_credential",
    "exclude_managed_identity": "exclude_managed_identity_credential",
    "exclude_shared_token_cache": "exclude_shared_token_cache_credential",
    "exclude_visual_studio_code": "exclude_visual_studio_code_credential",
    "exclude_cli": "exclude_cli_credential",
    "exclude_developer_cli": "exclude_developer_cli_credential",
    "exclude_powershell": "exclude_powershell_credential",
    "exclude_interactive_browser": "exclude_interactive_browser_credential",
    "exclude_broker": "exclude_broker_credential",
}


def network_kwargs(settings: Mapping[str, Any], timeout: float, *, imds: bool = False) -> dict[str, Any]:
    """Transport and retry keywords bounding every HTTP call of a credential by ``timeout``."""
    kw: dict[str, Any] = {
        # IMDS answers within milliseconds when it exists; waiting longer, or
        # again, only delays the "no managed identity here" answer on a laptop.
        "connection_timeout": min(2.0 if imds else 5.0, max(timeout / 4, 0.5)),
        "read_timeout": max(timeout / 3, 1.0),
        "retry_total": 0 if imds else 1,
        "retry_connect": 0 if imds else 1,
        "retry_read": 0,
        "retry_status": 0,
        "retry_backoff_factor": 0.25,
        "retry_backoff_max": 1,
    }
    if settings.get("ca_bundle"):
        kw["connection_verify"] = os.path.expanduser(settings["ca_bundle"])
    return kw


def authority_kwargs(settings: Mapping[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if settings.get("authority"):
        kw["authority"] = settings["authority"]
    if settings.get("disable_instance_discovery"):
        kw["disable_instance_discovery"] = True
    if settings.get("additionally_allowed_tenants"):
        kw["additionally_allowed_tenants"] = list(settings["additionally_allowed_tenants"])
    return kw


def process_timeout(timeout: float) -> int:
    """Seconds the Azure CLI may take: most of the fetch's budget, at most azure's own 10 s."""
    return max(1, min(10, int(timeout * 0.6)))


def build(kind: str, settings: Mapping[str, Any], profile: str, timeout: float) -> SupportsTokenInfo:
    """A new azure-identity credential of ``kind`` for one fetch (device-code/browser: see azure_login)."""
    import azure.identity as ai

    net = network_kwargs(settings, timeout, imds=kind in ("managed-identity", "default"))
    if settings.get("oidc"):
        return _federated(kind, settings, profile, timeout, net)
    if kind == "cli":
        return ai.AzureCliCredential(
            tenant_id=settings.get("tenant_id") or "",
            subscription=settings.get("subscription"),
            additionally_allowed_tenants=list(settings.get("additionally_allowed_tenants") or ()),
            process_timeout=process_timeout(timeout),
        )
    if kind == "managed-identity":
        return ai.ManagedIdentityCredential(
            client_id=settings.get("client_id"), identity_config=_identity_config(settings), **net
        )
    if kind == "default":
        kw = {
            DEFAULT_EXCLUDES[key]: settings[key] for key in DEFAULT_EXCLUDES if settings.get(key) is not None
        }
        if settings.get("client_id"):
            kw["managed_identity_client_id"] = settings["client_id"]
        return ai.DefaultAzureCredential(
            process_timeout=process_timeout(timeout), **kw, **authority_kwargs(settings), **net
        )
    tenant_id = settings.get("tenant_id") or os.environ.get("AZURE_TENANT_ID")
    client_id = settings.get("client_id") or os.environ.get("AZURE_CLIENT_ID")
    common = {**authority_kwargs(settings), **net}
    if kind == "workload-identity":
        token_file = settings.get("token_file") or os.environ.get("AZURE_FEDERATED_TOKEN_FILE")
        missing = _missing(tenant_id=tenant_id, client_id=client_id, token_file=token_file)
        if missing:
            raise SourceUnavailable(
                f"workload identity is not configured here: no {missing} "
                "(profile keys, or AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_FEDERATED_TOKEN_FILE)",
                profile=profile,
            )
        assert token_file is not None
        _redact_file(token_file)
        return ai.WorkloadIdentityCredential(
            tenant_id=tenant_id, client_id=client_id, token_file_path=os.path.expanduser(token_file), **common
        )
    missing = _missing(tenant_id=tenant_id, client_id=client_id)
    if missing:
        raise SourceUnavailable(
            f"credential {kind!r} needs {missing} (profile keys, or AZURE_TENANT_ID / AZURE_CLIENT_ID)",
            profile=profile,
        )
    assert tenant_id is not None and client_id is not None
    if kind == "client-secret":
        secret = client_secret(settings, profile)
        return ai.ClientSecretCredential(tenant_id, client_id, secret, **common)
    if kind == "certificate":
        path = settings.get("certificate_path")
        if not path:
            raise SourceUnavailable(
                "credential 'certificate' needs certificate_path (a PEM or PKCS12 file with the private key)",
                profile=profile,
            )
        password = None
        if settings.get("certificate_password_env"):
            password = _from_env(settings["certificate_password_env"], "certificate_password_env", profile)
        # Read here, checked like every secret file, and handed over as data.
        try:
            data = read_secret_bytes(os.path.expanduser(path), f"certificate_path {path}")
        except TokendError as e:
            e.profile = profile
            raise
        return ai.CertificateCredential(
            tenant_id,
            client_id,
            certificate_data=data,
            password=password,
            send_certificate_chain=bool(settings.get("send_certificate_chain")),
            **common,
        )
    raise AssertionError(f"unexpected credential kind {kind}")


def _federated(
    kind: str, settings: Mapping[str, Any], profile: str, timeout: float, net: dict[str, Any]
) -> SupportsTokenInfo:
    """Workload identity federation with the CI job's OIDC token (tokend/ci/oidc.py) as client assertion."""
    import azure.identity as ai

    from tokend.ci import oidc
    from tokend.core.errors import ConfigError

    oidc.check(settings, profile)
    if kind != "workload-identity":
        raise ConfigError(f'profiles.{profile}.oidc: needs credential = "workload-identity"', profile=profile)
    tenant_id = settings.get("tenant_id") or os.environ.get("AZURE_TENANT_ID")
    client_id = settings.get("client_id") or os.environ.get("AZURE_CLIENT_ID")
    missing = _missing(tenant_id=tenant_id, client_id=client_id)
    if missing:
        raise SourceUnavailable(
            f"workload identity federation needs {missing} (profile keys, or the CI variables "
            "AZURE_TENANT_ID / AZURE_CLIENT_ID)",
            profile=profile,
        )
    assert tenant_id is not None and client_id is not None
    spec, audience = settings["oidc"], settings.get("oidc_audience") or oidc.AZURE_AUDIENCE

    def assertion() -> str:
        return oidc.subject_token(spec, audience, timeout=timeout / 2, profile=profile)

    return ai.ClientAssertionCredential(tenant_id, client_id, assertion, **authority_kwargs(settings), **net)


def _identity_config(settings: Mapping[str, Any]) -> dict[str, str] | None:
    config = {k: settings[k] for k in ("resource_id", "object_id") if settings.get(k)}
    return config or None


def _missing(**values: str | None) -> str:
    return " or ".join(name for name, value in values.items() if not value)


def _redact_file(path: str) -> None:
    # The federated token is a secret of its own: keep it out of any message.
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            REDACTOR.add([f.read().strip()])
    except OSError:
        pass  # azure-identity reports the unreadable file itself


# -- client secrets -------------------------------------------------------------


def client_secret(settings: Mapping[str, Any], profile: str) -> str:
    """The client secret: from ``client_secret_env`` when set, else the OS keychain."""
    if settings.get("client_secret_env"):
        return _from_env(settings["client_secret_env"], "client_secret_env", profile)
    service = settings.get("client_secret_service") or "tokend"
    user = settings.get("client_secret_username") or profile
    import keyring
    import keyring.errors

    try:
        value = keyring.get_password(service, user)
    except keyring.errors.KeyringError as e:
        raise SourceError(f"keychain: {type(e).__name__}: {e}", profile=profile) from None
    if not value:
        raise SourceUnavailable(
            f"no client secret in the keychain for {service}/{user}; store it with a keyring profile "
            f"named {user!r} and `tokend secret set {user}`, or set client_secret_env",
            profile=profile,
        )
    REDACTOR.add([value])
    return str(value)


def _from_env(name: str, key: str, profile: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SourceUnavailable(f"environment variable {name} ({key}) is not set", profile=profile)
    REDACTOR.add([value])
    return value


# -- the Azure CLI's identity ---------------------------------------------------------


def cli_config_dir() -> str:
    return os.environ.get("AZURE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".azure")


class CliIdentity:
    """A cheap fingerprint of who the Azure CLI is signed in as.

    ``az login``, ``az logout``, ``az account set`` and ``az cloud set`` rewrite
    azureProfile.json (or clouds.config); sign-in and sign-out also change the
    accounts in MSAL's token cache. Token refreshes rewrite that cache too, so
    only its set of accounts counts (parsed again only when the file changed).
    """

    FILES = ("azureProfile.json", "clouds.config", "msal_token_cache.bin")
    CACHE = "msal_token_cache.json"

    def __init__(self) -> None:
        self._memo: tuple[tuple[int, int, int], str] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        base = cli_config_dir()
        parts = [f"{name}:{_stat_key(os.path.join(base, name))}" for name in self.FILES]
        parts.append(f"accounts:{self._accounts(os.path.join(base, self.CACHE))}")
        return hashlib.sha256("\n".join([base, *parts]).encode()).hexdigest()[:32]

    def _accounts(self, path: str) -> str:
        key = _stat_tuple(path)
        if key is None:
            return "none"
        with self._lock:
            if self._memo is not None and self._memo[0] == key:
                return self._memo[1]
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            accounts = sorted(doc.get("Account", {})) if isinstance(doc, dict) else []
            value = hashlib.sha256("\n".join(accounts).encode()).hexdigest()[:16]
        except (OSError, ValueError, AttributeError):
            value = "unreadable:" + "-".join(map(str, key))
        with self._lock:
            self._memo = (key, value)
        return value


def _stat_tuple(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _stat_key(path: str) -> str:
    key = _stat_tuple(path)
    return "none" if key is None else "-".join(map(str, key))
