"""SigV4 bearer tokens made from AWS credentials: Amazon Bedrock API keys and EKS tokens.

Both are presigned URLs wrapped in base64, signed by botocore's own signers
(no SigV4 here). Neither needs a network call.
"""

from __future__ import annotations

import base64
import calendar
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tokend.sources.aws.session import AwsCreds, client_config

# Amazon Bedrock short-term API keys, as aws-bedrock-token-generator makes them.
BEDROCK_HOST = "bedrock.amazonaws.com"
BEDROCK_PREFIX = "bedrock-api-key-"
BEDROCK_MAX_LIFETIME = 12 * 3600

# EKS: what aws-iam-authenticator accepts and `aws eks get-token` prints.
EKS_PREFIX = "k8s-aws-v1."
EKS_HEADER = "x-k8s-aws-id"
EKS_URL_EXPIRES = 60  # the presigned URL's X-Amz-Expires; the server allows 15 minutes
EKS_REPORTED_LIFETIME = 14 * 60  # what the AWS CLI reports, a minute short of the real 15


def signed_at(url: str) -> float:
    """The signing time (X-Amz-Date) of a presigned URL, as a POSIX timestamp."""
    stamp = parse_qs(urlsplit(url).query)["X-Amz-Date"][0]
    return float(calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))


def _earliest(a: float, b: float | None) -> float:
    return a if b is None else min(a, b)


def bedrock_key(creds: AwsCreds, region: str, lifetime: int) -> tuple[str, float]:
    """An Amazon Bedrock API key valid for ``lifetime`` seconds, and when it stops working.

    The key is valid until the earlier of its signature's expiry and that of
    the credentials that signed it.
    """
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(
        method="POST",
        url=f"https://{BEDROCK_HOST}/",
        headers={"host": BEDROCK_HOST},
        params={"Action": "CallWithBearerToken"},
    )
    SigV4QueryAuth(creds.signer_credentials(), "bedrock", region, expires=lifetime).add_auth(request)
    url: str = request.url
    encoded = base64.b64encode((url.removeprefix("https://") + "&Version=1").encode()).decode()
    return BEDROCK_PREFIX + encoded, _earliest(signed_at(url) + lifetime, creds.expires_at)


def eks_token(session: Any, creds: AwsCreds, cluster: str, region: str, timeout: float) -> tuple[str, float]:
    """A Kubernetes bearer token for EKS cluster ``cluster``, and when to stop using it.

    The same presigned STS GetCallerIdentity URL as ``aws eks get-token``,
    carrying the signed ``x-k8s-aws-id`` header that names the cluster.
    """
    sts = session.create_client(
        "sts", region_name=region, config=client_config(timeout), **creds.client_kwargs()
    )

    def take_cluster(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        if EKS_HEADER in params:
            context[EKS_HEADER] = params.pop(EKS_HEADER)

    def add_header(request: Any, **kwargs: Any) -> None:
        if EKS_HEADER in request.context:
            request.headers[EKS_HEADER] = request.context[EKS_HEADER]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", take_cluster)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_header)
    url: str = sts.generate_presigned_url(
        "get_caller_identity", Params={EKS_HEADER: cluster}, ExpiresIn=EKS_URL_EXPIRES, HttpMethod="GET"
    )
    token = EKS_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return token, _earliest(signed_at(url) + EKS_REPORTED_LIFETIME, creds.expires_at)


def ecr_login(session: Any, creds: AwsCreds, region: str, timeout: float) -> tuple[str, str, float]:
    """(username, password, expiry) of an ECR registry login (``aws ecr get-login-password``).

    One GetAuthorizationToken call; the token is valid for 12 hours in every
    registry of the account and region, as user ``AWS``.
    """
    ecr = session.create_client(
        "ecr", region_name=region, config=client_config(timeout), **creds.client_kwargs()
    )
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return user, password, _earliest(data["expiresAt"].timestamp(), creds.expires_at)
