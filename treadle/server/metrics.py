"""Prometheus metrics of a treadle server, in a private registry per server.

Each :class:`ServerMetrics` owns its own ``CollectorRegistry`` (never the process-global one),
so several apps in one process, or one test after another, never collide. This module imports
``prometheus_client`` but not the ASGI stack, so the gRPC server can count into the same object.

Metrics:
    ``treadle_http_requests_total{route,method,status}``: HTTP requests by route template.
    ``treadle_workflows_started_total``: instances started through the server.
    ``treadle_workflow_events_raised_total``: external events raised through the server.
    ``treadle_workflow_instances{status}``: unfinished instances (PENDING, RUNNING, SUSPENDED,
        STALLED), counted on scrape; finished ones grow without bound and are not counted.
    ``treadle_workflow_instances_capped{status}``: 1 when that count reached the cap.
    ``treadle_store_up``: 1 when the last count could read the store, else 0.

With ``runtime``, the metrics of the server's runtime (:mod:`treadle.runtime.metrics`:
Dapr's workflow, activity and operation metrics, takeovers, commits, waiting work) are served
with these, and the HTTP requests of Dapr's workflow operations are counted there too (the
gRPC service counts its calls there: :mod:`treadle.server.grpc_metrics`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from treadle.client import WorkflowClient, WorkflowStatus
from treadle.runtime.metrics import WorkerMetrics, serve_registry, stop_serving

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :meth:`ServerMetrics.render`'s output."""

ACTIVE_STATUSES = (
    WorkflowStatus.PENDING,
    WorkflowStatus.RUNNING,
    WorkflowStatus.SUSPENDED,
    WorkflowStatus.STALLED,
)


class ServerMetrics:
    """The metrics of one server, in a private registry.

    Args:
        client: when given, instances by status are counted on scrape through it.
        count_cap: stop counting a status after this many instances (keeps a scrape cheap).
        cache_s: reuse the instance counts for this long between scrapes.
        runtime: the metrics of the server's runtime, rendered with these.
    """

    def __init__(
        self,
        client: WorkflowClient | None = None,
        *,
        count_cap: int = 10_000,
        cache_s: float = 5.0,
        runtime: WorkerMetrics | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.runtime = runtime
        if runtime is not None:
            self.registry.register(_Forward(runtime.registry))
        self.http_requests = Counter(
            "treadle_http_requests",
            "HTTP requests, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.workflows_started = Counter(
            "treadle_workflows_started",
            "Workflow instances started through the server.",
            registry=self.registry,
        )
        self.events_raised = Counter(
            "treadle_workflow_events_raised",
            "External events raised to workflow instances through the server.",
            registry=self.registry,
        )
        if client is not None:
            self.registry.register(InstanceCountCollector(client, cap=count_cap, cache_s=cache_s))
        self._server: Any = None

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count a request to a Dapr workflow operation (by its route template) in the
        runtime's ``dapr_runtime_workflow_operation_*`` metrics, if there are some."""
        runtime = self.runtime
        if runtime is None or "/workflows/" not in route:
            return
        operation = _operation(route, method)
        if operation is not None:
            runtime.operation(operation, "success" if status < 400 else "failed", seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (may query the store: call off-loop)."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str) -> int:
        """Serve the registry at ``/metrics`` on ``addr``:``port`` (0: any free port) in a
        daemon thread, besides the HTTP API's ``/metrics``; the port it listens on."""
        self._server, bound = serve_registry(self.registry, port, addr)
        return bound

    def close(self) -> None:
        """Stop serving on the port of :meth:`serve`, if serving."""
        server, self._server = self._server, None
        stop_serving(server)


_SUFFIXES = (
    ("/start", "create_workflow"),
    ("/raiseEvent/{event_name}", "add_event"),
    ("/purge", "purge_workflow"),
    ("/terminate", "terminate_workflow"),
    ("/pause", "suspend_workflow"),
    ("/resume", "resume_workflow"),
)


def _operation(route: str, method: str) -> str | None:
    """The name of the workflow operation a route template of Dapr's HTTP API serves, if it
    is one (treadle's own ``/api/v1`` routes, the dashboard's, are not counted)."""
    if not route.startswith("/v1"):
        return None
    for suffix, operation in _SUFFIXES:
        if route.endswith(suffix):
            return operation
    if method == "GET" and route.endswith("/{instance_id}"):
        return "get_workflow"
    return None


class _Forward(Collector):
    """The metrics of another registry, collected on scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        """Every metric of the other registry."""
        return self._registry.collect()


class InstanceCountCollector(Collector):
    """Counts unfinished instances by status when scraped, through the client's list API.

    Args:
        client: the client to count through.
        cap: the most instances counted per status.
        cache_s: how long a count is reused.
    """

    def __init__(self, client: WorkflowClient, *, cap: int, cache_s: float) -> None:
        if cap < 1:
            raise ValueError("count_cap must be >= 1")
        self._client = client
        self._cap = cap
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[WorkflowStatus, int] | None] | None = None

    def describe(self) -> Iterable[Metric]:
        """The metric families, without touching the store."""
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        """Count (or reuse a recent count) and report it."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._cache_s:
                self._cached = (now, self._count())
            counts = self._cached[1]
        return self._families(counts)

    def _count(self) -> dict[WorkflowStatus, int] | None:
        try:
            return {status: self._count_status(status) for status in ACTIVE_STATUSES}
        except Exception:
            # A scrape must not fail because the database is down: report store_up 0.
            logger.warning("counting workflow instances for /metrics failed", exc_info=True)
            return None

    def _count_status(self, status: WorkflowStatus) -> int:
        total = 0
        token: str | None = None
        while total < self._cap:
            page = self._client.list_workflows(
                status=status, page_size=min(1000, self._cap - total), continuation_token=token
            )
            total += len(page.states)
            token = page.continuation_token
            if token is None:
                break
        return min(total, self._cap)

    def _families(self, counts: dict[WorkflowStatus, int] | None) -> Iterator[Metric]:
        instances = GaugeMetricFamily(
            "treadle_workflow_instances",
            "Unfinished workflow instances by status (counted on scrape, up to a cap).",
            labels=["status"],
        )
        capped = GaugeMetricFamily(
            "treadle_workflow_instances_capped",
            "1 when the instance count of a status reached the cap (the true count is larger).",
            labels=["status"],
        )
        for status in ACTIVE_STATUSES:
            if counts is not None:
                instances.add_metric([status.name], counts[status])
                capped.add_metric([status.name], 1 if counts[status] >= self._cap else 0)
        up = GaugeMetricFamily("treadle_store_up", "1 when the store answered the last count.")
        up.add_metric([], 0 if counts is None else 1)
        yield instances
        yield capped
        yield up
