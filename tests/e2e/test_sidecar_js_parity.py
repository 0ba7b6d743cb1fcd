"""Items 5, 7 and 8 of the Dapr-parity work through ``treadle serve`` with the JavaScript
durabletask SDK (``@dapr/durabletask-js`` 1.0.0), on SQLite and PostgreSQL, where that SDK has
the feature:

- Control calls (pause, resume, terminate) are visible when they return, and a suspend or
  resume of an instance whose turn waits for a worker that has gone acts at once.
- Events raised in a burst at a workflow that continues as new with ``saveEvents`` reach its
  next runs in the order they were raised. (The workflow is shaped around a bug of SDK 1.0.0,
  which drops a second event of one name delivered in a turn after a wait for it completed:
  see ``sdk_scripts/js_event_order.js``.)
- History propagation is not tested with it: JS SDK 1.0.0 has no such feature. Its generated
  protobuf messages lack ``OrchestratorRequest.propagatedHistory`` and
  ``ActivityRequest.propagatedHistory`` (field 8 in treadle's ``orchestrator_service.proto``)
  and ``ScheduleTaskAction.historyPropagationScope`` /
  ``CreateSubOrchestrationAction.historyPropagationScope`` (field 6 in
  ``orchestrator_actions.proto``); its ``OrchestrationContext`` has no
  ``getPropagatedHistory()``, ``callActivity`` / ``callSubOrchestrator`` take no propagation
  scope, and its ``ActivityContext`` has only ``orchestrationId`` and ``taskId``. (The Python
  SDK covers it: ``test_sidecar_propagation.py``.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server.grpc_values import string_value

from .helpers import wait_until
from .js_sdk import js_sdk_modules, node_result
from .sidecar import serve

pytestmark = pytest.mark.timeout(300)  # the first JS SDK test installs the SDK

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SUSPENDED = opb.ORCHESTRATION_STATUS_SUSPENDED
RUNNING = opb.ORCHESTRATION_STATUS_RUNNING
TERMINATED = opb.ORCHESTRATION_STATUS_TERMINATED
PROMPT_S = 3.0
"""At most this long for a suspend or resume with no worker (it waited 10 s before)."""


def _db(backend: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("postgres_schema_url")) if backend == "postgres" else None


@pytest.mark.parametrize("backend", BACKENDS)
def test_control_calls_are_visible_and_act_without_a_worker(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    modules = js_sdk_modules()
    with serve(tmp_path, "--no-http", db=_db(backend, request)) as served:
        seen = node_result(modules, served, "js_control.js", "start")
        assert seen == {"after_pause": "SUSPENDED", "after_resume": "RUNNING"}
        # the JS worker has gone: the event's turn waits for a worker
        stub = served.stub()

        def status(iid: str) -> int:
            reply = stub.GetInstance(spb.GetInstanceRequest(instanceId=iid), timeout=10)
            return int(reply.workflowState.workflowStatus)

        stub.RaiseEvent(
            spb.RaiseEventRequest(instanceId="jsctl-1", name="go", input=string_value('"went"')),
            timeout=10,
        )
        for call, request_type, shown in (
            (stub.SuspendInstance, spb.SuspendRequest, SUSPENDED),
            (stub.ResumeInstance, spb.ResumeRequest, RUNNING),
        ):
            began = time.monotonic()
            call(request_type(instanceId="jsctl-1"), timeout=30)
            took = time.monotonic() - began
            assert status("jsctl-1") == shown, served.logs()
            assert took < PROMPT_S, f"{call} took {took:.1f} s with no worker\n{served.logs()}"
        stub.TerminateInstance(
            spb.TerminateRequest(instanceId="jsctl-parent", recursive=True), timeout=30
        )
        assert status("jsctl-parent") == TERMINATED, served.logs()
        wait_until(
            lambda: status("jsctl-child") == TERMINATED,
            timeout=30,
            what="the child to be terminated with its parent",
            state=served.logs,
        )
        # a worker comes back: the event raised before the pause reaches the workflow
        done = node_result(modules, served, "js_control.js", "finish")
        assert done == {"status": "COMPLETED", "output": "went"}, served.logs()
        assert [status(i) for i in ("jsctl-parent", "jsctl-child")] == [TERMINATED] * 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_burst_of_events_reaches_the_next_runs_in_order(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    modules = js_sdk_modules()
    events, runs = 20, 3
    with serve(tmp_path, "--no-http", db=_db(backend, request)) as served:
        out = node_result(modules, served, "js_event_order.js", str(events), str(runs))
    assert out == [{"status": "COMPLETED", "output": list(range(1, events + 1))}] * runs
