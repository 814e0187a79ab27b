"""Shared set-up for the google source tests: a source wired to a FakeGoogle, ADC files on disk."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.fakes.google import FakeGoogle, routed
from tokend.core.credential import Credential
from tokend.sources.base import FetchRequest
from tokend.sources.google import GoogleSource

AUDIENCE = "https://hello-abc123-uc.a.run.app"
TARGET_SA = "target@proj.iam.gserviceaccount.com"


class World:
    """A private gcloud config dir and environment for one test."""

    def __init__(self, root: Path, fake: FakeGoogle) -> None:
        self.root = root
        self.fake = fake
        self.gcloud_dir = root / "gcloud"
        self.gcloud_dir.mkdir(mode=0o700)
        self.env: dict[str, str] = {"CLOUDSDK_CONFIG": str(self.gcloud_dir), "HOME": str(root)}

    @property
    def well_known(self) -> Path:
        return self.gcloud_dir / "application_default_credentials.json"

    def write(self, name: str, info: Mapping[str, Any]) -> str:
        path = self.root / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # atomically, as gcloud does
        return str(path)

    def adc(self, info: Mapping[str, Any]) -> str:
        """Make ``info`` gcloud's ADC file (what `gcloud auth application-default login` writes)."""
        tmp = self.gcloud_dir / "adc.tmp"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.well_known)
        return str(self.well_known)

    def source(
        self,
        profile: str = "p",
        *,
        clock: Callable[[], float] = time.time,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> GoogleSource:
        settings = {name: opt.default for name, opt in GoogleSource.options.items()}
        settings.update(options)
        return GoogleSource(
            profile,
            settings,
            clock=clock,
            session_factory=routed(self.fake),
            environ={**self.env, **(env or {})},
            find_gcloud=lambda: None,
        )


def fetch(source: GoogleSource, timeout: float = 10.0) -> Credential:
    return source.fetch(FetchRequest(profile=source.profile, timeout=timeout))


def token(cred: Credential) -> str:
    return cred.fields["token"]
