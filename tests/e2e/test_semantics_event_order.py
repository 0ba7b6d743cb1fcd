"""Events raised while an instance continues as new with ``save_events=True`` reach the next
runs in the order they were raised, however they fall between its turns."""

from __future__ import annotations

from typing import Any

import treadle as wf

from .helpers import Workflow, decoded, finish

N_EVENTS = 30


def _register(runtime: wf.WorkflowRuntime) -> None:
    @runtime.workflow
    def collector(ctx: wf.WorkflowContext, seen: list[Any]) -> Workflow[list[Any]]:
        """One event per run: its input is every event so far, in the order received."""
        item = yield ctx.wait_for_external_event("item")
        seen = [*seen, item]
        if len(seen) == N_EVENTS:
            return seen
        ctx.continue_as_new(seen, save_events=True)
        return seen

    @runtime.workflow
    def two_names(ctx: wf.WorkflowContext, seen: list[Any]) -> Workflow[list[Any]]:
        """Runs wait for "a" and "b" by turns; each name's events keep their order."""
        item = yield ctx.wait_for_external_event("b" if len(seen) % 2 else "a")
        seen = [*seen, item]
        if len(seen) == N_EVENTS:
            return seen
        ctx.continue_as_new(seen, save_events=True)
        return seen


def test_a_burst_of_events_after_the_start_keeps_its_order(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register(runtime)
    for attempt in range(3):
        iid = client.schedule_new_workflow("collector", input=[], instance_id=f"c-{attempt}")
        for n in range(N_EVENTS):
            client.raise_workflow_event(iid, "item", data=n)
        state = finish(client, iid, timeout=60)
        assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state.failure_details
        assert decoded(state.serialized_output) == list(range(N_EVENTS))


def test_events_of_two_names_keep_their_order(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register(runtime)
    iid = client.schedule_new_workflow("two_names", input=[], instance_id="names")
    for n in range(N_EVENTS):
        client.raise_workflow_event(iid, "b" if n % 2 else "a", data=n)
    state = finish(client, iid, timeout=60)
    assert decoded(state.serialized_output) == list(range(N_EVENTS))
