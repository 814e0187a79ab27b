"""``source = "aws-secretsmanager"`` and ``source = "aws-ssm"``: static secrets kept in AWS.

Both sign with the credentials of an AWS profile (``aws_profile``, else
botocore's default chain) through the aws source's bounded botocore session,
so every call, credential resolution included, ends within the fetch's
timeout. The value is re-read every ``ttl``; a rotated secret shows in
``tokend status`` as a rotation.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from tokend.core.credential import Credential
from tokend.core.errors import SourceError
from tokend.sources import secretvalue
from tokend.sources.base import BaseSource, FetchRequest, Option

_ARN_REGION = re.compile(r"^arn:aws[\w-]*:(?:secretsmanager|ssm):([a-z0-9-]+):")

#: Error codes meaning "no such secret (or version)": retrying will not help.
_NOT_FOUND = frozenset(
    {
        "ResourceNotFoundException",
        "ParameterNotFound",
        "ParameterVersionNotFound",
        "ParameterVersionLabelNotFound",
    }
)
#: Error codes about the secret's own state (scheduled for deletion, KMS key refused, bad name).
_REFUSED = frozenset(
    {
        "InvalidRequestException",
        "InvalidParameterException",
        "DecryptionFailure",
        "InvalidKeyId",
        "ValidationException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
    }
)
_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})

_COMMON: dict[str, Option] = {
    "aws_profile": Option("str", help="profile in the AWS config whose credentials read the secret"),
    "region": Option("str", help="region of the secret (default: from an ARN, else the AWS profile's)"),
    "json_key": secretvalue.JSON_KEY_OPTION,
    "ttl": secretvalue.TTL_OPTION,
}


class _AwsSecretSource(BaseSource):
    service: ClassVar[str] = ""

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        from tokend.sources.children import Children

        super().__init__(profile, options, clock=clock)
        self._children = Children()  # credential_process commands botocore may run

    def close(self) -> None:
        self._children.close()

    @property
    def what(self) -> str:
        raise NotImplementedError

    def read(self, client: Any) -> str:
        raise NotImplementedError

    def target(self) -> str:
        raise NotImplementedError

    def fetch(self, request: FetchRequest) -> Credential:
        from tokend.sources.aws import session as aws

        with aws.translated(profile=self.profile), _named(self.what, self.profile):
            session = aws.new_session(self.settings["aws_profile"], request.timeout, self._children)
            region = (
                self.settings["region"] or _region_of(self.target()) or session.get_config_variable("region")
            )
            client = session.create_client(
                self.service, region_name=region, config=aws.client_config(request.timeout)
            )
            text = self.read(client)
        try:
            return secretvalue.static(
                text,
                json_key=self.settings["json_key"],
                now=self.clock(),
                ttl=self.settings["ttl"],
                source=self.name,
                what=self.what,
            )
        except SourceError as e:
            e.profile = self.profile
            raise


class AwsSecretsManagerSource(_AwsSecretSource):
    """A secret from AWS Secrets Manager (``GetSecretValue``), by stage or version."""

    name = "aws-secretsmanager"
    service = "secretsmanager"
    options: ClassVar[dict[str, Option]] = {
        "secret_id": Option("str", required=True, help="the secret's name or ARN"),
        "version_stage": Option("str", help="staging label to read (default AWSCURRENT)"),
        "version_id": Option("str", help="a specific version id to read"),
        **_COMMON,
    }

    @property
    def what(self) -> str:
        version = self.settings["version_id"] or self.settings["version_stage"]
        return f"secret {self.settings['secret_id']!r}" + (f" (version {version})" if version else "")

    def target(self) -> str:
        return str(self.settings["secret_id"])

    def read(self, client: Any) -> str:
        kwargs = {"SecretId": self.settings["secret_id"]}
        if self.settings["version_id"]:
            kwargs["VersionId"] = self.settings["version_id"]
        if self.settings["version_stage"]:
            kwargs["VersionStage"] = self.settings["version_stage"]
        answer = client.get_secret_value(**kwargs)
        if answer.get("SecretString") is not None:
            return str(answer["SecretString"])
        binary = answer.get("SecretBinary")
        try:
            return bytes(binary).decode("utf-8")
        except (TypeError, UnicodeDecodeError):
            raise SourceError(f"{self.what} is binary, not UTF-8 text", retryable=False) from None


class AwsSsmSource(_AwsSecretSource):
    """A parameter from AWS Systems Manager Parameter Store, SecureString decrypted."""

    name = "aws-ssm"
    service = "ssm"
    options: ClassVar[dict[str, Option]] = {
        "name": Option("str", required=True, help="parameter name or ARN (NAME:VERSION or NAME:LABEL too)"),
        **_COMMON,
    }

    @property
    def what(self) -> str:
        return f"parameter {self.settings['name']!r}"

    def target(self) -> str:
        return str(self.settings["name"])

    def read(self, client: Any) -> str:
        answer = client.get_parameter(Name=self.settings["name"], WithDecryption=True)
        return str(answer["Parameter"]["Value"])


def _region_of(arn: str) -> str | None:
    match = _ARN_REGION.match(arn)
    return match.group(1) if match else None


@contextlib.contextmanager
def _named(what: str, profile: str) -> Iterator[None]:
    """Restates the AWS errors that are about the secret itself so they name it."""
    try:
        yield
    except Exception as exc:
        response = getattr(exc, "response", None)
        if not isinstance(response, dict):
            raise
        err = response.get("Error", {})
        code, message = str(err.get("Code", "")), " ".join(str(err.get("Message", "")).split())
        if code in _NOT_FOUND:
            raise secretvalue.not_found(what) from None
        if code in _DENIED:
            raise SourceError(
                f"access denied reading {what}: {message or code}", profile=profile, retryable=False
            ) from None
        if code in _REFUSED:
            raise SourceError(
                f"cannot read {what}: {code}: {message}", profile=profile, retryable=False
            ) from None
        raise  # aws_session.translated maps the rest (throttling, 5xx, credentials)
