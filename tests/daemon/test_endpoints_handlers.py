"""The per-cloud endpoint handlers on a broker whose sources are counted stand-ins.

The HTTP layer and the real SDKs are exercised in tests/integration; here each
handler's answers, its derived profiles (other scopes, other resources) and
its error shapes are checked request by request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pytest

from tokend.core.broker import Broker
from tokend.core.config import Config, Profile, parse
from tokend.core.credential import Credential
from tokend.core.errors import LoginRequired, SourceError
from tokend.daemon.endpoints import aws, azure, google
from tokend.daemon.endpoints.http import Handler, Request, Response
from tokend.sources.base import BaseSource, FetchRequest

CONFIG = """
[profiles.keys]
source = "aws"
aws_profile = "x"

[profiles.vertex]
source = "google"

[profiles.foundry]
source = "azure"
resource = "https://vault.azure.net"
client_id = "cid"
"""


class Counted(BaseSource):
    """Hands out a new credential per fetch, named after the profile and its options."""

    name = "counted"
    fetched: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    fail: ClassVar[Exception | None] = None

    def fetch(self, request: FetchRequest) -> Credential:
        if Counted.fail is not None:
            raise Counted.fail
        Counted.fetched.append((self.profile, dict(self.settings)))
        n = len(Counted.fetched)
        if self.profile == "keys":
            return Credential(
                kind="aws",
                fields={"AccessKeyId": "AKIA1", "SecretAccessKey": "s"},
                refresh_at=time.time() + 600,
            )
        return Credential.bearer(f"{self.profile}-{n}", expires_at=time.time() + 3600)


@pytest.fixture
def broker() -> Iterator[Broker]:
    Counted.fetched, Counted.fail = [], None

    def factory(profile: Profile, clock: Callable[[], float]) -> BaseSource:
        return Counted(profile.name, profile.options, clock=clock)

    b = Broker(parse(CONFIG, None), source_factory=factory)
    yield b
    b.close()


def get(handler: Handler, path: str, headers: Mapping[str, str], **query: str) -> Response:
    lower = {k.lower(): v for k, v in headers.items()}

    async def call() -> Response:
        return await handler(Request("GET", path, query, lower))

    return asyncio.run(call())


def body(response: Response) -> Any:
    return json.loads(response.body)


FLAVOR = {"Metadata-Flavor": "Google"}
SA = "/computeMetadata/v1/instance/service-accounts/"


def test_aws_answers_container_credentials(broker: Broker) -> None:
    handler = aws.AwsEndpoint(broker, "keys", "tok")
    answer = get(handler, aws.PATH, {"Authorization": "tok"})
    assert answer.status == 200
    doc = body(answer)
    assert doc["AccessKeyId"] == "AKIA1" and doc["SecretAccessKey"] == "s" and doc["Token"] == ""
    left = time.mktime(time.strptime(doc["Expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())
    assert 3000 < left <= 3700  # long-term keys: when to ask again
    assert get(handler, aws.PATH, {}).status == 401
    assert get(handler, aws.PATH, {"Authorization": "Bearer tok"}).status == 403


def test_errors_carry_tokends_line_retryable_or_not(broker: Broker) -> None:
    Counted.fail = SourceError("STS said no", retryable=True)
    answer = get(aws.AwsEndpoint(broker, "keys", "t"), aws.PATH, {"Authorization": "t"})
    assert answer.status == 503 and body(answer) == {
        "code": "ServiceUnavailable",
        "message": "tokend: keys: STS said no",
    }
    Counted.fail = LoginRequired("run: tokend login foundry")
    answer = get(
        azure.AzureEndpoint(broker, "foundry", "h"),
        azure.PATH,
        {"X-IDENTITY-HEADER": "h"},
        **{"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
    )
    assert answer.status == 500
    assert body(answer) == {"statusCode": 500, "message": "tokend: foundry: run: tokend login foundry"}


def test_google_paths(broker: Broker) -> None:
    ident = google.Identity(email="sa@p.iam.gserviceaccount.com", scopes=("s1",), project="p", person=False)
    handler = google.GoogleEndpoint(broker, "vertex", ident)
    for account in ("default", "sa@p.iam.gserviceaccount.com"):
        token = get(handler, SA + account + "/token", FLAVOR)
        assert token.status == 200 and token.headers["Metadata-Flavor"] == "Google"
        assert body(token)["access_token"] == "vertex-1" and 3500 < body(token)["expires_in"] <= 3600
    assert get(handler, SA + "other@x/token", FLAVOR).status == 404
    listing = get(handler, SA, FLAVOR, recursive="true")
    assert body(listing)["default"] == {"aliases": ["default"], "email": ident.email, "scopes": ["s1"]}
    assert body(get(handler, SA + "default/", FLAVOR, recursive="true"))["email"] == ident.email
    assert get(handler, SA + "default/scopes", FLAVOR).body == b"s1\n"
    assert get(handler, "/computeMetadata/v1/project/project-id", FLAVOR).body == b"p"
    assert get(handler, "/computeMetadata/v1/project/numeric-project-id", FLAVOR).status == 404
    assert get(handler, "/computeMetadata/v1/instance", FLAVOR).status == 200
    assert get(handler, "/computeMetadata/v1/instance", {}).status == 403


def test_google_other_scopes_fetch_once_through_a_derived_profile(broker: Broker) -> None:
    handler = google.GoogleEndpoint(broker, "vertex", google.Identity("sa@x", ("s1",), None, person=False))
    first = body(get(handler, SA + "default/token", FLAVOR, scopes="s2,s3"))["access_token"]
    again = body(get(handler, SA + "default/token", FLAVOR, scopes="s2,s3"))["access_token"]
    own = body(get(handler, SA + "default/token", FLAVOR, scopes="s1"))["access_token"]
    assert first == again != own
    scopes = [opts.get("scopes") for _, opts in Counted.fetched]
    assert scopes.count(("s2", "s3")) == 1 and len(Counted.fetched) == 2


def test_google_person_ignores_scopes(broker: Broker) -> None:
    handler = google.GoogleEndpoint(broker, "vertex", google.Identity("default", ("s1",), None, person=True))
    one = body(get(handler, SA + "default/token", FLAVOR, scopes="s9"))["access_token"]
    assert one == body(get(handler, SA + "default/token", FLAVOR))["access_token"]
    assert len(Counted.fetched) == 1


def test_azure_resources_and_identities(broker: Broker) -> None:
    handler = azure.AzureEndpoint(broker, "foundry", "h")
    hdr = {"X-IDENTITY-HEADER": "h"}
    q = {"api-version": "2019-08-01"}
    own = get(handler, azure.PATH, hdr, **q, resource="https://vault.azure.net")
    assert own.status == 200 and body(own)["access_token"] == "foundry-1" and body(own)["client_id"] == "cid"
    assert abs(int(body(own)["expires_on"]) - (time.time() + 3600)) < 60
    assert (
        get(handler, azure.PATH, hdr, **q, resource="https://vault.azure.net/", client_id="cid").status == 200
    )
    assert (
        get(handler, azure.PATH, hdr, **q, resource="https://vault.azure.net", client_id="other").status
        == 400
    )
    assert (
        get(handler, azure.PATH, hdr, **q, resource="https://vault.azure.net", object_id="oid").status == 400
    )
    mgmt = get(handler, azure.PATH, hdr, **q, resource="https://management.azure.com")
    assert body(mgmt)["access_token"].startswith("foundry@") and body(mgmt)["access_token"].endswith("-2")
    assert Counted.fetched[-1][1]["scopes"] == ("https://management.azure.com/.default",)
    assert Counted.fetched[-1][1]["resource"] is None
    assert get(handler, azure.PATH, hdr, resource="https://vault.azure.net").status == 400  # no api-version
    for i in range(20):  # a client cannot make tokend fetch for unboundedly many resources
        last = get(handler, azure.PATH, hdr, **q, resource=f"https://r{i}.example")
    assert last.status == 400 and "too many" in body(last)["message"]
    assert len(Counted.fetched) == 1 + 16


def test_broker_config_is_untouched_for_other_profiles(broker: Broker) -> None:
    before: Config = broker.config
    handler = azure.AzureEndpoint(broker, "foundry", "h")
    get(
        handler,
        azure.PATH,
        {"X-IDENTITY-HEADER": "h"},
        **{"api-version": "2019-08-01", "resource": "https://x"},
    )
    assert set(broker.config.profiles) - set(before.profiles) == {
        n for n in broker.config.profiles if "@" in n
    }
    assert broker.config.profiles["keys"] is before.profiles["keys"]
