"""Preparing turns: what each instance of a round will commit, before the group commit.

A claimed instance's turn resumes its cached generator with the new events, or replays its
history first after a cache miss; an activity result for an instance held here is folded
into the instance's next turn without a claim. An instance that cannot take a turn here is
failed (a workflow not registered, a turn that raised), set aside (its start not visible
yet, a workflow other workers have), stalled (no code here for the version or patches its
history records: see :mod:`treadle.core.versioning`), or sent to a remote worker; all but
the failure and the sending are :mod:`treadle.runtime.detours`, as are remote answers.

Threads: the one that holds the engine lock (the dispatcher in a round, an activity thread
committing a result inline, a client thread whose start carries the engine's turns along).
:class:`TurnPreparer` owns no state: it reads the store (histories) and may release an
instance's lease, and touches the cache (loads, evicts), the in-flight activities (leases
the turns plan), the wake-ups (claims due, instances set aside) and the remote executor
(turns it sends), and hands the turns that do not run the workflow here to its
:class:`~treadle.runtime.detours.Detours`. A client thread also prepares a start's first
turn without the engine lock (:meth:`TurnPreparer.prepare_turn` with ``alone=True``): that
touches only the new instance's own execution, reads the in-flight counts as a bound, and
may set a claim flag.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from treadle.clock import Clock, utcnow
from treadle.core.actions import ScheduleTask
from treadle.core.history import (
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorStarted,
)
from treadle.core.replay import WorkflowExecution, failure_from_exception
from treadle.core.versioning import settle_turn
from treadle.errors import StoreError
from treadle.runtime.cache import CachedExecution, InstanceCache
from treadle.runtime.codeless_turns import failed_turn, terminal_commit
from treadle.runtime.detours import Detours
from treadle.runtime.inflight import InflightActivities
from treadle.runtime.options import RunState, RuntimeOptions
from treadle.runtime.pending import (
    STALL_RETRY_S,
    START_TURN_LIMIT_S,
    PendingTurn,
    TurnInterrupted,
)
from treadle.runtime.registry import Registry
from treadle.runtime.turns import PropagationInput, TurnInput, build_turn, needs_past
from treadle.runtime.wakeups import Wakeups
from treadle.runtime.watchdog import TurnWatchdog
from treadle.store.base import (
    ActivityResult,
    InboxMessage,
    InstanceRecord,
    OrchestrationWorkItem,
    Store,
)

if TYPE_CHECKING:
    from treadle.runtime.remote import RemoteExecutor

__all__ = ["STALL_RETRY_S", "START_TURN_LIMIT_S", "PendingTurn", "TurnInterrupted", "TurnPreparer"]

logger = logging.getLogger(__name__)


class TurnPreparer:
    """Prepares the turns of a round (see the module)."""

    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        options: RuntimeOptions,
        run: RunState,
        clock: Clock,
        cache: InstanceCache,
        inflight: InflightActivities,
        wakeups: Wakeups,
        remote: RemoteExecutor | None,
        watchdog: TurnWatchdog,
        detours: Detours,
    ) -> None:
        self._watchdog = watchdog
        self._detours = detours
        self._store = store
        self._registry = registry
        self._options = options
        self._run = run
        self._clock = clock
        self._cache = cache
        self._inflight = inflight
        self._wakeups = wakeups
        self._remote = remote

    def prepare_or_fail(
        self,
        entry: PendingTurn,
        prepare: Callable[[], None],
        fence: tuple[int, int, str],
        consumed_messages: list[int],
    ) -> None:
        """Prepare one instance's turn; if that raises (anything but the store's errors,
        which the round retries), fail that instance alone: the others of the round go on,
        where the whole round would fail again and again. ``fence``: the version, history
        length and execution id the instance is known at.

        On the dispatcher's and the activities' threads even a KeyboardInterrupt or
        GeneratorExit here was raised by code, not by Ctrl-C. On the main thread (a start
        there carrying the engine's turns along) a KeyboardInterrupt may be Ctrl-C: it
        raises :class:`TurnInterrupted` and fails nothing.
        """
        try:
            prepare()
        except StoreError:
            raise
        except BaseException as exc:
            self._watchdog.forget()
            if (
                isinstance(exc, KeyboardInterrupt)
                and threading.current_thread() is threading.main_thread()
            ):
                raise TurnInterrupted from exc
            iid = entry.instance_id
            logger.exception("could not run a turn of workflow instance %s; failing it", iid)
            cached = entry.cached or self._cache.get(iid)
            parent = cached.execution.parent if cached is not None else None
            self._cache.evict(iid)
            details = failure_from_exception(exc)
            details = dataclasses.replace(
                details, message=f"treadle could not run a turn of this workflow: {details.message}"
            )
            entry.output = None  # (after the commit: nothing left to run)
            entry.commit = failed_turn(
                iid,
                fence[0],
                fence[1],
                fence[2],
                details,
                consumed_messages,
                now=utcnow(self._clock),
                consumed_activities=[item.id for item, _ in entry.completions],
                cancel_activities=True,
                parent=parent,
            )

    def prepare_claimed(self, entry: PendingTurn, item: OrchestrationWorkItem) -> None:
        """Prepare the turn of an instance the round claimed, with its new messages."""
        record = item.instance
        iid = record.instance_id
        cached = self._cache.resumable(iid, self._registry.workflow_generation)
        if (
            cached is not None
            and cached.execution_id == record.execution_id
            and cached.version > record.version
        ):
            # A step of this instance was committed inline after the claim read it: the
            # record is stale, the cache is not. Its messages wait in the inbox; claim again.
            # (Results of its activities in this round are committed with the round.)
            self._wakeups.claim_due = True
            return
        if cached is not None and (
            cached.version != record.version or cached.execution_id != record.execution_id
        ):
            self._cache.evict(iid)
            cached = None
        if cached is None and entry.completions:
            # the instance changed under us: deliver these results through its inbox
            self._store.complete_activities(
                self._options.owner, [ActivityResult(i, e) for i, e in entry.completions]
            )
            entry.completions.clear()
        turn = TurnInput(
            iid,
            record.name,
            record.execution_id,
            record.version,
            record.history_len,
            app_id=self._options.app_id,
        )
        messages = item.messages
        consumed = [m.id for m in messages]
        if record.status.is_terminal:
            entry.commit = terminal_commit(
                turn,
                status=record.status,
                output=record.output,
                failure=record.failure,
                custom_status=record.custom_status,
                consumed_messages=consumed,
            )
            return
        events = _run_events(messages, record.execution_id, first_turn=record.history_len == 0)
        has_start = record.history_len > 0 or any(isinstance(e, ExecutionStarted) for e in events)
        if not has_start:
            self._detours.prepare_unstarted(entry, turn, record, events, consumed)
            return
        if cached is None and record.name not in self._registry.workflows:
            terminate = next((e for e in events if isinstance(e, ExecutionTerminated)), None)
            if terminate is not None:
                self._detours.terminate_here(entry, turn, record, events, consumed, terminate)
                return
        if cached is None:
            if self._remote is not None and record.name not in self._registry.workflows:
                if self._remote.is_ahead(record):
                    # A turn of it was committed or sent after the claim read it (answers
                    # are committed on the server's threads): the record is stale. Its
                    # messages wait in the inbox; claim again.
                    self._wakeups.claim_due = True
                    return
                controls = self._remote.controls_turn(record, turn, messages)
                if controls is not None:  # the other messages wait: claim again for them
                    entry.output, entry.commit = controls, controls.commit
                    self._wakeups.claim_due = True
                    self._detours.deliver(
                        self._remote.release(iid)
                    )  # (its next turn reads history)
                    return
                history = self._remote.history_for(record)
                if history is None:
                    self._detours.deliver(self._remote.release(iid))  # (held at another version)
                    from treadle.runtime.remote_history import RemoteHistory

                    past = self._store.get_history(iid) if record.history_len else []
                    history = RemoteHistory.of(record.execution_id, past)
                self._remote.send(record, turn, events, consumed, history)
                return
            cached = self._load(record)
            if cached is None:  # (claims take only the workflows registered here)
                self._detours.leave_for_others(record)
                return
        self.prepare_turn(
            entry, cached, turn, events, consumed, stored_custom_status=record.custom_status
        )

    def prepare_fast(self, entry: PendingTurn, cached: CachedExecution) -> None:
        """Prepare the turn of a held instance (its execution ``cached``) from its activity
        results alone."""
        turn = TurnInput(
            entry.instance_id,
            cached.name,
            cached.execution_id,
            cached.version,
            cached.history_len,
            app_id=self._options.app_id,
        )
        self.prepare_turn(entry, cached, turn, [], [])

    def prepare_turn(
        self,
        entry: PendingTurn,
        cached: CachedExecution,
        turn: TurnInput,
        events: list[HistoryEvent],
        consumed: list[int],
        *,
        stored_custom_status: str | None = None,
        alone: bool = False,
    ) -> None:
        """Run the workflow on the turn's new events (``events``, then the activity results
        of ``entry``) and build what the turn commits. ``stored_custom_status``: the
        instance's custom status as stored, if known (kept if the turn stalls). ``alone``: a
        start's first turn, prepared on a client's thread without the engine lock (see the
        module); if it would stall, nothing is prepared (``entry.commit`` stays None)."""
        execution = cached.execution
        now = utcnow(self._clock)
        custom_status_before = stored_custom_status or execution.custom_status
        new_events: list[HistoryEvent] = [OrchestratorStarted(timestamp=now), *events]
        for _, result in entry.completions:
            new_events.append(result)
        # (a copy, as the turn may add to the set; the shared empty one is not copied)
        timed_out_before = frozenset(execution.timed_out_tasks)
        watched = self._watchdog.begin(turn.instance_id, START_TURN_LIMIT_S if alone else None)
        try:
            execution.process(new_events, replaying=False)
        finally:
            self._watchdog.end(watched)
        if execution.timed_out_tasks:
            new_events = execution.without_late_results(new_events)
            entry.timed_out = sorted(execution.timed_out_tasks - timed_out_before)
        actions = execution.take_actions()
        if execution.versioned:  # (else settle_turn would return the turn as it is)
            settled = settle_turn(
                new_events,
                actions,
                recorded=execution.patches.recorded,
                recorded_name=execution.recorded_version_name,
                reported=execution.reported_version(),
            )
            if settled.stall is not None:
                if not alone:  # (a start that would stall goes through the store instead)
                    self._detours.stall(entry, turn, settled.stall, custom_status_before)
                return
            new_events, actions = settled.new_events, settled.actions
        # One pass over the actions: the activities this runtime may lease (of its app,
        # registered here, with no heartbeat timeout or timeout: those are claimed, which
        # starts their clocks), whether any is claimed instead, and whether the turn may
        # propagate history (then needs_past says).
        scheduled = 0
        claim_due = False
        plain = True
        for a in actions:
            if isinstance(a, ScheduleTask):
                if a.propagation_scope:
                    plain = False
                if a.heartbeat_timeout is not None or a.timeout is not None:
                    claim_due = True
                elif self._detours.runs_here(a.name, a.app_id):
                    scheduled += 1
            else:
                plain = False
        propagation = None
        if not plain and needs_past(actions, execution.propagated):
            # (only the turns that hand history on read the run's stored events)
            past = self._store.get_history(turn.instance_id) if turn.history_len else []
            propagation = PropagationInput(past, execution.propagated, self._options.history_app_id)
        turn.parent = execution.parent
        turn.created_children = execution.child_instance_ids
        # (activities of another app, or not registered here, go to the queue for others)
        # (own: a chain's one next step, kept in the instance's row, not queued: see
        # OWN_TASK_RULES)
        lease_n, still_running, own = self._inflight.plan_turn(
            turn.instance_id, scheduled, draining=self._run.draining, counted=not alone
        )
        output = build_turn(
            turn,
            new_events=new_events,
            actions=actions,
            status=execution.status(),
            custom_status=execution.custom_status,
            now=now,
            consumed_messages=consumed,
            consumed_activities=[item.id for item, _ in entry.completions],
            lease_activities=lease_n,
            keep_lease=lease_n > 0 or still_running,
            own_activity=own,
            runs_here=self._detours.runs_here,
            propagation=propagation,
        )
        entry.output = output
        entry.commit = output.commit
        entry.cached = cached
        entry.left_in_queue = scheduled - lease_n if not self._run.draining else 0
        entry.history_len_after = turn.history_len + len(output.commit.new_events)
        if claim_due or scheduled > lease_n:
            self._wakeups.activity_claim_due = True

    def _load(self, record: InstanceRecord) -> CachedExecution | None:
        """The instance's execution rebuilt by replaying its history (a cache miss); None
        if its workflow is not registered here."""
        generation = self._registry.workflow_generation  # (read before the code)
        fn = self._registry.workflows.get(record.name)
        if fn is None:
            return None
        execution = WorkflowExecution(fn, instance_id=record.instance_id)
        history: list[HistoryEvent] = []
        if record.history_len:
            history = self._store.get_history(record.instance_id)
            watched = self._watchdog.begin(record.instance_id)
            try:
                execution.process(history, replaying=True)
            finally:
                self._watchdog.end(watched)
        return CachedExecution(
            execution=execution,
            name=record.name,
            execution_id=record.execution_id,
            version=record.version,
            history_len=len(history),
            registry_generation=generation,
        )


def _for_run(message: InboxMessage, execution_id: str) -> bool:
    return message.execution_id is None or message.execution_id == execution_id


def _run_events(
    messages: list[InboxMessage], execution_id: str, *, first_turn: bool
) -> list[HistoryEvent]:
    """The events of the messages meant for the run, in the order the run must see them.

    A run's first turn takes the messages addressed to that run first: its start, then the
    events the run before it carried over (``continue_as_new(save_events=True)``), which
    were raised before anything still waiting in the inbox for whichever run is current,
    though the commit that continued the run queued them after it.
    """
    if not first_turn:
        return [m.event for m in messages if _for_run(m, execution_id)]
    own = [m.event for m in messages if m.execution_id == execution_id]
    return own + [m.event for m in messages if m.execution_id is None]
