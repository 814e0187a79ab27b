"""TOML configuration: parsing, validation, file permissions, profiles."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tokend.core import config, policy
from tokend.core.config import Config, Profile
from tokend.core.errors import EXIT_USAGE, ConfigError, UnknownProfile

GOOD = """\
[defaults]
min_ttl = "10m"

[profiles.wrapped]
source = "command"
command = ["gcloud", "auth", "print-access-token"]
ttl = "50m"

[profiles.fast]
source = "demo"
min_ttl = "90s"
timeout = "5s"
refresh_limit = "1m"
lifetime = "1h30m"
latency = "500ms"

[profiles.openai]
source = "env"
var = "OPENAI_API_KEY"
"""


def parse(text: str, path: Path | None = Path("/etc/tokend.toml")) -> Config:
    return config.parse(textwrap.dedent(text), path)


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    os.chmod(path, mode)
    return path


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.exit_status == EXIT_USAGE
    return info.value.message


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TOKEND_CONFIG; XDG_CONFIG_HOME is an empty directory. Returns the default path."""
    monkeypatch.delenv("TOKEND_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "tokend" / "config.toml"


# -- parsing ------------------------------------------------------------------


def test_parses_profiles_with_durations_and_options() -> None:
    cfg = parse(GOOD)
    assert set(cfg.profiles) == {"wrapped", "fast", "openai"}
    wrapped = cfg.profile("wrapped")
    assert wrapped.source == "command"
    assert wrapped.options["command"] == ("gcloud", "auth", "print-access-token")
    assert wrapped.options["ttl"] == 3000.0
    assert wrapped.options["env"] is None  # unset options take the source's default
    fast = cfg.profile("fast")
    assert fast.options["lifetime"] == 5400.0
    assert fast.options["latency"] == 0.5
    assert cfg.profile("openai").options["var"] == "OPENAI_API_KEY"


def test_defaults_are_inherited_and_overridden_per_profile() -> None:
    cfg = parse(GOOD)
    wrapped, fast = cfg.profile("wrapped"), cfg.profile("fast")
    assert wrapped.min_ttl == 600.0  # from [defaults]
    assert wrapped.timeout == policy.DEFAULT_FETCH_TIMEOUT  # built-in default
    assert wrapped.refresh_limit == policy.FORCED_REFRESH_INTERVAL
    assert (fast.min_ttl, fast.timeout, fast.refresh_limit) == (90.0, 5.0, 60.0)


def test_built_in_defaults_without_defaults_table() -> None:
    cfg = parse('[profiles.d]\nsource = "demo"\n')
    d = cfg.profile("d")
    assert d.min_ttl == policy.DEFAULT_MIN_TTL == 300.0
    assert d.refresh_limit == 30.0


def test_numbers_are_seconds() -> None:
    cfg = parse('[defaults]\nmin_ttl = 120\n[profiles.d]\nsource = "demo"\ntimeout = 2.5\n')
    assert cfg.profile("d").min_ttl == 120.0
    assert cfg.profile("d").timeout == 2.5


def test_empty_config_has_no_profiles() -> None:
    assert dict(parse("").profiles) == {}


def test_profiles_are_frozen() -> None:
    cfg = parse(GOOD)
    with pytest.raises(TypeError):
        cfg.profiles["new"] = cfg.profile("fast")  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.profile("fast").options["lifetime"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        cfg.profile("fast").min_ttl = 1.0  # type: ignore[misc]


def test_table_option_and_choices() -> None:
    cfg = parse(
        """
        [profiles.w]
        source = "command"
        command = ["helper"]
        env = { REGION = "eu", MODE = "x" }
        cwd = "~/src"
        """
    )
    w = cfg.profile("w")
    assert dict(w.options["env"]) == {"REGION": "eu", "MODE": "x"}
    assert w.options["cwd"] == "~/src"


# -- unknown keys, wrong types, missing options ------------------------------------


def test_unknown_top_level_key() -> None:
    msg = config_error('[profile.x]\nsource = "demo"\n')
    assert msg.startswith("/etc/tokend.toml: profile: unknown key")
    assert "defaults, endpoints, hosts, profiles" in msg


def test_unknown_key_in_defaults() -> None:
    msg = config_error('[defaults]\nmin_tll = "5m"\n')
    assert "/etc/tokend.toml" in msg
    assert "defaults.min_tll: unknown key" in msg
    assert "min_ttl" in msg and "refresh_limit" in msg and "timeout" in msg


def test_source_options_are_not_accepted_in_defaults() -> None:
    msg = config_error('[defaults]\nttl = "5m"\n')
    assert "defaults.ttl: unknown key" in msg


def test_unknown_key_in_profile_names_the_key_path() -> None:
    msg = config_error(
        """
        [profiles.vertex]
        source = "demo"
        scopes = ["https://www.googleapis.com/auth/cloud-platform"]
        """
    )
    assert msg.startswith("/etc/tokend.toml: profiles.vertex.scopes: unknown key")
    # what was expected: the common keys and the source's own options
    for key in ("source", "min_ttl", "timeout", "refresh_limit", "lifetime", "latency"):
        assert key in msg


def test_option_of_another_source_is_unknown() -> None:
    msg = config_error('[profiles.e]\nsource = "env"\nvar = "X"\ncommand = ["x"]\n')
    assert "profiles.e.command: unknown key" in msg


@pytest.mark.parametrize(
    ("body", "keypath", "expected"),
    [
        ("min_ttl = true", "profiles.p.min_ttl", "expected a duration string"),
        ('min_ttl = ["5m"]', "profiles.p.min_ttl", "got an array"),
        ('min_ttl = "5 minutes"', "profiles.p.min_ttl", "expected a duration"),
        ('min_ttl = "-5m"', "profiles.p.min_ttl", "expected a duration"),
        ("min_ttl = -5", "profiles.p.min_ttl", "non-negative"),
        ("min_ttl = nan", "profiles.p.min_ttl", "finite"),  # would never count as expired
        ("min_ttl = inf", "profiles.p.min_ttl", "finite"),
        ("timeout = -inf", "profiles.p.timeout", "finite"),
        ('lifetime = "forever"', "profiles.p.lifetime", "'forever'"),
        # A number is seconds, bounded like a string: at most 30 days.
        ('lifetime = "31d"', "profiles.p.lifetime", "30d00h maximum"),
        ("lifetime = 2592001", "profiles.p.lifetime", "30d00h maximum"),
        ("min_ttl = 1e300", "profiles.p.min_ttl", "30d00h maximum"),
    ],
)
def test_wrong_types_for_durations(body: str, keypath: str, expected: str) -> None:
    msg = config_error(f'[profiles.p]\nsource = "demo"\n{body}\n')
    assert f"/etc/tokend.toml: {keypath}: " in msg
    assert expected in msg


@pytest.mark.parametrize(
    ("body", "keypath", "expected"),
    [
        ('command = "gcloud auth"', "command", "expected a non-empty array of strings, got a string"),
        ("command = []", "command", "expected a non-empty array of strings"),
        ('command = ["gcloud", 1]', "command", "expected a non-empty array of strings"),
        ('command = ["x"]\ncwd = 5', "cwd", "expected a string, got an integer"),
        ('command = ["x"]\nenv = ["A=1"]', "env", "expected a table of strings, got an array"),
        ('command = ["x"]\nenv = { A = 1 }', "env", "expected a table of strings"),
        ('command = ["x"]\nttl = { m = 5 }', "ttl", 'expected a duration string such as "5m", got a table'),
    ],
)
def test_wrong_types_for_options(body: str, keypath: str, expected: str) -> None:
    msg = config_error(f'[profiles.w]\nsource = "command"\n{body}\n')
    assert f"profiles.w.{keypath}: {expected}" in msg


def test_wrong_type_in_defaults() -> None:
    msg = config_error('[defaults]\ntimeout = false\n[profiles.d]\nsource = "demo"\n')
    assert "defaults.timeout: expected a duration string" in msg


@pytest.mark.parametrize(
    ("text", "keypath", "expected"),
    [
        ("profiles = 5", "profiles", "expected a table, got an integer"),
        ('defaults = "x"', "defaults", "expected a table, got a string"),
        ('[profiles]\nvertex = "google"', "profiles.vertex", "expected a table, got a string"),
    ],
)
def test_tables_that_are_not_tables(text: str, keypath: str, expected: str) -> None:
    assert f"{keypath}: {expected}" in config_error(text)


def test_unknown_source_lists_the_known_ones() -> None:
    msg = config_error('[profiles.vertex]\nsource = "gooogle"\n')
    assert "profiles.vertex.source: unknown source 'gooogle'" in msg
    for name in ("command", "demo", "env", "file", "keyring"):
        assert name in msg


@pytest.mark.parametrize("body", ["", "source = 5", 'source = ["demo"]'])
def test_missing_or_non_string_source(body: str) -> None:
    msg = config_error(f"[profiles.x]\n{body}\n")
    assert "profiles.x.source: expected a source name" in msg


def test_command_source_requires_command() -> None:
    msg = config_error('[profiles.wrapped]\nsource = "command"\nttl = "50m"\n')
    assert "/etc/tokend.toml: profiles.wrapped.command: required by source 'command'" in msg
    assert "argv" in msg  # the option's help says what is expected


def test_env_source_requires_var() -> None:
    assert "profiles.e.var: required by source 'env'" in config_error('[profiles.e]\nsource = "env"\n')


@pytest.mark.parametrize(
    "name", ["-leading-dash", "has space", "slash/name", "a" * 65, "ünïcode", ".hidden", ""]
)
def test_invalid_profile_names(name: str) -> None:
    msg = config_error(f'[profiles."{name}"]\nsource = "demo"\n')
    assert "invalid profile name" in msg
    assert f"profiles.{name}:" in msg


@pytest.mark.parametrize("name", ["a", "vertex", "my_profile", "dev.eu-west-1", "me@corp", "A" * 64, "0day"])
def test_valid_profile_names(name: str) -> None:
    assert name in parse(f'[profiles."{name}"]\nsource = "demo"\n').profiles


def test_malformed_toml() -> None:
    msg = config_error('[profiles.x\nsource = "demo"\n')
    assert msg.startswith("/etc/tokend.toml: invalid TOML")


def test_duplicate_profile_is_malformed_toml() -> None:
    msg = config_error('[profiles.x]\nsource = "demo"\n[profiles.x]\nsource = "env"\n')
    assert "invalid TOML" in msg


# -- loading files ------------------------------------------------------------------


def test_load_explicit_path(tmp_path: Path, no_env: Path) -> None:
    path = write(tmp_path, GOOD)
    cfg = config.load(path)
    assert cfg.path == path
    assert set(cfg.profiles) == {"wrapped", "fast", "openai"}


def test_load_from_tokend_config(tmp_path: Path, no_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("TOKEND_CONFIG", str(path))
    assert config.default_path() == path
    assert set(config.load().profiles) == {"wrapped", "fast", "openai"}


def test_load_from_xdg_config_home(no_env: Path) -> None:
    no_env.parent.mkdir(parents=True)
    no_env.write_text('[profiles.x]\nsource = "demo"\n')
    os.chmod(no_env, 0o600)
    assert config.default_path() == no_env
    cfg = config.load()
    assert cfg.path == no_env
    assert list(cfg.profiles) == ["x"]


def test_xdg_default_falls_back_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TOKEND_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.default_path() == tmp_path / ".config" / "tokend" / "config.toml"


def test_no_file_at_default_location_gives_demo_profile(no_env: Path) -> None:
    assert not no_env.exists()
    cfg = config.load()
    assert cfg.path is None
    assert list(cfg.profiles) == ["demo"]
    assert cfg.profile("demo").source == "demo"
    assert cfg.profile("demo").min_ttl == policy.DEFAULT_MIN_TTL


def test_tokend_config_pointing_to_missing_file_is_an_error(
    no_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("TOKEND_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="config file not found") as info:
        config.load()
    assert str(missing) in info.value.message
    assert info.value.exit_status == EXIT_USAGE


def test_explicit_missing_path_is_an_error(no_env: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml")


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o620, 0o602, 0o666, 0o777])
def test_config_writable_by_others_is_refused(tmp_path: Path, no_env: Path, mode: int) -> None:
    path = write(tmp_path, GOOD, mode)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.exit_status == 2
    assert str(path) in info.value.message
    assert f"{mode:04o}" in info.value.message
    assert "chmod go-w" in info.value.message


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o644])
def test_config_not_writable_by_others_is_accepted(tmp_path: Path, no_env: Path, mode: int) -> None:
    path = write(tmp_path, GOOD, mode)
    assert "fast" in config.load(path).profiles


def test_errors_name_the_file(tmp_path: Path, no_env: Path) -> None:
    path = write(tmp_path, '[profiles.vertex]\nsource = "demo"\nscopes = ["x"]\n')
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.message.startswith(f"{path}: profiles.vertex.scopes: unknown key")


def test_non_utf8_config(tmp_path: Path, no_env: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[profiles.x]\nsource = "d\xffemo"\n')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="cannot read config"):
        config.load(path)


def test_config_path_that_is_a_directory(tmp_path: Path, no_env: Path) -> None:
    d = tmp_path / "dir.toml"
    d.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="cannot read config"):
        config.load(d)


# -- profiles -------------------------------------------------------------------------


def test_unknown_profile_names_known_profiles() -> None:
    cfg = parse(GOOD)
    with pytest.raises(UnknownProfile) as info:
        cfg.profile("nope")
    msg = info.value.message
    assert "'nope'" in msg
    assert "fast, openai, wrapped" in msg
    assert "/etc/tokend.toml" in msg
    assert info.value.exit_status == 2


def test_unknown_profile_in_builtin_config(no_env: Path) -> None:
    with pytest.raises(UnknownProfile, match="built-in default config: demo"):
        config.load().profile("vertex")


def test_unknown_profile_with_no_profiles() -> None:
    with pytest.raises(UnknownProfile, match="none"):
        parse("").profile("x")


BASE = """\
[defaults]
min_ttl = "5m"
[profiles.w]
source = "command"
command = ["helper", "--print"]
ttl = "50m"
"""


def fingerprint(text: str) -> str:
    return parse(text).profile("w").fingerprint


def test_fingerprint_is_stable() -> None:
    assert fingerprint(BASE) == fingerprint(BASE)
    # the same settings spelled differently are the same settings
    assert fingerprint(BASE) == fingerprint(BASE.replace('"5m"', "300").replace('"50m"', '"3000s"'))
    # parsing from another file does not matter either
    assert parse(BASE, None).profile("w").fingerprint == fingerprint(BASE)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('min_ttl = "5m"', 'min_ttl = "6m"'),  # inherited from [defaults]
        ('ttl = "50m"', 'ttl = "49m"'),
        ('["helper", "--print"]', '["helper", "--print", "--verbose"]'),
        ('["helper", "--print"]', '["--print", "helper"]'),
        ('ttl = "50m"', 'ttl = "50m"\ntimeout = "10s"'),
        ('ttl = "50m"', 'ttl = "50m"\nrefresh_limit = "10s"'),
        ('ttl = "50m"', 'ttl = "50m"\ncwd = "/tmp"'),
        ('ttl = "50m"', 'ttl = "50m"\nenv = { A = "1" }'),
    ],
)
def test_fingerprint_changes_with_any_setting(old: str, new: str) -> None:
    assert old in BASE
    assert fingerprint(BASE) != fingerprint(BASE.replace(old, new))


