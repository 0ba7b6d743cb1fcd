"""The ids a client gives new instances when the caller gives none.

A new instance's default id is a UUID of version 7 (RFC 9562), written as 32 lowercase hex
digits like a version 4 UUID's ``.hex``: 48 bits of Unix time in milliseconds, then 74
random bits. Ids made one after another sort by the time they were made, so the rows of
instances started together sit side by side in the stores' indexes (the instances' primary
key, and the history's key, which begins with the instance id): a commit of a busy runtime
rewrites a few index pages where random ids scattered it over one page per instance, and
its durable flush writes that much less. The random bits keep ids unique across threads,
processes and hosts, as a version 4 UUID's do.

The random bits come from a generator of this module's own, seeded from ``os.urandom`` when
the module is imported and again in the child after every ``fork``, not from ``os.urandom`` per
id: reading the system's source is a system call that lets go of the interpreter's lock, and a
client thread that starts workflows beside a busy runtime then waits for it back at every id
(20-50 us a start, measured in one process). The generator is private, so a program that calls
``random.seed()`` does not make ids repeat. Ids are unique, not secret: nothing in treadle
relies on an instance id being hard to guess (the sidecar's completion tokens use ``secrets``).

Any thread may call :func:`new_instance_id` and :func:`new_execution_id`.
"""

from __future__ import annotations

import os
import random
import time

__all__ = ["new_execution_id", "new_instance_id"]

_RANDOM_BITS = 74  # 12 after the version, 62 after the variant

# getrandbits holds the interpreter's lock for its whole call, so threads may share it
_rng = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))


def new_instance_id(unix_ms: int | None = None) -> str:
    """A fresh instance id: a version 7 UUID in 32 lowercase hex digits (see the module).

    Args:
        unix_ms: the time to put in it, in milliseconds since the epoch (default: now).
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = _rng.getrandbits(_RANDOM_BITS)
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | (rand >> 62) << 64
        | 0b10 << 62  # the RFC's variant
        | rand & ((1 << 62) - 1)
    )
    return f"{value:032x}"


def new_execution_id() -> str:
    """A fresh, unique execution id (of one run of an instance): a version 4 UUID's 32 hex
    digits."""
    value = _rng.getrandbits(128) & ~(0xF << 76 | 0b11 << 62) | 0x4 << 76 | 0b10 << 62
    return f"{value:032x}"
