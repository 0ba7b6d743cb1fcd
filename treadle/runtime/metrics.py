"""Prometheus metrics of one runtime (a worker), in a private registry.

Imported only when a runtime is asked for metrics (``WorkflowRuntime(metrics=True)`` or
``metrics_port=...``, ``treadle worker --metrics-port``); it needs ``prometheus-client``
(the ``treadle[metrics]`` extra).

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

import bisect
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from treadle.store.apps import WaitingWork

__all__ = ["CONTENT_TYPE", "DEFAULT_HOST", "WorkerMetrics", "serve_registry", "stop_serving"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :meth:`WorkerMetrics.render`'s output."""

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
        self.registry = CollectorRegistry()
        self._base = (app_id, os.environ.get("NAMESPACE", ""))
        self._series = _Series()
        self.registry.register(self._series)
        self.takeovers = Counter(
            "treadle_lease_takeovers",
            "Workflow instances claimed from another worker whose lease lapsed.",
            registry=self.registry,
        )
        if waiting is not None:
            self.registry.register(_QueueCollector(waiting))
        self._server: Any = None

    def workflow_finished(self, name: str, status: str, seconds: float | None) -> None:
        """A run of the workflow ``name`` ended with ``status`` after ``seconds`` (if known)."""
        ms = None if seconds is None else seconds * 1000.0
        self._series.add(_EXECUTION, (*self._base, name, status), ms)

    def activity_finished(self, name: str, status: str, seconds: float) -> None:
        """An attempt of the activity ``name`` ended with ``status`` after ``seconds``."""
        self._series.add(_ACTIVITY, (*self._base, name, status), seconds * 1000.0)

    def operation(self, operation: str, status: str, seconds: float) -> None:
        """A request of Dapr's ``operation`` (``create_workflow``, ...) was answered with
        ``status`` (``success`` or ``failed``) after ``seconds``."""
        self._series.add(_OPERATION, (*self._base, operation, status), seconds * 1000.0)

    def commit_took(self, seconds: float) -> None:
        """A group commit of turns took ``seconds``."""
        self._series.add(_COMMIT, (), seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (reads the store: call off-loop)."""
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
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server, int(server.server_address[1])


def stop_serving(server: Any) -> None:
    """Stop a server of :func:`serve_registry` (None: nothing to stop)."""
    if server is not None:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True, slots=True)
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


class _Cell:
    """The values of one label set: how many, and the histogram of those measured."""

    __slots__ = ("buckets", "count", "measured", "total")

    def __init__(self, size: int) -> None:
        self.count = 0
        self.measured = 0
        self.total = 0.0
        self.buckets = [0] * (size + 1)  # the last one: above every bound


class _Series(Collector):
    """Counters and histograms kept in plain dicts under one lock: a record is a dict lookup
    and a bisection (``prometheus_client``'s own cost several times that). Dapr's counters
    are exported under their exact names, without a ``_total`` suffix (as untyped series:
    ``prometheus_client`` would add the suffix to a counter's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[_Family, dict[tuple[str, ...], _Cell]] = {f: {} for f in _FAMILIES}

    def add(self, family: _Family, labels: tuple[str, ...], value: float | None) -> None:
        """Count one under ``labels``, and measure ``value`` if given."""
        with self._lock:
            cells = self._cells[family]
            cell = cells.get(labels)
            if cell is None:
                cell = cells[labels] = _Cell(len(family.bounds))
            cell.count += 1
            if value is not None:
                cell.measured += 1
                cell.total += value
                cell.buckets[bisect.bisect_left(family.bounds, value)] += 1

    def collect(self) -> Iterable[Metric]:
        """The counters' and histograms' current values."""
        with self._lock:
            snapshot = {
                f: [(k, c.count, c.measured, c.total, list(c.buckets)) for k, c in cells.items()]
                for f, cells in self._cells.items()
            }
        for family, rows in snapshot.items():
            keys = list(family.labels)
            if family.counter is not None:
                # untyped: prometheus_client names a counter family ``*_total``
                counter = Metric(family.counter, family.counter_doc, "untyped")
                for labels, count, _, _, _ in rows:
                    counter.add_sample(family.counter, dict(zip(keys, labels, strict=True)), count)
                yield counter
            histogram = HistogramMetricFamily(family.histogram, family.histogram_doc, labels=keys)
            for labels, _, measured, total, buckets in rows:
                if measured:
                    cumulative = list(itertools.accumulate(buckets))
                    edges = [str(float(b)) for b in family.bounds] + ["+Inf"]
                    histogram.add_metric(
                        list(labels), list(zip(edges, cumulative, strict=True)), total
                    )
            yield histogram


class _QueueCollector(Collector):
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
