"""The benchmark's workflows and activities, as a treadle application.

The driver schedules them by name; the worker processes (``python -m bench.worker``) register
them on their runtime with :func:`build_runtime`.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from typing import Any

import treadle as wf

# ---- W1: the seed's task chain ---------------------------------------------------------


def step1(ctx: wf.WorkflowActivityContext, x: int) -> int:
    """First link of the chain."""
    return x + 1


def step2(ctx: wf.WorkflowActivityContext, x: int) -> int:
    """Second link of the chain."""
    return x * 2


def step3(ctx: wf.WorkflowActivityContext, x: int) -> int:
    """Third link of the chain."""
    return x ^ 2


def task_chain(ctx: wf.WorkflowContext, x: int) -> Generator[wf.Task[Any], Any, list[int]]:
    """The seed's task chain: three activities in succession."""
    r1 = yield ctx.call_activity(step1, input=x)
    r2 = yield ctx.call_activity(step2, input=r1)
    r3 = yield ctx.call_activity(step3, input=r2)
    return [r1, r2, r3]


def task_chain_result(x: int) -> list[int]:
    """What :func:`task_chain` returns for ``x``."""
    return [x + 1, (x + 1) * 2, ((x + 1) * 2) ^ 2]


# ---- W2: fan-out/fan-in ----------------------------------------------------------------


def get_work_batch(ctx: wf.WorkflowActivityContext, batch_size: int) -> list[int]:
    """The work items: 1..batch_size."""
    return [i + 1 for i in range(batch_size)]


def process_work_item(ctx: wf.WorkflowActivityContext, work_item: int) -> int:
    """One item's work (no sleep: the benchmark measures the engine)."""
    return work_item * 2


def process_results(ctx: wf.WorkflowActivityContext, total: int) -> int:
    """The aggregation step."""
    return total


def batch_processing(ctx: wf.WorkflowContext, n: int) -> Generator[wf.Task[Any], Any, int]:
    """The seed's fan-out/fan-in: one batch activity, n parallel ones, one aggregate."""
    batch = yield ctx.call_activity(get_work_batch, input=n)
    outputs = yield wf.when_all([ctx.call_activity(process_work_item, input=i) for i in batch])
    total = yield ctx.call_activity(process_results, input=sum(outputs))
    return int(total)


def batch_processing_result(n: int) -> int:
    """What :func:`batch_processing` returns for ``n``."""
    return n * (n + 1)


# ---- W3 and W4: long chains ------------------------------------------------------------


def increment(ctx: wf.WorkflowActivityContext, x: int) -> int:
    """One step of a long chain."""
    return x + 1


def long_chain(ctx: wf.WorkflowContext, n: int) -> Generator[wf.Task[Any], Any, int]:
    """``n`` sequential activity steps."""
    x = 0
    for _ in range(n):
        x = yield ctx.call_activity(increment, input=x)
    return int(x)


def recovery_chain(ctx: wf.WorkflowContext, n: int) -> Generator[wf.Task[Any], Any, int]:
    """``n`` sequential steps whose activity logs each execution (W4)."""
    x = 0
    for _ in range(n):
        x = yield ctx.call_activity("logged_increment", input=x)
    return int(x)


class ExecutionLog:
    """Appends one line per activity execution: its ``task_execution_id``.

    Each line is one unbuffered ``O_APPEND`` write, so a line is either whole in the file
    or absent after the process is killed with SIGKILL.
    """

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def logged_increment(self, ctx: wf.WorkflowActivityContext, x: int) -> int:
        """Like :func:`increment`, after logging this execution."""
        os.write(self._fd, f"{ctx.task_execution_id}\n".encode())
        return x + 1

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def traced_provider(ratio: float = 1.0) -> Any:
    """An OpenTelemetry SDK tracer provider whose spans go through a batch processor to an
    exporter that drops them: what tracing costs a worker, short of the network. ``ratio``:
    the share of traces sampled (``ParentBased(TraceIdRatioBased(ratio))``)."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Dropped(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    return provider


def build_runtime(
    store_url: str, *, execution_log: ExecutionLog | None = None
) -> wf.WorkflowRuntime:
    """A runtime on ``store_url`` with every benchmark workflow and activity registered."""
    # the observability A/B (bench.observability): metrics and traces on or off
    # (``metrics``: metrics alone, to tell the two costs apart; ``sampled``: metrics, and
    # traces with one in ten sampled; ``traces``: traces alone)
    mode = os.environ.get("TREADLE_BENCH_OBSERVABILITY", "0")
    provider = None
    if mode in ("1", "sampled", "traces"):
        provider = traced_provider(0.1 if mode == "sampled" else 1.0)
    runtime = wf.WorkflowRuntime(
        store_url, metrics=mode in ("1", "metrics", "sampled"), tracer_provider=provider
    )
    for workflow in (task_chain, batch_processing, long_chain, recovery_chain):
        runtime.register_workflow(workflow)
    for activity in (
        step1,
        step2,
        step3,
        get_work_batch,
        process_work_item,
        process_results,
        increment,
    ):
        runtime.register_activity(activity)
    if execution_log is not None:
        runtime.register_activity(execution_log.logged_increment, name="logged_increment")
    return runtime
