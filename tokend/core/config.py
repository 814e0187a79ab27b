"""Loading and validating the TOML configuration into frozen profile objects."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tokend.client import hosts as host_routes
from tokend.client import paths, trust
from tokend.core import endpoints_config, policy
from tokend.core.durations import MAX_DURATION, format_duration, parse_duration
from tokend.core.errors import ConfigError, UnknownProfile
from tokend.sources import registry
from tokend.sources.base import BaseSource, Dependency, Option

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")

#: Keys every profile (and ``[defaults]``) accepts, whatever its source.
COMMON: Mapping[str, Option] = {
    "min_ttl": Option(
        "duration", default=policy.DEFAULT_MIN_TTL, help="never hand out a credential with less life left"
    ),
    "timeout": Option("duration", default=policy.DEFAULT_FETCH_TIMEOUT, help="bound on one upstream fetch"),
    "refresh_limit": Option(
        "duration",
        default=policy.FORCED_REFRESH_INTERVAL,
        help="at most one forced refresh per this interval",
    ),
    "notify": Option(
        "bool", default=True, help="desktop notification when the daemon needs a tokend login"
    ),
}

DEMO_TOML = """\
# Built-in configuration used when no config file exists.
[profiles.demo]
source = "demo"
"""


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    min_ttl: float
    timeout: float
    refresh_limit: float
    options: Mapping[str, Any] = field(default_factory=dict)
    notify: bool = True

    @property
    def fingerprint(self) -> str:
        """Changes whenever any setting of this profile changes (reload, cache keys)."""
        blob = json.dumps(
            [self.name, self.source, self.min_ttl, self.timeout, self.refresh_limit, dict(self.options)],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Config:
    path: Path | None  # None: the built-in default
    profiles: Mapping[str, Profile]
    #: ``[hosts]``: git host / registry -> the profile serving it (tokend/client/hosts.py)
    hosts: Mapping[str, host_routes.Route] = field(default_factory=lambda: MappingProxyType({}))
    #: ``[endpoints]``: cloud -> the profile the daemon serves there (tokend/core/endpoints_config.py)
    endpoints: Mapping[str, endpoints_config.EndpointEntry] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            where = self.path or "the built-in default config"
            raise UnknownProfile(f"unknown profile {name!r} (profiles in {where}: {known})") from None


def default_path() -> Path:
    """``$TOKEND_CONFIG``, else the XDG location (``tokend.client.paths.config_path``)."""
    return Path(paths.config_path())


def load(path: Path | None = None) -> Config:
    """Load ``path`` (default: $TOKEND_CONFIG or the XDG location).

    With no file at the default location, the built-in ``demo`` config is used;
    a missing file named explicitly is an error. A file another user could
    change is refused (its profiles can run commands): see ``tokend.client.trust``.
    """
    explicit = path is not None or bool(os.environ.get("TOKEND_CONFIG"))
    path = path or default_path()
    try:
        data = trust.read_config(str(path))
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: config file not found") from None
        return parse(DEMO_TOML, None)
    except trust.Refused as e:
        raise ConfigError(e.line) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from None
    return parse(text, path)


def parse(text: str, path: Path | None) -> Config:
    where = str(path) if path else "<built-in config>"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: invalid TOML: {e}") from None
    _check_keys(doc, {"defaults", "profiles", "hosts", "endpoints"}, "", where)
    defaults = _table(doc.get("defaults", {}), "defaults", where)
    _check_keys(defaults, set(COMMON), "defaults", where)
    base = {k: _convert(defaults.get(k, o.default), o, f"defaults.{k}", where) for k, o in COMMON.items()}
    profiles_doc = _table(doc.get("profiles", {}), "profiles", where)
    profiles = {}
    for name, body in profiles_doc.items():
        keypath = f"profiles.{name}"
        if not PROFILE_NAME.fullmatch(name):
            raise ConfigError(
                f"{where}: {keypath}: invalid profile name (letters, digits, _ . @ -; up to 64)"
            )
        profiles[name] = _profile(name, _table(body, keypath, where), base, where, path)
    routes = _hosts(_table(doc.get("hosts", {}), "hosts", where), profiles, where)
    linked = _link_profiles(profiles, base, where)
    return Config(
        path=path,
        profiles=MappingProxyType(linked),
        hosts=MappingProxyType(routes),
        endpoints=endpoints_config.parse(doc.get("endpoints", {}), linked, where),
    )


def _hosts(
    table: Mapping[str, Any], profiles: Mapping[str, Profile], where: str
) -> dict[str, host_routes.Route]:
    """``[hosts]``: git host / registry -> profile (tokend/client/hosts.py), each naming a profile."""
    routes = {}
    for key, value in table.items():
        keypath = f"hosts.{json.dumps(key)}"
        why = host_routes.check_pattern(key)
        if why:
            raise ConfigError(f"{where}: {keypath}: {why}")
        try:
            route = host_routes.parse_route(value)
        except ValueError as e:
            raise ConfigError(f"{where}: {keypath}: {e}") from None
        if route.profile not in profiles:
            raise ConfigError(f"{where}: {keypath}: no profile named {route.profile!r}")
        routes[key] = route
    return routes


def _profile(
    name: str, body: Mapping[str, Any], base: Mapping[str, Any], where: str, path: Path | None = None
) -> Profile:
    keypath = f"profiles.{name}"
    source_name = body.get("source")
    if not isinstance(source_name, str):
        raise ConfigError(
            f"{where}: {keypath}.source: expected a source name ({', '.join(registry.names())})"
        )
    cls = registry.lookup(source_name, profile=name)
    if cls is None:
        raise ConfigError(
            f"{where}: {keypath}.source: unknown source {source_name!r} "
            f"(expected one of {', '.join(registry.names())})"
        )
    schema = {**COMMON, **cls.options}
    _check_keys(body, {"source", *schema}, keypath, where)
    common = {
        k: _convert(body[k], COMMON[k], f"{keypath}.{k}", where) if k in body else base[k] for k in COMMON
    }
    options: dict[str, Any] = {}
    for key, opt in cls.options.items():
        if key in body:
            options[key] = _convert(body[key], opt, f"{keypath}.{key}", where)
            if opt.config_relative:
                options[key] = _relative_program(options[key], path, f"{keypath}.{key}", where)
        elif opt.required:
            raise ConfigError(
                f"{where}: {keypath}.{key}: required by source {source_name!r}"
                + (f" ({opt.help})" if opt.help else "")
            )
        else:
            options[key] = opt.default
    if not any(o.profile_of for o in cls.options.values()):
        # Sources with via options are validated once the profiles they name are linked in.
        _validate(cls, name, options, where)
    for key, opt in cls.options.items():
        life = options.get(key)
        if opt.lifetime and isinstance(life, float) and life <= common["min_ttl"]:
            raise ConfigError(
                f"{where}: {keypath}.{key}: {format_duration(life)} is not longer than "
                f"{keypath}.min_ttl ({format_duration(common['min_ttl'])}): such credentials are never "
                "served; raise the one or lower the other"
            )
    return Profile(name=name, source=source_name, options=MappingProxyType(options), **common)


def _validate(cls: type[BaseSource], name: str, options: Mapping[str, Any], where: str) -> None:
    """The source's own checks; its ConfigError names the key path, we add the file."""
    try:
        cls.validate(name, options)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e.message}") from None


