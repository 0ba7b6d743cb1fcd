"""InstanceOperations, the JSON-text layer every edge goes through, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

import pytest

from treadle.client import InstanceOperations, PurgeOutcome
from treadle.core.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    OrchestrationStatus,
)
from treadle.errors import (
    InvalidInputError,
    WorkflowAlreadyExistsError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from treadle.store.base import InstanceQuery, Store

from .helpers import COMPLETED, PENDING, RUNNING, claim_one, end, finish, run_first_turn


class Clock(Protocol):
    """The ``clock`` fixture (tests/conftest.py): the stores' injected time."""

    def advance(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


@pytest.fixture
def ops(store: Store) -> InstanceOperations:
    return InstanceOperations(store)


def test_create_stores_the_input_text_as_given(ops: InstanceOperations, store: Store) -> None:
    text = '{"b": 1,  "a": [1, 2.50]}'
    assert ops.create("order", input=text, instance_id="o-1") == "o-1"
    record = store.get_instance("o-1")
    assert record is not None
    assert (record.name, record.status, record.input) == ("order", PENDING, text)
    (message,) = claim_one(store).messages
    assert isinstance(message.event, ExecutionStarted) and message.event.input == text


def test_create_without_an_id_or_input_makes_a_new_id_and_no_payload(
    ops: InstanceOperations, store: Store
) -> None:
    first = ops.create("order")
    second = ops.create("order", input="")
    assert first != second and len(first) == 32
    for iid in (first, second):
        record = store.get_instance(iid)
        assert record is not None and record.input is None


def test_create_with_a_start_time_schedules_it(
    ops: InstanceOperations, store: Store, clock: Clock
) -> None:
    later = clock.now() + timedelta(hours=1)
    ops.create("order", instance_id="o-1", start_at=later)
    assert store.claim_orchestrations("w1", 10, 30) == []
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        ops.create("order", instance_id="o-2", start_at=later.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"instance_id": ""}, "non-empty"),
        ({"instance_id": "a\nb"}, "control characters"),
        ({"instance_id": "x" * 257}, "limit is 256"),
        ({"name": ""}, "workflow name must be a non-empty string"),
        ({"name": "n" * 1025}, "limit is 1024"),
        ({"name": "tab\tname"}, "control characters"),
        ({"input": "{not json"}, "input is not valid JSON"),
    ],
    ids=["empty-id", "ctrl-id", "long-id", "empty-name", "long-name", "ctrl-name", "bad-json"],
)
def test_create_refuses_bad_ids_names_and_payloads_and_stores_nothing(
    ops: InstanceOperations, store: Store, options: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ops.create(
            options.get("name", "order"),
            input=options.get("input"),
            instance_id=options.get("instance_id", "o-1"),
        )
    assert store.list_instances(InstanceQuery()).instances == []


def test_create_refuses_the_id_of_an_unfinished_instance_and_reuses_a_finished_ones(
    ops: InstanceOperations, store: Store
) -> None:
    ops.create("order", instance_id="o-1", input="1")
    with pytest.raises(WorkflowAlreadyExistsError):
        ops.create("order", instance_id="o-1", input="2")
    finish(store, "o-1")
    ops.create("order", instance_id="o-1", input="3")
    record = store.get_instance("o-1")
    assert record is not None and (record.status, record.input) == (PENDING, "3")


def test_get_checks_the_id_and_answers_none_for_an_unknown_one(
    ops: InstanceOperations, store: Store
) -> None:
    assert ops.get("nope") is None
    with pytest.raises(InvalidInputError, match="control characters"):
        ops.get("bad\x00id")
    ops.create("order", instance_id="o-1")
    record = ops.get("o-1")
    assert record is not None and record.instance_id == "o-1"


def test_raise_event_stores_the_data_text_as_given(ops: InstanceOperations, store: Store) -> None:
    ops.create("order", instance_id="o-1")
    run_first_turn(store)
    ops.raise_event("o-1", "approve", data='{"ok":  true}')
    (message,) = claim_one(store).messages
    assert message.event == EventRaised(
        timestamp=message.event.timestamp, name="approve", input='{"ok":  true}'
    )


def test_raise_event_refuses_unknown_instances_bad_names_and_data(
    ops: InstanceOperations, store: Store
) -> None:
    with pytest.raises(WorkflowNotFoundError):
        ops.raise_event("nope", "approve")
    ops.create("order", instance_id="o-1")
    with pytest.raises(InvalidInputError, match="event name must be a non-empty string"):
        ops.raise_event("o-1", "")
    with pytest.raises(InvalidInputError, match="limit is 1024"):
        ops.raise_event("o-1", "e" * 1025)
    with pytest.raises(InvalidInputError, match="event data is not valid JSON"):
        ops.raise_event("o-1", "approve", data="nope")
    with pytest.raises(InvalidInputError, match="control characters"):
        ops.raise_event("o\x1b", "approve")


def test_terminate_suspend_and_resume_send_their_event_with_output_and_reason(
    ops: InstanceOperations, store: Store
) -> None:
    ops.create("order", instance_id="o-1")
    run_first_turn(store)
    ops.suspend("o-1", reason="maintenance")
    ops.resume("o-1", reason="done")
    ops.terminate("o-1", output='{"why": "cancelled"}', recursive=False)
    events = [m.event for m in claim_one(store).messages]
    assert [type(e) for e in events] == [ExecutionSuspended, ExecutionResumed, ExecutionTerminated]
    suspended, resumed, terminated = events
    assert isinstance(suspended, ExecutionSuspended) and suspended.input == "maintenance"
    assert isinstance(resumed, ExecutionResumed) and resumed.input == "done"
    assert isinstance(terminated, ExecutionTerminated)
    assert (terminated.input, terminated.recurse) == ('{"why": "cancelled"}', False)


def test_control_events_leave_a_finished_instance_alone_and_refuse_unknown_ones(
    ops: InstanceOperations, store: Store
) -> None:
    ops.create("order", instance_id="o-1")
    finish(store, "o-1")
    ops.terminate("o-1", output='"late"')
    ops.suspend("o-1")
    ops.resume("o-1")
    assert store.claim_orchestrations("w1", 10, 30) == []
    record = store.get_instance("o-1")
    assert record is not None and (record.status, record.output) == (COMPLETED, '"done"')
    for signal in (ops.terminate, ops.suspend, ops.resume):
        with pytest.raises(WorkflowNotFoundError, match="nope"):
            signal("nope")
    with pytest.raises(InvalidInputError, match="output is not valid JSON"):
        ops.terminate("o-1", output="{")


def test_waits_return_at_once_when_done_or_unknown(ops: InstanceOperations, store: Store) -> None:
    assert ops.wait_for_start("nope", timeout_s=0) is None
    assert ops.wait_for_completion("nope", timeout_s=0) is None
    ops.create("order", instance_id="o-1")
    finish(store, "o-1")
    started = ops.wait_for_start("o-1")
    done = ops.wait_for_completion("o-1")
    assert started is not None and done is not None and done.status is COMPLETED


def test_waits_time_out_naming_the_status_and_end_when_the_check_raises(
    ops: InstanceOperations, store: Store
) -> None:
    ops.create("order", instance_id="o-1")
    with pytest.raises(TimeoutError, match="'o-1' did not start within 0 s \\(status PENDING\\)"):
        ops.wait_for_start("o-1", timeout_s=0)
    run_first_turn(store)
    assert ops.wait_for_start("o-1", timeout_s=0) is not None
    with pytest.raises(TimeoutError, match="did not finish within 0 s \\(status RUNNING\\)"):
        ops.wait_for_completion("o-1", timeout_s=0)

    class Gone(Exception):
        pass

    def check() -> None:
        raise Gone

    with pytest.raises(Gone):
        ops.wait_for_completion("o-1", check=check)  # no limit: only the check ends it
    with pytest.raises(InvalidInputError):
        ops.wait_for_completion("", timeout_s=0)


def test_list_instances_filters_by_reported_status_and_pages(
    ops: InstanceOperations, store: Store, clock: Clock
) -> None:
    for i in range(3):
        ops.create("order", instance_id=f"o-{i}")
        clock.advance(1)
    page = ops.list_instances(page_size=2)
    assert [r.instance_id for r in page.instances] == ["o-2", "o-1"]
    rest = ops.list_instances(page_size=2, continuation_token=page.next_cursor)
    assert [r.instance_id for r in rest.instances] == ["o-0"] and rest.next_cursor is None
    pending = ops.list_instances(statuses=[PENDING], name="order")
    assert len(pending.instances) == 3
    assert ops.list_instances(statuses=[RUNNING]).instances == []
    assert ops.list_instances(name="other").instances == []
    # the engine statuses the Dapr API reports under another name match that name
    end(store, "o-0", OrchestrationStatus.CANCELED)
    end(store, "o-1", OrchestrationStatus.CONTINUED_AS_NEW)
    terminated = ops.list_instances(statuses=[OrchestrationStatus.TERMINATED])
    running = ops.list_instances(statuses=[RUNNING])
    assert [r.instance_id for r in terminated.instances] == ["o-0"]
    assert [r.instance_id for r in running.instances] == ["o-1"]
    with pytest.raises(InvalidInputError, match="page_size"):
        ops.list_instances(page_size=0)


def test_get_history_refuses_unknown_instances(ops: InstanceOperations, store: Store) -> None:
    with pytest.raises(WorkflowNotFoundError, match="nope"):
        ops.get_history("nope")
    ops.create("order", instance_id="o-1", input="5")
    run_first_turn(store)
    kinds = [e.KIND for e in ops.get_history("o-1")]
    assert kinds == ["OrchestratorStarted", "ExecutionStarted"]


def test_purge_by_id_and_by_filter_deletes_only_finished_instances(
    ops: InstanceOperations, store: Store
) -> None:
    ops.create("order", instance_id="done-1")
    finish(store, "done-1")
    ops.create("order", instance_id="done-2")
    finish(store, "done-2")
    ops.create("order", instance_id="waiting")
    with pytest.raises(WorkflowStateError):
        ops.purge("waiting")
    assert ops.purge("done-1") == 1 and ops.purge("done-1") == 0
    assert ops.purge_matching(statuses=[PENDING, RUNNING]) == PurgeOutcome(0, True)
    assert ops.purge_matching(statuses=[OrchestrationStatus.FAILED]) == PurgeOutcome(0, True)
    assert ops.purge_matching() == PurgeOutcome(1, True)
    assert ops.get("done-2") is None and ops.get("waiting") is not None


def test_rerun_from_the_start_keeps_or_replaces_the_input_text(
    ops: InstanceOperations, store: Store
) -> None:
    ops.create("order", instance_id="src", input='{"n":  1}')
    with pytest.raises(WorkflowStateError, match="only a finished workflow"):
        ops.rerun("src", 0)
    finish(store, "src")
    with pytest.raises(WorkflowNotFoundError):
        ops.rerun("nope", 0)
    same = ops.rerun("src", 0, new_instance_id="re-1")
    other = ops.rerun("src", 0, input="[ 2 ]", overwrite_input=True)
    kept = ops.rerun("src", 0, new_instance_id="re-3", input="not json", overwrite_input=False)
    inputs = [getattr(store.get_instance(i), "input", "missing") for i in (same, other, kept)]
    assert inputs == ['{"n":  1}', "[ 2 ]", '{"n":  1}']
    with pytest.raises(InvalidInputError, match="input is not valid JSON"):
        ops.rerun("src", 0, input="not json", overwrite_input=True)
    with pytest.raises(InvalidInputError, match="control characters"):
        ops.rerun("src", 0, new_instance_id="re\n4")


def test_payload_checks_can_be_left_to_a_caller_that_encodes_them(store: Store) -> None:
    # The Python client's payloads come from codec.encode; ids and names are still checked.
    trusting = InstanceOperations(store, check_payloads=False)
    trusting.create("order", instance_id="o-1", input='{"n": 1}')
    trusting.create("order", instance_id="o-2", input="")
    assert [getattr(store.get_instance(i), "input", "?") for i in ("o-1", "o-2")] == [
        '{"n": 1}',
        None,
    ]
    with pytest.raises(InvalidInputError, match="control characters"):
        trusting.create("order", instance_id="o\n3")
    with pytest.raises(InvalidInputError, match="workflow name"):
        trusting.create("", instance_id="o-3")
