"""Writers of consumer configs (Codex, AWS, kubectl, …) for ``tokend integrate``."""

from __future__ import annotations

from tokend.core.errors import ConfigError


def read_config(path: str, what: str) -> str:
    """The text of ``path`` ("" if there is none); one that cannot be read is a ConfigError about ``what``."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read {what}: {e}") from None
