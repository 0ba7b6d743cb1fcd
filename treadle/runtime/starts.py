"""Starts from clients of this process: a new instance created with its first turn, run on
the client's thread, in one durable commit (see ``WorkflowRuntime.start_here``).

The first turn is prepared on the client's thread without the engine lock, then committed
with the instance in one of two ways:

- With the engine's waiting turns, on a store that groups starts
  (:class:`~treadle.store.capabilities.StartGrouping`) when the engine lock is free: the
  results of activities waiting for the dispatcher (their instances' next turns) ride along
  in the start's commit, after the starts handed over are taken on
  (:meth:`~treadle.runtime.engine.Engine.commit_with_start`). On SQLite every commit of a
  process goes through one writer and pays a durable flush of its own: this is one commit
  where there would be two.
- Alone, without the engine lock: a round, which holds the lock through its own commit,
  neither waits for the start nor makes it wait. The engine then takes the start on
  (:meth:`~treadle.runtime.engine.Engine.adopt`: caches and holds the instance, runs its
  first activities) at once if the engine lock is free, else the start is handed to the
  dispatcher, whose next round takes it on first (:meth:`LocalStarts.take_handed_over`).

Either way the instance and its first turn are durable when the start returns, and the
activities the turn leased start only after that commit. A first turn that raises (workflow
code raising a ``BaseException``) or runs past ``START_TURN_LIMIT_S`` (interrupted by the
turn watchdog, :mod:`treadle.runtime.watchdog`) commits nothing: the start goes through the
store, so it returns once the instance is recorded whatever its first turn does, and the
dispatcher runs that turn under the runtime's full limit.

A client starting workflows in a loop begins each start sooner after the last one than a
start takes; a client that waits for its workflow between starts never does (a workflow's
steps take longer than its start). While a client starts workflows in a loop, the dispatcher
leaves the results of activities to its starts (:meth:`LocalStarts.await_starts`): it waits
while a start is under way and, after one, as long as a start takes, looking again as
often; it goes on at once when its round has more to do than commit activity results or
the runtime is shutting down, and waits no longer than ``_PATIENCE_S`` in all.

Threads:
- Client threads: :meth:`LocalStarts.start`, one at a time (the start gate: a start that
  finds it taken goes through the store, side by side with this one).
- The dispatcher: :meth:`LocalStarts.await_starts` before each round, and
  :meth:`LocalStarts.take_handed_over` in it, under the engine lock.
- The thread calling ``shutdown``: :meth:`LocalStarts.busy` and
  :meth:`LocalStarts.drop_handed_over`.

State: the start gate; the queue of starts handed over (put by client threads, taken under
the engine lock); and the pace of the starts (when the last one ended, how long it took,
whether it began sooner after the one before than that), written by the thread holding the
gate and read by the dispatcher without a lock (floats and a bool: either value is a fine
hint). These times are real (``time.monotonic``), not the runtime's clock: they measure a
client's pace and bound the dispatcher's short waits, which a clock a test steps must not
stretch or shrink.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time

from treadle.clock import Clock, utcnow
from treadle.core.records import record_class
from treadle.core.replay import WorkflowExecution
from treadle.errors import StoreError
from treadle.runtime.cache import CachedExecution
from treadle.runtime.engine import Engine
from treadle.runtime.options import RunState, RuntimeOptions
from treadle.runtime.pending import PendingTurn
from treadle.runtime.registry import Workflow
from treadle.runtime.turns import TurnInput
from treadle.store.base import CommitOutcome, NewInstance, creatable
from treadle.store.capabilities import StartGrouping

__all__ = ["LocalStarts"]

logger = logging.getLogger(__name__)

_PATIENCE_S = 0.1  # the longest the dispatcher leaves its turns to a client's starts
_LOOK_S = (0.0001, 0.001)  # how often it looks again meanwhile: as long as a start takes


@record_class
class _Committed:
    """A start committed alone, for the engine to take on (see the module)."""

    entry: PendingTurn
    """Its first turn, committed."""
    outcome: CommitOutcome
    """What the store said."""
    sent_at: float
    """When the commit was sent (the clock's monotonic time): its leases hold from then."""


class LocalStarts:
    """The starts from clients of this process during one run of a runtime (see the
    module).

    Args:
        engine: the run's engine.
        options: the runtime's settings.
        run: whether the runtime is stopping.
        clock: the runtime's clock (the first turn's timestamps, the leases).
    """

    def __init__(
        self, engine: Engine, options: RuntimeOptions, run: RunState, clock: Clock
    ) -> None:
        self._engine = engine
        self._options = options
        self._run = run
        self._clock = clock
        self._groups = isinstance(engine.store, StartGrouping)
        self._gate = threading.Lock()  # held by the one start under way
        self._ended_at = -math.inf  # when the last start ended
        self._took = 0.0  # how long it took
        self._streaming = False  # it began sooner after the one before than that
        # committed alone while the engine lock was taken, for the dispatcher's next round
        self._handed_over: queue.SimpleQueue[_Committed] = queue.SimpleQueue()

    def start(self, fn: Workflow, new: NewInstance, registry_generation: int) -> bool:
        """Create ``new`` with its first turn, run now on the caller's thread, in one
        commit (client thread; see ``WorkflowRuntime.start_here``, which checks the rest).
        ``registry_generation``: the registry's workflow generation when ``fn`` was read
        (see :mod:`treadle.runtime.cache`).

        Returns:
            True: the instance and its first turn are committed. False: nothing was
            written (another start is under way, the runtime is stopping, the first turn
            creates instances, or the id is in use).

        Raises:
            StoreError: the store failed; whether the instance exists is then unknown.
        """
        if not self._gate.acquire(blocking=False):
            return False
        begun = time.monotonic()
        self._streaming = begun - self._ended_at < self._took
        try:
            if self._run.draining:  # (shutdown waits for a start that holds the gate)
                return False
            return self._start(fn, new, registry_generation)
        finally:
            self._ended_at = time.monotonic()
            self._took = self._ended_at - begun
            self._gate.release()

    def busy(self, deadline: float) -> bool:
        """Whether a start is under way, or activities are in flight or about to be (a
        start handed to the dispatcher): what shutdown waits for. Looked at under the
        engine lock, which the dispatcher holds while it moves a handed-over start's
        activities into flight; a round that outlasts ``deadline`` (``time.monotonic``)
        counts as busy."""
        engine = self._engine
        if not engine.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return True
        try:
            return self._gate.locked() or not self._handed_over.empty() or bool(engine.inflight)
        finally:
            engine.lock.release()

    def drop_handed_over(self) -> None:
        """Forget the starts still handed over (shutdown, after its timeout: their leases
        are released with all the others)."""
        while not self._handed_over.empty():
            self._handed_over.get_nowait()

    def take_handed_over(self) -> bool:
        """Take on the starts handed over (the engine lock held: the dispatcher's round, or
        a start); whether there were any."""
        took = False
        while True:
            try:
                started = self._handed_over.get_nowait()
            except queue.Empty:
                return took
            took = True
            self._engine.adopt(started.entry, started.outcome, started.sent_at)

    def _start(self, fn: Workflow, new: NewInstance, registry_generation: int) -> bool:
        engine = self._engine
        iid = new.instance_id
        cached = CachedExecution(
            execution=WorkflowExecution(fn, instance_id=iid),
            name=new.name,
            execution_id=new.execution_id,
            version=0,
            history_len=0,
            registry_generation=registry_generation,
        )
        entry = PendingTurn(iid)
        turn = TurnInput(iid, new.name, new.execution_id, 0, 0, app_id=self._options.app_id)
        started = new.started_event(utcnow(self._clock))
        try:
            engine.prepare.prepare_turn(entry, cached, turn, [started], [], alone=True)
        except BaseException as exc:
            engine.watchdog.forget()
            if isinstance(exc, StoreError) or (
                isinstance(exc, KeyboardInterrupt)
                and threading.current_thread() is threading.main_thread()
            ):
                raise  # (the store's error; or maybe Ctrl-C: see TurnPreparer.prepare_or_fail)
            # The first turn raised (workflow code raising BaseException) or ran past its
            # limit: the instance is created through the store, and the dispatcher runs
            # the turn again, failing the instance if it raises there too.
            logger.info("first turn of %s not run on the client's thread: %r", iid, exc)
            return False
        commit = entry.commit
        if commit is None or not creatable(commit):
            return False
        entry.commit = dataclasses.replace(commit, create=new)
        if self._groups and engine.lock.acquire(blocking=False):
            try:
                self.take_handed_over()
                taken = engine.commit_with_start(entry)
            finally:
                engine.lock.release()
            if taken is not None:
                return taken
        sent_at = self._clock.monotonic()
        options = self._options
        engine.observer.stamp({iid: entry})
        (outcome,) = engine.store.commit_turns(options.owner, [entry.commit], options.lease_s)
        if not outcome.ok:
            return False  # the id is in use: the store's start says what to do
        if engine.observer.tracing is not None:
            engine.observer.tracing.committed([entry.commit], {iid: outcome})
        self._take_on(_Committed(entry, outcome, sent_at))
        return True

    def _take_on(self, started: _Committed) -> None:
        """Have the engine take on a start committed alone (client thread, without the
        engine lock): now if the lock is free, else in the dispatcher's next round, which
        this wakes. Once the runtime stops, nothing: the start's leases lapse, as after a
        crash, or are released by the shutdown."""
        if self._run.stopping.is_set():
            return
        engine = self._engine
        if engine.lock.acquire(blocking=False):
            try:
                engine.adopt(started.entry, started.outcome, started.sent_at)
            finally:
                engine.lock.release()
            return
        self._handed_over.put(started)
        engine.wakeups.wake()

    def await_starts(self) -> None:
        """Leave the engine's turns to a client of this process starting workflows in a
        loop, whose starts commit them along (dispatcher, before a round; see the module)."""
        if not self._groups:
            return
        now = time.monotonic()
        deadline = now + _PATIENCE_S
        while now < deadline and not self._run.draining and not self._other_work():
            took = self._took
            if not self._streaming:
                return
            if not self._gate.locked() and now >= self._ended_at + took:
                return  # no next start came
            time.sleep(min(max(took, _LOOK_S[0]), _LOOK_S[1]))
            now = time.monotonic()

    def _other_work(self) -> bool:
        """Whether the dispatcher's next round has more to do than commit the results of
        activities (claims, renewals, remote workers' answers): it leaves none of that to
        a start."""
        engine = self._engine
        now = self._clock.monotonic()
        return (
            engine.wakeups.claims_due(now)
            or engine.inflight.renewal_due(now)
            or (engine.remote is not None and engine.remote.has_answers())
        )
