"""Clocks: where a runtime (and a store) reads the time.

Everything in a :class:`~treadle.runtime.WorkflowRuntime` that depends on time reads it from
one :class:`Clock`: the wall clock for the timestamps it writes (each turn's
``OrchestratorStarted``, an activity's ``TaskCompleted``) and the monotonic clock for its
deadlines (leases, the pause after a dispatcher error, instances set aside for a while, lease
renewals, idle waits). :class:`SystemClock` is the real time; :class:`ManualClock` moves only
when told to, so that a test steps time instead of sleeping.

A clock is also a callable that returns :meth:`Clock.time`, which is what the stores take as
their ``clock`` argument: one :class:`ManualClock` drives a store and a runtime together::

    clock = ManualClock()
    store = SqliteStore("sqlite:///t.db", clock=clock)
    runtime = WorkflowRuntime(store, clock=clock)
    clock.advance(3600)  # a one-hour timer is due, for the store and the runtime alike

Waits stay real (a thread blocks on a ``threading.Event``), but their timeouts are computed
from the clock's deadlines, and a clock that jumps calls back the waiters it was given with
:meth:`Clock.on_advance` so that they look again at once.

This module imports only the standard library, so the stores, the runtime and the client can
all import it; the core cannot (it takes its time from history).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "utcnow"]


class Clock(Protocol):
    """Where a runtime reads the time: a wall clock and a monotonic clock."""

    def time(self) -> float:
        """Seconds since the epoch (UTC), as :func:`time.time`."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for deadlines, as :func:`time.monotonic`."""
        ...

    def on_advance(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (quickly, from the thread that moved the clock) whenever the
        clock jumps ahead, so that a thread waiting for a deadline on it looks again; return
        the function that stops that."""
        ...


def utcnow(clock: Clock) -> datetime:
    """The clock's wall time as an aware UTC datetime."""
    if clock.__class__ is SystemClock:
        return _now(timezone.utc)  # (the same time, one C call: asked several times a turn)
    return datetime.fromtimestamp(clock.time(), timezone.utc)


_now = datetime.now


def _never_called() -> None:
    """What :meth:`SystemClock.on_advance` returns: there is nothing to stop."""


class SystemClock:
    """The real time (the default clock)."""

    __slots__ = ()

    def time(self) -> float:
        """Seconds since the epoch, from :func:`time.time`."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds from :func:`time.monotonic`."""
        return time.monotonic()

    def on_advance(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Never calls ``callback``: real time does not jump, and waits end by their
        timeouts."""
        return _never_called

    def __call__(self) -> float:
        """:meth:`time`, so that a clock can be passed where a store takes ``clock=``."""
        return time.time()


class ManualClock:
    """A clock that moves only when :meth:`advance` is called (for tests).

    Its wall time and its monotonic time move together. It is thread-safe: a test advances it
    while the runtime's threads read it.

    Args:
        start: the wall time it starts at (an aware datetime, or seconds since the epoch);
            by default the current time.

    Raises:
        ValueError: ``start`` is a naive datetime.
    """

    def __init__(self, start: datetime | float | None = None) -> None:
        if start is None:
            start = time.time()
        elif isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError(
                    "ManualClock(start=...) needs an aware datetime; add tzinfo=timezone.utc to it"
                )
            start = start.timestamp()
        self._lock = threading.Lock()
        self._time = float(start)
        self._monotonic = 0.0
        self._callbacks: list[Callable[[], None]] = []

    def time(self) -> float:
        """Seconds since the epoch, as last set."""
        return self._time

    def monotonic(self) -> float:
        """Seconds since the clock was made, counting only what :meth:`advance` added."""
        return self._monotonic

    def now(self) -> datetime:
        """The wall time as an aware UTC datetime."""
        return utcnow(self)

    def advance(self, seconds: float | timedelta) -> None:
        """Move the clock ahead, then call back every waiter registered with
        :meth:`on_advance`.

        Raises:
            ValueError: ``seconds`` is negative (a clock never goes back).
        """
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if step < 0:
            raise ValueError(f"a clock never goes back: cannot advance it by {step} s")
        with self._lock:
            self._time += step
            self._monotonic += step
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def on_advance(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after each :meth:`advance`; return the function that stops it."""
        with self._lock:
            self._callbacks.append(callback)

        def stop() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return stop

    def __call__(self) -> float:
        """:meth:`time`, so that the clock can be passed where a store takes ``clock=``."""
        return self._time
