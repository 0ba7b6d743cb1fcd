"""The dashboard keeps the last histories it read while their instances do not change."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from treadle.core.history import HistoryEvent, OrchestrationStatus, OrchestratorStarted
from treadle.server.dashboard.cache import HistoryCache
from treadle.store.base import InstanceRecord

NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)


def record(instance_id: str, version: int = 1) -> InstanceRecord:
    return InstanceRecord(
        instance_id, "wf", OrchestrationStatus.RUNNING, "e1", None, None, None, None, NOW, NOW,
        history_len=version, version=version,
    )  # fmt: skip


def test_a_history_is_read_again_only_when_its_instance_changed() -> None:
    reads: list[str] = []

    def read(instance_id: str) -> list[HistoryEvent]:
        reads.append(instance_id)
        return [OrchestratorStarted()]

    cache = HistoryCache(size=2)
    first = cache.get(record("a"), read)
    assert cache.get(record("a"), read) is first and reads == ["a"]
    cache.get(dataclasses.replace(record("a"), version=2, history_len=2), read)
    assert reads == ["a", "a"]
    cache.get(record("b"), read)
    cache.get(record("c"), read)  # "a" is the least recently used: dropped
    cache.get(dataclasses.replace(record("a"), version=2, history_len=2), read)
    assert reads == ["a", "a", "b", "c", "a"]
