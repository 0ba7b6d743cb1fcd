"""Publishing the queue limits a runtime registered to the store, which every worker's
claims read (see :mod:`treadle.store.queues`): the last worker to start wins, unless an
operator pinned a queue's limits (``client.set_queue_limits``, ``treadle queue set``).

Called once, by the thread that starts the runtime, before its first claim.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from treadle.errors import StoreError
from treadle.store.base import Store
from treadle.store.queues import QueuedNames, QueueStore

__all__ = ["publish_queue_limits"]

logger = logging.getLogger(__name__)


def publish_queue_limits(store: Store, queued: Sequence[QueuedNames], owner: str) -> None:
    """Store the limits of each queue in ``queued`` (registered by the runtime ``owner``)
    for every worker; log a warning where they replace, or lose to, other limits."""
    if not queued or not isinstance(store, QueueStore):
        return
    done: set[str] = set()
    for names in queued:
        queue = names.queue
        if queue.name in done:
            continue
        done.add(queue.name)
        try:
            before = store.put_queue_limits(queue, by=owner, pinned=False)
        except StoreError as exc:  # (claims then use what the store has, or these)
            logger.warning("could not store the limits of queue %r: %s", queue.name, exc)
            continue
        if before is None or before.queue == queue:
            continue
        if before.pinned:
            logger.warning(
                "queue %r: this worker registered %s, but an operator pinned %s in the store "
                "(by %s): every worker claims under the pinned limits until they are released "
                "(treadle queue release %s)",
                queue.name,
                queue,
                before.queue,
                before.updated_by,
                queue.name,
            )
        else:
            logger.warning(
                "queue %r: this worker registered %s, replacing %s, which %s registered: every "
                "worker of the store now claims under this worker's limits (the last "
                "registration wins); give every worker the same Queue",
                queue.name,
                queue,
                before.queue,
                before.updated_by,
            )
