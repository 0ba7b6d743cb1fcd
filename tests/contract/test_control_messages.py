"""Store contract: control messages (``signal_instance``) show their status at once on an
instance nobody holds, and leave a held one to its worker (every backend)."""

from __future__ import annotations

import pytest
from conftest import FakeClock

from treadle.client import InstanceOperations
from treadle.core.history import (
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    OrchestrationStatus,
)
from treadle.errors import WorkflowNotFoundError
from treadle.store.base import NewMessage, Store

from .helpers import PENDING, RUNNING, claim_one, run_first_turn, start, turn

SUSPENDED = OrchestrationStatus.SUSPENDED


def _status_and_version(store: Store, instance_id: str) -> tuple[OrchestrationStatus, int]:
    record = store.get_instance(instance_id)
    assert record is not None
    return record.status, record.version


def test_an_instance_nobody_holds_shows_suspend_and_resume_at_once(store: Store) -> None:
    start(store, "o-1")
    run_first_turn(store)
    status, version = _status_and_version(store, "o-1")
    assert status is RUNNING
    leased = store.signal_instance(NewMessage("o-1", ExecutionSuspended()), shown_status=SUSPENDED)
    assert leased is False
    # the version moves on with the status: a turn computed before is fenced off
    assert _status_and_version(store, "o-1") == (SUSPENDED, version + 1)
    leased = store.signal_instance(NewMessage("o-1", ExecutionResumed()), shown_status=RUNNING)
    assert leased is False
    assert _status_and_version(store, "o-1") == (RUNNING, version + 2)
    # the messages wait for the next turn, which takes them in order and commits
    item = claim_one(store)
    assert [type(m.event) for m in item.messages] == [ExecutionSuspended, ExecutionResumed]
    (outcome,) = store.commit_turns("w1", [turn(item)])
    assert outcome.ok, outcome


def test_a_held_instance_is_left_to_its_worker(store: Store) -> None:
    start(store, "o-1")
    run_first_turn(store)
    store.send_message(NewMessage("o-1", ExecutionTerminated()))
    item = claim_one(store)  # the worker's turn is under way
    before = _status_and_version(store, "o-1")
    leased = store.signal_instance(NewMessage("o-1", ExecutionSuspended()), shown_status=SUSPENDED)
    assert leased is True
    assert _status_and_version(store, "o-1") == before
    # the turn under way is not fenced off; the suspend waits for the next one
    (outcome,) = store.commit_turns("w1", [turn(item)])
    assert outcome.ok, outcome
    assert [type(m.event) for m in claim_one(store).messages] == [ExecutionSuspended]


def test_an_expired_lease_is_nobodys_and_fences_its_late_turn(
    store: Store, clock: FakeClock
) -> None:
    start(store, "o-1")
    run_first_turn(store)
    store.send_message(NewMessage("o-1", ExecutionTerminated()))
    item = claim_one(store, lease_s=5)
    clock.advance(10)
    leased = store.signal_instance(NewMessage("o-1", ExecutionSuspended()), shown_status=SUSPENDED)
    assert leased is False
    assert _status_and_version(store, "o-1")[0] is SUSPENDED
    (outcome,) = store.commit_turns("w1", [turn(item)])
    assert not outcome.ok


def test_only_a_running_or_suspended_instance_shows_the_status(store: Store) -> None:
    start(store, "o-1")  # PENDING: its first turn decides
    store.signal_instance(NewMessage("o-1", ExecutionSuspended()), shown_status=SUSPENDED)
    assert _status_and_version(store, "o-1") == (PENDING, 0)
    start(store, "o-2")
    store.send_message(NewMessage("o-1", ExecutionResumed()))
    # without a status to show, nothing but the message changes
    run_first_turn(store)
    run_first_turn(store)
    before = _status_and_version(store, "o-2")
    store.signal_instance(NewMessage("o-2", ExecutionTerminated()))
    assert _status_and_version(store, "o-2") == before
    with pytest.raises(WorkflowNotFoundError, match="nope"):
        store.signal_instance(NewMessage("nope", ExecutionSuspended()), shown_status=SUSPENDED)


def test_operations_show_suspend_and_resume_without_a_worker(store: Store) -> None:
    ops = InstanceOperations(store)
    ops.create("order", instance_id="o-1")
    run_first_turn(store)
    ops.suspend("o-1")
    assert _status_and_version(store, "o-1")[0] is SUSPENDED
    ops.resume("o-1")
    assert _status_and_version(store, "o-1")[0] is RUNNING
