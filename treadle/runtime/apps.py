"""The runtime among the apps and workers of its store (see :mod:`treadle.store.apps`).

A runtime claims only the work of its app and of the names it has registered, so nothing
another worker has is ever failed here as "not registered". What nobody can take waits, and
the **presence** thread of every runtime makes that visible and bounded:

- It advertises the runtime (its app, and the workflow and activity names it takes, any name
  for a sidecar) at start, every :data:`HEARTBEAT_S` seconds, and as stopped at shutdown.
- It sweeps the work nobody holds. A group that no live worker of its app takes (a worker is
  live while heard from within :data:`LIVE_S`) gets a note in the waiting instances' state
  (the instances themselves, or those that called the activity), saying what is missing.
- A call that this runtime's app made to **another** app (an activity, or a child workflow not
  yet started) fails, as a ``TaskFailedError`` under the caller's retry policy, when that app
  cannot take it: after :data:`NAME_GRACE` if the app has running workers but none ever
  registered the name, else (the app has no running worker, or those that had the name are
  gone) after the runtime's ``app_wait``. Within one app nothing is failed: a worker that
  has the name may start at any time.

The decisions are a pure function (:func:`plan_sweep`); :class:`Presence` runs them.

Threads: :class:`Presence` owns the ``treadle-presence`` thread and the last notes it sent;
``start`` and ``stop`` are called by the runtime's facade. Its times are the store's (a
worker's heartbeat is stamped by the store, and the runtime's own stamp is its "now"), and
its waits are on the runtime's clock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import field
from datetime import datetime, timedelta

from treadle.clock import Clock
from treadle.core.records import record_class
from treadle.errors import FailureDetails, StoreError, StoreLostError
from treadle.store.apps import WaitingWork, WorkerInfo, WorkerRecord
from treadle.store.base import Store

__all__ = ["HEARTBEAT_S", "LIVE_S", "NAME_GRACE", "Presence", "SweepPlan", "plan_sweep"]

logger = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
"""How often a runtime refreshes its advertisement and sweeps the waiting work."""

LIVE_S = 10.0
"""A worker not heard from for longer is taken as gone (it was killed)."""

NAME_GRACE = timedelta(seconds=10)
"""How long a call to another app waits when that app runs, but none of its workers has ever
registered the name called (a typo, or code not deployed there)."""


@record_class
class SweepPlan:
    """What a sweep does.

    Attributes:
        fails: groups of calls to fail: the group, the failure, and the visible time before
            which a call of the group fails.
        notes: the waiting notes to set, by group.
    """

    fails: list[tuple[WaitingWork, FailureDetails, datetime]] = field(default_factory=list)
    notes: list[tuple[WaitingWork, str]] = field(default_factory=list)


def _app_phrase(app_id: str) -> str:
    return f"app {app_id!r}" if app_id else "the workers with no app id"


def waiting_note(work: WaitingWork, *, app_runs: bool) -> str:
    """What an instance's state says while ``work`` waits for a worker."""
    kind = work.kind.value
    where = _app_phrase(work.app_id)
    missing = (
        f"no running worker of {where} has {kind} {work.name!r} registered"
        if app_runs
        else f"{where} has no running worker"
    )
    hint = f"runtime.register_{kind}" + (
        f" in a runtime with app id {work.app_id!r}" if work.app_id else ""
    )
    return (
        f"waiting for a worker to run {kind} {work.name!r}: {missing}; it runs as soon as a "
        f"worker that has it starts ({hint})"
    )


def _failure(work: WaitingWork, *, app_runs: bool, waited: timedelta) -> FailureDetails:
    kind = work.kind.value
    if app_runs:
        return FailureDetails(
            message=(
                f"{kind} {work.name!r} is not registered by any running worker of app "
                f"{work.app_id!r} (waited {waited.total_seconds():g} s); register it in that "
                f"app with runtime.register_{kind}, or call the app that has it"
            ),
            error_type="RegistrationError",
        )
    return FailureDetails(
        message=(
            f"no worker of app {work.app_id!r} took {kind} {work.name!r} within "
            f"{waited.total_seconds():g} s: the app has no running worker that has it (start "
            f"one with app id {work.app_id!r}: WorkflowRuntime(app_id=...), `treadle serve "
            "--app-id`, or `dapr run --app-id`)"
        ),
        error_type="TimeoutError",
    )


def _is_call_to_another_app(work: WaitingWork) -> bool:
    return work.caller_app_id is not None and work.caller_app_id != work.app_id and not work.started


