"""A time-skipping test environment: workflows with month-long timers finish in milliseconds.

:class:`WorkflowTestEnvironment` runs a real :class:`~treadle.runtime.WorkflowRuntime` in this
process on a private in-memory store, with a virtual clock (a
:class:`~treadle.clock.ManualClock`). The clock moves only while the test waits (for an
instance to finish or start, or in :meth:`WorkflowTestEnvironment.sleep`), and then only when
nothing can go on without it: when no message is due, no activity is waiting or running and
no turn is under way, it jumps to the next timer (or retry, or delayed start, or schedule
slot, or event the test raised for later); a schedule's slot fires when the clock reaches it.
So time is deterministic: the same test sees the same virtual times on every run, however
fast the machine.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, TypeVar

from treadle.client import WorkflowClient, WorkflowState, WorkflowStatus
from treadle.clock import ManualClock
from treadle.core.context import name_of
from treadle.runtime import WorkflowRuntime
from treadle.store.schedules import fire_due
from treadle.store.sqlite import SqliteStore

__all__ = ["DEFAULT_START", "TestWorkflowClient", "WorkflowTestEnvironment"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_START = datetime(2030, 1, 1, tzinfo=timezone.utc)
"""Where the virtual clock starts, unless told otherwise: the same on every run."""

_LOOK_S = 0.001  # the real pause between two looks at a store where work is under way
_STUCK_S = 0.2  # how long (real time) nothing may be due nor scheduled before a wait gives up
_FINAL = (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.TERMINATED)


class WorkflowTestEnvironment:
    """Registered workflows run in-process on a memory store, on a virtual clock that skips
    ahead to the next timer whenever every instance waits on one.

    Use it as a context manager; inside, the runtime is started::

        with WorkflowTestEnvironment() as env:
            env.register_workflow(order)
            env.register_activity(charge)
            iid = env.client.schedule_new_workflow(order, input={"id": 1})
            state = env.client.wait_for_workflow_completion(iid)   # a 30-day timer: at once

    Args:
        start: the virtual time it starts at (an aware datetime; default
            :data:`DEFAULT_START`).
        timeout: the longest real time a wait of the test (``wait_for_workflow_completion``,
            :meth:`sleep`) may take before it fails, naming what it saw.
        runtime_options: passed on to :class:`~treadle.runtime.WorkflowRuntime`.

    Attributes:
        clock: the virtual clock (``env.clock.now()`` is the virtual time).
        store: the in-memory store.
        runtime: the runtime (started inside the ``with`` block).
        client: a client whose waits drive the virtual clock.
    """

    def __init__(
        self,
        *,
        start: datetime = DEFAULT_START,
        timeout: timedelta = timedelta(seconds=30),
        **runtime_options: Any,
    ) -> None:
        if timeout <= timedelta(0):
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.clock = ManualClock(start)
        self.timeout = timeout
        self.store = SqliteStore("memory://", clock=self.clock)
        self.runtime = WorkflowRuntime(self.store, clock=self.clock, **runtime_options)
        self.client = TestWorkflowClient(self)
        self._drive = threading.Lock()  # one thread moves the clock at a time
        self._later: list[tuple[float, int, Callable[[], None]]] = []  # (time, order, action)
        self._order = itertools.count()

    # ---- lifetime ----------------------------------------------------------------------
    def __enter__(self) -> WorkflowTestEnvironment:
        self.runtime.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Shut the runtime down and drop the store (the environment is done)."""
        try:
            self.runtime.shutdown(timeout=5)
        finally:
            self.client.close()
            self.store.close()

    # ---- registering, as on a WorkflowRuntime ------------------------------------------
    def register_workflow(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        """Register a workflow, as :meth:`WorkflowRuntime.register_workflow` does."""
        self.runtime.register_workflow(fn, name=name)

    def register_versioned_workflow(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        version_name: str | None = None,
        is_latest: bool,
    ) -> None:
        """Register a version of a workflow, as
        :meth:`WorkflowRuntime.register_versioned_workflow` does."""
        self.runtime.register_versioned_workflow(
            fn, name=name, version_name=version_name, is_latest=is_latest
        )

    def register_activity(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        """Register an activity, as :meth:`WorkflowRuntime.register_activity` does."""
        self.runtime.register_activity(fn, name=name)

    def replace_activity(
        self, activity: str | Callable[..., Any], fake: Callable[..., Any]
    ) -> None:
        """Run ``fake`` wherever the workflows call ``activity`` (a function or its name),
        registered or not: a fake for this test (``ctx, input``, sync or ``async def``)."""
        self.runtime.replace_activity(name_of(activity), fake)

    # ---- time --------------------------------------------------------------------------
    def now(self) -> datetime:
        """The virtual time."""
        return self.clock.now()

    def sleep(self, duration: timedelta) -> None:
        """Let ``duration`` of virtual time pass: the timers due meanwhile fire in order,
        and this returns when the clock has reached the end and the work it made due is done.

        Raises:
            ValueError: ``duration`` is negative.
            TimeoutError: the work did not settle within the environment's ``timeout``.
        """
        if duration < timedelta(0):
            raise ValueError(f"cannot sleep a negative time ({duration})")
        until = self.clock.time() + duration.total_seconds()
        self._drive_until(
            lambda: self.clock.time() >= until and self._settled(),
            until=until,
            what=f"the virtual clock to reach {_iso(until)}",
        )

    def raise_event_at(
        self, when: datetime | timedelta, instance_id: str, event_name: str, *, data: Any = None
    ) -> None:
        """Raise an event to an instance at a virtual time (an aware datetime, or a delay
        from now): it arrives when the clock gets there, before any timer due later.

        Raises:
            ValueError: ``when`` is a naive datetime or in the past.
        """

        def raise_it() -> None:
            self.client.raise_workflow_event(instance_id, event_name, data=data)

        self.call_at(when, raise_it)

    def call_at(self, when: datetime | timedelta, action: Callable[[], None]) -> None:
        """Call ``action`` (on the waiting test's thread) when the virtual clock reaches
        ``when`` (an aware datetime, or a delay from now).

        Raises:
            ValueError: ``when`` is a naive datetime or in the past.
        """
        at = _at(self.clock, when)
        with self._drive:
            heapq.heappush(self._later, (at, next(self._order), action))

    # ---- driving the clock -------------------------------------------------------------
    def _drive_until(
        self,
        done: Callable[[], bool],
        *,
        what: str,
        until: float | None = None,
        timeout: timedelta | None = None,
    ) -> None:
        """Move the virtual clock whenever nothing else can go on, until ``done()``.

        Raises:
            TimeoutError: not done within ``timeout`` of real time, or nothing is left that
                could make it so (no work, no timer, nothing scheduled) for a while.
        """
        limit = (timeout or self.timeout).total_seconds()
        deadline = time.monotonic() + limit
        stuck_since: float | None = None
        while not done():
            moved, waiting = self._step(until, done)
            now = time.monotonic()
            if moved or waiting:
                stuck_since = None
            elif stuck_since is None:
                stuck_since = now
            elif now - stuck_since > _STUCK_S:
                raise TimeoutError(
                    f"waited for {what}, but nothing is left to happen: no activity or turn "
                    "is running and no timer, retry or scheduled event is pending (raise the "
                    "event the workflow waits for, or check what it waits on)"
                )
            if now > deadline:
                raise TimeoutError(
                    f"waited {limit:g} s (real time) for {what}; the "
                    f"virtual clock is at {self.now().isoformat()}, work is still running"
                )
            if not moved:
                time.sleep(_LOOK_S)

    def _step(self, until: float | None, done: Callable[[], bool]) -> tuple[bool, bool]:
        """One look: run what the test scheduled for now; if nothing is due or running (and
        so nothing changes until the clock moves) and ``done()`` does not hold yet, jump the
        clock to the next thing due (no later than ``until``). Returns (whether the clock
        moved or an action ran, whether work is under way)."""
        with self._drive:
            if self._run_due():
                return True, True
            if fire_due(self.store, self.clock.now()):  # (the runtime's chores may be first)
                return True, True
            busy, due = self.store.work_outlook()
            if busy:
                return False, True
            if done():  # (it came true since the caller looked: time must not move now)
                return True, False
            later = self._later[0][0] if self._later else None
            candidates = [t for t in (due, later, self._next_slot()) if t]
            if until is not None:
                candidates = [min(t, until) for t in candidates] or [until]
            now = self.clock.time()
            target = min(candidates) if candidates else None
            if target is None or target <= now:
                return False, False
            self.clock.advance(target - now)
            self._run_due()
            fire_due(self.store, self.clock.now())  # before a wait ending now can look
            return True, True

    def _next_slot(self) -> float | None:
        """The earliest next slot of the schedules not paused (epoch seconds), if any."""
        slots = [
            r.next_slot.timestamp()
            for r in self.store.list_schedules()
            if not r.paused and r.next_slot is not None
        ]
        return min(slots, default=None)

    def _run_due(self) -> bool:
        ran = False
        while self._later and self._later[0][0] <= self.clock.time():
            _, _, action = heapq.heappop(self._later)
            action()
            ran = True
        return ran

    def _settled(self) -> bool:
        busy, _ = self.store.work_outlook()
        return not busy and not (self._later and self._later[0][0] <= self.clock.time())


class TestWorkflowClient(WorkflowClient):
    """The client of a :class:`WorkflowTestEnvironment`: its waits move the virtual clock,
    so that they end as soon as the work is done, whatever timers lie between.

    ``timeout_in_seconds`` of a wait is real time (0: the environment's ``timeout``).
    """

    __test__ = False  # (not a test class, whatever pytest thinks of its name)

    def __init__(self, env: WorkflowTestEnvironment) -> None:
        super().__init__(env.store)
        self._env = env

    def wait_for_workflow_completion(
        self, instance_id: str, *, fetch_payloads: bool = True, timeout_in_seconds: float = 0
    ) -> WorkflowState | None:
        """Wait, moving the virtual clock, until the instance has finished; None if there is
        no such instance.

        Raises:
            TimeoutError: it did not finish within the real time allowed, or it waits for
                something that nothing pending will bring (an event nobody raises).
        """
        return self._wait(instance_id, _FINAL, "finish", fetch_payloads, timeout_in_seconds)

    def wait_for_workflow_start(
        self, instance_id: str, *, fetch_payloads: bool = False, timeout_in_seconds: float = 0
    ) -> WorkflowState | None:
        """Wait, moving the virtual clock, until the instance has started (or finished)."""
        started = (*_FINAL, WorkflowStatus.RUNNING, WorkflowStatus.SUSPENDED)
        return self._wait(instance_id, started, "start", fetch_payloads, timeout_in_seconds)

    def _wait(
        self,
        instance_id: str,
        statuses: tuple[WorkflowStatus, ...],
        verb: str,
        fetch_payloads: bool,
        timeout_in_seconds: float,
    ) -> WorkflowState | None:
        env = self._env
        found: list[WorkflowState | None] = [None]

        def done() -> bool:
            state = self.get_workflow_state(instance_id, fetch_payloads=fetch_payloads)
            found[0] = state
            return state is None or state.runtime_status in statuses  # (None: no instance)

        limit = timedelta(seconds=timeout_in_seconds) if timeout_in_seconds > 0 else None
        env._drive_until(done, what=f"instance {instance_id!r} to {verb}", timeout=limit)
        return found[0]


def _at(clock: ManualClock, when: datetime | timedelta) -> float:
    if isinstance(when, timedelta):
        at = clock.time() + when.total_seconds()
    elif when.tzinfo is None:
        raise ValueError(f"{when!r} is a naive datetime: add tzinfo=timezone.utc")
    else:
        at = when.timestamp()
    if at < clock.time():
        raise ValueError(f"{_iso(at)} is in the virtual past (now {clock.now().isoformat()})")
    return at


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()
