"""The queue limits of a store, for operators: see and pin the limits every worker claims
under (see :mod:`treadle.store.queues`)."""

from __future__ import annotations

from treadle.errors import StoreError
from treadle.store.base import Store
from treadle.store.queues import Queue, QueueLimits, QueueStore

__all__ = ["OPERATOR", "queue_store"]

OPERATOR = "operator"
"""Who pinned limits set through the client (``QueueLimits.updated_by``)."""


def queue_store(store: Store) -> QueueStore:
    """``store`` as a store that keeps queue limits.

    Raises:
        StoreError: it keeps none.
    """
    if not isinstance(store, QueueStore):
        raise StoreError(
            f"the store {type(store).__name__} keeps no queues; use a SQLite or PostgreSQL store"
        )
    return store


def check_queue(queue: object) -> Queue:
    """``queue`` if it is a :class:`~treadle.store.queues.Queue`.

    Raises:
        TypeError: it is not.
    """
    if not isinstance(queue, Queue):
        raise TypeError(
            f"set_queue_limits takes a wf.Queue(name, concurrency=..., rate_limit=..., "
            f"period=...), not {type(queue).__name__}"
        )
    return queue


def describe(limits: QueueLimits) -> str:
    """One line for ``treadle queue list``: the name, the limits, who set them and when."""
    queue = limits.queue
    concurrency = "-" if queue.concurrency is None else str(queue.concurrency)
    rate = "-" if queue.rate_limit is None else f"{queue.rate_limit}/{queue.period}"
    pinned = "pinned by" if limits.pinned else "registered by"
    when = limits.updated_at.isoformat(timespec="seconds")
    by = f"{pinned} {limits.updated_by} at {when}"
    return f"{queue.name}\tconcurrency={concurrency}\trate={rate}\t{by}"
