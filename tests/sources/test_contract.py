"""The contract every source passes (keyring's BackendBasicTests, for credentials).

Each built-in source has a subclass of ``SourceContract`` below that says how
to configure it so a fetch succeeds (and, where that exists, how to configure
it so there is nothing to try). Sources whose upstream needs fake servers
subclass ``SourceContract`` in their own test module::

    from tests.sources.test_contract import SourceContract

    class TestGoogleContract(SourceContract):
        source_name = "google"

        @pytest.fixture
        def options(self, fake_metadata_server): ...
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import keyring
import keyring.backend
import keyring.errors
import pytest
from jaraco.classes import properties

from tests.sources import brokered
from tokend.core import config
from tokend.core.credential import KINDS, Credential
from tokend.core.errors import SourceUnavailable, TokendError
from tokend.sources import registry
from tokend.sources.base import BaseSource, Option

ROOT = Path(__file__).resolve().parents[2]
OPTION_TYPES = {"str", "duration", "strlist", "strs", "bool", "int", "table"}
#: Modules a source may import only inside ``fetch`` (DESIGN §1: SDKs are imported lazily).
HEAVY_MODULES = (
    "boto3",
    "botocore",
    "google.auth",
    "google.oauth2",
    "azure.identity",
    "azure.core",
    "requests",
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def profile_toml(source: str, options: Mapping[str, Any]) -> str:
    lines = ["[profiles.contract]", f"source = {toml_value(source)}"]
    lines += [f"{key} = {toml_value(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


class SourceContract:
    """Subclasses set ``source_name`` and provide the ``options`` fixture."""

    source_name: ClassVar[str]

    @pytest.fixture
    def options(self) -> dict[str, Any]:
        raise NotImplementedError

    @pytest.fixture
    def unavailable_options(self) -> dict[str, Any] | None:
        """Options under which the source has nothing to try; None if that cannot happen."""
        return None

    def build(self, options: Mapping[str, Any], clock: Any) -> BaseSource:
        # Through the config loader and the broker's factory, as the daemon builds it.
        return brokered.build(config.parse(profile_toml(self.source_name, options), None), "contract", clock)

    @pytest.fixture
    def source(self, options: dict[str, Any], clock: Any) -> BaseSource:
        return self.build(options, clock)

    def test_registered_under_its_name(self) -> None:
        cls = registry.lookup(self.source_name)
        assert cls is not None
        assert cls.name == self.source_name
        assert self.source_name in registry.names()

    def test_built_through_config_and_registry(self, source: BaseSource) -> None:
        cls = registry.lookup(self.source_name)
        assert isinstance(source, cls)  # type: ignore[arg-type]
        assert source.profile == "contract"

    def test_fetch_returns_a_valid_credential(self, source: BaseSource, clock: Any) -> None:
        cred = source.fetch(brokered.request(source))
        assert isinstance(cred, Credential)
        assert cred.kind in KINDS
        now = clock()
        assert cred.expires_at is None or cred.expires_at > now, "returned an expired credential"
        assert cred.refresh_at is None or cred.refresh_at > now
        assert cred.expires_at is not None or cred.refresh_at is not None, "never re-read: give refresh_at"
        assert cred.source == self.source_name
        values = cred.secret_values()
        assert values, "a credential with nothing secret in it"
        text = repr(cred)
        assert all(v not in text for v in values)

    def test_fetch_again_and_forced(self, source: BaseSource) -> None:
        first = source.fetch(brokered.request(source))
        again = source.fetch(brokered.request(source, forced=True))
        assert again.kind == first.kind

    def test_close_is_safe(self, source: BaseSource) -> None:
        source.close()
        source.close()

    def test_nothing_to_try_is_unavailable(
        self, unavailable_options: dict[str, Any] | None, clock: Any
    ) -> None:
        if unavailable_options is None:
            pytest.skip(f"source {self.source_name!r} always has something to try")
        source = self.build(unavailable_options, clock)
        with pytest.raises(SourceUnavailable) as info:
            source.fetch(brokered.request(source))
        assert info.value.profile == "contract"


# -- the built-in sources --------------------------------------------------------------


class TestDemoContract(SourceContract):
    source_name = "demo"

    @pytest.fixture
    def options(self) -> dict[str, Any]:
        return {"latency": 0, "lifetime": "10m"}


class TestCommandContract(SourceContract):
    source_name = "command"

    @pytest.fixture
    def options(self, tmp_path: Path) -> dict[str, Any]:
        script = tmp_path / "helper.py"
        doc = {"access_token": "cmd-token-1", "expires_in": 3599}
        script.write_text(f"print({json.dumps(json.dumps(doc))})\n")
        return {"command": [sys.executable, str(script)], "ttl": "50m"}

    @pytest.fixture
    def unavailable_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"command": [str(tmp_path / "not-installed")]}


class TestEnvContract(SourceContract):
    source_name = "env"

    @pytest.fixture
    def options(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("TOKEND_CONTRACT_SECRET", "sk-contract-env")
        return {"var": "TOKEND_CONTRACT_SECRET"}

    @pytest.fixture
    def unavailable_options(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.delenv("TOKEND_CONTRACT_UNSET", raising=False)
        return {"var": "TOKEND_CONTRACT_UNSET"}


class TestFileContract(SourceContract):
    source_name = "file"

    @pytest.fixture
    def options(self, tmp_path: Path) -> dict[str, Any]:
        path = tmp_path / "secret"
        path.write_text("file-contract-secret\n")
        return {"path": str(path), "ttl": "10m"}

    @pytest.fixture
    def unavailable_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "missing")}


class MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-memory keychain, only ever installed explicitly with ``keyring.set_keyring``."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test backend: never chosen automatically")

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


class TestKeyringContract(SourceContract):
    source_name = "keyring"

    @pytest.fixture
    def options(self, memory_keyring: MemoryKeyring) -> dict[str, Any]:
        memory_keyring.set_password("tokend-contract", "contract", "sk-contract-keychain")
        return {"service": "tokend-contract"}

    @pytest.fixture
    def unavailable_options(self, memory_keyring: MemoryKeyring) -> dict[str, Any]:
        return {"service": "tokend-contract-empty"}


CONTRACTS = {
    cls.source_name: cls
    for cls in (TestDemoContract, TestCommandContract, TestEnvContract, TestFileContract, TestKeyringContract)
}


# -- every registered source: schema and import hygiene --------------------------------------


def _contracts_elsewhere() -> set[str]:
    """Source names of the SourceContract subclasses in the other source test modules."""
    here = Path(__file__).resolve()
    names = set()
    for path in here.parent.glob("test_*.py"):
        if path != here:
            names.update(re.findall(r'^    source_name = "([^"]+)"', path.read_text(), re.M))
    return names


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_builtin_source_has_a_contract(name: str) -> None:
    if name in CONTRACTS:
        assert CONTRACTS[name].source_name == name
    else:
        assert name in _contracts_elsewhere(), f"no SourceContract subclass tests source {name!r}"


@pytest.mark.parametrize("name", registry.names())
def test_name_matches_registry_key(name: str) -> None:
    cls = registry.lookup(name)
    assert cls is not None
    assert issubclass(cls, BaseSource)
    assert cls.name == name


@pytest.mark.parametrize("name", registry.names())
def test_options_schema_is_valid(name: str) -> None:
    cls = registry.lookup(name)
    assert cls is not None
    # a source option must not shadow the keys every profile has
    assert not set(cls.options) & {"source", *config.COMMON}
    for key, opt in cls.options.items():
        where = f"{name}.{key}"
        assert isinstance(opt, Option), where
        assert key.isidentifier() and key == key.lower(), where
        assert opt.type in OPTION_TYPES, where
        assert opt.help, f"{where}: options explain themselves in errors"
        if opt.required:
            assert opt.default is None, f"{where}: a required option with a default"
        if opt.choices:
            assert opt.type == "str", where
            assert opt.default is None or opt.default in opt.choices, where
        if opt.default is not None:
            # defaults are used as they are: they must already have the validated shape
            assert default_has_type(opt), f"{where}: default {opt.default!r} is not a {opt.type}"


def default_has_type(opt: Option) -> bool:
    value = opt.default
    if opt.type == "str":
        return isinstance(value, str)
    if opt.type == "duration":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf")
    if opt.type == "strlist":
        return isinstance(value, tuple) and bool(value) and all(isinstance(v, str) for v in value)
    if opt.type == "strs":
        return isinstance(value, str) or (
            isinstance(value, tuple) and bool(value) and all(isinstance(v, str) for v in value)
        )
    if opt.type == "bool":
        return isinstance(value, bool)
    if opt.type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if opt.type == "table":
        return isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values())
    return False


#: Required options whose shape ``validate`` checks: a valid value of each.
VALID_SAMPLES: dict[str, dict[str, Any]] = {
    "azure-keyvault": {"vault_url": "https://v.vault.azure.net", "name": "x"},
    "gcp-secretmanager": {"name": "projects/p/secrets/s"},
    "oauth2": {"issuer": "https://login.example.com", "client_secret": "env:X"},
}


@pytest.mark.parametrize("name", registry.names())
def test_only_required_options_are_needed(name: str) -> None:
    cls = registry.lookup(name)
    assert cls is not None
    required = {k: o for k, o in cls.options.items() if o.required}
    samples = {
        "str": "x",
        "duration": "5m",
        "strlist": ["x"],
        "strs": "x",
        "bool": True,
        "int": 1,
        "table": {"K": "v"},
    }
    options = {k: (o.choices[0] if o.choices else samples[o.type]) for k, o in required.items()}
    options.update(VALID_SAMPLES.get(name, {}))  # values validate() accepts
    profile = config.parse(profile_toml(name, options), None).profile("contract")
    assert set(profile.options) == set(cls.options)  # every option has a value, defaults filled in
    for key in required:
        missing = {k: v for k, v in options.items() if k != key}
        with pytest.raises(TokendError, match=f"profiles.contract.{key}: required"):
            config.parse(profile_toml(name, missing), None)


@pytest.mark.timeout(60)
def test_looking_up_sources_imports_no_sdk() -> None:
    code = (
        "import sys\n"
        "from tokend.sources import registry\n"
        "for name in registry.names():\n"
        "    registry.lookup(name)\n"
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "print(' '.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported at lookup: {done.stdout.strip()}"
