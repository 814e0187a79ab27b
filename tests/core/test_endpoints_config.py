"""``[endpoints]``: checked at config load, like every other table."""

from __future__ import annotations

import pytest

from tokend.core.config import parse
from tokend.core.endpoints_config import EndpointEntry
from tokend.core.errors import ConfigError

PROFILES = """
[profiles.role]
source = "aws"
aws_profile = "base"
[profiles.bedrock]
source = "aws"
aws_profile = "base"
token = "bedrock"
[profiles.vertex]
source = "google"
credentials_file = "/nonexistent/sa.json"
[profiles.foundry]
source = "azure"
credential = "cli"
"""


def test_endpoints_table_is_parsed() -> None:
    config = parse(
        PROFILES
        + '[endpoints]\naws = "role"\ngoogle = "vertex"\nazure = "foundry"\nports = { aws = 49811 }\n',
        None,
    )
    assert dict(config.endpoints) == {
        "aws": EndpointEntry("aws", "role", 49811),
        "google": EndpointEntry("google", "vertex", 0),
        "azure": EndpointEntry("azure", "foundry", 0),
    }
    assert dict(parse(PROFILES, None).endpoints) == {}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('aws = "nosuch"', "endpoints.aws: unknown profile 'nosuch'"),
        ('aws = "foundry"', "endpoints.aws = 'foundry': the profile gives source 'azure'"),
        ('aws = "bedrock"', "endpoints.aws = 'bedrock'"),
        ('google = "role"', "endpoints.google = 'role'"),
        ('azure = "vertex"', "endpoints.azure = 'vertex'"),
        ("aws = 3", "endpoints.aws: expected a profile name"),
        ('gcp = "vertex"', "endpoints.gcp: unknown key"),
        ('aws = "role"\nports = { aws = 0 }', "endpoints.ports.aws: expected a port number 1-65535"),
        ('aws = "role"\nports = { aws = "80" }', "endpoints.ports.aws: expected a port number"),
        ('aws = "role"\nports = { google = 8080 }', "endpoints.ports.google: no endpoints.google"),
        (
            'aws = "role"\ngoogle = "vertex"\nports = { aws = 8080, google = 8080 }',
            "one port given to two endpoints",
        ),
    ],
)
def test_bad_endpoints_table_is_one_config_error(table: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(PROFILES + "[endpoints]\n" + table + "\n", None)
    assert message in e.value.line(), e.value.line()
