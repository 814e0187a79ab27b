"""Credential endpoints: the local metadata servers cloud SDKs fall back to, answered from the broker.

One server per cloud (``aws``, ``google``, ``azure``), each on 127.0.0.1 and
an ephemeral port with a fresh random token, sharing ``http`` (limits, the
peer's uid, the Host check). ``tokend exec --endpoint`` runs them on an event
loop in a thread of its own for the life of its command (``runner``).
"""
