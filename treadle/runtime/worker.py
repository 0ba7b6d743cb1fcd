"""WorkflowRuntime: registers workflows and activities and runs them against a store.

One dispatcher thread does all the workflow work in rounds: it takes the results of
activities that finished in this process, claims instances with new inbox messages, runs each
instance's turn (resuming its cached generator, or replaying its history after a cache miss),
and commits every turn of the round in one transaction (group commit). An activity result for
an instance this runtime holds is folded straight into that instance's next turn, so a step
of a chain costs one commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, TypeVar

from treadle.core.actions import Action, CompleteOrchestration, ScheduleTask
from treadle.core.history import (
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    ParentInfo,
)
from treadle.core.replay import WorkflowExecution, failure_from_exception
from treadle.errors import (
    FailureDetails,
    RegistrationError,
    StoreError,
    StoreUnavailableError,
)
from treadle.runtime.activities import ActivityExecutor
from treadle.runtime.cache import CachedExecution, InstanceCache
from treadle.runtime.inflight import InflightActivities
from treadle.runtime.registry import Registry
from treadle.runtime.remote import RemoteExecutor, RemoteWorkers
from treadle.runtime.turns import (
    TurnInput,
    TurnOutput,
    build_turn,
    result_for_parent,
    terminal_commit,
)
from treadle.runtime.wakeups import Wakeups
from treadle.store import Store, open_store
from treadle.store import local_starts as local
from treadle.store.base import (
    ActivityResult,
    ActivityWorkItem,
    CommitOutcome,
    InboxMessage,
    InstanceRecord,
    NewInstance,
    OrchestrationWorkItem,
    TurnCommit,
    creatable,
)
from treadle.store.capabilities import WorkNotifier

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class _Pending:
    """One instance's turn in the current round, before it is committed."""

    instance_id: str
    output: TurnOutput | None = None
    commit: TurnCommit | None = None
    cached: CachedExecution | None = None
    history_len_after: int = 0
    completions: list[tuple[ActivityWorkItem, HistoryEvent]] = field(default_factory=list)


def _failed_turn(
    instance_id: str,
    version: int,
    history_start: int,
    execution_id: str,
    failure: FailureDetails,
    consumed_messages: Sequence[int],
    *,
    consumed_activities: Sequence[int] = (),
    cancel_activities: bool = False,
    parent: ParentInfo | None = None,
) -> TurnCommit:
    """A turn that fails its instance without running its workflow (no new events): it
    consumes the given messages and activity results, lets go of the instance, and tells
    the parent workflow, if any, that its child failed."""
    told = []
    if parent is not None:
        ending = CompleteOrchestration(id=-1, status=OrchestrationStatus.FAILED, failure=failure)
        told.append(result_for_parent(parent, ending, _utcnow()))
    return TurnCommit(
        instance_id=instance_id,
        expected_version=version,
        new_events=[],
        history_start=history_start,
        status=OrchestrationStatus.FAILED,
        execution_id=execution_id,
        failure=failure,
        consumed_messages=consumed_messages,
        consumed_activities=consumed_activities,
        cancel_activities=cancel_activities,
        new_messages=told,
    )


