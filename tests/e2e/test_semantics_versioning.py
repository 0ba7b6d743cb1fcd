"""Versioning on every store: patches, named versions kept across restarts, and stalls.

Each "release" is a new runtime on the same store with the code of that release, as a new
deployment of an application would be; the one before it is shut down first unless the test
says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

import treadle as wf
from treadle.cli import main
from treadle.clock import ManualClock
from treadle.core.history import ExecutionStalled, OrchestratorStarted, WorkflowVersion
from treadle.runtime import prepare
from treadle.server.http import create_app

from .helpers import Workflow, decoded, events_of, finish, state_of, status_of, wait_until
from .test_http_api import Http

Release = Callable[..., wf.WorkflowRuntime]


def step(ctx: wf.WorkflowActivityContext, label: str) -> str:
    return label


def v1(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[str]:
    yield ctx.call_activity(step, input="reserve")
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    return f"{item} by v1"


def v2(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[str]:
    yield ctx.call_activity(step, input="reserve")
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    return f"{item} by v2"


def unpatched(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[list[str]]:
    done = [(yield ctx.call_activity(step, input="reserve"))]
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    done.append((yield ctx.call_activity(step, input="ship")))
    return done


def patched(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[list[str]]:
    done = [(yield ctx.call_activity(step, input="reserve"))]
    if ctx.is_patched("insure"):
        done.append((yield ctx.call_activity(step, input="insure")))
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    done.append((yield ctx.call_activity(step, input="ship")))
    return done


def patch_first(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[str]:
    checked = ctx.is_patched("p1")  # evaluated (and recorded) in the first turn
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    return f"p1={checked}"


def patch_dropped(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[str]:
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    return "dropped"


def release(
    make_runtime: Release,
    *,
    versions: tuple[tuple[str, Callable[..., Any], bool], ...] = (),
    plain: Callable[..., Any] | None = None,
) -> wf.WorkflowRuntime:
    """A started runtime with versions of "order" (version, code, is_latest) or a plain
    workflow "order"."""
    runtime = make_runtime(start=False)
    runtime.register_activity(step)
    if plain is not None:
        runtime.register_workflow(plain, name="order")
    for version_name, code, is_latest in versions:
        runtime.register_versioned_workflow(
            code, name="order", version_name=version_name, is_latest=is_latest
        )
    runtime.start()
    return runtime


def waiting(client: wf.WorkflowClient, instance_id: str) -> None:
    wait_until(
        lambda: state_of(client, instance_id).serialized_custom_status,
        what=f"{instance_id} to wait for its event",
    )


def stalled(client: wf.WorkflowClient, instance_id: str) -> wf.WorkflowState:
    wait_until(
        lambda: status_of(client, instance_id) is wf.WorkflowStatus.STALLED,
        what=f"{instance_id} to stall",
        state=lambda: status_of(client, instance_id),
    )
    return state_of(client, instance_id)


def versions_recorded(client: wf.WorkflowClient, instance_id: str) -> list[WorkflowVersion]:
    turns: list[OrchestratorStarted] = events_of(client, instance_id, "OrchestratorStarted")
    return [t.version for t in turns if t.version is not None]


def test_a_patch_is_taken_by_new_instances_and_skipped_by_old_ones(
    make_runtime: Release, client: wf.WorkflowClient
) -> None:
    first = release(make_runtime, plain=unpatched)
    old = client.schedule_new_workflow("order", input="lamp")
    waiting(client, old)
    first.shutdown()

    release(make_runtime, plain=patched)
    client.raise_workflow_event(old, "go")
    assert decoded(finish(client, old).serialized_output) == ["reserve", "ship"]
    assert versions_recorded(client, old) == []

    new = client.schedule_new_workflow("order", input="vase")
    waiting(client, new)
    client.raise_workflow_event(new, "go")
    assert decoded(finish(client, new).serialized_output) == ["reserve", "insure", "ship"]
    # recorded once, in the turn that found it; the later turns replay it as true
    assert versions_recorded(client, new) == [WorkflowVersion(patches=("insure",))]


def test_a_running_instance_keeps_its_version_across_a_restart(
    make_runtime: Release, client: wf.WorkflowClient
) -> None:
    first = release(make_runtime, versions=(("v1", v1, True),))
    old = client.schedule_new_workflow("order", input="lamp")
    waiting(client, old)
    first.shutdown()

    second = release(make_runtime, versions=(("v1", v1, False), ("v2", v2, True)))
    client.raise_workflow_event(old, "go")
    assert decoded(finish(client, old).serialized_output) == "lamp by v1"
    new = client.schedule_new_workflow(v1, input="book")  # by either function: the name
    waiting(client, new)
    client.raise_workflow_event(new, "go")
    assert decoded(finish(client, new).serialized_output) == "book by v2"
    assert {v.name for v in versions_recorded(client, old)} == {"v1"}
    assert {v.name for v in versions_recorded(client, new)} == {"v2"}

    # a new latest version registered on the running runtime: for new instances only
    def v3(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[str]:
        yield ctx.call_activity(step, input="reserve")
        return f"{item} by v3"

    running = client.schedule_new_workflow("order", input="desk")
    waiting(client, running)
    second.register_versioned_workflow(v3, name="order", is_latest=True)
    assert decoded(finish(client, client.schedule_new_workflow("order", input="pen"))
                   .serialized_output) == "pen by v3"  # fmt: skip
    client.raise_workflow_event(running, "go")
    assert decoded(finish(client, running).serialized_output) == "desk by v2"


def test_an_instance_whose_version_is_gone_stalls_and_goes_on_when_a_runtime_has_it(
    make_runtime: Release, client: wf.WorkflowClient
) -> None:
    first = release(make_runtime, versions=(("v1", v1, True),))
    old = client.schedule_new_workflow("order", input="chair")
    waiting(client, old)
    first.shutdown()

    release(make_runtime, versions=(("v2", v2, True),))  # v1 removed
    client.raise_workflow_event(old, "go")
    state = stalled(client, old)
    assert state.failure_details is not None
    assert state.failure_details.error_type == "VERSION_NOT_AVAILABLE"
    assert state.failure_details.message == "Version not available: v1"
    assert state.serialized_custom_status == '"waiting"'  # as it was before the turn
    listed = client.list_workflows(status=wf.WorkflowStatus.STALLED).states
    assert [s.instance_id for s in listed] == [old]
    (event,) = events_of(client, old, "ExecutionStalled")
    assert isinstance(event, ExecutionStalled) and event.reason == "VERSION_NOT_AVAILABLE"

    # another runtime with v1 starts (the one without it keeps running): it takes it over
    release(make_runtime, versions=(("v1", v1, False), ("v2", v2, True)))
    assert decoded(finish(client, old).serialized_output) == "chair by v1"
    assert len(events_of(client, old, "ExecutionStalled")) == 1


def test_registering_the_missing_version_on_the_running_runtime_resumes_at_once(
    make_runtime: Release, client: wf.WorkflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepare, "STALL_RETRY_S", 3600.0)  # no retry but the one registering makes
    first = release(make_runtime, versions=(("v1", v1, True),))
    old = client.schedule_new_workflow("order", input="chair")
    waiting(client, old)
    first.shutdown()

    second = release(make_runtime, versions=(("v2", v2, True),))
    client.raise_workflow_event(old, "go")
    stalled(client, old)
    second.register_versioned_workflow(v1, name="order", version_name="v1", is_latest=False)
    assert decoded(finish(client, old).serialized_output) == "chair by v1"


def test_code_that_dropped_a_recorded_patch_stalls_until_code_with_it_runs(
    make_runtime: Release, client: wf.WorkflowClient
) -> None:
    first = release(make_runtime, plain=patch_first)
    old = client.schedule_new_workflow("order", input="x")
    waiting(client, old)
    first.shutdown()

    second = release(make_runtime, plain=patch_dropped)
    client.raise_workflow_event(old, "go")
    state = stalled(client, old)
    assert state.failure_details is not None
    assert state.failure_details.error_type == "PATCH_MISMATCH"
    assert "History patches: [p1], current patches: []" in state.failure_details.message
    second.shutdown()

    release(make_runtime, plain=patch_first)
    assert decoded(finish(client, old).serialized_output) == "p1=True"


def test_a_stalled_instance_can_be_terminated(
    make_runtime: Release, client: wf.WorkflowClient
) -> None:
    first = release(make_runtime, versions=(("v1", v1, True),))
    old = client.schedule_new_workflow("order", input="chair")
    waiting(client, old)
    first.shutdown()

    release(make_runtime, versions=(("v2", v2, True),))
    client.raise_workflow_event(old, "go")
    stalled(client, old)
    client.terminate_workflow(old, output="given up")
    state = finish(client, old, timeout=prepare.STALL_RETRY_S + 10)  # set aside meanwhile
    assert state.runtime_status is wf.WorkflowStatus.TERMINATED
    assert decoded(state.serialized_output) == "given up"


def test_continue_as_new_starts_the_next_run_on_the_latest_version(
    make_runtime: Release, client: wf.WorkflowClient
) -> None:
    def looping_v1(ctx: wf.DaprWorkflowContext, n: int) -> Workflow[str]:
        if n == 0:
            ctx.set_custom_status("waiting")
            yield ctx.wait_for_external_event("go")
            ctx.continue_as_new(1)
        return "v1 ended"

    def looping_v2(ctx: wf.DaprWorkflowContext, n: int) -> Workflow[str]:
        yield ctx.call_activity(step, input="x")
        return f"v2 ran with {n}"

    runtime = release(make_runtime, versions=(("v1", looping_v1, True),))
    iid = client.schedule_new_workflow("order", input=0)
    waiting(client, iid)
    runtime.register_versioned_workflow(looping_v2, name="order", version_name="v2", is_latest=True)
    client.raise_workflow_event(iid, "go")
    assert decoded(finish(client, iid).serialized_output) == "v2 ran with 1"


def test_stalled_instances_are_found_by_the_cli_and_http_filters(
    make_runtime: Release, client: wf.WorkflowClient, store_url: str
) -> None:
    first = release(make_runtime, versions=(("v1", v1, True),))
    old = client.schedule_new_workflow("order", input="chair", instance_id="stuck")
    other = client.schedule_new_workflow("order", input="lamp", instance_id="fine")
    waiting(client, old)
    waiting(client, other)
    first.shutdown()
    release(make_runtime, versions=(("v2", v2, True),))
    client.raise_workflow_event(old, "go")
    stalled(client, old)

    listed = CliRunner().invoke(
        main, ["--db", store_url, "workflow", "list", "--status", "stalled"]
    )
    assert listed.exit_code == 0, listed.output
    assert "stuck" in listed.output and "STALLED" in listed.output and "fine" not in listed.output
    shown = CliRunner().invoke(main, ["--db", store_url, "workflow", "get", "stuck"])
    assert "VERSION_NOT_AVAILABLE: Version not available: v1" in shown.output, shown.output

    http = Http(create_app(client))
    try:
        body = http.get("/api/v1/workflows?status=STALLED").json()
        assert [w["instance_id"] for w in body["workflows"]] == ["stuck"]
        dapr = http.get("/v1.0/workflows/dapr/stuck").json()
        assert dapr["runtimeStatus"] == "STALLED"
    finally:
        http.close()


def test_a_waiting_instance_resumes_its_generator_until_a_workflow_is_registered(
    make_runtime: Release, client: wf.WorkflowClient
) -> None:
    body_runs: list[str] = []  # one entry each time the code runs from its start

    def counted(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[list[str]]:
        body_runs.append(item)
        ctx.set_custom_status("first")
        first = yield ctx.wait_for_external_event("go")
        ctx.set_custom_status("second")
        second = yield ctx.wait_for_external_event("go")
        return [first, second]

    def other(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[str]:
        return item
        yield

    clock = ManualClock()
    runtime = make_runtime(start=False, clock=clock)
    runtime.register_workflow(counted, name="order")
    runtime.start()
    iid = client.schedule_new_workflow("order", input="lamp")
    custom_status_is(client, iid, "first")
    clock.advance(3600)  # an hour's wait by the runtime's clock: the generator is kept
    client.raise_workflow_event(iid, "go", data="a")
    custom_status_is(client, iid, "second")
    assert body_runs == ["lamp"]  # resumed, not replayed

    runtime.register_workflow(other, name="other")  # the code registered may have changed
    client.raise_workflow_event(iid, "go", data="b")
    assert decoded(finish(client, iid).serialized_output) == ["a", "b"]
    assert body_runs == ["lamp", "lamp"]  # replayed with the code registered now


def custom_status_is(client: wf.WorkflowClient, instance_id: str, status: str) -> None:
    wait_until(
        lambda: state_of(client, instance_id).serialized_custom_status == f'"{status}"',
        what=f"{instance_id}'s custom status to be {status!r}",
        state=lambda: state_of(client, instance_id).serialized_custom_status,
    )
