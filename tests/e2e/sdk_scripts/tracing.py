"""The official Python SDK, traced, against ``treadle serve`` (run with the SDK venv's python).

    tracing.py --address HOST:PORT --traceparent TRACEPARENT

Starts ``sdk_traced`` (calls the activity ``sdk_traced_step``) with ``StartInstance``'s
``parentTraceContext`` set to TRACEPARENT, as an SDK client inside a span sends it (through
the SDK's own generated protocol code), runs it on the SDK worker and records the
``parentTraceContext`` of each ``ActivityRequest`` the worker receives: where the SDK's
``_activity_span`` parents its span when OpenTelemetry is installed (it is not, in this
venv: the hook is wrapped to record it). Prints one JSON line: {"status", "output",
"activity_traceparents"}.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf
import grpc
from dapr.ext.workflow._durabletask import worker as sdk_worker
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2 as pb
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
from dapr.ext.workflow._durabletask.internal.orchestration_pb2 import TraceContext

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
args.add_argument("--traceparent", required=True)
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)

received: list[str] = []
_span = sdk_worker.TaskHubGrpcWorker._activity_span


def _recording_span(self: Any, req: Any, instance_id: str) -> Any:
    received.append(req.parentTraceContext.traceParent)
    return _span(self, req, instance_id)


sdk_worker.TaskHubGrpcWorker._activity_span = _recording_span


def sdk_traced_step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 1


def sdk_traced(ctx: wf.DaprWorkflowContext, x: int) -> Generator[Any, Any, int]:
    y: int = yield ctx.call_activity(sdk_traced_step, input=x)
    return y


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_workflow(sdk_traced, name="sdk_traced")
runtime.register_activity(sdk_traced_step, name="sdk_traced_step")
runtime.start()
try:
    with grpc.insecure_channel(opts.address) as channel:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        stub.StartInstance(
            pb.CreateInstanceRequest(
                instanceId="sdk-traced-1",
                name="sdk_traced",
                input={"value": "1"},
                parentTraceContext=TraceContext(traceParent=opts.traceparent),
            ),
            timeout=10,
        )
    client = wf.DaprWorkflowClient(host=host, port=port)
    state = client.wait_for_workflow_completion("sdk-traced-1", timeout_in_seconds=30)
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    print(
        json.dumps(
            {
                "status": state.runtime_status.name,
                "output": state.serialized_output,
                "activity_traceparents": received,
            }
        ),
        flush=True,
    )
finally:
    runtime.shutdown()
