"""OpenTelemetry traces of a real runtime, on SQLite and PostgreSQL, read with the SDK's
in-memory exporter: a workflow's spans (run, activity attempts, timer, child run) are one
trace across a worker restart, retries give a span per attempt, failures are ERROR, and with
tracing off the history records no trace context."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode

import treadle as wf
from treadle.core.history import ExecutionStarted, event_to_json
from treadle.store import open_store

from .conftest import EVERY_BACKEND

pytestmark = pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)

WAIT_S = 30.0


def _exporter() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _spans_until(
    exporter: InMemorySpanExporter, done: Callable[[Sequence[ReadableSpan]], bool]
) -> Sequence[ReadableSpan]:
    """The finished spans once ``done`` says so (a run span follows the commit a client
    sees); bounded."""
    deadline = time.monotonic() + WAIT_S
    while True:
        spans = exporter.get_finished_spans()
        if done(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.02)


def _named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _has(name: str, count: int = 1) -> Callable[[Sequence[ReadableSpan]], bool]:
    return lambda spans: len(_named(spans, name)) >= count


def greet(ctx: wf.WorkflowActivityContext, who: str) -> str:
    return f"hello {who}"


def child(ctx: wf.WorkflowContext, who: str) -> Any:
    return (yield ctx.call_activity(greet, input=who))


def order(ctx: wf.WorkflowContext, who: str) -> Any:
    first = yield ctx.call_activity(greet, input=who)
    yield ctx.create_timer(timedelta(milliseconds=20))
    second = yield ctx.call_child_workflow(child, input="child")
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    third = yield ctx.call_activity(greet, input="again")
    return [first, second, third]


def _register(runtime: wf.WorkflowRuntime) -> None:
    runtime.register_activity(greet)
    runtime.register_workflow(child)
    runtime.register_workflow(order)


def _hex(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def test_one_trace_across_a_worker_restart(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    provider_1, exported_1 = _exporter()
    first = make_runtime(start=False, tracer_provider=provider_1)
    _register(first)
    first.start()
    caller_provider, exported_caller = _exporter()
    with caller_provider.get_tracer("app").start_as_current_span("request") as request:
        iid = client.schedule_new_workflow(order, input="ada")
    client.wait_for_workflow_start(iid, timeout_in_seconds=WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        state = client.get_workflow_state(iid)
        if state is not None and state.serialized_custom_status == '"waiting"':
            break
        time.sleep(0.02)
    before = _spans_until(exported_1, _has("orchestration||child"))
    first.shutdown(timeout=5)  # (a new worker, with a new exporter, takes the rest)

    provider_2, exported_2 = _exporter()
    second = make_runtime(start=False, tracer_provider=provider_2)
    _register(second)
    second.start()
    client.raise_workflow_event(iid, "go")
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT_S)
    assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
    after = _spans_until(exported_2, _has("orchestration||order"))

    (run,) = _named(after, "orchestration||order")
    (child_run,) = _named(before, "orchestration||child")
    (timer,) = _named(before, "timer")
    activities = _named(before, "activity||greet") + _named(after, "activity||greet")
    assert len(activities) == 3
    trace_ids = {s.context.trace_id for s in (run, child_run, timer, *activities)}
    assert trace_ids == {request.get_span_context().trace_id}
    # the run span is the one whose id history recorded: the parent of what ran before the
    # restart (on the first worker) and after it (on the second)
    assert run.parent is not None
    for span in (child_run, timer, *activities):
        if span.attributes and span.attributes["durabletask.task.instance_id"] == iid:
            assert span.parent is not None and span.parent.span_id == run.context.span_id
    assert child_run.parent is not None and child_run.parent.span_id == run.context.span_id
    (child_activity,) = [
        a
        for a in activities
        if a.attributes and a.attributes["durabletask.task.instance_id"] != iid
    ]
    assert child_activity.parent is not None
    assert child_activity.parent.span_id == child_run.context.span_id
    # its parent: the caller's span (the client's own span would go to the global tracer
    # provider, which is not set here)
    store = open_store(client.operations.store.url)
    try:
        started = next(e for e in store.get_history(iid) if isinstance(e, ExecutionStarted))
    finally:
        store.close()
    assert started.trace is not None
    assert started.trace.span_id == _hex(run.context.span_id, 16)
    assert started.trace.trace_id == _hex(request.get_span_context().trace_id, 32)
    assert run.parent.span_id == int(started.trace.parent_span_id, 16)
    assert run.parent.span_id == request.get_span_context().span_id
    # the run span covers the run, from the start history records to its end
    assert run.start_time is not None and run.end_time is not None
    assert run.start_time == int(started.timestamp.timestamp() * 1e9)
    assert run.start_time < min(a.start_time or 0 for a in activities)
    assert run.kind is SpanKind.SERVER
    assert run.attributes is not None
    assert run.attributes["durabletask.type"] == "orchestration"
    assert run.attributes["durabletask.task.name"] == "order"
    assert run.attributes["durabletask.runtime_status"] == "COMPLETED"
    assert timer.attributes is not None and timer.attributes["durabletask.type"] == "timer"
    assert "durabletask.fire_at" in timer.attributes
    assert exported_caller.get_finished_spans()  # (the request span, ended)


_GLOBAL = _exporter()
"""The global tracer provider of this test process (set once), and its exporter."""


def test_the_client_span_is_the_parent_of_the_run(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    provider, exported = _GLOBAL
    trace.set_tracer_provider(provider)  # (a process sets it once: later calls are ignored)
    if trace.get_tracer_provider() is not provider:
        pytest.fail("another module of the tests set the global tracer provider")
    exported.clear()
    runtime = make_runtime(start=False, tracing=True)  # (to the global provider)
    _register(runtime)
    runtime.start()
    with trace.get_tracer("app").start_as_current_span("request"):
        iid = client.schedule_new_workflow(child, input="x")
    client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT_S)
    spans = _spans_until(exported, _has("orchestration||child"))
    (run,) = _named(spans, "orchestration||child")
    (create,) = _named(spans, "create_orchestration||child")
    (request,) = _named(spans, "request")
    assert create.kind is SpanKind.CLIENT
    assert create.parent is not None and create.parent.span_id == request.context.span_id
    assert run.parent is not None and run.parent.span_id == create.context.span_id
    assert run.context.trace_id == request.context.trace_id
    assert create.attributes is not None
    assert create.attributes["durabletask.task.instance_id"] == iid


def flaky(ctx: wf.WorkflowActivityContext, fail_times: int) -> str:
    flaky.calls += 1  # type: ignore[attr-defined]
    if flaky.calls <= fail_times:  # type: ignore[attr-defined]
        raise ValueError(f"attempt {flaky.calls} failed")  # type: ignore[attr-defined]
    return "ok"


def retrying(ctx: wf.WorkflowContext, fail_times: int) -> Any:
    policy = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=10), max_number_of_attempts=3
    )
    return (yield ctx.call_activity(flaky, input=fail_times, retry_policy=policy))


@pytest.mark.parametrize("fail_times", [2, 3])
def test_retries_give_a_span_per_attempt_and_failures_are_errors(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient, fail_times: int
) -> None:
    flaky.calls = 0  # type: ignore[attr-defined]
    provider, exported = _exporter()
    runtime = make_runtime(start=False, tracer_provider=provider)
    runtime.register_activity(flaky)
    runtime.register_workflow(retrying)
    runtime.start()
    iid = client.schedule_new_workflow(retrying, input=fail_times)
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT_S)
    assert state is not None
    spans = _spans_until(exported, _has("orchestration||retrying"))
    attempts = sorted(_named(spans, "activity||flaky"), key=lambda s: s.start_time or 0)
    (run,) = _named(spans, "orchestration||retrying")
    assert len(attempts) == 3
    assert [a.status.status_code for a in attempts[:2]] == [StatusCode.ERROR] * 2
    assert attempts[0].status.description == "ValueError: attempt 1 failed"
    assert {a.parent.span_id for a in attempts if a.parent} == {run.context.span_id}
    assert run.attributes is not None
    if fail_times == 2:
        assert state.runtime_status is wf.WorkflowStatus.COMPLETED
        assert attempts[2].status.status_code is StatusCode.UNSET
        assert run.status.status_code is StatusCode.UNSET
        assert run.attributes["durabletask.runtime_status"] == "COMPLETED"
    else:
        assert state.runtime_status is wf.WorkflowStatus.FAILED
        assert attempts[2].status.status_code is StatusCode.ERROR
        assert run.status.status_code is StatusCode.ERROR
        assert run.status.description is not None and "attempt 3 failed" in run.status.description
        assert run.attributes["durabletask.runtime_status"] == "FAILED"
        (exception,) = [e for e in run.events if e.name == "exception"]
        assert exception.attributes is not None
        assert exception.attributes["exception.type"] == "TaskFailedError"


def test_tracing_off_records_no_trace_context(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient, store_url: str
) -> None:
    runtime = make_runtime(start=False)
    _register(runtime)
    runtime.start()
    iid = client.schedule_new_workflow(child, input="x")
    client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT_S)
    store = open_store(store_url)
    try:
        events = store.get_history(iid)
    finally:
        store.close()
    assert events
    assert all('"trace"' not in event_to_json(e) for e in events)
    started = next(e for e in events if isinstance(e, ExecutionStarted))
    assert started.trace is None


def inc(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 1


def loop(ctx: wf.WorkflowContext, n: int) -> Any:
    n = yield ctx.call_activity(inc, input=n)
    if n < 3:
        ctx.continue_as_new(n)
        return None
    return n


def test_runs_that_continue_as_new_are_one_trace_each_under_the_one_before(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    provider, exported = _exporter()
    runtime = make_runtime(start=False, tracer_provider=provider)
    runtime.register_activity(inc)
    runtime.register_workflow(loop)
    runtime.start()
    iid = client.schedule_new_workflow(loop, input=0)
    client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT_S)
    spans = _spans_until(exported, _has("orchestration||loop", 3))
    runs = sorted(_named(spans, "orchestration||loop"), key=lambda s: s.start_time or 0)
    assert [r.attributes and r.attributes["durabletask.runtime_status"] for r in runs] == [
        "CONTINUED_AS_NEW",
        "CONTINUED_AS_NEW",
        "COMPLETED",
    ]
    assert len({s.context.trace_id for s in spans}) == 1
    assert runs[0].parent is None
    assert runs[1].parent is not None and runs[1].parent.span_id == runs[0].context.span_id
    assert runs[2].parent is not None and runs[2].parent.span_id == runs[1].context.span_id
    activities = _named(spans, "activity||inc")
    assert sorted(a.parent.span_id for a in activities if a.parent) == sorted(
        r.context.span_id for r in runs
    )


def test_a_terminated_run_is_traced_as_terminated(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    provider, exported = _exporter()
    runtime = make_runtime(start=False, tracer_provider=provider)
    _register(runtime)
    runtime.start()
    iid = client.schedule_new_workflow(order, input="ada")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:  # (waiting for its event)
        state = client.get_workflow_state(iid)
        if state is not None and state.serialized_custom_status == '"waiting"':
            break
        time.sleep(0.02)
    client.terminate_workflow(iid)
    client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT_S)
    spans = _spans_until(exported, _has("orchestration||order"))
    (run,) = _named(spans, "orchestration||order")
    assert run.attributes is not None
    assert run.attributes["durabletask.runtime_status"] == "TERMINATED"
    assert run.status.status_code is StatusCode.UNSET


def pair(ctx: wf.WorkflowContext, x: int) -> Any:
    y = yield ctx.call_activity(inc, input=x)
    return (yield ctx.call_activity(inc, input=y))


def test_a_sampled_out_run_records_none_of_its_spans(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    # the run's sampling is decided when its trace context is made, so its activities
    # (emitted before the run span) follow the same decision: no orphans either way
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = make_runtime(start=False, tracer_provider=provider)
    runtime.register_activity(inc)
    runtime.register_workflow(pair)
    runtime.start()
    ids = [client.schedule_new_workflow(pair, input=i) for i in range(20)]
    for iid in ids:
        client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT_S)
    runtime.shutdown(timeout=5)  # (its last spans are emitted by then)
    spans = exporter.get_finished_spans()
    runs = {s.context.span_id for s in spans if s.name == "orchestration||pair"}
    activities = [s for s in spans if s.name == "activity||inc"]
    assert 0 < len(runs) < 20  # (fails with probability 2 in a million)
    assert len(activities) == 2 * len(runs)
    assert all(a.parent is not None and a.parent.span_id in runs for a in activities)
