"""A real kubectl whose exec plugin is ``tokend-print PROFILE --format exec-credential``.

kubectl talks to a local HTTPS fake of an EKS API server that answers only
when shown an EKS token for its cluster; tokend makes that token from
credentials a moto STS issues. The Google Cloud CLI package ships versioned
kubectl binaries (``kubectl.1.33``) in its bin folder: the newest is called
directly (not the ``kubectl`` dispatcher); else a plain ``kubectl`` on PATH.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fakes.aws_eks_api import PATH, FakeEksApi, fake_eks_api
from tests.fakes.aws_lab import TOKEND, TOKEND_PRINT, Lab, lab, require_or_skip
from tests.fakes.aws_moto import ACCOUNT, MotoServer, aws_files, routing_env

CLUSTER = "tokend-e2e"
SDK_BINS = ("/usr/lib/google-cloud-sdk/bin", "/usr/share/google-cloud-sdk/bin", "/opt/google-cloud-sdk/bin")


def _minor(binary: str) -> int | None:
    try:
        done = subprocess.run(
            [binary, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30
        )
        return int(re.sub(r"\D", "", json.loads(done.stdout)["clientVersion"]["minor"]))
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def find_kubectl() -> tuple[str, int] | None:
    """The newest versioned kubectl of the Google Cloud CLI, else a kubectl binary on PATH."""
    dirs = list(SDK_BINS)
    gcloud = shutil.which("gcloud")
    if gcloud:
        dirs.insert(0, os.path.dirname(os.path.realpath(gcloud)))
    found = []
    for d in dirs:
        for path in glob.glob(os.path.join(d, "kubectl.1.*")):
            m = re.fullmatch(r"kubectl\.1\.(\d+)", os.path.basename(path))
            if m and os.access(path, os.X_OK):
                found.append((int(m.group(1)), path))
    if found:
        minor, path = max(found)
        return path, minor
    plain = shutil.which("kubectl")
    if plain and "google-cloud-sdk" not in os.path.realpath(plain):
        minor = _minor(plain)
        if minor is not None:
            return plain, minor
    return None


@pytest.fixture(scope="module")
def kubectl() -> tuple[str, int]:
    found = find_kubectl()
    if found is None:
        require_or_skip(
            "no kubectl: install the Google Cloud CLI kubectl component or Debian's kubernetes-client"
        )
    assert found is not None
    return found


@pytest.fixture
def world(moto: MotoServer) -> Iterator[tuple[Lab, FakeEksApi]]:
    with lab() as box, fake_eks_api(CLUSTER) as api:
        box.extra_env.update(routing_env(moto))
        box.extra_env.update(aws_files(box.root, "[profile base]\nregion = us-west-2\n", ""))
        box.write_config(
            f"""
            [profiles.eks]
            source = "aws"
            aws_profile = "base"
            role_arn = "arn:aws:iam::{ACCOUNT}:role/eks-admin"
            token = "eks"
            cluster = "{CLUSTER}"
            region = "us-west-2"
            """
        )
        box.serve()
        yield box, api


def kubeconfig(box: Lab, api: FakeEksApi, user: dict[str, object] | None) -> Path:
    path = box.root / "kubeconfig"
    doc: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER,
                "cluster": {
                    "server": api.url,
                    "certificate-authority-data": base64.b64encode(api.ca_pem).decode(),
                },
            }
        ],
        "contexts": [{"name": CLUSTER, "context": {"cluster": CLUSTER, "user": "tokend-eks"}}],
        "current-context": CLUSTER,
        "users": [user] if user else [],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


def get_namespace(box: Lab, kubectl: str, path: Path) -> subprocess.CompletedProcess[str]:
    return box.run(
        [kubectl, "--kubeconfig", str(path), "get", "--raw", PATH], timeout=60, KUBECONFIG=str(path)
    )


def test_kubectl_v1_exec_plugin_written_by_integrate(
    world: tuple[Lab, FakeEksApi], kubectl: tuple[str, int]
) -> None:
    box, api = world
    binary, minor = kubectl
    if minor < 22:
        pytest.skip(f"kubectl 1.{minor} predates the client.authentication.k8s.io/v1 exec API")
    path = kubeconfig(box, api, None)
    wrote = box.run([TOKEND, "integrate", "kubectl", "eks"], KUBECONFIG=str(path))
    assert wrote.returncode == 0, wrote.stderr
    user = yaml.safe_load(path.read_text())["users"][0]
    assert user["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1"
    assert user["user"]["exec"]["interactiveMode"] == "Never"

    done = get_namespace(box, binary, path)
    assert done.returncode == 0, (done.stderr, api.refused, box.daemon_log())
    assert json.loads(done.stdout)["metadata"]["name"] == "default"
    # The token kubectl sent is the one tokend serves for the profile.
    served = box.run([TOKEND_PRINT, "eks"]).stdout.strip()
    assert api.tokens and set(api.tokens) == {served}


def test_kubectl_v1beta1_exec_plugin(world: tuple[Lab, FakeEksApi], kubectl: tuple[str, int]) -> None:
    box, api = world
    user = {
        "name": "tokend-eks",
        "user": {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": TOKEND_PRINT,
                "args": ["eks", "--format", "exec-credential"],
            }
        },
    }
    done = get_namespace(box, kubectl[0], kubeconfig(box, api, user))
    assert done.returncode == 0, (done.stderr, api.refused, box.daemon_log())
    assert api.tokens and not api.refused


def test_kubectl_without_a_token_is_refused(world: tuple[Lab, FakeEksApi], kubectl: tuple[str, int]) -> None:
    box, api = world
    user = {"name": "tokend-eks", "user": {"token": "not-an-eks-token"}}
    done = get_namespace(box, kubectl[0], kubeconfig(box, api, user))
    assert done.returncode != 0
    assert api.refused  # the fake really checks: the passing tests are not vacuous
