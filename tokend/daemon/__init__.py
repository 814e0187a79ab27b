"""The per-user daemon: asyncio unix-socket server in front of the broker."""
