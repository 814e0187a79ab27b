"""README.md says what the code does.

Every ```toml block loads: a tokend config through config validation, a
consumer's file (Codex) as TOML, and a Codex provider with
``--refresh-on-repeat`` is what ``tokend integrate codex`` writes. A README
block is often a fragment that names profiles an earlier block defines (a
`subject`, a `via`), as a reader who follows the README has them: each tokend
block is loaded together with the profiles of the blocks before it.

Every command, option, format, source, extra, link and repository path shown
exists, and the defaults and limits quoted are the code's.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tokend.core import config
from tokend.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

README = Path(__file__).resolve().parent.parent / "README.md"
TOKEND_TABLES = {"defaults", "profiles", "hosts", "endpoints"}

# Blocks that name profiles no README block defines, by the heading above them:
# skipped until their section defines those profiles (then remove the entry).


@dataclass(frozen=True)
class Block:
    line: int
    heading: str
    text: str


def _blocks() -> list[Block]:
    """The ```toml blocks of README.md with their line and the heading above them."""
    blocks: list[Block] = []
    heading, fence, start, body = "", "", 0, list[str]()
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if not fence:
            if line.startswith("#"):
                heading = line.strip()
            elif line.startswith("```"):
                fence, start, body = line.strip(), number, []
            continue
        if line.startswith("```"):
            if fence == "```toml":
                blocks.append(Block(start, heading, "\n".join(body)))
            fence = ""
        else:
            body.append(line)
    return blocks


def _toml_value(value: Any) -> str:
    """``value`` as TOML (strings as JSON strings, which TOML basic strings accept)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def _dumps(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    for name, body in doc.get("profiles", {}).items():
        lines.append(f"[profiles.{json.dumps(name)}]")
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in body.items()]
    for table in sorted(TOKEND_TABLES - {"profiles"}):
        if table in doc:
            lines.append(f"[{table}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc[table].items()]
    return "\n".join(lines) + "\n"


BLOCKS = _blocks()


def _id(block: Block) -> str:
    return f"L{block.line}-" + re.sub(r"[^A-Za-z0-9]+", "-", block.heading).strip("-")


def test_readme_has_toml_blocks() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=_id)
def test_toml_block_loads(block: Block, tmp_path: Path) -> None:
    doc = tomllib.loads(block.text)
    if not set(doc) <= TOKEND_TABLES:
        # A consumer's file (~/.codex/config.toml, ...): TOML is all tokend can promise.
        assert "profiles" not in doc, f"README.md:{block.line}: a tokend profile mixed with other keys"
        return
    earlier: dict[str, Any] = {}
    for before in BLOCKS:
        if before.line >= block.line:
            break
        earlier.update(tomllib.loads(before.text).get("profiles", {}))
    merged = dict(doc, profiles={**earlier, **doc.get("profiles", {})})
    try:
        loaded = config.parse(_dumps(merged), tmp_path / "config.toml")
    except ConfigError as e:
        pytest.fail(f"README.md:{block.line} ({block.heading}): {e}")
    assert set(doc.get("profiles", {})) <= set(loaded.profiles)


# -- what README and the man page list, against the code --------------------------------------

ROOT = README.parent
MAN_PAGE = ROOT / "packaging" / "man" / "tokend.1"


def _section(title: str) -> str:
    """The text of README's ``title`` section, up to the next heading of its level or above."""
    level = len(title.split(" ", 1)[0])
    lines: list[str] = []
    fence = False
    for line in README.read_text(encoding="utf-8").splitlines():
        heading = not fence and re.match(r"(#+) ", line)
        if heading and lines and len(heading.group(1)) <= level:
            break
        if lines or line == title:
            lines.append(line)
        fence ^= line.startswith("```")
    assert lines, f"README.md has no {title!r}"
    return "\n".join(lines)


def _unroff(text: str) -> str:
    return text.replace("\\-", "-")


def test_every_format_is_listed() -> None:
    from tokend.formats import RENDERERS

    readme = _section("## Commands")
    formats = readme[readme.index("Formats:") :].split("\n\n", 1)[0]
    man = _unroff(MAN_PAGE.read_text(encoding="utf-8"))
    man_formats = man[man.index("Formats:") :].split("\n.", 1)[0]
    for name in RENDERERS:
        assert f"`{name}`" in formats, f"README.md Formats: {name} missing"
        assert re.search(rf"\b{re.escape(name)}\b(?!-)", man_formats), f"tokend.1 Formats: {name} missing"