class WorkflowRuntime:
    """Runs registered workflows and activities against a store.

    Args:
        store: a store URL or object; default ``$TREADLE_STORE`` or ``sqlite:///treadle.db``.
        max_concurrent_activities: activities running at once in this process.
        max_concurrent_workflows: instances this runtime works on (holds) at once.
        lease_s: how long a claim lasts without renewal; a dead runtime's work is taken
            over after this long (at once if it ran on this host).
        cache_size: how many idle instances keep their live generator in memory.
        remote: where to send workflows and activities with no local function (the
            ``treadle serve`` gRPC work-item stream); without it they fail as unregistered.
        fail_unknown_workflows: fail an instance whose workflow is not registered here
            (default, for a clear error on a typo); False leaves it to other workers, for
            deployments where workers register different workflows on one store.
        local_starts: a client of this process on the same store URL hands this runtime
            the instances it starts (of workflows registered here): their first turn runs
            on the client's thread and is committed with the instance, in one durable
            commit (see :meth:`start_here`). False: every start goes through the store.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        max_concurrent_activities: int = 32,
        max_concurrent_workflows: int = 500,
        lease_s: float = 30.0,
        cache_size: int = 10_000,
        remote: RemoteWorkers | None = None,
        fail_unknown_workflows: bool = True,
        local_starts: bool = True,
    ) -> None:
        if max_concurrent_activities < 1:
            raise ValueError("max_concurrent_activities must be >= 1")
        if max_concurrent_workflows < 1:
            raise ValueError("max_concurrent_workflows must be >= 1")
        if lease_s <= 0:
            raise ValueError("lease_s must be > 0")
        self._store_arg = store
        self._store: Store | None = None
        self.fail_unknown_workflows = fail_unknown_workflows
        self.local_starts = local_starts
        self._registry = Registry()
        self.max_concurrent_activities = max_concurrent_activities
        self.max_concurrent_workflows = max_concurrent_workflows
        self.lease_s = lease_s
        self._cache_size = cache_size
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wakeups = Wakeups()
        self._stopping = threading.Event()
        self._draining = False
        self._cache = InstanceCache(cache_size)
        self._inflight = InflightActivities(lease_s, max_concurrent_activities)
        self._commit_sent_at = 0.0
        self._threads: list[threading.Thread] = []
        self._executor: ActivityExecutor | None = None
        self._started = False
        self._stop_on_work: Callable[[], None] | None = None  # see start
        self._remote = RemoteExecutor(remote, self._wakeups.wake) if remote is not None else None
        # The dispatcher's rounds and inline commits on activity threads take turns on it.
        self._engine_lock = threading.Lock()
        self._start_gate = threading.Lock()  # held by the one start_here under way
        self._inline = threading.local()

    # ---- registration ----------------------------------------------------------------
    def register_workflow(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        """Register a workflow function (a generator function taking ``ctx, input``)."""
        self._registry.add_workflow(fn, name)

    def register_activity(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        """Register an activity function (``ctx, input``; sync or ``async def``)."""
        self._registry.add_activity(fn, name)

    def workflow(self, __fn: F | None = None, *, name: str | None = None) -> Any:
        """Decorator form of :meth:`register_workflow`: ``@runtime.workflow(name=...)``."""

        def deco(fn: F) -> F:
            self.register_workflow(fn, name=name)
            return fn

        return deco(__fn) if __fn is not None else deco

    def activity(self, __fn: F | None = None, *, name: str | None = None) -> Any:
        """Decorator form of :meth:`register_activity`: ``@runtime.activity(name=...)``."""

        def deco(fn: F) -> F:
            self.register_activity(fn, name=name)
            return fn

        return deco(__fn) if __fn is not None else deco

    def register_from(self, other: WorkflowRuntime) -> None:
        """Register here every workflow and activity registered on ``other``, by the same names.

        ``treadle serve --app`` uses it to run an application's functions in its own runtime.

        Raises:
            RegistrationError: a name is already registered here to another function.
        """
        for name, fn in other._registry.workflows.items():
            self._registry.add_workflow(fn, name)
        for name, fn in other._registry.activities.items():
            self._registry.add_activity(fn, name)

    @property
    def workflow_names(self) -> list[str]:
        """Names of the registered workflows."""
        return sorted(self._registry.workflows)

    @property
    def activity_names(self) -> list[str]:
        """Names of the registered activities."""
        return sorted(self._registry.activities)

    @property
    def store(self) -> Store:
        """The store this runtime uses (opened by :meth:`start`)."""
        if self._store is None:
            self._store = open_store(self._store_arg)
        return self._store

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Start working in background threads; returns at once."""
        if self._started:
            return
        store = self.store
        self._started = True
        self._stopping.clear()
        self._release_dead_local_owners(store)
        self._executor = ActivityExecutor(
            self._registry.activities,
            self.max_concurrent_activities,
            self._on_activity_done,
            is_current=self._inflight.still_leased,
        )
        loops = [(self._dispatch_loop, "dispatcher")]
        if isinstance(store, WorkNotifier):  # the store wakes the dispatcher itself, a hop sooner
            with contextlib.suppress(StoreError):
                self._stop_on_work = store.on_work(self._wakeups.on_store_work)
        if self._stop_on_work is None:  # else a thread that waits for the store's news
            loops.append((self._watch_loop, "watcher"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=f"treadle-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.local_starts:
            local.add(store.url, self)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop gracefully: take no new work, let running activities finish (up to
        ``timeout`` seconds) and commit their results, then release every lease. Activities
        still running after that are left to be retried by the next runtime."""
        if not self._started:
            return
        local.remove(self.store.url, self)
        if self._stop_on_work is not None:
            self._stop_on_work()
            self._stop_on_work = None
        self._draining = True
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            self._wakeups.wake()
            time.sleep(0.01)
        self._stopping.set()
        self._wakeups.wake()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        with contextlib.suppress(StoreError):
            self.store.release_leases(self.owner)
        if self._store is not None and not _is_store_object(self._store_arg):
            self._store.close()  # we opened it from a URL: give its connections back
            self._store = None
        self._cache.clear()
        self._inflight.clear()
        self._started = False
        self._draining = False

    def __enter__(self) -> WorkflowRuntime:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def _release_dead_local_owners(self, store: Store) -> None:
        """Free the leases of runtimes on this host whose process is gone (after kill -9)."""
        host = socket.gethostname()
        for owner in store.lease_owners():
            parts = owner.rsplit(":", 2)
            if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            if pid == os.getpid() or _process_alive(pid):
                continue
            logger.info("releasing the leases of %s (its process is gone)", owner)
            store.release_leases(owner)

    # ---- starts from clients of this process ------------------------------------------
    def start_here(self, new: NewInstance) -> bool:
        """Create ``new`` with its first turn, run now on the caller's thread, in one commit.

        A client of this process calls it (see :mod:`treadle.store.local_starts`): the instance
        is durable when this returns True, as after ``Store.create_instance``, and this
        runtime holds it, so its first activities are already running. False (nothing was
        written): the runtime does not take it (stopping, full, not its workflow, a
        scheduled or child start, an id in use, a first turn that creates instances), and
        the client creates the instance in the store instead; so also while another start
        is under way here.

        Raises:
            StoreError: the store failed; whether the instance exists is then unknown, as
                for a failed ``create_instance``.
        """
        fn = self._registry.workflows.get(new.name)
        if (
            fn is None
            or not self._started
            or self._draining
            or new.scheduled_start is not None
            or new.parent is not None
            or new.history
            or self._cache.held_count >= self.max_concurrent_workflows
        ):
            return False
        # One start at a time: the others take the store's start at once, side by side (and
        # commit together on PostgreSQL), instead of queueing behind the engine one commit
        # at a time. This one waits for the engine at most one round or inline commit
        # (a workflow calling a client, against the rules, would wait for itself: 1 s).
        if not self._start_gate.acquire(blocking=False):
            return False
        try:
            return self._start_here(fn, new)
        finally:
            self._start_gate.release()

    def _start_here(self, fn: Callable[..., Any], new: NewInstance) -> bool:
        if not self._engine_lock.acquire(timeout=1.0):
            return False
        try:
            if self._draining:
                return False
            iid = new.instance_id
            self._inflight.begin_round()
            cached = CachedExecution(
                execution=WorkflowExecution(fn, instance_id=iid),
                name=new.name,
                execution_id=new.execution_id,
                version=0,
                history_len=0,
            )
            entry = _Pending(iid)
            turn = TurnInput(iid, new.name, new.execution_id, 0, 0)
            self._prepare_turn(entry, cached, turn, [new.started_event(_utcnow())], [])
            commit = entry.commit
            assert commit is not None
            if not creatable(commit):
                self._inflight.begin_round()
                return False
            entry.commit = dataclasses.replace(commit, create=new)
            self._wakeups.note_timers([entry.commit])
            self._commit_sent_at = time.monotonic()
            outcome = self.store.commit_turns(self.owner, [entry.commit], self.lease_s)[0]
            if not outcome.ok:
                return False  # the id is in use: the store's start says what to do
            self._after_commit(entry, True, outcome.version, outcome.new_activity_ids)
            return True
        finally:
            self._engine_lock.release()

    # ---- remote workers ----------------------------------------------------------------
    def complete_remote_turn(
        self, instance_id: str, actions: list[Action], custom_status: str | None
    ) -> bool:
        """Report the actions a remote worker returned for a turn (thread-safe).

        Returns:
            False if no turn of that instance is outstanding (a late or duplicate answer).
        """
        if self._remote is None:
            return False
        return self._remote.complete(instance_id, actions, custom_status)

    def complete_remote_activity(self, item: ActivityWorkItem, event: HistoryEvent) -> None:
        """Report a remote activity's TaskCompleted/TaskFailed (thread-safe)."""
        self._on_activity_done(item, event)

    def abandon_remote_turn(self, instance_id: str, *, retry_after_s: float = 0.0) -> None:
        """Give up an outstanding remote turn (thread-safe): the instance is claimed and sent
        again, no sooner than ``retry_after_s`` seconds from now."""
        if self._remote is not None:
            self._remote.abandon(instance_id, retry_after_s)

    def _submit_activity(self, item: ActivityWorkItem) -> None:
        if self._remote is not None and item.name not in self._registry.activities:
            self._remote.workers.submit_activity(item)
            return
        if (
            getattr(self._inline, "active", False)
            and getattr(self._inline, "next", None) is None
            and self._executor is not None
            and self._executor.runs_on_thread(item)
        ):
            self._inline.next = item  # the activity thread committing this runs it next
            return
        executor = self._executor
        assert executor is not None
        executor.submit(item)

    def _take_remote_results(self, pending: dict[str, _Pending]) -> bool:
        """Take the remote workers' answers into the round (dispatcher, engine lock held)."""
        if self._remote is None:
            return False
        took = False
        for iid, not_before in self._remote.take_abandoned():
            took = True
            self._wakeups.set_aside(iid, not_before)
            with contextlib.suppress(StoreError):
                self.store.release_leases(self.owner, [iid])
            self._wakeups.claim_due = True
        for iid, output in self._remote.take_results():
            took = True
            entry = pending.setdefault(iid, _Pending(iid))
            entry.output = output
            entry.commit = output.commit
            if output.activities:
                self._wakeups.activity_claim_due = True
        return took

    # ---- threads ---------------------------------------------------------------------
    def _on_activity_done(
        self, item: ActivityWorkItem, event: HistoryEvent
    ) -> ActivityWorkItem | None:
        """An activity finished (called on its thread). Returns an activity for that thread
        to run next, when committing the result scheduled one it can take at once."""
        if self._stopping.is_set():
            return None
        self._inline.next = None
        if self._try_inline(item, event):
            following: ActivityWorkItem | None = self._inline.next
            self._inline.next = None
            return following
        self._inflight.results.put((item, event))
        self._wakeups.wake()
        return None

    def _watch_loop(self) -> None:
        self._wakeups.watch(self.store, self._stopping)

    def _dispatch_loop(self) -> None:
        backoff = 0.05
        last_error = ""  # an error that keeps coming back is shown whole once
        while not self._stopping.is_set():
            self._wakeups.event.clear()
            try:
                worked = self._round()
                backoff, last_error = 0.05, ""
            except StoreUnavailableError as exc:
                logger.warning("store unavailable, retrying in %.1fs: %s", backoff, exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception as exc:
                error = f"{type(exc).__name__}: {failure_from_exception(exc).message}"
                if error != last_error:
                    logger.exception("workflow dispatcher error; retrying in %.1fs", backoff)
                else:
                    logger.warning(
                        "workflow dispatcher error again, retrying in %.1fs: %s", backoff, error
                    )
                last_error = error
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if not worked:
                self._wakeups.event.wait(self._wakeups.idle_timeout(self.store))

    # ---- one round -------------------------------------------------------------------
    def _round(self) -> bool:
        # The store's claims run outside the engine lock: an activity thread committing a
        # step inline need not wait for them (they are round trips to the store).
        claimed = self._claim_orchestrations()
        with self._engine_lock:
            worked = self._round_locked(claimed)
        worked = self._claim_activities() or worked
        return worked

    def _claim_orchestrations(self) -> list[OrchestrationWorkItem]:
        """Lease instances with work (dispatcher thread, without the engine lock)."""
        now_mono = time.monotonic()
        self._wakeups.periodic_claims(now_mono)
        if not self._wakeups.claim_due or self._draining:
            return []
        limit = max(0, self.max_concurrent_workflows - self._cache.held_count)
        if not limit:
            return []  # still due: _after_commit wakes us when an instance is let go
        self._wakeups.claim_due = False
        exclude = self._wakeups.set_aside_ids(now_mono)  # instances set aside for a while
        if self._remote is not None:
            exclude.extend(self._remote.pending_ids())
        claimed = self.store.claim_orchestrations(self.owner, limit, self.lease_s, exclude)
        if len(claimed) == limit:
            self._wakeups.claim_due = True
        return claimed

    def _round_locked(self, claimed: list[OrchestrationWorkItem]) -> bool:
        store = self.store
        pending: dict[str, _Pending] = {}
        slow: list[ActivityResult] = []
        self._inflight.begin_round()
        try:
            worked = self._take_completions(pending, slow)
            worked = self._take_remote_results(pending) or worked
            if slow:
                store.complete_activities(self.owner, slow)
            for item in claimed:
                entry = pending.setdefault(
                    item.instance.instance_id, _Pending(item.instance.instance_id)
                )
                record = item.instance
                self._prepare_or_fail(
                    entry,
                    functools.partial(self._prepare_claimed, entry, item),
                    (record.version, record.history_len, record.execution_id),
                    [m.id for m in item.messages],
                )
            committed = self._commit_pending(pending)
        except BaseException:
            self._forget_round(pending, slow)
            raise
        worked = worked or bool(claimed) or committed
        self._renew_if_due()
        return worked

    def _forget_round(self, pending: dict[str, _Pending], slow: list[ActivityResult]) -> None:
        """After a round failed (the store went away): drop the cached workflow states that
        took in its events, which may not be committed, and keep its activity results for
        the next round."""
        for iid, entry in pending.items():
            self._cache.evict(iid)
            for item, event in entry.completions:
                self._inflight.results.put((item, event))
        for result in slow:
            self._inflight.results.put((result.task, result.event))

    def _commit_pending(self, pending: dict[str, _Pending]) -> bool:
        """Prepare the turns not prepared yet, commit them all at once, then act on them."""
        for entry in pending.values():
            if entry.commit is None and entry.completions:
                cached = self._cache.get(entry.instance_id)
                assert cached is not None  # (a result is taken in only for a cached instance)
                self._prepare_or_fail(
                    entry,
                    functools.partial(self._prepare_fast, entry),
                    (cached.version, cached.history_len, cached.execution_id),
                    [],
                )
        commits = [e.commit for e in pending.values() if e.commit is not None]
        if not commits:
            return False
        self._wakeups.note_timers(commits)
        self._commit_sent_at = time.monotonic()
        outcomes = self._commit_or_isolate(pending, commits)
        by_id = {o.instance_id: o for o in outcomes}
        for entry in pending.values():
            if entry.commit is not None:
                outcome = by_id[entry.instance_id]
                self._after_commit(entry, outcome.ok, outcome.version, outcome.new_activity_ids)
        return True

    def _prepare_or_fail(
        self,
        entry: _Pending,
        prepare: Callable[[], None],
        fence: tuple[int, int, str],
        consumed_messages: list[int],
    ) -> None:
        """Prepare one instance's turn; if that raises (anything but the store's errors,
        which the round retries), fail that instance alone: the others of the round go on,
        where the whole round would fail again and again. ``fence``: the version, history
        length and execution id the instance is known at.

        It runs on the dispatcher's and the activities' threads, never the main one: even a
        KeyboardInterrupt or GeneratorExit here was raised by code, not by Ctrl-C.
        """
        try:
            prepare()
        except StoreError:
            raise
        except BaseException as exc:
            iid = entry.instance_id
            logger.exception("could not run a turn of workflow instance %s; failing it", iid)
            cached = entry.cached or self._cache.get(iid)
            parent = cached.execution.parent if cached is not None else None
            self._cache.evict(iid)
            details = failure_from_exception(exc)
            details = dataclasses.replace(
                details, message=f"treadle could not run a turn of this workflow: {details.message}"
            )
            entry.output = None  # (_after_commit: nothing left to run)
            entry.commit = _failed_turn(
                iid,
                fence[0],
                fence[1],
                fence[2],
                details,
                consumed_messages,
                consumed_activities=[item.id for item, _ in entry.completions],
                cancel_activities=True,
                parent=parent,
            )

    def _commit_or_isolate(
        self, pending: dict[str, _Pending], commits: list[TurnCommit]
    ) -> list[CommitOutcome]:
        """Commit the turns at once. If the store refuses the statement itself (not an
        outage: a value it cannot hold, say), commit them one by one, and fail the workflow
        whose turn it refuses alone: retried, that turn would fail for ever and hold up the
        turns committed with it."""
        try:
            return self.store.commit_turns(self.owner, commits, self.lease_s)
        except StoreUnavailableError:
            raise
        except StoreError as exc:
            if len(commits) == 1:
                return [self._refused(pending[commits[0].instance_id], exc)]
        outcomes: list[CommitOutcome] = []
        for commit in commits:
            try:
                outcomes.extend(self.store.commit_turns(self.owner, [commit], self.lease_s))
            except StoreUnavailableError:
                raise
            except StoreError as exc:
                outcomes.append(self._refused(pending[commit.instance_id], exc))
        return outcomes

    def _refused(self, entry: _Pending, exc: StoreError) -> CommitOutcome:
        """Fail the instance whose turn the store refused (see :meth:`_commit_or_isolate`):
        the turn's messages and activity results are consumed, its activities cancelled,
        and none of its events kept (they may hold what the store refused)."""
        commit = entry.commit
        assert commit is not None
        logger.error(
            "the store refused the turn of workflow instance %s; failing the instance: %s",
            entry.instance_id,
            exc,
        )
        reason = str(exc).encode("ascii", "backslashreplace").decode()
        failed = _failed_turn(
            commit.instance_id,
            commit.expected_version,
            commit.history_start,
            commit.execution_id,
            FailureDetails(
                error_type=type(exc).__name__,
                message=f"the store could not record a step of this workflow: {reason}",
            ),
            commit.consumed_messages,
            consumed_activities=commit.consumed_activities,
            cancel_activities=True,
            parent=entry.cached.execution.parent if entry.cached is not None else None,
        )
        entry.commit, entry.output = failed, None  # (_after_commit: nothing left to run)
        try:
            (outcome,) = self.store.commit_turns(self.owner, [failed], self.lease_s)
        except StoreUnavailableError:
            raise
        except StoreError as again:
            logger.error("could not fail workflow instance %s either: %s", entry.instance_id, again)
            return CommitOutcome(entry.instance_id, ok=False, error=str(again))
        return outcome

    def _try_inline(self, item: ActivityWorkItem, event: HistoryEvent) -> bool:
        """Commit an activity's result on the thread that ran it, if nothing else waits.

        A chain of steps then runs on one thread (activity, commit, next activity) with no
        hand-off to the dispatcher. Under load the engine lock is busy or completions are
        queued, and results go to the dispatcher, which commits them in groups.
        """
        if self._draining or not self._inflight.results.empty() or len(self._inflight) > 1:
            # Other activities are out: their results will come soon, and the dispatcher
            # commits them all at once where each inline commit would take one round trip.
            return False
        cached = self._cache.get(item.instance_id)
        if cached is None or not cached.held:
            return False
        if not self._engine_lock.acquire(blocking=False):
            return False
        try:
            pending: dict[str, _Pending] = {}
            slow: list[ActivityResult] = []
            self._inflight.begin_round()
            self._inline.active = True
            self._accept_completion(item, event, pending, slow)
            try:
                if slow:
                    self.store.complete_activities(self.owner, slow)
                self._commit_pending(pending)
            except Exception:
                logger.debug("inline commit failed; the dispatcher takes over", exc_info=True)
                self._cache.evict(item.instance_id)
                self._inflight.results.put((item, event))
                self._wakeups.wake()
        finally:
            self._inline.active = False
            self._engine_lock.release()
        return True

    def _take_completions(self, pending: dict[str, _Pending], slow: list[ActivityResult]) -> bool:
        took = False
        while True:
            try:
                item, event = self._inflight.results.get_nowait()
            except queue.Empty:
                return took
            took = True
            self._accept_completion(item, event, pending, slow)

    def _accept_completion(
        self,
        item: ActivityWorkItem,
        event: HistoryEvent,
        pending: dict[str, _Pending],
        slow: list[ActivityResult],
    ) -> None:
        """Route a result: into its instance's next turn if this runtime holds the instance,
        else to the instance's inbox."""
        if self._inflight.finish(item) and self._wakeups.activity_claim_due:
            self._wakeups.wake()  # a claim may have waited for room
        cached = self._cache.get(item.instance_id)
        if cached is not None and cached.held and cached.execution_id == item.execution_id:
            entry = pending.setdefault(item.instance_id, _Pending(item.instance_id))
            entry.completions.append((item, event))
        else:
            slow.append(ActivityResult(item, event))

    def _prepare_claimed(self, entry: _Pending, item: OrchestrationWorkItem) -> None:
        record = item.instance
        iid = record.instance_id
        cached = self._cache.get(iid)
        if (
            cached is not None
            and cached.execution_id == record.execution_id
            and cached.version > record.version
        ):
            # A step of this instance was committed inline after the claim read it: the
            # record is stale, the cache is not. Its messages wait in the inbox; claim again.
            # (Results of its activities in this round are committed by _commit_pending.)
            self._wakeups.claim_due = True
            return
        if cached is not None and (
            cached.version != record.version or cached.execution_id != record.execution_id
        ):
            self._cache.evict(iid)
            cached = None
        if cached is None and entry.completions:
            # the instance changed under us: deliver these results through its inbox
            self.store.complete_activities(
                self.owner, [ActivityResult(i, e) for i, e in entry.completions]
            )
            entry.completions.clear()
        turn = TurnInput(iid, record.name, record.execution_id, record.version, record.history_len)
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
        events = [m.event for m in messages if _for_run(m, record.execution_id)]
        has_start = record.history_len > 0 or any(isinstance(e, ExecutionStarted) for e in events)
        if not has_start:
            self._prepare_unstarted(entry, turn, record, events, consumed)
            return
        if cached is None:
            if self._remote is not None and record.name not in self._registry.workflows:
                past = self.store.get_history(iid) if record.history_len else []
                self._remote.send(record, turn, events, consumed, past)
                return
            cached = self._load(record)
            if cached is None:
                if self.fail_unknown_workflows:
                    entry.commit = self._fail_unregistered(turn, record, consumed, events)
                else:
                    self._leave_for_others(record)
                return
        self._prepare_turn(entry, cached, turn, events, consumed)

    def _prepare_unstarted(
        self,
        entry: _Pending,
        turn: TurnInput,
        record: InstanceRecord,
        events: list[HistoryEvent],
        consumed: list[int],
    ) -> None:
        terminate = next((e for e in events if isinstance(e, ExecutionTerminated)), None)
        if terminate is None:
            # events for an instance whose start is not visible yet: wait for the start
            self._wakeups.set_aside(record.instance_id, time.monotonic() + 1.0)
            self.store.release_leases(self.owner, [record.instance_id])
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

    def _leave_for_others(self, record: InstanceRecord) -> None:
        """Release an instance of a workflow this runtime does not have, for another one."""
        if not self._wakeups.is_set_aside(record.instance_id):
            logger.info(
                "workflow %r of instance %s is not registered here; leaving it to other workers",
                record.name,
                record.instance_id,
            )
        self._wakeups.set_aside(record.instance_id, time.monotonic() + 5.0)
        self.store.release_leases(self.owner, [record.instance_id])

    def _fail_unregistered(
        self,
        turn: TurnInput,
        record: InstanceRecord,
        consumed: list[int],
        events: list[HistoryEvent],
    ) -> TurnCommit:
        error = RegistrationError(
            f"workflow {record.name!r} is not registered with this runtime; register it with "
            "runtime.register_workflow(fn) or @runtime.workflow"
        )
        if record.history_len:  # (its start is in its history, not among the messages)
            events = list(self.store.get_history(record.instance_id)[:1])
        started = next((e for e in events if isinstance(e, ExecutionStarted)), None)
        return _failed_turn(
            turn.instance_id,
            turn.version,
            turn.history_len,
            turn.execution_id,
            failure_from_exception(error),
            consumed,
            parent=started.parent if started is not None else None,
        )

    def _load(self, record: InstanceRecord) -> CachedExecution | None:
        fn = self._registry.workflows.get(record.name)
        if fn is None:
            return None
        execution = WorkflowExecution(fn, instance_id=record.instance_id)
        history: list[HistoryEvent] = []
        if record.history_len:
            history = self.store.get_history(record.instance_id)
            execution.process(history, replaying=True)
        return CachedExecution(
            execution=execution,
            name=record.name,
            execution_id=record.execution_id,
            version=record.version,
            history_len=len(history),
        )

    def _prepare_fast(self, entry: _Pending) -> None:
        cached = self._cache.get(entry.instance_id)
        assert cached is not None
        turn = TurnInput(
            entry.instance_id, cached.name, cached.execution_id, cached.version, cached.history_len
        )
        self._prepare_turn(entry, cached, turn, [], [])

    def _prepare_turn(
        self,
        entry: _Pending,
        cached: CachedExecution,
        turn: TurnInput,
        events: list[HistoryEvent],
        consumed: list[int],
    ) -> None:
        execution = cached.execution
        now = _utcnow()
        new_events: list[HistoryEvent] = [OrchestratorStarted(timestamp=now), *events]
        new_events.extend(e for _, e in entry.completions)
        execution.process(new_events, replaying=False)
        actions = execution.take_actions()
        turn.parent = execution.parent
        turn.created_children = execution.child_instance_ids
        scheduled = sum(1 for a in actions if isinstance(a, ScheduleTask))
        lease_n = self._inflight.plan(scheduled, draining=self._draining)
        still_running = self._inflight.has_running(turn.instance_id)
        # a chain's one next step: kept in the instance's row, not queued (OWN_TASK_RULES)
        own = scheduled == 1 and lease_n == 1 and not self._inflight.own_task_out(turn.instance_id)
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
        )
        entry.output = output
        entry.commit = output.commit
        entry.cached = cached
        entry.history_len_after = turn.history_len + len(output.commit.new_events)
        if scheduled > lease_n:
            self._wakeups.activity_claim_due = True

    def _after_commit(
        self, entry: _Pending, ok: bool, version: int, activity_ids: list[int]
    ) -> None:
        iid = entry.instance_id
        cached = entry.cached
        commit = entry.commit
        assert commit is not None
        if not ok:
            logger.debug("turn of %s refused (lease lost or stale); dropping its cache", iid)
            self._cache.evict(iid)
            if entry.completions:
                # Deliver its activity results through the inbox instead, where they are
                # dropped if already delivered; else they would be lost, run again later.
                with contextlib.suppress(StoreError):
                    self.store.complete_activities(
                        self.owner, [ActivityResult(i, e) for i, e in entry.completions]
                    )
            return
        if cached is None or entry.output is None:
            self._cache.evict(iid)
            return
        if entry.output.is_final or commit.reset_history:
            self._cache.evict(iid)
        else:
            cached.execution.confirm_actions()
            cached.version = version
            cached.history_len = entry.history_len_after
            cached.held = commit.keep_lease
            self._cache.keep(iid, cached)
        if not commit.keep_lease and self._wakeups.claim_due:
            self._wakeups.wake()  # a claim may have waited for room
        leased = [a for a in entry.output.activities if a.leased]
        for row_id, activity in zip(activity_ids, leased, strict=False):
            item = ActivityWorkItem(
                id=row_id,
                instance_id=activity.instance_id,
                execution_id=activity.execution_id,
                task_id=activity.task_id,
                name=activity.name,
                input=activity.input,
                task_execution_id=activity.task_execution_id,
            )
            self._inflight.track(item, self._commit_sent_at, own=activity.own)
            self._submit_activity(item)

    def _claim_activities(self) -> bool:
        """Lease activity tasks (dispatcher thread; the store call without the engine lock)."""
        if not self._wakeups.activity_claim_due or self._draining:
            return False
        free = self._inflight.free()
        if free <= 0:
            return False  # still due: _accept_completion wakes us when one finishes
        self._wakeups.activity_claim_due = False
        sent_at = time.monotonic()
        items = self.store.claim_activities(self.owner, free, self.lease_s)
        if not items:
            return False
        with self._engine_lock:
            for item in items:
                self._inflight.track(item, sent_at)
                self._submit_activity(item)
        if len(items) == free:
            self._wakeups.activity_claim_due = True
        return True

    def _renew_if_due(self) -> None:
        lost = self._inflight.renew_if_due(self.store, self.owner, self._held_instances)
        for iid in lost:
            logger.warning("lost the lease of %s; another worker took it over", iid)
            self._cache.evict(iid)

    def _held_instances(self) -> list[str]:
        """The instances whose lease this runtime keeps: held, or out to a remote worker."""
        held = self._cache.held_ids()
        if self._remote is not None:
            held.extend(self._remote.pending_ids())
        return held


def _is_store_object(value: object) -> bool:
    return value is not None and not isinstance(value, str)


def _for_run(message: InboxMessage, execution_id: str) -> bool:
    return message.execution_id is None or message.execution_id == execution_id


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
