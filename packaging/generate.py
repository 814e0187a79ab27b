#!/usr/bin/env python3
"""Generate the man page and the shell completions from the click command tree.

    python3 packaging/generate.py OUTDIR
    python3 packaging/generate.py --update

writes OUTDIR/tokend.1 and OUTDIR/completions/{tokend.bash,_tokend,tokend.fish}.
Every package (debian, rpm, arch, homebrew) runs this at build time with the
tokend being packaged importable, so what it ships always matches its CLI.
``--update`` refreshes the copies in the source tree, ``packaging/man/tokend.1``
and ``packaging/completions/``: the wheel ships those as data files
(pyproject.toml's ``[tool.setuptools.data-files]``), so a pip or pipx install
has the man page and the completions too.
The completions are click's: they call ``tokend`` itself to complete.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tokend import __version__  # noqa: E402
from tokend.cli import cli  # noqa: E402
from tokend.cli.completion import PROG, script  # noqa: E402

COMPLETIONS = {"bash": "tokend.bash", "zsh": "_tokend", "fish": "tokend.fish"}
#: Where ``--update`` puts them in the source tree: each under the name its shell looks for.
TREE = Path(__file__).resolve().parent
TREE_FILES = {
    "tokend.1": TREE / "man" / "tokend.1",
    "tokend.bash": TREE / "completions" / "bash" / "tokend",
    "_tokend": TREE / "completions" / "zsh" / "_tokend",
    "tokend.fish": TREE / "completions" / "fish" / "tokend.fish",
}

HEADER = r""".TH TOKEND 1 "" "tokend {version}" "User Commands"
.SH NAME
tokend, tokend-print \- cache and refresh cloud credentials; print them for command-based auth
.SH SYNOPSIS
.B tokend-print
.I PROFILE
.RB [ \-\-format
.IR F ]
.RB [ \-\-min\-ttl
.IR D ]
.RB [ \-\-refresh ]
.RB [ \-\-refresh\-on\-repeat ]
.br
.B tokend
.I COMMAND
.RI [ ARGS ...]
.SH DESCRIPTION
A small per-user daemon fetches, caches and refreshes credentials (Google,
AWS, Azure, the OS keychain, any command); thin helpers print the current
credential to stdout, so a program that runs a command for its credential
(the Codex CLI auth.command, Claude Code apiKeyHelper, AWS credential_process,
kubectl exec plugins, git and docker credential helpers, CI jobs) gets it in
milliseconds, never an expired one.
.PP
.B tokend\-print
is the fast path: it asks the daemon over its unix socket, starts a daemon
when none answers, and falls back to fetching in-process
.RB ( "tokend get \-\-no\-daemon" )
when that fails within its deadline.
.PP
Formats: raw (default: the token and one newline), json, header, env,
aws\-process, aws\-sts, exec\-credential.
.SH COMMANDS
"""

FOOTER = r""".SH ENVIRONMENT
.TP
.B TOKEND_CONFIG
The configuration file (default:
.IR $XDG_CONFIG_HOME/tokend/config.toml ).
.TP
.B TOKEND_TIMEOUT
The helper's own deadline in seconds (default 4).
.TP
.B TOKEND_NO_DAEMON=1
Fetch daemonless, through a cache shared between processes (CI).
.TP
.B TOKEND_NO_AUTOSTART=1
Never start a daemon; fall back to daemonless.
.TP
.B TOKEND_NO_FALLBACK=1
No daemonless fallback: exit 3 when no daemon answers.
.TP
.B XDG_RUNTIME_DIR
The socket lives in
.IR $XDG_RUNTIME_DIR/tokend/
(else
.IR /tmp/tokend\-UID/ ).
.SH FILES
.TP
.I ~/.config/tokend/config.toml
Profiles: which source, scopes, min_ttl, timeouts.
.TP
.I $XDG_RUNTIME_DIR/tokend/tokend.sock
The daemon's socket (mode 0600, directory 0700).
.TP
.I ~/.config/systemd/user/tokend.socket, tokend.service
The user units
.B tokend service install
writes (distribution packages install them in
.IR /usr/lib/systemd/user/ ).
.TP
.I ~/Library/LaunchAgents/dev.tokend.plist
The launchd agent on macOS.
.SH EXIT STATUS
0 success; 1 the credential could not be obtained; 2 usage or configuration
error; 3 no daemon could be asked (none answered and the fallback is disabled,
or the runtime directory is refused); 4 login required
.RB ( "tokend login PROFILE" ).
On failure stdout is empty and stderr has one line naming the profile and the
cause; never a secret.
.SH SEE ALSO
.BR systemctl (1),
.BR systemd.socket (5),
.BR launchctl (1)
"""


def roff(text: str) -> str:
    """Escape free text for roff: backslashes, hyphens, and lines starting with . or '."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.split("\n"))


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[click.Command, click.Context]]:
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx)
        if isinstance(cmd, click.Group):
            out += _commands(cmd, sub)
        else:
            out.append((cmd, sub))
    return out


def man_page() -> str:
    root = click.Context(cli, info_name=PROG)
    parts = [HEADER.format(version=__version__)]
    for cmd, ctx in _commands(cli, root):
        usage = " ".join(cmd.collect_usage_pieces(ctx)).replace("[OPTIONS]", "").strip()
        parts.append(f".SS {roff(ctx.command_path)}" + (f" {roff(usage)}" if usage else "") + "\n")
        text = (cmd.help or "").split("\f")[0].strip()
        if text:
            parts.append(roff(click.unstyle(" ".join(text.split()))) + "\n")
        for param in cmd.get_params(ctx):
            if not isinstance(param, click.Option) or param.hidden:
                continue
            record = param.get_help_record(ctx)
            if record is None or "--help" in record[0]:
                continue
            opts, help_text = record
            parts.append(f".TP\n.B {roff(opts)}\n{roff(' '.join(help_text.split()))}\n")
        parts.append(".PP\n" if not parts[-1].endswith(".PP\n") else "")
    parts.append(FOOTER)
    return "".join(parts)


def completions() -> dict[str, str]:
    return {filename: script(cli, shell) for shell, filename in COMPLETIONS.items()}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "--update":
        for name, text in {"tokend.1": man_page(), **completions()}.items():
            TREE_FILES[name].parent.mkdir(parents=True, exist_ok=True)
            TREE_FILES[name].write_text(text)
        return 0
    outdir = Path(argv[1])
    (outdir / "completions").mkdir(parents=True, exist_ok=True)
    (outdir / "tokend.1").write_text(man_page())
    for filename, text in completions().items():
        (outdir / "completions" / filename).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
