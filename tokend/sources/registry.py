"""Maps ``source = "…"`` names to source classes.

Built-in sources are listed here so resolving one never scans package metadata;
third parties add sources through the ``tokend.sources`` entry-point group
(docs/sources.md). A missing SDK becomes one line naming the extra to install,
both when a source's module is imported and when its ``fetch`` imports the SDK.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from tokend.core.credential import Credential
from tokend.core.errors import UsageError
from tokend.sources.base import BaseSource, FetchRequest, LoginContext

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

#: Top-level modules of the SDKs each extra installs (pyproject.toml's optional-dependencies).
EXTRAS: Mapping[str, str] = {
    "google": "google",
    "requests": "google",
    "azure": "azure",
    "msal": "azure",
    "boto3": "aws",
    "botocore": "aws",
    "yaml": "aws",
}
#: The extra of a built-in source whose SDK comes with more than one extra (requests).
_SOURCE_EXTRA: Mapping[str, str] = {"vault": "vault", "gcp-secretmanager": "google"}


class MissingModule(UsageError):
    """A source's module or SDK is not installed: nothing to retry until someone installs it.

    The message names the profile itself (``profile 'vertex' needs …``), so the
    line has no second profile prefix.
    """

    def __init__(self, who: str, needs: str, *, profile: str | None = None) -> None:
        super().__init__(f"{who} needs {needs}", profile=profile)
        self.needs = needs

    def line(self) -> str:
        return "tokend: " + self.message


def missing(profile: str | None, source: str, err: ImportError) -> MissingModule:
    """The one line for ``err``: which extra (or, for a plug-in, which module) ``profile`` needs."""
    module = (err.name or "").partition(".")[0]
    who = f"profile {profile!r}" if profile else f"source {source!r}"
    extra = _SOURCE_EXTRA.get(source) or EXTRAS.get(module)
    if source in BUILTIN and extra:
        return MissingModule(who, f"the {extra} extra: pipx install 'tokend[{extra}]'", profile=profile)
    what = f"Python module {module!r}" if module else "a Python module"
    return MissingModule(who, f"{what} for source {source!r}: install it next to tokend", profile=profile)


def _guarded(cls: type[Any], source: str) -> type[BaseSource]:
    """``cls`` with ImportErrors of its fetch/login turned into ``MissingModule``.

    A plug-in class that implements only the protocol gets ``BaseSource``'s
    defaults for the optional capabilities the broker and the CLI ask about.
    """

    def guard(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except ImportError as e:
                raise missing(getattr(self, "profile", None), source, e) from None

        return call

    def fetch(self: Any, request: FetchRequest) -> Credential:
        return guarded_fetch(self, request)  # type: ignore[no-any-return]

    def login(self: Any, ctx: LoginContext) -> None:
        guarded_login(self, ctx)

    guarded_fetch, guarded_login = guard(cls.fetch), guard(getattr(cls, "login", BaseSource.login))
    bases = (cls,) if issubclass(cls, BaseSource) else (cls, BaseSource)
    namespace: dict[str, Any] = {"fetch": fetch, "login": login, "__doc__": cls.__doc__}
    namespace["__module__"] = cls.__module__
    namespace["__qualname__"] = cls.__qualname__
    return type(cls.__name__, bases, namespace)


@functools.cache
def _load(source: str, target: str) -> type[BaseSource]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and callable(getattr(cls, "fetch", None))):
        raise TypeError(f"{target} is not a tokend source class (no fetch)")
    if not isinstance(getattr(cls, "options", {}), Mapping):
        raise TypeError(f"{target} is not a tokend source class (options is not a mapping)")
    return _guarded(cls, source)


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
