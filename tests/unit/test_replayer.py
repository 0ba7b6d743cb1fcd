"""The Replayer: saved histories against today's code, OK or the first divergence, exactly.

The histories here are the frozen ones of tests/histories (bare lists of events, as stored)
and history files written by :func:`dump_history`; the code "deployed" over them changes in
the ways a real deploy does.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from treadle.core.context import WorkflowContext
from treadle.core.history import ExecutionStarted, HistoryEvent, event_to_dict
from treadle.core.history_file import FORMAT, FORMAT_VERSION, dump_history, load_history
from treadle.core.versioning import VersionedWorkflow
from treadle.testing import Replayer

from .helpers import Workflow
from .test_saved_histories import EXPECTED, HISTORIES, load, order_v1, order_v3, task_chain


# ---- the history file ----------------------------------------------------------------
def test_a_history_file_round_trips_with_its_format_and_version() -> None:
    events = load("task_chain_completed.json")
    text = dump_history("o-1", events, status="COMPLETED")
    document = json.loads(text)
    assert document["format"] == FORMAT == "treadle.history"
    assert document["format_version"] == FORMAT_VERSION == 1
    assert (document["instance_id"], document["workflow"]) == ("o-1", "task_chain")
    assert document["events"] == [event_to_dict(e) for e in events]
    saved = load_history(text)
    assert (saved.instance_id, saved.workflow, saved.status) == ("o-1", "task_chain", "COMPLETED")
    assert list(saved.events) == events


def test_a_bare_list_of_events_is_read_too() -> None:
    saved = load_history((HISTORIES / "retry_then_success.json").read_text())
    assert saved.workflow == "charge_with_retry" and saved.status is None
    assert saved.instance_id == next(
        e.instance_id for e in saved.events if isinstance(e, ExecutionStarted)
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not JSON"),
        ('{"events": []}', 'expected an object with "format": "treadle.history"'),
        (
            '{"format": "treadle.history", "format_version": 2, "events": []}',
            "format_version 2, newer than this treadle reads (1): upgrade treadle",
        ),
        ('{"format": "treadle.history", "format_version": "1"}', "bad format_version '1'"),
        ('{"format": "treadle.history", "format_version": 1, "events": {}}', "must be a list"),
        ('[{"kind": "OrchestratorStarted"}, {"kind": "Nope"}]', "event 1: unknown history"),
        ('[{"kind": "OrchestratorStarted"}, 3]', "event 1 is not an object"),
        ('[{"kind": "OrchestratorStarted"}]', "no ExecutionStarted event"),
    ],
)
def test_what_is_not_a_history_file_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="history file") as caught:
        load_history(text)
    assert says in str(caught.value)


# ---- replaying: OK ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_saved_history_replays_ok_against_todays_code(name: str) -> None:
    # versioned_patched.json included: it ran v2 with the patch "insure", v3 is latest now
    result = Replayer([EXPECTED[name].workflow]).replay((HISTORIES / name).read_text())
    assert result.ok, result.divergence
    assert result.divergence is None


def test_several_histories_at_once_report_each() -> None:
    replayer = Replayer([e.workflow for e in EXPECTED.values()])
    texts = [(HISTORIES / name).read_text() for name in sorted(EXPECTED)]
    report = replayer.replay(texts)
    assert report.ok, report.divergence
    assert [r.workflow for r in report.results] == [
        "monitor",  # continue_as_new.json
        "charge_with_retry",  # retry_then_success.json
        "task_chain",
        "order",
    ]


def test_a_running_instances_history_replays_ok_after_every_turn() -> None:
    # (a running instance's history ends where a turn's commit ended)
    events = load("task_chain_completed.json")
    replayer = Replayer([task_chain])
    turns = [i for i, e in enumerate(events) if e.KIND == "OrchestratorStarted"][1:]
    for cut in turns:
        result = replayer.replay(events[:cut])
        assert result.ok, (cut, result.divergence)


# ---- replaying: divergences --------------------------------------------------------------
def _renamed(fn: Any) -> Any:
    fn.__name__ = "task_chain"
    return fn


@_renamed
def chain_other_activity(ctx: WorkflowContext, wf_input: int) -> Workflow[list[Any]]:
    r1 = yield ctx.call_activity("step1", input=wf_input)
    r2 = yield ctx.call_activity("double", input=r1)  # was step2
    r3 = yield ctx.call_activity("step3", input=r2)
    return [r1, r2, r3]


@_renamed
def chain_timer_first(ctx: WorkflowContext, wf_input: int) -> Workflow[list[Any]]:
    yield ctx.create_timer(timedelta(minutes=1))  # new: a pause before the first step
    r1 = yield ctx.call_activity("step1", input=wf_input)
    return [r1]


@_renamed
def chain_shorter(ctx: WorkflowContext, wf_input: int) -> Workflow[list[Any]]:
    r1 = yield ctx.call_activity("step1", input=wf_input)
    return [r1]


@_renamed
def chain_longer(ctx: WorkflowContext, wf_input: int) -> Workflow[list[Any]]:
    r1 = yield ctx.call_activity("step1", input=wf_input)
    r2 = yield ctx.call_activity("step2", input=r1)
    r3 = yield ctx.call_activity("step3", input=r2)
    r4 = yield ctx.call_activity("audit", input=r3)  # new: one more step at the end
    return [r1, r2, r3, r4]


@_renamed
def chain_other_output(ctx: WorkflowContext, wf_input: int) -> Workflow[dict[str, Any]]:
    r1 = yield ctx.call_activity("step1", input=wf_input)
    r2 = yield ctx.call_activity("step2", input=r1)
    r3 = yield ctx.call_activity("step3", input=r2)
    return {"results": [r1, r2, r3]}


def _index(events: list[HistoryEvent], kind: str, nth: int = 0) -> int:
    return [i for i, e in enumerate(events) if kind == e.KIND][nth]


@pytest.mark.parametrize(
    ("code", "kind", "nth", "recorded", "actual"),
    [
        (
            chain_other_activity,
            "TaskScheduled",
            1,
            "TaskScheduled (call_activity('step2')) at step 2",
            "called call_activity('double')",
        ),
        (
            chain_timer_first,
            "TaskScheduled",
            0,
            "TaskScheduled (call_activity('step1')) at step 1",
            "called create_timer()",
        ),
        (
            chain_shorter,
            "TaskScheduled",
            1,
            "TaskScheduled (call_activity('step2')) at step 2",
            "finished there (COMPLETED)",
        ),
        (
            chain_longer,
            "ExecutionCompleted",
            0,
            "the end (COMPLETED)",
            "called call_activity('audit')",
        ),
        (
            chain_other_output,
            "ExecutionCompleted",
            0,
            "the output [43,86,7396]",
            'returned {"results":[43,86,7396]}',
        ),
    ],
    ids=["other-activity", "timer-first", "shorter", "longer", "other-output"],
)
def test_the_first_divergence_is_reported_precisely(
    code: Any, kind: str, nth: int, recorded: str, actual: str
) -> None:
    events = load("task_chain_completed.json")
    result = Replayer([code]).replay(dump_history("o-1", events))
    assert not result.ok
    divergence = result.divergence
    assert divergence is not None
    assert divergence.instance_id == "o-1"
    assert divergence.event_index == _index(events, kind, nth)
    assert (divergence.recorded, divergence.actual) == (recorded, actual)
    assert str(divergence) == (
        f"instance 'o-1', event {divergence.event_index}: history recorded {recorded}, "
        f"but the workflow {actual} now"
    )


def test_a_workflow_that_is_not_registered_is_a_divergence_naming_what_is() -> None:
    result = Replayer([chain_shorter]).replay((HISTORIES / "retry_then_success.json").read_text())
    assert result.divergence is not None and result.divergence.event_index == 0
    assert "no workflow 'charge_with_retry' is registered (registered: task_chain)" in str(
        result.divergence
    )


def test_a_report_lists_every_divergence_and_only_those() -> None:
    texts = [
        (HISTORIES / "task_chain_completed.json").read_text(),  # instance o-1
        (HISTORIES / "retry_then_success.json").read_text(),  # not this workflow's
        dump_history("o-2", load("task_chain_completed.json")),
    ]
    report = Replayer([chain_other_activity]).replay(texts)
    assert not report.ok
    assert [r.ok for r in report.results] == [False, False, False]
    assert report.divergence is not None and report.divergence.count("\n") == 2
    assert [r.instance_id for r in report.failures] == ["o-1", "o-1", "o-2"]


# ---- versioning ------------------------------------------------------------------------
def _order_versions(*, v2: Any, latest: Any = None) -> VersionedWorkflow:
    versions = VersionedWorkflow("order")
    versions.add("v1", order_v1, is_latest=False)
    versions.add("v2", v2, is_latest=False)
    versions.add("v3", latest or order_v3, is_latest=True)
    return versions


def order_v2_patch_removed(ctx: WorkflowContext, order: dict[str, Any]) -> Workflow[Any]:
    reserved = yield ctx.call_activity("reserve", input=order)
    insured = yield ctx.call_activity("insure", input=order)  # the patch, made unconditional
    yield ctx.wait_for_external_event("paid")
    return {"v": 2, "reserved": reserved, "insured": insured}


def test_a_patch_removed_too_early_is_a_divergence() -> None:
    text = (HISTORIES / "versioned_patched.json").read_text()
    result = Replayer([_order_versions(v2=order_v2_patch_removed)]).replay(text)
    assert result.divergence is not None
    assert "insure" in result.divergence.actual, result.divergence


def test_a_version_no_longer_deployed_is_a_divergence() -> None:
    versions = VersionedWorkflow("order")
    versions.add("v1", order_v1, is_latest=False)
    versions.add("v3", order_v3, is_latest=True)  # v2, which the history ran, is gone
    result = Replayer([versions]).replay((HISTORIES / "versioned_patched.json").read_text())
    assert result.divergence is not None
    assert "Version not available: v2" in result.divergence.actual
