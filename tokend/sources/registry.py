"""Maps ``source = "…"`` names to source classes.

Built-in sources are listed here so resolving one never scans package metadata;
third parties add sources through the ``tokend.sources`` entry-point group.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from tokend.sources.base import BaseSource

ENTRY_POINT_GROUP = "tokend.sources"

BUILTIN: dict[str, str] = {
    "demo": "tokend.sources.demo:DemoSource",
    "command": "tokend.sources.command:CommandSource",
    "env": "tokend.sources.env:EnvSource",
    "file": "tokend.sources.file:FileSource",
    "keyring": "tokend.sources.keyring:KeyringSource",
    "google": "tokend.sources.google:GoogleSource",
    "azure": "tokend.sources.azure:AzureSource",
    "aws": "tokend.sources.aws:AwsSource",
    # Secrets managers (static secrets, Vault's dynamic ones)
    "aws-secretsmanager": "tokend.sources.aws.secrets:AwsSecretsManagerSource",
    "aws-ssm": "tokend.sources.aws.secrets:AwsSsmSource",
    "gcp-secretmanager": "tokend.sources.google.secretmanager:GcpSecretManagerSource",
    "azure-keyvault": "tokend.sources.azure.keyvault:AzureKeyVaultSource",
    "vault": "tokend.sources.vault:VaultSource",
    "1password": "tokend.sources.onepassword:OnePasswordSource",
}


def _load(target: str) -> type[BaseSource]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, BaseSource)):
        raise TypeError(f"{target} is not a tokend source class")
    return cls


def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    return sorted({*BUILTIN, *_plugins()})


def lookup(name: str) -> type[BaseSource] | None:
    """The class for ``name``, or None when no built-in or plug-in has that name."""
    target = BUILTIN.get(name) or _plugins().get(name)
    return _load(target) if target else None
