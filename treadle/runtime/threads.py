"""A runtime's threads open their store connection before the runtime says it is started.

On a store with :class:`~treadle.store.capabilities.ThreadConnections` (SQLite), each thread
has a connection of its own, opened on its first use: some 0.5-1 ms each (the connection's
first statement reads the schema). A runtime's dispatcher, watcher and chores threads would
open theirs in the first workflow after :meth:`~treadle.runtime.worker.WorkflowRuntime.start`
returned, on the same cores as that workflow's work. :class:`ThreadStarts` has each open it
as the thread starts, and :meth:`ThreadStarts.wait` lets ``start`` return once they have.

A thread whose connection cannot be opened goes on to its work, whose first use of the store
meets the same error and handles it as it always does (retries, logs, stops the runtime on a
lost file); the wait is bounded, so ``start`` never hangs on a store that does not answer.

Threads: :meth:`ThreadStarts.wrap` and :meth:`ThreadStarts.wait` on the thread that starts
the runtime; the wrapped function on the thread it starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from treadle.store.base import Store
from treadle.store.capabilities import ThreadConnections

__all__ = ["ThreadStarts"]

logger = logging.getLogger(__name__)

CONNECT_WAIT_S = 5.0
"""How long :meth:`ThreadStarts.wait` waits at most for the threads' connections."""


class ThreadStarts:
    """Threads of one runtime's start, each opening its store connection first.

    Args:
        store: the runtime's store; with no :class:`ThreadConnections`, nothing is done.
    """

    def __init__(self, store: Store) -> None:
        self._store = store if isinstance(store, ThreadConnections) else None
        self._connected: list[threading.Event] = []

    def wrap(self, target: Callable[..., None]) -> Callable[..., None]:
        """``target``, made to open the calling thread's connection before it runs."""
        store = self._store
        if store is None:
            return target
        connected = threading.Event()
        self._connected.append(connected)

        def run(*args: Any) -> None:
            try:
                store.connect_thread()
            except Exception as exc:  # (the thread's first use meets it again, and says so)
                name = threading.current_thread().name
                logger.debug("could not open %s's connection: %s", name, exc)
            finally:
                connected.set()
            target(*args)

        return run

    def wait(self, timeout: float = CONNECT_WAIT_S) -> bool:
        """Wait until every wrapped thread has opened its connection (or failed to), up to
        ``timeout`` seconds in all; whether they all did."""
        deadline = time.monotonic() + timeout
        for connected in self._connected:
            if not connected.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True
