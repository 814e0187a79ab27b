"""A fake HashiCorp Vault / OpenBao HTTP API on 127.0.0.1, faithful to the endpoints tokend uses.

- ``POST /v1/auth/{mount}/login``: approle (``role_id``, ``secret_id``), jwt and
  kubernetes (``role``, ``jwt``) methods, mounted where the test says
- ``GET /v1/auth/token/lookup-self``, ``POST /v1/auth/token/renew-self``
- KV v2 ``GET /v1/{mount}/data/{path}[?version=N]`` and KV v1 ``GET /v1/{mount}/{path}``
- dynamic secrets ``GET /v1/aws/creds/{role}`` and ``GET /v1/database/creds/{role}``
  (a lease per read, tied to the token that read it)
- ``PUT|POST /v1/sys/leases/renew``: renewal capped at the lease's max TTL

Tokens and leases expire on the fake's own clock (``advance`` moves it), and
a token's leases are revoked with it, as Vault does. Answers follow Vault's
shapes (``{"errors": [...]}``, ``auth``, ``lease_id``...). Every request is
recorded with the headers tokend must send. ``fail(prefix, status)`` and
``hang(prefix)`` make paths misbehave.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.server import LocalHTTPServer


@dataclass
class FakeToken:
    value: str
    policies: tuple[str, ...]  # path prefixes it may read ("" = anything)
    expires: float | None
    renewable: bool
    creation_ttl: int
    max_expires: float | None
    accessor: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class FakeLease:
    id: str
    token: str
    expires: float
    max_expires: float
    renewable: bool


@dataclass
class Role:
    """A login role: what a login yields."""

    ttl: int = 3600
    max_ttl: int = 4 * 3600
    renewable: bool = True
    policies: tuple[str, ...] = ("",)


@dataclass
class DynamicRole:
    ttl: int = 3600
    max_ttl: int = 4 * 3600
    renewable: bool = True


@dataclass
class Request:
    method: str
    path: str  # without /v1/
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]

    @property
    def token(self) -> str | None:
        return self.headers.get("x-vault-token")


class FakeVault:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.offset = 0.0
        self.tokens: dict[str, FakeToken] = {}
        self.leases: dict[str, FakeLease] = {}
        self.approles: dict[str, tuple[str | None, Role]] = {}  # role_id -> (secret_id, role)
        self.jwt_roles: dict[tuple[str, str], tuple[set[str], Role]] = {}  # (mount, role) -> (jwts, role)
        self.auth_mounts: dict[str, str] = {"approle": "approle", "jwt": "jwt", "kubernetes": "kubernetes"}
        self.kv2: dict[str, dict[str, list[dict[str, Any] | None]]] = {"secret": {}}
        self.kv1: dict[str, dict[str, dict[str, Any]]] = {"kv": {}}
        self.aws_roles: dict[str, DynamicRole] = {}
        self.db_roles: dict[str, DynamicRole] = {}
        self.issued: list[dict[str, str]] = []  # every dynamic secret handed out
        self.requests: list[Request] = []
        self.namespace: str | None = None  # when set, requests must carry it
        self.refuse_renewals = False
        self._failures: list[tuple[str, int, str]] = []
        self._hang: set[str] = set()
        self._stop = threading.Event()
        self._server: LocalHTTPServer | None = None

    # -- clock -----------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    # -- set-up ------------------------------------------------------------------------

    def token(
        self,
        *,
        ttl: int = 0,
        renewable: bool = False,
        max_ttl: int | None = None,
        policies: tuple[str, ...] = ("",),
    ) -> str:
        """A token as ``vault token create`` would make (ttl 0: a root-like token that never expires)."""
        now = self.now()
        value = "hvs." + secrets.token_urlsafe(18)
        with self.lock:
            self.tokens[value] = FakeToken(
                value,
                policies,
                now + ttl if ttl else None,
                renewable,
                ttl,
                now + max_ttl if max_ttl else (now + ttl if ttl else None),
            )
        return value

    def approle(self, role_id: str, secret_id: str | None, role: Role | None = None) -> None:
        self.approles[role_id] = (secret_id, role or Role())

    def jwt_role(self, mount: str, name: str, jwts: set[str], role: Role | None = None) -> None:
        self.jwt_roles[(mount, name)] = (jwts, role or Role())

    def put_kv2(self, path: str, data: dict[str, Any], mount: str = "secret") -> int:
        versions = self.kv2.setdefault(mount, {}).setdefault(path, [])
        versions.append(dict(data))
        return len(versions)

    def delete_kv2(self, path: str, mount: str = "secret") -> None:
        self.kv2[mount][path][-1] = None  # soft delete of the latest version

    def put_kv1(self, path: str, data: dict[str, Any], mount: str = "kv") -> None:
        self.kv1.setdefault(mount, {})[path] = dict(data)

    def fail(self, prefix: str, status: int, error: str = "internal error", times: int = 1) -> None:
        """The next ``times`` requests whose path starts with ``prefix`` answer ``status``."""
        with self.lock:
            self._failures.extend([(prefix, status, error)] * times)

    def hang(self, prefix: str) -> None:
        self._hang.add(prefix)

    def unhang(self) -> None:
        self._hang.clear()

    def revoke(self, token: str) -> None:
        with self.lock:
            self._revoke(token)

    # -- assertions ---------------------------------------------------------------------

    def calls(self, prefix: str = "") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def live_leases(self) -> list[str]:
        now = self.now()
        with self.lock:
            return [lease.id for lease in self.leases.values() if lease.expires > now]

    # -- server -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def __enter__(self) -> FakeVault:
        self._server = LocalHTTPServer(_handler(self), name="fake-vault", poll_interval=0.05).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._server is not None
        self._server.stop()

    # -- request handling (server threads) ----------------------------------------------

    def handle(self, req: Request) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(req)
            failure = next((f for f in self._failures if req.path.startswith(f[0])), None)
            if failure is not None:
                self._failures.remove(failure)
        if any(req.path.startswith(h) for h in self._hang):
            self._stop.wait(30)
            return 503, {"errors": ["hung"]}
        if failure is not None:
            return failure[1], {"errors": [failure[2]]}
        if self.namespace is not None and req.headers.get("x-vault-namespace") != self.namespace:
            return 403, {"errors": ["permission denied"]}  # the path exists in another namespace only
        if req.headers.get("x-vault-request") != "true":
            return 412, {"errors": ["missing X-Vault-Request header"]}
        with self.lock:
            return self._route(req)

    def _route(self, req: Request) -> tuple[int, Any]:
        parts = req.path.split("/")
        if len(parts) == 3 and parts[0] == "auth" and parts[2] == "login" and req.method in ("POST", "PUT"):
            return self._login(parts[1], req.body)
        tok = self._authenticate(req)
        if tok is None:
            return 403, {"errors": ["permission denied"]}
        if req.path == "auth/token/lookup-self" and req.method == "GET":
            return 200, self._envelope(data=self._lookup(tok))
        if req.path == "auth/token/renew-self" and req.method in ("POST", "PUT"):
            return self._renew_self(tok, req.body)
        if req.path == "sys/leases/renew" and req.method in ("POST", "PUT"):
            return self._renew_lease(req.body)
        if not any(req.path.startswith(p) for p in tok.policies):
            return 403, {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}
        if req.method != "GET":
            return 405, {"errors": ["unsupported operation"]}
        if parts[0] in self.kv2 and len(parts) > 2 and parts[1] == "data":
            return self._kv2(parts[0], "/".join(parts[2:]), req.query)
        if parts[0] in self.kv1 and len(parts) > 1:
            data = self.kv1[parts[0]].get("/".join(parts[1:]))
            if data is None:
                return 404, {"errors": []}
            return 200, self._envelope(data=data, lease_duration=2764800)
        if len(parts) == 3 and parts[1] == "creds" and parts[0] in ("aws", "database"):
            return self._dynamic(parts[0], parts[2], tok)
        return 404, {"errors": [f"no handler for route {req.path!r}. route entry not found."]}

    def _authenticate(self, req: Request) -> FakeToken | None:
        tok = self.tokens.get(req.token or "")
        if tok is None or (tok.expires is not None and tok.expires <= self.now()):
            return None
        return tok

    @staticmethod
    def _envelope(**kw: Any) -> dict[str, Any]:
        doc = {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": None,
            "wrap_info": None,
            "warnings": None,
            "auth": None,
        }
        doc.update(kw)
        return doc

    def _login(self, mount: str, body: dict[str, Any]) -> tuple[int, Any]:
        method = next((m for m, where in self.auth_mounts.items() if where == mount), None)
        if method is None:
            return 400, {"errors": [f"no handler for route 'auth/{mount}/login'"]}
        if method == "approle":
            known = self.approles.get(str(body.get("role_id")))
            if known is None or (known[0] is not None and body.get("secret_id") != known[0]):
                return 400, {"errors": ["invalid role or secret ID"]}
            role = known[1]
        else:
            entry = self.jwt_roles.get((mount, str(body.get("role"))))
            if entry is None:
                return 400, {"errors": [f'role "{body.get("role")}" could not be found']}
            if body.get("jwt") not in entry[0]:
                return 400, {"errors": ["error validating token: invalid audience (aud) claim"]}
            role = entry[1]
        now = self.now()
        value = "hvs." + secrets.token_urlsafe(18)
        tok = FakeToken(value, role.policies, now + role.ttl, role.renewable, role.ttl, now + role.max_ttl)
        self.tokens[value] = tok
        auth = {
            "client_token": value,
            "accessor": tok.accessor,
            "policies": ["default"],
            "token_policies": ["default"],
            "metadata": {"role_name": str(body.get("role") or "approle")},
            "lease_duration": role.ttl,
            "renewable": role.renewable,
            "entity_id": str(uuid.uuid4()),
            "token_type": "service",
            "orphan": True,
        }
        return 200, self._envelope(auth=auth)

    def _lookup(self, tok: FakeToken) -> dict[str, Any]:
        ttl = 0 if tok.expires is None else int(tok.expires - self.now())
        return {
            "accessor": tok.accessor,
            "creation_ttl": tok.creation_ttl,
            "ttl": ttl,
            "renewable": tok.renewable,
            "policies": ["default"],
            "expire_time": None,
        }

    def _renew_self(self, tok: FakeToken, body: dict[str, Any]) -> tuple[int, Any]:
        if not tok.renewable or self.refuse_renewals:
            return 400, {"errors": ["lease is not renewable"]}
        increment = _seconds(body.get("increment")) or tok.creation_ttl
        now = self.now()
        expires = now + increment
        warnings = None
        if tok.max_expires is not None and expires > tok.max_expires:
            expires = tok.max_expires
            warnings = ["TTL of increment exceeded the effective max_ttl of the token; TTL value is capped"]
        tok.expires = expires
        auth = {
            "client_token": tok.value,
            "accessor": tok.accessor,
            "lease_duration": int(expires - now),
            "renewable": tok.renewable,
            "policies": ["default"],
        }
        return 200, self._envelope(auth=auth, warnings=warnings)

    def _kv2(self, mount: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        versions = self.kv2[mount].get(path)
        if not versions:
            return 404, {"errors": []}
        number = int(query.get("version") or len(versions))
        if not 1 <= number <= len(versions):
            return 404, {"errors": []}
        data = versions[number - 1]
        metadata = {
            "created_time": "2023-11-14T22:13:20.000000Z",
            "custom_metadata": None,
            "deletion_time": "" if data is not None else "2023-11-14T22:13:21.000000Z",
            "destroyed": False,
            "version": number,
        }
        if data is None:
            return 404, self._envelope(data={"data": None, "metadata": metadata})
        return 200, self._envelope(data={"data": data, "metadata": metadata})

    def _dynamic(self, engine: str, name: str, tok: FakeToken) -> tuple[int, Any]:
        roles = self.aws_roles if engine == "aws" else self.db_roles
        role = roles.get(name)
        if role is None:
            return 400, {"errors": [f"unknown role: {name}"]}
        n = len(self.issued) + 1
        if engine == "aws":
            data: dict[str, Any] = {
                "access_key": f"AKIAVAULT{n:011d}",
                "secret_key": f"vault-aws-secret-{n}-{secrets.token_hex(8)}",
                "security_token": None,
                "arn": f"arn:aws:iam::123456789012:user/vault-{name}-{n}",
            }
        else:
            data = {"username": f"v-token-{name}-{n}", "password": f"A1a-{secrets.token_urlsafe(12)}"}
        self.issued.append({k: v for k, v in data.items() if isinstance(v, str)})
        now = self.now()
        lease_id = f"{engine}/creds/{name}/{secrets.token_urlsafe(12)}"
        self.leases[lease_id] = FakeLease(
            lease_id, tok.value, now + role.ttl, now + role.max_ttl, role.renewable
        )
        return 200, self._envelope(
            lease_id=lease_id, renewable=role.renewable, lease_duration=role.ttl, data=data
        )

    def _renew_lease(self, body: dict[str, Any]) -> tuple[int, Any]:
        lease = self.leases.get(str(body.get("lease_id")))
        now = self.now()
        owner = self.tokens.get(lease.token) if lease is not None else None
        if owner is None or (owner.expires is not None and owner.expires <= now):
            lease = None  # revoked with the token that read it
        if lease is None or lease.expires <= now or not lease.renewable or self.refuse_renewals:
            return 400, {"errors": ["lease not found or lease is not renewable"]}
        increment = _seconds(body.get("increment")) or 3600
        expires = min(now + increment, lease.max_expires)
        lease.expires = expires
        warnings = None
        if expires < now + increment:
            warnings = ["TTL of increment exceeded the effective max_ttl of the lease; TTL value is capped"]
        return 200, self._envelope(
            lease_id=lease.id, renewable=True, lease_duration=int(expires - now), warnings=warnings
        )

    def _revoke(self, value: str) -> None:
        self.tokens.pop(value, None)
        for lease_id in [k for k, v in self.leases.items() if v.token == value]:
            del self.leases[lease_id]


def _seconds(value: Any) -> int:
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value:
        text = value.strip()
        units = {"s": 1, "m": 60, "h": 3600}
        if text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(float(text))
    return 0


def _handler(fake: FakeVault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            if not url.path.startswith("/v1/"):
                status, doc = 404, {"errors": []}
            else:
                req = Request(
                    self.command,
                    url.path[len("/v1/") :],
                    {k: v[0] for k, v in parse_qs(url.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    body if isinstance(body, dict) else {},
                )
                status, doc = fake.handle(req)
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _answer

    return Handler


def fake_vault() -> Iterator[FakeVault]:
    """Body of a pytest fixture: ``yield from fake_vault()``."""
    with FakeVault() as fake:
        yield fake
