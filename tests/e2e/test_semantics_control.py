"""Pause, resume and terminate are visible when they return, whether or not a worker holds
the instance; a termination needs no workflow code, so an instance whose workflow no worker
here has still ends TERMINATED, and tells its parent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import treadle as wf

from .helpers import Gate, Workflow, finish, status_of, wait_until

RUNNING, SUSPENDED = wf.WorkflowStatus.RUNNING, wf.WorkflowStatus.SUSPENDED
TERMINATED, COMPLETED = wf.WorkflowStatus.TERMINATED, wf.WorkflowStatus.COMPLETED


def _register(runtime: wf.WorkflowRuntime, gate: Gate) -> None:
    @runtime.activity
    def held(ctx: wf.WorkflowActivityContext, _: object) -> str:
        gate.hold()
        return "held"

    @runtime.workflow
    def waits(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.wait_for_external_event("go"))

    @runtime.workflow
    def busy(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        first = yield ctx.call_activity(held)
        second = yield ctx.wait_for_external_event("go")
        return [first, second]


def test_an_idle_instance_shows_each_call_when_it_returns(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, gates: Callable[[], Gate]
) -> None:
    _register(runtime, gates())
    iid = client.schedule_new_workflow("waits", instance_id="idle")
    client.wait_for_workflow_start(iid, timeout_in_seconds=10)
    for _ in range(3):
        client.pause_workflow(iid)
        assert status_of(client, iid) is SUSPENDED
        client.resume_workflow(iid)
        assert status_of(client, iid) is RUNNING
    client.raise_workflow_event(iid, "go", data="went")
    assert finish(client, iid).runtime_status is COMPLETED
    iid = client.schedule_new_workflow("waits", instance_id="idle-2")
    client.wait_for_workflow_start(iid, timeout_in_seconds=10)
    client.terminate_workflow(iid)
    assert status_of(client, iid) is TERMINATED


def test_a_held_instance_shows_each_call_when_it_returns(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, gates: Callable[[], Gate]
) -> None:
    gate = gates()
    _register(runtime, gate)
    iid = client.schedule_new_workflow("busy", instance_id="busy")
    gate.wait_entered()  # its activity runs: the runtime holds the instance
    client.pause_workflow(iid)
    assert status_of(client, iid) is SUSPENDED
    gate.open()
    client.resume_workflow(iid)
    assert status_of(client, iid) is RUNNING
    client.raise_workflow_event(iid, "go", data="went")
    state = finish(client, iid)
    assert state.runtime_status is COMPLETED
    assert state.serialized_output == '["held","went"]'


def test_terminating_a_held_instance_shows_it_when_it_returns(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, gates: Callable[[], Gate]
) -> None:
    gate = gates()
    _register(runtime, gate)
    iid = client.schedule_new_workflow("busy", instance_id="busy")
    gate.wait_entered()
    client.terminate_workflow(iid, output="stopped")
    state = client.get_workflow_state(iid)
    assert state is not None and state.runtime_status is TERMINATED
    assert state.serialized_output == '"stopped"'


def test_a_workflow_no_worker_here_has_is_terminated_not_failed(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    first = make_runtime(start=False)

    @first.workflow
    def child(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.wait_for_external_event("never"))

    @first.workflow
    def parent(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_child_workflow(child, instance_id="kid"))

    first.start()
    client.schedule_new_workflow(parent, instance_id="dad")
    wait_until(lambda: client.get_workflow_state("kid"), what="the child to be created")
    client.wait_for_workflow_start("kid", timeout_in_seconds=10)
    first.shutdown(timeout=5)
    # a runtime that has neither workflow (and fails the instances of unknown ones)
    other = make_runtime(start=False)

    @other.workflow
    def unrelated(ctx: wf.WorkflowContext, _: object) -> None:
        return None

    other.start()
    client.terminate_workflow("dad", output="over")
    assert status_of(client, "dad") is TERMINATED
    kid = finish(client, "kid")
    assert kid.runtime_status is TERMINATED, kid.failure_details
    dad = client.get_workflow_state("dad")
    assert dad is not None and dad.runtime_status is TERMINATED
    assert dad.serialized_output == '"over"'
