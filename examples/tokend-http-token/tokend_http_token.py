"""``source = "http-token"``: a bearer token from a small HTTP endpoint (an example tokend plug-in).

The endpoint answers ``{"token": "...", "expires_in": SECONDS}``. The class
implements only the ``Source`` contract (docs/sources.md), no base class.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, SourceError, SourceTimeout, SourceUnavailable
from tokend.sources.base import FetchRequest, Option

LOOPBACK = ("127.0.0.1", "::1", "localhost")


class HttpTokenSource:
    """GET ``url`` and serve the token it answers until ``expires_in`` runs out."""

    name = "http-token"
    options: ClassVar[Mapping[str, Option]] = {
        "url": Option("str", required=True, help="endpoint (https, or http on loopback)"),
    }

    @classmethod
    def validate(cls, profile: str, options: Mapping[str, Any]) -> None:
        url = urlsplit(options["url"])
        if url.scheme != "https" and not (url.scheme == "http" and url.hostname in LOOPBACK):
            raise ConfigError(f"profiles.{profile}.url: expected https://HOST/..., or http:// on loopback")

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        self.profile, self.url, self.clock = profile, options["url"], clock

    def fetch(self, request: FetchRequest) -> Credential:
        p = self.profile  # every error names the profile
        try:
            with urllib.request.urlopen(self.url, timeout=request.timeout) as answer:
                doc = json.loads(answer.read(65536))
            token, life = doc["token"], float(doc["expires_in"])
        except urllib.error.HTTPError as e:  # before URLError: it is one
            raise SourceError(f"HTTP {e.code} from {self.url}", profile=p, retryable=e.code >= 500) from None
        except TimeoutError:
            raise SourceTimeout(f"{self.url} did not answer within {request.timeout:g}s", profile=p) from None
        except (urllib.error.URLError, ConnectionError) as e:
            raise SourceUnavailable(f"nothing answers at {self.url}: {e}", profile=p) from None
        except (ValueError, KeyError, TypeError):
            raise SourceError(f"{self.url}: no token/expires_in", profile=p, retryable=False) from None
        now = self.clock()
        return Credential.bearer(str(token), expires_at=now + life, issued_at=now, source=self.name)
