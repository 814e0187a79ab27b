"""Writers of consumer configs (Codex, AWS, kubectl, …) for ``tokend integrate``."""
