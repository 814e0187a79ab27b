"""Shared by the secrets-manager sources: ``json_key``, the ``ttl`` re-read, fields to kinds, errors.

A secrets manager hands back a string (often JSON) or a map of fields; these
helpers turn that into a ``Credential`` the same way for every source, and
their errors name the secret and the field, never a value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tokend.core.credential import Credential
from tokend.core.errors import SourceError, TokendError
from tokend.sources.base import Option
from tokend.sources.registry import MissingModule
from tokend.sources.static import TTL_OPTION, static_secret

__all__ = [
    "JSON_KEY_OPTION",
    "KIND_OPTION",
    "TTL_OPTION",
    "from_fields",
    "not_found",
    "pick",
    "reprofiled",
    "static",
]

JSON_KEY_OPTION = Option(
    "str", help='one field of a JSON secret, as a dotted path ("api_key", "openai.key", "keys.0")'
)
KIND_OPTION = Option(
    "str",
    default="auto",
    choices=("auto", "secret", "basic", "aws"),
    help="credential kind of a secret with several fields (auto: aws keys, username/password, one field)",
)

#: Field names (as secrets engines and stored JSON spell them) of each multi-part kind.
_AWS_ID = ("access_key", "AccessKeyId", "aws_access_key_id")
_AWS_SECRET = ("secret_key", "SecretAccessKey", "aws_secret_access_key")
_AWS_TOKEN = ("security_token", "session_token", "SessionToken", "aws_session_token")
_MAX_NAMES = 12



def pick(text: str, json_key: str | None, what: str) -> str:
    """``text`` itself, or the field ``json_key`` names in it when it is JSON."""
    if not json_key:
        return text
    try:
        doc = json.loads(text)
    except ValueError:
        # The decoder's message quotes the document: never pass it on.
        raise SourceError(
            f"{what} is not JSON, so json_key {json_key!r} cannot pick a field from it", retryable=False
        ) from None
    return lookup(doc, json_key, what)


def lookup(doc: Any, json_key: str, what: str) -> str:
    """The string at dotted path ``json_key`` in ``doc`` (keys holding dots are matched whole first)."""
    parts = json_key.split(".")
    node, i, walked = doc, 0, ""
    while i < len(parts):
        if isinstance(node, dict):
            for j in range(len(parts), i, -1):  # the longest key first: "a.b" before "a"
                key = ".".join(parts[i:j])
                if key in node:
                    node, i = node[key], j
                    walked = f"{walked}.{key}" if walked else key
                    break
            else:
                names = ", ".join(sorted(map(str, node))[:_MAX_NAMES]) or "none"
                at = f" under {walked!r}" if walked else ""
                raise SourceError(f"{what} has no field {json_key!r} (fields{at}: {names})", retryable=False)
        elif isinstance(node, list) and parts[i].isdigit() and int(parts[i]) < len(node):
            node, i = node[int(parts[i])], i + 1
            walked = f"{walked}.{parts[i - 1]}" if walked else parts[i - 1]
        else:
            raise SourceError(
                f"{what} has no field {json_key!r} (stopped at {walked or 'the top'!r})", retryable=False
            )
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, (int, float)):
        return json.dumps(node)
    if isinstance(node, str) and node:
        return node
    shape = "an empty string" if node == "" else "null" if node is None else "an object or a list"
    raise SourceError(f"{what}: json_key {json_key!r} names {shape}, not a value", retryable=False)


def static(text: str, *, json_key: str | None, now: float, ttl: float, source: str, what: str) -> Credential:
    """A secret with no expiry, ``json_key`` applied, re-read every ``ttl``."""
    value = pick(text, json_key, what)
    if not value:
        raise SourceError(f"{what} is empty", retryable=False)
    return static_secret(value, now=now, ttl=ttl, source=source)


def from_fields(
    data: Mapping[str, Any], *, json_key: str | None, kind: str, what: str
) -> tuple[str, dict[str, str]]:
    """(kind, fields) for a secret made of several fields (a Vault response's ``data``).

    With ``json_key``: that one field, as a secret. Otherwise ``kind`` decides;
    ``auto`` maps AWS keys to ``aws``, username/password to ``basic`` and a
    secret of exactly one field to ``secret``.
    """
    if json_key:
        return "secret", {"value": lookup(dict(data), json_key, what)}
    strings = {k: v for k, v in data.items() if isinstance(v, str) and v}
    aws_id, aws_secret = _first(strings, _AWS_ID), _first(strings, _AWS_SECRET)
    if kind == "aws" or (kind == "auto" and aws_id and aws_secret):
        if not (aws_id and aws_secret):
            raise SourceError(f"{what} has no access_key and secret_key fields", retryable=False)
        fields = {"AccessKeyId": aws_id, "SecretAccessKey": aws_secret}
        token = _first(strings, _AWS_TOKEN)
        if token:
            fields["SessionToken"] = token
        return "aws", fields
    if kind == "basic" or (kind == "auto" and "username" in strings and "password" in strings):
        if not ("username" in strings and "password" in strings):
            raise SourceError(f"{what} has no username and password fields", retryable=False)
        return "basic", {"username": strings["username"], "password": strings["password"]}
    if len(data) == 1:
        ((name, value),) = data.items()
        return "secret", {"value": lookup({name: value}, name, what)}
    names = ", ".join(sorted(map(str, data))[:_MAX_NAMES]) or "none"
    raise SourceError(f"{what} has several fields ({names}); set json_key to pick one", retryable=False)


def _first(fields: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((fields[n] for n in names if n in fields), None)


def not_found(what: str) -> SourceError:
    """The secret does not exist (or not that version): retrying will not change it."""
    return SourceError(f"{what} not found", retryable=False)


def reprofiled(err: TokendError, profile: str, prefix: str) -> TokendError:
    """``err`` (raised for the profile a secret's credential comes from) restated for ``profile``.

    ``prefix`` names that profile in the message (``azure profile 'corp'``); empty: the
    message is kept as it is (an internal profile of defaults, which the person never named).
    """
    if isinstance(err, MissingModule):  # the line names the profile the person asked for
        return MissingModule(f"profile {profile!r}", err.needs, profile=profile)
    kwargs: dict[str, Any] = {"profile": profile}
    if isinstance(err, SourceError):
        kwargs["retryable"] = err.retryable
    try:
        new = type(err)(f"{prefix}: {err.message}" if prefix else err.message, **kwargs)
    except TypeError:  # an error type with another constructor: keep it, with our profile
        err.profile = profile
        return err
    new.__cause__ = err.__cause__
    return new
