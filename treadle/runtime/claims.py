"""Claims: the store calls that lease work and keep leases, made without the engine lock.

The dispatcher claims instances with new messages (:meth:`Claims.orchestrations`, before it
takes the engine lock for its round) and activity tasks (:meth:`Claims.activities`, after the
round; the engine then tracks and runs them under its lock), through the store's queues
within their limits too; an activity thread renews its task's lease at a heartbeat
(:meth:`Claims.heartbeat`). These are round trips to the store: out of the engine lock, an
activity thread committing a step inline need not wait for them.

Threads: the dispatcher's (claims), an activity's (its heartbeat), the presence thread's
(:meth:`Claims.advertisement`). :class:`Claims` owns no state: it reads the registry and the
cache's held count, clears and sets the wake-ups' claim flags, asks the in-flight activities
and the suspect claims how much room there is, and records a heartbeat's renewal in the
in-flight activities.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

from treadle.clock import Clock
from treadle.errors import StoreError
from treadle.runtime.cache import InstanceCache
from treadle.runtime.inflight import InflightActivities
from treadle.runtime.observe import Observer
from treadle.runtime.options import RunState, RuntimeOptions
from treadle.runtime.poison import SuspectClaims
from treadle.runtime.registry import Registry
from treadle.runtime.wakeups import Wakeups
from treadle.store.apps import WorkerInfo, WorkKind
from treadle.store.base import ActivityWorkItem, OrchestrationWorkItem, Store
from treadle.store.queues import QueueStore

if TYPE_CHECKING:
    from treadle.runtime.remote import RemoteExecutor

__all__ = ["ActivityClaim", "Claims"]

logger = logging.getLogger(__name__)


class ActivityClaim(NamedTuple):
    """Activity tasks just leased, for the engine to track and run."""

    items: list[ActivityWorkItem]
    """The tasks (none: the claim found nothing)."""
    sent_at: float
    """The clock's monotonic time the claim was sent (the start of their leases)."""
    free: int
    """How many were asked for: as many came back, more may wait."""


