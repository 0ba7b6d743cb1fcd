"""Store contract: change tokens and wait_for_work, across threads and store objects."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from conftest import FakeClock

from treadle.core.history import EventRaised, OrchestratorStarted
from treadle.store.base import NewActivity, NewMessage, Store, TurnCommit, WorkToken

from .helpers import RUNNING, claim_one, start, started_events, turn


def _in_thread(action: Callable[[], None], delay_s: float = 0.05) -> threading.Thread:
    def run() -> None:
        time.sleep(delay_s)  # let the main thread block in wait_for_work first
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_wait_for_work_times_out_when_nothing_changes(store: Store) -> None:
    token = store.change_token()
    started = time.monotonic()
    assert store.wait_for_work(0.2, token) == token
    assert 0.19 <= time.monotonic() - started < 0.6


@pytest.mark.parametrize("same_store", [True, False])
def test_wait_for_work_returns_promptly_after_another_threads_write(
    make_store: Callable[..., Store], clock: FakeClock, same_store: bool
) -> None:
    waiter = make_store(clock=clock)
    writer = waiter if same_store else make_store(clock=clock)
    start(waiter, "o-1")
    token = waiter.change_token()
    thread = _in_thread(lambda: writer.send_message(NewMessage("o-1", EventRaised(name="x"))))
    started = time.monotonic()
    new_token = waiter.wait_for_work(5.0, token)
    elapsed = time.monotonic() - started
    thread.join()
    assert new_token != token
    assert elapsed < 1.0
    assert len(waiter.claim_orchestrations("w1", 10, 30)) == 1


def test_a_token_from_before_a_write_is_stale_at_once(store: Store) -> None:
    token = store.change_token()
    start(store, "o-1")
    started = time.monotonic()
    assert store.wait_for_work(5.0, token) != token
    assert time.monotonic() - started < 1.0


def test_wait_without_a_token_waits_for_the_next_change(store: Store) -> None:
    thread = _in_thread(lambda: start(store, "o-1"))
    started = time.monotonic()
    store.wait_for_work(5.0)
    thread.join()
    assert time.monotonic() - started < 1.0


def test_a_commit_nobody_else_acts_on_wakes_nobody(store: Store) -> None:
    # the instance keeps its lease and status and runs its new activity itself
    start(store, "o-1")
    item = claim_one(store)
    (first,) = store.commit_turns("w1", [turn(item, started_events(item), keep_lease=True)])
    token = store.change_token()
    task = NewActivity("o-1", "o-1-e1", 0, "act", None, "te-0", leased=True)
    quiet = TurnCommit(
        instance_id="o-1",
        expected_version=first.version,
        new_events=[OrchestratorStarted()],
        history_start=2,
        status=RUNNING,
        execution_id="o-1-e1",
        new_activities=[task],
        keep_lease=True,
    )
    (outcome,) = store.commit_turns("w1", [quiet])
    assert outcome.ok
    assert store.wait_for_work(0.2, token) == token


def test_status_changes_alone_wake_clients_not_workers(store: Store) -> None:
    """A turn that only changes a status (its activity leased by its own worker) moves the
    clients' change token, not the workers'; new work moves both. (One store object: on
    SQLite a worker's token also follows other connections' commits, every 0.25 s.)"""
    waiter = writer = store
    start(writer, "o-1")
    any_token = waiter.wait_for_work(0.05)
    work_token = waiter.wait_for_work(0.05, work_only=True)
    item = claim_one(writer)
    activity = NewActivity("o-1", item.instance.execution_id, 1, "act", None, "t-1", leased=True)
    (outcome,) = writer.commit_turns(
        "w1",
        [turn(item, started_events(item), keep_lease=True, new_activities=[activity])],
    )
    assert outcome.ok, outcome  # PENDING -> RUNNING, nothing for another worker
    assert waiter.wait_for_work(5.0, any_token) != any_token
    assert waiter.wait_for_work(0.3, work_token, work_only=True) == work_token
    writer.send_message(NewMessage("o-1", EventRaised(name="x")))
    assert waiter.wait_for_work(5.0, work_token, work_only=True) != work_token


def test_a_workers_token_tells_instances_from_activities(store: Store) -> None:
    """A start gives an instance to claim, not an activity; a turn that leaves an activity
    for anyone gives an activity, not an instance (one store object: see above)."""
    token = store.wait_for_work(0.05, work_only=True)
    assert isinstance(token, WorkToken)
    start(store, "o-1")
    after_start = store.wait_for_work(5.0, token, work_only=True)
    assert isinstance(after_start, WorkToken)
    assert after_start.orchestrations != token.orchestrations
    assert after_start.activities == token.activities
    item = claim_one(store)
    free = NewActivity("o-1", item.instance.execution_id, 1, "act", None, "t-1", leased=False)
    (outcome,) = store.commit_turns(
        "w1", [turn(item, started_events(item), keep_lease=True, new_activities=[free])]
    )
    assert outcome.ok, outcome
    after_turn = store.wait_for_work(5.0, after_start, work_only=True)
    assert isinstance(after_turn, WorkToken)
    assert after_turn.activities != after_start.activities
    assert after_turn.orchestrations == after_start.orchestrations
