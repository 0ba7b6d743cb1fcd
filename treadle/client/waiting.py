"""Waiting for an instance to reach a state: the loop behind every Wait call of every edge.

Runs on the caller's thread and blocks it; it holds no state between calls.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import cast

from treadle.client.status import WorkflowStatus
from treadle.store.base import InstanceRecord, Store
from treadle.store.capabilities import HandedRecord, InstanceWatcher

__all__ = ["POLL_S", "wait_for"]

POLL_S = 0.5
"""How long a wait sleeps between looks at the instance when nothing wakes it sooner."""


def wait_for(
    store: Store,
    instance_id: str,
    done: Callable[[InstanceRecord], bool],
    *,
    what: str,
    timeout_s: float | None,
    check: Callable[[], None] | None,
) -> InstanceRecord | None:
    """Wait until ``done`` holds for the instance's record; return it (None: no instance).

    Args:
        store: the store holding the instance.
        instance_id: the instance (a checked id).
        done: whether a record is the one waited for.
        what: the verb for the timeout message (``"start"``, ``"finish"``).
        timeout_s: how long to wait (None: without limit; 0 or less: look once).
        check: called between looks; whatever it raises ends the wait.

    Raises:
        TimeoutError: the time ran out first.
    """
    deadline = time.monotonic() + timeout_s if timeout_s is not None else None
    # A store that can hand over the final row a commit of this process wrote (a runtime of
    # this process ran the workflow) spares the read after the last wake-up.
    watching: AbstractContextManager[HandedRecord | None] = (
        cast(InstanceWatcher, store).watching(instance_id)
        if _watches(type(store))
        else contextlib.nullcontext()
    )
    with watching as handed:
        # Taken before the first read: a change between that read and the wait then ends the
        # wait at once, instead of being missed until the next look.
        token = store.change_token()
        record: InstanceRecord | None = None
        while True:
            mine, coming = handed() if handed is not None else (None, False)
            if mine is not None and done(mine):
                return mine
            if record is None or not coming:  # (coming: it is about to be handed over)
                record = store.get_instance(instance_id)
                if record is None or done(record):
                    return record
            if check is not None:
                check()
            wait = POLL_S
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    status = WorkflowStatus.from_orchestration_status(record.status)
                    raise TimeoutError(
                        f"workflow {instance_id!r} did not {what} within {_seconds(timeout_s)} s "
                        f"(status {status.name})"
                    )
                wait = min(wait, remaining)
            token = store.wait_for_work(wait, token)


def _seconds(value: float | None) -> str:
    """A duration for a message: at most 3 decimals, no trailing zeros (0.4999 as 0.5)."""
    return f"{value or 0:.3f}".rstrip("0").rstrip(".")


@functools.cache
def _watches(store_type: type) -> bool:
    """Whether stores of ``store_type`` are :class:`InstanceWatcher` (asked once a type: an
    isinstance check of a runtime-checkable protocol reads every member, at every wait)."""
    return issubclass(store_type, InstanceWatcher)
