"""Seeds derived from names and numbers: the one source of reproducible randomness in xlt.

Every random stream (initialisation, per-step masking and dropout, few-shot samples, data order) is seeded with
``derive_seed(<purpose>, <run seed>, <step>, <rank>, ...)``, so a stream depends only on what it is for, never on
how many random numbers other code drew before it, and a resumed or multi-process run draws the same numbers.
"""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that depends only on ``parts`` (stable across processes and Python versions)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)
