"""A runtime at its limits claims more work the moment it has room, on both backends."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import treadle as wf
from treadle.store import open_store
from treadle.store.base import ActivityResult

from .helpers import Workflow, decoded, finish


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_schema_url"))
    return f"sqlite:///{tmp_path / 'treadle.db'}"


def _one_step(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
    return (yield ctx.call_activity("step", input=n))


def _fan_out_steps(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
    return (yield wf.when_all([ctx.call_activity("step", input=i) for i in range(n)]))


def test_a_full_runtime_takes_more_work_as_soon_as_it_has_room(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    """With no room for more workflows or activities, the runtime claims again the moment an
    instance or activity finishes, not at its once-a-second check (which would take 1 s for
    each of these workflows and activities, as they are let go one at a time)."""
    runtime = make_runtime(start=False, max_concurrent_workflows=1, max_concurrent_activities=1)
    runtime.register_activity(lambda ctx, n: n, name="step")
    runtime.register_workflow(_one_step, name="one_step")
    runtime.register_workflow(_fan_out_steps, name="fan_out")
    ids = [client.schedule_new_workflow("one_step", input=n) for n in range(8)]
    runtime.start()
    started = time.monotonic()
    assert [decoded(finish(client, iid).serialized_output) for iid in ids] == list(range(8))
    fan_out = finish(client, client.schedule_new_workflow("fan_out", input=8))
    assert decoded(fan_out.serialized_output) == list(range(8))
    assert time.monotonic() - started < 4.0


def test_a_fan_out_wider_than_the_room_keeps_its_instance_while_its_activities_wait(
    store_url: str,
) -> None:
    """A turn that schedules more activities than the runtime leases at once leaves the rest
    in the queue; the runtime keeps holding the instance until it has claimed them, so their
    results go into the instance's next turns, not through its inbox and a claim of it."""
    store = open_store(store_url)
    delivered: list[int] = []
    complete = store.complete_activities

    def complete_activities(owner: str, results: Sequence[ActivityResult]) -> None:
        delivered.append(len(results))
        complete(owner, results)

    store.complete_activities = complete_activities  # type: ignore[method-assign]
    runtime = wf.WorkflowRuntime(store, max_concurrent_activities=2)
    runtime.register_activity(lambda ctx, n: n, name="step")
    runtime.register_workflow(_fan_out_steps, name="fan_out")
    try:
        with runtime, wf.WorkflowClient(store_url) as client:
            for width in (40, 41):
                state = finish(client, client.schedule_new_workflow("fan_out", input=width))
                assert decoded(state.serialized_output) == list(range(width))
    finally:
        store.close()
    # (before, ~35 of each 40 results went through the inbox, one or two at a time; a result
    # that comes while a claim of the instance races a step committed inline still does)
    assert sum(delivered) <= 4, delivered


def test_a_wide_fan_out_shared_by_two_runtimes_finishes_with_every_result_once(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    """The runtime that holds a fan-out's instance keeps it for the activities its turn left
    in the queue; another runtime claiming some of them (its results reach the instance
    through the inbox) changes nothing in the outcome."""
    runs: list[int] = []

    def step(ctx: wf.WorkflowActivityContext, n: int) -> int:
        runs.append(n)
        time.sleep(0.002)
        return n

    for _ in range(2):
        runtime = make_runtime(start=False, max_concurrent_activities=2)
        runtime.register_activity(step, name="step")
        runtime.register_workflow(_fan_out_steps, name="fan_out")
        runtime.start()
    state = finish(client, client.schedule_new_workflow("fan_out", input=60))
    assert decoded(state.serialized_output) == list(range(60))
    assert sorted(runs) == list(range(60))
