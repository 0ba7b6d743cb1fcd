"""Turns that do not run the workflow here: answers of remote workers, stalls, instances
set aside or left to others, terminations without the workflow's code.

:class:`~treadle.runtime.prepare.TurnPreparer` hands them here: a remote worker's answer
taken into the round as a prepared turn (or its turn given up, stalled); an instance
stalled for want of code for its version or patches (see :mod:`treadle.core.versioning`);
one whose start is not visible yet; one of a workflow this runtime does not have, whose
termination is committed without its code, or which is left to other workers. It also
says which activities run here, and records activity results through the inbox when they
cannot be folded into a turn.

Threads: the one that holds the engine lock. :class:`Detours` owns no state: it reads the
store (histories), releases leases and delivers activity results to it, and touches the
cache (evicts), the in-flight activities (plans a remote turn's leases), the wake-ups
(claims due, instances set aside) and the remote executor (answers it takes, releases).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from treadle.clock import Clock, utcnow
from treadle.core.actions import CompleteOrchestration
from treadle.core.history import (
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    run_timeout_failure,
)
from treadle.core.versioning import Stall
from treadle.errors import StoreError
from treadle.runtime.cache import InstanceCache
from treadle.runtime.codeless_turns import children_created, is_recorded_stall, stall_commit
from treadle.runtime.inflight import InflightActivities
from treadle.runtime.options import RunState, RuntimeOptions
from treadle.runtime.pending import STALL_RETRY_S, PendingTurn
from treadle.runtime.registry import Registry
from treadle.runtime.turns import TurnInput, build_turn
from treadle.runtime.wakeups import Wakeups
from treadle.store.base import ActivityResult, InstanceRecord, Store, TurnCommit

if TYPE_CHECKING:
    from treadle.runtime.remote import Completion, RemoteExecutor

__all__ = ["Detours"]

logger = logging.getLogger(__name__)


class Detours:
    """Prepares the turns that do not run the workflow here (see the module)."""

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
    ) -> None:
        self._store = store
        self._registry = registry
        self._options = options
        self._run = run
        self._clock = clock
        self._cache = cache
        self._inflight = inflight
        self._wakeups = wakeups
        self._remote = remote

    def runs_here(self, name: str, app_id: str | None) -> bool:
        """Whether this runtime runs the activity ``name`` of ``app_id`` (None: the caller's,
        which is this runtime's): of its app, and registered here, or any activity for a
        sidecar's remote workers."""
        app = self._options.app_id if app_id is None else app_id
        # (an activity on a queue is claimed within the queue's limits, never leased here)
        return (
            app == self._options.app_id
            and (self._remote is not None or name in self._registry.activities)
            and name not in self._registry.queued
        )

    def take_remote_answers(self, pending: dict[str, PendingTurn]) -> bool:
        """Take the remote workers' answers into the round, each a prepared turn, and set
        aside the instances whose turn they gave up or stalled; whether there were any."""
        if self._remote is None:
            return False
        took = False
        for iid, not_before, completions in self._remote.take_abandoned():
            took = True
            self._wakeups.set_aside(iid, not_before)
            self.deliver(completions)
            with contextlib.suppress(StoreError):
                self._store.release_leases(self._options.owner, [iid])
            self._wakeups.claim_due = True
        for answer in self._remote.take_results(self._plan_remote, self.runs_here):
            took = True
            iid, output = answer.instance_id, answer.output
            if answer.stalled:
                retry_at = self._clock.monotonic() + STALL_RETRY_S
                self._wakeups.set_aside(iid, retry_at, stalled=True)
                # (a stalled turn consumes no results: they wait in the inbox)
                self.deliver(answer.completions + self._remote.release(iid))
            if output is None:  # a stall already recorded: only let the instance go
                with contextlib.suppress(StoreError):
                    self._store.release_leases(self._options.owner, [iid])
                continue
            entry = pending.setdefault(iid, PendingTurn(iid))
            entry.output = output
            entry.commit = output.commit
            entry.remote = answer
            if not answer.stalled:
                entry.completions.extend(answer.completions)
            if len(output.activities) > sum(1 for a in output.activities if a.leased):
                self._wakeups.activity_claim_due = True
        return took

    def _plan_remote(self, instance_id: str, scheduled: int) -> tuple[int, bool, bool]:
        """How many of a remote turn's activities this runtime leases (see
        :data:`~treadle.runtime.remote.Plan`)."""
        still_running = self._inflight.has_running(instance_id)
        assert self._remote is not None
        if not self._remote.workers.has_workers():
            return 0, False, still_running  # (queued: another sidecar's workers may take it)
        lease_n = self._inflight.plan(scheduled, draining=self._run.draining)
        own = not self._inflight.own_task_out(instance_id)
        return lease_n, own, still_running

    def deliver(self, completions: list[Completion]) -> None:
        """Record activity results through their instances' inboxes (best effort: a result
        not recorded is run again once its lease expires)."""
        if not completions:
            return
        try:
            self._store.complete_activities(
                self._options.owner, [ActivityResult(i, e) for i, e in completions]
            )
        except StoreError:
            logger.warning("could not record %d activity results", len(completions), exc_info=True)

    def stall(
        self, entry: PendingTurn, turn: TurnInput, stall: Stall, custom_status: str | None
    ) -> None:
        """Stall the instance instead of committing its turn (see
        :mod:`treadle.core.versioning`): its new messages, and the activity results folded
        into the turn, wait in its inbox; this runtime leaves it alone for a while, or until
        code it may need is registered here; another runtime may take it at once."""
        iid = turn.instance_id
        self._cache.evict(iid)
        entry.cached = entry.output = None
        if entry.completions:
            self._store.complete_activities(
                self._options.owner, [ActivityResult(i, e) for i, e in entry.completions]
            )
            entry.completions.clear()
        self._wakeups.set_aside(iid, self._clock.monotonic() + STALL_RETRY_S, stalled=True)
        history = self._store.get_history(iid) if turn.history_len else []
        if is_recorded_stall(history, stall):
            self._store.release_leases(self._options.owner, [iid])
            return
        logger.warning("workflow instance %s is stalled: %s", iid, stall.description)
        entry.commit = stall_commit(
            turn, stall, now=utcnow(self._clock), custom_status=custom_status
        )

    def prepare_unstarted(
        self,
        entry: PendingTurn,
        turn: TurnInput,
        record: InstanceRecord,
        events: list[HistoryEvent],
        consumed: list[int],
    ) -> None:
        """Prepare the turn of an instance whose start is not visible yet: terminate it if
        its messages ask to, else set it aside and let it go until its start is."""
        terminate = next((e for e in events if isinstance(e, ExecutionTerminated)), None)
        if terminate is None:
            # events for an instance whose start is not visible yet: wait for the start
            self._wakeups.set_aside(record.instance_id, self._clock.monotonic() + 1.0)
            self._store.release_leases(self._options.owner, [record.instance_id])
            return
        entry.commit = TurnCommit(
            instance_id=turn.instance_id,
            expected_version=turn.version,
            new_events=[],
            history_start=0,
            status=OrchestrationStatus.TERMINATED,
            execution_id=turn.execution_id,
            output=terminate.input,
            consumed_messages=consumed,
        )

    def terminate_here(
        self,
        entry: PendingTurn,
        turn: TurnInput,
        record: InstanceRecord,
        events: list[HistoryEvent],
        consumed: list[int],
        terminate: ExecutionTerminated,
    ) -> None:
        """End an instance whose workflow does not run here (an SDK worker's, or another
        runtime's) as its termination asks, without its code: ending it takes no decision of
        the workflow's, and its worker may be gone (daprd forces the termination likewise)."""
        past = self._store.get_history(turn.instance_id) if record.history_len else []
        turn.created_children = children_created(past)
        started = next((e for e in (*past, *events) if isinstance(e, ExecutionStarted)), None)
        entry.started = started
        turn.parent = started.parent if started is not None else None
        now = utcnow(self._clock)
        ending = CompleteOrchestration(
            id=-1, status=OrchestrationStatus.TERMINATED, result=terminate.input
        )
        if terminate.timed_out:  # (its timeout passed: FAILED, as a TimeoutError)
            assert started is not None  # (a run with a timeout has started)
            failure = run_timeout_failure(record.name, started.timeout_at)
            ending = CompleteOrchestration(
                id=-1, status=OrchestrationStatus.FAILED, failure=failure
            )
        entry.output = build_turn(
            turn,
            new_events=[OrchestratorStarted(timestamp=now), *events],
            actions=[ending],
            status=OrchestrationStatus.TERMINATED,
            custom_status=record.custom_status,
            now=now,
            consumed_messages=consumed,
        )
        entry.commit = entry.output.commit

    def leave_for_others(self, record: InstanceRecord) -> None:
        """Release an instance of a workflow this runtime does not have, for another one
        (only if the registry changed between the claim and the turn)."""
        if not self._wakeups.is_set_aside(record.instance_id):
            logger.info(
                "workflow %r of instance %s is not registered here; leaving it to other workers",
                record.name,
                record.instance_id,
            )
        self._wakeups.set_aside(record.instance_id, self._clock.monotonic() + 5.0)
        self._store.release_leases(self._options.owner, [record.instance_id])
