"""Saved histories (tests/histories/*.json) replayed against today's workflow code.

Each file is a list of ``event_to_dict`` dicts as a store would hold them. They are frozen:
if a change to treadle makes one of these fail, running instances would break the same way.
Add new files rather than regenerating old ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from treadle.core import codec
from treadle.core.actions import CompleteOrchestration
from treadle.core.context import WorkflowContext
from treadle.core.history import HistoryEvent, OrchestrationStatus, event_from_dict
from treadle.core.replay import replay
from treadle.core.retry import RetryPolicy
from treadle.core.versioning import VersionedWorkflow

from .helpers import Workflow

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


# ---- today's workflow code -----------------------------------------------------------
def task_chain(ctx: WorkflowContext, wf_input: int) -> Workflow[list[Any]]:
    try:
        r1 = yield ctx.call_activity("step1", input=wf_input)
        r2 = yield ctx.call_activity("step2", input=r1)
        r3 = yield ctx.call_activity("step3", input=r2)
    except Exception as e:
        yield ctx.call_activity("error_handler", input=str(e))
        raise
    return [r1, r2, r3]


RETRY = RetryPolicy(
    first_retry_interval=timedelta(seconds=5), max_number_of_attempts=3, backoff_coefficient=2
)


def charge_with_retry(ctx: WorkflowContext, order: dict[str, Any]) -> Workflow[dict[str, Any]]:
    receipt = yield ctx.call_activity("charge", input=order, retry_policy=RETRY)
    return {"order": order["id"], "receipt": receipt}


def monitor(ctx: WorkflowContext, state: dict[str, list[Any]]) -> Workflow[None]:
    item = yield ctx.wait_for_external_event("work")
    yield ctx.create_timer(timedelta(seconds=30))
    ctx.continue_as_new({"seen": state["seen"] + [item]}, save_events=True)


def order_v1(ctx: WorkflowContext, order: dict[str, Any]) -> Workflow[dict[str, Any]]:
    reserved = yield ctx.call_activity("reserve", input=order)
    return {"v": 1, "reserved": reserved}


def order_v2(ctx: WorkflowContext, order: dict[str, Any]) -> Workflow[dict[str, Any]]:
    reserved = yield ctx.call_activity("reserve", input=order)
    insured = None
    if ctx.is_patched("insure"):
        insured = yield ctx.call_activity("insure", input=order)
    yield ctx.wait_for_external_event("paid")
    return {"v": 2, "reserved": reserved, "insured": insured}


def order_v3(ctx: WorkflowContext, order: dict[str, Any]) -> Workflow[dict[str, Any]]:
    yield ctx.create_timer(timedelta(days=1))
    return {"v": 3}


def order_versions() -> VersionedWorkflow:
    """Today's versions of "order": the history ran v2 with the patch, v3 is the latest now."""
    versions = VersionedWorkflow("order")
    versions.add("v1", order_v1, is_latest=False)
    versions.add("v2", order_v2, is_latest=False)
    versions.add("v3", order_v3, is_latest=True)
    return versions


# ---- expectations --------------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    workflow: Callable[..., Any] | VersionedWorkflow
    status: OrchestrationStatus
    output: Any
    carryover: tuple[tuple[str, str | None], ...] = ()


EXPECTED = {
    "task_chain_completed.json": Expected(
        task_chain, OrchestrationStatus.COMPLETED, [43, 86, 7396]
    ),
    "retry_then_success.json": Expected(
        charge_with_retry,
        OrchestrationStatus.COMPLETED,
        {"order": "o-77", "receipt": "r-3"},
    ),
    "continue_as_new.json": Expected(
        monitor,
        OrchestrationStatus.CONTINUED_AS_NEW,
        {"seen": ["a", "b"]},
        carryover=(("work", '"c"'), ("work", "0")),
    ),
    "versioned_patched.json": Expected(
        order_versions(),
        OrchestrationStatus.COMPLETED,
        {"v": 2, "reserved": "r-1", "insured": "i-1"},
    ),
}


def load(name: str) -> list[HistoryEvent]:
    return [event_from_dict(d) for d in json.loads((HISTORIES / name).read_text())]


def test_every_saved_history_has_an_expectation() -> None:
    assert sorted(p.name for p in HISTORIES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_saved_history_replays_to_its_recorded_outcome(name: str) -> None:
    expected = EXPECTED[name]
    history = load(name)
    result = replay(expected.workflow, history, instance_id="saved")
    assert result.failure is None, result.failure
    assert result.status is expected.status
    assert codec.decode(result.output) == expected.output
    # Everything but the completion is already in history: nothing may run again.
    [completion] = result.actions
    assert isinstance(completion, CompleteOrchestration)
    carried = tuple((e.name, e.input) for e in completion.carryover_events)
    assert carried == expected.carryover


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_prefix_of_a_saved_history_replays_cleanly(name: str) -> None:
    # A worker can crash after any committed turn; replay must resume from each of them.
    expected = EXPECTED[name]
    history = load(name)
    for cut in range(2, len(history)):
        result = replay(expected.workflow, history[:cut], instance_id="saved")
        assert result.failure is None, (cut, result.failure)
