"""The engine: one round of workflow work, and everything committed between rounds.

A round (the dispatcher thread) takes the results of activities that finished here and the
answers of remote workers, claims instances with new inbox messages, prepares each instance's
turn (:mod:`treadle.runtime.prepare`), commits every turn of the round in one call to the
store (group commit, :mod:`treadle.runtime.commits`), then acts on what was committed
(:mod:`treadle.runtime.outcomes`): keeps each execution in the cache, starts the activities
the turns leased here, wakes the dispatcher for what may wait.

An activity result for an instance held here is folded straight into the instance's next
turn: committed inline on the activity's thread when nothing else waits (a chain then runs
on one thread: activity, commit, next activity), else by the next round.

A start from a client of this process (:mod:`treadle.runtime.starts`) is committed on the
client's thread, then taken on (:meth:`Engine.adopt`) under the engine lock; or, on a store
that groups starts, it commits the engine's waiting turns along
(:meth:`Engine.commit_with_start`).

Threads and locks: the engine lock serializes everything that prepares or commits turns:
the dispatcher's rounds (:meth:`Engine.round`, from :mod:`treadle.runtime.dispatcher`), an
activity thread's inline commit (:meth:`Engine.on_activity_done`), and a client thread
taking on its start or committing the engine's turns with it. Under it they may touch the
cache, the in-flight activities, the wake-ups and the remote executor. The store's claims
(:mod:`treadle.runtime.claims`) run outside it, on the dispatcher, so that an inline commit
need not wait for their round trips. The thread-local ``inline`` marks the activity thread
that commits inline, which runs the next step itself.

One engine serves one run of a runtime (from ``start`` to ``shutdown``): its state is the
parts it owns (cache, in-flight activities, wake-ups, remote executor, activity executor,
suspect claims, watchdog), the parts that own none (the turn preparer, the claims, the
outcomes), the engine lock and the thread-local ``inline``.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from treadle.clock import Clock
from treadle.core.actions import Action
from treadle.core.history import HistoryEvent, WorkflowVersion
from treadle.runtime.activities import ActivityExecutor
from treadle.runtime.cache import InstanceCache
from treadle.runtime.claims import Claims
from treadle.runtime.commits import commit_or_isolate
from treadle.runtime.detours import Detours
from treadle.runtime.inflight import InflightActivities
from treadle.runtime.observe import Observer
from treadle.runtime.options import RunState, RuntimeOptions
from treadle.runtime.outcomes import Outcomes
from treadle.runtime.pending import PendingTurn, TurnInterrupted
from treadle.runtime.poison import SuspectClaims, poisoned_failure
from treadle.runtime.prepare import TurnPreparer
from treadle.runtime.registry import Registry
from treadle.runtime.wakeups import Wakeups
from treadle.runtime.watchdog import TurnWatchdog
from treadle.store.base import (
    ActivityResult,
    ActivityWorkItem,
    CommitOutcome,
    OrchestrationWorkItem,
    Store,
)

if TYPE_CHECKING:
    from treadle.runtime.remote import RemoteExecutor, RemoteWorkers

__all__ = ["Engine"]

logger = logging.getLogger(__name__)


class Engine:
    """Runs the workflow work of one run of a runtime (see the module).

    Args:
        store: the store, open.
        registry: the workflow and activity functions (read at each use: registering
            later takes effect).
        options: the runtime's settings.
        run: whether the runtime is stopping (set by its ``shutdown``).
        clock: where every part reads the time.
        remote: where work with no local function goes, if anywhere.
    """

    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        options: RuntimeOptions,
        run: RunState,
        clock: Clock,
        remote: RemoteWorkers | None,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.observer = observer or Observer(None, clock)
        self._clock = clock
        self._registry = registry
        self._options = options
        self._run = run
        self.lock = threading.Lock()
        """Held while turns are prepared and committed (see the module)."""
        self.wakeups = Wakeups(clock)
        self.cache = InstanceCache(options.cache_size)
        self.inflight = InflightActivities(
            options.lease_s, options.max_concurrent_activities, clock
        )
        self.remote: RemoteExecutor | None = None
        if remote is not None:
            # (imported only by a runtime with remote workers: most never load it)
            from treadle.runtime.remote import RemoteExecutor

            tracing = self.observer.tracing
            self.remote = RemoteExecutor(
                remote,
                self.wakeups.wake,
                clock,
                app_id=options.history_app_id,
                stamp=None if tracing is None else tracing.stamp_start_events,
            )
        self.watchdog = TurnWatchdog(options.turn_limit_s)
        """Stops a workflow turn that runs past its limit (started with the run's threads)."""
        self.suspects = SuspectClaims()
        self.detours = Detours(
            store=store,
            registry=registry,
            options=options,
            run=run,
            clock=clock,
            cache=self.cache,
            inflight=self.inflight,
            wakeups=self.wakeups,
            remote=self.remote,
        )
        """Prepares the turns that do not run the workflow here (remote answers, stalls)."""
        self.prepare = TurnPreparer(
            store=store,
            registry=registry,
            options=options,
            run=run,
            clock=clock,
            cache=self.cache,
            inflight=self.inflight,
            wakeups=self.wakeups,
            remote=self.remote,
            watchdog=self.watchdog,
            detours=self.detours,
        )
        self.claims = Claims(
            store=store,
            registry=registry,
            options=options,
            run=run,
            clock=clock,
            cache=self.cache,
            inflight=self.inflight,
            wakeups=self.wakeups,
            remote=self.remote,
            observer=self.observer,
            suspects=self.suspects,
        )
        """Leases work and renews leases, without the engine lock."""
        metrics = self.observer.metrics
        self.executor = ActivityExecutor(
            registry.activities,
            options.max_concurrent_activities,
            self.on_activity_done,
            is_current=self.inflight.still_leased,
            heartbeat=self.claims.heartbeat,
            clock=clock,
            observe=None if metrics is None else metrics.activity_done,
            tracing=self.observer.tracing,
        )
        self.outcomes = Outcomes(
            store=store,
            registry=registry,
            options=options,
            cache=self.cache,
            inflight=self.inflight,
            wakeups=self.wakeups,
            remote=self.remote,
            detours=self.detours,
            executor=self.executor,
            submit=self._submit_activity,
        )
        """Acts on what commits did (see :mod:`treadle.runtime.outcomes`)."""
        self._inline = threading.local()

    # ---- activities --------------------------------------------------------------------
    def on_activity_done(
        self, item: ActivityWorkItem, event: HistoryEvent
    ) -> ActivityWorkItem | None:
        """An activity finished (called on its thread). Returns an activity for that thread
        to run next, when committing the result scheduled one it can take at once."""
        if self._run.stopping.is_set():
            return None
        self._inline.next = None
        if self._try_inline(item, event):
            following: ActivityWorkItem | None = self._inline.next
            self._inline.next = None
            return following
        self.inflight.results.put((item, event))
        self.wakeups.wake()
        return None

    def on_remote_activity_done(self, item: ActivityWorkItem, event: HistoryEvent) -> None:
        """A remote worker's activity finished (reported on a server thread): as
        :meth:`on_activity_done`, but a local step that committing the result scheduled goes
        to the activity threads, since the reporting thread runs no activities. The result of
        a remote instance held here goes into its next turn, sent from this thread when the
        engine lock is free (no hand-off to the dispatcher)."""
        remote = self.remote
        if (
            remote is not None
            and not self._run.stopping.is_set()
            and remote.holds(item.instance_id, item.execution_id)
            and self.lock.acquire(blocking=False)
        ):
            try:
                if remote.holds(item.instance_id, item.execution_id):
                    if self.inflight.finish(item) and self.wakeups.activity_claim_due:
                        self.wakeups.wake()
                    if remote.add_result(item, event):
                        remote.send_held(item.instance_id, self._options.app_id)
                    return
            finally:
                self.lock.release()
        following = self.on_activity_done(item, event)
        if following is not None:
            self.executor.submit(following)

    def on_remote_answer(
        self,
        instance_id: str,
        actions: list[Action],
        custom_status: str | None,
        version: WorkflowVersion | None,
    ) -> bool:
        """A remote worker's answer to a turn (a server thread): committed on this thread
        when the engine lock is free, with any other answers waiting, else by the dispatcher;
        False if no turn of that instance is out."""
        remote = self.remote
        assert remote is not None
        if not remote.complete(instance_id, actions, custom_status, version, wake=False):
            return False
        if self._run.stopping.is_set() or not self.lock.acquire(blocking=False):
            self.wakeups.wake()
            return True
        pending: dict[str, PendingTurn] = {}
        try:
            self.inflight.begin_round()
            self.detours.take_remote_answers(pending)
            self._commit_pending(pending)
            self._send_held_turns()
        except Exception:
            logger.debug("inline commit of remote answers failed; the dispatcher takes over",
                         exc_info=True)  # fmt: skip
            self.outcomes.forget_round(pending, [])
            self.wakeups.wake()
        finally:
            self.lock.release()
        if self.wakeups.claim_due or self.wakeups.activity_claim_due:
            self.wakeups.wake()
        return True

    def _submit_activity(self, item: ActivityWorkItem) -> None:
        if self.remote is not None and item.name not in self._registry.activities:
            self.remote.workers.submit_activity(item)
            return
        if (
            getattr(self._inline, "active", False)
            and getattr(self._inline, "next", None) is None
            and self.executor.runs_on_thread(item)
        ):
            self._inline.next = item  # the activity thread committing this runs it next
            return
        self.executor.submit(item)

    def _try_inline(self, item: ActivityWorkItem, event: HistoryEvent) -> bool:
        """Commit an activity's result on the thread that ran it, if nothing else waits.

        A chain of steps then runs on one thread (activity, commit, next activity) with no
        hand-off to the dispatcher. Under load the engine lock is busy or completions are
        queued, and results go to the dispatcher, which commits them in groups.
        """
        if self._run.draining or not self.inflight.results.empty() or len(self.inflight) > 1:
            # Other activities are out: their results will come soon, and the dispatcher
            # commits them all at once where each inline commit would take one round trip.
            return False
        cached = self.cache.get(item.instance_id)
        if cached is None or not cached.held:
            return False
        if not self.lock.acquire(blocking=False):
            return False
        try:
            pending: dict[str, PendingTurn] = {}
            slow: list[ActivityResult] = []
            self.inflight.begin_round()
            self._inline.active = True
            self._accept_completion(item, event, pending, slow)
            try:
                if slow:
                    self.store.complete_activities(self._options.owner, slow)
                self._commit_pending(pending)
            except Exception:
                logger.debug("inline commit failed; the dispatcher takes over", exc_info=True)
                self.cache.evict(item.instance_id)
                self.inflight.results.put((item, event))
                self.wakeups.wake()
        finally:
            self._inline.active = False
            self.lock.release()
        return True

    def _take_completions(
        self, pending: dict[str, PendingTurn], slow: list[ActivityResult]
    ) -> bool:
        took = False
        while True:
            try:
                item, event = self.inflight.results.get_nowait()
            except queue.Empty:
                return took
            took = True
            self._accept_completion(item, event, pending, slow)

    def _accept_completion(
        self,
        item: ActivityWorkItem,
        event: HistoryEvent,
        pending: dict[str, PendingTurn],
        slow: list[ActivityResult],
    ) -> None:
        """Route a result: into its instance's next turn if this runtime holds the instance,
        else to the instance's inbox."""
        if self.inflight.finish(item) and self.wakeups.activity_claim_due:
            self.wakeups.wake()  # a claim may have waited for room
        cached = self.cache.get(item.instance_id)
        if cached is not None and cached.held and cached.execution_id == item.execution_id:
            entry = pending.setdefault(item.instance_id, PendingTurn(item.instance_id))
            entry.completions.append((item, event))
        elif self.remote is not None and self.remote.holds(item.instance_id, item.execution_id):
            # for its next remote turn (_send_held_turns)
            if self.remote.add_result(item, event):
                self.wakeups.wake()
        else:
            slow.append(ActivityResult(item, event))

    # ---- starts from clients of this process ------------------------------------------
    def adopt(self, entry: PendingTurn, outcome: CommitOutcome, sent_at: float) -> None:
        """Take on a start committed on a client's thread without the engine lock (the lock
        is held now): cache and hold its instance and run its first activities, whose leases
        hold from ``sent_at`` (the clock's monotonic time the commit was sent)."""
        assert entry.commit is not None
        self.wakeups.note_timers([entry.commit])
        self.outcomes.after_commit(
            entry, True, outcome.version, outcome.new_activity_ids, sent_at=sent_at
        )

    def commit_with_start(self, entry: PendingTurn) -> bool | None:
        """Commit a start (``entry``, its creating first turn prepared) with the turns the
        engine has ready, in one commit, then act on them all as a round does: the results
        of activities waiting for the dispatcher, whose next turns ride along. For a store
        that groups starts; the caller holds the engine lock.

        Returns:
            True if the start was committed, False if not (its id is in use). None if no
            turn was committed because one raised KeyboardInterrupt on the main thread
            (see :class:`~treadle.runtime.pending.TurnInterrupted`): they are left to the
            dispatcher, and the caller commits the start alone.

        Raises:
            StoreError: the store failed; whether the start was committed is unknown.
        """
        iid = entry.instance_id
        pending: dict[str, PendingTurn] = {}
        slow: list[ActivityResult] = []
        self.inflight.begin_round()
        try:
            self._take_completions(pending, slow)
            if slow:
                self.store.complete_activities(self._options.owner, slow)
            ours = pending.setdefault(iid, entry) is entry  # (else its id is in use here)
            outcomes = self._commit_pending(pending)
        except TurnInterrupted:
            self.outcomes.forget_round(pending, slow)
            self.wakeups.wake()
            return None
        except BaseException:
            self.outcomes.forget_round(pending, slow)
            self.wakeups.wake()
            raise
        if self.wakeups.claim_due or self.wakeups.activity_claim_due:
            self.wakeups.wake()
        outcome = outcomes.get(iid)
        return ours and outcome is not None and outcome.ok

    # ---- one round ---------------------------------------------------------------------
    def round(self, take_first: Callable[[], bool] = lambda: False) -> bool:
        """One round of the dispatcher; whether it found anything to do. ``take_first`` is
        called first under the engine lock, and says whether it did anything: the starts
        handed to the dispatcher are taken on then, before the instances the round claimed,
        whose records may show them (see :mod:`treadle.runtime.starts`)."""
        # The store's claims run outside the engine lock: an activity thread committing a
        # step inline need not wait for them (they are round trips to the store).
        claimed = self.claims.orchestrations()
        with self.lock:
            worked = self._round_locked(claimed, take_first)
        worked = self._claim_activities() or worked
        return worked

    def _round_locked(
        self, claimed: list[OrchestrationWorkItem], take_first: Callable[[], bool]
    ) -> bool:
        pending: dict[str, PendingTurn] = {}
        slow: list[ActivityResult] = []
        self.inflight.begin_round()
        try:
            worked = take_first()
            worked = self._take_completions(pending, slow) or worked
            worked = self.detours.take_remote_answers(pending) or worked
            if slow:
                self.store.complete_activities(self._options.owner, slow)
            for item in claimed:
                record = item.instance
                entry = pending.setdefault(record.instance_id, PendingTurn(record.instance_id))
                self.prepare.prepare_or_fail(
                    entry,
                    functools.partial(self.prepare.prepare_claimed, entry, item),
                    (record.version, record.history_len, record.execution_id),
                    [m.id for m in item.messages],
                )
            committed = self._commit_pending(pending)
            worked = self._send_held_turns() or worked
        except BaseException:
            self.outcomes.forget_round(pending, slow)
            raise
        worked = worked or bool(claimed) or bool(committed)
        self.outcomes.renew_if_due()
        return worked

    def _send_held_turns(self) -> bool:
        """Send the next turns of the remote instances held here whose activity results came
        (folded into the turn: no inbox write, no claim); whether there were any."""
        if self.remote is None:
            return False
        ready = self.remote.ready()
        for iid in ready:
            self.remote.send_held(iid, self._options.app_id)
        return bool(ready)

    def _commit_pending(self, pending: dict[str, PendingTurn]) -> dict[str, CommitOutcome]:
        """Prepare the turns not prepared yet, commit them all at once, then act on them;
        the outcomes by instance id (none: nothing to commit)."""
        prepare = self.prepare
        for entry in pending.values():
            if entry.commit is None and entry.completions:
                cached = self.cache.get(entry.instance_id)
                assert cached is not None  # (a result is taken in only for a cached instance)
                prepare.prepare_or_fail(
                    entry,
                    functools.partial(prepare.prepare_fast, entry, cached),
                    (cached.version, cached.history_len, cached.execution_id),
                    [],
                )
        observer = self.observer
        if observer.tracing is not None:
            observer.stamp(pending)
        commits = [e.commit for e in pending.values() if e.commit is not None]
        if not commits:
            return {}
        self.wakeups.note_timers(commits)
        sent_at = self._clock.monotonic()
        if observer.metrics is None:  # (the commit's latency is a metric: not timed)
            outcomes = commit_or_isolate(self.store, self._options, pending, commits, self._clock)
            seconds = 0.0
        else:
            began = time.perf_counter()
            outcomes = commit_or_isolate(self.store, self._options, pending, commits, self._clock)
            seconds = time.perf_counter() - began
        by_id = {o.instance_id: o for o in outcomes}
        observer.committed(pending, by_id, seconds)
        after_commit = self.outcomes.after_commit
        for entry in pending.values():
            if entry.commit is not None:
                outcome = by_id[entry.instance_id]
                after_commit(
                    entry, outcome.ok, outcome.version, outcome.new_activity_ids, sent_at=sent_at
                )
        return by_id

    def _claim_activities(self) -> bool:
        """Lease activity tasks (dispatcher thread; the store call without the engine lock),
        then track and run them under it."""
        claim = self.claims.activities()
        if claim is None:
            return False
        items, sent_at, free = claim
        if not items:
            if self.inflight.waits_for_claims:
                with self.lock:
                    self.inflight.claimed(items, short=True, sent_at=sent_at)
            return False
        limit = self._options.max_activity_deliveries
        suspects = self.suspects
        with self.lock:
            self.inflight.claimed(items, short=len(items) < free, sent_at=sent_at)
            for item in items:
                self.inflight.track(
                    item, sent_at, heartbeats=item.name in self._registry.activities
                )
                # (is_poisoned, inline: its attempts kept killing their workers)
                if limit is not None and item.deliveries > limit:
                    self.inflight.results.put((item, poisoned_failure(item, self._clock)))
                    self.wakeups.wake()
                else:
                    if item.deliveries > 1 or suspects.careful:  # (else claimed() changes
                        suspects.claimed(item)  # nothing: a first delivery, not careful)
                    self._submit_activity(item)
        if len(items) == free:
            self.wakeups.activity_claim_due = True
        return True
