"""An event raised while an SDK workflow's turn is out to a worker reaches the workflow's
next turn as soon as that turn is committed.

Regression: the dispatcher's claim leaves out the instances whose turn is out, and the claim
the event's inbox write asked for ran while the turn was out. After the turn's commit the
instance, held with an activity out (whose result goes straight into its next turn), waited
with the event in its inbox for the next periodic claim, a second later (on PostgreSQL).
Here the runtime's clock never moves, so no periodic claim comes: the next turn must come
from the commit itself. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from google.protobuf.wrappers_pb2 import StringValue

from treadle.clock import ManualClock
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_actions_pb2 as apb
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.store.base import OrchestrationWorkItem

from .conftest import EVERY_BACKEND
from .sidecar_inprocess import in_process_sidecar

pytestmark = pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)


def test_an_event_raised_while_the_turn_is_out_comes_with_the_next_turn(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with in_process_sidecar(store_url, clock=ManualClock()) as sidecar:
        store = sidecar.store
        claims = store.claim_orchestrations
        skipped = threading.Event()  # a claim ran while the turn of ev-1 was out

        def claim(*args: Any, **kwargs: Any) -> list[OrchestrationWorkItem]:
            exclude = kwargs.get("exclude", args[3] if len(args) > 3 else ())
            claimed = claims(*args, **kwargs)
            if "ev-1" in exclude:
                skipped.set()
            return claimed

        monkeypatch.setattr(store, "claim_orchestrations", claim)
        worker = sidecar.stub(own_connection=True)
        stream = worker.GetWorkItems(spb.GetWorkItemsRequest(), timeout=20)
        worker.StartInstance(spb.CreateInstanceRequest(instanceId="ev-1", name="wf"), timeout=10)
        first = next(stream)
        assert first.workflowRequest.instanceId == "ev-1"

        # the turn is out: the event goes to the inbox, and the claim it asks for skips ev-1
        event = spb.RaiseEventRequest(instanceId="ev-1", name="go", input=StringValue(value="5"))
        worker.RaiseEvent(event, timeout=10)
        assert skipped.wait(10), "the event's inbox write asked for no claim"
        # the turn schedules an activity and waits for it or the event: the instance is held
        schedule = apb.WorkflowAction(
            id=0, scheduleTask=apb.ScheduleTaskAction(name="act", input=StringValue(value="1"))
        )
        waiting = spb.WorkflowResponse(
            instanceId="ev-1", actions=[schedule], completionToken=first.completionToken
        )
        worker.CompleteOrchestratorTask(waiting, timeout=10)
        task = next(stream)
        assert task.WhichOneof("request") == "activityRequest"

        second = next(stream)  # (the stream's deadline bounds the wait)
        news = second.workflowRequest.newEvents
        raised = [e.eventRaised for e in news if e.HasField("eventRaised")]
        assert [(e.name, e.input.value) for e in raised] == [("go", "5")]
        done = apb.WorkflowAction(
            id=1,
            completeWorkflow=apb.CompleteWorkflowAction(
                workflowStatus=opb.ORCHESTRATION_STATUS_COMPLETED,
                result=StringValue(value=raised[0].input.value),
            ),
        )
        answer = spb.WorkflowResponse(
            instanceId="ev-1", actions=[done], completionToken=second.completionToken
        )
        worker.CompleteOrchestratorTask(answer, timeout=10)
        state = sidecar.client.wait_for_workflow_completion("ev-1", timeout_in_seconds=10)
        assert state is not None and json.loads(state.serialized_output or "null") == 5
        stream.cancel()
