"""OIDC federation for CI jobs: the job's own identity token, no stored secret.

A profile option ``oidc`` names where the subject token comes from:

- ``"github"``: GitHub Actions' ID-token endpoint, ``GET
  $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…`` with ``Authorization: bearer
  $ACTIONS_ID_TOKEN_REQUEST_TOKEN`` (the job needs ``permissions: id-token: write``);
- ``"gitlab:VARNAME"``: a GitLab CI ``id_tokens:`` variable (its ``aud`` is set
  in ``.gitlab-ci.yml``, so ``oidc_audience`` does not apply).

The aws source gives it to STS AssumeRoleWithWebIdentity, the azure source
(``credential = "workload-identity"``) to a client-assertion credential and the
google source to a workload identity federation (``external_account``) exchange.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from tokend.core.errors import REDACTOR, ConfigError, SourceError, SourceTimeout
from tokend.sources.base import Option

#: Default audiences, as the clouds' own GitHub actions request them.
AWS_AUDIENCE = "sts.amazonaws.com"
AZURE_AUDIENCE = "api://AzureADTokenExchange"

#: Bound on the ID-token request, whatever the fetch's own budget.
MAX_TIMEOUT = 10.0
MAX_BODY = 1 << 20

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: The profile keys every federating source accepts.
OPTIONS: Mapping[str, Option] = {
    "oidc": Option(
        "str", help='CI identity token to federate: "github" or "gitlab:VARNAME" (no stored secret)'
    ),
    "oidc_audience": Option("str", help="audience of the GitHub ID token (default: the cloud's usual one)"),
}


def check(settings: Mapping[str, Any], profile: str) -> None:
    """ConfigError unless ``oidc`` / ``oidc_audience`` make sense together."""
    spec, audience = settings.get("oidc"), settings.get("oidc_audience")
    if spec is None:
        if audience:
            raise ConfigError(f"profiles.{profile}.oidc_audience: needs oidc", profile=profile)
        return
    kind, _, var = spec.partition(":")
    if spec == "github":
        return
    if kind == "gitlab" and _ENV_NAME.fullmatch(var):
        if audience:
            raise ConfigError(
                f"profiles.{profile}.oidc_audience: a GitLab ID token's audience is its aud "
                f"under id_tokens: in .gitlab-ci.yml",
                profile=profile,
            )
        return
    raise ConfigError(
        f'profiles.{profile}.oidc: expected "github" or "gitlab:VARNAME", got {spec!r}', profile=profile
    )


def subject_token(
    spec: str,
    audience: str,
    *,
    timeout: float,
    profile: str,
    environ: Mapping[str, str] = os.environ,
) -> str:
    """The CI job's identity token (a JWT) for ``audience``; never logged."""
    if spec == "github":
        token = _github(audience, min(timeout, MAX_TIMEOUT), profile, environ)
    else:
        var = spec.partition(":")[2]
        token = environ.get(var, "").strip()
        if not token:
            raise SourceError(
                f'oidc = "{spec}": the CI variable {var} is not set; declare it in .gitlab-ci.yml '
                f"(id_tokens: {var}: aud: AUDIENCE)",
                profile=profile,
                retryable=False,
            )
    REDACTOR.add([token])
    return token


def _github(audience: str, timeout: float, profile: str, environ: Mapping[str, str]) -> str:
    import urllib.error
    import urllib.parse
    import urllib.request

    names = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    missing = [v for v in names if not environ.get(v)]
    if missing:
        raise SourceError(
            f'oidc = "github": the CI variable {missing[0]} is not set; GitHub Actions sets it only '
            "for jobs with `permissions: id-token: write`",
            profile=profile,
            retryable=False,
        )
    url = environ["ACTIONS_ID_TOKEN_REQUEST_URL"]
    url += ("&" if "?" in url else "?") + "audience=" + urllib.parse.quote(audience, safe="")
    REDACTOR.add([environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]])
    request = urllib.request.Request(
        url,
        headers={
            "Authorization": "bearer " + environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"],
            "Accept": "application/json",
            "User-Agent": "tokend",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=max(timeout, 0.1)) as response:
            body = response.read(MAX_BODY)
    except urllib.error.HTTPError as e:
        raise SourceError(
            f"GitHub's ID-token endpoint answered HTTP {e.code}"
            + (" (does the job have `permissions: id-token: write`?)" if e.code in (401, 403) else ""),
            profile=profile,
            retryable=e.code >= 500 or e.code == 429,
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError) or isinstance(e, TimeoutError):
            raise SourceTimeout(
                f"GitHub's ID-token endpoint did not answer within {timeout:g}s", profile=profile
            ) from None
        raise SourceError(f"cannot reach GitHub's ID-token endpoint: {reason}", profile=profile) from None
    try:
        value = json.loads(body)["value"]
    except (ValueError, KeyError, TypeError):
        value = None
    if not isinstance(value, str) or not value:
        raise SourceError("GitHub's ID-token endpoint answered without a token", profile=profile)
    return value
