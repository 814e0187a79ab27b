"""Credential sources, one module per provider (see ``registry``)."""
