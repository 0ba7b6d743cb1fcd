"""Prometheus metrics of one runtime (a worker), in a private registry.

Imported only when a runtime is asked for metrics (``WorkflowRuntime(metrics=True)`` or
``metrics_port=...``, ``treadle worker --metrics-port``); it needs ``prometheus-client``
(the ``treadle[metrics]`` extra), which it imports only when the metrics are first read or
served (:attr:`WorkerMetrics.registry`): counting needs none of it, and its import costs a
worker's start-up thousands of steps' counting (see
``bench/results/metrics-overhead.txt``).

Dapr's names and labels, where Dapr has the metric (``app_id``, ``namespace``, and
``workflow_name``, ``activity_name`` or ``operation``, and ``status``; counts without a
``_total`` suffix and latencies in milliseconds, as Dapr exports them):
    ``dapr_runtime_workflow_operation_count``: requests to ``treadle serve``'s HTTP and gRPC
        APIs by ``operation`` (Dapr's ``create_workflow``, ``get_workflow``, ``add_event``,
        ``purge_workflow``, and treadle's ``terminate_workflow``, ``suspend_workflow``,
        ``resume_workflow``, which daprd does not count) and status ``success`` or
        ``failed``.
    ``dapr_runtime_workflow_operation_latency``: their latency in milliseconds.
    ``dapr_runtime_workflow_execution_count``: finished runs, by status ``success``,
        ``failed`` or ``terminated``.
    ``dapr_runtime_workflow_execution_latency``: milliseconds from a run's start to its end.
    ``dapr_runtime_workflow_activity_execution_count``: activity attempts, by status
        ``success`` or ``failed``.
    ``dapr_runtime_workflow_activity_execution_latency``: milliseconds an attempt ran (for an
        SDK worker's activity, from when ``treadle serve`` sent it to when the answer came).

Treadle's own:
    ``treadle_lease_takeovers_total``: instances claimed from a worker whose lease lapsed.
    ``treadle_commit_latency_seconds``: how long a commit of a round's turns took.
    ``treadle_queue_depth{kind,name}``: work nobody holds yet, by kind (``workflow`` or
        ``activity``) and name (read from the store on scrape).
    ``treadle_queue_oldest_age_seconds{kind,name}``: how long the oldest of it has waited.
    ``treadle_store_up``: 1 when the store answered the last scrape's queue read.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from treadle.core.history import TaskFailed
from treadle.core.records import record_class
from treadle.store.apps import WaitingWork

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric
    from prometheus_client.registry import Collector as _Collector

    from treadle.core.history import HistoryEvent
    from treadle.store.base import ActivityWorkItem
else:
    _Collector = object  # (prometheus_client registers any object with collect())

__all__ = ["DEFAULT_HOST", "WorkerMetrics", "serve_registry", "stop_serving"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
"""Where metrics are served unless told otherwise: this machine only (see the README)."""


LATENCY_BUCKETS_MS = (
    1,
    2,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10_000,
    30_000,
    60_000,
    300_000,
    1_800_000,
    3_600_000,
)
"""Histogram buckets of the Dapr latencies, in milliseconds."""


class WorkerMetrics:
    """The metrics of one runtime, in a private registry (see the module).

    Args:
        app_id: the ``app_id`` label.
        waiting: reads the work nobody holds, on scrape (``Store.waiting_work``); None to
            leave the queue metrics out.
    """

    def __init__(
        self,
        app_id: str = "",
        waiting: Callable[[datetime], list[WaitingWork]] | None = None,
    ) -> None:
        self._base = (app_id, os.environ.get("NAMESPACE", ""))
        self._series = _Series(self._base)
        self._executions = self._series.tables[_EXECUTION]
        self._activities = self._series.tables[_ACTIVITY]
        self._operations = self._series.tables[_OPERATION]
        self._commits = self._series.tables[_COMMIT].cell(())
        self.takeovers = self._series.takeovers
        """Instances claimed from a worker whose lease lapsed (``takeovers.inc()``)."""
        self._waiting = waiting
        self._registry: CollectorRegistry | None = None
        self._registry_lock = threading.Lock()
        self._server: Any = None

    @property
    def registry(self) -> CollectorRegistry:
        """The ``prometheus_client`` registry of these metrics, made (and
        ``prometheus_client`` imported) on first use."""
        with self._registry_lock:
            if self._registry is None:
                from prometheus_client import CollectorRegistry

                registry = CollectorRegistry()
                registry.register(self._series)
                if self._waiting is not None:
                    registry.register(_QueueCollector(self._waiting))
                self._registry = registry
            return self._registry

    # The record methods run on the engine's and the activities' threads, once or twice a
    # step: a dict lookup of the cell by its (name, status) and an append to its queue of
    # values, folded when read (see _Cell and bench/results/metrics-overhead.txt).
    def workflow_finished(self, name: str, status: str, seconds: float | None) -> None:
        """A run of the workflow ``name`` ended with ``status`` after ``seconds`` (if known)."""
        table = self._executions
        key = (name, status)
        cell = table.cells.get(key) or table.cell(key)
        cell.record(None if seconds is None else seconds * 1000.0)

    def activity_finished(self, name: str, status: str, seconds: float) -> None:
        """An attempt of the activity ``name`` ended with ``status`` after ``seconds``."""
        table = self._activities
        key = (name, status)
        (table.cells.get(key) or table.cell(key)).record(seconds * 1000.0)

    def activity_done(self, item: ActivityWorkItem, event: HistoryEvent, seconds: float) -> None:
        """An attempt of the activity ``item`` ended with ``event`` (TaskCompleted or
        TaskFailed) after ``seconds``: :meth:`activity_finished` as an activity thread calls
        it, in one call (every step)."""
        table = self._activities
        key = (item.name, "failed" if isinstance(event, TaskFailed) else "success")
        cell = table.cells.get(key) or table.cell(key)
        waiting = cell._waiting  # (as _Cell.record does, inline)
        waiting.append(seconds * 1000.0)
        if len(waiting) >= _FOLD_AT:
            with cell._lock:
                cell.fold()

    def operation(self, operation: str, status: str, seconds: float) -> None:
        """A request of the workflow operation ``operation`` (``create_workflow``, ...) was
        answered with ``status`` (``success`` or ``failed``) after ``seconds``."""
        table = self._operations
        key = (operation, status)
        (table.cells.get(key) or table.cell(key)).record(seconds * 1000.0)

    def commit_took(self, seconds: float) -> None:
        """A group commit of turns took ``seconds``."""
        self._commits.record(seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (reads the store: call off-loop)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = DEFAULT_HOST) -> int:
        """Serve ``/metrics`` over HTTP on ``addr``:``port`` (0: any free port) in a daemon
        thread; the port it listens on."""
        self._server, bound = serve_registry(self.registry, port, addr)
        return bound

    def close(self) -> None:
        """Stop serving, if serving."""
        server, self._server = self._server, None
        stop_serving(server)


def serve_registry(registry: CollectorRegistry, port: int, addr: str) -> tuple[Any, int]:
    """Serve ``registry`` at ``/metrics`` on ``addr``:``port`` in a daemon thread.

    Returns:
        the HTTP server (for :func:`stop_serving`) and the port it listens on.

    Raises:
        OSError: the address cannot be bound.
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server, int(server.server_address[1])


