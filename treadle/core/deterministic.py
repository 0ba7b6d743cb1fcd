"""Ids, numbers and times for workflow code that replay identically.

Workflow code runs again over its recorded history after a restart, or when another worker
takes the instance, and must take the same decisions each time. ``datetime.now()``,
``uuid.uuid4()`` and the ``random`` module give other values on every run, so a workflow that
branches on them (or passes them to an activity) can take another path on replay and fail
with a non-determinism error, or quietly send different data. The helpers on
:class:`~treadle.core.context.WorkflowContext` derive their values from the instance id, the
turn's recorded time and a count of calls instead, so every replay sees the same ones:

- ``ctx.now()``: the turn's time from history (``ctx.current_utc_datetime``).
- ``ctx.uuid4()`` / ``ctx.new_guid()``: a UUID (version 5) built as the Dapr SDK's
  durabletask builds it: from the instance id, the turn's time and the call's number.
- ``ctx.random()``: a :class:`DeterministicRandom`, seeded from the instance id, the turn's
  time and the call's number.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import MutableSequence, Sequence
from datetime import datetime
from typing import TypeVar

__all__ = ["GUID_NAMESPACE", "DeterministicRandom", "workflow_random", "workflow_uuid"]

T = TypeVar("T")

GUID_NAMESPACE = uuid.UUID("9e952958-5e33-4daf-827f-2fa12937b875")
"""The namespace of the UUIDs (the one durabletask's ``NewGuid`` uses)."""


def _sdk_time(at: datetime) -> str:
    """The time as the SDK formats it (a naive UTC datetime's ``isoformat``)."""
    offset = at.utcoffset()
    if offset is not None:
        at = (at - offset).replace(tzinfo=None)
    return at.isoformat()


def workflow_uuid(instance_id: str, at: datetime, counter: int) -> uuid.UUID:
    """The ``counter``-th UUID of a workflow run's code, at turn time ``at``: the value the Dapr
    SDK's ``uuid4()`` / ``new_guid()`` gives for the same instance, time and call."""
    return uuid.uuid5(GUID_NAMESPACE, f"{instance_id}_{_sdk_time(at)}_{counter}")


def workflow_random(instance_id: str, at: datetime, counter: int) -> DeterministicRandom:
    """The ``counter``-th random generator of a workflow run's code, at turn time ``at``."""
    seed = f"{instance_id}:{_sdk_time(at)}:{counter}".encode()
    return DeterministicRandom(hashlib.sha256(seed).digest())


class DeterministicRandom:
    """A pseudo-random generator that gives the same numbers for the same seed, on any
    machine and Python version (SHA-256 of the seed and a counter); the common methods of
    :class:`random.Random`. Not for secrets.

    Args:
        seed: the seed bytes.
    """

    __slots__ = ("_count", "_seed")

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._count = 0

    def getrandbits(self, k: int) -> int:
        """A non-negative int of ``k`` random bits."""
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        value, bits = 0, 0
        while bits < k:
            block = hashlib.sha256(self._seed + self._count.to_bytes(8, "big")).digest()
            self._count += 1
            value = (value << 256) | int.from_bytes(block, "big")
            bits += 256
        return value >> (bits - k)

    def random(self) -> float:
        """A float in [0.0, 1.0)."""
        return self.getrandbits(53) * 2.0**-53

    def uniform(self, a: float, b: float) -> float:
        """A float between ``a`` and ``b``."""
        return a + (b - a) * self.random()

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        """An int from ``range(start, stop, step)`` (``range(start)`` with one argument)."""
        choices = range(start) if stop is None else range(start, stop, step)
        if not choices:
            raise ValueError(f"empty range for randrange: {choices}")
        return choices[self._below(len(choices))]

    def randint(self, a: int, b: int) -> int:
        """An int N with ``a <= N <= b``."""
        return self.randrange(a, b + 1)

    def choice(self, seq: Sequence[T]) -> T:
        """An element of a non-empty sequence."""
        if not seq:
            raise IndexError("cannot choose from an empty sequence")
        return seq[self._below(len(seq))]

    def shuffle(self, x: MutableSequence[T]) -> None:
        """Shuffle a list in place."""
        for i in range(len(x) - 1, 0, -1):
            j = self._below(i + 1)
            x[i], x[j] = x[j], x[i]

    def sample(self, population: Sequence[T], k: int) -> list[T]:
        """``k`` distinct elements of ``population``, in a random order."""
        if not 0 <= k <= len(population):
            raise ValueError("sample larger than population or negative")
        pool = list(population)
        self.shuffle(pool)
        return pool[:k]

    def _below(self, n: int) -> int:
        """An int in [0, n), without modulo bias."""
        bits = n.bit_length()
        while True:
            value = self.getrandbits(bits)
            if value < n:
                return value
