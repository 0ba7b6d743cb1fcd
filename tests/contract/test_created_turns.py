"""Store contract: a turn that creates its instance (TurnCommit.create), the start of a
client of the runtime's own process, committed with the instance's first turn."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from treadle.core.history import OrchestrationStatus, OrchestratorStarted, TaskScheduled
from treadle.errors import WorkflowAlreadyExistsError
from treadle.store.base import ID_TAKEN, NewActivity, NewInstance, Store, TurnCommit, creatable
from treadle.store.capabilities import StartGrouping

from .helpers import COMPLETED, RUNNING, finish, kinds, new_instance, run_first_turn, start

OWNER = "w1"


def _creating(
    new: NewInstance, *, own: bool = True, status: OrchestrationStatus = RUNNING
) -> TurnCommit:
    """The first turn of ``new``: started, one activity scheduled (its own task)."""
    started = new.started_event(datetime(2026, 1, 1, tzinfo=timezone.utc))
    activities = []
    events = [OrchestratorStarted(), started]
    if status is RUNNING:
        events.append(TaskScheduled(event_id=0, name="step", input='"x"'))
        activities.append(
            NewActivity(
                new.instance_id, new.execution_id, 0, "step", '"x"', "te-0", leased=True, own=own
            )
        )
    return TurnCommit(
        instance_id=new.instance_id,
        expected_version=0,
        new_events=events,
        history_start=0,
        status=status,
        execution_id=new.execution_id,
        output='"done"' if status is COMPLETED else None,
        new_activities=activities,
        keep_lease=status is RUNNING,
        create=new,
    )


def test_a_creating_turn_writes_the_instance_as_its_first_turn_leaves_it(store: Store) -> None:
    new = new_instance("c-1", input='"in"')
    (outcome,) = store.commit_turns(OWNER, [_creating(new)])
    assert outcome.ok, outcome
    assert outcome.version == 1
    assert len(outcome.new_activity_ids) == 1 and outcome.new_activity_ids[0] < 0  # own task
    record = store.get_instance("c-1")
    assert record is not None
    assert record.status is RUNNING
    assert record.name == "wf" and record.input == '"in"'
    assert record.execution_id == "c-1-e1"
    assert record.version == 1 and record.history_len == 3
    assert kinds(store.get_history("c-1")) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
    ]
    # leased to its creator, with nothing for anyone to claim: no start message, no task row
    assert store.lease_owners() == [OWNER]
    assert store.claim_orchestrations("w2", 10, 30) == []
    assert store.claim_activities("w2", 10, 30) == []


def test_a_creating_turn_with_a_queued_task_and_one_that_finishes(store: Store) -> None:
    (queued,) = store.commit_turns(OWNER, [_creating(new_instance("c-q"), own=False)])
    assert queued.ok and queued.new_activity_ids and queued.new_activity_ids[0] > 0
    (done,) = store.commit_turns(OWNER, [_creating(new_instance("c-d"), status=COMPLETED)])
    assert done.ok, done
    record = store.get_instance("c-d")
    assert record is not None and record.status is COMPLETED and record.output == '"done"'
    assert store.lease_owners() == [OWNER]  # c-q only: c-d let its lease go


@pytest.mark.parametrize("finished", [False, True])
def test_a_creating_turn_is_refused_when_the_id_is_in_use(store: Store, finished: bool) -> None:
    start(store, "c-2", input='"old"')
    if finished:
        finish(store, "c-2")
    before = store.get_instance("c-2")
    (outcome,) = store.commit_turns(OWNER, [_creating(new_instance("c-2", input='"new"'))])
    assert not outcome.ok
    assert outcome.error == ID_TAKEN
    assert store.get_instance("c-2") == before  # nothing written
    assert "TaskScheduled" not in kinds(store.get_history("c-2"))
    # the store's own start then decides: replace a finished instance, refuse a running one
    if finished:
        store.create_instance(new_instance("c-2", input='"new"'))
        record = store.get_instance("c-2")
        assert record is not None and record.input == '"new"'
    else:
        with pytest.raises(WorkflowAlreadyExistsError):
            store.create_instance(new_instance("c-2", input='"new"'))


def test_creatable_says_which_first_turns_may_create_their_instance() -> None:
    first = _creating(new_instance("c-3"))
    assert creatable(first)
    child = new_instance("c-3-child")
    assert not creatable(TurnCommit(**{**_fields(first), "new_instances": [child]}))
    assert not creatable(TurnCommit(**{**_fields(first), "reset_history": True}))
    assert not creatable(TurnCommit(**{**_fields(first), "expected_version": 2}))


def _fields(commit: TurnCommit) -> dict[str, Any]:
    return {name: getattr(commit, name) for name in TurnCommit.__dataclass_fields__}


def test_a_creating_turn_is_committed_alone_unless_the_store_groups_starts(store: Store) -> None:
    """A store without StartGrouping refuses a creating turn among others; one with it
    commits each turn of such a group on its own. No store takes a creating turn that
    creates other instances, alone or in a group."""
    pair = [_creating(new_instance("c-4")), _creating(new_instance("c-5"))]
    if isinstance(store, StartGrouping):
        assert [o.ok for o in store.commit_turns(OWNER, pair)] == [True, True]
    else:
        with pytest.raises(ValueError, match="committed alone"):
            store.commit_turns(OWNER, pair)
        assert store.get_instance("c-4") is None
    spawning = TurnCommit(
        **{**_fields(_creating(new_instance("c-6"))), "new_instances": [new_instance("c-7")]}
    )
    with pytest.raises(ValueError, match="creates no other instance"):
        store.commit_turns(OWNER, [spawning])
    with pytest.raises(ValueError, match="creates no other instance"):
        store.commit_turns(OWNER, [_creating(new_instance("c-8")), spawning])
    assert store.get_instance("c-6") is None and store.get_instance("c-8") is None


def test_a_store_that_groups_starts_commits_each_turn_of_the_group_on_its_own(
    store: Store,
) -> None:
    """A start committed with another instance's turn (how a runtime's start carries the
    engine's turns along): each is written as if alone, and a start whose id is in use is
    refused without holding up the other turns."""
    if not isinstance(store, StartGrouping):
        pytest.skip(f"{type(store).__name__} commits a creating turn alone")
    start(store, "busy")
    run_first_turn(store, OWNER, keep_lease=True)
    record = store.get_instance("busy")
    assert record is not None
    step = TurnCommit(
        instance_id="busy",
        expected_version=record.version,
        new_events=[OrchestratorStarted()],
        history_start=record.history_len,
        status=RUNNING,
        execution_id=record.execution_id,
        keep_lease=True,
    )
    fresh, taken, stepped = store.commit_turns(
        OWNER, [_creating(new_instance("c-9")), _creating(new_instance("busy")), step]
    )
    assert fresh.ok and fresh.version == 1, fresh
    assert not taken.ok and taken.error == ID_TAKEN
    assert stepped.ok and stepped.version == record.version + 1, stepped
    assert kinds(store.get_history("c-9")) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
    ]
    after = store.get_instance("busy")
    assert after is not None and after.history_len == record.history_len + 1
    assert after.name == "wf" and after.execution_id == record.execution_id


def test_a_creating_turn_wakes_no_client(store: Store) -> None:
    """No client can wait on an instance that did not exist; a creating turn whose step is
    its own task gives no worker anything either: nobody is woken."""
    token = store.change_token()
    work = store.change_token(work_only=True)
    (outcome,) = store.commit_turns(OWNER, [_creating(new_instance("c-8"))])
    assert outcome.ok
    assert store.wait_for_work(0.3, token) == token
    assert store.change_token(work_only=True) == work
