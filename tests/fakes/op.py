"""A fake 1Password CLI (``op``) for the 1password source tests.

``install_fake_op(bin_dir)`` writes an ``op`` executable that answers
``op read [--no-newline] [--account A] [--] op://VAULT/ITEM[/SECTION]/FIELD``
from ``items.json`` next to it, with op's own error lines for a missing item,
a signed-out CLI and a refused service-account token. ``mode`` in
``state.json`` makes it fail with a message, hang (with a child process, to
prove the whole group is killed) or answer normally. Every run appends its
argv, pid and whether OP_SERVICE_ACCOUNT_TOKEN was in its environment to
``calls.log``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

FAKE_OP = r"""
import json, os, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))
def load(name, default):
    try:
        with open(os.path.join(here, name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return default

state = load("state.json", {})
token = os.environ.get("OP_SERVICE_ACCOUNT_TOKEN")
with open(os.path.join(here, "calls.log"), "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "pid": os.getpid(), "token_in_env": bool(token),
                          "token_ok": token == state.get("token")}) + "\n")

def fail(message):
    sys.stderr.write("[ERROR] 2024/01/02 03:04:05 " + message + "\n")
    sys.exit(1)

args = sys.argv[1:]
if not args or args[0] != "read":
    fail("unknown command")
args = args[1:]
newline = True
account = None
refs = []
while args:
    a = args.pop(0)
    if a in ("-n", "--no-newline"):
        newline = False
    elif a == "--account":
        account = args.pop(0)
    elif a == "--":
        refs += args
        args = []
    else:
        refs.append(a)
mode = state.get("mode", "ok")
if mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.path.join(here, "hang.pids"), "w") as f:
        f.write("%d %d" % (os.getpid(), child.pid))
    time.sleep(120)
if mode == "fail":
    fail(state.get("message", "something went wrong"))
if token is not None:
    if token != state.get("token"):
        fail("(401) Unauthorized: You aren't authorized to perform this action.")
elif not state.get("signed_in"):
    fail("You are not currently signed in. Please run `op signin --help` for instructions")
if account is not None and account not in state.get("accounts", [account]):
    fail('no account found for filter "%s"' % account)
if len(refs) != 1 or not refs[0].startswith("op://"):
    fail("expected one secret reference")
ref = refs[0]
parts = ref[len("op://"):].split("/")
items = load("items.json", {})
vault, item = parts[0], parts[1]
if vault not in items:
    fail("could not read secret '%s': could not get item %s/%s: \"%s\" isn't a vault in this account. "
         "Specify the vault with its ID or name." % (ref, vault, item, vault))
if item not in items[vault]:
    fail("could not read secret '%s': could not get item %s/%s: \"%s\" isn't an item in the \"%s\" vault. "
         "Specify the item with its UUID, name, or domain." % (ref, vault, item, item, vault))
field = "/".join(parts[2:])
value = items[vault][item].get(field)
if value is None:
    fail("could not read secret '%s': item '%s' does not have a field '%s'" % (ref, item, field))
sys.stdout.write(value + ("\n" if newline else ""))
"""


class FakeOp:
    def __init__(self, bin_dir: Path) -> None:
        self.dir = bin_dir
        self.path = bin_dir / "op"

    def set_items(self, items: dict[str, dict[str, dict[str, str]]]) -> None:
        self._write("items.json", items)

    def set_state(self, **state: Any) -> None:
        self._write("state.json", state)

    def _write(self, name: str, doc: Any) -> None:
        tmp = self.dir / (name + ".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.dir / name)

    def calls(self) -> list[dict[str, Any]]:
        try:
            text = (self.dir / "calls.log").read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def hang_pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.dir / "hang.pids").read_text().split()]
        except FileNotFoundError:
            return []


def install_fake_op(bin_dir: Path, python: str = sys.executable) -> FakeOp:
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = FakeOp(bin_dir)
    fake.path.write_text(f"#!{python}\n" + FAKE_OP)
    os.chmod(fake.path, 0o755)
    fake.set_state(signed_in=True)
    return fake
