"""Sagas (``wf.Saga``) and the deterministic helpers of the workflow context (``uuid4``,
``new_guid``, ``random``, ``random_int``, ``now``), on every backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

import treadle as wf
from treadle.core.deterministic import workflow_uuid

from .helpers import Workflow, decoded, finish, wait_until


class Ledger:
    """Activities that book and cancel, recording what they did (thread-safe)."""

    def __init__(self, *, fail_cancel: set[str] | None = None, flaky_cancel: int = 0) -> None:
        self.lock = threading.Lock()
        self.done: list[str] = []
        self.fail_cancel = fail_cancel or set()
        self.flaky_left = flaky_cancel

    def book(self, ctx: wf.WorkflowActivityContext, what: str) -> str:
        if what == "car":
            raise RuntimeError("no cars left")
        with self.lock:
            self.done.append(f"book {what}")
        return f"{what}-booking"

    def cancel(self, ctx: wf.WorkflowActivityContext, booking: str) -> str:
        with self.lock:
            if booking in self.fail_cancel:
                raise RuntimeError(f"cannot cancel {booking}")
            if self.flaky_left > 0:
                self.flaky_left -= 1
                raise ConnectionError("cancel service busy")
            self.done.append(f"cancel {booking}")
        return booking


def _register_trip(runtime: wf.WorkflowRuntime, ledger: Ledger, **saga: Any) -> None:
    runtime.register_activity(ledger.book, name="book")
    runtime.register_activity(ledger.cancel, name="cancel")

    @runtime.workflow(name="trip")
    def trip(ctx: wf.WorkflowContext, items: list[str]) -> Workflow[Any]:
        s = wf.Saga(ctx, **saga)
        try:
            for item in items:
                booking = yield ctx.call_activity("book", input=item)
                s.add_compensation("cancel", input=booking)
        except wf.TaskFailedError as exc:
            undone = yield from s.compensate()
            return {"failed": exc.details.message, "undone": undone, "left": len(s)}
        return {"booked": items, "left": len(s)}


RETRY = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=20), max_number_of_attempts=3)


def test_a_saga_undoes_the_steps_that_succeeded_newest_first(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    ledger = Ledger(flaky_cancel=1)
    _register_trip(runtime, ledger, retry_policy=RETRY)
    iid = client.schedule_new_workflow("trip", input=["flight", "hotel", "car"])
    state = finish(client, iid)
    assert decoded(state.serialized_output) == {
        "failed": "no cars left",
        "undone": ["hotel-booking", "flight-booking"],
        "left": 0,
    }
    # the first cancel failed once and was retried under the saga's policy
    assert ledger.done == [
        "book flight",
        "book hotel",
        "cancel hotel-booking",
        "cancel flight-booking",
    ]
    ok = client.schedule_new_workflow("trip", input=["flight"])
    assert decoded(finish(client, ok).serialized_output) == {"booked": ["flight"], "left": 1}


@pytest.mark.parametrize("continue_on_error", [True, False])
def test_a_failed_compensation_raises_compensation_error(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, continue_on_error: bool
) -> None:
    ledger = Ledger(fail_cancel={"hotel-booking"})
    _register_trip(runtime, ledger, continue_on_error=continue_on_error)
    iid = client.schedule_new_workflow("trip", input=["flight", "hotel", "car"])
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type.endswith("CompensationError")
    assert "1 compensation(s) failed: RuntimeError: cannot cancel hotel-booking" in (
        state.failure_details.message
    )
    # going on past a failure still undoes the older steps; stopping leaves them
    expected = ["cancel flight-booking"] if continue_on_error else []
    assert ledger.done == ["book flight", "book hotel", *expected]


def _register_helpers(runtime: wf.WorkflowRuntime, seen: list[Any]) -> None:
    def record(ctx: wf.WorkflowActivityContext, values: Any) -> None:
        seen.append(values)

    runtime.register_activity(record, name="record")

    @runtime.workflow(name="helpers")
    def helpers(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        rnd = ctx.random()
        first = {
            "uuids": [str(ctx.uuid4()), str(ctx.new_guid())],
            "random": [rnd.random(), rnd.randint(1, 6), ctx.random().random()],
            "int": ctx.random_int(0, 1000),
            "choice": ctx.random_choice(["a", "b", "c", "d"]),
            "string": ctx.random_string(12),
            "now": ctx.now().isoformat(),
        }
        yield ctx.call_activity("record", input=first)
        yield ctx.wait_for_external_event("go")
        return {"first": first, "later": str(ctx.uuid4()), "later_now": ctx.now().isoformat()}


def test_the_helpers_give_the_same_values_on_replay(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    seen: list[Any] = []
    # no cache: every turn replays the history from the start, calling the helpers again
    runtime = make_runtime(start=False, cache_size=0)
    _register_helpers(runtime, seen)
    runtime.start()
    iid = client.schedule_new_workflow("helpers", input=None, instance_id="helpers-1")
    client.wait_for_workflow_start(iid, timeout_in_seconds=10)
    wait_until(lambda: seen, what="the record activity to run")
    client.raise_workflow_event(iid, "go")
    out = decoded(finish(client, iid).serialized_output)
    assert seen == [out["first"]]  # what the first run computed, replay computed again
    first = out["first"]
    assert len(set(first["uuids"] + [out["later"]])) == 3
    assert first["random"][0] != first["random"][2]  # each ctx.random() is its own
    assert 1 <= first["random"][1] <= 6 and 0 <= first["int"] <= 1000
    assert first["choice"] in "abcd" and len(first["string"]) == 12
    assert first["now"] < out["later_now"]  # each turn has its own time
    at = datetime.fromisoformat(first["now"])
    assert first["uuids"][0] == str(workflow_uuid("helpers-1", at, 0))