def test_fingerprint_changes_with_env_values_and_source() -> None:
    a = BASE + 'env = { A = "1" }\n'
    b = BASE + 'env = { A = "2" }\n'
    assert fingerprint(a) != fingerprint(b)
    p = Profile(name="w", source="command", min_ttl=1.0, timeout=1.0, refresh_limit=1.0)
    q = Profile(name="w", source="demo", min_ttl=1.0, timeout=1.0, refresh_limit=1.0)
    r = Profile(name="x", source="command", min_ttl=1.0, timeout=1.0, refresh_limit=1.0)
    assert len({p.fingerprint, q.fingerprint, r.fingerprint}) == 3


def test_fingerprint_ignores_other_profiles() -> None:
    other = BASE + '[profiles.other]\nsource = "demo"\n'
    assert fingerprint(BASE) == fingerprint(other)
    slower = other.replace('source = "demo"', 'source = "demo"\nlatency = "1s"')
    assert fingerprint(other) == fingerprint(slower)


# -- each source's own checks run at load ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "keypath", "expected"),
    [
        (
            'source = "azure-keyvault"\nvault_url = "http://x"\nname = "k"',
            "profiles.p.vault_url",
            "expected https://VAULT.vault.azure.net",
        ),
        (
            'source = "azure-keyvault"\nvault_url = "https://k.vault.azure.net"\nname = "a/b"',
            "profiles.p.name",
            "letters, digits and dashes",
        ),
        ('source = "gcp-secretmanager"\nname = "foo"', "profiles.p.name", "expected projects/PROJECT"),
        ('source = "google"\nlifetime = "1h"', "profiles.p.lifetime", "set impersonate_service_account"),
        ('source = "google"\ntoken = "id"', "profiles.p.audience", 'required with token = "id"'),
        ('source = "aws"\ntoken = "eks"', "profiles.p.cluster", 'required with token = "eks"'),
        ('source = "aws"\nrole_arn = "arn:aws:iam::1:role/r"\nduration = "13h"', "profiles.p.duration", "12"),
        ('source = "vault"\npath = "k"\nkv_version = 3', "profiles.p.kv_version", "expected 1 or 2"),
        ('source = "vault"\npath = "k"\ntoken = "hvs.literal"', "profiles.p.token", "expected env:VARIABLE"),
        ('source = "azure"\nscopes = ["a"]\nresource = "b"', "profiles.p.resource", "not both"),
        ('source = "azure"\noidc = "github"', "profiles.p.oidc", 'credential = "workload-identity"'),
    ],
)
def test_source_checks_are_config_errors_at_load(body: str, keypath: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(f"[profiles.p]\n{body}\n")
    assert info.value.message.startswith(f"/etc/tokend.toml: {keypath}: ")
    assert expected in info.value.message and info.value.exit_status == EXIT_USAGE


def test_a_broken_secret_profile_is_refused_by_load(tmp_path: Path, no_env: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.kv]\nsource = "azure-keyvault"\nvault_url = "http://x"\nname = "k"\n')
    with pytest.raises(ConfigError, match=rf"^{path}: profiles.kv.vault_url: expected https://"):
        config.load(path)


# -- relative command paths ------------------------------------------------------------------


def test_relative_command_paths_are_next_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.toml"
    cfg = parse(
        """\
        [profiles.dot]
        source = "command"
        command = ["./helper.sh", "--flag", "./not-the-program"]
        [profiles.sub]
        source = "command"
        command = ["bin/helper"]
        [profiles.bare]
        source = "command"
        command = ["gcloud", "auth", "print-access-token"]
        [profiles.absolute]
        source = "command"
        command = ["/usr/bin/helper"]
        """,
        path,
    )
    here = tmp_path / "conf"
    assert cfg.profile("dot").options["command"] == (str(here / "helper.sh"), "--flag", "./not-the-program")
    assert cfg.profile("sub").options["command"] == (str(here / "bin" / "helper"),)
    assert cfg.profile("bare").options["command"][0] == "gcloud"  # PATH lookup, as before
    assert cfg.profile("absolute").options["command"][0] == "/usr/bin/helper"


def test_relative_command_path_without_a_config_file_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"profiles.p.command: './x.sh' is relative; give an absolute path"):
        parse('[profiles.p]\nsource = "command"\ncommand = ["./x.sh"]\n', None)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('source = "command"\ncommand = ["x"]\nttl = "1m"', "ttl"),
        ('source = "command"\ncommand = ["x"]\nttl = "5m"', "ttl"),
        ('source = "demo"\nlifetime = "2m"\nmin_ttl = "3m"', "lifetime"),
    ],
)
def test_a_fixed_life_not_longer_than_min_ttl_is_refused(body: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"profiles\.p\.{key}: .* not longer than profiles\.p\.min_ttl"):
        config.parse(f"[profiles.p]\n{body}\n", None)


def test_a_fixed_life_longer_than_min_ttl_is_accepted() -> None:
    cfg = config.parse('[profiles.p]\nsource = "command"\ncommand = ["x"]\nttl = "6m"\n', None)
    assert cfg.profile("p").options["ttl"] == 360.0
