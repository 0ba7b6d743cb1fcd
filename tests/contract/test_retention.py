"""Purging by filter in batches, and store-wide leases, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

import pytest

from treadle.client import InstanceOperations, PurgeOutcome
from treadle.core.history import OrchestrationStatus, ParentInfo
from treadle.store.base import Store
from treadle.store.retention import (
    Maintenance,
    PurgeFilter,
    RetentionPolicy,
    purge_by_filter,
)

from .helpers import COMPLETED, end, finish, run_first_turn, start

FAILED = OrchestrationStatus.FAILED


class Clock(Protocol):
    """The ``clock`` fixture (tests/conftest.py): the stores' injected time."""

    def advance(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


def _done(store: Store, iid: str, name: str = "wf") -> None:
    start(store, iid, name)
    finish(store, iid)


def _ids(store: Store) -> set[str]:
    ops = InstanceOperations(store)
    return {r.instance_id for r in ops.list_instances(page_size=1000).instances}


def test_purge_finished_deletes_matching_finished_instances_oldest_first(
    store: Store, clock: Clock
) -> None:
    assert isinstance(store, Maintenance)
    _done(store, "a", "order")
    clock.advance(10)
    _done(store, "b", "order")
    _done(store, "c", "refund")
    start(store, "running", "order")
    run_first_turn(store)
    clock.advance(10)
    which = PurgeFilter(name="order")
    assert store.purge_finished(which, 10, dry_run=True) == ["a", "b"]
    assert store.purge_finished(which, 1) == ["a"]  # the one that finished first
    assert _ids(store) == {"b", "c", "running"}
    assert store.get_history("a") == []
    assert (
        store.purge_finished(PurgeFilter(finished_before=clock.now() - timedelta(seconds=15)), 10)
        == []
    )
    assert sorted(store.purge_finished(PurgeFilter(), 10)) == ["b", "c"]
    assert _ids(store) == {"running"}


def test_purge_filters_by_status_and_creation_time(store: Store, clock: Clock) -> None:
    assert isinstance(store, Maintenance)
    _done(store, "old")
    clock.advance(100)
    cutoff = clock.now()
    start(store, "failed")
    run_first_turn(store)
    end(store, "failed", FAILED)
    _done(store, "new")
    assert store.purge_finished(PurgeFilter(statuses=(FAILED,)), 10) == ["failed"]
    assert store.purge_finished(PurgeFilter(created_from=cutoff), 10) == ["new"]
    assert store.purge_finished(PurgeFilter(created_to=cutoff), 10) == ["old"]


def test_a_parent_with_an_unfinished_child_is_kept(store: Store) -> None:
    assert isinstance(store, Maintenance)
    start(store, "parent")
    run_first_turn(store)
    end(store, "parent", COMPLETED)
    start(
        store,
        "child",
        parent=ParentInfo(name="wf", instance_id="parent", execution_id="e", task_scheduled_id=1),
    )
    assert store.purge_finished(PurgeFilter(), 10) == []
    run_first_turn(store)
    end(store, "child", COMPLETED)
    ops = InstanceOperations(store)
    assert ops.purge_matching(dry_run=True) == PurgeOutcome(2, True)
    # the parent first (it finished first), then its child with it (recursive)
    assert ops.purge_matching() == PurgeOutcome(2, True)
    assert _ids(store) == set()


def test_purge_by_filter_works_through_many_batches(store: Store) -> None:
    for i in range(25):
        _done(store, f"i-{i:02d}")
    outcome = purge_by_filter(store, PurgeFilter(), batch=4, max_batches=3)
    assert outcome == PurgeOutcome(12, True)
    assert purge_by_filter(store, PurgeFilter(), batch=4, dry_run=True).deleted == 13
    assert purge_by_filter(store, PurgeFilter(), batch=4) == PurgeOutcome(13, True)
    assert _ids(store) == set()


def test_a_purge_filter_refuses_unfinished_statuses() -> None:
    with pytest.raises(ValueError, match="RUNNING not finished"):
        PurgeFilter(statuses=(OrchestrationStatus.RUNNING,))


def test_retention_policy_asks_per_status(clock: Clock) -> None:
    policy = RetentionPolicy.from_mapping({"COMPLETED": timedelta(days=7), "failed": timedelta(1)})
    filters = policy.filters(clock.now())
    assert [(f.statuses, f.finished_before) for f in filters] == [
        ((COMPLETED,), clock.now() - timedelta(days=7)),
        ((FAILED,), clock.now() - timedelta(days=1)),
    ]
    with pytest.raises(ValueError, match="RUNNING"):
        RetentionPolicy.from_mapping({"RUNNING": timedelta(1)})


def test_a_named_lease_has_one_holder_until_it_expires(store: Store, clock: Clock) -> None:
    assert isinstance(store, Maintenance)
    assert store.try_lease("retention", "w1", 10)
    assert store.try_lease("retention", "w1", 10)  # renewed
    assert not store.try_lease("retention", "w2", 10)
    assert store.try_lease("other", "w2", 10)
    clock.advance(11)
    assert store.try_lease("retention", "w2", 10)
    assert not store.try_lease("retention", "w1", 10)
