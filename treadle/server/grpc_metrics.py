"""Dapr's operation metrics of the gRPC service: each call of a workflow operation (start, get,
raise event, terminate, suspend, resume, purge) counted in the runtime's
``dapr_runtime_workflow_operation_*`` metrics (see :mod:`treadle.runtime.metrics`).

Kept apart from :mod:`treadle.server.metrics` so that the gRPC server imports no
``prometheus_client`` of its own: without metrics a method is served as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from treadle.runtime.metrics import WorkerMetrics

__all__ = ["counted"]


Req = TypeVar("Req")
Ctx = TypeVar("Ctx")
Resp = TypeVar("Resp")


def counted(
    metrics: WorkerMetrics | None, operation: str, fn: Callable[[Req, Ctx], Resp]
) -> Callable[[Req, Ctx], Resp]:
    """``fn`` (a gRPC method: request, context), counting each call in ``metrics`` as
    ``operation``: ``failed`` if it raised (a refusal included), else ``success``; ``fn``
    itself without metrics."""
    if metrics is None:
        return fn
    record = metrics.operation

    def call(request: Req, context: Ctx) -> Resp:
        began = time.perf_counter()
        try:
            response = fn(request, context)
        except BaseException:
            record(operation, "failed", time.perf_counter() - began)
            raise
        record(operation, "success", time.perf_counter() - began)
        return response

    return call
