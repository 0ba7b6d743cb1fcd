"""Tracing: OpenTelemetry spans of a workflow, one trace from the caller to the last activity.

``WorkflowRuntime(tracing=True)`` emits a span per run (``orchestration||NAME``), per
activity attempt (``activity||NAME``), per timer (``timer``) and per child run, named and
attributed as Dapr's durabletask SDKs name theirs. ``schedule_new_workflow`` called inside a
span starts a ``create_orchestration||NAME`` span, the parent of the run. The trace context
is kept in the workflow's history, so the spans stay one trace across turns, workers and
restarts. Here the spans go to an in-memory exporter and are printed as a tree; in
production, configure an OTLP exporter (or run under ``opentelemetry-instrument``).

Run: ``python examples/tracing.py`` (needs ``pip install 'treadle[otel]' opentelemetry-sdk``).
"""

import os
import tempfile
from collections.abc import Generator
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'tracing.db')}"
)

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

runtime = wf.WorkflowRuntime(STORE, tracing=True)  # spans to the global TracerProvider
attempts = {"charge": 0}


@runtime.activity
def charge(ctx: wf.WorkflowActivityContext, amount: int) -> str:
    attempts["charge"] += 1
    if attempts["charge"] == 1:
        raise ConnectionError("payment service unavailable")
    return f"charged {amount}"


@runtime.activity
def pack(ctx: wf.WorkflowActivityContext, item: str) -> str:
    return f"{item} packed"


@runtime.workflow
def ship(ctx: wf.DaprWorkflowContext, item: str) -> Generator[wf.Task[Any], Any, str]:
    return (yield ctx.call_activity(pack, input=item))


@runtime.workflow
def order(ctx: wf.DaprWorkflowContext, item: str) -> Generator[wf.Task[Any], Any, list[str]]:
    retry = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=50), max_number_of_attempts=3
    )
    paid = yield ctx.call_activity(charge, input=40, retry_policy=retry)
    yield ctx.create_timer(timedelta(milliseconds=100))  # (a cooling-off period)
    shipped = yield ctx.call_child_workflow(ship, input=item)
    return [paid, shipped]


def print_tree(spans: list[ReadableSpan]) -> None:
    """Each span under its parent, with its status where it is an error."""
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)

    def show(span: ReadableSpan, depth: int) -> None:
        error = f"  ERROR {span.status.description}" if span.status.description else ""
        print(f"{'  ' * depth}{span.name}{error}")
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)


if __name__ == "__main__":
    runtime.start()
    try:
        client = wf.DaprWorkflowClient(STORE)
        with trace.get_tracer("shop").start_as_current_span("POST /checkout"):
            iid = client.schedule_new_workflow(order, input="lamp")
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        assert state is not None
        print(f"Order {state.runtime_status.name}: {state.serialized_output}")
    finally:
        runtime.shutdown()
    spans = list(exporter.get_finished_spans())
    print(f"One trace: {len({s.context.trace_id for s in spans}) == 1} ({len(spans)} spans)")
    print_tree(spans)
