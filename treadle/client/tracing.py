"""The client's ``create_orchestration`` span, when the caller is in a traced span.

Without ``opentelemetry`` imported a start costs one dictionary lookup here, without a
current OpenTelemetry span one look at the current context, and records no trace context:
the worker that runs the first turn then makes the run span a root (with tracing on). With
one, the start is a ``create_orchestration||NAME`` span (kind CLIENT, durabletask-go's name
and attributes), child of the current span, and its context is the parent the run's
``ExecutionStarted`` records, so the run's spans join the caller's trace. The span goes to
the global ``TracerProvider``; without one, the current span itself is the run's parent.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from treadle.core.history import TraceContext

__all__ = ["create_span", "may_trace"]


def may_trace() -> bool:
    """Whether a start may be traced: ``opentelemetry`` is imported and a valid span is
    current. When not, :func:`create_span` records nothing, and a start need not enter it
    (a runtime that traces imports OpenTelemetry, but its client's starts are mostly made
    outside any span: this check is a tenth of entering :func:`create_span`)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return False
    return bool(trace.get_current_span().get_span_context().is_valid)


@contextlib.contextmanager
def create_span(name: str, instance_id: str) -> Iterator[TraceContext | None]:
    """Around a start of workflow ``name`` as ``instance_id``: the trace context its
    ExecutionStarted records (the ``create_orchestration`` span's), or None if the caller
    is not traced."""
    if not may_trace():
        yield None
        return
    from opentelemetry import trace

    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        yield None
        return
    tracer = trace.get_tracer("treadle")
    with tracer.start_as_current_span(
        f"create_orchestration||{name}",
        kind=trace.SpanKind.CLIENT,
        attributes={
            "durabletask.type": "orchestration",
            "durabletask.task.name": name,
            "durabletask.task.instance_id": instance_id,
        },
    ) as span:
        context = span.get_span_context()
        if not context.is_valid:  # (no global tracer provider: the caller's span is the parent)
            context = current
        state = context.trace_state.to_header() if context.trace_state else ""
        yield TraceContext(
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}",
            "",
            state or None,
        )
