"""Process-wide registry: the runtimes running in this process, by store URL, where a
client's starts can go first.

Lifetime: a runtime is added by ``WorkflowRuntime.start`` and removed by its ``shutdown``;
nothing else is kept. It sits in the store layer so that the client and the runtime, which do
not import each other, both reach it.

A :class:`~treadle.client.WorkflowClient` whose store a running
:class:`~treadle.runtime.WorkflowRuntime` of this process also uses offers it each
new instance first (``WorkflowRuntime.start_here``): the
runtime runs the instance's first turn at once and commits it together with the instance,
one durable commit where a start would take two (the start, then the first turn) and a
claim between them.
"""

from __future__ import annotations

import threading
from typing import Protocol
from urllib.parse import urlparse

from treadle.store.base import NewInstance

__all__ = ["LocalStarter", "add", "remove", "shared", "starters"]


class LocalStarter(Protocol):
    """A runtime that can start instances itself (see the module), and give up a turn it sent
    to a remote worker."""

    def start_here(self, new: NewInstance) -> bool:
        """Create ``new`` with its first turn; False if this runtime does not take it."""
        ...

    def abandon_remote_turn(self, instance_id: str, *, retry_after_s: float = 0.0) -> None:
        """Give up the instance's turn out to a remote worker, if one is: the instance is
        claimed again, with the messages that came since (a termination must not wait for a
        worker that may be gone)."""
        ...

    def withdraw_remote_turn(self, instance_id: str) -> bool:
        """Give up the instance's turn if it waits for a remote worker to receive it (a
        suspend or resume must not wait for a worker that has gone); whether it did."""
        ...


_LOCK = threading.Lock()
_BY_URL: dict[str, tuple[LocalStarter, ...]] = {}


def shared(url: str) -> bool:
    """Whether two stores opened from ``url`` in this process are one database: not so for
    an unnamed in-memory URL (each opening is a database of its own)."""
    parsed = urlparse(url)
    if parsed.scheme == "memory":
        return bool(parsed.netloc)
    return url not in ("sqlite://", "sqlite:///:memory:")


def add(url: str, runtime: LocalStarter) -> None:
    """Offer ``runtime`` the starts of this process's clients of the store at ``url`` (if
    other stores opened from ``url`` are the same database: see :func:`shared`)."""
    if not shared(url):
        return
    with _LOCK:
        _BY_URL[url] = (*_BY_URL.get(url, ()), runtime)


def remove(url: str, runtime: LocalStarter) -> None:
    """Stop offering ``runtime`` starts (it is shutting down)."""
    with _LOCK:
        left = tuple(r for r in _BY_URL.get(url, ()) if r is not runtime)
        if left:
            _BY_URL[url] = left
        else:
            _BY_URL.pop(url, None)


def starters(url: str) -> tuple[LocalStarter, ...]:
    """The runtimes of this process that take starts on the store at ``url``."""
    return _BY_URL.get(url, ())
