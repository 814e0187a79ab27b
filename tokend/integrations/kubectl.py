"""``tokend integrate kubectl PROFILE``: a kubeconfig user whose exec plugin is tokend-print.

The user ``tokend-PROFILE`` (``users[].user.exec``, apiVersion
client.authentication.k8s.io/v1, interactiveMode Never) goes into the first
file of ``$KUBECONFIG`` or ``~/.kube/config``. The file is rewritten only when
that loses nothing: it must hold no comments (a YAML rewrite drops them) and
must read back identical; otherwise the block is printed to paste by hand.
Clusters and contexts are left alone: point a context at the user with
``kubectl config set-context CONTEXT --user=tokend-PROFILE``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tokend.core import atomicfile, config
from tokend.core.errors import UsageError

API_VERSION = "client.authentication.k8s.io/v1"


def kubeconfig_path() -> str:
    first = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return os.path.expanduser(first or os.path.join("~", ".kube", "config"))


def user_entry(profile: str, helper: str) -> dict[str, Any]:
    return {
        "name": f"tokend-{profile}",
        "user": {
            "exec": {
                "apiVersion": API_VERSION,
                "command": helper,
                "args": [profile, "--format", "exec-credential"],
                "interactiveMode": "Never",
                "provideClusterInfo": False,
            }
        },
    }


def render(entry: dict[str, Any]) -> str:
    """The ``users:`` block as YAML (JSON scalars are valid YAML), without needing PyYAML."""
    ex = entry["user"]["exec"]
    lines = ["users:", f"- name: {json.dumps(entry['name'])}", "  user:", "    exec:"]
    for key in ("apiVersion", "command"):
        lines.append(f"      {key}: {json.dumps(ex[key])}")
    lines.append("      args:")
    lines += [f"      - {json.dumps(a)}" for a in ex["args"]]
    lines.append(f"      interactiveMode: {ex['interactiveMode']}")
    lines.append(f"      provideClusterInfo: {json.dumps(ex['provideClusterInfo'])}")
    return "\n".join(lines)


def _check_profile(profile: str) -> None:
    prof = config.load().profile(profile)
    if prof.source == "aws" and prof.options.get("token", "credentials") == "credentials":
        raise UsageError(
            'kubectl needs a bearer token; set token = "eks" and cluster = "NAME" in this profile',
            profile=profile,
        )


def _why_not_writable(path: str, text: str) -> str | None:
    try:
        import yaml
    except ImportError:
        return "PyYAML is not installed (pip install 'tokend[aws]')"
    if "#" in text:
        return "it has comments, which rewriting it would lose"
    try:
        doc = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError:
        return "it is not valid YAML"
    if not isinstance(doc, dict) or not isinstance(doc.get("users", []), list):
        return "it is not a kubeconfig"
    return None


def apply(profile: str, helper: str, *, dry_run: bool) -> str:
    _check_profile(profile)
    entry = user_entry(profile, helper)
    block = render(entry)
    use = f"kubectl config set-context CONTEXT --user={entry['name']}"
    path = kubeconfig_path()
    if dry_run:
        return f"# {path} would get this user:\n{block}\n# then: {use}"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    reason = _why_not_writable(path, text)
    if reason is not None:
        return f"# {path} left as it is: {reason}. Add this user to it:\n{block}\n# then: {use}"
    import yaml

    doc: dict[str, Any] = (yaml.safe_load(text) if text.strip() else None) or {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "contexts": [],
        "users": [],
    }
    users = [
        u for u in doc.get("users") or [] if not (isinstance(u, dict) and u.get("name") == entry["name"])
    ]
    doc["users"] = [*users, entry]
    new = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    if yaml.safe_load(new) != doc:  # pragma: no cover - safe_dump round-trips plain data
        return f"# {path} left as it is: it would not read back the same. Add this user to it:\n{block}"
    _write(path, new)
    return f"{path}: user {entry['name']} now runs tokend-print {profile}; then: {use}"


def _write(path: str, text: str) -> None:
    atomicfile.write_text(path, text, suffix=".tmp")  # a new file is 0600, like kubectl's
