"""The ids a client gives new instances when the caller gives none.

A new instance's default id is a UUID of version 7 (RFC 9562), written as 32 lowercase hex
digits like a version 4 UUID's ``.hex``: 48 bits of Unix time in milliseconds, then 74
random bits. Ids made one after another sort by the time they were made, so the rows of
instances started together sit side by side in the stores' indexes (the instances' primary
key, and the history's key, which begins with the instance id): a commit of a busy runtime
rewrites a few index pages where random ids scattered it over one page per instance, and
its durable flush writes that much less. The random bits keep ids unique across threads,
processes and hosts, as a version 4 UUID's do.

Any thread may call :func:`new_instance_id`; it keeps no state.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_instance_id"]

_RANDOM_BITS = 74  # 12 after the version, 62 after the variant


def new_instance_id(unix_ms: int | None = None) -> str:
    """A fresh instance id: a version 7 UUID in 32 lowercase hex digits (see the module).

    Args:
        unix_ms: the time to put in it, in milliseconds since the epoch (default: now).
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big") >> (80 - _RANDOM_BITS)
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | (rand >> 62) << 64
        | 0b10 << 62  # the RFC's variant
        | rand & ((1 << 62) - 1)
    )
    return f"{value:032x}"