def _relative_program(value: Any, path: Path | None, keypath: str, where: str) -> Any:
    """A program path (or an argv's first item) with a slash, resolved against the config's directory.

    ``./x.sh`` or ``bin/x`` in a config file means next to that file, whatever
    directory the daemon runs in; a bare name (``gcloud``) keeps the PATH lookup.
    """
    program = value[0] if isinstance(value, tuple) else value
    if not isinstance(program, str) or "/" not in program or program.startswith(("/", "~")):
        return value
    if path is None:
        raise ConfigError(f"{where}: {keypath}: {program!r} is relative; give an absolute path")
    resolved = str(path.absolute().parent / program)
    return (resolved, *value[1:]) if isinstance(value, tuple) else resolved


def _link_profiles(profiles: dict[str, Profile], base: Mapping[str, Any], where: str) -> dict[str, Profile]:
    """Replace the names in ``profile_of`` options by the profiles they name, then add
    the internal profiles sources depend on (``BaseSource.dependencies``).

    The referring profile then carries the other's settings: it fetches with
    them whatever file the daemon was started with, and its fingerprint changes
    (reload drops its cache) when they change.
    """
    linked: dict[str, Profile] = {}

    def link(name: str, chain: tuple[str, ...]) -> Profile:
        if name in linked:
            return linked[name]
        profile = profiles[name]
        cls = registry.lookup(profile.source, profile=name)
        refs = {k: o for k, o in (cls.options if cls else {}).items() if o.profile_of}
        options = dict(profile.options)
        for key, opt in refs.items():
            target = options.get(key)
            if not isinstance(target, str):
                continue
            keypath = f"profiles.{name}.{key}"
            if target not in profiles:
                raise ConfigError(f"{where}: {keypath}: no profile named {target!r} in this config")
            if profiles[target].source not in opt.profile_of:
                raise ConfigError(
                    f"{where}: {keypath}: profile {target!r} has source {profiles[target].source!r}; "
                    f"expected a profile with source {' or '.join(repr(s) for s in opt.profile_of)}"
                )
            if target in (*chain, name):
                raise ConfigError(f"{where}: {keypath}: profile {target!r} refers back to {name!r}")
            options[key] = link(target, (*chain, name))
        if refs:
            profile = dataclasses.replace(profile, options=MappingProxyType(options))
            if cls is not None:
                _validate(cls, name, profile.options, where)
        linked[name] = profile
        return profile

    for name in profiles:
        link(name, ())
    for name in list(linked):
        cls = registry.lookup(linked[name].source, profile=name)
        for dep in cls.dependencies(name, linked[name].options) if cls else ():
            _add_internal(linked, dep, base, where)
    return linked


