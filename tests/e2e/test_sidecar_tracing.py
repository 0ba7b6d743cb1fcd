"""``treadle serve`` carries the W3C trace context to and from the SDKs, on the wire.

A ``StartInstance`` with a ``parentTraceContext`` (as an SDK client in a traced span sends
it) makes that span the parent of treadle's run span; the SDK worker is handed the run's
trace context in its ``ExecutionStartedEvent`` (``parentTraceContext``, ``workflowSpanID``,
from the first request on) and, in each ``ActivityRequest``, the run span as
``parentTraceContext`` (where the Python SDK parents its ``activity`` span). The official
Python SDK does the same in ``test_with_the_official_python_sdk`` (its worker's requests
recorded in its process).
Treadle's spans are read with the OpenTelemetry SDK's in-memory exporter. Run on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sdk_env import sdk_python

from treadle.core.history import ExecutionStarted, valid_traceparent
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_actions_pb2 as apb
from treadle.server._proto import orchestrator_service_pb2 as spb

from .conftest import EVERY_BACKEND
from .sidecar import describe, last_line, run_sdk
from .sidecar_inprocess import InProcessSidecar, in_process_sidecar

pytestmark = pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def sidecar(store_url: str, exporter: InMemorySpanExporter) -> Iterator[InProcessSidecar]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with in_process_sidecar(store_url, tracer_provider=provider) as served:
        yield served


def test_the_trace_context_goes_to_and_from_the_sdk(
    sidecar: InProcessSidecar, exporter: InMemorySpanExporter
) -> None:
    sdk = sidecar.stub(own_connection=True)
    sdk.StartInstance(
        spb.CreateInstanceRequest(
            instanceId="t-1",
            name="wf",
            parentTraceContext=opb.TraceContext(
                traceParent=TRACEPARENT, traceState=StringValue(value="vendor=1")
            ),
        ),
        timeout=10,
    )
    stream = sdk.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    item = next(stream)
    (started,) = [
        e.executionStarted
        for e in (*item.workflowRequest.pastEvents, *item.workflowRequest.newEvents)
        if e.WhichOneof("eventType") == "executionStarted"
    ]
    assert started.parentTraceContext.traceParent == TRACEPARENT
    assert started.parentTraceContext.traceState.value == "vendor=1"
    # the first request already carries the run span's id: the one history will hold
    first_span = started.workflowSpanID.value
    assert len(first_span) == 16 and int(first_span, 16) != 0
    schedule = apb.WorkflowAction(
        id=0, scheduleTask=apb.ScheduleTaskAction(name="act", input=StringValue(value="1"))
    )
    sdk.CompleteOrchestratorTask(
        spb.WorkflowResponse(
            instanceId="t-1", actions=[schedule], completionToken=item.completionToken
        ),
        timeout=10,
    )
    task = next(stream)
    assert task.WhichOneof("request") == "activityRequest"
    (recorded,) = [e for e in sidecar.store.get_history("t-1") if isinstance(e, ExecutionStarted)]
    assert recorded.trace is not None and recorded.trace.trace_parent == TRACEPARENT
    run_span = recorded.trace.span_id
    assert run_span == first_span
    # the activity's parent: the run span, in the client's trace
    sent = task.activityRequest.parentTraceContext
    assert sent.traceParent == f"00-{TRACE_ID}-{run_span}-01"
    assert sent.traceState.value == "vendor=1"
    sdk.CompleteActivityTask(
        spb.ActivityResponse(
            instanceId="t-1",
            taskId=task.activityRequest.taskId,
            result=StringValue(value='"done"'),
            completionToken=task.completionToken,
        ),
        timeout=10,
    )
    item = next(stream)
    (started,) = [
        e.executionStarted
        for e in (*item.workflowRequest.pastEvents, *item.workflowRequest.newEvents)
        if e.WhichOneof("eventType") == "executionStarted"
    ]
    assert started.parentTraceContext.traceParent == TRACEPARENT
    assert started.workflowSpanID.value == run_span
    done = apb.WorkflowAction(
        id=1,
        completeWorkflow=apb.CompleteWorkflowAction(
            workflowStatus=opb.ORCHESTRATION_STATUS_COMPLETED, result=StringValue(value='"ok"')
        ),
    )
    sdk.CompleteOrchestratorTask(
        spb.WorkflowResponse(
            instanceId="t-1", actions=[done], completionToken=item.completionToken
        ),
        timeout=10,
    )
    state = sidecar.client.wait_for_workflow_completion("t-1", timeout_in_seconds=10)
    assert state is not None and state.serialized_output == '"ok"'
    stream.cancel()

    deadline = time.monotonic() + 10
    while not exporter.get_finished_spans() and time.monotonic() < deadline:
        time.sleep(0.02)
    (run,) = [s for s in exporter.get_finished_spans() if s.name == "orchestration||wf"]
    assert format(run.context.trace_id, "032x") == TRACE_ID
    assert format(run.context.span_id, "016x") == run_span
    assert run.parent is not None and format(run.parent.span_id, "016x") == CLIENT_SPAN
    assert run.context.trace_state.get("vendor") == "1"
    assert (
        run.attributes is not None and run.attributes["durabletask.runtime_status"] == "COMPLETED"
    )


def test_a_malformed_traceparent_is_ignored(sidecar: InProcessSidecar) -> None:
    sdk = sidecar.stub(own_connection=True)
    sdk.StartInstance(
        spb.CreateInstanceRequest(
            instanceId="t-2", name="wf", parentTraceContext=opb.TraceContext(traceParent="junk")
        ),
        timeout=10,
    )
    record = sidecar.store.get_instance("t-2")
    assert record is not None
    stream = sdk.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    item = next(stream)
    (started,) = [
        e.executionStarted
        for e in item.workflowRequest.newEvents
        if e.WhichOneof("eventType") == "executionStarted"
    ]
    # "junk" is not passed on: the run starts a trace of its own (as an untraced start
    # does with tracing on), whose context, its own span's, the first request carries
    sent = started.parentTraceContext.traceParent
    assert "junk" not in sent and valid_traceparent(sent)
    assert sent.split("-")[2] == started.workflowSpanID.value
    stream.cancel()


@pytest.mark.timeout(300)  # (the first SDK test builds the SDK venv)
def test_with_the_official_python_sdk(
    sidecar: InProcessSidecar, exporter: InMemorySpanExporter
) -> None:
    python = sdk_python()
    result = run_sdk(
        python, "tracing.py", "--address", f"127.0.0.1:{sidecar.port}", "--traceparent", TRACEPARENT
    )
    assert result.returncode == 0, describe(result)
    out = json.loads(last_line(result.stdout))
    assert out["status"] == "COMPLETED" and out["output"] == "2", out
    (recorded,) = [
        e for e in sidecar.store.get_history("sdk-traced-1") if isinstance(e, ExecutionStarted)
    ]
    assert recorded.trace is not None and recorded.trace.trace_parent == TRACEPARENT
    # the SDK worker's activity span would be a child of treadle's run span
    assert out["activity_traceparents"] == [f"00-{TRACE_ID}-{recorded.trace.span_id}-01"]
    deadline = time.monotonic() + 10
    while not exporter.get_finished_spans() and time.monotonic() < deadline:
        time.sleep(0.02)
    (run,) = [s for s in exporter.get_finished_spans() if s.name == "orchestration||sdk_traced"]
    assert run.parent is not None and format(run.parent.span_id, "016x") == CLIENT_SPAN
    assert format(run.context.span_id, "016x") == recorded.trace.span_id


def test_the_http_api_takes_the_w3c_headers(sidecar: InProcessSidecar) -> None:
    started = sidecar.http(
        "POST",
        "/v1.0/workflows/dapr/wf/start?instanceID=t-3",
        b"1",
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=2"},
    )
    assert started.status_code == 202, started.text
    sdk = sidecar.stub(own_connection=True)
    stream = sdk.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    item = next(stream)
    (started_event,) = [
        e.executionStarted
        for e in item.workflowRequest.newEvents
        if e.WhichOneof("eventType") == "executionStarted"
    ]
    assert started_event.parentTraceContext.traceParent == TRACEPARENT
    assert started_event.parentTraceContext.traceState.value == "vendor=2"
    stream.cancel()
