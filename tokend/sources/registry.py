"""Maps ``source = "…"`` names to source classes.

Built-in sources are listed here so resolving one never scans package metadata;
third parties add sources through the ``tokend.sources`` entry-point group
(docs/sources.md). A missing SDK becomes one line naming the extra to install,
both when a source's module is imported and when its ``fetch`` imports the SDK.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from tokend.sources.base import BaseSource
from tokend.sources.extras import MissingModule, missing

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "MissingModule", "lookup", "missing", "names"]

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
    "oauth2": "tokend.sources.oauth2:OAuth2Source",
    # Secrets managers (static secrets, Vault's dynamic ones)
    "aws-secretsmanager": "tokend.sources.aws.secrets:AwsSecretsManagerSource",
    "aws-ssm": "tokend.sources.aws.secrets:AwsSsmSource",
    "gcp-secretmanager": "tokend.sources.google.secretmanager:GcpSecretManagerSource",
    "azure-keyvault": "tokend.sources.azure.keyvault:AzureKeyVaultSource",
    "vault": "tokend.sources.vault:VaultSource",
    "1password": "tokend.sources.onepassword:OnePasswordSource",
}


def _adapted(cls: type[Any]) -> type[BaseSource]:
    """``cls`` itself, or for a plug-in class that implements only the protocol, ``cls`` with
    ``BaseSource``'s defaults for the optional capabilities the broker and the CLI ask about."""
    if issubclass(cls, BaseSource):
        return cls
    return type(cls.__name__, (cls, BaseSource), {"__module__": cls.__module__, "__doc__": cls.__doc__})


@functools.cache
def _load(source: str, target: str) -> type[BaseSource]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and callable(getattr(cls, "fetch", None))):
        raise TypeError(f"{target} is not a tokend source class (no fetch)")
    if not isinstance(getattr(cls, "options", {}), Mapping):
        raise TypeError(f"{target} is not a tokend source class (options is not a mapping)")
    return _adapted(cls)


def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    return sorted({*BUILTIN, *_plugins()})


def lookup(name: str, *, profile: str | None = None) -> type[BaseSource] | None:
    """The class for ``name``, or None when no built-in or plug-in has that name.

    Raises ``MissingModule`` (naming ``profile``) when the source's module cannot be imported.
    """
    target = BUILTIN.get(name) or _plugins().get(name)
    if not target:
        return None
    try:
        return _load(name, target)
    except ImportError as e:
        raise missing(profile, name, e) from None
