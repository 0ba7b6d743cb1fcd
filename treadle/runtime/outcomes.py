"""Acting on what a commit did, and letting go of what a failed round or a lost lease took.

Once the store committed a turn (or refused it), its execution is kept in the cache, still
held or let go (or evicted: the run ended, or the turn was refused, whose activity results
then go through the instance's inbox); the activities the commit leased here are tracked and
run; a remote turn's outcome goes to the remote executor. After a round failed (the store
went away), the cached states that took in its events are dropped and its activity results
kept for the next round. At the end of a round, the leases held here are renewed when due,
and what was lost meanwhile is let go.

Threads: the one that holds the engine lock. :class:`Outcomes` owns no state: it touches the
cache, the in-flight activities, the wake-ups, the remote executor and the activity executor
(cancelling runs that ended), and writes to the store only to deliver activity results and
renew leases.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from treadle.errors import StoreError
from treadle.runtime.activities import ActivityExecutor
from treadle.runtime.cache import CachedExecution, InstanceCache
from treadle.runtime.detours import Detours
from treadle.runtime.inflight import InflightActivities
from treadle.runtime.options import RuntimeOptions
from treadle.runtime.pending import PendingTurn
from treadle.runtime.registry import Registry
from treadle.runtime.wakeups import Wakeups
from treadle.store.base import ActivityResult, ActivityWorkItem, Store

if TYPE_CHECKING:
    from treadle.runtime.remote import RemoteExecutor

__all__ = ["Outcomes"]

logger = logging.getLogger(__name__)


class Outcomes:
    """Acts on the outcomes of commits and rounds (see the module).

    Args:
        submit: runs an activity the commit leased here (the engine's: the activity thread
            committing inline may run it next itself).
    """

    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        options: RuntimeOptions,
        cache: InstanceCache,
        inflight: InflightActivities,
        wakeups: Wakeups,
        remote: RemoteExecutor | None,
        detours: Detours,
        executor: ActivityExecutor,
        submit: Callable[[ActivityWorkItem], None],
    ) -> None:
        self._store = store
        self._registry = registry
        self._options = options
        self._cache = cache
        self._inflight = inflight
        self._wakeups = wakeups
        self._remote = remote
        self._detours = detours
        self._executor = executor
        self._submit = submit

    def forget_round(self, pending: dict[str, PendingTurn], slow: list[ActivityResult]) -> None:
        """After a round failed (the store went away): drop the cached workflow states that
        took in its events, which may not be committed, and keep its activity results for
        the next round."""
        for iid, entry in pending.items():
            self._cache.evict(iid)
            for item, event in entry.completions:
                self._inflight.results.put((item, event))
        for result in slow:
            self._inflight.results.put((result.task, result.event))

    def after_commit(
        self,
        entry: PendingTurn,
        ok: bool,
        version: int,
        activity_ids: list[int],
        sent_at: float,
    ) -> None:
        """Act on a committed (or refused) turn; ``sent_at``: the clock's monotonic time its
        commit was sent (the start of the leases it granted)."""
        iid = entry.instance_id
        cached = entry.cached
        commit = entry.commit
        assert commit is not None
        if not ok and commit.create is not None:
            return  # a start refused (its id is in use): what is cached under the id stays
        if not ok:
            logger.debug("turn of %s refused (lease lost or stale); dropping its cache", iid)
            self._cache.evict(iid)
            if self._remote is not None:
                self._detours.deliver(self._remote.release(iid))
            if entry.completions:
                # Deliver its activity results through the inbox instead, where they are
                # dropped if already delivered; else they would be lost, run again later.
                with contextlib.suppress(StoreError):
                    self._store.complete_activities(
                        self._options.owner, [ActivityResult(i, e) for i, e in entry.completions]
                    )
            return
        if commit.status.is_terminal or commit.reset_history:
            self._executor.cancel(iid)  # the run is over: its activities' results are moot
        if commit.status.is_terminal and self._frees_slot(cached):
            self._wakeups.wake_claims()  # its queue's slot is free: admit the next one now
        elif entry.timed_out:
            self._executor.cancel(iid, entry.timed_out)
        if entry.remote is not None and self._remote is not None and entry.output is not None:
            if self._remote.committed(entry.remote, version, commit.keep_lease):
                self._wakeups.wake_claims()  # messages may wait in its inbox: claim it
            if not commit.keep_lease or entry.output.is_final or commit.reset_history:
                self._detours.deliver(self._remote.release(iid))
            elif self._remote.ready():
                self._wakeups.wake()  # results came while the turn was out: the next turn
        elif cached is None or entry.output is None:
            self._cache.evict(iid)
            return
        elif entry.output.is_final or commit.reset_history:
            self._cache.evict(iid)
        else:
            cached.execution.confirm_actions()
            cached.version = version
            cached.history_len = entry.history_len_after
            cached.held = commit.keep_lease
            self._cache.keep(iid, cached)
            if entry.left_in_queue and commit.keep_lease:
                self._inflight.wait_for_claims(iid, entry.left_in_queue)
        if not commit.keep_lease and self._wakeups.claim_due:
            self._wakeups.wake()  # a claim may have waited for room
        if not activity_ids:
            return
        leased = []
        for activity in entry.output.activities:  # (a plain loop: this is every step)
            if activity.leased:
                leased.append(activity)
        for row_id, activity in zip(activity_ids, leased, strict=False):
            item = ActivityWorkItem(
                id=row_id,
                instance_id=activity.instance_id,
                execution_id=activity.execution_id,
                task_id=activity.task_id,
                name=activity.name,
                input=activity.input,
                task_execution_id=activity.task_execution_id,
                propagated=activity.propagated,
            )
            self._inflight.track(item, sent_at, own=activity.own)
            self._submit(item)

    def _frees_slot(self, cached: CachedExecution | None) -> bool:
        """Whether an instance that ended held a workflow queue's slot (an instance of a
        queued workflow; one whose name is not known here is taken to)."""
        queued = self._registry.queued_workflows
        return bool(queued) and (cached is None or cached.name in queued)

    def renew_if_due(self) -> None:
        """Renew the leases held here if due; let go of what was lost meanwhile."""
        lost = self._inflight.renew_if_due(self._store, self._options.owner, self._held_instances)
        gone, self._inflight.lost_activities = self._inflight.lost_activities, []
        for item in gone:  # (ended by another process, or taken over): tell it to stop
            self._executor.cancel(item.instance_id, item=item)
        for iid in lost:
            logger.warning("lost the lease of %s; another worker took it over", iid)
            self._cache.evict(iid)
            if self._remote is not None:
                self._detours.deliver(self._remote.release(iid))

    def _held_instances(self) -> list[str]:
        """The instances whose lease this runtime keeps: held, or out to a remote worker."""
        held = self._cache.held_ids()
        if self._remote is not None:
            held.extend(self._remote.pending_ids())
            held.extend(self._remote.held_ids())
        return held
