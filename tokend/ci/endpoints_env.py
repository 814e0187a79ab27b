"""``tokend exec --endpoint``: which profile serves which cloud, and CMD's environment for each.

Each cloud's variables point its SDKs at the endpoint, and everything that
comes before the endpoint in that SDK's default chain is removed or hidden,
so the endpoint's credentials win whatever the user's environment or files
hold (README, "Credential endpoints").
"""

from __future__ import annotations

import configparser
import os
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from tokend.core.config import Profile
from tokend.core.credential import Credential
from tokend.core.errors import UsageError

CLOUDS = ("aws", "google", "azure")
#: The credential kind each endpoint serves.
KIND = {"aws": "aws", "google": "bearer", "azure": "bearer"}

AWS_REMOVED = (
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
)
#: Settings of the user's AWS config kept in CMD's private copy: none of them is a credential.
AWS_KEPT = (
    "region",
    "output",
    "endpoint_url",
    "ca_bundle",
    "retry_mode",
    "max_attempts",
    "sts_regional_endpoints",
    "defaults_mode",
    "use_fips_endpoint",
    "use_dualstack_endpoint",
    "cli_pager",
)
GOOGLE_REMOVED = ("GOOGLE_APPLICATION_CREDENTIALS", "NO_GCE_CHECK", "CLOUDSDK_CONFIG")
AZURE_REMOVED = (
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_CLIENT_ID",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)


@dataclass(frozen=True)
class EndpointSpec:
    cloud: str
    profile: str


def parse_endpoint(text: str) -> EndpointSpec:
    cloud, eq, profile = text.partition("=")
    if not eq or cloud not in CLOUDS or not profile:
        raise UsageError(f"--endpoint {text!r}: expected aws=PROFILE, google=PROFILE or azure=PROFILE")
    return EndpointSpec(cloud, profile)


def check_specs(specs: list[EndpointSpec]) -> None:
    seen = [s.cloud for s in specs]
    twice = sorted({c for c in seen if seen.count(c) > 1})
    if twice:
        raise UsageError(f"--endpoint {twice[0]}= given twice: one profile per cloud")


def check_profile(spec: EndpointSpec, profile: Profile) -> None:
    """Refuse, before any fetch, a profile that cannot serve ``spec.cloud``."""
    wrong = {
        "aws": profile.source in ("google", "azure")
        or (profile.source == "aws" and profile.options.get("token") != "credentials"),
        "google": profile.source != "google" or profile.options.get("token") != "access",
        "azure": profile.source != "azure",
    }[spec.cloud]
    if wrong:
        raise UsageError(_kind_message(spec, f"source {profile.source!r}"), profile=spec.profile)


#: Variables each endpoint sets or removes: ``-e`` may not set them too.
OWNED = {
    "aws": (
        *AWS_REMOVED,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ),
    "google": (*GOOGLE_REMOVED, "GCE_METADATA_HOST", "GCE_METADATA_IP", "GCE_METADATA_ROOT"),
    "azure": (*AZURE_REMOVED, "IDENTITY_ENDPOINT", "IDENTITY_HEADER"),
}


def check_clashes(specs: list[EndpointSpec], names: list[str]) -> None:
    """Refuse an ``-e`` variable that an endpoint sets or removes (it would be lost or would win)."""
    for spec in specs:
        for name in names:
            if name in OWNED[spec.cloud]:
                raise UsageError(f"-e sets {name}, which --endpoint {spec.cloud}= sets or removes for CMD")


def check_credential(spec: EndpointSpec, cred: Credential) -> None:
    if cred.kind != KIND[spec.cloud]:
        raise UsageError(_kind_message(spec, f"{cred.kind} credentials"), profile=spec.profile)


def _kind_message(spec: EndpointSpec, what: str) -> str:
    wanted = {
        "aws": 'AWS credentials (source "aws", token "credentials")',
        "google": 'a Google access token (source "google")',
        "azure": 'an Azure token (source "azure")',
    }[spec.cloud]
    return f"--endpoint {spec.cloud}={spec.profile}: the profile gives {what}; this endpoint serves {wanted}"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def aws_env(
    env: MutableMapping[str, str],
    url: str,
    token: str,
    private: str,
    profile: Profile,
    environ: Mapping[str, str],
) -> None:
    """Container credentials, and private AWS files keeping the region but no credentials.

    A ``[default]`` profile with keys (or a role, SSO, credential_process) in
    the user's files comes before container credentials in every SDK's
    chain, so CMD gets its own files instead.
    """
    for var in AWS_REMOVED:
        env.pop(var, None)
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = url
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = token
    kept = _aws_settings(profile, environ)
    config = os.path.join(private, "aws-config")
    credentials = os.path.join(private, "aws-credentials")
    _write_private(config, "[default]\n" + "".join(f"{k} = {v}\n" for k, v in kept.items()))
    _write_private(credentials, "")
    env["AWS_CONFIG_FILE"] = config
    env["AWS_SHARED_CREDENTIALS_FILE"] = credentials


def _aws_settings(profile: Profile, environ: Mapping[str, str]) -> dict[str, str]:
    """The non-credential settings of the AWS profile tokend signs in with (else ``[default]``)."""
    path = environ.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
    parser = configparser.RawConfigParser()
    try:
        parser.read(os.path.expanduser(path), encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        parser = configparser.RawConfigParser()
    name = profile.options.get("aws_profile") or environ.get("AWS_PROFILE") or "default"
    section = "default" if name == "default" else f"profile {name}"
    kept: dict[str, str] = {}
    for candidate in ("default", section):
        if parser.has_section(candidate):
            kept.update({k: v for k, v in parser.items(candidate) if k in AWS_KEPT})
    region = profile.options.get("region")
    if isinstance(region, str) and region:
        kept["region"] = region
    return kept


def google_env(env: MutableMapping[str, str], host: str, private: str, project: str | None) -> None:
    """The metadata server's address; no ADC file can come first (a private, empty gcloud config)."""
    for var in GOOGLE_REMOVED:
        env.pop(var, None)
    env["GCE_METADATA_HOST"] = host
    env["GCE_METADATA_IP"] = host
    # gcloud reads only this one: on a real VM it would otherwise ask the VM's own server.
    env["GCE_METADATA_ROOT"] = host
    gcloud = os.path.join(private, "gcloud")
    os.mkdir(gcloud, 0o700)
    env["CLOUDSDK_CONFIG"] = gcloud
    if project:
        env["GOOGLE_CLOUD_PROJECT"] = project
        env["CLOUDSDK_CORE_PROJECT"] = project


def azure_env(env: MutableMapping[str, str], url: str, header: str, profile: Profile) -> None:
    """App Service managed identity; what switches its flavour or comes first in the chain removed."""
    for var in AZURE_REMOVED:
        env.pop(var, None)
    env["IDENTITY_ENDPOINT"] = url
    env["IDENTITY_HEADER"] = header
    client_id = profile.options.get("client_id")
    if isinstance(client_id, str) and client_id:
        env["AZURE_CLIENT_ID"] = client_id  # azure-identity then asks for this identity, which is ours


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