def plan_sweep(
    workers: Sequence[WorkerRecord],
    waiting: Sequence[WaitingWork],
    *,
    app_id: str,
    now: datetime,
    app_wait: timedelta,
    live: timedelta = timedelta(seconds=LIVE_S),
    name_grace: timedelta = NAME_GRACE,
) -> SweepPlan:
    """Decide what a sweep by a runtime of ``app_id`` does (see the module).

    Args:
        workers: every advertisement in the store.
        waiting: the work nobody holds.
        app_id: the sweeping runtime's app: only calls made by this app are failed here.
        now: the store's time.
        app_wait: how long a call to another app waits for a worker of that app.
        live: how recently a worker must have been heard from to count as running.
        name_grace: how long a call waits when the app runs but never had the name.
    """
    plan = SweepPlan()
    running = [w for w in workers if w.is_live(now, live)]
    for work in waiting:
        kind, name = work.kind, work.name
        if any(w.info.app_id == work.app_id and w.info.takes(kind, name) for w in running):
            continue  # queued for a worker that has it
        app_runs = any(w.info.app_id == work.app_id for w in running)
        if _is_call_to_another_app(work) and work.caller_app_id == app_id:
            had_it = [
                w.seen_at
                for w in workers
                if w.info.app_id == work.app_id and w.info.takes(kind, name)
            ]
            wait = name_grace if app_runs and not had_it else app_wait
            cutoff = now - wait
            if (not had_it or max(had_it) <= cutoff) and work.since <= cutoff:
                plan.fails.append((work, _failure(work, app_runs=app_runs, waited=wait), cutoff))
                continue
        plan.notes.append((work, waiting_note(work, app_runs=app_runs)))
    return plan


class Presence:
    """Advertises a runtime and sweeps the waiting work, on a thread of its own.

    Args:
        store: the runtime's store.
        advertisement: what the runtime takes now (asked at every heartbeat: registering a
            name later takes effect).
        app_wait: how long a call this runtime's app makes to another app waits for a worker
            of that app.
        clock: the runtime's clock, for the waits between heartbeats.
    """

    def __init__(
        self,
        store: Store,
        advertisement: Callable[[], WorkerInfo],
        app_wait: timedelta,
        clock: Clock,
    ) -> None:
        self._store = store
        self._advertisement = advertisement
        self._app_wait = app_wait
        self._clock = clock
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_on_advance: Callable[[], None] | None = None
        self._last_notes: list[tuple[object, ...]] | None = None

    def start(self) -> None:
        """Advertise the runtime now (before it claims anything), then every heartbeat."""
        self._stopping.clear()
        self._store.advertise_worker(self._advertisement())
        self._stop_on_advance = self._clock.on_advance(self._wake.set)
        self._thread = threading.Thread(target=self._loop, name="treadle-presence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and advertise the runtime as stopped."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._stop_on_advance is not None:
            self._stop_on_advance()
            self._stop_on_advance = None
        with contextlib.suppress(StoreError):
            self._store.advertise_worker(self._advertisement(), stopped=True)

    def beat(self) -> None:
        """One heartbeat: refresh the advertisement, then sweep the waiting work."""
        info = self._advertisement()
        self._store.advertise_worker(info)
        workers = self._store.list_workers()
        mine = next((w for w in workers if w.info.owner == info.owner), None)
        if mine is None:
            return  # (forgotten in between: the next heartbeat writes it again)
        now = mine.seen_at  # the store's time, as it stamped this heartbeat
        plan = plan_sweep(
            workers,
            self._store.waiting_work(now),
            app_id=info.app_id,
            now=now,
            app_wait=self._app_wait,
        )
        for work, failure, before in plan.fails:
            failed = self._store.fail_waiting(work, failure, before)
            if failed:
                logger.info(
                    "failed %d call(s) to %s %r of app %r: %s",
                    failed,
                    work.kind.value,
                    work.name,
                    work.app_id,
                    failure.message,
                )
        # Written when they change (which groups, which texts; not how many wait since when),
        # and at the first heartbeat, which clears the notes a runtime gone since left.
        notes: list[tuple[object, ...]] = [
            (w.kind, w.app_id, w.name, w.caller_app_id, w.started, t) for w, t in plan.notes
        ]
        if notes != self._last_notes:
            self._store.note_waiting(plan.notes)
            self._last_notes = notes

    def _loop(self) -> None:
        next_beat = self._clock.monotonic() + HEARTBEAT_S
        while not self._stopping.is_set():
            left = next_beat - self._clock.monotonic()
            if left > 0:
                self._wake.wait(left)
                self._wake.clear()
                continue
            next_beat = self._clock.monotonic() + HEARTBEAT_S
            try:
                self.beat()
            except StoreLostError:
                return  # (the dispatcher says so, and stops the run)
            except Exception:
                logger.warning(
                    "could not advertise this worker or sweep waiting work", exc_info=True
                )