def _add_internal(linked: dict[str, Profile], dep: Dependency, base: Mapping[str, Any], where: str) -> None:
    """Add the internal profile ``dep`` names (``corp:vault.azure.net``) unless it is a user's."""
    options = MappingProxyType(dict(dep.options))
    existing = linked.get(dep.name)
    if existing is not None:
        if existing.source != dep.source or dict(existing.options) != dict(options):
            raise ConfigError(
                f"{where}: profiles.{dep.name}: two sources need different profiles of this name"
            )
        return
    cls = registry.lookup(dep.source, profile=dep.name)
    if cls is None:
        raise ConfigError(f"{where}: profiles.{dep.name}: unknown source {dep.source!r}")
    _validate(cls, dep.name, options, where)
    owner = linked.get(dep.settings_of) if dep.settings_of else None
    common = {k: getattr(owner, k) if owner is not None else base[k] for k in COMMON}
    linked[dep.name] = Profile(name=dep.name, source=dep.source, options=options, **common)


def _check_keys(table: Mapping[str, Any], allowed: set[str], keypath: str, where: str) -> None:
    for key in table:
        if key not in allowed:
            full = f"{keypath}.{key}" if keypath else key
            raise ConfigError(f"{where}: {full}: unknown key (expected one of {', '.join(sorted(allowed))})")


def _table(value: Any, keypath: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {keypath}: expected a table, got {_typename(value)}")
    return value


def _typename(value: Any) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _convert(value: Any, opt: Option, keypath: str, where: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {keypath}: expected {expected}, got {_typename(value)}")

    if value is None:
        return None
    t = opt.type
    if t == "duration":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError as e:
                raise ConfigError(f"{where}: {keypath}: {e}") from None
        else:
            raise bad('a duration string such as "5m"')
        if not math.isfinite(seconds) or seconds < 0:  # TOML allows nan and inf
            raise ConfigError(f"{where}: {keypath}: expected a finite, non-negative duration")
        if seconds > MAX_DURATION:  # a number of seconds, bounded as a duration string is
            raise ConfigError(
                f"{where}: {keypath}: {value!r} is longer than the {format_duration(MAX_DURATION)} maximum"
            )
        return seconds
    if t == "str":
        if not isinstance(value, str):
            raise bad("a string")
        if opt.choices and value not in opt.choices:
            raise ConfigError(f"{where}: {keypath}: expected one of {', '.join(opt.choices)}, got {value!r}")
        return value
    if t == "strlist":
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise bad("a non-empty array of strings")
        return tuple(value)
    if t == "strs":  # one or several: a string stays a string, an array becomes a tuple
        if isinstance(value, str):
            return value
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise bad("a string or a non-empty array of strings")
        return tuple(value)
    if t == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if t == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
        return value
    if t == "table":
        if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            raise bad("a table of strings")
        return MappingProxyType(dict(value))
    raise AssertionError(f"unknown option type {t}")
