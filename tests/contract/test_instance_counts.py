"""Store contract for the dashboard's queries: the id prefix filter and the counts by name
and status (every backend)."""

from __future__ import annotations

from typing import Any

from conftest import FakeClock

from treadle.client.counts import count_by_name
from treadle.client.status import WorkflowStatus
from treadle.store.base import InstanceQuery, Store
from treadle.store.capabilities import InstanceCounter
from treadle.store.sqlite.prefix import FEW_ROWS

from .helpers import PENDING, RUNNING, run_first_turn, start


def ids(store: Store, **kwargs: Any) -> list[str]:
    return [r.instance_id for r in store.list_instances(InstanceQuery(**kwargs)).instances]


def test_the_id_prefix_filter_is_exact_and_pages(store: Store, clock: FakeClock) -> None:
    for iid in ["order-1", "order-10", "order-2", "orders", "ord", "Order-3", "refund-1", "o%_"]:
        start(store, iid, "wf")
        clock.advance(1)
    assert ids(store, id_prefix="order-") == ["order-2", "order-10", "order-1"]
    assert ids(store, id_prefix="order-1") == ["order-10", "order-1"]
    assert ids(store, id_prefix="o%") == ["o%_"]  # no LIKE patterns
    assert ids(store, id_prefix="O") == ["Order-3"]  # case matters, as ids do
    assert ids(store, id_prefix="x") == []
    assert ids(store, id_prefix="order", name="other") == []
    first = store.list_instances(InstanceQuery(id_prefix="order", limit=2))
    rest = store.list_instances(InstanceQuery(id_prefix="order", limit=2, cursor=first.next_cursor))
    assert [r.instance_id for r in first.instances + rest.instances] == [
        "orders",
        "order-2",
        "order-10",
        "order-1",
    ]


def test_a_prefix_matching_many_instances_lists_the_newest(store: Store, clock: FakeClock) -> None:
    for i in range(FEW_ROWS + 5):  # past the point where SQLite walks the creation index
        start(store, f"bulk-{i:05d}", "wf")
        clock.advance(0.001)
    assert ids(store, id_prefix="bulk-", limit=3) == ["bulk-02004", "bulk-02003", "bulk-02002"]
    assert ids(store, id_prefix="bulk-0000", limit=3) == ["bulk-00009", "bulk-00008", "bulk-00007"]


def test_counts_by_name_and_status(store: Store, clock: FakeClock) -> None:
    assert isinstance(store, InstanceCounter)
    start(store, "a", "alpha")
    start(store, "b", "alpha")
    start(store, "c", "beta")
    run_first_turn(store)  # "a" is now RUNNING
    assert store.count_instances() == [  # by name, then status
        ("alpha", PENDING, 1),
        ("alpha", RUNNING, 1),
        ("beta", PENDING, 1),
    ]
    assert count_by_name(store) == {
        "alpha": {WorkflowStatus.PENDING: 1, WorkflowStatus.RUNNING: 1},
        "beta": {WorkflowStatus.PENDING: 1},
    }
