"""tokend: a per-user credential daemon and thin helpers for command-based auth."""

__version__ = "0.1.0"
