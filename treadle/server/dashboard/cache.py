"""The last few histories the dashboard read, kept while their instance does not change.

An instance's page is opened, then its tabs, and a running one's live part is read every two
seconds: with a history of 10,000 events, decoding it each time is most of the work. A
history is kept under its instance's version (bumped by every turn committed) and length, so
any change to the instance reads it anew. Threads: the handlers' thread pool (one lock).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from treadle.core.history import HistoryEvent
from treadle.store.base import InstanceRecord

__all__ = ["HistoryCache"]


class HistoryCache:
    """Histories by instance, at most ``size`` of them, the least recently used dropped.

    Args:
        size: how many histories to keep.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[tuple[str, int, int], list[HistoryEvent]]] = (
            OrderedDict()
        )

    def get(
        self, record: InstanceRecord, read: Callable[[str], list[HistoryEvent]]
    ) -> list[HistoryEvent]:
        """The history of ``record``'s instance: kept, if it has not changed since, else
        ``read(instance_id)`` (and kept)."""
        key = (record.execution_id, record.version, record.history_len)
        with self._lock:
            kept = self._kept.get(record.instance_id)
            if kept is not None and kept[0] == key:
                self._kept.move_to_end(record.instance_id)
                return kept[1]
        history = read(record.instance_id)
        with self._lock:
            self._kept[record.instance_id] = (key, history)
            self._kept.move_to_end(record.instance_id)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return history