class Claims:
    """Leases work for the engine and renews leases (see the module)."""

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
        observer: Observer,
        suspects: SuspectClaims,
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
        self._observer = observer
        self._suspects = suspects

    def orchestrations(self) -> list[OrchestrationWorkItem]:
        """Lease instances with work, if due and there is room."""
        now_mono = self._clock.monotonic()
        self._wakeups.periodic_claims(now_mono)
        if not self._wakeups.claim_due or self._run.draining:
            return []
        options = self._options
        limit = max(0, options.max_concurrent_workflows - self._cache.held_count)
        if not limit:
            return []  # still due: the engine wakes the dispatcher when an instance is let go
        self._wakeups.claim_due = False
        try:
            return self._claim_orchestrations(now_mono, limit)
        except BaseException:
            # (still due: the dispatcher's retry after its pause claims again, rather than
            # the next periodic claim a second on)
            self._wakeups.claim_due = True
            raise

    def _claim_orchestrations(self, now_mono: float, limit: int) -> list[OrchestrationWorkItem]:
        """The claim of :meth:`orchestrations`, once it is due and there is room."""
        options = self._options
        exclude = self._wakeups.set_aside_ids(now_mono)  # instances set aside for a while
        if self._remote is not None:
            exclude.extend(self._remote.pass_over())
        names = self.names(WorkKind.WORKFLOW)
        queued = self._registry.queued_workflows
        if queued and names is not None:
            names = [n for n in names if n not in queued]
        claimed = self._store.claim_orchestrations(
            options.owner,
            limit,
            options.lease_s,
            exclude,
            app_id=options.app_id,
            names=names,
        )
        if queued and len(claimed) < limit:
            claimed += self._claim_admitted(limit - len(claimed), exclude, claimed)
        if len(claimed) == limit:
            self._wakeups.claim_due = True
        for item in claimed:
            if item.taken_from is not None:
                self._observer.taken_over(item)
        return claimed

    def _claim_admitted(
        self, limit: int, exclude: list[str], claimed: list[OrchestrationWorkItem]
    ) -> list[OrchestrationWorkItem]:
        """Admit the waiting instances of the queues of the workflows registered here within
        their limits, then claim those of their instances that started or were admitted
        (dispatcher thread); look again when a limit held some back."""
        store = self._store
        if not isinstance(store, QueueStore):
            return []
        options = self._options
        for queued in self._registry.workflow_queues():
            retry = store.admit_queued(queued, app_id=options.app_id)
            if retry is not None:
                self._wakeups.claim_instances_after(retry)
        return store.claim_admitted(
            options.owner,
            limit,
            options.lease_s,
            [*exclude, *(c.instance.instance_id for c in claimed)],
            app_id=options.app_id,
            names=sorted(self._registry.queued_workflows),
        )

    def activities(self) -> ActivityClaim | None:
        """Lease activity tasks, if due and there is room: those of activities on no queue,
        then each queue's within its limits. None: no claim was made."""
        if not self._wakeups.activity_claim_due or self._run.draining:
            return None
        free = self._suspects.room(self._inflight.free(), self._inflight.holds)
        if free <= 0:
            return None  # still due: the engine wakes the dispatcher when one finishes
        self._wakeups.activity_claim_due = False
        try:
            return self._claim_activities(free)
        except BaseException:
            self._wakeups.activity_claim_due = True  # (as for :meth:`orchestrations`)
            raise

    def _claim_activities(self, free: int) -> ActivityClaim:
        """The claim of :meth:`activities`, once it is due and there is room."""
        sent_at = self._clock.monotonic()
        names = self.names(WorkKind.ACTIVITY)
        queued = self._registry.queued
        if queued and names is not None:
            names = [n for n in names if n not in queued]
        items = self._store.claim_activities(
            self._options.owner,
            free,
            self._options.lease_s,
            app_id=self._options.app_id,
            names=names,
            # (a sidecar takes any name: its queued ones go through their queues' claims)
            except_names=sorted(queued) if queued and names is None else (),
        )
        if queued and len(items) < free:
            items += self._claim_queued(free - len(items))
        if not items:
            return ActivityClaim(items, sent_at, free)
        remote_beats = [
            i.id
            for i in items
            if i.heartbeat_s is not None and i.name not in self._registry.activities
        ]
        if remote_beats:  # (an SDK worker does not heartbeat: such a task keeps a full lease)
            self._store.renew_leases(self._options.owner, [], remote_beats, self._options.lease_s)
        return ActivityClaim(items, sent_at, free)

    def _claim_queued(self, free: int) -> list[ActivityWorkItem]:
        """Lease tasks of the queues of the activities registered here, within their limits;
        look again when a limit held some back (dispatcher thread)."""
        store = self._store
        if not isinstance(store, QueueStore):
            return []
        items: list[ActivityWorkItem] = []
        for queued in self._registry.queues():
            if free - len(items) <= 0:
                break
            claim = store.claim_queued(
                self._options.owner,
                queued,
                free - len(items),
                self._options.lease_s,
                app_id=self._options.app_id,
            )
            items += claim.items
            if claim.retry_after_s is not None:
                self._wakeups.claim_activities_after(claim.retry_after_s)
        return items

    def names(self, kind: WorkKind) -> list[str] | None:
        """The names of ``kind`` this runtime takes: those registered here (read at each
        claim: a name registered later is taken from then on), or any (None) when work it
        has no function for goes to remote workers."""
        if self._remote is not None:
            return None
        table = self._registry.workflows if kind is WorkKind.WORKFLOW else self._registry.activities
        return sorted(table)

    def advertisement(self) -> WorkerInfo:
        """What this runtime takes, as it advertises it in the store."""
        workflows = self.names(WorkKind.WORKFLOW)
        activities = self.names(WorkKind.ACTIVITY)
        return WorkerInfo(
            owner=self._options.owner,
            app_id=self._options.app_id,
            workflows=None if workflows is None else tuple(workflows),
            activities=None if activities is None else tuple(activities),
        )

    def heartbeat(self, item: ActivityWorkItem, details: str | None) -> bool:
        """A running activity's heartbeat (on its thread): keep its details and extend its
        lease; False if it is no longer held here (it should stop: see
        :meth:`Store.heartbeat_activity`)."""
        lease_s = self._inflight.heartbeat_lease_s(item)
        if lease_s is None:  # no longer tracked (its lease lapsed, or it was taken over)
            return item.heartbeat_s is None
        sent_at = self._clock.monotonic()
        try:
            held = self._store.heartbeat_activity(self._options.owner, item.id, details, lease_s)
        except StoreError as exc:  # (an outage: the lease may run out; the activity goes on)
            logger.warning("could not record a heartbeat of activity %r: %s", item.name, exc)
            return True
        if held:
            self._inflight.heartbeat_renewed(item, sent_at)
        return held