def stop_serving(server: Any) -> None:
    """Stop a server of :func:`serve_registry` (None: nothing to stop)."""
    if server is not None:
        server.shutdown()
        server.server_close()


@record_class
class _Family:
    """A counter and a histogram over the same labels (Dapr's ``*_count`` and
    ``*_latency``), or a histogram alone (no counter name)."""

    counter: str | None
    counter_doc: str
    histogram: str
    histogram_doc: str
    labels: tuple[str, ...]
    bounds: tuple[float, ...]


_DAPR = ("app_id", "namespace")
_OPERATION = _Family(
    "dapr_runtime_workflow_operation_count",
    "The number of successful/failed workflow operation requests.",
    "dapr_runtime_workflow_operation_latency",
    "The latencies of responses for workflow operation requests, in milliseconds.",
    (*_DAPR, "operation", "status"),
    LATENCY_BUCKETS_MS,
)
_EXECUTION = _Family(
    "dapr_runtime_workflow_execution_count",
    "The number of successful/failed/terminated workflow executions.",
    "dapr_runtime_workflow_execution_latency",
    "The total time taken to run a workflow to completion, in milliseconds.",
    (*_DAPR, "workflow_name", "status"),
    LATENCY_BUCKETS_MS,
)
_ACTIVITY = _Family(
    "dapr_runtime_workflow_activity_execution_count",
    "The number of successful/failed activity executions.",
    "dapr_runtime_workflow_activity_execution_latency",
    "The time taken to run an activity attempt, in milliseconds.",
    (*_DAPR, "activity_name", "status"),
    LATENCY_BUCKETS_MS,
)
_COMMIT = _Family(
    None,
    "",
    "treadle_commit_latency_seconds",
    "How long committing a round's workflow turns took.",
    (),
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_FAMILIES = (_OPERATION, _EXECUTION, _ACTIVITY, _COMMIT)


_FOLD_AT = 256
"""How many values a cell keeps unfolded at most (see :class:`_Cell`)."""


class _Cell:
    """The values of one label set: how many, and the histogram of those measured.

    A record appends its value to a queue, without a lock (``deque.append`` is one atomic
    step under the GIL); the values are folded into the counts and buckets under the table's
    lock when the metrics are read, or once ``_FOLD_AT`` of them wait (so that a worker whose
    metrics nobody reads keeps no more than that). A record is then one call and an append,
    where a locked update was several times that, on every step.
    """

    __slots__ = ("_bounds", "_lock", "_waiting", "buckets", "count", "measured", "total")

    def __init__(self, bounds: tuple[float, ...], lock: threading.Lock) -> None:
        self._bounds = bounds
        self._lock = lock
        self._waiting: deque[float | None] = deque()  # (None: counted, not measured)
        self.count = 0
        self.measured = 0
        self.total = 0.0
        self.buckets = [0] * (len(bounds) + 1)  # the last one: above every bound

    def record(self, value: float | None) -> None:
        """Count one, measuring ``value`` (None: counted, not measured)."""
        waiting = self._waiting
        waiting.append(value)
        if len(waiting) >= _FOLD_AT:
            with self._lock:
                self.fold()

    def fold(self) -> None:
        """Fold the values recorded so far into the counts (the table's lock is held)."""
        waiting, bounds, buckets = self._waiting, self._bounds, self.buckets
        while True:
            try:
                value = waiting.popleft()  # (atomic: a record on another thread meanwhile
            except IndexError:  # is folded now or by the next fold)
                return
            self.count += 1
            if value is not None:
                self.measured += 1
                self.total += value
                buckets[bisect_left(bounds, value)] += 1


class _Tally:
    """A count that only grows (thread-safe)."""

    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def inc(self) -> None:
        """Count one."""
        with self._lock:
            self.value += 1


class _Table:
    """The cells of one family by their own labels (after ``app_id`` and ``namespace``).

    A cell, once made, stays: the record methods look it up without the lock (a dict read
    is safe under the GIL) and make it under the lock the first time.
    """

    __slots__ = ("cells", "family", "lock")

    def __init__(self, family: _Family) -> None:
        self.family = family
        self.lock = threading.Lock()
        self.cells: dict[tuple[str, ...], _Cell] = {}

    def cell(self, key: tuple[str, ...]) -> _Cell:
        """The cell of ``key``, made if new."""
        with self.lock:
            cell = self.cells.get(key)
            if cell is None:
                cell = self.cells[key] = _Cell(self.family.bounds, self.lock)
            return cell

    def snapshot(self) -> list[tuple[tuple[str, ...], int, int, float, list[int]]]:
        """Each cell's labels, count, measured count, sum and buckets, at one moment."""
        with self.lock:
            for cell in self.cells.values():
                cell.fold()
            return [
                (k, c.count, c.measured, c.total, list(c.buckets)) for k, c in self.cells.items()
            ]


class _Series(_Collector):
    """Counters and histograms kept in plain objects: a record is a dict lookup and an append,
    folded into buckets when read (``prometheus_client``'s own cost several times that). Dapr's
    counters are exported under their exact names, without a ``_total`` suffix (as untyped
    series: ``prometheus_client`` would add the suffix to a counter's).

    Args:
        base: the values of the labels every Dapr series starts with (app id, namespace).
    """

    def __init__(self, base: tuple[str, ...]) -> None:
        self._base = base
        self.tables = {f: _Table(f) for f in _FAMILIES}
        self.takeovers = _Tally()

    def collect(self) -> Iterable[Metric]:
        """The counters' and histograms' current values."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

        takeovers = CounterMetricFamily(
            "treadle_lease_takeovers",
            "Workflow instances claimed from another worker whose lease lapsed.",
        )
        takeovers.add_metric([], self.takeovers.value)
        yield takeovers
        for family, table in self.tables.items():
            rows = table.snapshot()
            base = self._base if family.labels else ()
            keys = list(family.labels)
            if family.counter is not None:
                # untyped: prometheus_client names a counter family ``*_total``
                counter = Metric(family.counter, family.counter_doc, "untyped")
                for own, count, _, _, _ in rows:
                    labels = dict(zip(keys, (*base, *own), strict=True))
                    counter.add_sample(family.counter, labels, count)
                yield counter
            histogram = HistogramMetricFamily(family.histogram, family.histogram_doc, labels=keys)
            edges = [str(float(b)) for b in family.bounds] + ["+Inf"]
            for own, _, measured, total, buckets in rows:
                if measured:
                    cumulative = list(itertools.accumulate(buckets))
                    histogram.add_metric(
                        [*base, *own], list(zip(edges, cumulative, strict=True)), total
                    )
            yield histogram


class _QueueCollector(_Collector):
    """Reads the work nobody holds from the store on scrape."""

    def __init__(self, waiting: Callable[[datetime], list[WaitingWork]]) -> None:
        self._waiting = waiting

    def describe(self) -> Iterable[Metric]:
        """The metric families, without touching the store."""
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        """Read the store and report."""
        now = datetime.now(timezone.utc)
        try:
            work: list[WaitingWork] | None = self._waiting(now)
        except Exception:
            logger.warning("reading the waiting work for /metrics failed", exc_info=True)
            work = None
        return self._families(work, now)

    def _families(
        self, work: list[WaitingWork] | None, now: datetime | None = None
    ) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        depth = GaugeMetricFamily(
            "treadle_queue_depth",
            "Work nobody holds yet: instances with messages, or activity tasks, by name.",
            labels=["kind", "name"],
        )
        age = GaugeMetricFamily(
            "treadle_queue_oldest_age_seconds",
            "How long the oldest work nobody holds has waited, by kind and name.",
            labels=["kind", "name"],
        )
        if work is not None and now is not None:
            counts: dict[tuple[str, str], int] = {}
            oldest: dict[tuple[str, str], datetime] = {}
            for group in work:
                key = (group.kind.value, group.name)
                counts[key] = counts.get(key, 0) + group.count
                oldest[key] = min(oldest.get(key, group.since), group.since)
            for key, count in sorted(counts.items()):
                depth.add_metric(list(key), count)
                age.add_metric(list(key), max(0.0, (now - oldest[key]).total_seconds()))
        up = GaugeMetricFamily("treadle_store_up", "1 when the store answered the last read.")
        up.add_metric([], 0 if work is None else 1)
        yield depth
        yield age
        yield up