def test_every_command_is_in_the_commands_table() -> None:
    import click

    from tokend.cli import cli

    table = _section("## Commands")
    ctx = click.Context(cli, info_name="tokend")
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        if command is not None and not command.hidden:
            listed = f"`tokend {name}" in table or f"· `{name}" in table
            assert listed, f"tokend {name} is not in README's Commands"


def test_every_tokend_print_option_is_documented() -> None:
    from tokend.client.fastpath import USAGE

    row = next(line for line in _section("## Commands").splitlines() if line.startswith("| `tokend-print "))
    synopsis = _unroff(MAN_PAGE.read_text(encoding="utf-8")).split(".SH SYNOPSIS", 1)[1].split(".br", 1)[0]
    for option in re.findall(r"--[a-z-]+", USAGE):
        assert option in row, f"README.md Commands: tokend-print {option} missing"
        assert option in synopsis, f"tokend.1 SYNOPSIS: tokend-print {option} missing"


def test_every_extra_is_named() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    sentence = _section("## Two commands").split("Extras:", 1)[1].split("\n\n", 1)[0]
    for extra in extras["optional-dependencies"]:
        assert f"`{extra}`" in sentence, f"README.md Extras: {extra} missing"


def _figures() -> list[tuple[str, str]]:
    """(README phrase, where its figure comes from): each phrase, with the code's figure, is in README."""
    from tokend.ci.envformats import MIN_MASK_LENGTH
    from tokend.client import fastpath, protocol
    from tokend.core import durations, policy
    from tokend.core.errors import Redactor
    from tokend.daemon import notify, repeat
    from tokend.daemon.server import Limits
    from tokend.formats import FORMAT_MIN_TTL
    from tokend.sources.demo import DemoSource
    from tokend.sources.keyring import DEFAULT_SERVICE

    demo = DemoSource.options

    def g(value: float) -> str:
        return f"{value:g}"

    return [
        (f'min_ttl = "{g(policy.DEFAULT_MIN_TTL / 60)}m"', "policy.DEFAULT_MIN_TTL"),
        (f'timeout = "{g(policy.DEFAULT_FETCH_TIMEOUT)}s"', "policy.DEFAULT_FETCH_TIMEOUT"),
        (f'refresh_limit = "{g(policy.FORCED_REFRESH_INTERVAL)}s"', "policy.FORCED_REFRESH_INTERVAL"),
        (f"`refresh_limit` ({g(policy.FORCED_REFRESH_INTERVAL)} s)", "policy.FORCED_REFRESH_INTERVAL"),
        (
            f"`lifetime` ({g(float(demo['lifetime'].default) / 3600)}h), "
            f"`latency` ({g(float(demo['latency'].default))}s)",
            "DemoSource.options",
        ),
        (f"`service` (`{DEFAULT_SERVICE}`)", "keyring.DEFAULT_SERVICE"),
        (f"(default `{g(fastpath.DEFAULT_TIMEOUT)}`;", "fastpath.DEFAULT_TIMEOUT"),
        (f"{g(FORMAT_MIN_TTL['aws-process'] / 60)} minutes for `aws-process`", "formats.FORMAT_MIN_TTL"),
        (f"capped in size ({protocol.MAX_REQUEST // 1024} KiB)", "protocol.MAX_REQUEST"),
        (f"in time ({g(Limits().request_timeout)} s to send a request)", "Limits.request_timeout"),
        (f"at most {g(durations.MAX_DURATION / 86400)} days", "durations.MAX_DURATION"),
        (f"Values shorter than {Redactor.MIN_LEN} characters", "Redactor.MIN_LEN"),
        (f"under {MIN_MASK_LENGTH} characters", "envformats.MIN_MASK_LENGTH"),
        (f"per identity per {g(notify.INTERVAL / 60)} minutes", "notify.INTERVAL"),
        (f"within {g(repeat.REPEAT_WINDOW)} s", "repeat.REPEAT_WINDOW"),
    ]


def test_figures_match_the_code() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    for phrase, source in _figures():
        assert phrase in text, f"README.md should say {phrase!r} ({source})"


