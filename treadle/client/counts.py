"""Counts of instances per workflow name and status, as the Dapr API reports statuses."""

from __future__ import annotations

from treadle.client.status import WorkflowStatus
from treadle.store.base import Store
from treadle.store.capabilities import InstanceCounter

__all__ = ["count_by_name"]


def count_by_name(store: Store) -> dict[str, dict[WorkflowStatus, int]] | None:
    """For each workflow name (sorted), how many of its instances are in each status; None
    if the store cannot count (it lacks :class:`~treadle.store.capabilities.InstanceCounter`).
    """
    if not isinstance(store, InstanceCounter):
        return None
    counts: dict[str, dict[WorkflowStatus, int]] = {}
    for name, status, count in store.count_instances():
        shown = WorkflowStatus.from_orchestration_status(status)
        per_status = counts.setdefault(name, {})
        per_status[shown] = per_status.get(shown, 0) + count
    return counts
