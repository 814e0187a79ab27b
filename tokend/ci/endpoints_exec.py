"""``tokend exec --endpoint …``: fetch first, serve the endpoints for exactly the life of CMD.

Daemonless like the rest of ``tokend exec``: one local broker (the shared file
cache in the runtime directory, so concurrent execs make one fetch) fetches
every profile before CMD starts — a failure is tokend's one line and exit
status, and CMD's first SDK request is answered from the cache, inside
botocore's 2 s container timeout — then answers the endpoints, refreshing
through the same broker. CMD is a child: its exit status and signals pass
through (``tokend.ci.masking``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tokend.ci import endpoints_env as envs
from tokend.ci import inject, masking
from tokend.core.broker import Broker
from tokend.core.credential import Credential
from tokend.daemon.endpoints.http import EndpointServer, Handler


def run(
    argv: Sequence[str],
    endpoints: Sequence[str],
    var_specs: Sequence[str],
    *,
    mask: bool,
    timeout: float | None,
) -> int:
    """Run ``argv`` with the endpoints served; its exit status (``-N``: killed by signal N)."""
    from tokend.client import paths
    from tokend.core.daemonless import local_broker
    from tokend.daemon.endpoints.runner import serving

    specs = [envs.parse_endpoint(t) for t in endpoints]
    envs.check_specs(specs)
    vars_ = [inject.parse_spec(t) for t in var_specs]
    with local_broker(timeout) as broker:
        for spec in specs:
            envs.check_profile(spec, broker.profile(spec.profile))
        creds = _fetch(broker, [*(s.profile for s in specs), *(v.profile for v in vars_)], timeout)
        for spec in specs:
            envs.check_credential(spec, creds[spec.profile])
        found = inject.variables(vars_, creds)
        envs.check_clashes(specs, [v.name for v in found])
        with _private_dir(paths.runtime_dir()) as private:
            env = dict(os.environ)
            env.update({v.name: v.value for v in found})
            served = _servers(broker, specs)
            with serving([s.server for s in served]):
                _point(broker, served, env, private)
                if not mask:
                    return masking.run_child(argv, env)
                values = [*inject.secrets(found), *(s.token for s in served if s.token)]
                for cred in creds.values():
                    values.extend(cred.secret_values())
                return masking.run_child(argv, env, values)


def _fetch(broker: Broker, names: Sequence[str], timeout: float | None) -> dict[str, Credential]:
    unique = list(dict.fromkeys(names))
    for name in unique:
        broker.profile(name)  # an unknown profile: exit 2 before anything is fetched

    async def one(name: str) -> Credential:
        result = broker.request(name, timeout=timeout)
        return result if isinstance(result, Credential) else await result

    async def every() -> list[Credential]:
        return list(await asyncio.gather(*(one(n) for n in unique)))

    return dict(zip(unique, asyncio.run(every()), strict=True))


@dataclass(frozen=True)
class _Served:
    spec: envs.EndpointSpec
    server: EndpointServer
    token: str  # the AWS token or Azure header (unused by google: its protocol has none)
    project: str | None = None


def _servers(broker: Broker, specs: Sequence[envs.EndpointSpec]) -> list[_Served]:
    """One server per endpoint (not yet listening), each with a fresh token."""
    from tokend.daemon.endpoints import aws, azure, google

    out = []
    for spec in specs:
        token = envs.new_token()
        if spec.cloud == "aws":
            handler: Handler = aws.AwsEndpoint(broker, spec.profile, token)
            out.append(_Served(spec, EndpointServer("aws", handler, aws.refuse), token))
        elif spec.cloud == "google":
            ident = google.identity_of(broker.profile(spec.profile).options, os.environ)
            handler = google.GoogleEndpoint(broker, spec.profile, ident)
            out.append(_Served(spec, EndpointServer("google", handler, google.refuse), "", ident.project))
        else:
            handler = azure.AzureEndpoint(broker, spec.profile, token)
            out.append(_Served(spec, EndpointServer("azure", handler, azure.refuse), token))
    return out


def _point(broker: Broker, served: Sequence[_Served], env: dict[str, str], private: str) -> None:
    """CMD's variables, now that each server has its port."""
    from tokend.daemon.endpoints import aws, azure

    for item in served:
        base, profile = f"http://{item.server.host}", broker.profile(item.spec.profile)
        if item.spec.cloud == "aws":
            envs.aws_env(env, base + aws.PATH, item.token, private, profile, os.environ)
        elif item.spec.cloud == "google":
            envs.google_env(env, item.server.host, private, item.project)
        else:
            envs.azure_env(env, base + azure.PATH, item.token, profile)


@contextlib.contextmanager
def _private_dir(rundir: str) -> Iterator[str]:
    """A 0700 directory in the runtime dir for CMD's private config files, removed after CMD."""
    path = tempfile.mkdtemp(prefix="exec-", dir=rundir)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