def test_codex_blocks_are_what_tokend_integrate_writes() -> None:
    """A README Codex provider with ``--refresh-on-repeat`` is what ``tokend integrate codex`` writes."""
    from tokend.integrations import codex

    profiles: dict[str, Any] = {}
    written = 0
    for block in BLOCKS:
        doc = tomllib.loads(block.text)
        profiles.update(doc.get("profiles", {}))
        for name, provider in doc.get("model_providers", {}).items():
            if provider.get("auth", {}).get("args") != [name, codex.REPEAT_FLAG]:
                continue  # written by hand
            source = profiles[name]["source"]
            text = codex.render("", name, provider["auth"]["command"], source=source)
            assert doc == tomllib.loads(text), f"README.md:{block.line}: not what integrate codex writes"
            written += 1
    assert written >= 2


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lstrip("#").strip().lower())
    return text.replace(" ", "-")


def test_links_and_repository_paths_exist() -> None:
    text = README.read_text(encoding="utf-8")
    headings = {_slug(line) for line in text.splitlines() if re.match(r"#{1,6} ", line)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith("#"):
            assert target[1:] in headings, f"README.md links to a missing heading {target}"
        elif "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to a missing file {target}"
    tops = ("tokend/", "tests/", "packaging/", "benchmarks/", "scripts/", "docs/", "systemd/", "examples/")
    for path in re.findall(r"`([a-z]+/[A-Za-z0-9_./-]*)`", text):
        if path.startswith(tops):
            assert (ROOT / path).exists(), f"README.md names {path}, which does not exist"


def test_daemon_environment_allow_list_is_the_codes() -> None:
    from tokend.daemon.environment import ALLOWED_NAMES, ALLOWED_PREFIXES

    section = " ".join(_section("### Environment of the daemon").split())
    for prefix in ALLOWED_PREFIXES:
        assert f"`{prefix}*`" in section, f"README.md: the daemon keeps {prefix}*"
    systemd = {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}
    systemd |= {"JOURNAL_STREAM", "INVOCATION_ID"}
    assert "what systemd passes to the service" in section
    for name in ALLOWED_NAMES - systemd:
        listed = f"`{name}`" in section or f"`{name.lower()}`" in section
        assert listed, f"README.md: the daemon keeps {name}"


def _command_lines() -> list[str]:
    """Every `tokend …` / `tokend-print …` in an inline code span or a ```sh block of README."""
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"`(tokend(?:-print)? [^`]+)`", text)
    shell = False
    for line in text.splitlines():
        if line.startswith("```"):
            shell = line.strip() == "```sh"
        elif shell:
            found += re.findall(r"(?:^|\$\(|\| |; |&& )\s*(tokend(?:-print)? [^|;)#]*)", line)
    return found


def test_every_command_and_option_shown_exists() -> None:
    import click

    from tokend.cli import cli
    from tokend.client.fastpath import USAGE

    root = click.Context(cli, info_name="tokend")
    for line in _command_lines():
        words = line.split(" -- ")[0].split()  # after --, the words are the command's own
        options = re.findall(r"(?<![\w=])--?[a-z][a-z-]*", " ".join(words[1:]))
        if words[0] == "tokend-print":
            known = set(re.findall(r"--?[a-z][a-z-]*", USAGE)) | {"-f"}
        else:
            command: click.Command = cli
            ctx = root
            for word in (w for w in words[1:] if not w.startswith("-")):
                if not isinstance(command, click.Group):
                    break
                sub = command.get_command(ctx, word)
                assert sub is not None, f"README.md shows `{line}`: no such command"
                command, ctx = sub, click.Context(sub, info_name=word, parent=ctx)
            known = {"--help", "-h"}
            for param in command.params:
                known.update(getattr(param, "opts", []), getattr(param, "secondary_opts", []))
        for option in options:
            assert option in known, f"README.md shows `{line}`: {option} is not an option"


def test_every_source_is_documented() -> None:
    """The sources table gives each simple source's options; every other source is named for its section."""
    from tokend.sources import registry

    section = _section("## Configuration")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z0-9-]+)` \|.*$", section, re.M)}
    for name in registry.BUILTIN:
        cls = registry.lookup(name)
        assert cls is not None
        if name in rows:
            for option in cls.options:
                assert f"`{option}`" in rows[name], f"README.md sources table: {name} has {option}"
        else:
            assert f"`{name}`" in section, f"README.md Configuration: source {name} is not named"
