"""The reliability suite's use of the stores' fault hook (:mod:`treadle.store.faults`).

A spec ``MODE:P`` makes each commit fail with probability P at the point MODE names:

- ``before``: before the COMMIT; the caller sees the store's outage error and nothing was
  written;
- ``during``: the driver's own error for a commit whose outcome is unknown (SQLite's
  ``disk I/O error``; on PostgreSQL a connection lost once the COMMIT was sent), raised before
  or after the COMMIT at random: the code cannot tell which;
- ``after``: once the COMMIT returned, the store's outage error: committed, but the caller
  saw an error.
"""

from __future__ import annotations

import random
import sqlite3

from treadle.errors import StoreUnavailableError
from treadle.store import faults

MODES = ("before", "during", "after")


class Injector:
    """The hook: fails commits at random at one point; counts what it did."""

    def __init__(self, mode: str, probability: float, backend: str) -> None:
        if mode not in MODES:
            raise ValueError(f"fault mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode = mode
        self.probability = probability
        self.backend = backend
        self.injected = 0
        self._rng = random.Random()

    def __call__(self, stage: str) -> None:
        if self._rng.random() >= self.probability:
            return
        if self.mode == "during":
            if stage != self._rng.choice(["before", "after"]):
                return
            self.injected += 1
            if self.backend == "sqlite":
                raise sqlite3.OperationalError("disk I/O error")
            import psycopg

            raise psycopg.OperationalError(
                "server closed the connection unexpectedly (injected while committing)"
            )
        if stage != self.mode:
            return
        self.injected += 1
        raise StoreUnavailableError(
            "injected fault: the commit failed before it was made"
            if stage == "before"
            else "injected fault: committed, but the caller saw an error"
        )


def install(spec: str, backend: str) -> Injector:
    """Set the stores' hook from ``MODE:P`` (see the module); return it."""
    mode, _, probability = spec.partition(":")
    injector = Injector(mode, float(probability or "0.02"), backend)
    faults.hook = injector
    return injector


def uninstall() -> None:
    """Unset the hook."""
    faults.hook = None
