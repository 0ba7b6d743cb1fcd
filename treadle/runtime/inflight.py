"""In-flight activities: the activities this runtime leased and has not reported yet.

An activity is in flight from the commit (or claim) that leased it to this runtime until its
result is taken by the engine, or until its lease may have run out. No activity starts after
its lease surely held: a process paused past the lease (SIGSTOP, a VM freeze, a store outage)
must not run what another worker may have taken over meanwhile.

Threads:
- The engine, under the engine lock (the dispatcher in a round, an activity thread
  committing inline, a client thread taking on its start or committing the engine's turns
  with it): tracks, finishes, plans, renews and expires. Only it changes the state below.
- The dispatcher, without the lock: :meth:`InflightActivities.renewal_due` (one float read,
  a hint: see :mod:`treadle.runtime.starts`).
- A client thread preparing a start's first turn without the engine lock
  (:mod:`treadle.runtime.starts`): :meth:`InflightActivities.plan` with ``counted=False``,
  :meth:`InflightActivities.has_running` and :meth:`InflightActivities.own_task_out` for
  its new instance (reads of a length, a dict and a set, safe without the lock: bounds, not
  promises).
- Activity threads: :meth:`InflightActivities.still_leased` just before an activity starts
  (one dict read, safe without the lock), and ``results.put`` when one finished;
  :meth:`InflightActivities.heartbeat_lease_s` and :meth:`InflightActivities.heartbeat_renewed`
  when an activity heartbeats (a dict read, and one dict item set: atomic without the lock,
  and at worst a lease thought shorter than it is).
- The thread that calls ``shutdown``: ``len()``, to wait for running activities.

State: the items by activity row id (negative for an instance's own task), the time until
which each lease surely holds, the count of activities out per instance, the instances whose
own task is out, the activities leased by the turns of the current round, how many
activities each instance's turns left in the queue for this runtime's claims (and when that
was recorded), the time of the next lease renewal, and the queue of results waiting for the
engine.
"""

from __future__ import annotations

import logging
import queue
from collections import defaultdict
from collections.abc import Callable

from treadle.clock import Clock
from treadle.core.history import HistoryEvent
from treadle.store.base import ActivityWorkItem, Store

__all__ = ["InflightActivities"]

logger = logging.getLogger(__name__)


