"""WorkflowRuntime: registers workflows and activities and runs them against a store.

One dispatcher thread does all the workflow work in rounds: it takes the results of
activities that finished in this process, claims instances with new inbox messages, runs each
instance's turn (resuming its cached generator, or replaying its history after a cache miss),
and commits every turn of the round in one transaction (group commit). An activity result for
an instance this runtime holds is folded straight into that instance's next turn, so a step
of a chain costs one commit. The runtime's modules, their threads and their state are listed
in :mod:`treadle.runtime`.

Every timestamp and deadline comes from the runtime's clock (:mod:`treadle.clock`); only the
bounds on how long a thread blocks are real time (``shutdown``'s timeout, and the pace of
local starts with the dispatcher's short waits for them: see :mod:`treadle.runtime.starts`).

Threads: the application's (register, start, shutdown), client threads of this process
(``start_here``) and the server's threads (``complete_remote_*``, ``abandon_remote_turn``)
call this facade. It owns the settings, the store it opened, and the engine, local starts,
threads and store hook of the current run (the registry is its
:class:`~treadle.runtime.registration.Registrations` part); a run's work state lives in its
engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from treadle.clock import Clock, SystemClock
from treadle.core.actions import Action
from treadle.core.history import HistoryEvent, WorkflowVersion
from treadle.core.inputs import read_ahead
from treadle.errors import StoreError
from treadle.runtime.apps import Presence
from treadle.runtime.chores import Chores
from treadle.runtime.dapr_options import apply_logger_options, concurrency
from treadle.runtime.dispatcher import dispatch, watch
from treadle.runtime.engine import Engine
from treadle.runtime.observe import Observer
from treadle.runtime.options import RunState, RuntimeOptions
from treadle.runtime.owners import release_dead_local_owners
from treadle.runtime.poison import DEFAULT_MAX_DELIVERIES
from treadle.runtime.queue_limits import publish_queue_limits
from treadle.runtime.registration import Registrations
from treadle.runtime.starts import LocalStarts
from treadle.runtime.threads import ThreadStarts
from treadle.store import Store, open_store
from treadle.store import local_starts as local
from treadle.store.apps import default_app_id
from treadle.store.base import ActivityWorkItem, NewInstance
from treadle.store.capabilities import WorkNotifier
from treadle.store.retention import RetentionPolicy

if TYPE_CHECKING:
    from treadle.runtime.metrics import WorkerMetrics
    from treadle.runtime.remote import RemoteWorkers
    from treadle.runtime.tracing import Tracing

__all__ = ["WorkflowRuntime"]

logger = logging.getLogger(__name__)


class WorkflowRuntime(Registrations):
    """Runs registered workflows and activities against a store.

    Args:
        store: a store URL or object; default ``$TREADLE_STORE`` or ``sqlite:///treadle.db``.
        max_concurrent_activities: activities running at once in this process.
        max_concurrent_workflows: instances this runtime works on (holds) at once.
        lease_s: how long a claim lasts without renewal; a dead runtime's work is taken
            over after this long (at once if it ran on this host).
        cache_size: how many idle instances keep their live generator in memory.
        remote: where to send workflows and activities with no local function (the
            ``treadle serve`` gRPC work-item stream): the runtime then takes every workflow
            and activity of its app. Without it, it takes only those registered here.
        fail_unknown_workflows: kept for compatibility; it no longer has an effect. A runtime
            takes only the workflows and activities registered with it, so it never fails
            another worker's instance or activity as unregistered: what no running worker
            has waits, and says why in its state (``WorkflowState.waiting_reason``), until a
            worker that has it starts.
        app_id: the app this runtime runs (Dapr's app id; all apps share the store): it takes
            only the instances and activities of its app, and a call that names no app
            (``call_activity(..., app_id=...)``) stays in it. Default ``$TREADLE_APP_ID``,
            else ``$APP_ID`` (what ``dapr run --app-id`` sets), else none ("").
        retention: how long finished instances are kept, per status: a
            :class:`~treadle.store.retention.RetentionPolicy`, ``{"COMPLETED":
            timedelta(days=7), "FAILED": timedelta(days=30)}`` or ``"COMPLETED:7d,FAILED:30d"``
            (default: the store's, as its URL's ``?retention=`` sets it); the runtime holding the
            store's retention lease purges older ones continuously (None: kept for ever).
        app_wait: how long a call this app makes to another app waits for a worker there
            that takes it, before it fails with ``TaskFailedError`` (under the call's retry
            policy); see :mod:`treadle.runtime.apps`.
        turn_timeout: how long one turn of a workflow (its code between two yields, or the
            replay of its history) may run; one that runs longer (a loop that never yields)
            is interrupted and its instance FAILED with ``TurnTimeout``, and the runtime's
            other workflows go on. None: no limit. The limit applied is at most half the
            lease (``lease_s``): a turn interrupted later would find its lease gone, its
            failure refused, and the instance claimed and spun again, for ever. See
            :mod:`treadle.runtime.watchdog`.
        max_activity_deliveries: how many times an activity task may be handed to a worker
            without its result coming back (the worker crashed or was killed while running
            it) before it is failed, not run again: the calling workflow gets a
            ``TaskFailedError`` of type ``ActivityPoisoned`` (no retry policy runs it again).
            Default 10; None: no limit. See :mod:`treadle.runtime.poison`.
        local_starts: a client of this process on the same store URL hands this runtime
            the instances it starts (of workflows registered here): their first turn runs
            on the client's thread and is committed with the instance, in one durable
            commit (see :meth:`start_here`). False: every start goes through the store.
        clock: where the runtime reads the time: the timestamps it writes (each turn's
            ``OrchestratorStarted``, activity results) and every deadline (leases, pauses
            after errors, instances set aside, renewals, idle waits); default the real
            time. A :class:`~treadle.clock.ManualClock` shared with the store lets a test
            step time (see :mod:`treadle.clock`).
        maximum_concurrent_activity_work_items: the Dapr SDK's name of
            ``max_concurrent_activities`` (it wins when given).
        maximum_concurrent_orchestration_work_items: the Dapr SDK's name of
            ``max_concurrent_workflows`` (it wins when given).
        logger_options: the Dapr SDK's ``LoggerOptions`` (level, handler, formatter): they
            configure the ``treadle`` loggers.
        worker_ready_timeout: the default wait of :meth:`wait_for_worker_ready`.
        metrics: keep Prometheus metrics (:attr:`metrics`; needs ``treadle[metrics]``).
        metrics_port: also serve them over HTTP on this port (0: any free one; implies
            ``metrics``) while the runtime runs; :attr:`metrics_port` is the one it got.
        metrics_host: the address the metrics are served on: ``127.0.0.1`` (this machine
            only) by default; ``0.0.0.0`` (every interface) for a scraper elsewhere.
        tracing: emit OpenTelemetry spans of runs, activities and timers to the global
            ``TracerProvider`` (needs ``treadle[otel]``; see :mod:`treadle.runtime.tracing`).
        tracer_provider: the ``TracerProvider`` to emit them to instead (implies
            ``tracing``).
        host, port, interceptors, maximum_thread_pool_workers: accepted for Dapr
            compatibility and unused: treadle talks to its store, not to a sidecar, and runs
            each synchronous activity on a thread of its own (up to the activity limit).
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
        clock: Clock | None = None,
        app_id: str | None = None,
        app_wait: timedelta = timedelta(seconds=60),
        retention: RetentionPolicy | Mapping[str, timedelta] | str | None = None,
        turn_timeout: timedelta | None = timedelta(seconds=30),
        max_activity_deliveries: int | None = DEFAULT_MAX_DELIVERIES,
        host: str | None = None,
        port: str | None = None,
        logger_options: Any = None,
        interceptors: Any = None,
        maximum_concurrent_activity_work_items: int | None = None,
        maximum_concurrent_orchestration_work_items: int | None = None,
        maximum_thread_pool_workers: int | None = None,
        worker_ready_timeout: float | None = None,
        metrics: bool = False,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        tracing: bool = False,
        tracer_provider: Any = None,
    ) -> None:
        max_concurrent_activities = concurrency(
            max_concurrent_activities,
            maximum_concurrent_activity_work_items,
            "maximum_concurrent_activity_work_items",
        )
        max_concurrent_workflows = concurrency(
            max_concurrent_workflows,
            maximum_concurrent_orchestration_work_items,
            "maximum_concurrent_orchestration_work_items",
        )
        if logger_options is not None:
            apply_logger_options(logger_options)
        self.worker_ready_timeout = 30.0 if worker_ready_timeout is None else worker_ready_timeout
        if max_concurrent_activities < 1:
            raise ValueError("max_concurrent_activities must be >= 1")
        if max_concurrent_workflows < 1:
            raise ValueError("max_concurrent_workflows must be >= 1")
        if lease_s <= 0:
            raise ValueError("lease_s must be > 0")
        if app_id is not None and not isinstance(app_id, str):
            raise TypeError(f"app_id must be a str, not {type(app_id).__name__}")
        if not isinstance(app_wait, timedelta) or app_wait < timedelta(0):
            raise ValueError(f"app_wait must be a timedelta >= 0, got {app_wait!r}")
        self.retention = RetentionPolicy.coerce(retention)
        """The retention policy this runtime applies (when it holds the retention lease)."""
        if turn_timeout is not None and (
            not isinstance(turn_timeout, timedelta) or turn_timeout <= timedelta(0)
        ):
            raise ValueError(f"turn_timeout must be a timedelta > 0 or None, got {turn_timeout!r}")
        self.turn_timeout = turn_timeout
        if max_activity_deliveries is not None and (
            isinstance(max_activity_deliveries, bool)
            or not isinstance(max_activity_deliveries, int)
            or max_activity_deliveries < 1
        ):
            raise ValueError(
                "max_activity_deliveries must be an int >= 1 or None, "
                f"got {max_activity_deliveries!r}"
            )
        self.max_activity_deliveries = max_activity_deliveries
        self._store_arg = store
        self._store: Store | None = None
        self.fail_unknown_workflows = fail_unknown_workflows
        self.local_starts = local_starts
        self.app_id = default_app_id() if app_id is None else app_id
        """The app this runtime runs ("" for none)."""
        self.app_wait = app_wait
        super().__init__()
        self.max_concurrent_activities = max_concurrent_activities
        self.max_concurrent_workflows = max_concurrent_workflows
        self.lease_s = lease_s
        self._cache_size = cache_size
        self._remote = remote
        self._clock: Clock = clock or SystemClock()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # The current run (from start to shutdown): its state, its engine, its threads.
        self._run = RunState()
        self._engine: Engine | None = None
        self._starts: LocalStarts | None = None
        self._threads: list[threading.Thread] = []
        self._stop_on_work: Callable[[], None] | None = None  # see start
        self._stop_on_advance: Callable[[], None] | None = None
        self._presence: Presence | None = None
        self.metrics: WorkerMetrics | None = None
        """Its Prometheus metrics, if it keeps them (see :mod:`treadle.runtime.metrics`)."""
        self.metrics_port = metrics_port
        """The port its metrics are served on, if served (the one bound, once started)."""
        self.metrics_host = metrics_host
        """The address its metrics are served on, if served."""
        if metrics or metrics_port is not None:
            self.enable_metrics(metrics_port)
        self.tracing: Tracing | None = None
        """Its spans, if it emits them (see :mod:`treadle.runtime.tracing`)."""
        if tracing or tracer_provider is not None:
            self.enable_tracing(tracer_provider)
        self._chores: Chores | None = None

    def enable_metrics(self, port: int | None = None, host: str | None = None) -> WorkerMetrics:
        """Keep Prometheus metrics (as ``metrics=True``), and serve them on ``port`` if given
        (as ``metrics_port``), on ``host`` if given (as ``metrics_host``); call before
        :meth:`start`. Returns :attr:`metrics`."""
        if self.metrics is None:
            from treadle.runtime.metrics import WorkerMetrics

            self.metrics = WorkerMetrics(self.app_id, lambda now: self.store.waiting_work(now))
        if port is not None:
            self.metrics_port = port
        if host is not None:
            self.metrics_host = host
        return self.metrics

    def enable_tracing(self, provider: Any = None) -> Tracing:
        """Emit OpenTelemetry spans (as ``tracing=True``) to ``provider``, or to the global
        ``TracerProvider`` if None; call before :meth:`start`. Returns :attr:`tracing`."""
        if self.tracing is None:
            from treadle.runtime.tracing import Tracing

            self.tracing = Tracing(lambda iid: self.store.get_history(iid), provider)
        return self.tracing

    def retry_stalled(self) -> None:
        """Give the instances this runtime stalled another try at once (thread-safe): a
        worker that may have their code connected (``treadle serve`` calls it)."""
        engine = self._engine
        if engine is not None:
            engine.wakeups.retry_stalled()

    @property
    def store(self) -> Store:
        """The store this runtime uses (opened by :meth:`start`)."""
        if self._store is None:
            self._store = open_store(self._store_arg)
        return self._store

    # ---- lifecycle -------------------------------------------------------------------

    def _turn_limit_s(self) -> float | None:
        """The watchdog's limit on one turn: ``turn_timeout``, at most half the lease, so a
        spinning turn is failed while its lease still holds (else the failure is fenced out
        and the instance spins again on its next claim)."""
        if self.turn_timeout is None:
            return None
        return min(self.turn_timeout.total_seconds(), self.lease_s / 2)

    def start(self) -> None:
        """Start working in background threads; returns once they have started (and, on
        SQLite, opened their connections to the store)."""
        if self._engine is not None:
            return
        store = self.store
        options = RuntimeOptions(
            owner=self.owner,
            lease_s=self.lease_s,
            max_concurrent_activities=self.max_concurrent_activities,
            max_concurrent_workflows=self.max_concurrent_workflows,
            cache_size=self._cache_size,
            app_id=self.app_id,
            turn_limit_s=self._turn_limit_s(),
            max_activity_deliveries=self.max_activity_deliveries,
        )
        for fn in (*self._registry.workflows.values(), *self._registry.activities.values()):
            read_ahead(fn)  # (not in the first workflow's time)
        self._run = run = RunState()
        self._engine = engine = Engine(
            store=store,
            registry=self._registry,
            options=options,
            run=run,
            clock=self._clock,
            remote=self._remote,
            observer=Observer(self.metrics, self._clock, self.tracing),
        )
        if self.metrics is not None and self.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.metrics_port, self.metrics_host)
        self._starts = starts = LocalStarts(engine, options, run, self._clock)
        engine.watchdog.start(run.stopping)
        release_dead_local_owners(store)
        queued = [*self._registry.queues(), *self._registry.workflow_queues()]
        publish_queue_limits(store, queued, self.owner)  # (before the first claim)
        # advertised before the first claim: nobody takes its work as no one's meanwhile
        self._presence = Presence(store, engine.claims.advertisement, self.app_wait, self._clock)
        self._presence.start()
        threads = ThreadStarts(store)
        self._chores = Chores(store, self.owner, self._clock, self.retention)
        self._chores.start(threads.wrap)
        self._stop_on_advance = self._clock.on_advance(engine.wakeups.wake)
        loops: list[tuple[Callable[..., None], tuple[Any, ...], str]] = [
            (dispatch, (engine, starts, run, self._clock), "dispatcher")
        ]
        if isinstance(store, WorkNotifier):  # the store wakes the dispatcher itself, a hop sooner
            with contextlib.suppress(StoreError):
                self._stop_on_work = store.on_work(engine.wakeups.on_store_work)
        if self._stop_on_work is None:  # else a thread that waits for the store's news
            loops.append((watch, (engine, run), "watcher"))
        for target, args, name in loops:
            thread = threading.Thread(
                target=threads.wrap(target), args=args, name=f"treadle-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        threads.wait()  # (their connections opened: not in the first workflow's time)
        if self.local_starts:
            local.add(store.url, self)

    def wait_for_worker_ready(self, timeout: float | None = None) -> bool:
        """Whether the runtime is working (started, its threads running), waiting up to
        ``timeout`` seconds (default ``worker_ready_timeout``) for another thread to start
        it. :meth:`start` returns once it is: this is for the Dapr SDK's callers.

        Returns:
            True once it works; False if it did not within ``timeout``.
        """
        limit = self.worker_ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            if self._engine is not None and all(t.is_alive() for t in self._threads):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop gracefully: take no new work, let running activities and starts from clients
        under way finish (up to ``timeout`` seconds) and commit their results, then release
        every lease. Activities still running after that are left to be retried by the next
        runtime.

        ``timeout`` is real seconds, whatever the runtime's clock: it bounds how long this
        call blocks."""
        engine, starts = self._engine, self._starts
        if engine is None or starts is None:
            return
        local.remove(self.store.url, self)
        if self._stop_on_work is not None:
            self._stop_on_work()
            self._stop_on_work = None
        self._run.draining = True
        deadline = time.monotonic() + timeout
        while starts.busy(deadline) and time.monotonic() < deadline:
            engine.wakeups.wake()
            time.sleep(0.01)
        self._run.stopping.set()
        engine.wakeups.wake()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        starts.drop_handed_over()  # (left after the timeout: their leases go below)
        engine.executor.shutdown(wait=False)
        if self._presence is not None:
            self._presence.stop()
            self._presence = None
        if self._chores is not None:
            self._chores.stop()
            self._chores = None
        with contextlib.suppress(StoreError):
            self.store.release_leases(self.owner)
        if self._store is not None and not _is_store_object(self._store_arg):
            self._store.close()  # we opened it from a URL: give its connections back
            self._store = None
        if self._stop_on_advance is not None:
            self._stop_on_advance()
            self._stop_on_advance = None
        if self.metrics is not None:
            self.metrics.close()
        self._engine = self._starts = None

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

    # ---- starts from clients of this process ------------------------------------------
    def start_here(self, new: NewInstance) -> bool:
        """Create ``new`` with its first turn, run now on the caller's thread, in one commit.

        A client of this process calls it (see :mod:`treadle.store.local_starts`): the instance
        is durable when this returns True, as after ``Store.create_instance``, and this
        runtime holds it: its first activities are running, or handed to the dispatcher's
        next round if the engine was busy (see :mod:`treadle.runtime.starts`). False
        (nothing was written): the runtime does not take it (stopping, full, not its
        workflow, a scheduled or child start, an id in use, a first turn that creates
        instances), and the client creates the instance in the store instead; so also while
        another start is under way here.

        Raises:
            StoreError: the store failed; whether the instance exists is then unknown, as
                for a failed ``create_instance``.
        """
        generation = self._registry.workflow_generation  # (read before the code)
        fn = self._registry.workflows.get(new.name)
        engine, starts = self._engine, self._starts
        if (
            fn is None
            or new.name in self._registry.queued_workflows  # (admitted by its queue first)
            or engine is None
            or new.app_id != self.app_id
            or starts is None
            or self._run.draining
            or new.scheduled_start is not None
            or new.parent is not None
            or new.history
            or engine.cache.held_count >= self.max_concurrent_workflows
        ):
            return False
        # One start at a time: the others take the store's start at once, side by side (and
        # commit together on PostgreSQL). None waits for the engine's round under way.
        return starts.start(fn, new, generation)

    # ---- remote workers ----------------------------------------------------------------
    def complete_remote_turn(
        self,
        instance_id: str,
        actions: list[Action],
        custom_status: str | None,
        version: WorkflowVersion | None = None,
    ) -> bool:
        """Report the actions a remote worker returned for a turn (thread-safe), with the
        version it ran and every patch it found true (``WorkflowResponse.version``).

        Returns:
            False if no turn of that instance is outstanding (a late or duplicate answer).
        """
        engine = self._engine
        if engine is None or engine.remote is None:
            return False
        return engine.on_remote_answer(instance_id, actions, custom_status, version)

    def complete_remote_activity(self, item: ActivityWorkItem, event: HistoryEvent) -> None:
        """Report a remote activity's TaskCompleted/TaskFailed (thread-safe)."""
        engine = self._engine
        if engine is not None:
            engine.on_remote_activity_done(item, event)

    def abandon_remote_turn(self, instance_id: str, *, retry_after_s: float = 0.0) -> None:
        """Give up an outstanding remote turn (thread-safe): the instance is claimed and sent
        again, no sooner than ``retry_after_s`` seconds from now."""
        engine = self._engine
        if engine is not None and engine.remote is not None:
            engine.remote.abandon(instance_id, retry_after_s)

    def withdraw_remote_turn(self, instance_id: str) -> bool:
        """Give up the instance's turn if it waits for a remote worker to receive it
        (thread-safe): a suspend or resume then need not wait for a worker that has gone.
        Whether it was given up."""
        engine = self._engine
        if engine is None or engine.remote is None:
            return False
        return engine.remote.withdraw_unsent(instance_id)


def _is_store_object(value: object) -> bool:
    return value is not None and not isinstance(value, str)
