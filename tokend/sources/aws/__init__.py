"""``source = "aws"``: AWS credentials as botocore resolves them, Bedrock API keys, EKS tokens.

The base credentials come from an AWS profile (``aws_profile``) or botocore's
default chain, exactly as the AWS CLI and SDKs find them: static keys, SSO,
``role_arn`` chains, ``credential_source``, web identity, ``credential_process``,
container and instance metadata. On top of them tokend can assume a role
itself (``role_arn``; with ``mfa_serial`` the code is asked by ``tokend login``).
``token`` picks what is served: the credentials, an Amazon Bedrock API key or
an EKS token. boto3/botocore are imported lazily, inside these modules only.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tokend.ci import oidc
from tokend.core import policy
from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, LoginRequired, TokendError, UsageError
from tokend.sources.base import BaseSource, FetchRequest, LoginContext, Option

#: STS AssumeRole limits (DurationSeconds).
ROLE_MIN_DURATION = 900
ROLE_MAX_DURATION = 43200
#: Bound on each call ``tokend login`` makes (a person waits, not a consumer).
LOGIN_CALL_TIMEOUT = 30.0


class AwsSource(BaseSource):
    """AWS credentials, Bedrock API keys and EKS tokens from botocore's credential chain."""

    name = "aws"
    options: ClassVar[dict[str, Option]] = {
        "aws_profile": Option("str", help="profile in the AWS config (default: AWS_PROFILE, else default)"),
        "region": Option(
            "str", help="region for STS, Bedrock keys and EKS tokens (default: the AWS profile's)"
        ),
        "token": Option(
            "str",
            default="credentials",
            choices=("credentials", "bedrock", "eks", "ecr"),
            help="what to serve: AWS credentials, a Bedrock API key, an EKS token or an ECR registry login",
        ),
        "cluster": Option("str", help='EKS cluster name (token = "eks")'),
        "lifetime": Option("duration", default=12 * 3600.0, help="life of a Bedrock API key (at most 12h)"),
        "role_arn": Option("str", help="a role tokend assumes on top of the base credentials"),
        "external_id": Option("str", help="ExternalId for role_arn"),
        "session_name": Option("str", help="RoleSessionName for role_arn (default: tokend-PROFILE)"),
        "duration": Option("duration", default=3600.0, help="life of the role_arn session"),
        "mfa_serial": Option("str", help="MFA device ARN; its code is asked by tokend login"),
        "mfa_duration": Option(
            "duration", default=12 * 3600.0, help="life of the MFA session tokend login starts"
        ),
        # CI: assume role_arn with the job's OIDC token (AssumeRoleWithWebIdentity), no stored key.
        **oidc.OPTIONS,
    }

    supports_login: ClassVar[bool] = True

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        from tokend.sources.children import Children

        super().__init__(profile, options, clock=clock)
        self._children = Children()

    def close(self) -> None:
        """Kill credential_process commands still running (daemon shutdown)."""
        self._children.close()

    # -- fetch ----------------------------------------------------------------------

    def fetch(self, request: FetchRequest) -> Credential:
        from tokend.sources.aws import session as aws

        if self.settings.get("oidc"):
            return self._fetch_web_identity(request)
        with aws.translated(profile=self.profile):
            session = aws.new_session(self.settings["aws_profile"], request.timeout, self._children)
            chain = aws.profile_chain(session)
        self._check_chain(chain)
        chain_role = next((str(body["role_arn"]) for _, body in chain if "role_arn" in body), None)
        with aws.translated(profile=self.profile, role=chain_role):
            base = self._mfa_session() if self.settings["mfa_serial"] else aws.resolve(session)
        role = self.settings["role_arn"]
        with aws.translated(profile=self.profile, role=role):
            creds = self._assume(session, base, request.timeout) if role else base
            return self._serve(session, creds, request.timeout)

    @classmethod
    def validate(cls, profile: str, options: Mapping[str, Any]) -> None:
        s, where = options, f"profiles.{profile}"
        if s["token"] == "eks" and not s["cluster"]:
            raise ConfigError(f'{where}.cluster: required with token = "eks"')
        if s["token"] == "bedrock" and not 1 <= s["lifetime"] <= 12 * 3600:
            raise ConfigError(f"{where}.lifetime: must be between 1s and 12h")
        if s["role_arn"] and not ROLE_MIN_DURATION <= s["duration"] <= ROLE_MAX_DURATION:
            raise ConfigError(f"{where}.duration: must be between 15m and 12h")
        oidc.check(s, profile)
        if s.get("oidc") and (not s["role_arn"] or s["mfa_serial"]):
            raise ConfigError(
                f"{where}.oidc: needs role_arn (the role the CI job assumes with its identity token) "
                "and no mfa_serial"
            )
        if s["mfa_serial"] and not ROLE_MIN_DURATION <= s["mfa_duration"] <= 36 * 3600:
            raise ConfigError(f"{where}.mfa_duration: must be between 15m and 36h")

    def _check_chain(self, chain: list[tuple[str, Any]]) -> None:
        for name, body in chain:
            if "role_arn" in body and "mfa_serial" in body:
                # botocore would prompt for the code on the terminal in the middle of a fetch.
                raise ConfigError(
                    f"aws profile {name!r} sets mfa_serial, for which botocore prompts during a "
                    "fetch; set role_arn and mfa_serial in the tokend profile instead "
                    "(tokend login asks for the code)",
                    profile=self.profile,
                )
            try:
                argv = shlex.split(body.get("credential_process") or "")
            except ValueError:  # botocore reports a malformed command itself
                argv = []
            if len(argv) > 1 and argv[0].rsplit("/", 1)[-1] == "tokend-print" and argv[1] == self.profile:
                raise ConfigError(
                    f"aws profile {name!r} runs tokend-print {self.profile} itself: that would loop",
                    profile=self.profile,
                )

    def _assume(self, session: Any, base: Any, timeout: float) -> Any:
        from tokend.sources.aws.session import AwsCreds, client_config

        s = self.settings
        sts = session.create_client(
            "sts", region_name=self._region(session), config=client_config(timeout), **base.client_kwargs()
        )
        kwargs: dict[str, Any] = {
            "RoleArn": s["role_arn"],
            "RoleSessionName": s["session_name"] or f"tokend-{self.profile}"[:64],
            "DurationSeconds": int(s["duration"]),
        }
        if s["external_id"]:
            kwargs["ExternalId"] = s["external_id"]
        c = sts.assume_role(**kwargs)["Credentials"]
        return AwsCreds.from_sts(c, "tokend-assume-role")

    def _fetch_web_identity(self, request: FetchRequest) -> Credential:
        """role_arn assumed with the CI job's OIDC token: AssumeRoleWithWebIdentity is unsigned."""
        import time

        from botocore import UNSIGNED

        from tokend.sources.aws import session as aws
        from tokend.sources.aws.session import AwsCreds

        s = self.settings
        deadline = time.monotonic() + request.timeout
        audience = s.get("oidc_audience") or oidc.AWS_AUDIENCE
        token = oidc.subject_token(s["oidc"], audience, timeout=request.timeout / 2, profile=self.profile)
        left = max(deadline - time.monotonic(), 0.5)
        with aws.translated(profile=self.profile, role=s["role_arn"]):
            session = aws.new_session(s["aws_profile"], left, self._children)
            sts = session.create_client(
                "sts",
                region_name=self._region(session),
                config=aws.client_config(left, signature_version=UNSIGNED),
            )
            c = sts.assume_role_with_web_identity(
                RoleArn=s["role_arn"],
                RoleSessionName=s["session_name"] or f"tokend-{self.profile}"[:64],
                WebIdentityToken=token,
                DurationSeconds=int(s["duration"]),
            )["Credentials"]
            creds = AwsCreds.from_sts(c, "tokend-web-identity")
            return self._serve(session, creds, left)

    def _serve(self, session: Any, creds: Any, timeout: float) -> Credential:
        from tokend.sources.aws import tokens as aws_tokens

        now = self.clock()
        kind = self.settings["token"]
        if kind == "credentials":
            if creds.expires_at is None:  # long-term keys: re-read now and then, like a static secret
                return Credential(
                    kind="aws",
                    fields=creds.fields(),
                    refresh_at=now + policy.STATIC_TTL,
                    issued_at=now,
                    source=self.name,
                )
            return Credential(
                kind="aws",
                fields=creds.fields(),
                expires_at=creds.expires_at,
                issued_at=now,
                source=self.name,
            )
        region = self._signing_region(session)
        if kind == "ecr":  # docker-credential-tokend: user AWS and a 12-hour password
            user, password, expires_at = aws_tokens.ecr_login(session, creds, region, timeout)
            fields = {"username": user, "password": password}
            return Credential(
                kind="basic", fields=fields, expires_at=expires_at, issued_at=now, source=self.name
            )
        if kind == "bedrock":
            token, expires_at = aws_tokens.bedrock_key(creds, region, int(self.settings["lifetime"]))
        else:
            cluster = str(self.settings["cluster"])
            token, expires_at = aws_tokens.eks_token(session, creds, cluster, region, timeout)
        return Credential.bearer(token, expires_at=expires_at, issued_at=now, source=self.name)

    def _region(self, session: Any) -> str | None:
        region = self.settings["region"] or session.get_config_variable("region")
        return str(region) if region else None

    def _signing_region(self, session: Any) -> str:
        region = self._region(session)
        if region is None:
            raise ConfigError(
                f'token = "{self.settings["token"]}" needs a region: set region in the profile '
                "or in the AWS profile",
                profile=self.profile,
            )
        return region

    # -- MFA sessions ------------------------------------------------------------------

    def _mfa_identity(self) -> str:
        return f"aws-mfa:{self.settings['mfa_serial']}:{self.settings['aws_profile'] or ''}"

    def _mfa_session(self) -> Any:
        from tokend.sources.aws import mfa as aws_mfa

        session = aws_mfa.load(self._mfa_identity())
        if session is None or (session.expires_at or 0) - self.clock() < policy.DEFAULT_MIN_TTL:
            state = "has expired" if session else "has not been started"
            raise LoginRequired(f"the AWS MFA session {state}; run: tokend login {self.profile}")
        return session

    def _mfa_login(self, ctx: LoginContext) -> None:
        from tokend.sources.aws import mfa as aws_mfa
        from tokend.sources.aws import session as aws

        serial = self.settings["mfa_serial"]
        if ctx.prompt is None:
            raise UsageError(f"the MFA code for {serial} needs a terminal", profile=self.profile)
        code = ctx.prompt(f"MFA code for {serial}").strip()
        if not code:
            raise UsageError("no MFA code given", profile=self.profile)
        with aws.translated(profile=self.profile):
            session = aws.new_session(self.settings["aws_profile"], LOGIN_CALL_TIMEOUT)
            base = aws.resolve(session)
            sts = session.create_client(
                "sts",
                region_name=self._region(session),
                config=aws.client_config(LOGIN_CALL_TIMEOUT),
                **base.client_kwargs(),
            )
            mfa = aws_mfa.session_token(sts, serial, code, self.settings["mfa_duration"])
        aws_mfa.store(self._mfa_identity(), mfa)

    # -- login ---------------------------------------------------------------------------

    def _sso(self) -> tuple[Any, Any]:
        from tokend.sources.aws import session as aws
        from tokend.sources.aws import sso as aws_sso

        with aws.translated(profile=self.profile):
            session = aws.new_session(self.settings["aws_profile"], LOGIN_CALL_TIMEOUT)
            return session, aws_sso.find(session.full_config, aws.profile_chain(session))

    def identity(self) -> str:
        """Profiles sharing an SSO session (or MFA device) share one ``tokend login``."""
        if self.settings["mfa_serial"]:
            return self._mfa_identity()
        try:
            _, sso = self._sso()
        except TokendError:  # a broken AWS profile: its own login will say what is wrong
            sso = None
        return sso.identity if sso is not None else super().identity()

    def login(self, ctx: LoginContext) -> None:
        from tokend.sources.aws import sso as aws_sso

        if self.settings["mfa_serial"]:
            self._mfa_login(ctx)
            return
        session, sso = self._sso()
        if sso is None:
            raise self._nothing_to_sign_in()
        aws_sso.login(session, sso, ctx, timeout=LOGIN_CALL_TIMEOUT)

    def logout(self) -> None:
        from tokend.sources.aws import mfa as aws_mfa
        from tokend.sources.aws import sso as aws_sso

        if self.settings["mfa_serial"]:
            aws_mfa.forget(self._mfa_identity())
            return
        _, sso = self._sso()
        if sso is None:
            raise self._nothing_to_sign_in()
        aws_sso.logout(sso)

    def _nothing_to_sign_in(self) -> UsageError:
        name = self.settings["aws_profile"]
        which = f"aws profile {name!r}" if name else "the default AWS profile"
        return UsageError(
            f"{which} uses neither AWS SSO nor mfa_serial: its credentials need no sign-in",
            profile=self.profile,
        )