class InflightActivities:
    """The activities leased to this runtime, their leases, and their results.

    Args:
        lease_s: how long a lease lasts without renewal.
        max_concurrent: activities that run at once in this process.
        clock: whose monotonic time the leases run out on.
    """

    def __init__(self, lease_s: float, max_concurrent: int, clock: Clock) -> None:
        self._clock = clock
        self._lease_s = lease_s
        self._max_concurrent = max_concurrent
        self._items: dict[int, ActivityWorkItem] = {}
        # Monotonic time until which each in-flight activity's lease surely holds (granted or
        # renewed by a request sent no earlier than lease_s before).
        self._leased_until: dict[int, float] = {}
        self._by_instance: defaultdict[str, int] = defaultdict(int)
        self._own_out: set[str] = set()  # instances whose own task is running here
        # Activities whose lease only their heartbeats renew: id -> the lease each one grants
        # (their heartbeat timeout, at most a lease).
        self._heartbeats: dict[int, float] = {}
        self._planned = 0
        # Activities of an instance that its committed turns left in the store's queue for
        # lack of room here, which this runtime's next claims are expected to take (see
        # wait_for_claims); forgotten when a claim comes back short.
        self._queued: dict[str, int] = {}
        self._queued_at: dict[str, float] = {}  # (monotonic time each was last recorded)
        self._next_renew = -float("inf")
        self.results: queue.SimpleQueue[tuple[ActivityWorkItem, HistoryEvent]] = queue.SimpleQueue()
        """Results of activities that finished, waiting for the dispatcher (any thread)."""
        self.lost_activities: list[ActivityWorkItem] = []
        """Activities whose lease a renewal found gone (taken over, or their run ended), for
        the engine to tell to stop (engine)."""

    def __len__(self) -> int:
        return len(self._items)

    def begin_round(self) -> None:
        """Start planning the leases of a new round's turns."""
        self._planned = 0

    def plan(self, scheduled: int, *, draining: bool, counted: bool = True) -> int:
        """How many of the ``scheduled`` activities of a turn this runtime leases and runs
        itself (none while draining): up to twice what runs at once, counting those the
        round's earlier turns took. ``counted=False``: a start's first turn, prepared
        without the engine lock, reads the counts as a bound and adds nothing to them."""
        if draining:
            return 0
        room = max(0, 2 * self._max_concurrent - len(self._items) - self._planned)
        leased = min(scheduled, room)
        if counted:
            self._planned += leased
        return leased

    def plan_turn(
        self, instance_id: str, scheduled: int, *, draining: bool, counted: bool = True
    ) -> tuple[int, bool, bool]:
        """What a turn of ``instance_id`` that schedules ``scheduled`` activities asks, in one
        call (every turn asks all three): :meth:`plan`'s count; whether the instance is to be
        kept for activities, out here (:meth:`has_running`) or waiting in the queue for this
        runtime's claims (left there by this turn for lack of room, or by an earlier one:
        see :meth:`wait_for_claims`); and whether its one activity may be the instance's own
        task (it schedules one, leases it, and the instance's own task is not out)."""
        if draining:
            leased = 0
        else:
            room = max(0, 2 * self._max_concurrent - len(self._items) - self._planned)
            leased = min(scheduled, room)
            if counted:
                self._planned += leased
        running = self._by_instance.get(instance_id, 0) > 0 or (
            not draining and (leased < scheduled or instance_id in self._queued)
        )
        own = scheduled == 1 and leased == 1 and instance_id not in self._own_out
        return leased, running, own

    def wait_for_claims(self, instance_id: str, count: int) -> None:
        """A committed turn of ``instance_id``, kept here, left ``count`` of its activities
        in the queue for lack of room: its next turns keep it until this runtime's claims
        have taken them (see :meth:`claimed`), so their results go into those turns, not
        through its inbox and a claim of it."""
        self._queued[instance_id] = self._queued.get(instance_id, 0) + count
        self._queued_at[instance_id] = self._clock.monotonic()

    @property
    def waits_for_claims(self) -> bool:
        """Whether an instance is kept for activities its turns left in the queue."""
        return bool(self._queued)

    def claimed(self, items: list[ActivityWorkItem], short: bool, sent_at: float) -> None:
        """Activity tasks were claimed from the queue by a request sent at monotonic
        ``sent_at``: those of the instances whose turns left them there are no longer waited
        for. ``short``: the claim took fewer than it asked for, so nothing more waits in the
        queue for this runtime (another worker took the rest, or a queue's limit holds them
        back) of what was left there before the request was sent; no instance is kept for
        those. (What a turn committed after it left there, the claim may not have seen.)"""
        queued = self._queued
        for item in items:
            left = queued.get(item.instance_id)
            if left is not None:
                if left > 1:
                    queued[item.instance_id] = left - 1
                else:
                    del queued[item.instance_id]
                    del self._queued_at[item.instance_id]
        if short and queued:
            recorded = self._queued_at
            for iid in [i for i, at in recorded.items() if at < sent_at]:
                del queued[iid], recorded[iid]

    def renewal_due(self, now: float) -> bool:
        """Whether the leases are due for renewal at monotonic ``now``."""
        return now >= self._next_renew

    def free(self) -> int:
        """How many more activities may run at once."""
        return self._max_concurrent - len(self._items)

    def holds(self, activity_id: int) -> bool:
        """Whether the activity task ``activity_id`` (its row id) is in flight here."""
        return activity_id in self._items

    def has_running(self, instance_id: str) -> bool:
        """Whether an activity of the instance is in flight."""
        return self._by_instance.get(instance_id, 0) > 0

    def own_task_out(self, instance_id: str) -> bool:
        """Whether the instance's own task (see ``OWN_TASK_RULES``) is in flight."""
        return instance_id in self._own_out

    def track(
        self,
        item: ActivityWorkItem,
        granted_at: float,
        *,
        own: bool = False,
        heartbeats: bool = False,
    ) -> None:
        """Count ``item`` in flight, leased by a request sent at monotonic ``granted_at``;
        ``heartbeats``: it runs here and has a heartbeat timeout, so only its heartbeats
        renew its lease (see :meth:`heartbeat_renewed`)."""
        if item.id in self._items:  # claimed again here once its heartbeats stopped
            self._uncount(self._items[item.id].instance_id)
        self._items[item.id] = item
        lease_s = self._lease_s
        if heartbeats and item.heartbeat_s is not None:
            lease_s = min(lease_s, item.heartbeat_s)
            self._heartbeats[item.id] = lease_s
        self._leased_until[item.id] = granted_at + lease_s
        self._by_instance[item.instance_id] += 1
        if own:
            self._own_out.add(item.instance_id)

    def heartbeat_lease_s(self, item: ActivityWorkItem) -> float | None:
        """How long a heartbeat of ``item`` extends its lease; None if its heartbeats renew
        nothing (it has no heartbeat timeout, or it is no longer tracked)."""
        return self._heartbeats.get(item.id)

    def heartbeat_renewed(self, item: ActivityWorkItem, sent_at: float) -> None:
        """A heartbeat sent at monotonic ``sent_at`` renewed ``item``'s lease."""
        lease_s = self._heartbeats.get(item.id)
        if lease_s is not None and item.id in self._leased_until:
            self._leased_until[item.id] = sent_at + lease_s

    def finish(self, item: ActivityWorkItem) -> bool:
        """Stop tracking ``item``, whose result came; whether it was still tracked."""
        self._leased_until.pop(item.id, None)
        self._heartbeats.pop(item.id, None)
        if item.id < 0:
            self._own_out.discard(item.instance_id)
        if self._items.pop(item.id, None) is None:
            return False
        self._uncount(item.instance_id)
        return True

    def still_leased(self, item: ActivityWorkItem) -> bool:
        """Whether this runtime surely still holds the activity's lease (any thread).

        False after a pause (SIGSTOP, a VM freeze, a store outage) longer than the lease:
        another worker may have run the activity and recorded its result meanwhile.
        """
        until = self._leased_until.get(item.id)
        if until is not None and self._clock.monotonic() < until:
            return True
        logger.warning(
            "not starting activity %r of %s: its lease ran out before it started (was this "
            "process paused?); another worker runs it",
            item.name,
            item.instance_id,
        )
        return False

    def forget_expired(self, now: float) -> None:
        """Stop tracking (and renewing) activities whose lease may have run out by ``now``."""
        for activity_id, until in list(self._leased_until.items()):
            if until > now:
                continue
            del self._leased_until[activity_id]
            self._heartbeats.pop(activity_id, None)
            item = self._items.pop(activity_id, None)
            if item is not None:
                if activity_id < 0:
                    self._own_out.discard(item.instance_id)
                self._uncount(item.instance_id)

    def renew_if_due(self, store: Store, owner: str, held: Callable[[], list[str]]) -> list[str]:
        """Renew the leases of the instances ``held`` gives and of the activities in flight,
        every third of a lease; return the instances whose lease was lost.

        An own task lives under its instance's lease: it is lost with it.
        """
        now = self._clock.monotonic()
        if now < self._next_renew:
            return []
        self._next_renew = now + self._lease_s / 3
        self.forget_expired(now)
        instances = held()
        renewed = [a for a in self._items if a not in self._heartbeats]
        if not instances and not renewed:
            return []
        lost = store.renew_leases(owner, instances, [], self._lease_s) if instances else []
        tasks = [a for a in renewed if a > 0]  # (own tasks live under their instance's lease)
        gone = set(store.renew_activity_leases(owner, tasks, self._lease_s))
        self.lost_activities.extend(self._items[a] for a in tasks if a in gone)
        for activity_id in renewed:  # all unexpired when the request was sent
            if activity_id in gone:
                self._leased_until[activity_id] = now  # not renewed: forgotten next time
                continue
            self._leased_until[activity_id] = now + self._lease_s
        for iid in lost:
            for activity_id, item in self._items.items():
                if activity_id < 0 and item.instance_id == iid:
                    self._leased_until[activity_id] = now
        return lost

    def clear(self) -> None:
        """Forget every activity (the runtime stopped)."""
        self._items.clear()
        self._leased_until.clear()
        self._heartbeats.clear()
        self._own_out.clear()
        self._by_instance.clear()
        self._queued.clear()
        self._queued_at.clear()

    def _uncount(self, instance_id: str) -> None:
        self._by_instance[instance_id] -= 1
        if self._by_instance[instance_id] <= 0:
            del self._by_instance[instance_id]
