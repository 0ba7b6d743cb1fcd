"""Wake-ups: when the dispatcher looks for work, and which instances it leaves alone a while.

The dispatcher sleeps on one event until there may be work: an activity finished here, a
remote worker answered, the store told of a commit (its own notification thread, or the
watcher thread below), a timer this runtime committed or the store knows of came due, or a
second passed. Two flags say what to claim when it wakes: instances with new messages
(:attr:`Wakeups.claim_due`) and activity tasks (:attr:`Wakeups.activity_claim_due`).

Threads:
- The dispatcher: :meth:`Wakeups.idle_timeout`, :meth:`Wakeups.periodic_claims`, and the
  instances set aside (:meth:`Wakeups.set_aside`, :meth:`Wakeups.set_aside_ids`), which
  only it touches (in a round, under the engine lock, or just before, without it).
- Whichever thread holds the engine lock: :meth:`Wakeups.note_timers` and the flags; a
  client thread preparing a start's first turn sets a flag without it.
- The dispatcher, before a round and without the lock: :meth:`Wakeups.claims_due` (reads,
  a hint: see :mod:`treadle.runtime.starts`).
- The store's notification thread, or the watcher thread: :meth:`Wakeups.on_store_work`;
  the watcher runs :meth:`Wakeups.watch`.
- Any thread: :meth:`Wakeups.wake`, :meth:`Wakeups.retry_stalled` (a flag the dispatcher
  reads when it next lists the instances set aside).

The flags are plain booleans set from several threads (a store of a bool is atomic); the
earliest timer has a lock of its own, as two threads may move it at once.

State: the wake event, the two claim flags, the next periodic claim, the earliest timer this
runtime committed, the store's next wake-up as last asked and when it was asked, and the
instances set aside until a time (among them those that stalled here, let back early when
code they may wait for arrives).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Sequence
from datetime import datetime, timezone

from treadle.clock import Clock, utcnow
from treadle.errors import StoreError
from treadle.store.base import Store, TurnCommit, WorkToken

__all__ = ["Wakeups"]

logger = logging.getLogger(__name__)

_WAKEUP_RECHECK_S = 0.05  # after a commit elsewhere, ask the store for timers no more often


class Wakeups:
    """When the dispatcher wakes up and what it claims then (see the module).

    Args:
        clock: whose time the timers and waits are on.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.event = threading.Event()
        """Set to wake the dispatcher; it clears it at the start of each round."""
        self.claim_due = True
        """Claim instances with new messages in the next round."""
        self.activity_claim_due = True
        """Claim activity tasks in the next round."""
        self._next_periodic = -math.inf
        self._stale = True  # the store's next wake-up may have changed since it was asked
        self._checked_at = -math.inf
        self._store_wakeup_at = 0.0
        self._timer_lock = threading.Lock()
        self._timer_at = math.inf  # monotonic time of the earliest timer this runtime set
        self._set_aside: dict[str, float] = {}
        self._stalled: set[str] = set()  # those set aside because they stalled here
        self._retry_stalled = False

    def wake(self) -> None:
        """Wake the dispatcher (any thread).

        An event already set is left as it is (setting it again takes its lock and notifies
        nobody): the dispatcher has not cleared it yet, so its next round, which clears it
        first, comes after whatever the caller did before waking it.
        """
        event = self.event
        if not event.is_set():
            event.set()

    def wake_claims(self) -> None:
        """Claim instances in the next round, now (a queue's slot was freed here)."""
        self.claim_due = True
        self.event.set()

    def on_store_work(self, orchestrations: bool, activities: bool) -> None:
        """The store says new work may be there (the watcher, or the store's own thread
        through ``on_work``): wake the dispatcher to claim it."""
        if orchestrations:
            self.claim_due = True
        if activities:
            self.activity_claim_due = True
        self._stale = True
        self.event.set()

    def claim_activities_after(self, seconds: float) -> None:
        """Claim activity tasks again in ``seconds`` (a queue's limits held some back:
        dispatcher)."""
        with self._timer_lock:
            self._timer_at = min(self._timer_at, self._clock.monotonic() + seconds)

    def claim_instances_after(self, seconds: float) -> None:
        """Claim instances again in ``seconds`` (a queue's limits held some back:
        dispatcher)."""
        with self._timer_lock:
            self._timer_at = min(self._timer_at, self._clock.monotonic() + seconds)

    def periodic_claims(self, now: float) -> None:
        """Claim both kinds of work once a second in any case (dispatcher)."""
        if now >= self._next_periodic:
            self._next_periodic = now + 1.0
            self.claim_due = self.activity_claim_due = True

    def claims_due(self, now: float) -> bool:
        """Whether the next round claims anything (either flag, or the periodic claims due
        at monotonic ``now``)."""
        return self.claim_due or self.activity_claim_due or now >= self._next_periodic

    def set_aside(self, instance_id: str, until: float, *, stalled: bool = False) -> None:
        """Claim no message of ``instance_id`` before monotonic time ``until`` (dispatcher);
        ``stalled``: until then, or until :meth:`retry_stalled`, whichever comes first."""
        self._set_aside[instance_id] = until
        if stalled:
            self._stalled.add(instance_id)

    def retry_stalled(self) -> None:
        """Let the instances set aside as stalled be claimed again at once (any thread): the
        code they wait for may be here now."""
        self._retry_stalled = True
        self.claim_due = True
        self.event.set()

    def is_set_aside(self, instance_id: str) -> bool:
        """Whether ``instance_id`` was set aside and not let back yet (dispatcher)."""
        return instance_id in self._set_aside

    def set_aside_ids(self, now: float) -> list[str]:
        """The instances still set aside at ``now``; forgets those whose time is up."""
        if self._retry_stalled:
            self._retry_stalled = False
            for iid in self._stalled:
                self._set_aside.pop(iid, None)
        self._set_aside = {i: t for i, t in self._set_aside.items() if t > now}
        self._stalled.intersection_update(self._set_aside)
        return list(self._set_aside)

    def note_timers(self, commits: Sequence[TurnCommit]) -> None:
        """Remember when the messages these turns schedule for later come due (the engine
        lock is held), so the dispatcher wakes for them without asking the store."""
        now: datetime | None = None
        for commit in commits:
            if commit.new_instances:
                self._stale = True  # a child may start later (scheduled start)
            for message in commit.new_messages:
                at = message.visible_at
                if at is None:
                    continue
                if at.tzinfo is None:
                    at = at.replace(tzinfo=timezone.utc)
                if now is None:
                    now = utcnow(self._clock)
                delay = max(0.0, (at - now).total_seconds()) + 0.001
                with self._timer_lock:
                    self._timer_at = min(self._timer_at, self._clock.monotonic() + delay)
                self.event.set()

    def idle_timeout(self, store: Store) -> float:
        """How long to sleep: until the next timer or lease expiry the store knows of.

        The store is asked again only after something changed (the store told of a commit,
        a timer came due, or a second passed), and after a commit the store told of no
        sooner than ``_WAKEUP_RECHECK_S`` after the last time: under load that is every
        step of every workflow, and what it is for (a timer another process set) can wait
        that long. Timers this runtime commits are noted at once (:meth:`note_timers`).
        """
        now = self._clock.monotonic()
        checked = self._checked_at
        if (self._stale and now >= checked + _WAKEUP_RECHECK_S) or now >= checked + 1.0:
            self._stale = False
            self._checked_at = now
            self._store_wakeup_at = now + 1.0
            with contextlib.suppress(StoreError):
                wakeup = store.next_wakeup()
                if wakeup is not None:
                    delay = max(0.0, (wakeup - utcnow(self._clock)).total_seconds()) + 0.001
                    self._store_wakeup_at = min(self._store_wakeup_at, now + delay)
        timer_due = min(self._store_wakeup_at, self._timer_at)
        due = timer_due
        if self._stale:  # wake up to ask the store again, not to claim
            due = min(due, self._checked_at + _WAKEUP_RECHECK_S)
        timeout = max(0.0, due - now)
        if timer_due - now < 1e-3:
            self.claim_due = True
            self.activity_claim_due = True
            self._stale = True
            self._checked_at = -math.inf  # a timer came due: look again now
            with self._timer_lock:
                if self._timer_at <= now + 1e-3:
                    self._timer_at = math.inf
        return min(timeout, 1.0)

    def watch(self, store: Store, stopping: threading.Event) -> None:
        """The watcher thread, for a store that cannot call back: wait for the store's news
        of work and wake the dispatcher, until ``stopping`` is set."""
        token: object = None
        with contextlib.suppress(StoreError):
            token = store.change_token(work_only=True)
        # Work committed after the dispatcher's first claim but before this first token is
        # invisible to the comparison below: claim once more rather than wait for the poll.
        self.claim_due = self.activity_claim_due = True
        self.event.set()
        while not stopping.is_set():
            try:
                # short waits: shutdown joins this thread, and it only sees `stopping` between
                new = store.wait_for_work(0.1, token, work_only=True)
            except StoreError as exc:
                logger.warning("store unavailable, retrying: %s", exc)
                self._pause(stopping, 1.0)
                continue
            if token is not None and new != token:
                if isinstance(new, WorkToken) and isinstance(token, WorkToken):
                    orchestrations = new.orchestrations != token.orchestrations
                    activities = new.activities != token.activities
                else:  # a store that does not tell the kinds of work apart
                    orchestrations = activities = True
                self.on_store_work(orchestrations, activities)
            token = new

    def _pause(self, stopping: threading.Event, seconds: float) -> None:
        """Wait ``seconds`` on the clock, or until ``stopping`` is set (real waits, each as
        long as the clock says is left)."""
        deadline = self._clock.monotonic() + seconds
        while not stopping.is_set():
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return
            stopping.wait(left)
