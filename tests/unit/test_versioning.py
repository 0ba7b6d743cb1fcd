"""Versioning as Dapr 1.18 has it: ``ctx.is_patched``, named versions, and stalls."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import orjson
import pytest

from treadle.core.actions import (
    CompleteOrchestration,
    ReportVersionNotAvailable,
    ScheduleTask,
)
from treadle.core.context import WorkflowContext
from treadle.core.history import (
    ExecutionStalled,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    WorkflowVersion,
    event_from_dict,
    event_to_json,
)
from treadle.core.replay import replay
from treadle.core.versioning import (
    PATCH_MISMATCH,
    VERSION_NOT_AVAILABLE,
    VersionedWorkflow,
    new_patches,
    recorded_patches,
    recorded_version_name,
    settle_turn,
)
from treadle.errors import RegistrationError

from .helpers import (
    T0,
    Run,
    event_raised,
    start,
    task_completed,
    task_scheduled,
    terminated,
    turn,
    workflow_started,
)

Steps = Generator[Any, Any, Any]


def patched_payment(ctx: WorkflowContext, _: Any) -> Steps:
    yield ctx.call_activity("reserve")
    if ctx.is_patched("fraud-check"):
        yield ctx.call_activity("check_fraud")
    yield ctx.call_activity("charge")
    return "paid"


def started_with(version: WorkflowVersion | None) -> list[HistoryEvent]:
    return [OrchestratorStarted(timestamp=T0, version=version), workflow_started()]


def names(actions: list[Any]) -> list[str]:
    return [a.name for a in actions if isinstance(a, ScheduleTask)]


# ---- is_patched -------------------------------------------------------------------------
def test_patch_is_true_for_a_new_instance_and_recorded_in_the_turn_that_found_it() -> None:
    run = Run(patched_payment)
    run.turn(task_completed(1))
    assert names(run.actions) == ["reserve"]
    first, second = (e for e in run.history if isinstance(e, OrchestratorStarted))
    assert first.version is None  # the patch was not evaluated in the first turn
    assert second.version == WorkflowVersion(patches=("fraud-check",))
    assert names(run.turn(task_completed(2))) == ["charge"]
    run.turn(task_completed(3))
    assert run.result.status is OrchestrationStatus.COMPLETED
    # recorded once: the turns after the one that found it record nothing more
    assert recorded_patches(run.history) == ["fraud-check"]


def test_patch_is_false_when_replaying_history_that_ran_before_it() -> None:
    # Recorded by the code before the patch: reserve, then charge.
    history = [
        *start(),
        task_scheduled(1, "reserve"),
        turn(),
        task_completed(1),
        task_scheduled(2, "charge"),
    ]
    result = replay(patched_payment, history, [turn(), task_completed(2)])
    assert result.failure is None  # no NonDeterminismError: the old path is taken
    assert result.status is OrchestrationStatus.COMPLETED
    assert result.version is None  # nothing is recorded for a patch found false


def test_patch_is_true_for_an_old_instance_that_reaches_it_only_now() -> None:
    history = [*start(), task_scheduled(1, "reserve")]
    result = replay(patched_payment, history, [turn(), task_completed(1)])
    assert names(result.actions) == ["check_fraud"]
    assert result.version == WorkflowVersion(patches=("fraud-check",))


def test_a_recorded_patch_stays_true_in_every_replay() -> None:
    history = [
        *start(),
        task_scheduled(1, "reserve"),
        OrchestratorStarted(timestamp=T0, version=WorkflowVersion(patches=("fraud-check",))),
        task_completed(1),
        task_scheduled(2, "check_fraud"),
    ]
    result = replay(patched_payment, history, [turn(), task_completed(2)])
    assert names(result.actions) == ["charge"]
    assert result.version is None


def test_patch_answer_is_fixed_for_the_run() -> None:
    answers: list[bool] = []

    def wf(ctx: WorkflowContext, _: Any) -> Steps:
        answers.append(ctx.is_patched("p"))  # replaying: false
        yield ctx.call_activity("a")
        answers.append(ctx.is_patched("p"))  # not replaying any more, still false
        return None

    replay(wf, [*start(), task_scheduled(1, "a")], [turn(), task_completed(1)])
    assert answers == [False, False]


def test_patch_name_must_be_a_string() -> None:
    def wf(ctx: WorkflowContext, _: Any) -> Steps:
        ctx.is_patched(3)  # type: ignore[arg-type]
        yield ctx.call_activity("a")

    result = replay(wf, [], start())
    assert isinstance(result.failure, TypeError)
    assert "patch name is a str" in str(result.failure)


def test_patch_evaluated_twice_is_reported_twice_as_the_sdk_does() -> None:
    def wf(ctx: WorkflowContext, _: Any) -> Steps:
        for _ in range(2):
            if ctx.is_patched("p"):
                yield ctx.call_activity("a")
        return None

    run = Run(wf)
    run.turn(task_completed(1))
    run.turn(task_completed(2))
    assert recorded_patches(run.history) == ["p", "p"]
    assert run.result.status is OrchestrationStatus.COMPLETED


# ---- patch mismatch ----------------------------------------------------------------------
def test_code_that_drops_a_recorded_patch_stalls_instead_of_going_on() -> None:
    history = [
        *started_with(WorkflowVersion(patches=("p1",))),
    ]

    def without_the_check(ctx: WorkflowContext, _: Any) -> Steps:
        yield ctx.wait_for_external_event("go")
        return 1

    result = replay(without_the_check, history, [turn(), event_raised("go")])
    assert result.status is OrchestrationStatus.STALLED
    assert result.actions == []  # not completed, although the code finished
    assert result.stall is not None and result.stall.reason == PATCH_MISMATCH
    assert "History patches: [p1], current patches: []" in result.stall.description


def test_patches_evaluated_in_another_order_stall() -> None:
    history = started_with(WorkflowVersion(patches=("p1", "p2")))

    def swapped(ctx: WorkflowContext, _: Any) -> Steps:
        ctx.is_patched("p2")
        ctx.is_patched("p1")
        yield ctx.wait_for_external_event("go")

    result = replay(swapped, history, [turn(), event_raised("go")])
    assert result.stall is not None and result.stall.reason == PATCH_MISMATCH
    assert "History patches: [p1, p2], current patches: [p2, p1]" in result.stall.description


def test_a_patch_mismatch_stalls_even_code_that_fails_non_deterministically() -> None:
    history = [*started_with(WorkflowVersion(patches=("p1",))), task_scheduled(1, "a")]

    def changed(ctx: WorkflowContext, _: Any) -> Steps:
        yield ctx.call_activity("b")

    result = replay(changed, history, [turn(), task_completed(1)])
    assert result.status is OrchestrationStatus.STALLED
    assert result.failure is None


def test_a_stalled_instance_can_still_be_terminated() -> None:
    history = started_with(WorkflowVersion(patches=("p1",)))

    def without_the_check(ctx: WorkflowContext, _: Any) -> Steps:
        yield ctx.wait_for_external_event("go")

    result = replay(without_the_check, history, [turn(), terminated("bye")])
    assert result.status is OrchestrationStatus.TERMINATED
    assert result.stall is None


# ---- named versions ----------------------------------------------------------------------
def v1(ctx: WorkflowContext, _: Any) -> Steps:
    yield ctx.call_activity("one")
    return "v1"


def v2(ctx: WorkflowContext, _: Any) -> Steps:
    yield ctx.call_activity("two")
    return "v2"


def versions(*, latest: str | None = "v2", only: tuple[str, ...] = ("v1", "v2")) -> Any:
    workflow = VersionedWorkflow("wf")
    for name, fn in (("v1", v1), ("v2", v2)):
        if name in only:
            workflow.add(name, fn, is_latest=name == latest)
    return workflow


def test_a_new_instance_runs_the_latest_version_and_records_it_every_turn() -> None:
    run = Run(versions())
    assert names(run.actions) == ["two"]
    run.turn(task_completed(1, None))
    turns = [e for e in run.history if isinstance(e, OrchestratorStarted)]
    assert [t.version for t in turns] == [WorkflowVersion("v2")] * 2
    assert recorded_version_name(run.history) == "v2"
    assert run.result.output == '"v2"'


def test_a_running_instance_stays_on_the_version_it_started_with() -> None:
    history = [*started_with(WorkflowVersion("v1")), task_scheduled(1, "one")]
    result = replay(versions(latest="v2"), history, [turn(), task_completed(1)])
    assert result.output == '"v1"'
    assert result.version == WorkflowVersion("v1")


def test_a_version_added_as_latest_later_is_taken_by_new_instances_only() -> None:
    workflow = versions(latest="v1", only=("v1",))
    old = Run(workflow)
    workflow.add("v2", v2, is_latest=True)
    assert names(Run(workflow).actions) == ["two"]
    old.turn(task_completed(1))
    assert old.result.output == '"v1"'


def test_a_version_that_is_not_registered_stalls_the_instance() -> None:
    history = [*started_with(WorkflowVersion("v1")), task_scheduled(1, "one")]
    result = replay(versions(only=("v2",)), history, [turn(), task_completed(1)])
    assert result.status is OrchestrationStatus.STALLED
    assert result.actions == []
    assert result.stall is not None
    assert result.stall.reason == VERSION_NOT_AVAILABLE
    assert result.stall.description == "Version not available: v1"


def test_an_instance_without_code_for_its_version_can_be_terminated() -> None:
    history = [*started_with(WorkflowVersion("v1")), task_scheduled(1, "one")]
    result = replay(versions(only=("v2",)), history, [turn(), terminated("stop")])
    assert result.status is OrchestrationStatus.TERMINATED
    (completion,) = result.actions
    assert isinstance(completion, CompleteOrchestration) and completion.result == '"stop"'


def test_a_new_instance_with_no_latest_version_fails_with_a_clear_error() -> None:
    result = replay(versions(latest=None), [], start())
    assert isinstance(result.failure, RegistrationError)
    assert "is_latest=True" in str(result.failure)


def test_a_version_name_is_registered_once() -> None:
    workflow = versions()
    workflow.add("v1", v1, is_latest=False)  # the same function again: no error
    with pytest.raises(RegistrationError, match="'v1' of workflow 'wf' is already registered"):
        workflow.add("v1", v2, is_latest=False)


# ---- settling a turn (what the engine does with any worker's answer) ----------------------
def test_settle_records_the_name_and_only_the_new_patches() -> None:
    settled = settle_turn(
        [turn(), event_raised("go")],
        [],
        recorded=["p1"],
        recorded_name="v1",
        reported=WorkflowVersion("v1", ("p1", "p2")),
    )
    assert settled.stall is None
    first = settled.new_events[0]
    assert isinstance(first, OrchestratorStarted)
    assert first.version == WorkflowVersion("v1", ("p2",))


def test_settle_stalls_on_a_version_not_available_action() -> None:
    settled = settle_turn(
        [turn(), event_raised("go")],
        [ReportVersionNotAvailable(id=1)],
        recorded=[],
        recorded_name="v1",
        reported=None,
    )
    assert settled.stall is not None and settled.stall.reason == VERSION_NOT_AVAILABLE
    assert settled.actions == []
    assert isinstance(settled.stall.to_event(T0), ExecutionStalled)


def test_settle_terminates_an_instance_the_worker_has_no_code_for() -> None:
    settled = settle_turn(
        [turn(), terminated("x")],
        [ReportVersionNotAvailable(id=1)],
        recorded=[],
        recorded_name="v1",
        reported=None,
    )
    assert settled.stall is None
    (completion,) = settled.actions
    assert isinstance(completion, CompleteOrchestration)
    assert completion.status is OrchestrationStatus.TERMINATED and completion.result == '"x"'


def test_new_patches_counts_repeats() -> None:
    assert new_patches(["a", "b"], ["a", "b", "a", "c"]) == ("a", "c")
    assert new_patches([], []) == ()


def test_recorded_version_and_patches_are_stored_as_json() -> None:
    event = OrchestratorStarted(timestamp=T0, version=WorkflowVersion("v1", ("p1", "p2")))
    assert event_from_dict(orjson.loads(event_to_json(event))) == event
    plain = event_to_json(OrchestratorStarted(timestamp=T0))
    assert "version" not in plain  # unversioned turns are stored as before
    assert event_from_dict(orjson.loads(plain)) == OrchestratorStarted(timestamp=T0)


@pytest.mark.parametrize(
    "version",
    [{"name": 3}, {"patches": "p"}, {"patches": [1]}, {"name": "v", "color": "red"}, "v1"],
)
def test_bad_recorded_versions_are_value_errors(version: Any) -> None:
    data = {"kind": "OrchestratorStarted", "version": version}
    with pytest.raises(ValueError, match="bad fields for history event OrchestratorStarted"):
        event_from_dict(data)
