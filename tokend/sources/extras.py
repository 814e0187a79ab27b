"""A source whose module or SDK is missing: one line naming the extra to install.

``BaseSource`` subclasses get this for free: their ``fetch`` and ``login`` turn
an ``ImportError`` (an SDK imported lazily, as sources do) into ``MissingModule``,
a usage error (exit 2) the broker does not retry.
"""

from __future__ import annotations

from collections.abc import Mapping

from tokend.core.errors import UsageError

#: Top-level modules of the SDKs each extra installs (pyproject.toml's optional-dependencies).
EXTRAS: Mapping[str, str] = {
    "google": "google",
    "requests": "google",
    "azure": "azure",
    "msal": "azure",
    "boto3": "aws",
    "botocore": "aws",
    "yaml": "aws",
    "authlib": "oauth2",
}
#: The extra of a built-in source whose SDK comes with more than one extra (requests).
_SOURCE_EXTRA: Mapping[str, str] = {"vault": "vault", "gcp-secretmanager": "google", "oauth2": "oauth2"}
#: Built-in sources that need an extra (plug-ins name the module instead).
_BUILTIN_EXTRAS = frozenset(
    {"google", "azure", "aws", "aws-secretsmanager", "aws-ssm", "gcp-secretmanager", "azure-keyvault"}
    | {"vault"}
    | {"oauth2"}
)


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
    if source in _BUILTIN_EXTRAS and extra:
        return MissingModule(who, f"the {extra} extra: pipx install 'tokend[{extra}]'", profile=profile)
    what = f"Python module {module!r}" if module else "a Python module"
    return MissingModule(who, f"{what} for source {source!r}: install it next to tokend", profile=profile)
