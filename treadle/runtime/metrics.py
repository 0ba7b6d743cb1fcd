"""Prometheus metrics of one runtime (a worker), in a private registry.

Imported only when a runtime is asked for metrics (``WorkflowRuntime(metrics=True)`` or
``metrics_port=...``, ``treadle worker --metrics-port``); it needs ``prometheus-client``
(the ``treadle[metrics]`` extra).

Dapr's names and labels, where Dapr has the metric (``app_id``, ``namespace``, and
``workflow_name``, ``activity_name`` or ``operation``, and ``status``; counters without a
``_total`` suffix and latencies in milliseconds, as Dapr exports them):
    ``dapr_runtime_workflow_operation_count``: requests to ``treadle serve``'s HTTP API by
        ``operation`` (``create_workflow``, ``get_workflow``, ``add_event``,
        ``purge_workflow``) and status ``success`` or ``failed``.
    ``dapr_runtime_workflow_operation_latency``: their latency in milliseconds.
    ``dapr_runtime_workflow_execution_count``: finished runs, by status ``success``,
        ``failed`` or ``terminated``.
    ``dapr_runtime_workflow_execution_latency``: milliseconds from a run's start to its end.
    ``dapr_runtime_workflow_activity_execution_count``: activity attempts, by status
        ``success`` or ``failed``.
    ``dapr_runtime_workflow_activity_execution_latency``: milliseconds an attempt ran.

Treadle's own:
    ``treadle_lease_takeovers_total``: instances claimed from a worker whose lease lapsed.
    ``treadle_commit_latency_seconds``: how long a commit of a round's turns took.
    ``treadle_queue_depth{kind,name}``: work nobody holds yet, by kind (``workflow`` or
        ``activity``) and name (read from the store on scrape).
    ``treadle_queue_oldest_age_seconds{kind,name}``: how long the oldest of it has waited.
    ``treadle_store_up``: 1 when the store answered the last scrape's queue read.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from treadle.store.apps import WaitingWork

__all__ = ["CONTENT_TYPE", "WorkerMetrics"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :meth:`WorkerMetrics.render`'s output."""

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

OPERATION_COUNT = "dapr_runtime_workflow_operation_count"
EXECUTION_COUNT = "dapr_runtime_workflow_execution_count"
ACTIVITY_COUNT = "dapr_runtime_workflow_activity_execution_count"


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
        self._counts = _Counts()
        self.registry.register(self._counts)
        self._execution_latency = Histogram(
            "dapr_runtime_workflow_execution_latency",
            "The total time taken to run a workflow to completion, in milliseconds.",
            ["app_id", "namespace", "workflow_name", "status"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self._activity_latency = Histogram(
            "dapr_runtime_workflow_activity_execution_latency",
            "The time taken to run an activity attempt, in milliseconds.",
            ["app_id", "namespace", "activity_name", "status"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self._operation_latency = Histogram(
            "dapr_runtime_workflow_operation_latency",
            "The latencies of responses to workflow operation requests, in milliseconds.",
            ["app_id", "namespace", "operation", "status"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.takeovers = Counter(
            "treadle_lease_takeovers",
            "Workflow instances claimed from another worker whose lease lapsed.",
            registry=self.registry,
        )
        self.commit_latency = Histogram(
            "treadle_commit_latency_seconds",
            "How long committing a round's workflow turns took.",
            registry=self.registry,
        )
        if waiting is not None:
            self.registry.register(_QueueCollector(waiting))
        self._server: Any = None

    def workflow_finished(self, name: str, status: str, seconds: float | None) -> None:
        """A run of the workflow ``name`` ended with ``status`` after ``seconds`` (if known)."""
        labels = (*self._base, name, status)
        self._counts.add(EXECUTION_COUNT, labels)
        if seconds is not None:
            self._execution_latency.labels(*labels).observe(seconds * 1000.0)

    def activity_finished(self, name: str, status: str, seconds: float) -> None:
        """An attempt of the activity ``name`` ended with ``status`` after ``seconds``."""
        labels = (*self._base, name, status)
        self._counts.add(ACTIVITY_COUNT, labels)
        self._activity_latency.labels(*labels).observe(seconds * 1000.0)

    def operation(self, operation: str, status: str, seconds: float) -> None:
        """A request of Dapr's ``operation`` (``create_workflow``, ...) was answered with
        ``status`` (``success`` or ``failed``) after ``seconds``."""
        labels = (*self._base, operation, status)
        self._counts.add(OPERATION_COUNT, labels)
        self._operation_latency.labels(*labels).observe(seconds * 1000.0)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (reads the store: call off-loop)."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` over HTTP on ``port`` (0: any free one) in a daemon thread;
        the port it listens on."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        """Stop serving, if serving."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


_COUNT_LABELS = {
    OPERATION_COUNT: (
        "The number of successful/failed workflow operation requests.",
        ("app_id", "namespace", "operation", "status"),
    ),
    EXECUTION_COUNT: (
        "The number of successful/failed/terminated workflow executions.",
        ("app_id", "namespace", "workflow_name", "status"),
    ),
    ACTIVITY_COUNT: (
        "The number of successful/failed activity executions.",
        ("app_id", "namespace", "activity_name", "status"),
    ),
}


class _Counts(Collector):
    """Dapr's counters, exported under their exact names (no ``_total`` suffix)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[str, ...], int]] = {n: {} for n in _COUNT_LABELS}

    def add(self, name: str, labels: tuple[str, ...]) -> None:
        """Count one under ``labels``."""
        with self._lock:
            values = self._values[name]
            values[labels] = values.get(labels, 0) + 1

    def collect(self) -> Iterable[Metric]:
        """The counters' current values."""
        with self._lock:
            snapshot = {n: dict(v) for n, v in self._values.items()}
        for name, (doc, keys) in _COUNT_LABELS.items():
            metric = Metric(name, doc, "counter")
            for labels, value in snapshot[name].items():
                metric.add_sample(name, dict(zip(keys, labels, strict=True)), value)
            yield metric


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
